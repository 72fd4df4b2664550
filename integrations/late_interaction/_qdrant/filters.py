"""Translate the core ``filter`` argument into a Qdrant payload ``Filter`` (applied server-side).

Documents keep their metadata under the ``metadata`` payload key, so a filter key ``topic``
becomes the Qdrant key ``metadata.topic`` (quoted when it holds a dot or brackets).

Accepted forms (anything else raises a ``TypeError`` or ``ValueError`` naming the fix):

* ``{key: value}``: equality; ``{key: [a, b]}``: any of (the core's mapping semantics);
* ``{key: {"$op": value}}`` with ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``,
  ``$nin``, ``$exists`` (LangChain's operator language) and ``$contains`` (a list-valued
  field holds the value);
* ``{"$and": [...]}``, ``{"$or": [...]}``, ``{"$not": {...}}`` combining such mappings;
* a ``qdrant_client.models.Filter``, passed through unchanged;
* a callable carrying its declarative form in a ``filter_mapping`` attribute (what the
  LlamaIndex adapter passes: a Python predicate for the in-process index, this for Qdrant).

Qdrant's own rule applies to list-valued metadata: a condition holds if it holds for any
element (so ``{"tags": "a"}`` matches ``tags == ["a", "b"]``). So ``$contains`` is list
membership; on a string field it is equality, not the in-process index's substring test (that
needs a Qdrant full-text index: pass a ``models.Filter`` with ``MatchText``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from qdrant_client import models

__all__ = ["METADATA_KEY", "has_ids", "to_qdrant_filter"]

METADATA_KEY = "metadata"
_RANGE_OPS = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}
_LEAF_OPS = {"$eq", "$ne", "$in", "$nin", "$exists", "$contains", *_RANGE_OPS}
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
Condition = Any  # a qdrant_client.models condition (FieldCondition, Filter, IsEmpty...)


def to_qdrant_filter(filter: Any) -> models.Filter | None:
    """Return the Qdrant ``Filter`` for the core ``filter`` argument (None for no filter).

    Raises:
        TypeError: For a plain callable (Python code cannot run inside Qdrant) or another type.
        ValueError: For an unknown ``$`` operator or a value the operator cannot take.
    """
    if filter is None or isinstance(filter, models.Filter):
        return filter
    mapping = getattr(filter, "filter_mapping", None) if callable(filter) else filter
    if callable(filter) and mapping is None:
        msg = (
            "QdrantIndex applies filters inside Qdrant, where a Python callable cannot run. "
            "Pass a mapping such as {'topic': 'sql'} or {'year': {'$gte': 2020}}, or a "
            "qdrant_client.models.Filter."
        )
        raise TypeError(msg)
    if not isinstance(mapping, Mapping):
        msg = (
            "filter must be None, a mapping ({key: value}, {key: {'$op': value}}, {'$and': [...]}"
            f"...) or a qdrant_client.models.Filter; got {type(mapping).__name__}."
        )
        raise TypeError(msg)
    return _conjunction(mapping)


def has_ids(point_ids: list[str]) -> models.Filter:
    """A filter keeping only these point ids (the core's ``ids=`` restriction)."""
    return models.Filter(must=[models.HasIdCondition(has_id=point_ids)])


def _conjunction(mapping: Mapping[str, Any]) -> models.Filter:
    must: list[Condition] = []
    for key, value in mapping.items():
        if not isinstance(key, str):
            msg = f"filter keys must be strings; got {key!r}."
            raise TypeError(msg)
        if key.startswith("$"):
            must.append(_logical(key, value))
        else:
            must.append(_field(key, value))
    return models.Filter(must=must)


def _logical(op: str, value: Any) -> models.Filter:
    if op == "$not":
        if not isinstance(value, Mapping):
            msg = f"$not takes one filter mapping; got {value!r}."
            raise ValueError(msg)
        return models.Filter(must_not=[_conjunction(value)])
    if op not in ("$and", "$or"):
        msg = f"unknown logical operator {op!r}; QdrantIndex translates $and, $or and $not."
        raise ValueError(msg)
    if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
        msg = f"{op} takes a list of filter mappings; got {value!r}."
        raise ValueError(msg)
    parts = [_conjunction(v) for v in value]
    if op == "$and":
        return models.Filter(must=parts)
    return models.Filter(should=parts or [_nothing()])  # an empty "$or" holds for nothing


def _field(key: str, value: Any) -> Condition:
    path = _payload_key(key)
    if isinstance(value, Mapping) and value and all(str(k).startswith("$") for k in value):
        return models.Filter(must=[_operator(path, key, op, v) for op, v in value.items()])
    if isinstance(value, list | tuple | set | frozenset):
        return _any_of(path, key, list(value))
    return _equals(path, key, value)


def _operator(path: str, key: str, op: str, value: Any) -> Condition:
    if op not in _LEAF_OPS:
        msg = (
            f"filter operator {op!r} on {key!r} has no Qdrant translation; QdrantIndex "
            f"translates {sorted(_LEAF_OPS)} and $and/$or/$not."
        )
        raise ValueError(msg)
    if op in ("$eq", "$contains"):  # on a list field, Qdrant's equality means "contains"
        return _equals(path, key, value)
    if op == "$ne":
        return models.Filter(must_not=[_equals(path, key, value)])
    if op in ("$in", "$nin"):
        if not isinstance(value, list | tuple | set | frozenset):
            msg = f"{op} on {key!r} takes a list of values; got {value!r}."
            raise ValueError(msg)
        found = _any_of(path, key, list(value))
        return found if op == "$in" else models.Filter(must_not=[found])
    if op == "$exists":
        if not isinstance(value, bool):
            msg = f"$exists on {key!r} takes True or False; got {value!r}."
            raise ValueError(msg)
        empty = models.IsEmptyCondition(is_empty=models.PayloadField(key=path))
        return models.Filter(must_not=[empty]) if value else empty
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{op} on {key!r} compares numbers in Qdrant; got {value!r}."
        raise ValueError(msg)
    return models.FieldCondition(key=path, range=models.Range(**{_RANGE_OPS[op]: value}))


def _equals(path: str, key: str, value: Any) -> Condition:
    if value is None:
        return models.IsNullCondition(is_null=models.PayloadField(key=path))
    if isinstance(value, bool | int | str):
        return models.FieldCondition(key=path, match=models.MatchValue(value=value))
    if isinstance(value, float):  # MatchValue takes no floats: an exact range instead
        return models.FieldCondition(key=path, range=models.Range(gte=value, lte=value))
    msg = (
        f"filter value {value!r} for {key!r} cannot be matched in Qdrant: use a str, int, "
        "float, bool or None (a list means 'any of')."
    )
    raise ValueError(msg)


def _any_of(path: str, key: str, values: list[Any]) -> Condition:
    if values and all(isinstance(v, str) for v in values):
        return models.FieldCondition(key=path, match=models.MatchAny(any=values))
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return models.FieldCondition(key=path, match=models.MatchAny(any=values))
    # Mixed, float, bool or empty lists: one equality per value (an empty list matches nothing).
    return models.Filter(should=[_equals(path, key, v) for v in values] or [_nothing()])


def _nothing() -> models.Filter:
    return models.Filter(must=[models.HasIdCondition(has_id=[])])


def _payload_key(key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f"{METADATA_KEY}.{key}"
    if '"' in key:
        msg = f"metadata key {key!r} contains a double quote, which Qdrant key paths cannot name."
        raise ValueError(msg)
    return f'{METADATA_KEY}."{key}"'
