"""The encode side of the residual codec against straightforward references.

Packing is checked on every possible output byte against a per-bit reference, and the blocked
encoder (residuals, buckets and packing a block of rows at a time) against a whole-array
reference on inputs spanning several blocks and a partial last one.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from late_interaction._index import residual_encoding
from late_interaction._index.codec import ResidualCodec
from late_interaction._index.residual_encoding import encode_residuals, pack_buckets


def _reference_pack(buckets: np.ndarray, nbits: int) -> np.ndarray:
    """Dimension ``d`` in bits ``8 - nbits * (d % per_byte + 1)`` of byte ``d // per_byte``."""
    per_byte = 8 // nbits
    n, dim = buckets.shape
    out = np.zeros((n, -(-dim // per_byte)), dtype=np.uint8)
    for i in range(n):
        for d in range(dim):
            out[i, d // per_byte] |= int(buckets[i, d]) << (8 - nbits * (d % per_byte + 1))
    return out


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_packing_matches_the_reference_on_every_possible_byte(nbits):
    per_byte = 8 // nbits
    # Every combination of per_byte bucket ids: each of the 256 output bytes once.
    every = np.array(list(itertools.product(range(2**nbits), repeat=per_byte)), dtype=np.uint8)
    assert every.shape == (256, per_byte)
    rows = every.reshape(64, 4 * per_byte)  # 4 output bytes per row
    packed = pack_buckets(rows, nbits)
    np.testing.assert_array_equal(packed, _reference_pack(rows, nbits))
    assert sorted(packed.ravel().tolist()) == list(range(256))


@pytest.mark.parametrize("nbits", [1, 2, 4])
@pytest.mark.parametrize("dim", [1, 3, 12, 13])
def test_packing_pads_a_partial_last_byte_with_zeros(nbits, dim):
    rng = np.random.default_rng(dim + 10 * nbits)
    buckets = rng.integers(0, 2**nbits, size=(9, dim))  # int64 input, as a caller may pass
    np.testing.assert_array_equal(pack_buckets(buckets, nbits), _reference_pack(buckets, nbits))


def test_packing_refuses_other_widths():
    with pytest.raises(ValueError, match="nbits must be one of"):
        pack_buckets(np.zeros((1, 8), np.uint8), 3)


def _reference_encode(vectors, codes, centroids, cutoffs, nbits):
    residuals = vectors.astype(np.float64) - centroids[codes]
    buckets = np.searchsorted(cutoffs, residuals.astype(np.float32), side="right")
    return _reference_pack(buckets, nbits), float((residuals**2).sum())


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_blocked_encoding_matches_the_whole_array_reference(nbits, monkeypatch):
    dim = 12
    rows_per_block = 7
    monkeypatch.setattr(residual_encoding, "_ENCODE_BLOCK_BYTES", 4 * dim * rows_per_block)
    rng = np.random.default_rng(nbits)
    n = 3 * rows_per_block + 5  # three full blocks and a partial one
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    centroids = rng.standard_normal((5, dim)).astype(np.float32)
    codes = rng.integers(0, 5, n)
    cutoffs = np.sort(rng.standard_normal(2**nbits - 1)).astype(np.float32)
    # Residuals exactly on the cutoffs (centroid 0 is zero) go to the bucket above.
    centroids[0], codes[0] = 0.0, 0
    on = min(dim, len(cutoffs))
    vectors[0, :on] = cutoffs[:on]
    packed, error = encode_residuals(vectors, codes, centroids, cutoffs, nbits)
    want_packed, want_error = _reference_encode(vectors, codes, centroids, cutoffs, nbits)
    np.testing.assert_array_equal(packed, want_packed)
    assert error == pytest.approx(want_error, rel=1e-5)


def test_codec_encode_spans_blocks_like_one_block(monkeypatch):
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((400, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    codec = ResidualCodec.train(vectors, 2, n_centroids=8)
    codes, packed, error = codec.encode_with_error(vectors)
    monkeypatch.setattr(residual_encoding, "_ENCODE_BLOCK_BYTES", 4 * 16 * 9)
    codes_b, packed_b, error_b = codec.encode_with_error(vectors)
    np.testing.assert_array_equal(codes_b, codes)
    np.testing.assert_array_equal(packed_b, packed)
    assert error_b == pytest.approx(error, rel=1e-5)
    assert packed.shape == (400, 4)
    np.testing.assert_array_equal(
        packed,
        _reference_encode(vectors, codes.astype(np.int64), codec.centroids, codec.cutoffs, 2)[0],
    )
