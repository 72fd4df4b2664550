"""Bad input through the LangChain classes: a clear error, and the store left as it was.

One case per input class the adapter takes (texts, ids, metadata, documents, k, filters, search
options, search types). After each, the store has the same documents and answers the same, and
still saves and loads. Operator filters reach the core: ``$gt``, ``$in``, ``$and``... select what
plain Python selects.
"""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from llama_index.core.schema import TextNode

from langchain_late_interaction import ColBERTRetriever, ColBERTVectorStore
from late_interaction import LateInteractionIndex

pytestmark = pytest.mark.usefixtures("no_fsync")  # saves here test content, not power loss

QUERY = "How do I handle an exception?"
TOPICS = ("exceptions", "modules")


def _nest(depth):
    meta: dict = {"leaf": 1}
    for _ in range(depth):
        meta = {"k": meta}
    return meta


@pytest.fixture(scope="module")
def encoded(colbert, documents):
    """The first 12 documents and their token matrices, encoded once for the module."""
    docs = documents[:12]
    return docs, colbert.encode_documents([d.page_content for d in docs])


@pytest.fixture(scope="module")
def query(colbert):
    return colbert.encode_queries([QUERY])[0]


@pytest.fixture
def store(colbert, encoded):
    """A fresh store per case (built from the cached matrices: no encoding)."""
    docs, matrices = encoded
    index = LateInteractionIndex(colbert)
    index.add_embeddings(
        matrices,
        [d.page_content for d in docs],
        ids=[d.id for d in docs],
        metadatas=[d.metadata for d in docs],
    )
    return ColBERTVectorStore(index)


def observe(store, query):
    """What a user sees: documents and the hits for ``query`` (its token matrix, encoded once)."""
    index = store.index
    docs = [(d.id, d.text, d.metadata) for d in index.get(index.ids)]
    hits = [(h.id, round(h.score, 4)) for h in index.search(query, k=5)]
    return len(index), docs, hits


def _retriever(store, **kw):
    return ColBERTRetriever(index=store.index, **kw)


CASES = {
    "text_not_str": (lambda s: s.add_texts(["ok", 3]), TypeError, r"texts\[1\] must be a str"),
    "text_surrogate": (
        lambda s: s.add_texts(["ok", "caf\udce9"]), ValueError, r"texts\[1\] is not valid Unicode"),
    "metadata_not_json": (
        lambda s: s.add_texts(["a"], metadatas=[{"when": object()}]), ValueError,
        r"metadatas\[0\] is not JSON-serialisable"),
    "metadata_deep": (
        lambda s: s.add_texts(["a"], metadatas=[_nest(5000)]), ValueError, r"nested more than"),
    "metadata_surrogate": (
        lambda s: s.add_texts(["a"], metadatas=[{"t": "\ud800"}]), ValueError,
        r"metadatas\[0\]\['t'\] is not valid Unicode"),
    "ids_count": (
        lambda s: s.add_texts(["a", "b"], ids=["x"]), ValueError, r"got 1 ids for 2 texts"),
    "unexpected_kwarg": (
        lambda s: s.add_texts(["a"], colour="red"), TypeError, r"unexpected argument"),
    "document_is_llama_node": (
        lambda s: s.add_documents([TextNode(text="x")]), TypeError, r"LlamaIndex object"),
    "document_is_str": (
        lambda s: s.add_documents(["text"]), TypeError, r"Wrap a text: Document"),
    "document_id_surrogate": (
        lambda s: s.add_documents([Document(page_content="a", id="\udc00")]), ValueError,
        r"ids\[0\] is not valid Unicode"),
    "k_zero": (lambda s: s.similarity_search(QUERY, k=0), ValueError, r"k must be a positive"),
    "search_kwarg_unknown": (
        lambda s: s.similarity_search(QUERY, fetch_k=3), TypeError,
        r"Unsupported search argument"),
    "filter_unknown_operator": (
        lambda s: s.similarity_search(QUERY, filter={"n": {"$like": "a%"}}), ValueError,
        r"unknown filter operator '\$like' on key 'n'"),
    "filter_in_not_list": (
        lambda s: s.as_retriever(search_kwargs={"filter": {"topic": {"$in": "errors"}}}).invoke(
            QUERY), TypeError, r"\$in on key 'topic' takes a list"),
    "retriever_filter_checked_at_construction": (
        lambda s: _retriever(s, filter={"$xor": [{"n": 1}]}), ValueError,
        r"unknown filter operator '\$xor'"),
    "retriever_invoke_filter": (
        lambda s: _retriever(s).invoke(QUERY, filter={"n": {"$gt": "3"}}), TypeError,
        r"cannot compare with the metadata value"),
    "retriever_k": (lambda s: _retriever(s, k=-2), ValueError, r"k must be a positive integer"),
    "score_threshold_not_number": (
        lambda s: _retriever(s, search_kwargs={"score_threshold": "high"}), TypeError,
        r"score_threshold must be a number"),
    "search_type_unknown": (
        lambda s: _retriever(s, search_type="hybrid"), ValueError, r"search_type must be one of"),
    "search_type_mmr": (
        lambda s: s.as_retriever(search_type="mmr"), ValueError, r"'mmr' is not supported"),
    "search_by_vector": (
        lambda s: s.similarity_search_by_vector([0.1, 0.2]), NotImplementedError,
        r"token matrix"),
    "delete_kwarg": (lambda s: s.delete(["x"], hard=True), TypeError, r"delete takes ids"),
    "save_callable_filter": (
        lambda s: _retriever(s, filter=lambda m: True).save("never-written"), TypeError,
        r"filter is a callable, which cannot be saved"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_and_changes_nothing(case, store, colbert, query, tmp_path):
    call, exc, pattern = CASES[case]
    before = observe(store, query)
    with pytest.raises(exc, match=pattern):
        call(store)
    assert observe(store, query) == before
    loaded = ColBERTVectorStore(LateInteractionIndex.load(store.save(tmp_path / "s"), colbert))
    assert observe(loaded, query) == before


FILTERS = {
    "gt": ({"n": {"$gt": 20}}, lambda m: m["n"] > 20),
    "in": ({"topic": {"$in": ["exceptions", "modules"]}}, lambda m: m["topic"] in TOPICS),
    "and_or": (
        {"$and": [{"odd": True}, {"$or": [{"n": {"$lt": 9}}, {"n": {"$gte": 30}}]}]},
        lambda m: m["odd"] and (m["n"] < 9 or m["n"] >= 30),
    ),
    "ne": ({"odd": {"$ne": True}}, lambda m: m["odd"] is not True),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FILTERS))
def test_operator_filters_reach_the_core(case, corpus_retriever, documents):
    """The issue: $gt & co. matched nothing (0 hits where 28 documents matched)."""
    flt, predicate = FILTERS[case]
    expected = {d.id for d in documents if predicate(d.metadata)}
    assert 0 < len(expected) < len(documents)
    retriever = ColBERTRetriever(index=corpus_retriever.index, k=len(documents), filter=flt)
    assert {d.id for d in retriever.invoke(QUERY)} == expected
    store = ColBERTVectorStore(corpus_retriever.index)
    via_store = store.as_retriever(search_kwargs={"k": len(documents), "filter": flt})
    assert {d.id for d in via_store.invoke(QUERY)} == expected
