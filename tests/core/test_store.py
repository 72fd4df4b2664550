"""TokenStore / DocumentStore / metadata validation / chunked exact scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from late_interaction._index.document_store import (
    DocumentStore,
    normalise_metadata,
    validate_documents,
)
from late_interaction._index.token_store import TokenStore
from late_interaction._validation import as_token_matrices
from late_interaction.exceptions import DimensionMismatchError, IndexFormatError
from late_interaction.scoring import score_slots


def _matrices(rng, n, dim=8, max_len=12):
    return [
        rng.standard_normal((int(rng.integers(1, max_len)), dim)).astype(np.float32)
        for _ in range(n)
    ]


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_token_store_append_grow_and_views(dtype):
    rng = np.random.default_rng(0)
    store = TokenStore(8, dtype)
    batches = [_matrices(rng, n) for n in (1, 3, 40, 2)]  # forces several regrowths
    for batch in batches:
        store.append(batch)
    flat = [m for b in batches for m in b]
    tokens, offsets, token_doc = store.views()
    assert store.n_docs == len(flat) and tokens.dtype == np.dtype(dtype)
    assert offsets[0] == 0 and offsets[-1] == tokens.shape[0] == sum(len(m) for m in flat)
    tol = 1e-2 if dtype == "float16" else 0
    for slot, m in enumerate(flat):
        np.testing.assert_allclose(tokens[offsets[slot] : offsets[slot + 1]], m, atol=tol)
        assert (token_doc[offsets[slot] : offsets[slot + 1]] == slot).all()


def test_old_views_survive_appends():
    rng = np.random.default_rng(1)
    store = TokenStore(8, "float32")
    first = _matrices(rng, 2)
    store.append(first)
    tokens_before, offsets_before, _ = store.views()
    snapshot = tokens_before.copy()
    store.append(_matrices(rng, 200))
    np.testing.assert_array_equal(tokens_before, snapshot)
    assert len(offsets_before) == 3


def test_save_load_is_memory_mapped_and_equal(tmp_path):
    rng = np.random.default_rng(2)
    store = TokenStore(8, "float16")
    store.append(_matrices(rng, 30))
    store.save(tmp_path)
    loaded = TokenStore.load(tmp_path, dim=8, dtype="float16", n_docs=30, n_tokens=store.n_tokens)
    assert isinstance(loaded.views()[0], np.memmap)
    for a, b in zip(store.views(), loaded.views(), strict=True):
        np.testing.assert_array_equal(a, b)
    more = _matrices(rng, 5)
    loaded.append(more)  # appending to a read-only mmap copies into RAM first
    tokens, offsets, _ = loaded.views()
    np.testing.assert_allclose(tokens[offsets[30] : offsets[31]], more[0], atol=1e-2)


def test_load_rejects_wrong_shape(tmp_path):
    store = TokenStore(8, "float32")
    store.append(_matrices(np.random.default_rng(3), 4))
    store.save(tmp_path)
    with pytest.raises(IndexFormatError, match="expected"):
        TokenStore.load(tmp_path, dim=8, dtype="float32", n_docs=5, n_tokens=store.n_tokens)
    with pytest.raises(IndexFormatError):
        TokenStore.load(tmp_path, dim=8, dtype="float16", n_docs=4, n_tokens=store.n_tokens)


def test_compacted_keeps_chosen_slots():
    rng = np.random.default_rng(4)
    store = TokenStore(8, "float32")
    mats = _matrices(rng, 10)
    store.append(mats)
    keep = np.array([1, 4, 9])
    new = store.compacted(keep)
    tokens, offsets, token_doc = new.views()
    assert new.n_docs == 3 and token_doc.max() == 2
    for i, s in enumerate(keep):
        np.testing.assert_array_equal(tokens[offsets[i] : offsets[i + 1]], mats[s])


@pytest.mark.parametrize("chunk", [1, 7, 1_000_000])
def test_score_slots_matches_naive(chunk, ref):
    rng = np.random.default_rng(5)
    store = TokenStore(8, "float32")
    mats = _matrices(rng, 25)
    store.append(mats)
    tokens, offsets, _ = store.views()
    q = rng.standard_normal((4, 8)).astype(np.float32)
    slots = np.array([0, 1, 2, 5, 6, 11, 24])  # adjacent runs and gaps
    got = score_slots(q, tokens, offsets, slots, chunk_tokens=chunk)
    want = [ref.naive_maxsim(q, mats[s]) for s in slots]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_normalise_metadata():
    assert normalise_metadata(None, 0) == {}
    assert normalise_metadata({"a": (1, 2), "b": {"c": None}}, 0) == {"a": [1, 2], "b": {"c": None}}
    with pytest.raises(ValueError, match="JSON"):
        normalise_metadata({"when": object()}, 3)
    with pytest.raises(ValueError, match=r"metadatas\[1\]"):
        normalise_metadata({"x": float("nan")}, 1)
    with pytest.raises(TypeError, match="keys must be strings"):
        normalise_metadata({1: "a"}, 0)
    with pytest.raises(TypeError, match="must be a dict"):
        normalise_metadata(["a"], 0)


def test_validate_documents():
    ids, metas = validate_documents(["a", "b"], None, None)
    assert len(set(ids)) == 2 and all(len(i) == 32 for i in ids) and metas == [{}, {}]
    with pytest.raises(ValueError, match="duplicate ids"):
        validate_documents(["a", "b"], ["x", "x"], None)
    with pytest.raises(ValueError, match="2 ids for 1 texts"):
        validate_documents(["a"], ["x", "y"], None)
    with pytest.raises(TypeError, match="non-empty strings"):
        validate_documents(["a"], [1], None)
    with pytest.raises(ValueError, match="metadatas"):
        validate_documents(["a"], None, [{}, {}])


def test_as_token_matrices():
    with pytest.raises(DimensionMismatchError, match="dim 4"):
        as_token_matrices([np.ones((2, 3))], 4, "embeddings")
    with pytest.raises(ValueError, match="n_tokens >= 1"):
        as_token_matrices([np.ones((0, 4))], 4, "embeddings")
    with pytest.raises(ValueError, match="NaN"):
        as_token_matrices([np.full((1, 4), np.nan)], 4, "embeddings")


def test_document_store_round_trip(tmp_path):
    docs = DocumentStore()
    docs.append(["a", "b", "c"], ["A", "B", "C"], [{"x": 1}, {}, {"y": [1]}])
    live = np.array([True, False, True])
    docs.save(tmp_path, live)
    lines = (tmp_path / "docs.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[1]) == {"deleted": True}
    loaded, loaded_live = DocumentStore.load(tmp_path, 3)
    np.testing.assert_array_equal(loaded_live, live)
    assert loaded.ids == ["a", None, "c"] and loaded.metadatas[2] == {"y": [1]}
    with pytest.raises(IndexFormatError, match="3 records"):
        DocumentStore.load(tmp_path, 4)
    (tmp_path / "docs.jsonl").write_text("{not json\n", encoding="utf-8")
    with pytest.raises(IndexFormatError):
        DocumentStore.load(tmp_path, 1)
