"""Helpers shared by the retriever and the reranker: input checks, search options, settings."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from langchain_core.documents import Document
from pydantic import AfterValidator, BeforeValidator

from late_interaction._index.filters import filter_predicate
from late_interaction._validation import FROM_LLAMA_INDEX, as_items, positive_int

SCORE_KEY = "relevance_score"
"""Metadata key of the normalised score results are ranked by, in [-1, 1] and comparable across
queries (the key langchain-cohere's reranker uses): MaxSim / query tokens, or, for an encoder with
``dense_weight`` w > 0 (the embedded default), ``(MaxSim / query tokens + w * dense) / (1 + w)``."""
MAXSIM_KEY = "maxsim_score"
"""Metadata key of the raw MaxSim score (a sum over query tokens)."""
DENSE_KEY = "dense_score"
"""Metadata key of the dense cosine fused into ``relevance_score`` (only when w > 0)."""
EXPLANATION_KEY = "explanation"
"""Metadata key of the per-token explanation, when asked for (``Explanation.to_dict()``)."""


def score_metadata(result: Any) -> dict[str, Any]:
    """The score keys (and explanation, if any) that a result adds to a document's metadata."""
    extra = {SCORE_KEY: float(result.normalized_score), MAXSIM_KEY: float(result.score)}
    if result.dense_score is not None:
        extra[DENSE_KEY] = float(result.dense_score)
    if result.explanation is not None:
        extra[EXPLANATION_KEY] = result.explanation.to_dict()
    return extra


Filter = dict[str, Any] | Callable[[dict[str, Any]], bool] | None
StrPath = str | os.PathLike[str]
CORE_SEARCH_KWARGS = frozenset({"query_ef", "k_token", "ids", "exact", "explain"})
# VectorStoreRetriever's search_kwargs that apply here, plus the core's own search options.
SEARCH_KWARGS = CORE_SEARCH_KWARGS | {"k", "filter", "score_threshold"}
SEARCH_TYPES = ("similarity", "similarity_score_threshold")
SETTINGS_FILE = "langchain_retriever.json"
"""Retriever settings saved beside the index by ``ColBERTRetriever.save``."""


def as_documents(documents: Any, name: str, *, texts_ok: bool = False) -> list[Document]:
    """Return LangChain Documents (one Document counts as one); plain texts too if ``texts_ok``.

    Raises:
        TypeError: For anything else, saying what was expected and how to convert it.
    """
    fixes = {"llama_index": FROM_LLAMA_INDEX}
    if not texts_ok:
        fixes["builtins"] = "Wrap a text: Document(page_content=text), or use from/add_texts."
    kind = (Document, str) if texts_ok else Document
    expected = "a LangChain Document or a str" if texts_ok else "a LangChain Document"
    items = as_items(documents, name, kind, expected, fixes)
    return [Document(page_content=d) if isinstance(d, str) else d for d in items]


def check_search_kwargs(
    kwargs: dict[str, Any], allowed: frozenset[str] = SEARCH_KWARGS, owner: str = "ColBERTRetriever"
) -> dict[str, Any]:
    """Return ``kwargs`` if every key is a search option ``owner`` understands (``allowed``)."""
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        msg = f"Unsupported search argument(s) {unknown}; {owner} accepts {sorted(allowed)}."
        raise TypeError(msg)
    threshold = kwargs.get("score_threshold")
    not_number = isinstance(threshold, bool) or not isinstance(threshold, int | float)
    if threshold is not None and not_number:
        msg = f"score_threshold must be a number (a relevance_score); got {threshold!r}."
        raise TypeError(msg)
    return kwargs


def check_search_type(value: Any) -> str:
    """Return ``value`` if it is a supported ``search_type``."""
    if value not in SEARCH_TYPES:
        msg = (
            f"search_type must be one of {list(SEARCH_TYPES)} (VectorStoreRetriever's types that "
            f"apply to MaxSim ranking); got {value!r}."
        )
        raise ValueError(msg)
    return value


def lift_search_kwargs(cls: type, data: Any) -> Any:
    """Move ``k`` and ``filter`` from ``search_kwargs`` (VectorStoreRetriever's place) to fields.

    Each then has one value; ValueError if both places give different ones.
    """
    if not isinstance(data, dict) or not isinstance(data.get("search_kwargs"), dict):
        return data
    data, rest = dict(data), dict(data["search_kwargs"])
    for key in ("k", "filter"):
        if key in rest:
            value = rest.pop(key)
            if data.get(key, value) != value:
                msg = f"{key} is given twice ({data[key]!r}, and {value!r} in search_kwargs); "
                msg += "pass it once."
                raise ValueError(msg)
            data[key] = value
    return {**data, "search_kwargs": rest}


def check_threshold(search_type: str, search_kwargs: dict[str, Any]) -> None:
    """Raise ValueError if the threshold search type comes without a ``score_threshold``."""
    if search_type == "similarity_score_threshold" and "score_threshold" not in search_kwargs:
        msg = 'search_type="similarity_score_threshold" needs search_kwargs["score_threshold"] '
        msg += "(hits whose relevance_score is below it are dropped)."
        raise ValueError(msg)


def unpack(documents: Sequence[Document]) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """Split documents into texts, metadata copies and ids (uuid4 where ``Document.id`` is None)."""
    texts = [d.page_content for d in documents]
    metadatas = [dict(d.metadata) for d in documents]
    ids = [d.id if d.id is not None else str(uuid.uuid4()) for d in documents]
    return texts, metadatas, ids


def read_settings(path: StrPath, overrides: dict[str, Any]) -> dict[str, Any]:
    """Settings saved in an index folder (none if the core saved it), updated by ``overrides``.

    A ``k`` or ``filter`` in ``overrides["search_kwargs"]`` replaces the saved field.
    """
    file = Path(path, SETTINGS_FILE)
    saved = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    for key in set(overrides.get("search_kwargs") or {}) & {"k", "filter"}:
        saved.pop(key, None)
    return {**saved, **overrides}


def settings_of(k: int, filter: Filter, search_type: str, search_kwargs: dict) -> dict[str, Any]:
    """The retriever settings :func:`read_settings` reads back.

    Raises:
        TypeError: If ``filter`` is a callable (code cannot be saved as JSON).
    """
    if callable(filter):
        msg = (
            "this retriever's filter is a callable, which cannot be saved; use a dict filter, or "
            "set filter=None and pass the callable again to ColBERTRetriever.load(path, "
            "filter=...). To save only the index: retriever.index.save(path)."
        )
        raise TypeError(msg)
    return {"k": k, "filter": filter, "search_type": search_type, "search_kwargs": search_kwargs}


def positive(name: str, *, optional: bool = False) -> BeforeValidator:
    """A pydantic validator giving the core's message for a non-positive or non-integer value."""
    return BeforeValidator(partial(positive_int, name=name, optional=optional))


def check_filter(value: Filter) -> Filter:
    """Return ``value`` if the core can apply it (an unknown ``$`` operator fails here, not later).

    Raises:
        ValueError: For an unknown operator or malformed condition (the core's message).
        TypeError: For a filter of the wrong type or an operand of the wrong type.
    """
    filter_predicate(value)
    return value


SearchKwargs = Annotated[dict[str, Any], AfterValidator(check_search_kwargs)]
CheckedFilter = Annotated[Filter, AfterValidator(check_filter)]
SearchType = Annotated[str, BeforeValidator(check_search_type)]
