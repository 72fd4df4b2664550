"""Fixtures for the LangChain adapter tests: a tiny locally built encoder and real passages.

The encoder and a read-only corpus retriever are built once per session (encoding is the slow
part); tests that write to an index build their own small one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.documents import Document

CORPUS = Path(__file__).resolve().parents[2] / "cookbooks" / "data" / "python_reference.jsonl"


def corpus_documents(step: int = 3) -> list[Document]:
    """Every ``step``-th passage of the sample corpus as a Document with id and metadata."""
    records = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    return [
        Document(
            id=rec["id"],
            page_content=rec["text"],
            metadata={"topic": rec["topic"], "title": rec["title"], "n": i, "odd": i % 2 == 1},
        )
        for i, rec in enumerate(records[::step])
    ]


@pytest.fixture(scope="session")
def colbert(tiny_pylate_model):
    """The tiny PyLate-format checkpoint (fast; adapter tests check translation, not quality)."""
    return tiny_pylate_model


@pytest.fixture(scope="session")
def documents() -> list[Document]:
    return corpus_documents()


@pytest.fixture(scope="session")
def corpus_retriever(colbert, documents):
    """A retriever over ``documents`` (read-only in tests: build your own to write)."""
    from langchain_late_interaction import ColBERTRetriever

    return ColBERTRetriever.from_documents(documents, model=colbert, k=4)
