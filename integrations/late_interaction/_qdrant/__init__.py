"""Qdrant backend internals of ``QdrantIndex`` (needs qdrant-client)."""
