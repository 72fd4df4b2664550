"""The maintenance methods of :class:`~late_interaction.LateInteractionIndex`: compact, retrain.

Kept apart from ``index.py`` (construction, writes, persistence) so each file stays one concept;
``LateInteractionIndex`` inherits them. The work is in ``state.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from late_interaction._index.state import IndexState
    from late_interaction.config import IndexConfig


class MaintenanceMethods:
    """``compact``, ``retrain`` and ``codec_drift``, over the state and encoder of the index."""

    _state: IndexState
    dim: int
    config: IndexConfig
    _encode_documents: Callable[..., Any]

    def compact(self) -> None:
        """Rebuild the HNSW graph and token store without deleted documents (ids are kept).

        Searches continue on the old structures meanwhile. Costs a full graph build.
        """
        with self._state.write_lock:
            self._state.compact(self.dim)

    def codec_drift(self) -> dict[str, Any]:
        """How far the tokens encoded since training sit from the codec's centroids.

        Each token is stored as its nearest centroid plus a quantised residual, with bucket
        boundaries fitted on the training sample; tokens of another distribution (a new
        topic, or a first ``add`` too small to be representative) have larger residuals, which
        the buckets quantise coarsely. This compares the mean squared residual norm of every
        token encoded (and of the latest batch) with that of the held-out training vectors.
        A ``ratio`` (or ``last_batch_residual / trained_residual``) well above 1, say 1.3, means
        the codec fits the corpus worse than when it was trained: call :meth:`retrain`.

        Returns:
            ``trained_residual``, ``encoded_tokens``, ``mean_residual``, ``last_batch_tokens``,
            ``last_batch_residual`` and ``ratio``; values are None where unknown (an index
            saved before this measure existed, or nothing encoded yet).

        Raises:
            ValueError: If the index is not compressed (``IndexConfig.nbits`` is None).
        """
        if self.config.nbits is None:
            msg = "codec_drift() measures the codec of a compressed index; this one has nbits=None."
            raise ValueError(msg)
        store = self._state.store
        if store is None:
            return dict.fromkeys(
                ("trained_residual", "encoded_tokens", "mean_residual", "last_batch_tokens",
                 "last_batch_residual", "ratio"),
            )  # fmt: skip
        return store.drift()

    def retrain(self, *, batch_size: int = 32) -> None:
        """Re-train a compressed index's codec on its live documents and re-encode them.

        Documents added after the codec was trained are compressed against its centroids; when
        the corpus has drifted (other topics, or the first ``add`` was small), their residuals
        fall outside the trained buckets and quality drops. This re-encodes every live document
        from its stored text with :attr:`model` (decoded vectors would compound the codec's
        error), trains a new codec as the first ``add`` does, and rebuilds the store and
        inverted lists without deleted documents. Searches continue on the old index meanwhile;
        writes wait. Costs a full encoding of the corpus.

        Raises:
            ValueError: If the index is not compressed (``IndexConfig.nbits`` is None).
        """
        if self.config.nbits is None:
            msg = "retrain() re-trains the codec of a compressed index; this one has nbits=None."
            raise ValueError(msg)
        with self._state.write_lock:
            if self._state.store is not None:
                self._state.retrain(
                    self.dim, lambda texts: self._encode_documents(texts, batch_size)
                )
