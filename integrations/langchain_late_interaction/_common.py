"""Helpers shared by the retriever and the reranker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from langchain_core.documents import Document
from pydantic import AfterValidator

SCORE_KEY = "relevance_score"
"""Metadata key of the normalised MaxSim score (MaxSim / query tokens, in [-1, 1]; the key
langchain-cohere's reranker uses), comparable across queries."""
MAXSIM_KEY = "maxsim_score"
"""Metadata key of the raw MaxSim score (a sum over query tokens)."""
EXPLANATION_KEY = "explanation"
"""Metadata key of the per-token explanation, when asked for (``Explanation.to_dict()``)."""


def score_metadata(result: Any) -> dict[str, Any]:
    """The score keys (and explanation, if any) that a result adds to a document's metadata."""
    extra = {SCORE_KEY: float(result.normalized_score), MAXSIM_KEY: float(result.score)}
    if result.explanation is not None:
        extra[EXPLANATION_KEY] = result.explanation.to_dict()
    return extra

Filter = dict[str, Any] | Callable[[dict[str, Any]], bool] | None
StrPath = str | os.PathLike[str]
SEARCH_KWARGS = frozenset({"query_ef", "k_token", "ids", "exact", "explain"})


def check_search_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Return ``kwargs`` if every key is a ``LateInteractionIndex.search`` option we forward."""
    unknown = sorted(set(kwargs) - SEARCH_KWARGS)
    if unknown:
        msg = (
            f"Unsupported search argument(s) {unknown}; ColBERTRetriever accepts k, filter and "
            f"{sorted(SEARCH_KWARGS)}."
        )
        raise TypeError(msg)
    return kwargs


def unpack(documents: Sequence[Document]) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """Split documents into texts, metadata copies and ids (uuid4 where ``Document.id`` is None)."""
    texts = [d.page_content for d in documents]
    metadatas = [dict(d.metadata) for d in documents]
    ids = [d.id if d.id is not None else str(uuid.uuid4()) for d in documents]
    return texts, metadatas, ids


SearchKwargs = Annotated[dict[str, Any], AfterValidator(check_search_kwargs)]
