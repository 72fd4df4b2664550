"""Helpers shared by the retriever and the reranker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from langchain_core.documents import Document
from pydantic import AfterValidator

SCORE_KEY = "relevance_score"
"""Metadata key of the MaxSim score on returned documents (as langchain-cohere's reranker)."""

Filter = dict[str, Any] | Callable[[dict[str, Any]], bool] | None
StrPath = str | os.PathLike[str]
SEARCH_KWARGS = frozenset({"query_ef", "k_token", "ids"})


def resolve_model(model: Any, *, device: str | None = None) -> Any:
    """Return a core ``ColBERT`` for a name, a path, a loaded encoder or None (embedded default)."""
    from late_interaction import ColBERT

    if isinstance(model, ColBERT):
        if device is not None:
            msg = (
                f"device={device!r} only applies when the model is loaded by name; got an already "
                "loaded ColBERT. Pass device to ColBERT.from_pretrained(...) instead."
            )
            raise ValueError(msg)
        return model
    if model is None or isinstance(model, (str, os.PathLike)):
        return ColBERT.from_pretrained(model, device=device)
    msg = (
        "model must be None (embedded default), a checkpoint name or path, or a "
        f"late_interaction.ColBERT; got {type(model).__name__}."
    )
    raise TypeError(msg)


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
