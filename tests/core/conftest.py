"""Fixtures for the index tests: a deterministic fake encoder and a naive MaxSim reference.

The fake encoder is not the subject: it maps each word to a fixed random unit vector so that
token-level retrieval behaves like a bag-of-words ColBERT, fast and without torch.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


class FakeEncoder:
    """Word -> seeded random unit vector; a query gets one extra 'expansion' token."""

    def __init__(self, dim: int = 16, name: str = "fake") -> None:
        self.dim = dim
        self.name = name

    def _encode(self, text: str, query: bool) -> np.ndarray:
        words = text.lower().split() or ["<empty>"]
        if query:
            words = [*words, "<mask>"]
        rows = [
            np.random.default_rng(zlib.crc32(f"{self.name}:{w}".encode())).standard_normal(self.dim)
            for w in words
        ]
        m = np.stack(rows).astype(np.float32)
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    def encode_documents(self, texts, *, batch_size=32, show_progress_bar=None):
        texts = [texts] if isinstance(texts, str) else list(texts)
        return [self._encode(t, False) for t in texts]

    def encode_queries(self, texts, *, batch_size=32, show_progress_bar=None):
        texts = [texts] if isinstance(texts, str) else list(texts)
        return [self._encode(t, True) for t in texts]

    def fingerprint(self) -> dict:
        return {"kind": "fake", "name": self.name, "dim": self.dim}


def naive_maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """Reference MaxSim written independently of the package: full float64 product, max, sum."""
    sims = np.asarray(query, np.float64) @ np.asarray(doc, np.float64).T
    return float(sims.max(axis=1).sum())


def brute_force(query, docs: dict[str, np.ndarray], k: int, allowed=None):
    """Top-k (id, score) by naive MaxSim over ``docs`` (id -> token matrix)."""
    scored = [
        (i, naive_maxsim(query, m)) for i, m in docs.items() if allowed is None or i in allowed
    ]
    scored.sort(key=lambda t: -t[1])
    return scored[:k]


def brute_force_fused(query, q_dense, docs, doc_dense, weight: float, k: int, allowed=None):
    """Top-k (id, fused score, MaxSim, cosine): ``(MaxSim/|q| + w cos) / (1 + w)``, naively."""
    scored = []
    for i, m in docs.items():
        if allowed is None or i in allowed:
            raw = naive_maxsim(query, m)
            cos = float(
                np.dot(np.asarray(q_dense, np.float64), np.asarray(doc_dense[i], np.float64))
            )
            scored.append((i, (raw / len(query) + weight * cos) / (1 + weight), raw, cos))
    scored.sort(key=lambda t: -t[1])
    return scored[:k]


def make_corpus(n: int, seed: int = 0, vocab_size: int = 400):
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(vocab_size)]
    texts = [" ".join(rng.choice(vocab, size=int(rng.integers(3, 25)))) for _ in range(n)]
    ids = [f"d{i}" for i in range(n)]
    metas = [{"group": i % 7, "even": i % 2 == 0, "tag": ["a", "b", "c"][i % 3]} for i in range(n)]
    return ids, texts, metas


class Reference:
    """Helpers handed to tests as a fixture (tests cannot import conftest in importlib mode)."""

    FakeEncoder = FakeEncoder
    naive_maxsim = staticmethod(naive_maxsim)
    brute_force = staticmethod(brute_force)
    brute_force_fused = staticmethod(brute_force_fused)
    make_corpus = staticmethod(make_corpus)


@pytest.fixture
def ref() -> type[Reference]:
    return Reference


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    folder = DATA / "scifact"
    if not (folder / "corpus.jsonl").is_file():
        reason = f"SciFact data not found at {folder} (expected ../shared/data beside the repo)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + "; CI must provide it.")
        pytest.skip(reason)
    return folder
