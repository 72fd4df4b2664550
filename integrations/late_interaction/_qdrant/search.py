"""The read path of ``QdrantIndex``: one ``query_points`` request per query, run in one batch.

Plain collections ask Qdrant for MaxSim on the multivector (its HNSW graph, or a full scan with
``exact=True``). ``first_stage="mean"`` collections prefetch ``prefetch_limit`` candidates by the
pooled vector, then Qdrant rescores them by exact MaxSim on their multivectors. Filters go into
every stage, so Qdrant applies them while searching (never after the top ``k``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from late_interaction._index.search import SearchRequest
from late_interaction._qdrant.collection import (
    ID_KEY,
    MEAN,
    MULTIVECTOR,
    TEXT_KEY,
    mean_vectors,
    point_id,
)
from late_interaction._qdrant.filters import has_ids, to_qdrant_filter
from late_interaction._queries import explained, query_matrices, search_explainer
from late_interaction._validation import as_list, positive_int
from late_interaction.exceptions import EmptyIndexError
from late_interaction.fusion import unfused_weight
from late_interaction.types import Encoder, SearchHit


def query_request(
    matrix: np.ndarray,
    k: int,
    *,
    flt: models.Filter | None,
    first_stage: str,
    exact: bool,
    query_ef: int | None,
    prefetch_limit: int,
) -> models.QueryRequest:
    """The Qdrant request that finds the ``k`` best documents for one query token matrix."""
    # Only when asked: Qdrant's local mode warns about any params (it always searches exactly).
    params = models.SearchParams(exact=True) if exact else None
    if query_ef is not None:
        params = models.SearchParams(hnsw_ef=query_ef)
    if first_stage != MEAN or exact:  # exact=True: MaxSim over every allowed document
        return models.QueryRequest(
            query=matrix.tolist(), using=MULTIVECTOR, filter=flt, params=params, limit=k,
            with_payload=True,
        )  # fmt: skip
    prefetch = models.Prefetch(
        query=mean_vectors([matrix])[0], using=MEAN, filter=flt, params=params,
        limit=max(prefetch_limit, k),
    )  # fmt: skip
    return models.QueryRequest(
        prefetch=prefetch, query=matrix.tolist(), using=MULTIVECTOR, filter=flt, limit=k,
        with_payload=True,
    )  # fmt: skip


def hits(points: list[Any], n_query_rows: int) -> list[SearchHit]:
    """``SearchHit`` objects (ranked, raw and normalised MaxSim) from Qdrant's scored points."""
    out = []
    for rank, point in enumerate(points):
        payload = point.payload or {}
        score = float(point.score)
        out.append(
            SearchHit(
                id=payload[ID_KEY],
                score=score,
                normalized_score=score / n_query_rows,
                rank=rank,
                text=payload[TEXT_KEY],
                metadata=dict(payload.get("metadata") or {}),
            )
        )
    return out


logger = logging.getLogger(__name__)


class QdrantSearchMethods:
    """``search`` and ``search_batch`` of :class:`~late_interaction.QdrantIndex`."""

    client: QdrantClient
    collection_name: str
    model: Encoder
    first_stage: str
    prefetch_limit: int
    dim: int

    def search(
        self,
        query: str | np.ndarray,
        k: int = 10,
        *,
        filter: Any = None,
        ids: Iterable[str] | None = None,
        exact: bool = False,
        query_ef: int | None = None,
        k_token: int | None = None,
        explain: bool = False,
        prefetch_limit: int | None = None,
    ) -> list[SearchHit]:
        """Find the ``k`` documents with the highest MaxSim, Qdrant scoring them.

        Args:
            query: Query text, or its token matrix of shape ``(n_query_tokens, dim)``.
            k: Number of results; more than the allowed documents returns all of them.
            filter: A mapping in the core filter language (``{key: value}``, ``$`` operators,
                ``$and``/``$or``/``$not``) or a ``qdrant_client.models.Filter``; applied by
                Qdrant while it searches. A Python callable cannot run there (``TypeError``).
            ids: Only search these document ids.
            exact: Full-scan MaxSim over every allowed document (no HNSW, no first stage).
            query_ef: Qdrant's ``hnsw_ef`` for the graph search (None: Qdrant's default).
            k_token: Not used by Qdrant (it belongs to the in-process token index); must be None.
            explain: Attach each hit's per-token explanation (needs a text query and
                ``ColBERT``; re-encodes each hit).
            prefetch_limit: Candidates for MaxSim with ``first_stage="mean"`` (default: the
                index's ``prefetch_limit``).

        Returns:
            Hits, best first, with raw and normalised (per query row) MaxSim scores.

        Raises:
            EmptyIndexError: If the collection holds no documents.
            ValueError: On a non-positive ``k``/``query_ef``/``prefetch_limit``, ``query_ef`` with
                ``exact=True``, a ``k_token``, or a filter operator Qdrant cannot take.
            TypeError: On a callable filter or a query that is neither text nor a matrix.
        """
        if not isinstance(query, str | np.ndarray) and not hasattr(query, "detach"):
            got = type(query).__name__
            msg = f"query must be a str or a (n_query_tokens, dim) matrix; got {got}."
            raise TypeError(msg)
        options = {"exact": exact, "query_ef": query_ef, "k_token": k_token, "explain": explain}
        return self.search_batch(
            [query], k, filter=filter, ids=ids, prefetch_limit=prefetch_limit, **options
        )[0]

    def search_batch(
        self,
        queries: Sequence[str | np.ndarray],
        k: int = 10,
        *,
        filter: Any = None,
        ids: Iterable[str] | None = None,
        exact: bool = False,
        query_ef: int | None = None,
        k_token: int | None = None,
        explain: bool = False,
        prefetch_limit: int | None = None,
        batch_size: int = 32,
    ) -> list[list[SearchHit]]:
        """:meth:`search` for many queries: texts encoded in one pass, one Qdrant batch request.

        Args:
            queries: Query texts and/or token matrices.
            k: See :meth:`search`; so are the other arguments.
            filter: See :meth:`search`.
            ids: See :meth:`search`.
            exact: See :meth:`search`.
            query_ef: See :meth:`search`.
            k_token: See :meth:`search`.
            explain: See :meth:`search`.
            prefetch_limit: See :meth:`search`.
            batch_size: Encoder batch size for the texts.

        Returns:
            One best-first hit list per query, in input order.
        """
        request = SearchRequest.validated(k, exact, query_ef, None)
        self._check_fusion()
        if k_token is not None:
            msg = "k_token tunes the in-process token index; QdrantIndex takes prefetch_limit."
            raise ValueError(msg)
        limit = positive_int(prefetch_limit, "prefetch_limit", optional=True) or self.prefetch_limit
        flt = self._filter(filter, ids)
        queries = as_list(queries, "queries")
        explainer = search_explainer(self.model, explain, queries)
        if not queries:
            return []
        matrices = query_matrices(self.model, queries, self.dim, batch_size)
        requests = [
            query_request(m, request.k, flt=flt, first_stage=self.first_stage, exact=request.exact,
                          query_ef=request.query_ef, prefetch_limit=limit)
            for m in matrices
        ]  # fmt: skip
        responses = self.client.query_batch_points(self.collection_name, requests=requests)
        results = [hits(r.points, m.shape[0]) for r, m in zip(responses, matrices, strict=True)]
        if not any(results) and self.client.count(self.collection_name).count == 0:
            msg = "the index holds no documents; add documents before searching."
            raise EmptyIndexError(msg)
        return explained(explainer, queries, results)

    def _check_fusion(self) -> None:
        """Qdrant ranks by MaxSim alone: say so for an encoder whose score fuses a dense part.

        Raises:
            ValueError: If the encoder was given ``dense_weight`` > 0 explicitly (a request
                this backend cannot meet).
        """
        if getattr(self, "_fusion_noted", False):
            return
        weight = unfused_weight(
            self.model,
            "QdrantIndex keeps no dense vectors (it ranks by MaxSim alone)",
            "Pass dense_weight=0, or use LateInteractionIndex for the fused score.",
        )
        if weight == 0:
            return
        logger.warning(
            "QdrantIndex ranks by MaxSim alone: the encoder's fused score (dense_weight=%s, "
            "the embedded default's) is not applied on Qdrant. Load the encoder with "
            "dense_weight=0 to silence this.",
            weight,
        )
        self._fusion_noted = True

    def _filter(self, filter: Any, ids: Iterable[str] | None) -> models.Filter | None:
        flt = to_qdrant_filter(filter)
        if ids is None:
            return flt
        allowed = has_ids([point_id(i) for i in as_list(ids, "ids")])
        return allowed if flt is None else models.Filter(must=[allowed, flt])
