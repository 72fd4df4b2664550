"""Writes happen whole or not at all: exceptions injected at every step of add/upsert/delete.

Each case monkeypatches one step of the write path to raise (``KeyboardInterrupt``,
``MemoryError`` or a plain error), runs the write, and checks the index is exactly as before
(documents, ANN and exact search results), internally in step (graph ids = token rows), still
saveable and loadable to the same state, and that later writes work. The issue's reproduction:
an interrupted add left the graph and stores out of step, and the next save wrote a folder that
would not load.
"""

from __future__ import annotations

import numpy as np
import pytest

from late_interaction import IndexConfig, LateInteractionIndex
from late_interaction._index import document_store, hnsw, ivf, state, token_store
from late_interaction._index.codec import ResidualCodec

pytestmark = pytest.mark.usefixtures("no_fsync")  # saves here test content, not power loss

DIM = 16
QUERIES = ["w1 w2 w3", "w10 w20", "w5"]
ERRORS = [KeyboardInterrupt, MemoryError]  # BaseException and Exception: one except path


def observe(index):
    ids = index.ids
    docs = [(d.id, d.text, d.metadata) for d in index.get(ids)]
    hits = [
        [(h.id, round(h.score, 4)) for h in index.search(q, k=5, exact=exact)]
        for q in QUERIES
        for exact in (False, True)
    ]
    return len(index), ids, docs, hits


def assert_consistent(index):
    """The structures agree: what save() writes and load() checks."""
    st = index._state
    snap = st.snap
    assert st.store.n_docs == len(st.docs.ids) == snap.live.shape[0]
    assert st.store.n_tokens == snap.offsets[-1]
    if st.store.codec is None:  # a compressed store derives its token map from the offsets
        assert st.store.n_tokens == snap.token_doc.shape[0]
    if st.hnsw is not None:
        assert st.hnsw.num_elements == st.store.n_tokens  # graph ids are token rows
        assert st.hnsw.n_live == snap.n_live_tokens
    assert sorted(st._slot_of) == sorted(index.ids)


def _raise_after(monkeypatch, owner, name, error, *, after_call=False, on_call=1):
    """Make ``owner.name`` raise ``error`` on its ``on_call``-th call (before or after running)."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def patched(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == on_call and not after_call:
            raise error("injected")
        out = original(*args, **kwargs)
        if calls["n"] == on_call:
            raise error("injected")
        return out

    monkeypatch.setattr(owner, name, patched)
    return calls


def _build(ref, config=None):
    model = ref.FakeEncoder(DIM)
    index = LateInteractionIndex(model, config=config)
    ids, texts, metas = ref.make_corpus(16, seed=5)
    index.add(texts, ids=ids, metadatas=metas)
    return index, model


def _new_docs(n=5):
    return [f"w{i} w{i + 3} novel{i}" for i in range(n)], [f"new{i}" for i in range(n)]


WRITES = {
    "add": lambda ix: ix.add(_new_docs()[0], ids=_new_docs()[1]),
    "upsert": lambda ix: ix.add(["w1 replaced", "w2 replaced", "w3 new"], ids=["d0", "d1", "n"]),
    "add_embeddings": lambda ix: ix.add_embeddings(
        ix.model.encode_documents(_new_docs()[0]), _new_docs()[0], ids=_new_docs()[1]
    ),
    "delete": lambda ix: ix.delete(["d0", "d3", "d4"]),
}
# (owner, attribute, raise after the original ran): the steps of the exact store's write path.
STEPS = {
    "store_append": (token_store.TokenStore, "append", False),
    "store_append_done": (token_store.TokenStore, "append", True),
    "docs_append": (document_store.DocumentStore, "append", False),
    "docs_append_done": (document_store.DocumentStore, "append", True),
    "hnsw_add": (hnsw.VoyagerTokenIndex, "add", False),
    "hnsw_add_done": (hnsw.VoyagerTokenIndex, "add", True),  # items in the graph already
    "snapshot_build": (state.Snapshot, "build", False),
    "mark_deleted": (hnsw.VoyagerTokenIndex, "mark_deleted", False),  # after the commit
}
APPEND_ONLY = {"store_append", "store_append_done", "docs_append", "docs_append_done",
               "hnsw_add", "hnsw_add_done"}  # fmt: skip


# Every step a write reaches: delete appends nothing, a pure add marks nothing deleted.
CASES = [
    (write, step)
    for write in sorted(WRITES)
    for step in sorted(STEPS)
    if not (write == "delete" and step in APPEND_ONLY)
    and not (write in ("add", "add_embeddings") and step == "mark_deleted")
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize(("write", "step"), CASES, ids=[f"{w}-{s}" for w, s in CASES])
def test_exception_inside_a_write_leaves_index_whole(
    write, step, error, ref, tmp_path, monkeypatch
):
    index, model = _build(ref)
    before = observe(index)
    owner, name, after_call = STEPS[step]
    with monkeypatch.context() as patch:
        _raise_after(patch, owner, name, error, after_call=after_call)
        with pytest.raises(error):
            WRITES[write](index)
    committed = step == "mark_deleted"  # raised after the publish: the write stands whole
    if committed:
        assert_consistent(index)
        after = observe(index)
        clean, _ = _build(ref)
        WRITES[write](clean)
        assert after == observe(clean)
        before = after
    assert_consistent(index)
    assert observe(index) == before
    loaded = LateInteractionIndex.load(index.save(tmp_path / "saved"), model)
    assert observe(loaded) == before
    WRITES["add"](index)  # later writes work, and a second save loads
    assert_consistent(index)
    assert "new0" in index
    assert "new0" in LateInteractionIndex.load(index.save(tmp_path / "saved"), model)


@pytest.mark.parametrize("error", [KeyboardInterrupt, MemoryError], ids=lambda e: e.__name__)
def test_encoder_failing_on_a_later_chunk_rolls_back_the_whole_add(error, ref, tmp_path):
    """Issue item 2: 256 documents of a failed call used to stay in the index."""
    index, model = _build(ref)
    before = observe(index)
    calls = {"n": 0}
    original = model.encode_documents

    def flaky(texts, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise error("encoder died on the second chunk")
        return original(texts, **kw)

    model.encode_documents = flaky
    texts = [f"w{i} w{i + 1} bulk" for i in range(300)]
    with pytest.raises(error):
        index.add(texts, ids=[f"b{i}" for i in range(300)])
    assert calls["n"] == 2  # the first chunk of 256 was appended before the failure
    assert_consistent(index)
    assert observe(index) == before
    model.encode_documents = original
    assert observe(LateInteractionIndex.load(index.save(tmp_path / "s"), model)) == before


def test_interrupted_id_map_update_is_undone(ref, tmp_path):
    """KeyboardInterrupt between two id-map updates of one publish: none of them stays."""
    index, model = _build(ref)
    before = observe(index)

    class Flaky(dict):
        sets = 0

        def __setitem__(self, key, value):
            Flaky.sets += 1
            if Flaky.sets == 2:
                raise KeyboardInterrupt
            super().__setitem__(key, value)

    index._state._slot_of = Flaky(index._state._slot_of)
    with pytest.raises(KeyboardInterrupt):
        index.add(["w1 a", "w2 b", "w3 c"], ids=["d0", "x1", "x2"])
    index._state._slot_of = dict(index._state._slot_of)
    assert_consistent(index)
    assert observe(index) == before
    assert observe(LateInteractionIndex.load(index.save(tmp_path / "s"), model)) == before


def test_rolled_back_graph_items_are_never_returned(ref, monkeypatch):
    """Voyager cannot un-add: the rolled-back tokens stay hidden, even for an exact twin query."""
    index, _ = _build(ref)
    twin = "zzz unique words only here"
    with monkeypatch.context() as patch:
        _raise_after(patch, hnsw.VoyagerTokenIndex, "add", KeyboardInterrupt, after_call=True)
        with pytest.raises(KeyboardInterrupt):
            index.add([twin], ids=["ghost"])
    assert "ghost" not in index
    for exact in (False, True):
        assert all(h.id != "ghost" for h in index.search(twin, k=30, exact=exact))
    index.compact()  # the dead slot holding the graph's rows is reclaimed
    assert index._state.store.n_docs == len(index)
    assert_consistent(index)


COMPRESSED_STEPS = {
    "codec_encode": (ResidualCodec, "encode_with_error", False),
    "ivf_appended": (ivf.InvertedLists, "appended", False),
    "ivf_appended_done": (ivf.InvertedLists, "appended", True),
    "store_append": (token_store.TokenStore, "append", False),
    "snapshot_build": (state.Snapshot, "build", False),
}


# Each step under both writes, the error alternating (both take the one except path).
COMPRESSED_CASES = [
    (write, step, ERRORS[i % 2])
    for i, (write, step) in enumerate(
        (w, s) for w in ("add", "upsert") for s in sorted(COMPRESSED_STEPS)
    )
]


@pytest.mark.parametrize(
    ("write", "step", "error"),
    COMPRESSED_CASES,
    ids=[f"{w}-{s}-{e.__name__}" for w, s, e in COMPRESSED_CASES],
)
def test_compressed_write_is_whole_or_nothing(write, step, error, ref, tmp_path, monkeypatch):
    index, model = _build(ref, IndexConfig(nbits=2, n_centroids=8))
    before = observe(index)
    owner, name, after_call = COMPRESSED_STEPS[step]
    with monkeypatch.context() as patch:
        _raise_after(patch, owner, name, error, after_call=after_call)
        with pytest.raises(error):
            WRITES[write](index)
    assert_consistent(index)
    assert observe(index) == before
    assert observe(LateInteractionIndex.load(index.save(tmp_path / "s"), model)) == before
    WRITES["add"](index)
    assert "new0" in LateInteractionIndex.load(index.save(tmp_path / "s"), model)


@pytest.mark.parametrize("compressed", [False, True], ids=["exact", "nbits2"])
def test_failed_first_add_leaves_an_empty_index(compressed, ref, tmp_path, monkeypatch):
    model = ref.FakeEncoder(DIM)
    config = IndexConfig(nbits=2, n_centroids=8) if compressed else None
    index = LateInteractionIndex(model, config=config)
    with monkeypatch.context() as patch:
        _raise_after(patch, document_store.DocumentStore, "append", MemoryError)
        with pytest.raises(MemoryError):
            index.add(["w1 w2", "w3"], ids=["a", "b"])
    assert len(index) == 0 and index._state.store is None
    index.add(["w1 w2", "w3"], ids=["a", "b"])
    assert LateInteractionIndex.load(index.save(tmp_path / "s"), model).ids == ["a", "b"]


def test_store_reserve_grows_once_to_the_exact_size(ref):
    """add_embeddings sizes the store once (item 12): no doubling slack after a bulk add."""
    model = ref.FakeEncoder(DIM)
    index = LateInteractionIndex(model)
    embs = [np.ones((7, DIM), np.float32) / 4 for _ in range(300)]  # two chunks of add
    index.add_embeddings(embs, [f"t{i}" for i in range(300)])
    rows = index._state.store._rows[token_store.TOKENS_FILE]
    assert rows.shape[0] == 2100  # doubling after the first chunk would leave 3584
