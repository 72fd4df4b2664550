"""MaxSim (numpy packed path, padded+mask path, torch path) against a brute-force Python loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from late_interaction.scoring import maxsim, maxsim_packed, pack


def brute(query: np.ndarray, docs: list[np.ndarray]) -> list[float]:
    """Sum over query tokens of the max dot product over document tokens; pure Python loops."""
    scores = []
    for doc in docs:
        total = 0.0
        for qv in query.tolist():
            best = None
            for dv in doc.tolist():
                s = sum(a * b for a, b in zip(qv, dv, strict=True))
                best = s if best is None or s > best else best
            total += best
        scores.append(total)
    return scores


def ragged(rng: np.random.Generator, n_docs: int, dim: int, max_len: int = 9) -> list[np.ndarray]:
    return [
        rng.standard_normal((int(rng.integers(1, max_len)), dim)).astype(np.float32)
        for _ in range(n_docs)
    ]


@pytest.mark.parametrize("seed", range(5))
def test_ragged_numpy_and_packed_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    dim = int(rng.integers(2, 12))
    query = rng.standard_normal((int(rng.integers(1, 7)), dim)).astype(np.float32)
    docs = ragged(rng, int(rng.integers(1, 12)), dim)
    expected = brute(query, docs)
    np.testing.assert_allclose(maxsim(query, docs), expected, rtol=1e-5, atol=1e-5)
    tokens, offsets = pack(docs)
    np.testing.assert_allclose(
        maxsim_packed(query, tokens, offsets), expected, rtol=1e-5, atol=1e-5
    )
    # float16 storage is widened before the product: close to the float32 result.
    np.testing.assert_allclose(
        maxsim_packed(query, tokens.astype(np.float16), offsets),
        expected,
        atol=2e-2 * query.shape[0],
    )


def padded_form(docs: list[np.ndarray], fill: float) -> tuple[np.ndarray, np.ndarray]:
    max_len = max(d.shape[0] for d in docs)
    padded = np.full((len(docs), max_len, docs[0].shape[1]), fill, dtype=np.float32)
    mask = np.zeros((len(docs), max_len), dtype=bool)
    for i, d in enumerate(docs):
        padded[i, : d.shape[0]] = d
        mask[i, : d.shape[0]] = True
    return padded, mask


@pytest.mark.parametrize("fill", [0.0, 5.0])
def test_padded_with_mask_ignores_padding(fill):
    rng = np.random.default_rng(11)
    query = rng.standard_normal((4, 6)).astype(np.float32)
    docs = ragged(rng, 7, 6)
    padded, mask = padded_form(docs, fill)
    expected = brute(query, docs)
    np.testing.assert_allclose(maxsim(query, padded, documents_mask=mask), expected, atol=1e-5)
    np.testing.assert_allclose(
        maxsim(torch.from_numpy(query), torch.from_numpy(padded), torch.from_numpy(mask)).numpy(),
        expected,
        atol=1e-5,
    )


def test_all_negative_similarities_never_score_padding_as_zero():
    query = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    short = np.array([[-1.0, -0.5]], dtype=np.float32)  # every sim negative
    long = np.array([[-0.2, -0.9], [-0.3, -0.1], [-0.4, -0.2]], dtype=np.float32)
    docs = [short, long]
    expected = brute(query, docs)
    assert all(s < 0 for s in expected)
    padded, mask = padded_form(docs, 0.0)  # zero padding would give max 0 for the short doc
    for got in (
        maxsim(query, docs),
        maxsim(query, padded, documents_mask=mask),
        maxsim(torch.from_numpy(query), [torch.from_numpy(d) for d in docs]).numpy(),
        maxsim(torch.from_numpy(query), torch.from_numpy(padded), torch.from_numpy(mask)).numpy(),
    ):
        np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_torch_path_equals_numpy_path(seed):
    rng = np.random.default_rng(100 + seed)
    query = rng.standard_normal((5, 8)).astype(np.float32)
    docs = ragged(rng, 10, 8, max_len=20)
    via_numpy = maxsim(query, docs)
    via_torch = maxsim(torch.from_numpy(query), [torch.from_numpy(d) for d in docs])
    assert isinstance(via_torch, torch.Tensor) and isinstance(via_numpy, np.ndarray)
    np.testing.assert_allclose(via_torch.numpy(), via_numpy, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 3, 64])
def test_torch_path_in_chunks_with_half_precision_documents(chunk_size, monkeypatch):
    from late_interaction import _torch_maxsim

    # A similarity block of chunk_size documents at most (1: one document per matmul).
    per_doc = 12 * 4 * 4  # max_len x query tokens x float32 bytes
    monkeypatch.setitem(_torch_maxsim._BLOCK_BYTES, "cpu", chunk_size * per_doc)
    rng = np.random.default_rng(7)
    query = rng.standard_normal((4, 8)).astype(np.float32)
    docs = [d.astype(np.float16) for d in ragged(rng, 10, 8, max_len=12)]
    padded, mask = padded_form(docs, 0.0)
    expected = brute(query, [d.astype(np.float32) for d in docs])  # fp16 values, exact products
    got = maxsim(
        torch.from_numpy(query),
        torch.from_numpy(padded.astype(np.float16)),
        torch.from_numpy(mask),
    )
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_empty_document_list_and_shape_errors():
    q = np.ones((2, 3), dtype=np.float32)
    assert maxsim(q, []).shape == (0,)
    with pytest.raises(ValueError, match="query must be an array of shape"):
        maxsim(np.ones(3), [np.ones((1, 3))])
    with pytest.raises(ValueError, match="query has no tokens"):
        maxsim(np.ones((0, 3)), [np.ones((1, 3))])
    with pytest.raises(ValueError, match="one dim"):
        maxsim(q, [np.ones((1, 3)), np.ones((1, 4))])
    with pytest.raises(ValueError, match="to match the query"):
        maxsim(q, [np.ones((2, 4))])
    with pytest.raises(ValueError, match="have no tokens"):
        maxsim(q, [np.ones((1, 3)), np.ones((0, 3))])
    with pytest.raises(ValueError, match="documents_mask must have shape"):
        maxsim(q, np.ones((2, 4, 3)), documents_mask=np.ones((2, 3)))
    with pytest.raises(ValueError, match="only for padded"):
        maxsim(q, [np.ones((1, 3))], documents_mask=np.ones((1, 1)))
    with pytest.raises(ValueError, match="dims differ"):
        maxsim(torch.ones(2, 3), [torch.ones(1, 4)])
    with pytest.raises(ValueError, match="at least one unmasked token"):
        maxsim(torch.ones(2, 3), torch.ones(2, 2, 3), torch.tensor([[1, 0], [0, 0]]))


def _padded_queries(queries: list[np.ndarray]) -> np.ndarray:
    """Stack queries of different lengths, padding with zero rows (they add nothing)."""
    out = np.zeros((len(queries), max(q.shape[0] for q in queries), queries[0].shape[1]))
    for i, q in enumerate(queries):
        out[i, : q.shape[0]] = q
    return out.astype(np.float32)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_batched_queries_equal_one_query_at_a_time(backend):
    rng = np.random.default_rng(11)
    queries = ragged(rng, 5, 6, max_len=7)
    docs = ragged(rng, 9, 6)
    expected = np.array([brute(q, docs) for q in queries])
    batch = _padded_queries(queries)
    if backend == "torch":
        got = maxsim(torch.from_numpy(batch), [torch.from_numpy(d) for d in docs]).numpy()
    else:
        got = maxsim(batch, docs)
    assert got.shape == (5, 9)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_torch_mask_anywhere_in_the_row():
    """Masked positions before, between and after real tokens never take part in the max."""
    rng = np.random.default_rng(5)
    query = rng.standard_normal((3, 4)).astype(np.float32)
    padded = rng.standard_normal((3, 5, 4)).astype(np.float32) * 10  # loud padding values
    mask = np.array([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=bool)
    expected = brute(query, [padded[i][mask[i]] for i in range(3)])
    got = maxsim(torch.from_numpy(query), torch.from_numpy(padded), torch.from_numpy(mask))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="at least one unmasked token"):
        maxsim(torch.from_numpy(query), torch.from_numpy(padded), torch.zeros(3, 5, dtype=bool))
