"""late_interaction: ColBERT-style late-interaction encoding, indexing and exact MaxSim scoring.

Framework-free core shared by the LlamaIndex and LangChain adapters. Importing this package is
cheap: torch, transformers and voyager load only when a name that needs them is first used.

Example:
    >>> from late_interaction import maxsim
    >>> import numpy as np
    >>> float(maxsim(np.eye(2), [np.eye(2)])[0])
    2.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from late_interaction._version import __version__
from late_interaction.exceptions import (
    CheckpointFormatError,
    DimensionMismatchError,
    EmptyIndexError,
    IndexFormatError,
    LateInteractionError,
    ModelMismatchError,
)
from late_interaction.scoring import maxsim
from late_interaction.types import RerankResult, SearchHit, StoredDocument

if TYPE_CHECKING:  # pragma: no cover
    from late_interaction.encoder import ColBERT
    from late_interaction.searcher import LateInteractionIndex

__all__ = [
    "CheckpointFormatError",
    "ColBERT",
    "DimensionMismatchError",
    "EmptyIndexError",
    "IndexFormatError",
    "LateInteractionError",
    "LateInteractionIndex",
    "ModelMismatchError",
    "RerankResult",
    "SearchHit",
    "StoredDocument",
    "__version__",
    "maxsim",
]

# PEP 562: torch-backed names resolve on first use, keeping `import late_interaction` light.
_LAZY = {"ColBERT": "late_interaction.encoder", "LateInteractionIndex": "late_interaction.searcher"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    msg = f"module 'late_interaction' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(__all__)
