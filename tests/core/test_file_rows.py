"""Compressed rows that grow in a scratch file, and inverted lists merged by concatenation.

References are independent of the code under test: the codec's own ``encode`` of every appended
vector at once, plain numpy slicing, and a CSR built with ``np.unique`` over all (centroid, slot)
pairs.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os

import numpy as np
import pytest

from late_interaction import IndexConfig, LateInteractionIndex
from late_interaction._index import file_rows
from late_interaction._index.codec import ResidualCodec
from late_interaction._index.file_rows import FileRows
from late_interaction._index.ivf import InvertedLists
from late_interaction._index.token_store import TokenStore

DIM = 16


def _unit(rng, n, dim=DIM):
    m = rng.standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _docs(rng, n):
    return [_unit(rng, int(rng.integers(1, 9))) for _ in range(n)]


@pytest.fixture(scope="module")
def codec():
    return ResidualCodec.train(_unit(np.random.default_rng(0), 2000), 2, n_centroids=16)


def _mapped(array) -> bool:
    """Whether ``array``'s memory belongs to a memory map (not to the process's heap)."""
    while array is not None:
        if isinstance(array, mmap.mmap):
            return True
        array = array.obj if isinstance(array, memoryview) else getattr(array, "base", None)
    return False


@pytest.fixture
def small_blocks(monkeypatch):
    """Copy and gather windows of a few rows, so every test crosses many of them."""
    monkeypatch.setattr(file_rows, "_COPY_BLOCK", 96)


def test_file_rows_read_back_what_was_written_and_old_views_stay(small_blocks):
    rng = np.random.default_rng(1)
    rows = FileRows((5,), np.dtype(np.uint8))
    written, views = [], []
    for n in (1, 7, 0, 33, 2, 120):
        batch = rng.integers(0, 256, (n, 5), dtype=np.uint8)
        rows.write(rows.n_written, batch)
        written.append(batch)
        views.append((rows.view(rows.n_written), np.concatenate(written).copy()))
    for view, expected in views:  # every view, taken before later writes, is as it was
        np.testing.assert_array_equal(view, expected)
        assert not view.flags.writeable
    everything = np.concatenate(written)
    np.testing.assert_array_equal(rows.read(3, 150), everything[3:150])
    picked = np.array([0, 1, 2, 40, 41, 90, 162])
    np.testing.assert_array_equal(rows.gathered(picked, 163).view(7), everything[picked])
    with pytest.raises(ValueError, match="at row 200"):
        rows.write(200, everything[:1])


def _cross_device(*args, **kwargs):
    raise OSError(errno.EXDEV, "Invalid cross-device link")


@pytest.mark.parametrize(
    "kernel_copy", [True, False, "refused"], ids=["positional-io", "seek-read-write", "exdev"]
)
def test_compressed_store_grows_in_a_file_and_round_trips(
    codec, tmp_path, small_blocks, monkeypatch, kernel_copy
):
    if kernel_copy is False:  # the portable paths: plain reads and writes at a seek
        for name in ("copy_file_range", "pwrite", "pread"):
            monkeypatch.delattr(os, name, raising=False)
    if kernel_copy == "refused":  # Linux >= 5.19 across filesystems (index on disk, TMPDIR tmpfs)
        monkeypatch.setattr(os, "copy_file_range", _cross_device, raising=False)
    rng = np.random.default_rng(2)
    store = TokenStore(DIM, codec=codec)
    batches = [_docs(rng, n) for n in (1, 5, 40, 3)]
    early = []
    for batch in batches:
        store.append(batch)
        tokens, _, _ = store.views()
        codes, residuals = tokens.codes, tokens.residuals
        early.append((codes, residuals, codes.copy(), residuals.copy()))
    flat = [m for b in batches for m in b]
    want_codes, want_residuals = codec.encode(np.concatenate(flat))
    tokens, offsets, _ = store.views()
    assert _mapped(tokens.codes) and _mapped(tokens.residuals)  # not on the heap
    np.testing.assert_array_equal(tokens.codes, want_codes)
    np.testing.assert_array_equal(tokens.residuals, want_residuals)
    for codes, residuals, codes_then, residuals_then in early:
        np.testing.assert_array_equal(codes, codes_then)
        np.testing.assert_array_equal(residuals, residuals_then)
    assert offsets[-1] == len(want_codes) and store.n_docs == len(flat)

    store.save(tmp_path)
    assert np.array_equal(np.load(tmp_path / "codes.npy"), want_codes)
    assert np.array_equal(np.load(tmp_path / "residuals.npy"), want_residuals)
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    loaded = TokenStore.load(
        tmp_path, dim=DIM, dtype="float16", n_docs=store.n_docs, n_tokens=store.n_tokens,
        codec=codec,
    )  # fmt: skip
    before, _, _ = loaded.views()
    assert isinstance(before.codes, np.memmap) and isinstance(before.residuals, np.memmap)
    more = _docs(rng, 30)
    loaded.append(more)  # copies the saved rows into a scratch file; the folder is untouched
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    assert after == digest
    np.testing.assert_array_equal(before.codes, want_codes)
    tokens, offsets, _ = loaded.views()
    all_codes, all_residuals = codec.encode(np.concatenate(flat + more))
    np.testing.assert_array_equal(tokens.codes, all_codes)
    np.testing.assert_array_equal(tokens.residuals, all_residuals)

    chunks = list(loaded.code_chunks(rows=7))  # whole slots of about 7 tokens each
    lengths = np.array([m.shape[0] for m in flat + more])
    np.testing.assert_array_equal(np.concatenate([c for c, _ in chunks]), all_codes)
    np.testing.assert_array_equal(
        np.concatenate([s for _, s in chunks]), np.repeat(np.arange(len(lengths)), lengths)
    )
    assert len(chunks) > 5 and len({int(s[-1]) for _, s in chunks}) == len(chunks)

    keep = np.array([0, 3, 4, 44, len(flat) + 29])
    compact = loaded.compacted(keep)
    kept = [(flat + more)[s] for s in keep]
    k_codes, k_residuals = codec.encode(np.concatenate(kept))
    np.testing.assert_array_equal(compact.views()[0].codes, k_codes)
    np.testing.assert_array_equal(compact.views()[0].residuals, k_residuals)
    reverse = loaded.compacted(keep[::-1])  # out of order: still in the order asked
    r_codes, _ = codec.encode(np.concatenate(kept[::-1]))
    np.testing.assert_array_equal(reverse.views()[0].codes, r_codes)


def _reference_lists(n_centroids, codes, slots):
    pairs = np.unique(np.stack([codes, slots], axis=1), axis=0)
    offsets = np.zeros(n_centroids + 1, np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=n_centroids), out=offsets[1:])
    return offsets, pairs[:, 1].astype(np.int32)


def test_inverted_lists_merged_in_blocks_equal_one_build(monkeypatch):
    from late_interaction._index import ivf as ivf_module

    monkeypatch.setattr(ivf_module, "_MERGE_BLOCK", 7)  # many blocks per merge
    rng = np.random.default_rng(3)
    lists, codes_all, slots_all, slot = InvertedLists(50), [], [], 0
    for n_docs in (3, 1, 8, 2, 30, 5, 60, 1, 1):  # triggers merges of 2 and more segments
        lengths = rng.integers(1, 12, n_docs)
        codes = rng.integers(0, 50, lengths.sum())
        slots = np.repeat(np.arange(slot, slot + n_docs), lengths)
        lists = lists.appended(codes, slots)
        codes_all.append(codes)
        slots_all.append(slots)
        slot += n_docs
    offsets, slots = lists.arrays()
    want_offsets, want_slots = _reference_lists(
        50, np.concatenate(codes_all), np.concatenate(slots_all)
    )
    np.testing.assert_array_equal(offsets, want_offsets)
    np.testing.assert_array_equal(slots, want_slots)
    reloaded = InvertedLists.from_arrays(offsets, slots, slot).appended(
        np.array([4, 4, 9]), np.array([slot, slot, slot])
    )
    merged_offsets, merged_slots = reloaded.arrays()
    assert list(merged_slots[merged_offsets[4] : merged_offsets[5]][-1:]) == [slot]
    assert len(merged_slots) == len(slots) + 2


def test_a_failed_add_leaves_a_grown_compressed_index_as_before(
    fake_encoder, ref, monkeypatch, tmp_path
):
    """Several chunks are written to the scratch file, then the add fails: nothing changes,
    and a later add gives the same index as one that never failed."""
    from late_interaction._index import write_api

    monkeypatch.setattr(write_api, "_ADD_CHUNK", 8)
    ids, texts, _ = ref.make_corpus(90, seed=7)
    embeddings = fake_encoder.encode_documents(texts)
    config = IndexConfig(nbits=2, n_centroids=8, exact_scan_tokens=0, exact_scan_fraction=0.0)
    index = LateInteractionIndex(fake_encoder, config=config)
    index.add_embeddings(embeddings[:30], texts[:30], ids=ids[:30])
    tokens_before = index._state.snap.tokens
    codes_before = tokens_before.codes.copy()
    hits_before = index.search(texts[3], 5)
    bad = [*embeddings[30:60], np.full((3, fake_encoder.dim), np.nan, np.float32)]
    with pytest.raises(ValueError):
        index.add_embeddings(bad, texts[30:61], ids=ids[30:61])
    state = index._state
    boom = RuntimeError("disk gone")

    def fail_third(self, matrices, calls=[]):  # noqa: B006 - counts calls across chunks
        calls.append(1)
        if len(calls) == 3:
            raise boom
        return real_append(self, matrices)

    real_append = TokenStore.append
    monkeypatch.setattr(TokenStore, "append", fail_third)
    with pytest.raises(RuntimeError, match="disk gone"):
        index.add_embeddings(embeddings[30:60], texts[30:60], ids=ids[30:60])
    monkeypatch.setattr(TokenStore, "append", real_append)
    assert state.store.n_docs == 30 and len(index) == 30
    np.testing.assert_array_equal(tokens_before.codes, codes_before)
    assert [(h.id, h.score) for h in index.search(texts[3], 5)] == [
        (h.id, h.score) for h in hits_before
    ]
    for built in (index, clean := LateInteractionIndex(fake_encoder, config=config)):
        if built is clean:
            clean.add_embeddings(embeddings[:30], texts[:30], ids=ids[:30])
        built.add_embeddings(embeddings[30:], texts[30:], ids=ids[30:])
        built.add_embeddings(embeddings[40:45], texts[40:45], ids=ids[40:45])  # an upsert
        built.delete(ids[10:20])
        built.compact()
    index.save(tmp_path / "saved")
    index = LateInteractionIndex.load(tmp_path / "saved", model=fake_encoder)
    np.testing.assert_array_equal(index._state.snap.tokens.codes, clean._state.snap.tokens.codes)
    for query in texts[:40:7]:
        assert [(h.id, h.score) for h in index.search(query, 5)] == [
            (h.id, h.score) for h in clean.search(query, 5)
        ]
