"""The residual codec: bit packing, decoding against a per-token reference, training."""

from __future__ import annotations

import numpy as np
import pytest

from late_interaction._index.codec import ResidualCodec, centroid_count, unpack_buckets
from late_interaction._index.kmeans import NearestCentroid, nearest_centroids, spherical_kmeans
from late_interaction._index.residual_encoding import pack_buckets


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered(rng: np.random.Generator, n: int, dim: int, n_topics: int = 12) -> np.ndarray:
    topics = _unit(rng, n_topics, dim)
    x = topics[rng.integers(0, n_topics, n)] + 0.3 * _unit(rng, n, dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("nbits", [1, 2, 4])
@pytest.mark.parametrize("dim", [1, 5, 16, 13])
def test_pack_round_trip_is_exact(nbits, dim):
    rng = np.random.default_rng(dim * 10 + nbits)
    buckets = rng.integers(0, 2**nbits, size=(7, dim)).astype(np.uint8)
    packed = pack_buckets(buckets, nbits)
    assert packed.dtype == np.uint8
    assert packed.shape == (7, -(-dim * nbits // 8))
    np.testing.assert_array_equal(unpack_buckets(packed, nbits, dim), buckets)


def test_pack_layout_first_dimension_in_the_high_bits():
    # nbits=2, dims (3, 0, 1, 2) -> 0b11_00_01_10; a fifth dim starts a zero-padded byte.
    packed = pack_buckets(np.array([[3, 0, 1, 2, 1]]), 2)
    assert packed.tolist() == [[0b11000110, 0b01000000]]


def _reference_decode(codec: ResidualCodec, codes, packed) -> np.ndarray:
    """Per token, per dimension: read the bits, add the weight, normalise."""
    out = np.zeros((len(codes), codec.dim), dtype=np.float64)
    per_byte = 8 // codec.nbits
    for i, code in enumerate(codes):
        for d in range(codec.dim):
            byte = int(packed[i, d // per_byte])
            shift = 8 - codec.nbits * (d % per_byte + 1)
            bucket = (byte >> shift) & (2**codec.nbits - 1)
            out[i, d] = float(codec.centroids16[code, d]) + float(codec.weights[bucket])
        out[i] /= np.linalg.norm(out[i])
    return out


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_decode_matches_the_per_token_reference(nbits):
    rng = np.random.default_rng(nbits)
    vectors = _clustered(rng, 600, 12)
    codec = ResidualCodec.train(vectors, nbits, n_centroids=16)
    codes, packed = codec.encode(vectors[:40])
    assert codes.dtype == np.uint16
    assert packed.shape == (40, codec.packed_width)
    decoded = codec.decode(codes, packed)
    assert decoded.dtype == np.float32
    np.testing.assert_allclose(decoded, _reference_decode(codec, codes, packed), atol=1e-6)


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_similarities_are_dot_products_with_the_reference_decoding(nbits):
    # The scoring path of a compressed store divides dot products by the row norms instead of
    # normalising the rows: it must equal the reference decoding times the query.
    rng = np.random.default_rng(10 + nbits)
    vectors = _clustered(rng, 600, 12)
    codec = ResidualCodec.train(vectors, nbits, n_centroids=16)
    codes, packed = codec.encode(vectors[:50])
    query = rng.standard_normal((5, 12)).astype(np.float32)
    want = _reference_decode(codec, codes, packed) @ query.T
    np.testing.assert_allclose(codec.query_similarities(query, codes, packed).T, want, atol=1e-5)


@pytest.mark.parametrize(("nbits", "dim"), [(1, 12), (2, 13), (4, 12)])
def test_query_similarities_are_the_reference_decoding_query_major(nbits, dim):
    # The exact stage of a compressed search reads (n_query_tokens, n) dot products through
    # torch's BLAS; rows from read-only maps (a loaded index) and a padded last byte included.
    rng = np.random.default_rng(20 + nbits)
    vectors = _clustered(rng, 600, dim)
    codec = ResidualCodec.train(vectors, nbits, n_centroids=16)
    codes, packed = codec.encode(vectors[:50])
    codes.flags.writeable = packed.flags.writeable = False
    query = rng.standard_normal((5, dim)).astype(np.float32)
    query.flags.writeable = False
    want = query.astype(np.float64) @ _reference_decode(codec, codes, packed).T
    got = codec.query_similarities(query, codes, packed)
    assert got.shape == (5, 50) and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_decoded_rows_read_slices_row_numbers_and_masks_alike(tmp_path):
    from late_interaction._index.codec import DecodedRows

    rng = np.random.default_rng(30)
    vectors = _clustered(rng, 400, 12)
    codec = ResidualCodec.train(vectors, 2, n_centroids=16)
    codes, packed = codec.encode(vectors[:60])
    np.save(tmp_path / "codes.npy", codes)
    np.save(tmp_path / "residuals.npy", packed)
    rows = DecodedRows(codec, np.load(tmp_path / "codes.npy", mmap_mode="r"),
                       np.load(tmp_path / "residuals.npy", mmap_mode="r"))  # fmt: skip
    want = _reference_decode(codec, codes, packed)
    picked = np.array([59, 3, 3, 17, 0])
    mask = np.zeros(60, dtype=bool)
    mask[[2, 40, 41]] = True
    np.testing.assert_allclose(rows[10:20], want[10:20], atol=1e-6)
    np.testing.assert_allclose(rows[picked], want[picked], atol=1e-6)
    np.testing.assert_allclose(rows[mask], want[mask], atol=1e-6)
    query = rng.standard_normal((3, 12)).astype(np.float32)
    np.testing.assert_allclose(rows.query_similarities(query, picked), query @ want[picked].T,
                               atol=1e-5)  # fmt: skip


def test_encode_picks_the_nearest_centroid_and_the_right_bucket():
    rng = np.random.default_rng(3)
    vectors = _clustered(rng, 500, 8)
    codec = ResidualCodec.train(vectors, 2, n_centroids=8)
    codes, packed = codec.encode(vectors)
    np.testing.assert_array_equal(codes, (vectors @ codec.centroids.T).argmax(axis=1))
    residual = vectors - codec.centroids[codes]
    buckets = unpack_buckets(packed, 2, 8)
    edges = np.concatenate([[-np.inf], codec.cutoffs, [np.inf]])
    assert ((edges[buckets] <= residual) & (residual < edges[buckets.astype(int) + 1])).all()


def test_more_bits_reconstruct_better():
    rng = np.random.default_rng(4)
    vectors = _clustered(rng, 3000, 32)
    errors = []
    for nbits in (1, 2, 4):
        codec = ResidualCodec.train(vectors, nbits, n_centroids=32)
        decoded = codec.decode(*codec.encode(vectors))
        errors.append(float(1 - (decoded * vectors).sum(axis=1).mean()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01  # 4 bits: mean cosine above 0.99


def test_buckets_are_residual_quantiles():
    rng = np.random.default_rng(5)
    codec = ResidualCodec.train(_clustered(rng, 2000, 16), 2, n_centroids=8)
    assert np.all(np.diff(codec.cutoffs) > 0)
    # Each weight lies inside its bucket: quantile (i + 0.5) / 4 between i / 4 and (i + 1) / 4.
    edges = np.concatenate([[-np.inf], codec.cutoffs, [np.inf]])
    assert np.all((edges[:-1] <= codec.weights) & (codec.weights <= edges[1:]))


def test_checksum_and_arrays_round_trip():
    rng = np.random.default_rng(6)
    vectors = _clustered(rng, 400, 8)
    codec = ResidualCodec.train(vectors, 2, n_centroids=8)
    again = ResidualCodec.from_arrays(codec.arrays(), 2)
    assert again.checksum() == codec.checksum()
    codes, packed = codec.encode(vectors)
    np.testing.assert_array_equal(again.decode(codes, packed), codec.decode(codes, packed))
    assert ResidualCodec.train(vectors, 2, n_centroids=8, seed=2).checksum() != codec.checksum()


def test_centroid_count_rule_and_cap():
    assert centroid_count(1_100_000) == 16_384  # SciFact-sized, as colbert-ai
    assert centroid_count(100_000_000) == 131_072  # ~1M passages
    assert centroid_count(1_000) == 64  # capped: at least 8 vectors per centroid
    assert centroid_count(3) == 1


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(7)
    vectors = _clustered(rng, 2000, 16, n_topics=4)
    centroids = spherical_kmeans(vectors, 4, niters=10)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-5)
    assign = nearest_centroids(vectors, centroids)
    assert len(np.unique(assign)) == 4


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="nbits must be one of"):
        ResidualCodec.train(np.eye(4, dtype=np.float32), 3)
    with pytest.raises(ValueError, match="n >= 1"):
        ResidualCodec.train(np.ones((0, 4), np.float32), 2)


def test_a_one_token_corpus_still_trains():
    vector = np.array([[0.6, 0.8, 0.0, 0.0]], np.float32)
    codec = ResidualCodec.train(vector, 2)
    assert codec.n_centroids == 1
    np.testing.assert_allclose(codec.decode(*codec.encode(vector)), vector, atol=1e-3)
    with pytest.raises(ValueError, match="k-means needs"):
        spherical_kmeans(np.eye(3, dtype=np.float32), 5)


def test_two_level_assignment_finds_the_nearest_centroid_almost_always():
    # Many centroids (above the exact threshold): the two-level path, checked against brute force.
    rng = np.random.default_rng(11)
    centroids = rng.normal(size=(2048, 24)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    vectors = centroids[rng.integers(0, 2048, 3000)] + rng.normal(0, 0.05, (3000, 24))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    nearest = NearestCentroid(centroids)
    assert nearest.two_level
    got = nearest(vectors)
    exact = (vectors @ centroids.T).argmax(axis=1)
    assert (got == exact).mean() > 0.97
    best = (vectors @ centroids.T).max(axis=1)
    chosen = (vectors * centroids[got]).sum(axis=1)
    assert (best - chosen).mean() < 0.005  # a miss is a near centroid
    np.testing.assert_array_equal(NearestCentroid(centroids, exact=True)(vectors), exact)


def test_kmeans_with_two_level_assignment_matches_exact_quality():
    rng = np.random.default_rng(12)
    vectors = _clustered(rng, 12_000, 16, n_topics=64)
    fast = spherical_kmeans(vectors, 1100, niters=3)
    slow = spherical_kmeans(vectors, 1100, niters=3, exact=True)

    def fit(centroids):
        return float((vectors @ centroids.T).max(axis=1).mean())

    assert fit(fast) > fit(slow) - 0.005
