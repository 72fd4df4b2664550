"""LlamaIndex ``MetadataFilters`` in the core's declarative filter language (``$`` operators).

The in-process index evaluates filters as a Python predicate (``_translate.to_predicate``); a
backend that filters where Python cannot run (``late_interaction.QdrantIndex``, inside Qdrant)
reads the same filters in this declarative form, from the predicate's ``filter_mapping``.
So the retriever passes one object and each backend uses the form it can apply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilters

__all__ = ["LlamaIndexFilter", "to_mapping"]

_SIMPLE = {
    FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte", FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in", FilterOperator.NIN: "$nin", FilterOperator.CONTAINS: "$contains",
}  # fmt: skip


class LlamaIndexFilter:
    """A compiled filter: call it on a metadata dict, or read its declarative ``filter_mapping``.

    Args:
        predicate: The Python predicate (LlamaIndex's in-memory semantics).
        filters: The LlamaIndex filters it was compiled from (None for none).
        doc_ids: The ``ref_doc_id`` allow-list (None for none).
    """

    def __init__(
        self,
        predicate: Callable[[Mapping[str, Any]], bool],
        filters: Any,
        doc_ids: Sequence[str] | None,
    ) -> None:
        self._predicate, self._filters, self._doc_ids = predicate, filters, doc_ids

    def __call__(self, metadata: Mapping[str, Any]) -> bool:
        return self._predicate(metadata)

    @property
    def filter_mapping(self) -> dict[str, Any]:
        """The filters in the core filter language.

        Raises:
            ValueError: For an operator with no declarative form (TEXT_MATCH...).
        """
        return to_mapping(self._filters, self._doc_ids)


def to_mapping(filters: Any, doc_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Translate LlamaIndex filters (and a ``ref_doc_id`` allow-list) to the core language.

    Args:
        filters: A ``MetadataFilters`` tree, a single ``MetadataFilter``, or None.
        doc_ids: If given, ``ref_doc_id`` must be one of them.

    Returns:
        A mapping such as ``{"$and": [{"n": {"$gte": 1}}, {"tags": {"$contains": "x"}}]}``
        (``{}`` for no filter).

    Raises:
        ValueError: For an operator or condition with no declarative form.
    """
    parts = []
    if filters is not None:
        compiled = _node(filters)
        if compiled:
            parts.append(compiled)
    if doc_ids is not None:
        parts.append({"ref_doc_id": {"$in": list(doc_ids)}})
    return parts[0] if len(parts) == 1 else ({"$and": parts} if parts else {})


def _node(filters: Any) -> dict[str, Any]:
    if not isinstance(filters, MetadataFilters):
        return _leaf(filters)
    parts = [p for p in (_node(f) for f in filters.filters) if p]
    if not parts:
        return {}
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return {"$and": parts}
    if condition == FilterCondition.OR:
        return {"$or": parts}
    if condition == FilterCondition.NOT:  # none of the filters match
        return {"$not": {"$or": parts}}
    msg = f"Unsupported filter condition {condition!r}; expected one of and/or/not."
    raise ValueError(msg)


def _leaf(flt: Any) -> dict[str, Any]:
    key, value = flt.key, flt.value
    oper = getattr(flt, "operator", FilterOperator.EQ)  # ExactMatchFilter: equality
    if oper in _SIMPLE:
        return {key: {_SIMPLE[oper]: value}}
    if oper == FilterOperator.ANY:  # any([]) is False: an empty "$in" matches nothing
        return {"$or": [{key: {"$contains": v}} for v in value]} if value else {key: {"$in": []}}
    if oper == FilterOperator.ALL:
        return {"$and": [{key: {"$contains": v}} for v in value]}
    if oper == FilterOperator.IS_EMPTY:  # missing, None, [] or "" (as the predicate)
        return {"$or": [{key: {"$exists": False}}, {key: {"$eq": ""}}]}
    msg = (
        f"filter operator {oper.value!r} on {key!r} has no declarative form, so this index "
        "cannot apply it (a Qdrant-backed index filters inside Qdrant). Supported there: "
        f"{sorted(o.value for o in [*_SIMPLE, FilterOperator.ANY, FilterOperator.ALL])} and "
        "is_empty."
    )
    raise ValueError(msg)
