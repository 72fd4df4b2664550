"""ColBERTv2's residual codec: a token is its nearest centroid plus a few bits per dimension.

Training (on a sample of the corpus's token vectors): spherical k-means centroids (``kmeans.py``);
then, on held-out vectors, the residuals ``vector - nearest centroid`` give global bucket
cutoffs (quantiles at ``i / 2**nbits``) and bucket weights (quantiles at ``(i + 0.5) / 2**nbits``),
shared by every dimension. Encoding stores the centroid id and, per dimension, the bucket of the
residual, packed ``nbits`` to the byte; decoding adds the bucket weights to the centroid and
L2-normalises (ColBERT token vectors are unit vectors).

Centroids are rounded to float16 before the buckets are fitted, so the codec written to disk
(float16 centroids) decodes exactly what the trained one did.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from late_interaction._index.kmeans import NearestCentroid, spherical_kmeans
from late_interaction._index.residual_encoding import encode_residuals
from late_interaction._index.torch_blas import matmul_nt

NBITS = (1, 2, 4)
_HELD_OUT_FRACTION, _HELD_OUT_MAX = 0.05, 50_000  # colbert-ai's residual-bucket sample


def centroid_count(n_tokens: int, n_sample: int | None = None) -> int:
    """Number of centroids for a corpus of ``n_tokens`` token vectors.

    ColBERTv2/PLAID's ``2 ** floor(log2(16 * sqrt(n_tokens)))`` (16,384 for 1.1M tokens),
    capped at the largest power of two that leaves at least 8 training vectors per centroid, so
    a small corpus (or sample) still gets centroids that summarise something.

    Args:
        n_tokens: Token vectors in the corpus.
        n_sample: Vectors k-means trains on (default ``n_tokens``).
    """
    n_tokens = max(int(n_tokens), 1)
    rule = 2 ** math.floor(math.log2(16 * math.sqrt(n_tokens)))
    n_sample = n_tokens if n_sample is None else max(int(n_sample), 1)
    cap = 2 ** math.floor(math.log2(max(n_sample // 8, 1)))
    return int(min(rule, cap))


_OUTGROWN = 4  # the rule's centroid count over the codec's before adds are warned about


def outgrown_message(n_centroids: int, n_tokens: int) -> str | None:
    """What to tell a user whose index outgrew its codec (None while it has not).

    Why: the first ``add`` of a compressed index sizes and trains the codec, and later adds
    only encode against it. The frameworks add in batches (a LangChain ``add_documents`` loop,
    a LlamaIndex ingestion pipeline), so a codec sized for a first batch of tens of documents
    would quietly serve a corpus of thousands.

    Args:
        n_centroids: The codec's centroids.
        n_tokens: Token vectors the index holds now.
    """
    wanted = centroid_count(n_tokens)
    if wanted < _OUTGROWN * n_centroids:
        return None
    return (
        f"this compressed index's codec has {n_centroids:,} centroids, sized by its first add; "
        f"the index now holds {n_tokens:,} token vectors, for which ColBERTv2's rule gives "
        f"{wanted:,}. Documents added since are compressed against the old centroids, which "
        "costs search quality: call index.retrain() once the corpus is in (it re-encodes every "
        "document from its text), or add the corpus in one call. IndexConfig(n_centroids=...) "
        "fixes the count (and silences this warning)."
    )


def _check_nbits(nbits: int) -> int:
    if isinstance(nbits, bool) or nbits not in NBITS:
        msg = f"nbits must be one of {NBITS}; got {nbits!r}."
        raise ValueError(msg)
    return int(nbits)


def unpack_buckets(packed: np.ndarray, nbits: int, dim: int) -> np.ndarray:
    """Inverse of ``residual_encoding.pack_buckets``: uint8 bucket ids of shape ``(n, dim)``."""
    per_byte = 8 // _check_nbits(nbits)
    shifts = np.array([8 - nbits * (j + 1) for j in range(per_byte)], dtype=np.uint8)
    mask = np.uint8(2**nbits - 1)
    out = (packed[:, :, None] >> shifts) & mask
    return out.reshape(packed.shape[0], -1)[:, :dim]


class ResidualCodec:
    """Centroids plus bucket cutoffs and weights: encodes unit vectors to ids + packed bits.

    Args:
        centroids: Shape ``(n_centroids, dim)``; stored as float16 (rounded here).
        cutoffs: float32 bucket boundaries, ``2**nbits - 1`` ascending values.
        weights: float32 bucket values, ``2**nbits``.
        nbits: Bits per dimension of the residual (1, 2 or 4).

    Raises:
        ValueError: If ``nbits`` or the array shapes are invalid.
    """

    def __init__(
        self, centroids: np.ndarray, cutoffs: np.ndarray, weights: np.ndarray, nbits: int
    ) -> None:
        self.nbits = _check_nbits(nbits)
        centroids = np.asarray(centroids)
        cutoffs = np.asarray(cutoffs, dtype=np.float32).ravel()
        weights = np.asarray(weights, dtype=np.float32).ravel()
        if (
            centroids.ndim != 2
            or centroids.shape[0] < 1
            or cutoffs.shape != (2**nbits - 1,)
            or weights.shape != (2**nbits,)
        ):
            msg = (
                f"a {nbits}-bit codec needs centroids (n >= 1, dim), {2**nbits - 1} cutoffs and "
                f"{2**nbits} weights; got {centroids.shape}, {cutoffs.shape}, {weights.shape}."
            )
            raise ValueError(msg)
        self.centroids16 = np.ascontiguousarray(centroids, dtype=np.float16)
        # Performance note: decoding gathers centroid rows; float32 rows avoid widening per call.
        self.centroids = self.centroids16.astype(np.float32)
        self.cutoffs, self.weights = cutoffs, weights
        self.dim = int(centroids.shape[1])
        per_byte = 8 // nbits
        # Byte value -> the weights of the per_byte dimensions it holds: decoding is one lookup.
        self._lut = weights[
            unpack_buckets(np.arange(256, dtype=np.uint8)[:, None], nbits, per_byte)
        ]
        self.code_dtype = np.dtype(np.uint16 if self.n_centroids <= 2**16 else np.uint32)
        self._nearest: NearestCentroid | None = None  # built on the first encode
        # Mean squared residual norm of the held-out training vectors (None: not known, e.g. a
        # codec read from a folder saved without it): the reference of the drift measure.
        self.trained_residual: float | None = None

    @property
    def nearest(self) -> NearestCentroid:
        """The nearest-centroid assignment of :meth:`encode` (two-level for many centroids)."""
        if self._nearest is None:
            self._nearest = NearestCentroid(self.centroids)
        return self._nearest

    @property
    def n_centroids(self) -> int:
        """Number of centroids."""
        return int(self.centroids.shape[0])

    @property
    def packed_width(self) -> int:
        """Bytes of packed residual per token: ``ceil(dim * nbits / 8)``."""
        return -(-self.dim * self.nbits // 8)

    @classmethod
    def train(
        cls,
        vectors: np.ndarray,
        nbits: int,
        *,
        n_centroids: int | None = None,
        niters: int = 4,
        seed: int = 1,
    ) -> ResidualCodec:
        """Fit centroids and residual buckets on a sample of token vectors.

        Args:
            vectors: Unit-norm token vectors, shape ``(n, dim)`` with ``n >= 1``.
            nbits: Bits per dimension (1, 2 or 4).
            n_centroids: Centroid count; None: :func:`centroid_count` of the k-means sample.
            niters: k-means iterations.
            seed: Seed of the held-out split and the k-means initialisation.

        Returns:
            The trained codec.

        Raises:
            ValueError: If ``nbits`` is invalid or there are too few vectors.
        """
        nbits = _check_nbits(nbits)
        vectors = np.asarray(vectors, dtype=np.float32)
        n = vectors.shape[0]
        if vectors.ndim != 2 or n < 1:
            msg = f"codec training needs token vectors of shape (n >= 1, dim); got {vectors.shape}."
            raise ValueError(msg)
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        n_held = min(max(int(n * _HELD_OUT_FRACTION), 1), _HELD_OUT_MAX)
        held, fit = vectors[order[:n_held]], vectors[order[n_held:]]
        if fit.shape[0] == 0:  # a one-token corpus: fit and hold out the same vector
            fit = held
        k = centroid_count(fit.shape[0]) if n_centroids is None else int(n_centroids)
        centroids = spherical_kmeans(fit, min(k, fit.shape[0]), niters=niters, seed=seed)
        centroids = centroids.astype(np.float16).astype(np.float32)
        residuals = held - centroids[NearestCentroid(centroids)(held)]
        levels = 2**nbits
        cutoffs = np.quantile(residuals, np.arange(1, levels) / levels)
        weights = np.quantile(residuals, (np.arange(levels) + 0.5) / levels)
        codec = cls(centroids, cutoffs, weights, nbits)
        codec.trained_residual = float(np.einsum("ij,ij->i", residuals, residuals).mean())
        return codec

    def encode(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centroid ids and packed residual buckets of ``vectors`` (shape ``(n, dim)``).

        Returns:
            ``(codes, packed)``: ``(n,)`` of :attr:`code_dtype` and ``(n, packed_width)`` uint8.
        """
        codes, packed, _ = self.encode_with_error(vectors)
        return codes, packed

    def encode_with_error(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """:meth:`encode`, plus the sum of squared residual norms (for the drift measure)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        codes = self.nearest(vectors)
        packed, error = encode_residuals(vectors, codes, self.centroids, self.cutoffs, self.nbits)
        return codes.astype(self.code_dtype), packed, error

    def decode(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """Unit-norm float32 vectors of shape ``(n, dim)`` from ids and packed residuals."""
        out, norms = self._decode_unnormalised(codes, packed)
        out /= norms[:, None]
        return out

    def query_similarities(
        self, query: np.ndarray, codes: np.ndarray, packed: np.ndarray
    ) -> np.ndarray:
        """``query @ decode(codes, packed).T``, float32 ``(n_query_tokens, n)``: query-major.

        Performance note: each token's dot products are divided by its norm instead of the
        token itself, one pass over ``n x n_query_tokens`` values instead of ``n x dim``
        (``benchmarks/results/compressed-*-ab-similarities.md``); the product runs through
        torch's BLAS, and query-major so that MaxSim's segmented max runs along contiguous rows
        (``compressed-*-ab-querymajor.md``).
        """
        out, norms = self._decode_unnormalised(codes, packed)
        sims = matmul_nt(query, out)
        sims /= norms
        return sims

    def _decode_unnormalised(
        self, codes: np.ndarray, packed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Centroid + bucket weights per row (float32 ``(n, dim)``) and the rows' norms."""
        # Performance note: np.take is ~3x faster than fancy indexing for these gathers, and
        # einsum norms ~4x faster than np.linalg.norm; decoding is most of a compressed search.
        out = np.take(self._lut, packed, axis=0).reshape(packed.shape[0], -1)
        if out.shape[1] != self.dim:  # the last byte was zero-padded
            out = np.ascontiguousarray(out[:, : self.dim])
        out += np.take(self.centroids, codes, axis=0)
        norms = np.maximum(np.sqrt(np.einsum("ij,ij->i", out, out)), 1e-12)
        return out, norms

    def checksum(self) -> str:
        """sha256 of nbits, centroids (float16), cutoffs and weights: the codec's identity."""
        digest = hashlib.sha256(f"nbits={self.nbits};dim={self.dim};".encode())
        for array in (self.centroids16, self.cutoffs, self.weights):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays that define the codec (what :meth:`from_arrays` takes back)."""
        return {"centroids": self.centroids16, "cutoffs": self.cutoffs, "weights": self.weights}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], nbits: int) -> ResidualCodec:
        """Rebuild a codec from :meth:`arrays` output."""
        return cls(arrays["centroids"], arrays["cutoffs"], arrays["weights"], nbits)


class DecodedRows:
    """Read-only, array-like view of compressed token rows that decodes what it is indexed with.

    ``rows[a:b]`` and ``rows[int_array]`` return float32 unit vectors, so exact MaxSim
    (:func:`late_interaction.scoring.score_slots`) reads a compressed store as it reads an
    exact one, decoding only the rows it scores.

    Args:
        codec: The codec the rows were encoded with.
        codes: Centroid ids. Shape: ``(n_tokens,)``.
        residuals: Packed residuals. Shape: ``(n_tokens, codec.packed_width)``.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, codec: ResidualCodec, codes: np.ndarray, residuals: np.ndarray) -> None:
        self.codec, self.codes, self.residuals = codec, codes, residuals
        self.shape = (int(codes.shape[0]), codec.dim)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice | np.ndarray) -> np.ndarray:
        return self.codec.decode(np.asarray(self.codes[key]), np.asarray(self.residuals[key]))

    def query_similarities(self, query: np.ndarray, key: slice | np.ndarray) -> np.ndarray:
        """``query @ self[key].T`` (see :meth:`ResidualCodec.query_similarities`)."""
        codes, packed = np.asarray(self.codes[key]), np.asarray(self.residuals[key])
        return self.codec.query_similarities(query, codes, packed)
