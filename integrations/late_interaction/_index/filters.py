"""Restrictions of a search: the public ``filter`` argument and an ``ids`` allow-list.

``filter`` is None, a mapping ``{key: value}`` (every key must equal; a list/tuple/set value means
"any of"; a missing key fails) or a callable taking a copy of the metadata dict. Both turn into
one boolean mask over document slots (:func:`restrict`), evaluated once per search call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from late_interaction._index.snapshot import Snapshot, View

Filter = Mapping[str, Any] | Callable[[dict[str, Any]], bool] | None
Predicate = Callable[[dict[str, Any]], bool]
_MISSING = object()


def filter_predicate(filter: Filter) -> Predicate | None:
    """Turn the public ``filter`` argument into a predicate on a metadata dict.

    Raises:
        TypeError: If ``filter`` is neither None, a mapping nor a callable.
    """
    if filter is None:
        return None
    if callable(filter):
        return lambda meta: bool(filter(dict(meta)))  # a copy: the predicate cannot edit the index
    if not isinstance(filter, Mapping):
        msg = (
            "filter must be None, a mapping {key: value or list of allowed values} or a callable "
            f"taking the metadata dict; got {type(filter).__name__}."
        )
        raise TypeError(msg)
    conditions = [
        (key, list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value])
        for key, value in filter.items()
    ]

    def predicate(meta: dict[str, Any]) -> bool:
        for key, allowed in conditions:
            value = meta.get(key, _MISSING)
            if value is _MISSING or not any(value == a for a in allowed):
                return False
        return True

    return predicate


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
