"""The compressed index (IndexConfig(nbits=...)): centroid candidates, updates, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from late_interaction import (
    IndexConfig,
    IndexFormatError,
    LateInteractionIndex,
    ModelMismatchError,
)
from late_interaction._index import search as search_module
from late_interaction._index.ivf import InvertedLists

# Exact scans off so every search takes the centroid path.
FAST = {"exact_scan_tokens": 0, "exact_scan_fraction": 0.0}


def _index(encoder, ref, n=150, **config):
    ids, texts, metas = ref.make_corpus(n, seed=5)
    index = LateInteractionIndex(encoder, config=IndexConfig(**{**FAST, **config}))
    index.add(texts, ids=ids, metadatas=metas)
    return index, ids, texts


@pytest.fixture
def counted(monkeypatch):
    """Counts calls of the centroid candidate stage (proves the fast path ran)."""
    calls = []
    real = search_module.centroid_candidates

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(search_module, "centroid_candidates", spy)
    return calls


def _ids(hits):
    return [h.id for h in hits]


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_probing_every_centroid_equals_the_exact_scan(fake_encoder, ref, counted, nbits):
    index, _, texts = _index(fake_encoder, ref, nbits=nbits, n_probe=10_000, n_full_scores=10_000)
    for query in texts[:5]:
        fast, exact = index.search(query, 5), index.search(query, 5, exact=True)
        assert _ids(fast) == _ids(exact)
        np.testing.assert_allclose([h.score for h in fast], [h.score for h in exact], rtol=1e-6)
    assert counted


def test_exact_scores_are_maxsim_on_decoded_vectors(fake_encoder, ref):
    index, ids, texts = _index(fake_encoder, ref, n=40, nbits=2)
    snap = index._state.snap
    tokens, offsets = snap.tokens, snap.offsets
    query = fake_encoder.encode_queries([texts[3]])[0]
    hits = index.search(query, 3, exact=True)
    for hit in hits:
        slot = ids.index(hit.id)
        decoded = tokens[offsets[slot] : offsets[slot + 1]]
        assert hit.score == pytest.approx(ref.naive_maxsim(query, decoded), rel=1e-5)
        np.testing.assert_allclose(np.linalg.norm(decoded, axis=1), 1.0, rtol=1e-5)


def test_four_bits_rank_like_the_exact_store(fake_encoder, ref, counted):
    compressed, _, texts = _index(fake_encoder, ref, n=200, nbits=4, n_probe=8)
    exact, _, _ = _index(fake_encoder, ref, n=200)
    overlap = [
        len(set(_ids(compressed.search(q, 5))) & set(_ids(exact.search(q, 5, exact=True)))) / 5
        for q in texts[:20]
    ]
    assert np.mean(overlap) >= 0.9
    assert counted


def test_upsert_delete_and_compact_keep_the_codec(fake_encoder, ref, counted):
    index, ids, texts = _index(fake_encoder, ref, nbits=2, n_probe=10_000)
    checksum = index._state.store.codec.checksum()
    index.delete(ids[:10])
    index.add(["w1 w2 w3 brand new words"], ids=[ids[20]])
    assert index._state.store.codec.checksum() == checksum  # encoded against the old codec
    hits = index.search(texts[0], 150)
    assert not set(_ids(hits)) & set(ids[:10])
    assert index.get(ids[20])[0].text == "w1 w2 w3 brand new words"
    assert len(hits) == len(index) == 140
    before = [(h.id, h.score) for h in index.search(texts[30], 10)]
    index.compact()
    assert index._state.store.n_docs == 140
    assert index._state.store.codec.checksum() == checksum
    after = [(h.id, h.score) for h in index.search(texts[30], 10)]
    assert [i for i, _ in after] == [i for i, _ in before]
    np.testing.assert_allclose([s for _, s in after], [s for _, s in before], rtol=1e-6)


def test_training_encodes_a_small_corpus_once(ref):
    class Counting(ref.FakeEncoder):
        calls = 0

        def encode_documents(self, texts, **kwargs):
            Counting.calls += len(texts)
            return super().encode_documents(texts, **kwargs)

    encoder = Counting()
    index, _, _ = _index(encoder, ref, n=300, nbits=2)
    assert Counting.calls == 300  # the training sample covered every document: reused
    assert index._state.store.codec.n_centroids >= 2


def test_save_load_round_trip(fake_encoder, ref, tmp_path, counted):
    index, ids, texts = _index(fake_encoder, ref, nbits=2)
    index.delete(ids[:3])
    index.save(tmp_path / "ix")
    manifest = json.loads((tmp_path / "ix" / "config.json").read_text())
    assert manifest["format_version"] == 2
    codec = index._state.store.codec
    assert manifest["codec"] == {
        "kind": "residual", "nbits": 2, "n_centroids": codec.n_centroids,
        "dim": 16, "checksum": codec.checksum(),
    }  # fmt: skip
    assert not (tmp_path / "ix" / "tokens.voyager").exists()
    assert not (tmp_path / "ix" / "embeddings.npy").exists()
    loaded = LateInteractionIndex.load(tmp_path / "ix", fake_encoder)
    assert isinstance(loaded._state.store.codes(), np.memmap)
    for q in texts[5:10]:
        a, b = index.search(q, 5), loaded.search(q, 5)
        assert [(h.id, h.score) for h in a] == [(h.id, h.score) for h in b]
    loaded.add(["w5 w6 fresh"], ids=["new"])  # appends after a memory-mapped load
    assert loaded.search("w5 w6 fresh", 1)[0].id == "new"
    loaded.save()
    assert "new" in LateInteractionIndex.load(tmp_path / "ix", fake_encoder)


def _rewrite_manifest(folder, change):
    """Edit the manifest and re-record every checksum, as a consistent but wrong save would."""
    from late_interaction._index.checksums import file_checksums, seal

    manifest = json.loads((folder / "config.json").read_text())
    change(manifest)
    manifest["checksums"] = file_checksums(folder, manifest["files"])
    manifest.pop("manifest_checksum")
    (folder / "config.json").write_text(json.dumps(seal(manifest)))


def test_no_token_map_is_stored_and_an_older_folder_with_one_still_loads(
    fake_encoder, ref, tmp_path
):
    index, _, texts = _index(fake_encoder, ref, n=60, nbits=2)
    folder = index.save(tmp_path / "ix")
    assert not (folder / "token_doc.npy").exists()  # derived from the offsets instead
    # A format-2 folder written before: the same files plus token_doc.npy, listed in the manifest.
    offsets = np.load(folder / "doc_offsets.npy")
    np.save(folder / "token_doc.npy", np.repeat(np.arange(60, dtype=np.int32), np.diff(offsets)))
    size = (folder / "token_doc.npy").stat().st_size
    (folder / "codec_drift.npy").unlink()  # nor the drift measure's file

    def older(manifest):
        manifest["files"].update({"token_doc.npy": size})
        del manifest["files"]["codec_drift.npy"]

    _rewrite_manifest(folder, older)
    loaded = LateInteractionIndex.load(folder, fake_encoder)
    assert loaded.codec_drift()["trained_residual"] is None  # unknown, not made up
    for q in texts[:5]:
        assert _ids(loaded.search(q, 5)) == _ids(index.search(q, 5))
    loaded.add(["w5 w6 fresh"], ids=["new"])  # the lists of new rows come from the offsets
    assert loaded.search("w5 w6 fresh", 1)[0].id == "new"


def test_codec_mismatches_are_refused(fake_encoder, ref, tmp_path):
    index, _, _ = _index(fake_encoder, ref, n=60, nbits=2)
    folder = index.save(tmp_path / "ix")
    weights = np.load(folder / "codec_weights.npy")
    np.save(folder / "codec_weights.npy", weights + 0.01)  # same size: only checksums see it
    with pytest.raises(IndexFormatError, match=r"codec_weights\.npy is damaged"):
        LateInteractionIndex.load(folder, fake_encoder)
    _rewrite_manifest(folder, lambda m: None)  # file checksums re-recorded: the codec's own
    with pytest.raises(IndexFormatError, match=r"codec .* does not match the checksum"):
        LateInteractionIndex.load(folder, fake_encoder)
    np.save(folder / "codec_weights.npy", weights)
    _rewrite_manifest(folder, lambda m: m["index_config"].update(nbits=4))
    with pytest.raises(IndexFormatError, match="2-bit codec"):
        LateInteractionIndex.load(folder, fake_encoder)
    _rewrite_manifest(folder, lambda m: m["index_config"].update(nbits=2))
    other = ref.FakeEncoder(name="other")
    with pytest.raises(ModelMismatchError):
        LateInteractionIndex.load(folder, other)
    assert len(LateInteractionIndex.load(folder, fake_encoder)) == 60


def test_invalid_uses_are_refused(fake_encoder, ref):
    with pytest.raises(ValueError, match="nbits must be None"):
        IndexConfig(nbits=3)
    with pytest.raises(ValueError, match="pool_factor"):
        IndexConfig(nbits=2, pool_factor=2)
    index, _, texts = _index(fake_encoder, ref, n=30, nbits=2)
    with pytest.raises(ValueError, match="n_probe"):
        index.search(texts[0], 3, query_ef=50)
    with pytest.raises(ValueError, match="unit-norm"):
        index.add_embeddings([np.full((3, 16), 0.5, np.float32)], ["x"])


def test_inverted_lists_merge_segments_and_list_every_pair():
    rng = np.random.default_rng(0)
    lists, codes_all, slots_all = InvertedLists(20), [], []
    slot = 0
    for size in (50, 10, 5, 80, 3, 3, 3):
        codes = rng.integers(0, 20, size)
        slots = slot + rng.integers(0, 4, size)
        slot = int(slots.max()) + 1
        lists = lists.appended(codes, slots)
        codes_all.append(codes)
        slots_all.append(slots)
        assert len(lists._segments) <= 4
    codes, slots = np.concatenate(codes_all), np.concatenate(slots_all)
    for cells in ([0], [3, 7], list(range(20))):
        want = np.unique(slots[np.isin(codes, cells)])
        np.testing.assert_array_equal(lists.slots_of(np.array(cells)), want)
    again = InvertedLists.from_arrays(*lists.arrays())
    np.testing.assert_array_equal(again.slots_of(np.arange(20)), np.unique(slots))


def test_retrain_fits_a_new_codec_on_the_live_documents(fake_encoder, ref, counted):
    index, ids, texts = _index(fake_encoder, ref, n=20, nbits=2, n_probe=10_000)
    small = index._state.store.codec
    _, more_texts, _ = ref.make_corpus(200, seed=9)
    index.add(more_texts, ids=[f"m{i}" for i in range(200)])  # encoded with the small codec
    index.delete(ids[:5])
    index.retrain()
    codec = index._state.store.codec
    assert codec.checksum() != small.checksum()
    assert codec.n_centroids > small.n_centroids  # sized for 215 documents now
    assert index._state.store.n_docs == len(index) == 215  # deleted documents are gone
    assert index.search(more_texts[7], 1)[0].id == "m7"
    assert ids[2] not in index and index.get(ids[10])[0].text == texts[10]
    with pytest.raises(ValueError, match="nbits=None"):
        LateInteractionIndex(fake_encoder).retrain()


def test_full_scores_default_depends_on_the_store():
    assert IndexConfig().n_full_scores == 512
    assert IndexConfig(nbits=2).n_full_scores is None  # grows with the index at search time
    assert IndexConfig(nbits=2, n_full_scores=300).n_full_scores == 300
    assert IndexConfig.from_dict(IndexConfig(nbits=1).to_dict()) == IndexConfig(nbits=1)


def test_default_budgets_grow_with_the_index_and_explicit_ones_are_kept():
    from late_interaction._index.centroid_candidates import default_budgets

    small, mid, large = (default_budgets(None, None, n, 10) for n in (1_000, 100_000, 1_000_000))
    assert small == (4, 128)
    assert small[0] < mid[0] <= large[0] <= 16 and small[1] < mid[1] < large[1]
    assert default_budgets(2, 64, 1_000_000, 10) == (2, 64)  # never silently replaced
    assert default_budgets(2, 8, 10, 10) == (2, 40)  # at least 4 * k


def test_searches_pass_the_grown_budgets_unless_set(fake_encoder, ref, monkeypatch):
    from late_interaction._index import centroid_candidates as module

    monkeypatch.setattr(module, "_BASE_DOCS", 10)  # 150 documents count as 15x the base
    seen = []
    real = search_module.centroid_candidates

    def spy(view, queries, n_probe, n_full):
        seen.append((n_probe, n_full))
        return real(view, queries, n_probe, n_full)

    monkeypatch.setattr(search_module, "centroid_candidates", spy)
    index, _, texts = _index(fake_encoder, ref, nbits=2)
    index.search(texts[0], 5)
    assert seen[-1] == (4 + 4, 496)  # log2(15) -> 4 more probes; 128 * sqrt(15) rounded up
    explicit, _, _ = _index(fake_encoder, ref, nbits=2, n_probe=3, n_full_scores=50)
    explicit.search(texts[0], 5)
    assert seen[-1] == (3, 50)


def test_a_tiny_first_add_trains_and_later_adds_use_its_codec(fake_encoder):
    index = LateInteractionIndex(fake_encoder, config=IndexConfig(nbits=2, **FAST))
    vector = fake_encoder.encode_documents(["solo"])[0][:1]
    index.add_embeddings([vector], ["solo"], ids=["a"])
    index.add(["other words here", "solo again"], ids=["b", "c"])
    assert index._state.store.codec.n_centroids == 1
    assert index.search("solo", 1)[0].id in {"a", "c"}


@pytest.mark.parametrize("probe", [1, 3])
def test_list_scores_match_a_naive_loop(probe):
    from late_interaction._index.centroid_candidates import _best_by_list_scores, _distinct_slots

    rng = np.random.default_rng(11)
    # 30 centroids x 5 query tokens; positive, as the scores of the centroids a token probes are
    table = np.abs(rng.standard_normal((30, 5))).astype(np.float32)
    cells = np.argsort(-table, axis=0)[:probe]  # each query token probes its best centroids
    cells[:, 1] = cells[:, 0]  # two query tokens probing the same centroids
    probed, cell_of = np.unique(cells.T, return_inverse=True)
    # Distinct (centroid, slot) entries, as the inverted lists hold them.
    pairs = np.unique(rng.integers(0, len(probed), 200) * 40 + rng.integers(0, 40, 200))
    which, slots = pairs // 40, (pairs % 40).astype(np.int32)
    naive = {}
    for d in np.unique(slots):
        listed = set(probed[which[slots == d]].tolist())
        naive[int(d)] = sum(
            max([table[c, q] for c in cells[:, q].tolist() if c in listed], default=0.0)
            for q in range(5)
        )
    best7 = sorted(naive.values(), reverse=True)[:7]
    docs, local = _distinct_slots(slots, 40)
    assert docs.tolist() == np.unique(slots).tolist() and (docs[local] == slots).all()
    got = _best_by_list_scores(table.T.copy(), cell_of.reshape(5, probe), probed, which, docs,
                               local, 7)  # fmt: skip
    # Ties may be kept either way: the kept documents must carry the 7 best naive scores.
    assert len(set(got.tolist())) == 7
    np.testing.assert_allclose(sorted((naive[d] for d in got.tolist()), reverse=True), best7,
                               rtol=1e-6)  # fmt: skip


def test_interaction_scores_are_centroid_maxsim_to_half_a_fixed_point_unit():
    from late_interaction._index.centroid_candidates import _FIXED_POINT, _interaction_scores

    rng = np.random.default_rng(12)
    by_query = rng.uniform(-0.9, 0.9, size=(6, 40)).astype(np.float32)  # 6 query tokens
    lengths = rng.integers(1, 9, size=25)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    codes = rng.integers(0, 40, size=int(offsets[-1])).astype(np.uint16)
    docs = np.array([0, 3, 4, 9, 17, 24])
    got = _interaction_scores(by_query, codes, offsets, docs)
    scale = _FIXED_POINT / np.abs(by_query).max()
    for score, d in zip(got.tolist(), docs.tolist(), strict=True):
        doc_codes = codes[offsets[d] : offsets[d + 1]]
        naive = sum(max(float(by_query[q, c]) for c in doc_codes) for q in range(6))
        assert abs(score / scale - naive) <= 6 * 0.5 / scale + 1e-6
    # The largest score is the top of int16's range, not past it; all-zero scores stay zero.
    assert _interaction_scores(np.ones((1, 40), np.float32), codes, offsets, docs[:1])[0] == (
        _FIXED_POINT
    )
    zeros = _interaction_scores(np.zeros((2, 40), np.float32), codes, offsets, docs)
    assert (zeros == 0).all()
    overflowed = by_query.copy()
    overflowed[0, codes[offsets[3]]] = np.inf  # no scale: scored in float, inf kept
    assert _interaction_scores(overflowed, codes, offsets, docs)[1] == np.inf


def test_every_pruning_stage_runs_and_self_retrieval_holds(fake_encoder, ref, counted):
    # n_full 4 (k=1): list scores keep 16 of the candidates, centroid interaction 4.
    index, ids, texts = _index(fake_encoder, ref, n=150, nbits=4, n_full_scores=4, n_probe=8)
    found = [index.search(texts[i], 1)[0].id == ids[i] for i in range(0, 150, 5)]
    assert np.mean(found) >= 0.9


def _topic_docs(rng, topics, n_docs, dim=16):
    docs = []
    for _ in range(n_docs):
        rows = topics[rng.integers(0, len(topics), 12)] + 0.25 * rng.normal(size=(12, dim))
        docs.append((rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32))
    return docs


def test_codec_drift_flags_tokens_from_another_distribution(fake_encoder, tmp_path):
    rng = np.random.default_rng(21)
    seen, unseen = (rng.normal(size=(8, 16)) for _ in range(2))
    index = LateInteractionIndex(fake_encoder, config=IndexConfig(nbits=2, **FAST))
    index.add_embeddings(_topic_docs(rng, seen, 200), [f"t{i}" for i in range(200)])
    trained = index.codec_drift()
    assert trained["trained_residual"] > 0 and trained["encoded_tokens"] == 2400
    index.add_embeddings(
        _topic_docs(rng, seen, 30), ["same"] * 30, ids=[f"s{i}" for i in range(30)]
    )
    same = index.codec_drift()
    assert 0.7 < same["last_batch_residual"] / same["trained_residual"] < 1.3
    index.add_embeddings(
        _topic_docs(rng, unseen, 30), ["new"] * 30, ids=[f"n{i}" for i in range(30)]
    )
    drifted = index.codec_drift()
    assert drifted["last_batch_residual"] / drifted["trained_residual"] > 2
    assert drifted["ratio"] > same["ratio"] and drifted["encoded_tokens"] == 2400 + 2 * 360
    loaded = LateInteractionIndex.load(index.save(tmp_path / "ix"), fake_encoder)
    assert loaded.codec_drift() == pytest.approx(drifted)
    with pytest.raises(ValueError, match="nbits=None"):
        LateInteractionIndex(fake_encoder).codec_drift()


def test_a_codec_outgrown_by_batched_adds_is_warned_about_once(fake_encoder, ref, caplog):
    """Adds in batches (as the frameworks make them) keep the first batch's codec: once the
    corpus calls for 4x its centroids, one warning says so and how to fix it; retrain() sizes
    a codec for the corpus, and an explicit n_centroids is never warned about."""
    ids, texts, _ = ref.make_corpus(200, seed=5)

    def build(**config):
        index = LateInteractionIndex(fake_encoder, config=IndexConfig(nbits=2, **config))
        for start in range(0, 200, 20):
            index.add(texts[start : start + 20], ids=ids[start : start + 20])
            if start == 0:
                assert not caplog.records  # the first add is sized for itself
        return index

    with caplog.at_level("WARNING", logger="late_interaction"):
        index = build()
        outgrown = [
            r.getMessage() for r in caplog.records if "sized by its first add" in r.getMessage()
        ]
        assert len(outgrown) == 1
        assert "index.retrain()" in outgrown[0] and "IndexConfig(n_centroids=...)" in outgrown[0]
        first = index._state.store.codec.n_centroids
        caplog.clear()
        index.retrain()
        assert index._state.store.codec.n_centroids >= 4 * first
        index.add(["one more document"], ids=["extra"])
        assert not caplog.records
        build(n_centroids=first)
        assert not caplog.records
