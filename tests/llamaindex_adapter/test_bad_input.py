"""Bad input through the LlamaIndex classes: a clear error, and the index left as it was.

One case per input class the adapter takes (nodes, their text, ids and metadata, precomputed
embeddings, top-k, filters, score mode, ANN options, deletions). After each, the index holds the
same nodes, answers the same, and saves and loads.
"""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.documents import Document as LCDocument
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from late_interaction import LateInteractionIndex
from late_interaction.exceptions import DimensionMismatchError
from llama_index.retrievers.late_interaction import ColBERTRetriever

pytestmark = pytest.mark.usefixtures("no_fsync")  # saves here test content, not power loss

QUERY = "How do I catch an exception and handle the error?"


def _nest(depth):
    meta: dict = {"leaf": 1}
    for _ in range(depth):
        meta = {"k": meta}
    return meta


@pytest.fixture(scope="module")
def encoded(colbert, nodes):
    """Twelve nodes and their token matrices, encoded once for the module."""
    from llama_index.core.schema import MetadataMode

    small = nodes[:12]
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in small]
    return small, colbert.encode_documents(texts), colbert.encode_queries([QUERY])[0]


@pytest.fixture
def retriever(colbert, encoded):
    """A fresh retriever per case, built from the cached matrices (no encoding)."""
    small, matrices, _ = encoded
    built = ColBERTRetriever(LateInteractionIndex(colbert), similarity_top_k=5)
    built.insert_nodes(small, embeddings=matrices)
    return built


def observe(retriever, query):
    index = retriever.index
    docs = [(d.id, d.text, d.metadata) for d in index.get(index.ids)]
    hits = [(h.id, round(h.score, 4)) for h in index.search(query, k=5)]
    return len(index), docs, hits


def _filters(*items, **kw):
    return MetadataFilters(filters=list(items), **kw)


def _with_retriever(r, **kw):
    return ColBERTRetriever(r.index, **kw)


CASES = {
    "node_is_langchain_document": (
        lambda r: r.insert_nodes([LCDocument(page_content="x")]), TypeError,
        r"LangChain object"),
    "node_is_str": (lambda r: r.insert_nodes(["text"]), TypeError, r"TextNode\(text=text\)"),
    "node_text_surrogate": (
        lambda r: r.insert_nodes([TextNode(text="ok"), TextNode(text="caf\udce9")]), ValueError,
        r"nodes\[1\] \(its text and embedded metadata\) is not valid Unicode"),
    "node_id_surrogate": (
        lambda r: r.insert_nodes([TextNode(text="ok", id_="\ud800")]), ValueError,
        r"ids\[0\] is not valid Unicode"),
    "node_metadata_not_json": (
        lambda r: r.insert_nodes([TextNode(text="ok", metadata={"x": object()})]), ValueError,
        r"nodes\[0\] .* metadata is not JSON-serialisable"),
    "node_metadata_deep": (
        lambda r: r.insert_nodes([TextNode(text="ok", metadata={"x": _nest(5000)})]),
        ValueError, r"nested too deeply"),
    "embeddings_dim": (
        lambda r: r.insert_nodes([TextNode(text="ok")], embeddings=[np.ones((2, 3))]),
        DimensionMismatchError, r"has dim 3"),
    "embeddings_nan": (
        lambda r: r.insert_nodes([TextNode(text="ok")], embeddings=[np.full((2, 16), np.nan)]),
        ValueError, r"NaN or infinite"),
    "embeddings_overflow": (
        lambda r: r.insert_nodes([TextNode(text="ok")], embeddings=[np.full((2, 16), 1e5)]),
        ValueError, r"65504"),
    "embeddings_count": (
        lambda r: r.insert_nodes([TextNode(text="a"), TextNode(text="b")],
                                 embeddings=[np.ones((2, 16))]),
        ValueError, r"got 1 embeddings for 2 texts"),
    "top_k_zero": (
        lambda r: _with_retriever(r, similarity_top_k=0), ValueError, r"similarity_top_k"),
    "query_ef_negative": (lambda r: _with_retriever(r, query_ef=-1), ValueError, r"query_ef"),
    "exact_with_query_ef": (
        lambda r: _with_retriever(r, exact=True, query_ef=8), ValueError, r"exact=True skips"),
    "score_mode": (
        lambda r: _with_retriever(r, score_mode="cosine"), ValueError, r"score_mode must be"),
    "filters_wrong_type": (
        lambda r: _with_retriever(r, filters={"topic": "x"}), TypeError,
        r"filters must be a MetadataFilters"),
    "filter_operator_unknown": (
        lambda r: _with_retriever(r, filters=_filters(
            MetadataFilter.model_construct(key="n", value=1, operator="regex"))),
        ValueError, r"Unsupported filter operator"),
    "filter_type_mismatch": (
        lambda r: _with_retriever(r, filters=_filters(
            MetadataFilter(key="n", value="3", operator=FilterOperator.GT))).retrieve(QUERY),
        TypeError, r"same type"),
    "node_ids_not_str": (
        lambda r: _with_retriever(r, node_ids=[1, 2]), TypeError, r"node_ids\[0\] must be a str"),
    "delete_missing": (
        lambda r: r.delete_nodes([r.index.ids[0], "no-such-node"]), KeyError, r"no-such-node"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_and_changes_nothing(case, retriever, colbert, encoded, tmp_path):
    call, exc, pattern = CASES[case]
    query = encoded[2]
    before = observe(retriever, query)
    with pytest.raises(exc, match=pattern):
        call(retriever)
    assert observe(retriever, query) == before
    loaded = ColBERTRetriever(
        LateInteractionIndex.load(retriever.index.save(tmp_path / "s"), colbert)
    )
    assert observe(loaded, query) == before
