"""Encoding progress bars: on by default for long jobs, settable through both adapters."""

from __future__ import annotations

import pytest

TEXTS = ["the cat sat on the mat", "paris is the capital of france", "dogs run fast"]


def _bar_shown(capsys, build) -> bool:
    capsys.readouterr()
    build()
    return "Indexing" in capsys.readouterr().err  # the core's tqdm bar for index.add


@pytest.mark.parametrize("show", [True, False, None])
def test_langchain_show_progress(capsys, tiny_pylate_model, show):
    from langchain_late_interaction import ColBERTRetriever, ColBERTVectorStore

    def retriever():
        ColBERTRetriever.from_texts(TEXTS, model=tiny_pylate_model, show_progress=show)

    def store():
        ColBERTVectorStore.from_texts(TEXTS, model=tiny_pylate_model, show_progress=show)

    # None: the core's default, a bar from 1000 texts on (so none for three).
    assert _bar_shown(capsys, retriever) is bool(show)
    assert _bar_shown(capsys, store) is bool(show)


@pytest.mark.parametrize("show", [True, False])
def test_llamaindex_show_progress(capsys, tiny_pylate_model, show):
    from llama_index.core.schema import TextNode

    from llama_index.indices.managed.late_interaction import LateInteractionManagedIndex
    from llama_index.retrievers.late_interaction import ColBERTRetriever

    nodes = [TextNode(text=t) for t in TEXTS]

    def retriever():
        ColBERTRetriever.from_defaults(nodes=nodes, model=tiny_pylate_model, show_progress=show)

    def managed():
        LateInteractionManagedIndex(nodes=nodes, model=tiny_pylate_model, show_progress=show)

    assert _bar_shown(capsys, retriever) is show
    assert _bar_shown(capsys, managed) is show


def test_long_encode_shows_a_bar_by_default(capsys, tiny_pylate_model):
    capsys.readouterr()
    tiny_pylate_model.encode_documents(["cats"] * 300, batch_size=128)  # >= 256 texts
    assert "Encoding documents" in capsys.readouterr().err
    tiny_pylate_model.encode_documents(["cats"] * 300, batch_size=128, show_progress_bar=False)
    assert "Encoding documents" not in capsys.readouterr().err
