"""Property-based tests (hypothesis): MaxSim against numpy, and the add/delete/search invariants.

MaxSim: for random ragged or padded inputs, :func:`late_interaction.maxsim` equals a float64
brute force written here. Index: after any sequence of adds, upserts and deletes, the index holds
exactly the documents of a plain dict replaying the same operations, an exact search ranks them
as brute-force MaxSim does, an ANN search returns only live documents with their exact scores,
and a save/load round trip changes nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from late_interaction import LateInteractionIndex, maxsim
from late_interaction.scoring import maxsim_packed

pytestmark = pytest.mark.usefixtures("no_fsync")  # saves here test content, not power loss

FINITE = st.floats(-8, 8, allow_nan=False, allow_infinity=False, width=32)
FIXTURES_OK = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _brute(query: np.ndarray, docs: list[np.ndarray]) -> np.ndarray:
    q = query.astype(np.float64)
    return np.array([(q @ d.astype(np.float64).T).max(axis=1).sum() for d in docs])


@st.composite
def _query_and_docs(draw):
    dim = draw(st.integers(1, 12))
    query = draw(arrays(np.float32, (draw(st.integers(1, 6)), dim), elements=FINITE))
    lengths = draw(st.lists(st.integers(1, 7), min_size=1, max_size=8))
    docs = [draw(arrays(np.float32, (n, dim), elements=FINITE)) for n in lengths]
    return query, docs


def _close(got, expected, query, docs):
    # float32 products: error bound proportional to the magnitudes summed.
    scale = np.abs(query).sum() * max(float(np.abs(d).max()) for d in docs) + 1.0
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)


@settings(max_examples=30, deadline=None)
@given(_query_and_docs())
def test_maxsim_equals_brute_force(case):
    query, docs = case
    expected = _brute(query, docs)
    _close(maxsim(query, docs), expected, query, docs)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])])
    _close(maxsim_packed(query, np.concatenate(docs), offsets), expected, query, docs)


@settings(max_examples=20, deadline=None)
@given(_query_and_docs(), st.data())
def test_padded_maxsim_ignores_padding(case, data):
    query, docs = case
    width = max(len(d) for d in docs)
    fill = data.draw(FINITE)  # padding of any value must never count
    padded = np.full((len(docs), width, query.shape[1]), fill, np.float32)
    mask = np.zeros((len(docs), width), bool)
    for i, d in enumerate(docs):
        padded[i, : len(d)], mask[i, : len(d)] = d, True
    _close(maxsim(query, padded, documents_mask=mask), _brute(query, docs), query, docs)


# One operation: ("add", ids) adds or replaces those ids; ("delete", picks) deletes live ids.
OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"), st.lists(st.integers(0, 11), min_size=1, max_size=5, unique=True)
        ),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 30), min_size=1, max_size=3)),
    ),
    min_size=1,
    max_size=8,
)


@FIXTURES_OK
@given(ops=OPS, query_words=st.lists(st.integers(0, 19), min_size=1, max_size=4))
def test_index_matches_a_dict_replaying_the_same_writes(ops, query_words, ref, tmp_path_factory):
    model = ref.FakeEncoder(8)
    index = LateInteractionIndex(model)
    expected: dict[str, str] = {}
    for step, (kind, values) in enumerate(ops):
        if kind == "add":
            ids = [f"id{v}" for v in values]
            texts = [f"w{v % 20} w{(v * 7 + step) % 20} s{step}" for v in values]
            index.add(texts, ids=ids, metadatas=[{"step": step} for _ in ids])
            expected.update(zip(ids, texts, strict=True))
        elif expected:
            live = sorted(expected)
            doomed = sorted({live[v % len(live)] for v in values})
            index.delete(doomed)
            for doc_id in doomed:
                del expected[doc_id]
    assert len(index) == len(expected)
    assert sorted(index.ids) == sorted(expected)
    assert {d.id: d.text for d in index.get(index.ids)} == expected
    if not expected:
        return
    query_text = " ".join(f"w{w}" for w in query_words)
    query = model.encode_queries([query_text])[0]
    truth = ref.brute_force(
        query, {i: model.encode_documents([t])[0] for i, t in expected.items()}, len(expected)
    )
    truth_score = dict(truth)
    exact = index.search(query_text, k=len(expected), exact=True)
    assert {h.id for h in exact} == set(expected)
    for hit in exact:  # ties may swap ids; each score, and the order of scores, must agree
        assert hit.score == pytest.approx(truth_score[hit.id], abs=2e-3)
    np.testing.assert_allclose([h.score for h in exact], [s for _, s in truth], atol=2e-3)
    for hit in index.search(query_text, k=5):  # ANN: live documents only, exact scores
        assert hit.id in expected
        assert hit.score == pytest.approx(truth_score[hit.id], abs=2e-3)
    folder = tmp_path_factory.mktemp("prop")
    loaded = LateInteractionIndex.load(index.save(folder / "ix"), model)
    assert {d.id: d.text for d in loaded.get(loaded.ids)} == expected
