"""late_interaction: ColBERT-style late-interaction encoding, indexing and exact MaxSim scoring.

Framework-free core shared by the LlamaIndex and LangChain adapters. Importing this package is
cheap: torch, transformers and voyager load only when a name that needs them is first used.

Public names (everything else is private and may change):

* :class:`ColBERT` (encoder), :class:`LateInteractionIndex` (searchable, saveable index),
  :class:`QdrantIndex` (the same index in a Qdrant collection; needs the ``qdrant`` extra),
  :class:`SearchableIndex` (the contract both satisfy), :func:`maxsim` (exact scoring),
  :func:`resolve_model` (the model resolution adapters use);
* :class:`EncoderConfig`, :class:`IndexConfig` (settings), :class:`Encoder` (the encoder seam);
* result types :class:`SearchHit`, :class:`RerankResult`, :class:`StoredDocument`,
  :class:`Explanation` and :class:`TokenMatch` (``explain=True``);
* errors, all under :class:`LateInteractionError`.

Example:
    >>> from late_interaction import maxsim
    >>> import numpy as np
    >>> float(maxsim(np.eye(2), [np.eye(2)])[0])
    2.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from late_interaction._progress import quiet_in_notebooks as _quiet_in_notebooks
from late_interaction._version import __version__
from late_interaction.config import EncoderConfig, IndexConfig
from late_interaction.exceptions import (
    CheckpointFormatError,
    CheckpointNotFoundError,
    DimensionMismatchError,
    EmptyIndexError,
    IndexFormatError,
    LateInteractionError,
    ModelMismatchError,
)
from late_interaction.protocol import SearchableIndex
from late_interaction.scoring import maxsim
from late_interaction.types import (
    Encoder,
    Explanation,
    RerankResult,
    SearchHit,
    StoredDocument,
    TokenMatch,
)

if TYPE_CHECKING:  # pragma: no cover
    from late_interaction._encoding.resolve import resolve_model
    from late_interaction.encoder import ColBERT
    from late_interaction.index import LateInteractionIndex
    from late_interaction.qdrant import QdrantIndex

__all__ = [
    "CheckpointFormatError",
    "CheckpointNotFoundError",
    "ColBERT",
    "DimensionMismatchError",
    "EmptyIndexError",
    "Encoder",
    "EncoderConfig",
    "Explanation",
    "IndexConfig",
    "IndexFormatError",
    "LateInteractionError",
    "LateInteractionIndex",
    "ModelMismatchError",
    "QdrantIndex",
    "RerankResult",
    "SearchHit",
    "SearchableIndex",
    "StoredDocument",
    "TokenMatch",
    "__version__",
    "maxsim",
    "resolve_model",
]

_quiet_in_notebooks()  # tqdm's "IProgress not found" warning, in Jupyter only (see _progress)

# PEP 562: torch-, voyager- and qdrant-backed names resolve on first use, keeping `import
# late_interaction` light and working without the optional qdrant-client (QdrantIndex then raises
# an ImportError naming the extra); resolve_model imports torch only when it loads a model by name.
_LAZY = {
    "ColBERT": "late_interaction.encoder",
    "LateInteractionIndex": "late_interaction.index",
    "QdrantIndex": "late_interaction.qdrant",
    "resolve_model": "late_interaction._encoding.resolve",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    msg = f"module 'late_interaction' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(__all__)
