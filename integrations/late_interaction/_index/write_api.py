"""The methods of :class:`~late_interaction.LateInteractionIndex` that store encoder output.

``add_embeddings`` (matrices computed elsewhere) and the encoding step of ``add`` and ``retrain``,
which asks the encoder for dense vectors when the index keeps them (``dense_store.py``). Kept
apart from ``index.py`` so each file stays one concept; the index inherits them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from late_interaction._index.dense_store import DenseStore
from late_interaction._index.document_store import validate_documents
from late_interaction._validation import (
    as_list,
    as_texts,
    as_token_matrix,
    float32_matrix,
    storable,
)
from late_interaction.fusion import unfused_weight

if TYPE_CHECKING:  # pragma: no cover
    from late_interaction._index.state import IndexState
    from late_interaction.config import IndexConfig
    from late_interaction.types import Encoder


_ADD_CHUNK = 256  # documents converted and appended per step of add_embeddings (published once)


class WriteMethods:
    """``add_embeddings`` and the document encoder of the inheriting index."""

    _state: IndexState
    model: Encoder
    dim: int
    dense_weight: float
    config: IndexConfig

    def add_embeddings(
        self,
        embeddings: Sequence[Any],
        texts: str | Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        dense: Any = None,
    ) -> list[str]:
        """Add documents whose token matrices were computed already (by this index's encoder).

        An index keeps a dense vector for every document or for none. Without ``dense`` a new
        index keeps none and ranks by MaxSim alone (see :attr:`dense_weight`); an index that
        keeps them needs them here too.

        Args:
            embeddings: One ``(n_tokens_i, dim)`` matrix per document, ``n_tokens_i >= 1``.
            texts: The texts they encode.
            ids: As in :meth:`add`.
            metadatas: As in :meth:`add`.
            dense: The documents' dense vectors, shape ``(n_documents, dense_dim)``: the second
                item of ``encode_documents(texts, return_dense=True)``.

        Returns:
            The ids, in input order.

        Raises:
            DimensionMismatchError: If a matrix's dim differs from the encoder's.
            ValueError: On empty or non-finite matrices, values beyond 65504 in a float16
                store, non-unit rows in a compressed one, any :meth:`add` validation error,
                ``dense`` of the wrong shape, or given to an index without dense vectors (or
                missing for one with them, or for an encoder given ``dense_weight`` > 0). The
                call is checked whole first, and is atomic as :meth:`add`.
        """
        texts = as_texts(texts, "texts")
        embeddings = as_list(embeddings, "embeddings")
        if len(embeddings) != len(texts):
            msg = f"got {len(embeddings)} embeddings for {len(texts)} texts; pass one per text."
            raise ValueError(msg)
        id_list, metas = validate_documents(texts, ids, metadatas)
        rules = storable(self.config.storage_dtype, self.config.nbits)
        # Check all before changing anything, keeping no copy: float32 copies are made a chunk
        # at a time as the store takes them (as add() encodes), so memory stays near the input.
        n_tokens = sum(
            as_token_matrix(e, self.dim, f"embeddings[{i}]", **rules).shape[0]
            for i, e in enumerate(embeddings)
        )
        vectors = None if dense is None else DenseStore.checked(dense, len(texts))
        if vectors is None:
            unfused_weight(
                self.model,
                "these embeddings come without dense vectors",
                "Pass dense= (encode_documents(..., return_dense=True)[1]), or use an encoder "
                "with dense_weight=0.",
            )

        def encode(positions: Sequence[int]) -> tuple[list[np.ndarray], np.ndarray | None]:
            # Checked whole above: only the float32 conversion is left (a second check cost as
            # much again; compressed-inputchecks-*.md).
            matrices = [float32_matrix(embeddings[i]) for i in positions]
            return matrices, None if vectors is None else vectors[list(positions)]

        return self._state.add(
            self.dim, encode, texts, id_list, metas, chunk=_ADD_CHUNK, n_tokens=n_tokens
        )

    def _encode_documents(self, texts: list[str], batch_size: int) -> Any:
        docs = self._state.docs  # dense vectors for an index that keeps them, or will (empty)
        dense = docs.dense is not None or (not docs.ids and self.dense_weight > 0)

        rules = storable(self.config.storage_dtype, self.config.nbits)

        def encode(positions: Sequence[int]) -> tuple[list[np.ndarray], np.ndarray | None]:
            out = self.model.encode_documents(
                [texts[i] for i in positions], batch_size=batch_size, show_progress_bar=False,
                **({"return_dense": True} if dense else {}),
            )  # fmt: skip
            embs, vectors = out if dense else (out, None)
            matrices = [
                as_token_matrix(m, self.dim, f"the encoder's output for texts[{i}]", **rules)
                for i, m in zip(positions, embs, strict=True)
            ]
            return matrices, vectors

        return encode
