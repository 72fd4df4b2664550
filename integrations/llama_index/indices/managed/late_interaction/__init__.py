"""LlamaIndex managed index backed by late-interaction (ColBERT) search.

Importing this package registers the index with LlamaIndex's loader, so that
``load_index_from_storage`` can reopen a persisted ``LateInteractionManagedIndex``.
"""

from late_interaction._optional import require

require("llama_index.core", "llama-index")

from llama_index.indices.managed.late_interaction.base import (  # noqa: E402
    LateInteractionManagedIndex,
)

__all__ = ["LateInteractionManagedIndex"]
