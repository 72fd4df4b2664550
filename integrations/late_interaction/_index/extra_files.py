"""Extra JSON files saved in an index folder's swap (how the adapters keep their settings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from late_interaction._index.atomic import MANIFEST_FILE


def encode_extra_files(extra_files: Any) -> dict[str, str]:
    """Serialise ``{file name: JSON value}`` for ``write_index``, before anything is written.

    Raises:
        ValueError: If a name is not a plain ``*.json`` file name or is the manifest's.
        TypeError: If ``extra_files`` is not a mapping or a value is not JSON-serialisable.
    """
    if not isinstance(extra_files, dict):
        msg = f"extra_files must be a dict {{file name: JSON value}}; got {type(extra_files)}."
        raise TypeError(msg)
    out = {}
    for name, value in extra_files.items():
        plain = isinstance(name, str) and Path(name).name == name and not name.startswith(".")
        if not plain or not name.endswith(".json") or name == MANIFEST_FILE:
            msg = f"extra file name {name!r} must be a plain '*.json' name, not {MANIFEST_FILE}."
            raise ValueError(msg)
        try:
            out[name] = json.dumps(value, indent=2, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            msg = f"extra file {name!r} must hold JSON-serialisable values ({exc})."
            raise TypeError(msg) from exc
    return out
