from __future__ import annotations

from langchain_core.documents import BaseDocumentCompressor
from langchain_core.retrievers import BaseRetriever

import langchain_late_interaction

EXPECTED_ALL = ["ColBERTReranker", "ColBERTRetriever", "ColBERTVectorStore"]


def test_all_imports() -> None:
    assert sorted(EXPECTED_ALL) == sorted(langchain_late_interaction.__all__)
    for name in EXPECTED_ALL:
        assert getattr(langchain_late_interaction, name).__module__.startswith(
            "langchain_late_interaction."
        )


def test_base_classes() -> None:
    assert BaseRetriever in langchain_late_interaction.ColBERTRetriever.__mro__
    assert BaseDocumentCompressor in langchain_late_interaction.ColBERTReranker.__mro__
