"""VoyagerTokenIndex: integer token ids, own live set, k clamping, deletion, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from late_interaction import IndexConfig
from late_interaction._index.hnsw import VoyagerTokenIndex
from late_interaction.exceptions import IndexFormatError


def _unit(rng, n, dim=12):
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("space", ["cosine", "inner_product"])
def test_query_finds_exact_neighbours_with_wide_ef(space):
    rng = np.random.default_rng(0)
    vecs = _unit(rng, 300)
    index = VoyagerTokenIndex(12, space=space)
    index.add(vecs[:100], 0)
    index.add(vecs[100:], 100)  # second bulk add grows capacity
    q = _unit(rng, 5)
    ids, _ = index.query(q, k=10, query_ef=300)
    brute = np.argsort(-(q @ vecs.T), axis=1)[:, :10]
    for got, want in zip(ids, brute, strict=True):
        assert set(got.tolist()) == set(want.tolist())


def test_ids_must_be_appended_in_order():
    index = VoyagerTokenIndex(12)
    index.add(_unit(np.random.default_rng(1), 3), 0)
    with pytest.raises(ValueError, match="expected 3"):
        index.add(_unit(np.random.default_rng(2), 3), 5)


def test_k_is_clamped_to_live_count_and_deleted_ids_vanish():
    rng = np.random.default_rng(3)
    vecs = _unit(rng, 20)
    index = VoyagerTokenIndex(12)
    index.add(vecs, 0)
    index.mark_deleted(np.arange(0, 15))
    index.mark_deleted(np.array([3, 4]))  # deleting twice is a no-op, not Voyager's RuntimeError
    assert index.n_live == 5 and index.num_elements == 20
    ids, _dists = index.query(vecs[:2], k=50, query_ef=10)  # Voyager alone raises RecallError here
    assert ids.shape == (2, 5)
    assert set(ids.ravel().tolist()) == set(range(15, 20))
    index.mark_deleted(np.arange(20))
    ids, _ = index.query(vecs[:2], k=5, query_ef=10)
    assert ids.shape == (2, 0)


def test_save_load_keeps_deletions(tmp_path):
    rng = np.random.default_rng(4)
    vecs = _unit(rng, 50)
    index = VoyagerTokenIndex.from_config(12, IndexConfig(hnsw_m=8))
    index.add(vecs, 0)
    index.mark_deleted(np.arange(10))
    index.save(tmp_path / "t.voyager")
    live = np.ones(50, bool)
    live[:10] = False
    loaded = VoyagerTokenIndex.load(tmp_path / "t.voyager", dim=12, space="cosine", live=live)
    assert loaded.n_live == 40
    ids, _ = loaded.query(vecs[:10], k=40, query_ef=100)
    assert ids.min() >= 10
    with pytest.raises(IndexFormatError, match="dim 12"):
        VoyagerTokenIndex.load(tmp_path / "t.voyager", dim=13, space="cosine", live=live)
    with pytest.raises(IndexFormatError):
        VoyagerTokenIndex.load(tmp_path / "t.voyager", dim=12, space="inner_product", live=live)
    data = (tmp_path / "t.voyager").read_bytes()
    (tmp_path / "t.voyager").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFormatError, match="damaged"):
        VoyagerTokenIndex.load(tmp_path / "t.voyager", dim=12, space="cosine", live=live)
