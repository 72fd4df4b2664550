"""LlamaIndex node postprocessor that reranks by exact ColBERT MaxSim."""

from late_interaction._optional import require

require("llama_index.core", "llama-index")

from llama_index.postprocessor.late_interaction_rerank.base import ColBERTRerank  # noqa: E402

__all__ = ["ColBERTRerank"]
