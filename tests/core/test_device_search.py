"""Search on a device: the bucketed device mirror, exact top-k there, IndexConfig(ann=False).

The device code is plain torch, so CI runs it on the CPU; the "cuda" cases carry the ``gpu``
marker and run where a GPU is present (``pytest -m gpu`` on a GPU machine). The public path
searches a CPU index with numpy (faster there), so the CPU cases route the index to its mirror
by patching only the device choice. Every answer is checked against the brute-force MaxSim
reference of the conftest, or against the numpy path on the same index.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from late_interaction import IndexConfig, LateInteractionIndex
from late_interaction._index.device_search import SearchDevice
from late_interaction._index.device_store import bucket_length, mirror_for

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
# fp16 documents multiplied on a GPU accumulate in another order than numpy's float32.
TOL = {"cpu": 1e-4, "cuda": 2e-3}
ANN_ALWAYS = {"exact_scan_tokens": 0, "exact_scan_fraction": 0.0}


def on_device(index: LateInteractionIndex, device: str) -> LateInteractionIndex:
    """Route ``index``'s searches to its device mirror on ``device`` (also "cpu")."""
    index._search_device = lambda: SearchDevice(torch.device(device), True)  # type: ignore[method-assign]
    return index


def ragged_unit_docs(n: int, dim: int, seed: int) -> list[np.ndarray]:
    """Unit token matrices of 1..40 rows, so many buckets are used."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        m = rng.standard_normal((int(rng.integers(1, 41)), dim)).astype(np.float32)
        docs.append(m / np.linalg.norm(m, axis=1, keepdims=True))
    return docs


def build(ref, n=300, dim=16, seed=0, **config) -> tuple[LateInteractionIndex, dict]:
    docs = ragged_unit_docs(n, dim, seed)
    ids = [f"d{i}" for i in range(n)]
    metas = [{"group": i % 5} for i in range(n)]
    index = LateInteractionIndex(ref.FakeEncoder(dim), config=IndexConfig(**config))
    index.add_embeddings(docs, [f"text {i}" for i in range(n)], ids, metas)
    return index, dict(zip(ids, stored(docs), strict=True))


def stored(docs: list[np.ndarray]) -> list[np.ndarray]:
    """The matrices as the default float16 store holds them (the reference scores these)."""
    return [d.astype(np.float16).astype(np.float32) for d in docs]


def queries(dim=16, n=6, seed=99) -> list[np.ndarray]:
    return [q for q in ragged_unit_docs(n, dim, seed)]


def assert_hits_match(hits, expected, tol):
    assert [h.id for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=tol)


def test_bucket_padding_is_at_most_a_third_of_a_bucket():
    for n in range(1, 5000):
        length = bucket_length(n)
        assert n <= length <= 1.5 * n, (n, length)
    assert [bucket_length(n) for n in (1, 2, 3, 4, 5, 7, 9, 13, 100)] == [
        1, 2, 3, 4, 6, 8, 12, 16, 128,
    ]  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
def test_exact_search_on_the_device_equals_brute_force(ref, device):
    index, docs = build(ref)
    on_device(index, device)
    qs = queries()
    results = index.search_batch(qs, k=7, exact=True)
    for q, hits in zip(qs, results, strict=True):
        assert_hits_match(hits, ref.brute_force(q, docs, 7), TOL[device])
        assert hits[0].normalized_score == pytest.approx(hits[0].score / q.shape[0])


@pytest.mark.parametrize("device", DEVICES)
def test_candidate_scoring_on_the_device_equals_the_numpy_path(ref, device):
    index, _ = build(ref, n=400, **ANN_ALWAYS)
    qs = queries(n=8)
    cpu = index.search_batch(qs, k=10)
    got = on_device(index, device).search_batch(qs, k=10)
    # The device path ran: the store's mirror holds every slot.
    assert mirror_for(index._state.store, torch.device(device)).n_slots == 400
    for a, b in zip(cpu, got, strict=True):
        assert [h.id for h in a] == [h.id for h in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=TOL[device])


@pytest.mark.parametrize("device", DEVICES)
def test_filters_on_the_device(ref, device):
    index, docs = build(ref)
    on_device(index, device)
    q = queries(n=1)[0]
    in_group = {i for i in docs if int(i[1:]) % 5 == 2}
    # A broad restriction (device scan of every slot, masked) and a narrow one (its slots only).
    for flt, allowed in (({"group": [0, 1, 2, 3]}, None), ({"group": 2}, in_group)):
        if allowed is None:
            allowed = {i for i in docs if int(i[1:]) % 5 != 4}
        hits = index.search(q, k=5, filter=flt, exact=True)
        assert_hits_match(hits, ref.brute_force(q, docs, 5, allowed), TOL[device])


@pytest.mark.parametrize("device", DEVICES)
def test_mirror_follows_adds_deletes_and_compaction(ref, device):
    index, docs = build(ref, n=120)
    on_device(index, device)
    q = queries(n=1)[0]
    assert_hits_match(index.search(q, k=5, exact=True), ref.brute_force(q, docs, 5), TOL[device])
    more = ragged_unit_docs(60, 16, seed=5)
    new_ids = [f"n{i}" for i in range(60)]
    index.add_embeddings(more, [f"more {i}" for i in range(60)], new_ids)
    docs.update(zip(new_ids, stored(more), strict=True))
    # Upsert an old id with a new matrix: the old slot stays on the device but must not return.
    docs["d3"] = stored([q])[0]
    index.add_embeddings([docs["d3"]], ["now the query itself"], ["d3"])
    top = ref.brute_force(q, docs, 5)
    assert top[0][0] == "d3"
    assert_hits_match(index.search(q, k=5, exact=True), top, TOL[device])
    gone = [i for i, _ in top[:2]]
    index.delete(gone)
    for i in gone:
        docs.pop(i)
    assert_hits_match(index.search(q, k=5, exact=True), ref.brute_force(q, docs, 5), TOL[device])
    index.compact()
    assert_hits_match(index.search(q, k=5, exact=True), ref.brute_force(q, docs, 5), TOL[device])


@pytest.mark.parametrize("device", DEVICES)
def test_compressed_store_is_decoded_on_the_device(ref, device):
    dim = 32
    index, _ = build(ref, n=300, dim=dim, nbits=2, n_centroids=64, **ANN_ALWAYS)
    qs = queries(dim=dim, n=4)
    # Reference: the numpy path over the same codes (it decodes on the CPU), exact and PLAID.
    cpu_exact = index.search_batch(qs, k=8, exact=True)
    cpu_ann = index.search_batch(qs, k=8)
    on_device(index, device)
    for a, b in zip(
        cpu_exact + cpu_ann,
        index.search_batch(qs, k=8, exact=True) + index.search_batch(qs, k=8),
        strict=True,
    ):
        assert [h.id for h in a] == [h.id for h in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=TOL[device])


def test_exact_only_index_builds_no_graph_and_survives_a_reload(ref, tmp_path):
    index, docs = build(ref, n=200, ann=False, **ANN_ALWAYS)
    assert index._state.snap.hnsw is None and index._state.snap.ivf is None
    q = queries(n=1)[0]
    expected = ref.brute_force(q, docs, 6)
    assert_hits_match(index.search(q, k=6), expected, 1e-3)  # not exact=True: still exact
    index.save(tmp_path / "idx")
    assert not (tmp_path / "idx" / "tokens.voyager").exists()
    loaded = LateInteractionIndex.load(tmp_path / "idx", model=ref.FakeEncoder(16))
    assert loaded.config.ann is False
    assert_hits_match(loaded.search(q, k=6), expected, 1e-3)


def test_ann_false_needs_the_exact_store():
    with pytest.raises(ValueError, match="ann=False"):
        IndexConfig(ann=False, nbits=2)
    with pytest.raises(TypeError, match="ann must be True or False"):
        IndexConfig(ann="no")  # type: ignore[arg-type]


def test_device_argument_is_checked(ref):
    with pytest.raises(ValueError, match="device must be"):
        LateInteractionIndex(ref.FakeEncoder(16), device="quantum")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA GPU"):
            LateInteractionIndex(ref.FakeEncoder(16), device="cuda")
    index = LateInteractionIndex(ref.FakeEncoder(16), device="cpu")
    assert index.device == torch.device("cpu") and index._search_device() is None


@pytest.mark.parametrize("weight", [0.0, 0.25])
@pytest.mark.parametrize("device", DEVICES)
def test_rerank_scores_on_the_device_without_a_trip_to_the_host(
    tiny_stanford_path, ref, monkeypatch, device, weight
):
    """A ColBERT on a device reranks with the rows left there; scores equal the reference.

    On the CPU the numpy path is the public one, so the CPU case routes the rerank to the device
    path by patching only that choice (``device_encode``), as ``on_device`` does for an index.
    """
    from late_interaction import ColBERT, reranking

    model = ColBERT.from_pretrained(tiny_stanford_path, device=device, dense_weight=weight)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def spy(texts, is_query, batch_size):
        matrices, dense = model._encode_on_device(texts, is_query, batch_size)
        seen.append((matrices[0], dense))
        return matrices, dense

    chosen = reranking.device_encode(model)
    assert (chosen is None) == (device == "cpu")  # the public choice: numpy on a CPU
    monkeypatch.setattr(reranking, "device_encode", lambda encoder: spy)

    query = "late interaction scores every token"
    _, docs, _ = ref.make_corpus(45, seed=5)  # several batches of 8, lengths 3..24 words
    got = model.rerank(query, docs, batch_size=8)

    assert len(seen) == 2 and all(m.device.type == d.device.type == device for m, d in seen)
    # The reference: the public numpy encodings, scored by the naive float64 MaxSim.
    (q,), q_dense = model.encode_queries([query], return_dense=True)
    d_rows, d_dense = model.encode_documents(docs, return_dense=True)
    expected = ref.brute_force_fused(
        q, q_dense[0], dict(enumerate(d_rows)), dict(enumerate(d_dense)), weight, len(docs)
    )
    tol = TOL[device]
    by_position = {i: rest for i, *rest in expected}
    assert sorted(r.position for r in got) == list(range(len(docs)))
    fused_got = [r.normalized_score for r in got]
    assert fused_got == sorted(fused_got, reverse=True)  # best first
    for r in got:
        fused, raw, cosine = by_position[r.position]
        assert r.normalized_score == pytest.approx(fused, abs=tol)
        assert r.score == pytest.approx(raw, abs=tol * len(q))
        if weight:
            assert r.dense_score == pytest.approx(cosine, abs=tol)
        else:
            assert r.dense_score is None


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("n_q", "q_tokens", "dim", "doc_tokens"),
    [
        (3, 32, 128, 100),  # 2 documents per program
        (32, 32, 128, 48),  # 4 documents per program
        (32, 16, 128, 20),  # 4 documents per program, 32-row tiles
        (5, 7, 96, 1),
        (33, 40, 384, 24),
        (40, 128, 128, 256),
        (4, 32, 384, 256),
    ],
)
def test_triton_batch_kernel_equals_the_matmul_path(n_q, q_tokens, dim, doc_tokens):
    from late_interaction._torch_maxsim import _batched_kernel

    kernel = _batched_kernel()
    assert kernel is not None, "Triton should be importable on a CUDA machine"
    gen = torch.Generator(device="cuda").manual_seed(0)
    # 301 documents: the last program of a several-documents-per-program launch is partial.
    docs = torch.nn.functional.normalize(
        torch.randn(301, doc_tokens, dim, device="cuda", generator=gen), dim=-1
    ).half()
    queries = torch.nn.functional.normalize(
        torch.randn(n_q, q_tokens, dim, device="cuda", generator=gen), dim=-1
    )
    queries[1, q_tokens // 2 :] = 0  # a shorter query, zero-padded
    expected = torch.einsum("qtd,nld->qnlt", queries.double(), docs.double())
    expected = expected.amax(dim=2).sum(dim=2)
    got = kernel(queries, docs)
    if dim == 384 and doc_tokens > 64:  # no tile fits in shared memory: the caller's matmul path
        assert got is None
        return
    assert got.shape == (n_q, 301)
    torch.testing.assert_close(got.double(), expected, atol=5e-2, rtol=1e-3)


@pytest.mark.gpu
def test_triton_batch_kernel_offsets_past_two_to_the_31_elements():
    """A store of more than 2**31 values: 32-bit offsets would read the wrong documents."""
    from late_interaction._torch_maxsim import _batched_kernel

    n, length, dim = 140_000, 128, 128  # 2.29e9 values, 4.6 GB
    docs = torch.zeros(n, length, dim, dtype=torch.float16, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(1)
    tail = torch.nn.functional.normalize(
        torch.randn(8, length, dim, device="cuda", generator=gen), dim=-1
    )
    docs[-8:] = tail.half()
    queries = torch.nn.functional.normalize(
        torch.randn(3, 32, dim, device="cuda", generator=gen), dim=-1
    )
    expected = torch.einsum("qtd,nld->qnlt", queries.double(), docs[-8:].double())
    got = _batched_kernel()(queries, docs)
    torch.testing.assert_close(
        got[:, -8:].double(), expected.amax(dim=2).sum(dim=2), atol=5e-2, rtol=1e-3
    )
    assert float(got[:, :-8].abs().max()) == 0.0  # all-zero documents score 0


class _FusingEncoder:
    """The conftest's fake encoder with a fused score (``config.dense_weight``)."""

    def __init__(self, ref, dim: int, weight: float) -> None:
        self._fake = ref.FakeEncoder(dim)
        self.dim = dim
        self.config = type("Config", (), {"dense_weight": weight})()

    def __getattr__(self, name):
        return getattr(self._fake, name)


@pytest.mark.parametrize("device", DEVICES)
def test_fused_score_on_the_device_equals_the_numpy_path(ref, device):
    """Dense vectors kept beside the tokens: the device scan ranks by the same fused score."""
    dim, n = 16, 300
    docs = ragged_unit_docs(n, dim, seed=3)
    rng = np.random.default_rng(4)
    dense = rng.standard_normal((n, 8)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    index = LateInteractionIndex(_FusingEncoder(ref, dim, 0.5))
    index.add_embeddings(
        docs, [f"t{i}" for i in range(n)], [f"d{i}" for i in range(n)], dense=dense
    )
    qs = queries(dim=dim, n=5)
    q_dense = [dense[i] * 0.6 + dense[i + 1] * 0.8 for i in range(5)]  # near two documents
    q_dense = [v / np.linalg.norm(v) for v in q_dense]
    cpu = index.search_batch(qs, k=6, exact=True, query_dense=q_dense)
    got = on_device(index, device).search_batch(qs, k=6, exact=True, query_dense=q_dense)
    for a, b in zip(cpu, got, strict=True):
        assert [h.id for h in a] == [h.id for h in b]
        for x, y in zip(a, b, strict=True):
            assert y.normalized_score == pytest.approx(x.normalized_score, abs=TOL[device])
            assert y.dense_score == pytest.approx(x.dense_score, abs=1e-5)
            assert y.score == pytest.approx(x.score, abs=TOL[device] * 40)
    # The fused order is not the MaxSim order for some query (so the test tells them apart).
    stored_docs = dict(zip([f"d{i}" for i in range(n)], stored(docs), strict=True))
    maxsim_order = [[i for i, _ in ref.brute_force(q, stored_docs, 6)] for q in qs]
    assert maxsim_order != [[h.id for h in hits] for hits in got]


@pytest.mark.gpu
@pytest.mark.parametrize("n_q", [1, 32])
@pytest.mark.parametrize("prefix", [True, False])
def test_public_maxsim_with_a_mask_on_the_gpu_equals_the_reference(n_q, prefix):
    """Zero-padded documents and a mask: a prefix mask reaches the kernel's length path, any
    other mask the copy path; both equal the float64 reference over the real rows only."""
    from late_interaction import maxsim

    gen = torch.Generator(device="cuda").manual_seed(3)
    n_docs, length, dim = 301, 100, 128
    docs = torch.nn.functional.normalize(
        torch.randn(n_docs, length, dim, device="cuda", generator=gen), dim=-1
    )
    lengths = torch.randint(1, length + 1, (n_docs,), device="cuda", generator=gen)
    mask = torch.arange(length, device="cuda")[None, :] < lengths[:, None]
    if not prefix:
        mask = mask.flip(1)  # real tokens last
    docs = (docs * mask[..., None]).half()  # padding is zeros: it would win many maxes
    queries = torch.nn.functional.normalize(
        torch.randn(n_q, 32, dim, device="cuda", generator=gen), dim=-1
    )
    sims = torch.einsum("qtd,nld->qnlt", queries.double(), docs.double())
    sims = sims.masked_fill(~mask[None, :, :, None], float("-inf"))
    expected = sims.amax(dim=2).sum(dim=2)
    got = maxsim(queries if n_q > 1 else queries[0], docs, documents_mask=mask)
    got = got if n_q > 1 else got[None]
    torch.testing.assert_close(got.double(), expected, atol=5e-2, rtol=1e-3)
