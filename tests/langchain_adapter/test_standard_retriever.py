"""LangChain's standard retriever contract, with no test overridden, over both backends."""

from __future__ import annotations

import functools
from typing import Any

from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_late_interaction import ColBERTRetriever

PASSAGES = {
    "assert": "The assert statement is a convenient way to insert debugging assertions.",
    "for": "The for statement is used to iterate over the elements of a sequence or iterable.",
    "try": "The try statement specifies exception handlers and cleanup code for statements.",
    "with": "The with statement wraps the execution of a block with context manager methods.",
    "import": "The import statement finds a module, loads and initialises it if necessary.",
}


@functools.cache
def _shared_index() -> Any:
    # Built once per session: the standard tests construct many retrievers over one index.
    from late_interaction import ColBERT, LateInteractionIndex

    index = LateInteractionIndex(ColBERT.from_pretrained())
    index.add(list(PASSAGES.values()), ids=list(PASSAGES))
    return index


class TestColBERTRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[ColBERTRetriever]:
        return ColBERTRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": _shared_index(), "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "how do I handle exceptions?"


@functools.cache
def _shared_qdrant_index() -> Any:
    # The same passages in a Qdrant collection (local mode, in memory).
    from late_interaction import ColBERT, QdrantIndex

    index = QdrantIndex(ColBERT.from_pretrained())
    index.add(list(PASSAGES.values()), ids=list(PASSAGES))
    return index


class TestColBERTRetrieverQdrantStandard(TestColBERTRetrieverStandard):
    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": _shared_qdrant_index(), "k": 2}
