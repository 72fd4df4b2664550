"""The read methods of :class:`~late_interaction.LateInteractionIndex`: search and search_batch.

Kept apart from ``index.py`` (construction, writes, persistence) so each file stays one concept;
``LateInteractionIndex`` inherits them. The work is in ``search.py`` and ``candidates.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from late_interaction._index.filters import Filter, filter_predicate, restrict
from late_interaction._index.search import SearchRequest, run_search
from late_interaction._index.snapshot import View
from late_interaction._queries import explained, query_matrices, search_explainer
from late_interaction._validation import as_list
from late_interaction.exceptions import EmptyIndexError
from late_interaction.fusion import encoder_dense_weight, unfused_weight
from late_interaction.types import SearchHit

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from late_interaction._index.device_search import SearchDevice
    from late_interaction._index.state import IndexState
    from late_interaction.config import IndexConfig
    from late_interaction.types import Encoder

Query = str | np.ndarray
logger = logging.getLogger(__name__)


class SearchMethods:
    """``search`` and ``search_batch``, over the state and encoder of the inheriting index."""

    _state: IndexState
    model: Encoder
    dim: int
    config: IndexConfig
    _device: torch.device | None
    _model: Encoder | None

    @property
    def device(self) -> torch.device:
        """Where searches score documents: the ``device`` given, else the encoder's device."""
        import torch

        if self._device is not None:
            return self._device
        model_device = getattr(self._model, "device", None)
        return torch.device(model_device) if model_device is not None else torch.device("cpu")

    def _search_device(self) -> SearchDevice | None:
        """The device of this search; None for the CPU (numpy, and no torch import)."""
        if self._device is None and getattr(self._model, "device", None) is None:
            return None
        from late_interaction._index.device_search import SearchDevice

        device = self.device
        return None if device.type == "cpu" else SearchDevice(device, self._device is not None)

    _dense_notice = False  # set once this index has logged that it ranks without dense vectors

    @property
    def dense_weight(self) -> float:
        """Weight ``w`` of the dense cosine in the score this index ranks by (0: MaxSim alone).

        The encoder's ``config.dense_weight`` (0.25 for the embedded default; 0 for trained
        ColBERT checkpoints and encoders without dense vectors), as long as the index keeps a
        dense vector per document (or is empty: ``add`` then stores them). An index without them
        (saved before they existed, or filled by ``add_embeddings`` without ``dense=``) ranks by
        MaxSim alone, says so once in the log, and records ``dense_weight`` 0 when saved.

        Raises:
            ValueError: If the encoder's weight was an explicit ``dense_weight`` > 0 argument
                and the index holds no dense vectors (rebuild it, or load it with weight 0).
        """
        weight = encoder_dense_weight(self.model)
        docs = self._state.docs
        if weight == 0 or docs.dense is not None or not docs.ids:
            return weight
        unfused_weight(
            self.model,
            "this index holds no dense vectors (saved before they existed, or filled by "
            "add_embeddings without dense=)",
            "Rebuild it with this encoder (index.add with the texts of index.get(index.ids)), "
            "or pass dense_weight=0.",
        )
        if not self._dense_notice:
            logger.warning(
                "This index holds no dense vectors (built before they existed, or without "
                "them): it ranks by MaxSim alone, not the encoder's fused score with "
                "dense_weight=%s. Rebuild the index to fuse them.",
                weight,
            )
            self._dense_notice = True
        return 0.0

    def search(
        self,
        query: Query,
        k: int = 10,
        *,
        filter: Filter = None,
        ids: Iterable[str] | None = None,
        exact: bool = False,
        query_ef: int | None = None,
        k_token: int | None = None,
        explain: bool = False,
        query_dense: np.ndarray | None = None,
    ) -> list[SearchHit]:
        """Find the ``k`` documents with the highest exact MaxSim (among ANN candidates).

        When :attr:`dense_weight` w is above 0 (the embedded default's encoder: 0.25), hits are
        ranked by the fused ``normalized_score`` ``(MaxSim / n_query_rows + w * dense_score) /
        (1 + w)``, where ``dense_score`` is the cosine of the query's and the document's dense
        vectors; ``score`` stays the raw MaxSim. Candidates still come from the token ANN stage.

        Args:
            query: Query text, or its token matrix of shape ``(n_query_tokens, dim)``.
            k: Number of results; more than the allowed documents returns all of them.
            filter: None, a mapping (every entry must hold: ``{key: value}``, a list value
                meaning "any of"; ``{key: {"$gt": 3}}`` with ``$eq $ne $gt $gte $lt $lte $in
                $nin $exists $contains``; ``{"$and"|"$or": [...]}``, ``{"$not": {...}}``: the
                operators of LangChain's vector stores; see ``_index/filters.py``) or a
                callable taking a deep copy of the metadata dict and returning a bool.
            ids: Only search these document ids (ids not in the index are ignored).
            exact: Score every allowed document with exact MaxSim (no ANN stage): the answer
                that misses nothing, at a cost that grows with the index.
            query_ef: HNSW search breadth (default ``config.query_ef``, at least ``k_token``).
            k_token: Document tokens fetched per query token (default
                ``max(config.k_token, 2 * k)``).
            explain: Attach each hit's per-token :class:`~late_interaction.Explanation` (needs
                a text query and an encoder with ``explain``, as ``ColBERT``; re-encodes each
                hit at full precision, so its ``score`` can differ from the stored one in the
                third decimal, or more with token pooling).
            query_dense: The dense vector of a matrix ``query`` (from ``encode_queries(...,
                return_dense=True)``); needed for a matrix query when :attr:`dense_weight` > 0.

        Returns:
            Hits, best first, with ranks 0..n-1, texts and metadata copies.

        Raises:
            EmptyIndexError: If the index holds no documents.
            ValueError: If ``k``, ``query_ef`` or ``k_token`` is not a positive integer, an
                ANN setting comes with ``exact=True``, ``explain=True`` with a matrix query, a
                filter has an unknown operator or a malformed condition, a query text is not
                valid Unicode, or a matrix query comes without ``query_dense`` on an index that
                fuses dense scores.
            TypeError: If ``query`` is neither a str nor a matrix, ``filter`` is neither a
                mapping nor a callable (or an operand has the wrong type), or ``explain=True``
                with an encoder that cannot explain.

        .. note::
            A restriction whose allowed documents are few (``config.exact_scan_tokens``,
            ``exact_scan_fraction``) is answered by an exact scan of them; otherwise candidates
            are over-fetched and filtered, with an exact scan of the allowed set when fewer than
            ``k`` pass. A document failing the filter is never returned.
        """
        if not isinstance(query, (str, np.ndarray)) and not hasattr(query, "detach"):
            got = type(query).__name__
            msg = f"query must be a str or a (n_query_tokens, dim) matrix; got {got}."
            raise TypeError(msg)
        options = {"exact": exact, "query_ef": query_ef, "k_token": k_token, "explain": explain}
        dense = None if query_dense is None else [query_dense]
        return self.search_batch([query], k, filter=filter, ids=ids, query_dense=dense, **options)[
            0
        ]

    def search_batch(
        self,
        queries: Sequence[Query],
        k: int = 10,
        *,
        filter: Filter = None,
        ids: Iterable[str] | None = None,
        exact: bool = False,
        query_ef: int | None = None,
        k_token: int | None = None,
        explain: bool = False,
        batch_size: int = 32,
        query_dense: Sequence[Any] | None = None,
    ) -> list[list[SearchHit]]:
        """:meth:`search` for many queries: texts encoded in one pass, one HNSW query.

        Args:
            queries: Query texts and/or token matrices (a list; not one bare matrix).
            k: As in :meth:`search`; so are ``filter``, ``ids``, ``exact``, ``query_ef`` and
                ``k_token``, applied to every query.
            filter: See :meth:`search`.
            ids: See :meth:`search`.
            exact: See :meth:`search`.
            query_ef: See :meth:`search`.
            k_token: See :meth:`search`.
            explain: See :meth:`search`.
            batch_size: Encoder batch size for the texts.
            query_dense: One dense vector per query (None for text queries, whose vectors come
                from the encoder), for matrix queries when :attr:`dense_weight` > 0.

        Returns:
            One best-first hit list per query, in input order.
        """
        request = SearchRequest.validated(k, exact, query_ef, k_token)
        view = self._view(filter, ids)
        queries = as_list(queries, "queries")
        explainer = search_explainer(self.model, explain, queries)
        if not queries:
            return []
        weight = self.dense_weight
        dense = self._query_dense(queries, query_dense, weight)
        matrices = query_matrices(self.model, queries, self.dim, batch_size, dense)
        device = self._search_device()
        results = run_search(view, matrices, request, self.config, device, weight, dense)
        return explained(explainer, queries, results)

    @staticmethod
    def _query_dense(queries: list[Any], given: Any, weight: float) -> list[Any] | None:
        """Room for one dense vector per query, holding the given ones (None: no fusion).

        Raises:
            ValueError: If a matrix query has no dense vector while the index fuses them, or
                ``given`` does not hold one entry per query.
        """
        if weight == 0:
            return None
        given = [None] * len(queries) if given is None else list(given)
        if len(given) != len(queries):
            msg = f"query_dense has {len(given)} entries for {len(queries)} queries; pass one each."
            raise ValueError(msg)
        if any(g is None and not isinstance(q, str) for q, g in zip(queries, given, strict=True)):
            msg = (
                f"this index ranks by MaxSim fused with a dense cosine (dense_weight={weight}); "
                "a token-matrix query needs its dense vector too: query_dense= from "
                "encode_queries(..., return_dense=True). Or pass the query text."
            )
            raise ValueError(msg)
        return [None if g is None else np.asarray(g, np.float32).reshape(-1) for g in given]

    def _view(self, filter: Filter, ids: Iterable[str] | None) -> View:
        """Validate the restriction and take the snapshot it applies to (before any encoding)."""
        predicate = filter_predicate(filter)
        if ids is not None:
            snap, slots = self._state.resolve(as_list(ids, "ids"))
        else:
            snap, slots = self._state.snap, None
        if snap.n_live == 0:
            msg = "the index holds no documents; add documents before searching."
            raise EmptyIndexError(msg)
        return restrict(snap, slots, predicate)
