"""The scoring methods of :class:`~late_interaction.ColBERT`: ``rerank`` and ``explain``.

Kept apart from ``encoder.py`` (loading and encoding) so each file stays one concept; ``ColBERT``
inherits them. The work is in ``reranking.py`` and ``_encoding/explain.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from late_interaction._encoding.explain import explain_pair
from late_interaction._validation import as_texts
from late_interaction.reranking import rerank
from late_interaction.types import Explanation, RerankResult

if TYPE_CHECKING:  # pragma: no cover
    from late_interaction._encoding.pipeline import Pipeline
    from late_interaction.config import EncoderConfig


class ScoringMethods:
    """``rerank`` and ``explain``, over the pipeline and config of the inheriting encoder."""

    _pipeline: Pipeline
    config: EncoderConfig

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        *,
        batch_size: int = 32,
        explain: bool = False,
    ) -> list[RerankResult]:
        """Rerank ``documents`` for ``query`` with this encoder, best first.

        By exact MaxSim, fused with the dense cosine when ``config.dense_weight`` > 0. The same
        as :func:`late_interaction.reranking.rerank` (its Returns and Raises apply).

        Args:
            query: The query text.
            documents: Candidate texts.
            top_k: How many results to keep (None: all).
            batch_size: Documents per forward pass.
            explain: Attach each result's per-token :meth:`explain` breakdown.
        """
        return rerank(self, query, documents, top_k, batch_size=batch_size, explain=explain)

    def _encode_on_device(
        self, texts: list[str], is_query: bool, batch_size: int
    ) -> tuple[list[Any], Any]:
        """Token matrices and dense vectors left as tensors on the encoder's device.

        For ``rerank`` on a GPU, which scores there: the rows need not go to the host and back
        (``Pipeline.encode``'s ``as_tensors``). In this process, never through a pool: a rerank
        is one query's candidates, too few to gain from spreading them out.
        """
        return self._pipeline.encode(texts, is_query, batch_size, None, as_tensors=True)

    def explain(self, query: str, document: str) -> Explanation:
        """Break the MaxSim of ``document`` for ``query`` down by query token.

        For each query row: the document token it matched best, their similarity (its share of
        the score) and that token's character span in ``document``, so an application can
        highlight the evidence (:meth:`Explanation.highlights`). Special tokens, markers and
        ``[MASK]`` expansions are rows too (their ``kind`` says so) and have no span.

        Args:
            query: Query text.
            document: Document text.

        Returns:
            The :class:`~late_interaction.Explanation`; its ``score`` equals ``rerank``'s, and
            with ``config.dense_weight`` > 0 it carries the dense cosine (``dense_score``).

        Raises:
            TypeError: If a text is not a str, or the tokenizer reports no character offsets.
        """
        (q,), q_dense = self._pipeline.encode(as_texts(query, "query"), True, 1, False)
        (d,), d_dense = self._pipeline.encode(as_texts(document, "document"), False, 1, False)
        explanation = explain_pair(self._pipeline, query, document, q, d)
        if self.config.dense_weight == 0:
            return explanation
        cosine = float(q_dense[0] @ d_dense[0])
        return replace(explanation, dense_score=cosine, dense_weight=self.config.dense_weight)
