"""Reading a checkpoint's JSON files, with an error that names the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from late_interaction.exceptions import CheckpointFormatError


def read_json(path: Path) -> Any:
    """Parse a JSON file.

    Raises:
        CheckpointFormatError: If it cannot be read or parsed (names the file).
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{path}: expected a readable JSON file ({exc})."
        raise CheckpointFormatError(msg) from exc
