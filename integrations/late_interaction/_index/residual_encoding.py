"""The encode side of the residual codec: residuals to bucket ids, bucket ids to packed bytes.

:class:`~late_interaction._index.codec.ResidualCodec` assigns each token its nearest centroid
(``kmeans.py``); here the residual ``vector - centroid`` becomes, per dimension, the number of
bucket cutoffs at or below it, and those ``nbits``-bit bucket ids are packed to the byte, first
dimension in the highest bits. Building an index runs this for every token, so it works a
cache-sized block of rows at a time into reused buffers.
"""

from __future__ import annotations

import numpy as np

_ENCODE_BLOCK_BYTES = 256 * 2**10  # float32 residuals encoded per block: about an L2 cache


def _pack_multiplier(nbits: int) -> int:
    """Multiplier that gathers the buckets of one little-endian word of bytes into its top byte.

    Byte ``j`` of the word (bucket ``b_j`` at bit ``8 j``) times ``2 ** e_j`` lands at bit
    ``8 (p - 1) + nbits (p - 1 - j)``, its place in the packed byte shifted to the word's top
    byte (``p = 8 // nbits`` bytes per word). Every other product ``b_i 2 ** (8 i + e_j)`` falls
    on distinct bits below the top byte (no carries into it) or past the word (wrapped away);
    ``tests/core/test_codec.py`` checks every possible word against a per-bit reference.
    """
    per_byte = 8 // nbits
    return sum(
        2 ** (8 * (per_byte - 1) + nbits * (per_byte - 1 - j) - 8 * j) for j in range(per_byte)
    )


# nbits -> (the word holding one output byte's buckets, its multiplier)
_PACK_WORDS = {nbits: (np.dtype(f"<u{8 // nbits}"), _pack_multiplier(nbits)) for nbits in (1, 2, 4)}


def pack_buckets(buckets: np.ndarray, nbits: int) -> np.ndarray:
    """Pack per-dimension bucket ids (``< 2**nbits``) into bytes, first dimension highest.

    Args:
        buckets: Integer array of shape ``(n, dim)``.
        nbits: Bits per dimension (1, 2 or 4).

    Returns:
        uint8 array of shape ``(n, ceil(dim * nbits / 8))``; the last byte is zero-padded.

    Raises:
        ValueError: If ``nbits`` is not 1, 2 or 4.
    """
    if isinstance(nbits, bool) or nbits not in _PACK_WORDS:
        msg = f"nbits must be one of {tuple(_PACK_WORDS)}; got {nbits!r}."
        raise ValueError(msg)
    per_byte = 8 // nbits
    n, dim = buckets.shape
    width = -(-dim // per_byte)
    if dim == width * per_byte:
        padded = np.ascontiguousarray(buckets, dtype=np.uint8)
    else:
        padded = np.zeros((n, width * per_byte), dtype=np.uint8)
        padded[:, :dim] = buckets
    # Performance note: the ``per_byte`` buckets of an output byte are one little-endian word;
    # one multiply moves them all into the word's top byte (~5x faster than a shift-and-or
    # pass per bucket; benchmarks/results/compressed-build*-ab-encode.md).
    word, multiplier = _PACK_WORDS[nbits]
    words = padded.view(word).reshape(n, width)
    top = (words * word.type(multiplier)) >> word.type(8 * (per_byte - 1))
    return top.astype(np.uint8)


def encode_residuals(
    vectors: np.ndarray,
    codes: np.ndarray,
    centroids: np.ndarray,
    cutoffs: np.ndarray,
    nbits: int,
) -> tuple[np.ndarray, float]:
    """Packed residual buckets of ``vectors`` against their centroids, and the squared error.

    Args:
        vectors: float32, shape ``(n, dim)``.
        codes: The centroid of each vector: integers below ``len(centroids)``, shape ``(n,)``.
        centroids: float32, shape ``(n_centroids, dim)``.
        cutoffs: float32 ascending bucket boundaries, ``2**nbits - 1`` of them.
        nbits: Bits per dimension (1, 2 or 4).

    Returns:
        ``(packed, error)``: uint8 ``(n, ceil(dim * nbits / 8))`` and the sum of the squared
        residual norms.
    """
    n, dim = vectors.shape
    packed = np.empty((n, -(-dim * nbits // 8)), dtype=np.uint8)
    # Performance note: residuals, buckets and packing run a cache-sized block of rows at a
    # time into reused buffers (~2x faster than whole-chunk passes, which stream every
    # temporary through RAM; benchmarks/results/compressed-build*-ab-encode.md).
    rows = min(max(1, _ENCODE_BLOCK_BYTES // (4 * dim)), max(n, 1))
    residual_buf = np.empty((rows, dim), dtype=np.float32)
    bucket_buf = np.empty((rows, dim), dtype=np.uint8)
    above_buf = np.empty((rows, dim), dtype=bool)
    error = 0.0
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        residuals = residual_buf[: stop - start]
        buckets, above = bucket_buf[: stop - start], above_buf[: stop - start]
        # mode="clip" lets take write into ``out`` unbuffered; the codes are argmaxes over
        # the centroids (documented above), so none is out of range.
        np.take(centroids, codes[start:stop], axis=0, out=residuals, mode="clip")
        np.subtract(vectors[start:stop], residuals, out=residuals)
        error += float(np.einsum("ij,ij->", residuals, residuals))
        # Performance note: counting the cutoffs at or below each value (what searchsorted
        # side="right" returns) is ~20x faster than searchsorted for 1-15 cutoffs.
        buckets.fill(0)
        for cutoff in cutoffs:
            np.greater_equal(residuals, cutoff, out=above)
            buckets += above.view(np.uint8)
        packed[start:stop] = pack_buckets(buckets, nbits)
    return packed, error
