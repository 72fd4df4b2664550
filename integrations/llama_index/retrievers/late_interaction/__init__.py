"""LlamaIndex retriever backed by late-interaction (ColBERT) search."""

from llama_index.retrievers.late_interaction.base import ColBERTRetriever

__all__ = ["ColBERTRetriever"]
