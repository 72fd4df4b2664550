"""ColBERTRetriever over a QdrantIndex: brute-force results, dict filters in Qdrant, writes.

The in-process backend's versions of these tests are in test_retriever.py; the standard
LangChain suite runs over both backends in test_standard_retriever.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from qdrant_client import QdrantClient

from langchain_late_interaction import ColBERTRetriever
from late_interaction import QdrantIndex

QUERY = "What happens when a module is imported?"
TOPICS = {"import", "exceptions", "try"}


@pytest.fixture(scope="module")
def retriever(colbert, documents):
    client = QdrantClient(":memory:")
    index = QdrantIndex(colbert, client=client, first_stage="mean", prefetch_limit=len(documents))
    yield ColBERTRetriever(index=index, k=4)
    client.close()


@pytest.fixture(scope="module")
def filled(retriever, documents):
    retriever.add_documents(documents)
    return retriever


@pytest.fixture(scope="module")
def brute_force(colbert, documents):
    """(ids, normalised scores) of the top-k documents passing ``keep``, by numpy MaxSim."""
    q = colbert.encode_queries([QUERY])[0]
    embs = colbert.encode_documents([d.page_content for d in documents])
    scores = np.array([(q @ e.T).max(axis=1).mean() for e in embs])

    def top(k, keep=lambda meta: True):
        kept = [i for i, d in enumerate(documents) if keep(d.metadata)]
        order = sorted(kept, key=lambda i: -scores[i])[:k]
        return [documents[i].id for i in order], scores[order]

    return top


def assert_matches(docs, expected_ids, expected_scores):
    assert [d.id for d in docs] == expected_ids
    got = [d.metadata["relevance_score"] for d in docs]
    np.testing.assert_allclose(got, expected_scores, atol=1e-5)


def test_results_match_brute_force_with_both_scores(filled, brute_force, documents):
    docs = filled.invoke(QUERY, k=5)
    assert_matches(docs, *brute_force(5))
    by_id = {d.id: d for d in documents}
    for doc in docs:
        assert doc.page_content == by_id[doc.id].page_content
        meta = dict(doc.metadata)
        rows = meta.pop("maxsim_score") / meta.pop("relevance_score")
        assert rows == pytest.approx(round(rows))  # raw MaxSim = normalised x query rows
        assert meta == by_id[doc.id].metadata


@pytest.mark.parametrize(
    ("flt", "keep"),
    [
        ({"odd": True}, lambda m: m["odd"]),
        ({"topic": ["import", "exceptions", "try"]}, lambda m: m["topic"] in TOPICS),
        ({"n": {"$gte": 5, "$lt": 20}}, lambda m: 5 <= m["n"] < 20),
        ({"$or": [{"n": {"$lte": 2}}, {"odd": False}]}, lambda m: m["n"] <= 2 or not m["odd"]),
        ({"topic": {"$nin": ["import"]}}, lambda m: m["topic"] != "import"),
    ],
)
def test_dict_filters_are_applied_in_qdrant(filled, brute_force, flt, keep):
    docs = filled.invoke(QUERY, k=6, filter=flt)
    assert_matches(docs, *brute_force(6, keep))


def test_callable_filter_is_refused_with_the_fix(filled):
    with pytest.raises(TypeError, match="callable cannot run"):
        filled.invoke(QUERY, filter=lambda meta: meta["odd"])


def test_ids_threshold_and_k(filled, documents, brute_force):
    allowed = [d.id for d in documents[:3]]
    assert sorted(d.id for d in filled.invoke(QUERY, k=10, ids=allowed)) == sorted(allowed)
    assert len(filled.invoke(QUERY)) == 4
    assert len(filled.invoke(QUERY, k=1000)) == len(documents)
    ids, scores = brute_force(len(documents))
    cut = float(scores[3] + scores[4]) / 2  # between the 4th and the 5th
    thresholded = ColBERTRetriever(
        index=filled.index, search_type="similarity_score_threshold",
        search_kwargs={"score_threshold": cut, "k": 10},
    )  # fmt: skip
    assert [d.id for d in thresholded.invoke(QUERY)] == ids[:4]


async def test_ainvoke_equals_invoke(filled):
    sync = filled.invoke(QUERY, k=3)
    asynchronous = await filled.ainvoke(QUERY, k=3)
    assert [d.id for d in asynchronous] == [d.id for d in sync]


def test_add_upsert_delete_and_save(colbert, documents):
    retriever = ColBERTRetriever(index=QdrantIndex(colbert), k=10)
    assert retriever.invoke(QUERY) == []  # an empty collection finds nothing
    ids = retriever.add_texts(["alpha passage", "beta passage"], metadatas=[{"n": 1}, {"n": 2}])
    assert len(retriever.index) == 2
    retriever.add_texts([documents[0].page_content], ids=[ids[0]], metadatas=[{"n": 3}])
    assert retriever.index.get(ids[0])[0].text == documents[0].page_content
    assert retriever.invoke(QUERY, filter={"n": 3})[0].id == ids[0]
    retriever.delete([ids[1]])
    assert [d.id for d in retriever.invoke(QUERY)] == [ids[0]]
    with pytest.raises(KeyError):
        retriever.delete(["missing"])
    with pytest.raises(TypeError, match="persists in its Qdrant collection"):
        retriever.save("folder")
