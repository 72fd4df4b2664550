"""ColBERTRetriever: the contract, filters against brute force, writes, events, persistence."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.embeddings.mock_embed_model import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.retrieval import (
    RetrievalEndEvent,
    RetrievalStartEvent,
)
from llama_index.core.schema import MetadataMode, QueryBundle, TextNode
from llama_index.core.vector_stores.types import (
    ExactMatchFilter,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from tests.llamaindex_adapter.conftest import make_nodes
from tests.llamaindex_adapter.contract import EventRecorder, RetrieverContract

from late_interaction import LateInteractionIndex
from llama_index.retrievers.late_interaction import ColBERTRetriever

QUERY = "How do I catch an exception and handle the error?"


def naive_maxsim_ranking(colbert, query: str, nodes) -> list[tuple[str, float]]:
    """Independent reference: encode everything; score = mean over query rows of the best dot."""
    q = colbert.encode_queries([query])[0]
    docs = colbert.encode_documents(
        [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    )
    scores = [float((q @ d.T).max(axis=1).mean()) for d in docs]  # normalised: mean over rows
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [(nodes[i].node_id, scores[i]) for i in order]


def F(key, value, op=FilterOperator.EQ):
    return MetadataFilter(key=key, value=value, operator=op)


class TestColBERTRetrieverContract(RetrieverContract):
    # The same contract over both backends: the in-process index and a Qdrant collection.
    @pytest.fixture(autouse=True, params=["in_process", "qdrant"])
    def _setup(self, request):
        self._backend, self._request = request.param, request
        fixture = "corpus_index" if request.param == "in_process" else "qdrant_corpus_index"
        self._index = request.getfixturevalue(fixture)

    def reopen(self, retriever, folder):
        if self._backend == "in_process":
            return super().reopen(retriever, folder)
        # A Qdrant collection persists itself: reopen a copy of the local-mode folder with a
        # new client, the encoder rebuilt from the collection's metadata (model=None).
        import shutil

        from qdrant_client import QdrantClient

        from late_interaction import QdrantIndex

        with pytest.raises(TypeError, match="persists in its Qdrant collection"):
            retriever.persist(folder)
        shutil.copytree(self._request.getfixturevalue("qdrant_corpus_path"), folder)
        index = QdrantIndex(client=QdrantClient(path=folder), collection_name="nodes")
        return ColBERTRetriever(index, similarity_top_k=retriever.similarity_top_k)

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
            filters=[F("n", 1, FilterOperator.GTE), F("tags", "even", FilterOperator.CONTAINS)]
        )
        return filters, lambda m: m["n"] >= 1 and "even" in m["tags"]


# Each case: LlamaIndex filters, and the same condition written by hand on the node metadata.
FILTER_CASES = {
    "eq": (MetadataFilters(filters=[F("topic", "for")]), lambda m: m["topic"] == "for"),
    "ne": (MetadataFilters(filters=[F("n", 0, FilterOperator.NE)]), lambda m: m["n"] != 0),
    "gt": (MetadataFilters(filters=[F("rank", 9.0, FilterOperator.GT)]), lambda m: m["rank"] > 9),
    "gte": (MetadataFilters(filters=[F("n", 2, FilterOperator.GTE)]), lambda m: m["n"] >= 2),
    "lt": (MetadataFilters(filters=[F("rank", 3.5, FilterOperator.LT)]), lambda m: m["rank"] < 3.5),
    "lte": (MetadataFilters(filters=[F("n", 0, FilterOperator.LTE)]), lambda m: m["n"] <= 0),
    "in": (
        MetadataFilters(filters=[F("topic", ["try", "raise", "for"], FilterOperator.IN)]),
        lambda m: m["topic"] in {"try", "raise", "for"},
    ),
    "nin": (
        MetadataFilters(filters=[F("topic", ["try", "raise"], FilterOperator.NIN)]),
        lambda m: m["topic"] not in {"try", "raise"},
    ),
    "contains": (
        MetadataFilters(filters=[F("tags", "odd", FilterOperator.CONTAINS)]),
        lambda m: "odd" in m["tags"],
    ),
    "any": (
        MetadataFilters(filters=[F("tags", ["try", "for"], FilterOperator.ANY)]),
        lambda m: bool({"try", "for"} & set(m["tags"])),
    ),
    "all": (
        MetadataFilters(filters=[F("tags", ["odd", "try"], FilterOperator.ALL)]),
        lambda m: {"odd", "try"} <= set(m["tags"]),
    ),
    "text_match": (
        MetadataFilters(filters=[F("title", "statement", FilterOperator.TEXT_MATCH)]),
        lambda m: "statement" in m["title"],
    ),
    "text_match_insensitive": (
        MetadataFilters(filters=[F("title", "THE", FilterOperator.TEXT_MATCH_INSENSITIVE)]),
        lambda m: "the" in m["title"].lower(),
    ),
    "is_empty": (
        MetadataFilters(filters=[F("note", None, FilterOperator.IS_EMPTY)]),
        lambda m: m["note"] == "",
    ),
    "missing_key_ne": (
        MetadataFilters(filters=[F("absent", "x", FilterOperator.NE)]),
        lambda m: True,
    ),
    "legacy_exact_match": (
        MetadataFilters(filters=[ExactMatchFilter(key="topic", value="try")]),
        lambda m: m["topic"] == "try",
    ),
    "or": (
        MetadataFilters(filters=[F("n", 2), F("topic", "for")], condition=FilterCondition.OR),
        lambda m: m["n"] == 2 or m["topic"] == "for",
    ),
    "not": (
        MetadataFilters(filters=[F("n", 0), F("topic", "try")], condition=FilterCondition.NOT),
        lambda m: not (m["n"] == 0 or m["topic"] == "try"),
    ),
    "nested": (
        MetadataFilters(
            filters=[
                F("tags", "even", FilterOperator.CONTAINS),
                MetadataFilters(
                    filters=[F("n", 0), F("rank", 15.0, FilterOperator.GTE)],
                    condition=FilterCondition.OR,
                ),
            ]
        ),
        lambda m: "even" in m["tags"] and (m["n"] == 0 or m["rank"] >= 15),
    ),
}


@pytest.mark.parametrize("case", sorted(FILTER_CASES))
def test_filters_match_brute_force(case, backend_index, nodes):
    filters, predicate = FILTER_CASES[case]
    expected = {n.node_id for n in nodes if predicate(n.metadata)}
    assert 0 < len(expected) < len(nodes) or case == "missing_key_ne", "case must discriminate"
    retriever = ColBERTRetriever(backend_index, similarity_top_k=len(nodes), filters=filters)
    if case.startswith("text_match") and not isinstance(backend_index, LateInteractionIndex):
        # Qdrant has no substring match without a full-text index: refused, never ignored.
        with pytest.raises(ValueError, match="has no declarative form"):
            retriever.retrieve(QUERY)
        return
    got = retriever.retrieve(QUERY)
    assert {n.node.node_id for n in got} == expected
    exact = ColBERTRetriever(backend_index, len(nodes), filters=filters, exact=True)
    assert {n.node.node_id for n in exact.retrieve(QUERY)} == expected


def test_unsupported_operator_is_an_error(corpus_index):
    bogus = MetadataFilter.model_construct(key="topic", value="x", operator="regex")
    with pytest.raises(ValueError, match="Unsupported filter operator"):
        ColBERTRetriever(corpus_index, filters=MetadataFilters(filters=[bogus]))


def test_type_mismatch_is_an_error(corpus_index):
    retriever = ColBERTRetriever(corpus_index, filters=MetadataFilters(filters=[F("n", "1", ">")]))
    with pytest.raises(TypeError, match="same type"):
        retriever.retrieve(QUERY)


def test_exact_scores_equal_naive_maxsim(colbert, backend_index, nodes):
    reference = naive_maxsim_ranking(colbert, QUERY, nodes)[:5]
    got = ColBERTRetriever(backend_index, similarity_top_k=5, exact=True).retrieve(QUERY)
    assert [n.node.node_id for n in got] == [i for i, _ in reference]
    np.testing.assert_allclose([n.score for n in got], [s for _, s in reference], atol=2e-3)


def test_qdrant_default_search_equals_naive_maxsim(colbert, qdrant_corpus_index, nodes):
    # Qdrant's own MaxSim (no exact flag): the in-process ANN path has its test below.
    reference = naive_maxsim_ranking(colbert, QUERY, nodes)[:5]
    got = ColBERTRetriever(qdrant_corpus_index, similarity_top_k=5).retrieve(QUERY)
    assert [n.node.node_id for n in got] == [i for i, _ in reference]
    np.testing.assert_allclose([n.score for n in got], [s for _, s in reference], atol=1e-5)


def test_ann_path_matches_brute_force(colbert, nodes, monkeypatch):
    # Force the ANN stage (no exact-scan shortcut for a small corpus) and candidate pruning
    # (n_full_scores below the corpus size), with candidates wide enough to reach every token
    # and float32 graph vectors, so the result must equal brute force through the HNSW graph.
    from late_interaction import IndexConfig
    from late_interaction._index.hnsw import VoyagerTokenIndex

    config = IndexConfig(
        exact_scan_tokens=0, exact_scan_fraction=0.0, n_full_scores=8, hnsw_storage="float32",
        k_token=5000, query_ef=5000,
    )  # fmt: skip
    kw = {"nodes": nodes, "model": colbert, "similarity_top_k": 5, "index_config": config}
    retriever = ColBERTRetriever.from_defaults(**kw)
    calls = []
    query = VoyagerTokenIndex.query
    monkeypatch.setattr(
        VoyagerTokenIndex, "query", lambda self, *a: calls.append(a) or query(self, *a)
    )
    got = retriever.retrieve(QUERY)
    reference = naive_maxsim_ranking(colbert, QUERY, nodes)[:5]
    assert [n.node.node_id for n in got] == [i for i, _ in reference]
    np.testing.assert_allclose([n.score for n in got], [s for _, s in reference], atol=2e-3)
    retriever.filters = MetadataFilters(filters=[F("rank", 5.0, FilterOperator.GTE)])
    got = retriever.retrieve(QUERY)
    kept = [n for n in nodes if n.metadata["rank"] >= 5.0]
    reference = naive_maxsim_ranking(colbert, QUERY, kept)[:5]
    assert [n.node.node_id for n in got] == [i for i, _ in reference]
    assert len(calls) == 2  # both answered through the HNSW graph, not by an exact scan


def test_returns_original_nodes(backend_index, nodes):
    by_id = {n.node_id: n for n in nodes}
    for hit in ColBERTRetriever(backend_index, similarity_top_k=4).retrieve(QUERY):
        original = by_id[hit.node.node_id]
        assert isinstance(hit.node, TextNode)
        assert hit.node.text == original.text
        assert hit.node.metadata == original.metadata
        assert hit.node.relationships == original.relationships
        assert hit.node.ref_doc_id == original.ref_doc_id


def test_node_ids_and_doc_ids_restrict(backend_index, nodes):
    chosen = [nodes[0].node_id, nodes[7].node_id, nodes[20].node_id]
    got = ColBERTRetriever(backend_index, similarity_top_k=10, node_ids=chosen).retrieve(QUERY)
    assert sorted(n.node.node_id for n in got) == sorted(chosen)
    refs = {nodes[3].ref_doc_id, nodes[11].ref_doc_id}
    got = ColBERTRetriever(backend_index, similarity_top_k=39, doc_ids=sorted(refs))
    got = got.retrieve(QUERY)
    assert {n.node.node_id for n in got} == {n.node_id for n in nodes if n.ref_doc_id in refs}


@pytest.mark.parametrize("backend", ["in_process", "qdrant"])
def test_insert_delete_and_delete_ref_doc(colbert, backend):
    small = make_nodes(step=13)  # 9 passages
    if backend == "in_process":
        retriever = ColBERTRetriever.from_defaults(
            nodes=small[:6], model=colbert, similarity_top_k=20
        )
    else:
        from late_interaction import QdrantIndex

        retriever = ColBERTRetriever(QdrantIndex(colbert), similarity_top_k=20)
        retriever.insert_nodes(small[:6])
    assert {n.node.node_id for n in retriever.retrieve(QUERY)} == {n.node_id for n in small[:6]}
    retriever.insert_nodes(small[6:])
    assert {n.node.node_id for n in retriever.retrieve(QUERY)} == {n.node_id for n in small}
    retriever.delete_nodes([small[0].node_id, small[1].node_id])
    assert {n.node.node_id for n in retriever.retrieve(QUERY)} == {n.node_id for n in small[2:]}
    target = small[4].ref_doc_id
    retriever.delete_ref_doc(target)
    left = {n.node.node_id for n in retriever.retrieve(QUERY)}
    assert left == {n.node_id for n in small[2:] if n.ref_doc_id != target}
    # Upsert: re-inserting an id replaces its content.
    changed = small[5].model_copy(update={"text": "Completely different words about lambda."})
    retriever.insert_nodes([changed])
    found = {n.node.node_id: n.node for n in retriever.retrieve("anonymous lambda function")}
    assert found[changed.node_id].text == changed.text
    assert set(retriever.index.ids) == left | {changed.node_id}


def test_from_defaults_model_and_device(colbert, tiny_pylate_path, nodes):
    same = ColBERTRetriever.from_defaults(nodes=nodes[:3], model=colbert, device="cpu")
    assert same.index.model is colbert
    by_path = ColBERTRetriever.from_defaults(
        nodes=nodes[:3], model=str(tiny_pylate_path), device="cpu"
    )
    assert by_path.index.model.fingerprint() == colbert.fingerprint()
    with pytest.raises(ValueError, match="device='cuda:1' but the given encoder is on"):
        ColBERTRetriever.from_defaults(nodes=nodes[:3], model=colbert, device="cuda:1")
    with pytest.raises(ValueError, match="exact=True skips"):
        ColBERTRetriever(same.index, exact=True, query_ef=64)


def test_empty_index_returns_nothing(colbert):
    assert ColBERTRetriever(LateInteractionIndex(model=colbert)).retrieve(QUERY) == []


def test_top_k_above_corpus_returns_everything_without_warnings(corpus_index, caplog):
    # As VectorStoreIndex: a small corpus is no mistake, so nothing is logged, on no call.
    with caplog.at_level(logging.WARNING):
        retriever = ColBERTRetriever(corpus_index, similarity_top_k=1000)
        results = [retriever.retrieve(QUERY) for _ in range(3)]
    assert all(len(r) == len(corpus_index) for r in results)
    assert caplog.records == []


def test_from_defaults_sources(colbert, nodes):
    with pytest.raises(ValueError, match="exactly one"):
        ColBERTRetriever.from_defaults(model=colbert)
    with pytest.raises(ValueError, match="exactly one"):
        ColBERTRetriever.from_defaults(nodes=nodes[:2], docstore=object(), model=colbert)
    vindex = VectorStoreIndex(nodes[:5], embed_model=MockEmbedding(embed_dim=8))
    retriever = ColBERTRetriever.from_defaults(index=vindex, model=colbert, similarity_top_k=10)
    assert sorted(retriever.index.ids) == sorted(n.node_id for n in nodes[:5])
    long_doc = Document(text=" ".join(n.text for n in nodes[:4]), doc_id="long")
    retriever = ColBERTRetriever.from_defaults(documents=[long_doc], model=colbert)
    assert len(retriever.index) > 1, "a long document is split to fit document_length"
    assert {n.node.ref_doc_id for n in retriever.retrieve(QUERY)} == {"long"}


async def test_events_and_callbacks_fire(corpus_index):
    recorder, debug = EventRecorder(), LlamaDebugHandler()
    root = get_dispatcher()
    root.add_event_handler(recorder)
    try:
        retriever = ColBERTRetriever(
            corpus_index, similarity_top_k=2, callback_manager=CallbackManager([debug])
        )
        retriever.retrieve(QUERY)
        await retriever.aretrieve(QueryBundle(QUERY))
    finally:
        root.event_handlers.remove(recorder)
    kinds = [
        type(e) for e in recorder.events if isinstance(e, RetrievalStartEvent | RetrievalEndEvent)
    ]
    assert kinds == [RetrievalStartEvent, RetrievalEndEvent] * 2
    ends = [e for e in recorder.events if isinstance(e, RetrievalEndEvent)]
    assert all(len(e.nodes) == 2 for e in ends)
    assert len(debug.get_event_pairs(CBEventType.RETRIEVE)) == 2


async def test_aretrieve_runs_off_the_event_loop(corpus_index):
    seen = []

    class Probe(ColBERTRetriever):
        def _retrieve(self, query_bundle):
            seen.append(threading.current_thread() is threading.main_thread())
            return super()._retrieve(query_bundle)

    await Probe(corpus_index, similarity_top_k=1).aretrieve(QUERY)
    assert seen == [False]


def test_persist_round_trip_keeps_settings(corpus_index, tmp_path):
    filters = MetadataFilters(filters=[F("tags", "odd", FilterOperator.CONTAINS)])
    retriever = ColBERTRetriever(corpus_index, similarity_top_k=3, filters=filters, exact=True)
    retriever.persist(tmp_path / "r")
    loaded = ColBERTRetriever.from_persist_dir(tmp_path / "r", model=corpus_index.model)
    assert (loaded.similarity_top_k, loaded.filters, loaded.exact) == (3, filters, True)
    assert [n.node.node_id for n in loaded.retrieve(QUERY)] == [
        n.node.node_id for n in retriever.retrieve(QUERY)
    ]
    override = ColBERTRetriever.from_persist_dir(
        tmp_path / "r", model=corpus_index.model, similarity_top_k=1
    )
    assert len(override.retrieve(QUERY)) == 1


def test_insert_precomputed_embeddings_equals_encoding(colbert):
    small = make_nodes(step=13)
    encoded = ColBERTRetriever.from_defaults(nodes=small, model=colbert, similarity_top_k=4)
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in small]
    precomputed = ColBERTRetriever(LateInteractionIndex(model=colbert), similarity_top_k=4)
    precomputed.insert_nodes(small, embeddings=colbert.encode_documents(texts))
    a, b = precomputed.retrieve(QUERY), encoded.retrieve(QUERY)
    assert [n.node.node_id for n in a] == [n.node.node_id for n in b]
    np.testing.assert_allclose([n.score for n in a], [n.score for n in b], atol=1e-3)
    assert a[0].node.metadata == b[0].node.metadata


def test_from_defaults_passes_the_index_config_and_persist_keeps_it(colbert, tmp_path):
    from late_interaction import IndexConfig

    small = make_nodes(step=13)
    pooled = ColBERTRetriever.from_defaults(
        nodes=small, model=colbert, index_config=IndexConfig(pool_factor=2), exact=True
    )
    plain = ColBERTRetriever.from_defaults(nodes=small, model=colbert, exact=True)
    assert pooled.index.config.pool_factor == 2 and plain.index.config.pool_factor == 1
    # Pooled documents keep fewer vectors, so their exact scores differ from the plain index's.
    pooled_hits = {n.node.node_id: n.score for n in pooled.retrieve(QUERY)}
    plain_hits = {n.node.node_id: n.score for n in plain.retrieve(QUERY)}
    shared = set(pooled_hits) & set(plain_hits)
    assert shared and any(abs(pooled_hits[i] - plain_hits[i]) > 1e-3 for i in shared)
    pooled.persist(tmp_path / "p")
    loaded = ColBERTRetriever.from_persist_dir(tmp_path / "p", model=colbert)
    assert loaded.index.config.pool_factor == 2


def test_scores_are_normalised_cutoffs_apply_and_explanations_are_hidden_from_the_llm(
    corpus_index, colbert, nodes
):
    from llama_index.core.postprocessor import SimilarityPostprocessor

    normalised = ColBERTRetriever(corpus_index, similarity_top_k=5).retrieve(QUERY)
    raw = ColBERTRetriever(corpus_index, similarity_top_k=5, score_mode="maxsim").retrieve(QUERY)
    n_rows = colbert.encode_queries(QUERY)[0].shape[0]
    assert [n.node.node_id for n in raw] == [n.node.node_id for n in normalised]
    np.testing.assert_allclose([n.score for n in raw], [n.score * n_rows for n in normalised])
    cutoff = normalised[2].score  # a threshold that means the same for every query
    kept = SimilarityPostprocessor(similarity_cutoff=cutoff).postprocess_nodes(normalised)
    assert [n.node.node_id for n in kept] == [n.node.node_id for n in normalised[:3]]
    explained = ColBERTRetriever(corpus_index, similarity_top_k=2, explain=True).retrieve(QUERY)
    for hit in explained:
        exp = hit.node.metadata["explanation"]
        assert exp["normalized_score"] == pytest.approx(hit.score, abs=2e-3)
        assert len(exp["matches"]) == n_rows
        text = hit.node.get_content()  # spans index the node's text, not its metadata header
        spans = [(m["document_token"], m["document_span"]) for m in exp["matches"]]
        in_text = [(t, s) for t, s in spans if s is not None]
        assert in_text and all(0 <= s < e <= len(text) for _, (s, e) in in_text)
        for token, (s, e) in in_text:
            assert token == "[UNK]" or text[s:e].lower() == token.removeprefix("##")
        kinds = {m["document_kind"] for m in exp["matches"] if m["document_span"] is None}
        assert kinds <= {"special", "marker", "metadata"}
        llm_view = hit.node.get_content(metadata_mode=MetadataMode.LLM)
        assert "explanation" not in llm_view and "document_span" not in llm_view
    with pytest.raises(ValueError, match="score_mode must be one of"):
        ColBERTRetriever(corpus_index, score_mode="raw")
