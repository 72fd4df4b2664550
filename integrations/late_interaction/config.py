"""Every setting and its default, once: frozen, JSON-round-trippable configuration objects.

``EncoderConfig`` describes how a checkpoint turns text into token matrices (owned by the encoder),
with the built-in defaults of each checkpoint format in :data:`FORMAT_DEFAULTS`; ``IndexConfig``
describes how a :class:`~late_interaction.LateInteractionIndex` stores and searches them. Both are
saved as JSON beside what they describe.
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from late_interaction._validation import positive_int

__all__ = ["FORMAT_DEFAULTS", "EncoderConfig", "IndexConfig"]

_T = TypeVar("_T")
_PUNCT = tuple(string.punctuation)

#: Built-in encoder settings per checkpoint format: the last step of "explicit argument >
#: checkpoint config > format default". ``"plain"`` covers ``"sentence-transformers"`` and ``"hf"``.
FORMAT_DEFAULTS: dict[str, dict[str, Any]] = {
    # PyLate's ColBERT.__init__ defaults (also sentence-transformers 6's native format, whose
    # saves carry every setting).
    "pylate": {
        "query_prefix": "[Q] ",
        "document_prefix": "[D] ",
        "query_length": 32,
        "document_length": 180,
        "do_query_expansion": True,
        "attend_to_expansion_tokens": False,
        "skiplist_words": _PUNCT,
        "skiplist_rule": "vocab",
        "keep_special_tokens": True,
        "dense_weight": 0.0,
    },
    # colbert-ai's settings.py defaults.
    "stanford": {
        "query_prefix": "[unused0]",
        "document_prefix": "[unused1]",
        "query_length": 32,
        "document_length": 220,
        "do_query_expansion": True,
        "attend_to_expansion_tokens": False,
        "skiplist_words": _PUNCT,
        "skiplist_rule": "encode",
        "keep_special_tokens": True,
        "dense_weight": 0.0,
    },
    # Encoders not trained as ColBERT (the embedded MiniLM default included): no markers, no
    # expansion; chosen by measurement (benchmarks/results/probe-scifact+cranfield-20261123.md).
    # query_length 128, not 32: without expansion a short query is unchanged, and a long one
    # (a question condensed from a chat) keeps its end. Measured in
    # benchmarks/results/study-plain-defaults-20261130.md: nDCG@10 within noise on the test
    # splits (SciFact 0.7099 vs 0.7076, Cranfield 0.3802 vs 0.3839), and with a chat-style
    # preamble before each query 0.6885 vs 0.4852 (SciFact) and 0.3304 vs 0.2163 (Cranfield).
    # dense_weight 0.25: the hybrid MaxSim/|q| + 0.25 cos(dense) won on the tuning splits of both
    # sets by the study's pre-fixed rule (same file); trained ColBERT formats above keep it off.
    "plain": {
        "query_prefix": "",
        "document_prefix": "",
        "query_length": 128,
        "document_length": 256,
        "do_query_expansion": False,
        "attend_to_expansion_tokens": False,
        "skiplist_words": _PUNCT,
        "skiplist_rule": "encode",
        "keep_special_tokens": True,
        "dense_weight": 0.25,
    },
}
_PYLATE = FORMAT_DEFAULTS["pylate"]


def _from_dict(cls: type[_T], data: dict[str, Any]) -> _T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        msg = f"unknown {cls.__name__} keys {unknown}; expected a subset of {sorted(names)}."
        raise ValueError(msg)
    return cls(**data)


@dataclass(frozen=True)
class EncoderConfig:
    """How a checkpoint encodes queries and documents.

    Attributes:
        name_or_path: Hub id or local folder the weights came from.
        checkpoint_format: ``"pylate"``, ``"stanford"``, ``"multi-vector-encoder"``
            (sentence-transformers 6's native format), ``"sentence-transformers"`` or ``"hf"``.
        dim: Output dimension of each token vector.
        query_prefix: Marker inserted after the first special token of queries ("" for none).
        document_prefix: Marker inserted after the first special token of documents.
        query_length: Maximum query length in tokens (and the [MASK]-expansion target).
        document_length: Maximum document length in tokens (longer documents are truncated).
        do_query_expansion: Pad queries to ``query_length`` with the mask/pad token and keep them.
        attend_to_expansion_tokens: Let the encoder attend to expansion tokens.
        skiplist_words: Document tokens dropped after encoding (punctuation by default).
        keep_special_tokens: Keep the [CLS]/[SEP]-like tokens the tokenizer adds, in query and
            document matrices (markers and [MASK] expansions are kept either way).
        skiplist_rule: How a skiplist word becomes a token id: ``"vocab"`` (PyLate,
            ``convert_tokens_to_ids``) or ``"encode"`` (colbert-ai and fastembed, the first id of
            ``encode(word, add_special_tokens=False)``). They differ for some non-WordPiece
            tokenizers only.
        dense_weight: Weight ``w`` of the dense cosine in the fused relevance score,
            ``(MaxSim / n_query_rows + w * cos(dense)) / (1 + w)``; 0 scores by MaxSim alone.
            The dense vector of a text is its mean-pooled backbone output from the same forward
            pass (``ColBERT.encode_documents(..., return_dense=True)``). A scoring rule, not
            part of the embeddings: ``ColBERT.fingerprint()`` leaves it out.
    """

    #: The fields a user may set (everything but the checkpoint's identity and dim): what
    #: ``ColBERT.from_pretrained`` accepts and what a saved index records to rebuild its encoder.
    SETTINGS: ClassVar[tuple[str, ...]] = (
        "query_prefix",
        "document_prefix",
        "query_length",
        "document_length",
        "do_query_expansion",
        "attend_to_expansion_tokens",
        "skiplist_words",
        "keep_special_tokens",
        "skiplist_rule",
        "dense_weight",
    )

    name_or_path: str
    checkpoint_format: str
    dim: int
    query_prefix: str = _PYLATE["query_prefix"]
    document_prefix: str = _PYLATE["document_prefix"]
    query_length: int = _PYLATE["query_length"]
    document_length: int = _PYLATE["document_length"]
    do_query_expansion: bool = _PYLATE["do_query_expansion"]
    attend_to_expansion_tokens: bool = _PYLATE["attend_to_expansion_tokens"]
    skiplist_words: tuple[str, ...] = _PYLATE["skiplist_words"]
    keep_special_tokens: bool = _PYLATE["keep_special_tokens"]
    skiplist_rule: str = _PYLATE["skiplist_rule"]
    dense_weight: float = _PYLATE["dense_weight"]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        data = dataclasses.asdict(self)
        data["skiplist_words"] = list(self.skiplist_words)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        """Build from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        data = dict(data)
        data["skiplist_words"] = tuple(data.get("skiplist_words", ()))
        return _from_dict(cls, data)


_STORAGE_DTYPES = ("float16", "float32")
_SPACES = ("cosine", "inner_product")
_HNSW_STORAGE = ("float32", "e4m3")
_NBITS = (1, 2, 4)
_FULL_SCORES_EXACT = 512


@dataclass(frozen=True)
class IndexConfig:
    """Storage and search settings of a :class:`~late_interaction.LateInteractionIndex`.

    Attributes:
        storage_dtype: Precision of the exact token store, ``"float16"`` or ``"float32"``. Exact
            MaxSim always computes in float32; float16 halves the store at a score error of about
            1e-3 per query token, while float32 makes a CPU search about twice as fast (widening
            float16 rows is most of its time:
            ``benchmarks/results/profile-scifact566-20261124.md``).
        hnsw_m: HNSW graph degree (Voyager ``M``).
        ef_construction: HNSW build-time candidate list size. The defaults (``M=16``,
            ``ef_construction=32``) build several times faster than Voyager's ``M=12``/``200``
            and still give recall@10 >= 0.98 against exact MaxSim on SciFact: candidates need
            only reach each relevant document through one of its tokens, and exact MaxSim
            re-ranks them (``benchmarks/results/index-scifact-20261123.md``).
        random_seed: Voyager's seed, for reproducible graphs.
        space: Voyager space for candidate generation: ``"cosine"`` (normalises on insert and
            query, robust to slightly unnormalised vectors) or ``"inner_product"``.
        k_token: Default number of nearest document tokens fetched per query token. A search for
            ``k`` documents uses ``max(k_token, 2 * k)``.
        n_full_scores: Candidate documents scored with exact MaxSim per query. Candidates are
            first ranked by their ANN hits (for each query token, the best similarity found in
            that document; summed), or by centroid interaction in a compressed index, and only
            this many best go to exact scoring (PLAID's ``n_full_scores``). Raised to at least
            ``4 * k``. None (the default) means 512 for the exact store; for a compressed one,
            where each scored document must be decoded first (most of its search time), 128 up
            to 5,000 live documents, then growing as the square root of their number (a fixed
            budget loses recall as the index grows:
            ``benchmarks/results/compressed-*-budgets.md``). A number is always used as given.
        query_ef: Default HNSW search breadth (Voyager ``query_ef``); raised to at least the
            number of tokens fetched per query token.
        exact_scan_tokens: A ``filter``/``ids`` restriction whose allowed documents hold at most
            this many tokens is answered by an exact scan of those documents (no ANN).
        exact_scan_fraction: Same, when the allowed documents hold at most this fraction of the
            live tokens.
        hnsw_storage: Precision of the HNSW graph's own copy of the token vectors, ``"float32"``
            or ``"e4m3"`` (Voyager's 8-bit float). It only affects which documents become
            candidates; their scores always come from the exact token store. ``"e4m3"`` (the
            default) stores a quarter of the bytes per vector, roughly halving an index on disk
            and in RAM, at a slower build and search (no SIMD distance for 8-bit floats);
            ``"float32"`` is the choice when build speed or latency matters more than memory.
        pool_factor: Token pooling on insert (Ward clustering of each document's vectors):
            each document keeps about ``1 / pool_factor`` of its vectors (cluster means; the
            first vector is kept). 1 (the default) stores every vector, so search is exact
            MaxSim over the encoder's output; 2 halves the index on disk and in RAM and the
            search work, at a small quality cost measured in ``benchmarks/results/``.
        nbits: None (the default) keeps every token vector exactly (``storage_dtype``) with a
            Voyager HNSW over all tokens. 1, 2 or 4 compresses the index as ColBERTv2 does: each
            token is stored as its nearest k-means centroid plus ``nbits`` bits per dimension
            of residual, and candidates come from the centroids (PLAID): query tokens probe
            their ``n_probe`` nearest centroids, the documents listed there are pre-ranked by
            centroid scores, and the best ``n_full_scores`` are decoded and scored by exact
            MaxSim. The codec is trained on the first ``add`` into an empty index (see
            ``LateInteractionIndex.retrain``); needs unit-norm vectors and ``pool_factor=1``.
        n_centroids: Centroids of a compressed index; None sizes them from the tokens of the
            first add as ColBERTv2 does (``2 ** floor(log2(16 * sqrt(n_tokens)))``, at most one
            per 8 tokens). Fewer centroids build faster on CPU (every token is compared with
            every centroid) at a larger residual.
        n_probe: Nearest centroids probed per query token (compressed index only). None (the
            default): 4 up to 5,000 live documents, then one more per doubling (at most 16); a
            number is always used as given.
        ann: True (the default) builds the candidate stage (the token HNSW, or a compressed
            index's centroid lists). False builds none: every search is an exact scan, which
            misses nothing and adds documents fastest, and is the mode for a collection that
            fits in GPU memory (``LateInteractionIndex(..., device="cuda")``); on a CPU its
            search time grows with the collection. Exact store only (``nbits=None``).
    """

    storage_dtype: str = "float16"
    hnsw_m: int = 16
    ef_construction: int = 32
    random_seed: int = 1
    space: str = "cosine"
    k_token: int = 64
    query_ef: int = 128
    n_full_scores: int | None = None
    exact_scan_tokens: int = 20_000
    exact_scan_fraction: float = 0.05
    hnsw_storage: str = "e4m3"
    pool_factor: int = 1
    nbits: int | None = None
    n_centroids: int | None = None
    n_probe: int | None = None
    ann: bool = True

    def __post_init__(self) -> None:
        if self.storage_dtype not in _STORAGE_DTYPES:
            msg = f"storage_dtype must be one of {_STORAGE_DTYPES}; got {self.storage_dtype!r}."
            raise ValueError(msg)
        if self.hnsw_storage not in _HNSW_STORAGE:
            msg = f"hnsw_storage must be one of {_HNSW_STORAGE}; got {self.hnsw_storage!r}."
            raise ValueError(msg)
        if self.space not in _SPACES:
            msg = f"space must be one of {_SPACES}; got {self.space!r}."
            raise ValueError(msg)
        positive = (
            "hnsw_m", "ef_construction", "k_token", "query_ef", "pool_factor",
        )  # fmt: skip
        for name in positive:  # stored as plain ints, so the config stays JSON-serialisable
            object.__setattr__(self, name, positive_int(getattr(self, name), name))
        for name in ("n_centroids", "n_full_scores", "n_probe"):
            object.__setattr__(self, name, positive_int(getattr(self, name), name, optional=True))
        if self.n_full_scores is None and self.nbits is None:
            # Resolved here, so a saved config records the number. A compressed index keeps
            # None: its budget grows with the index at search time (centroid_candidates.py).
            object.__setattr__(self, "n_full_scores", _FULL_SCORES_EXACT)
        if self.nbits is not None:
            if isinstance(self.nbits, bool) or self.nbits not in _NBITS:
                msg = f"nbits must be None (exact store) or one of {_NBITS}; got {self.nbits!r}."
                raise ValueError(msg)
            if self.pool_factor > 1:
                msg = (
                    "pool_factor > 1 makes non-unit token vectors, which the compressed store "
                    "(nbits) cannot keep; use pool_factor=1 with nbits, or nbits=None."
                )
                raise ValueError(msg)
        if not isinstance(self.ann, bool):
            msg = f"ann must be True or False; got {self.ann!r}."
            raise TypeError(msg)
        if not self.ann and self.nbits is not None:
            msg = (
                "ann=False (exact scans only) needs the exact store; drop nbits, or keep ann=True "
                "for a compressed index (its centroid lists are its candidate stage)."
            )
            raise ValueError(msg)
        if not 0.0 <= self.exact_scan_fraction <= 1.0 or self.exact_scan_tokens < 0:
            msg = (
                "exact_scan_fraction must be in [0, 1] and exact_scan_tokens >= 0; got "
                f"{self.exact_scan_fraction!r} and {self.exact_scan_tokens!r}."
            )
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexConfig:
        """Build from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        return _from_dict(cls, data)
