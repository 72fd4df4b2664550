"""Restrictions of a search: the public ``filter`` argument and an ``ids`` allow-list.

``filter`` is None, a callable taking a deep copy of the metadata dict (its edits never reach the
index), or a mapping in the operator language of LangChain's vector stores (Chroma, PGVector,
Pinecone: MongoDB's query operators). Every entry of a mapping must hold:

- ``{"key": value}``: the metadata value equals ``value``; a list/tuple/set means "any of";
- ``{"key": {"$op": operand, ...}}``: every operator holds: ``$eq``, ``$ne``, ``$gt``, ``$gte``,
  ``$lt``, ``$lte``, ``$in``, ``$nin``, ``$exists`` (bool), ``$contains`` (a list value holds
  the operand, or a string value contains it);
- ``{"$and": [filter, ...]}``, ``{"$or": [filter, ...]}``, ``{"$not": filter}``.

A missing key (or a None value) satisfies only ``$ne``, ``$nin`` and ``{"$exists": False}``
(``None`` also ``$eq: None``). The mapping is checked when the search starts: an unknown operator
or a malformed operand raises, never a silently empty result. Both kinds of filter turn into one
boolean mask over document slots (:func:`restrict`), evaluated once per search call.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from late_interaction._index.snapshot import Snapshot, View

Filter = Mapping[str, Any] | Callable[[dict[str, Any]], bool] | None
Predicate = Callable[[dict[str, Any]], bool]
_MISSING = object()
_ANY_OF = (list, tuple, set, frozenset)
_ORDER = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
_FIELD_OPS = ("$eq", "$ne", *_ORDER, "$in", "$nin", "$exists", "$contains")
_LOGICAL_OPS = ("$and", "$or", "$not")
_FIX = "see the filter argument of LateInteractionIndex.search"


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped metadata (dicts, lists, scalars): faster than deepcopy."""
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_copy(v) for v in value]
    return value


def filter_predicate(filter: Filter) -> Predicate | None:
    """Turn the public ``filter`` argument into a predicate on a metadata dict.

    Raises:
        TypeError: If ``filter`` is neither None, a mapping nor a callable, or an operand has
            the wrong type.
        ValueError: If the mapping uses an unknown operator or a malformed condition.
    """
    if filter is None:
        return None
    if callable(filter):
        # A deep copy: the predicate may edit what it gets, never the index.
        return lambda meta: bool(filter(_json_copy(meta)))
    if not isinstance(filter, Mapping):
        msg = (
            "filter must be None, a mapping ({key: value}, {key: {'$gt': 3}}, {'$or': [...]}) or "
            f"a callable taking the metadata dict; got {type(filter).__name__}."
        )
        raise TypeError(msg)
    return _compile(filter, "filter")


def _compile(filter: Any, where: str) -> Predicate:
    if not isinstance(filter, Mapping):
        msg = f"{where} must be a mapping (a filter); got {type(filter).__name__}. {_FIX}."
        raise TypeError(msg)
    parts = []
    for key, condition in filter.items():
        if not isinstance(key, str):
            msg = f"{where} keys must be strings; got {key!r}."
            raise TypeError(msg)
        if key.startswith("$"):
            parts.append(_logical(key, condition, where))
        else:
            parts.append(_field(key, condition))
    return lambda meta: all(part(meta) for part in parts)


def _logical(op: str, operand: Any, where: str) -> Predicate:
    if op not in _LOGICAL_OPS:
        hint = " (field operators go inside a key: {key: {op: value}})" if op in _FIELD_OPS else ""
        msg = (
            f"unknown filter operator {op!r} in {where}{hint}; at the top of a filter use "
            f"{', '.join(_LOGICAL_OPS)} or a metadata key. {_FIX}."
        )
        raise ValueError(msg)
    if op == "$not":
        inner = _compile(operand, f"{where}['$not']")
        return lambda meta: not inner(meta)
    if not isinstance(operand, (list, tuple)) or not operand:
        msg = f"{where}[{op!r}] must be a non-empty list of filters; got {operand!r}."
        raise ValueError(msg)
    parts = [_compile(f, f"{where}[{op!r}][{i}]") for i, f in enumerate(operand)]
    if op == "$and":
        return lambda meta: all(p(meta) for p in parts)
    return lambda meta: any(p(meta) for p in parts)


def _field(key: str, condition: Any) -> Predicate:
    operators = isinstance(condition, Mapping) and any(str(k).startswith("$") for k in condition)
    if not operators:
        allowed = list(condition) if isinstance(condition, _ANY_OF) else [condition]
        tests = [_operator(key, "$in", allowed)]
    else:
        plain = [k for k in condition if not str(k).startswith("$")]
        if plain:
            msg = (
                f"filter key {key!r} mixes operators and plain keys {plain!r}; use only "
                f"operators ({{'$gte': 1, '$lt': 5}}) or only a value to compare with. {_FIX}."
            )
            raise ValueError(msg)
        tests = [_operator(key, op, operand) for op, operand in condition.items()]
    return lambda meta: all(test(meta.get(key, _MISSING)) for test in tests)


def _operator(key: str, op: str, operand: Any) -> Callable[[Any], bool]:
    """The test of one ``{key: {op: operand}}`` on a metadata value (``_MISSING`` if absent)."""
    if op not in _FIELD_OPS:
        msg = (
            f"unknown filter operator {op!r} on key {key!r}; supported: "
            f"{', '.join(_FIELD_OPS)} (and {', '.join(_LOGICAL_OPS)} around filters). {_FIX}."
        )
        raise ValueError(msg)
    if op in ("$in", "$nin"):
        if not isinstance(operand, _ANY_OF):
            msg = f"{op} on key {key!r} takes a list of values; got {operand!r}."
            raise TypeError(msg)
        values = list(operand)
        hit = lambda v: v is not _MISSING and any(v == a for a in values)  # noqa: E731
        return hit if op == "$in" else (lambda v: not hit(v))
    if op in ("$eq", "$ne"):
        equal = lambda v: (None if v is _MISSING else v) == operand  # noqa: E731
        return equal if op == "$eq" else (lambda v: not equal(v))
    if op == "$exists":
        if not isinstance(operand, bool):
            msg = f"$exists on key {key!r} takes True or False; got {operand!r}."
            raise TypeError(msg)
        return lambda v: (v is not _MISSING) == operand
    if op == "$contains":
        return lambda v: isinstance(v, (list, str)) and _contains(v, operand, key)
    if operand is None or isinstance(operand, (bool, Mapping, *_ANY_OF)):
        msg = f"{op} on key {key!r} compares with a number or a string; got {operand!r}."
        raise TypeError(msg)
    compare = _ORDER[op]

    def ordered(value: Any) -> bool:
        if value is _MISSING or value is None:
            return False
        try:
            return bool(compare(value, operand))
        except TypeError:
            msg = (
                f"filter {key!r} {op} {operand!r} cannot compare with the metadata value "
                f"{value!r} ({type(value).__name__}); give the operand the metadata's type."
            )
            raise TypeError(msg) from None

    return ordered


def _contains(value: list | str, operand: Any, key: str) -> bool:
    if isinstance(value, str) and not isinstance(operand, str):
        msg = f"$contains on key {key!r}: the value is a string; the operand {operand!r} is not."
        raise TypeError(msg)
    return operand in value


def restrict(
    snap: Snapshot, slots: Sequence[int | None] | None, predicate: Predicate | None
) -> View:
    """Compute the allowed-slot mask for an ``ids`` restriction (``slots``) and a predicate.

    Args:
        snap: The snapshot searched.
        slots: Slots of the allowed ids (None for an id not in the index), or None for no
            ``ids`` restriction.
        predicate: From :func:`filter_predicate`, or None.
    """
    if slots is None and predicate is None:
        return View(snap, None)
    allowed = snap.live.copy()
    if slots is not None:
        mask = np.zeros_like(allowed)
        mask[[s for s in slots if s is not None and s < mask.shape[0]]] = True
        allowed &= mask
    if predicate is not None:
        # Performance note: one Python call per allowed document; a batch evaluates it once.
        metadatas = snap.docs.metadatas
        for slot in np.flatnonzero(allowed).tolist():
            if not predicate(metadatas[slot]):
                allowed[slot] = False
    return View(snap, allowed)
