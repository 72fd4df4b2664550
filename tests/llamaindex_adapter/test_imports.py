"""The public surface of the two LlamaIndex import roots: pinned __all__, base classes, typing."""

from __future__ import annotations

from pathlib import Path

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.indices.managed.base import BaseManagedIndex
from llama_index.core.postprocessor.types import BaseNodePostprocessor

import llama_index.indices.managed.late_interaction as managed_root
import llama_index.postprocessor.late_interaction_rerank as rerank_root
import llama_index.retrievers.late_interaction as retriever_root


def test_all_is_pinned():
    assert retriever_root.__all__ == ["ColBERTRetriever"]
    assert rerank_root.__all__ == ["ColBERTRerank"]
    assert managed_root.__all__ == ["LateInteractionManagedIndex"]
    for root in (retriever_root, rerank_root, managed_root):
        public = {n for n in vars(root) if not n.startswith("_") and n not in {"base", "require"}}
        assert public == set(root.__all__), root.__name__


def test_base_classes_and_py_typed():
    assert BaseRetriever in retriever_root.ColBERTRetriever.__mro__
    assert BaseNodePostprocessor in rerank_root.ColBERTRerank.__mro__
    assert BaseManagedIndex in managed_root.LateInteractionManagedIndex.__mro__
    for root in (retriever_root, rerank_root, managed_root):
        assert (Path(root.__file__).parent / "py.typed").is_file(), root.__name__
