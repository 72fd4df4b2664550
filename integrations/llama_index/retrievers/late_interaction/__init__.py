"""LlamaIndex retriever backed by late-interaction (ColBERT) search."""

from late_interaction._optional import require

require("llama_index.core", "llama-index")

from llama_index.retrievers.late_interaction.base import ColBERTRetriever  # noqa: E402

__all__ = ["ColBERTRetriever"]
