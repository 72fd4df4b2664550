"""LangChain integration of ``late-interaction``: ColBERT retrieval and reranking.

``ColBERTVectorStore`` is a ``VectorStore`` (indexing API, ``as_retriever``) over a
:class:`late_interaction.LateInteractionIndex`; ``ColBERTRetriever`` searches one directly;
``ColBERTReranker`` reorders another retriever's documents by exact MaxSim. Both put the score in
``metadata["relevance_score"]``.
"""

from __future__ import annotations

from late_interaction._optional import require

require("langchain_core", "langchain")

from langchain_late_interaction.document_compressors import ColBERTReranker  # noqa: E402
from langchain_late_interaction.retrievers import ColBERTRetriever  # noqa: E402
from langchain_late_interaction.vectorstores import ColBERTVectorStore  # noqa: E402

__all__ = ["ColBERTReranker", "ColBERTRetriever", "ColBERTVectorStore"]
