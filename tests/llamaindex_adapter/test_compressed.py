"""The LlamaIndex adapters over a compressed core index (``IndexConfig(nbits=2)``).

The retriever contract, rankings against brute-force MaxSim over the decoded vectors, filters,
writes after the codec was trained, and persistence, for ``ColBERTRetriever`` and
``LateInteractionManagedIndex``. Exact scans are off, so searches take the centroid path.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from llama_index.core import Document, StorageContext, load_index_from_storage
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters
from tests.llamaindex_adapter.conftest import make_nodes
from tests.llamaindex_adapter.contract import RetrieverContract

from late_interaction import IndexConfig
from late_interaction._index import search as search_module
from llama_index.indices.managed.late_interaction import LateInteractionManagedIndex
from llama_index.retrievers.late_interaction import ColBERTRetriever

QUERY = "How do I catch an exception and handle the error?"
COMPRESSED = IndexConfig(nbits=2, exact_scan_tokens=0, exact_scan_fraction=0.0)
# Candidates wide enough to reach every document: the result must equal brute force.
WIDE = dataclasses.replace(COMPRESSED, n_probe=10_000, n_full_scores=10_000)


@pytest.fixture(scope="module")
def compressed_index(colbert):
    index = ColBERTRetriever.from_defaults(nodes=make_nodes(), model=colbert, index_config=WIDE)
    assert index.index._state.store.codec is not None  # really compressed
    return index.index


@pytest.fixture
def counted(monkeypatch):
    """Counts calls of the centroid candidate stage (proves the compressed path ran)."""
    calls = []
    real = search_module.centroid_candidates
    monkeypatch.setattr(
        search_module, "centroid_candidates", lambda *a, **kw: calls.append(1) or real(*a, **kw)
    )
    return calls


def decoded_ranking(index, query: str, keep=lambda metadata: True) -> list[tuple[str, float]]:
    """Reference: per live document, mean over query rows of the best dot with its decoded rows."""
    q = index.model.encode_queries([query])[0]
    snap = index._state.snap
    scored = []
    for slot in np.flatnonzero(snap.live).tolist():
        if not keep(snap.docs.metadatas[slot]):
            continue
        rows = snap.tokens[snap.offsets[slot] : snap.offsets[slot + 1]]  # decoded here
        scored.append((snap.docs.ids[slot], float((q @ rows.T).max(axis=1).mean())))
    return sorted(scored, key=lambda pair: -pair[1])


class TestCompressedRetrieverContract(RetrieverContract):
    @pytest.fixture(autouse=True)
    def _setup(self, compressed_index):
        self._index = compressed_index

    @property
    def retriever_constructor(self):
        return ColBERTRetriever

    @property
    def retriever_constructor_params(self):
        return {"index": self._index}

    @property
    def retriever_query_example(self):
        return QUERY

    @property
    def corpus_size(self):
        return len(self._index)

    @property
    def filters_example(self):
        filters = MetadataFilters(
            filters=[MetadataFilter(key="tags", value="even", operator=FilterOperator.CONTAINS)]
        )
        return filters, lambda m: "even" in m["tags"]


def test_ranking_equals_brute_force_over_decoded_vectors(compressed_index, counted):
    got = ColBERTRetriever(compressed_index, similarity_top_k=6).retrieve(QUERY)
    reference = decoded_ranking(compressed_index, QUERY)[:6]
    assert [n.node.node_id for n in got] == [i for i, _ in reference]
    np.testing.assert_allclose([n.score for n in got], [s for _, s in reference], atol=1e-5)
    assert counted


@pytest.mark.parametrize(
    ("flt", "keep"),
    [
        (MetadataFilter(key="rank", value=5.0, operator=FilterOperator.GTE), "rank"),
        (MetadataFilter(key="tags", value="odd", operator=FilterOperator.CONTAINS), "tags"),
    ],
)
def test_filters_match_brute_force(compressed_index, counted, flt, keep):
    predicate = {
        "rank": lambda m: m["rank"] >= 5.0,
        "tags": lambda m: "odd" in m["tags"],
    }[keep]
    retriever = ColBERTRetriever(
        compressed_index, similarity_top_k=5, filters=MetadataFilters(filters=[flt])
    )
    got = retriever.retrieve(QUERY)
    reference = decoded_ranking(compressed_index, QUERY, predicate)[:5]
    assert [n.node.node_id for n in got] == [i for i, _ in reference]
    assert counted


def test_writes_after_training_keep_the_codec_and_stay_exact(colbert, counted):
    small = make_nodes(step=13)  # 9 passages; the codec is trained on the first 6
    retriever = ColBERTRetriever.from_defaults(
        nodes=small[:6], model=colbert, similarity_top_k=20, index_config=WIDE
    )
    index = retriever.index
    checksum = index._state.store.codec.checksum()
    retriever.insert_nodes(small[6:])
    retriever.delete_nodes([small[0].node_id])
    changed = small[5].model_copy(update={"text": "Completely different words about lambda."})
    retriever.insert_nodes([changed])  # upsert
    assert index._state.store.codec.checksum() == checksum  # encoded against the old codec
    got = retriever.retrieve("anonymous lambda function")
    reference = decoded_ranking(index, "anonymous lambda function")
    assert [n.node.node_id for n in got] == [i for i, _ in reference]
    assert {n.node.node_id: n.node.text for n in got}[changed.node_id] == changed.text
    assert small[0].node_id not in {n.node.node_id for n in got}
    assert counted


def test_persist_round_trip_keeps_the_codec(compressed_index, tmp_path):
    retriever = ColBERTRetriever(compressed_index, similarity_top_k=4)
    retriever.persist(tmp_path / "r")
    loaded = ColBERTRetriever.from_persist_dir(tmp_path / "r", model=compressed_index.model)
    assert loaded.index.config.nbits == 2
    assert loaded.index._state.store.codec.checksum() == (
        compressed_index._state.store.codec.checksum()
    )
    assert [(n.node.node_id, n.score) for n in loaded.retrieve(QUERY)] == [
        (n.node.node_id, n.score) for n in retriever.retrieve(QUERY)
    ]


def test_managed_index_with_compression(colbert, tmp_path, counted):
    texts = [n.text for n in make_nodes(step=8)]
    docs = [Document(text=t, id_=f"d{i}") for i, t in enumerate(texts)]
    index = LateInteractionManagedIndex.from_documents(docs, model=colbert, index_config=WIDE)
    core = index.core_index
    assert core._state.store.codec is not None
    query = "iterate over a list with a for loop"
    got = index.as_retriever(similarity_top_k=3).retrieve(query)
    reference = decoded_ranking(core, query)[:3]
    assert [n.node.node_id for n in got] == [i for i, _ in reference]
    index.insert(Document(text="A dog ran in the water.", id_="dog"))
    index.delete_ref_doc("d0", delete_from_docstore=True)
    got = index.as_retriever(similarity_top_k=3).retrieve("dog water")
    assert [n.node.node_id for n in got] == [i for i, _ in decoded_ranking(core, "dog water")[:3]]
    assert "d0" not in {d.metadata["ref_doc_id"] for d in core.get(core.ids)}
    index.storage_context.persist(persist_dir=tmp_path / "storage")
    loaded = load_index_from_storage(StorageContext.from_defaults(persist_dir=tmp_path / "storage"))
    assert loaded.core_index.config.nbits == 2
    again = loaded.as_retriever(similarity_top_k=3).retrieve("dog water")
    assert [(n.node.node_id, n.score) for n in again] == [(n.node.node_id, n.score) for n in got]
    assert counted
