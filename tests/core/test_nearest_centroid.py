"""Two-level nearest-centroid assignment: the rule against a per-vector reference, and threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from late_interaction._index.blas_threads import blas_threads, single_threaded_blas
from late_interaction._index.kmeans import NearestCentroid


def test_two_level_answer_is_the_best_centroid_of_the_best_group():
    rng = np.random.default_rng(21)
    centroids = rng.normal(size=(1500, 16)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    vectors = rng.normal(size=(2500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    nearest = NearestCentroid(centroids)
    assert nearest.two_level and len(nearest.groups) > 1
    got = nearest(vectors)
    # Per vector, in float64: the group whose centre scores highest, then its best centroid.
    wide = vectors.astype(np.float64)
    for i, x in enumerate(wide):
        ids = nearest.groups[int(np.argmax(nearest.centres.astype(np.float64) @ x))]
        scores = centroids[ids].astype(np.float64) @ x
        want = ids[int(np.argmax(scores))]
        # float32 products may break a near tie the other way; anything else is a bug.
        assert got[i] == want or scores.max() - float(centroids[got[i]] @ x) < 1e-5, i
    assert got.dtype == np.int64


def _data(n: int = 9000, k: int = 2048, dim: int = 16):
    rng = np.random.default_rng(22)
    centroids = rng.normal(size=(k, dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return centroids, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_rows_spread_over_threads_give_the_same_answer_with_blas_limited_there(monkeypatch):
    centroids, vectors = _data()
    nearest = NearestCentroid(centroids)
    serial = nearest(vectors, threads=1)
    seen = []  # (python thread, BLAS threads) of every two-level call
    two_level = nearest._two_level

    def recorded(block):
        seen.append((threading.get_ident(), blas_threads()))
        return two_level(block)

    monkeypatch.setattr(nearest, "_two_level", recorded)
    before = blas_threads()
    np.testing.assert_array_equal(nearest(vectors, threads=2), serial)
    assert len(seen) == 2  # two parts, run by the pool's threads, not the caller's
    assert threading.get_ident() not in {thread for thread, _ in seen}
    assert {limit for _, limit in seen} == {1}  # each with single-threaded BLAS
    assert blas_threads() == before  # and the process's limit is back


def test_blas_limit_is_restored_after_a_worker_raises(monkeypatch):
    centroids, vectors = _data()
    nearest = NearestCentroid(centroids)
    before = blas_threads()

    def broken(block):
        raise RuntimeError("worker failed")

    monkeypatch.setattr(nearest, "_two_level", broken)
    with pytest.raises(RuntimeError, match="worker failed"):
        nearest(vectors, threads=2)
    assert blas_threads() == before


def test_the_blas_limit_is_shared_by_concurrent_holders():
    before = blas_threads()
    inside = []

    def also_hold():
        with single_threaded_blas() as limited:
            inside.append(limited)

    with single_threaded_blas() as limited:
        assert limited and blas_threads() == 1
        other = threading.Thread(target=also_hold)
        other.start()
        other.join(5)
        assert inside == [True]
        assert blas_threads() == 1  # the other holder's exit left the limit to this one
    assert blas_threads() == before
