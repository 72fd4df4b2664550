"""LlamaIndex node postprocessor that reranks by exact ColBERT MaxSim."""

from llama_index.postprocessor.late_interaction_rerank.base import ColBERTRerank

__all__ = ["ColBERTRerank"]
