"""Token pooling: shapes, cluster means against a direct computation, and the index option."""

from __future__ import annotations

import numpy as np
import pytest

from late_interaction import IndexConfig, LateInteractionIndex
from late_interaction._index.pooling import pool_tokens


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("n", "factor"), [(1, 2), (2, 2), (3, 2), (31, 2), (31, 3), (100, 4)])
def test_shape_and_protected_first_vector(n, factor):
    doc = _unit(np.random.default_rng(n), n, 8)
    pooled = pool_tokens(doc, factor)
    expected = n if n - 1 <= 1 else 1 + max((n - 1) // factor, 1)
    assert pooled.shape == (expected, 8)
    np.testing.assert_array_equal(pooled[0], doc[0])


def test_groups_of_near_duplicates_become_their_means():
    rng = np.random.default_rng(0)
    centres = _unit(rng, 4, 16) * 10  # far apart
    groups = [centres[i] + 0.01 * rng.standard_normal((3, 16)) for i in range(4)]
    order = rng.permutation(12)  # interleave the groups in the text
    rest = np.concatenate(groups)[order].astype(np.float32)
    doc = np.concatenate([np.ones((1, 16), np.float32), rest])
    pooled = pool_tokens(doc, 3)
    assert pooled.shape == (5, 16)
    group_of = np.repeat(np.arange(4), 3)[order]
    firsts = sorted(range(4), key=lambda g: np.flatnonzero(group_of == g)[0])
    expected = [np.concatenate(groups)[np.repeat(np.arange(4), 3) == g].mean(0) for g in firsts]
    np.testing.assert_allclose(pooled[1:], np.stack(expected), atol=1e-5)


def test_factor_one_is_identity_and_bad_factor_is_refused():
    doc = _unit(np.random.default_rng(1), 10, 4)
    np.testing.assert_array_equal(pool_tokens(doc, 1), doc)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="pool_factor must be a positive int"):
            pool_tokens(doc, bad)
    with pytest.raises(ValueError, match="pool_factor"):
        IndexConfig(pool_factor=0)


def test_index_stores_pooled_vectors_and_keeps_the_setting(fake_encoder, tmp_path):
    rng = np.random.default_rng(2)
    docs = [_unit(rng, n, fake_encoder.dim) for n in (5, 17, 40)]
    index = LateInteractionIndex(fake_encoder, tmp_path / "idx", config=IndexConfig(pool_factor=2))
    index.add_embeddings(docs, ["a", "b", "c"], ids=["a", "b", "c"])
    index.save()
    reloaded = LateInteractionIndex.load(tmp_path / "idx", model=fake_encoder)
    assert reloaded.config.pool_factor == 2
    query = _unit(rng, 4, fake_encoder.dim)
    hits = reloaded.search(query, k=3, exact=True)
    pooled_scores = {
        doc_id: (query @ pool_tokens(doc, 2).T).max(axis=1).sum()
        for doc_id, doc in zip("abc", docs, strict=True)
    }
    unpooled = {
        doc_id: (query @ doc.T).max(axis=1).sum() for doc_id, doc in zip("abc", docs, strict=True)
    }
    assert len(hits) == 3
    for hit in hits:  # scores come from the pooled vectors (float16 store), not the originals
        assert hit.score == pytest.approx(pooled_scores[hit.id], abs=5e-3)
    assert any(abs(unpooled[h.id] - pooled_scores[h.id]) > 5e-2 for h in hits)
