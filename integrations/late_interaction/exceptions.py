"""Errors raised by late_interaction.

Hierarchy::

    LateInteractionError(Exception)
    ├── CheckpointFormatError            a checkpoint folder is not in a format we load
    ├── CheckpointNotFoundError(…, FileNotFoundError)   no such folder, hub repo or revision
    ├── EmptyIndexError                  search on an index with no live documents
    ├── IndexFormatError                 an index folder is missing, damaged or of another version
    ├── ModelMismatchError               an index is opened with a model other than its own
    └── DimensionMismatchError(…, ValueError)   embedding dims differ (also a ValueError)

Every message says what was expected, what was found and how to fix it. A hub download that
fails for want of a network (or with ``HF_HUB_OFFLINE=1``) raises the builtin ``ConnectionError``:
the checkpoint may well exist.
"""

from __future__ import annotations

__all__ = [
    "CheckpointFormatError",
    "CheckpointNotFoundError",
    "DimensionMismatchError",
    "EmptyIndexError",
    "IndexFormatError",
    "LateInteractionError",
    "ModelMismatchError",
]


class LateInteractionError(Exception):
    """Base class of every error this package raises on purpose."""


class CheckpointFormatError(LateInteractionError):
    """A checkpoint is not in a format we can load (PyLate, Stanford colbert-ai, plain HF/ST)."""


class CheckpointNotFoundError(LateInteractionError, FileNotFoundError):
    """No checkpoint at that path, or no such repository or revision on the Hugging Face Hub."""


class EmptyIndexError(LateInteractionError):
    """The index holds no live documents, so there is nothing to search."""


class IndexFormatError(LateInteractionError):
    """An index folder is missing files, damaged, or written by an unsupported format version.

    Args:
        message: What is wrong and how to fix it.
        format_version: The format version found on disk, if one could be read.
    """

    def __init__(self, message: str, format_version: int | None = None) -> None:
        super().__init__(message)
        self.format_version = format_version


class ModelMismatchError(LateInteractionError):
    """An index was opened with a model whose fingerprint differs from the one that built it."""


class DimensionMismatchError(LateInteractionError, ValueError):
    """Embedding dimensions differ (for example query vs index)."""
