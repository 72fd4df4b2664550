"""ColBERT encoder behaviour on tiny checkpoints and on the embedded default model."""

from __future__ import annotations

import json
import string
import threading

import numpy as np
import pytest
import torch

from late_interaction import ColBERT, RerankResult
from late_interaction._encoding.tokenize import tokenize
from late_interaction.config import EncoderConfig
from late_interaction.encoder import DEFAULT_MODEL

TEXTS = ["Paris is the capital of France.", "cats", "", "The cat sat on the mat, fast!"]


def _tokens(model: ColBERT, texts, is_query: bool):
    return tokenize(
        model._pipeline.tokenizer,
        model._pipeline.rules,
        model.config,
        list(texts),
        is_query=is_query,
    )


def _naive_maxsim(q: np.ndarray, d: np.ndarray) -> float:
    return float(sum(max(float(np.dot(qv, dv)) for dv in d) for qv in q))


# --- tokenisation rules ----------------------------------------------------------------------


def test_marker_at_position_one_and_expansion(tiny_pylate_model):
    model = tiny_pylate_model
    tok = model._pipeline.tokenizer
    features, keep = _tokens(model, ["the cat sat", "what is the capital of france"], True)
    ids, att = features["input_ids"], features["attention_mask"]
    assert ids.shape == (2, model.config.query_length)
    assert (ids[:, 0] == tok.cls_token_id).all()
    assert (ids[:, 1] == tok.convert_tokens_to_ids("[Q] ")).all()
    # "[CLS] [Q] the cat sat [SEP]" then [MASK] up to query_length, not attended, all kept.
    assert (ids[0, 6:] == tok.mask_token_id).all() and (att[0, 6:] == 0).all()
    assert (att[0, :6] == 1).all() and keep.all()
    features, _ = _tokens(model, ["the cat sat"], False)
    assert features["input_ids"][0].tolist()[:2] == [
        tok.cls_token_id,
        tok.convert_tokens_to_ids("[D] "),
    ]


def test_attend_to_expansion_tokens(tiny_pylate_path):
    model = ColBERT.from_pretrained(tiny_pylate_path, device="cpu", attend_to_expansion_tokens=True)
    features, _ = _tokens(model, ["cats"], True)
    assert (features["attention_mask"] == 1).all()
    base = ColBERT.from_pretrained(tiny_pylate_path, device="cpu")
    a, b = model.encode_queries("cats")[0], base.encode_queries("cats")[0]
    assert a.shape == b.shape and not np.allclose(a, b, atol=1e-4)  # attention changed the vectors


def test_every_query_has_query_length_rows_with_expansion(tiny_pylate_model):
    long = " ".join(["the cat"] * 100)
    out = tiny_pylate_model.encode_queries([*TEXTS, long, "   "])
    assert {q.shape for q in out} == {(32, 16)}


def test_no_expansion_keeps_only_real_tokens(tiny_pylate_path):
    model = ColBERT.from_pretrained(tiny_pylate_path, device="cpu", do_query_expansion=False)
    assert not model.config.attend_to_expansion_tokens
    out = model.encode_queries(["the cat sat", "cats"])
    assert [q.shape[0] for q in out] == [6, 4]  # [CLS] [Q] ... [SEP]


def test_documents_truncated_to_document_length(tiny_pylate_path):
    model = ColBERT.from_pretrained(tiny_pylate_path, device="cpu", document_length=10)
    (doc,) = model.encode_documents(" ".join(["water"] * 10_000))
    assert doc.shape == (10, 16)  # [CLS] [D] 7 words [SEP]


def test_skiplist_drops_punctuation_rows_only(tiny_pylate_path):
    text = "the cat, sat. on (the) mat!"
    full = ColBERT.from_pretrained(tiny_pylate_path, device="cpu", skiplist_words=[])
    skip = ColBERT.from_pretrained(tiny_pylate_path, device="cpu")
    (f,), (s,) = full.encode_documents(text), skip.encode_documents(text)
    features, _ = _tokens(full, [text], False)
    ids = features["input_ids"][0]
    punct = {full._pipeline.tokenizer.convert_tokens_to_ids(p) for p in string.punctuation}
    not_punct = np.array([int(t) not in punct for t in ids])
    assert f.shape[0] == len(ids) and s.shape[0] == int(not_punct.sum()) < len(ids)
    np.testing.assert_allclose(s, f[not_punct], atol=1e-6)  # same forward pass, rows removed
    q_full, q_skip = full.encode_queries(text)[0], skip.encode_queries(text)[0]
    np.testing.assert_allclose(q_full, q_skip, atol=1e-6)  # queries keep punctuation


def test_keep_special_tokens_false_drops_cls_and_sep(tiny_pylate_path):
    keep = ColBERT.from_pretrained(tiny_pylate_path, device="cpu", skiplist_words=[])
    drop = ColBERT.from_pretrained(
        tiny_pylate_path, device="cpu", skiplist_words=[], keep_special_tokens=False
    )
    (k,), (d,) = keep.encode_documents("the cat sat"), drop.encode_documents("the cat sat")
    np.testing.assert_allclose(d, k[1:-1], atol=1e-6)  # [D] the cat sat; no [CLS], no [SEP]
    assert drop.encode_queries("cats")[0].shape == (30, 16)  # [CLS], [SEP] gone; [MASK]s kept
    # A text whose rows are all filtered keeps one row (MaxSim needs one).
    plain = ColBERT.from_pretrained(
        tiny_pylate_path, device="cpu", document_prefix="", keep_special_tokens=False
    )
    assert [m.shape[0] for m in plain.encode_documents(["", "!!!", "cats"])] == [1, 1, 1]


# --- inputs and outputs ----------------------------------------------------------------------


def test_empty_and_whitespace_encode_to_special_tokens(tiny_pylate_model):
    empty, blank = tiny_pylate_model.encode_documents(["", " \n\t "])
    assert empty.shape == (3, 16)  # [CLS] [D] [SEP]
    np.testing.assert_allclose(empty, blank, atol=1e-6)


def test_outputs_are_normalised_float32_in_input_order(tiny_pylate_model):
    texts = [*[f"the cat {' sat' * i}" for i in range(7)][::-1], "", "cats"]
    one_by_one = [tiny_pylate_model.encode_documents(t)[0] for t in texts]
    batched = tiny_pylate_model.encode_documents(texts, batch_size=3)
    for a, b in zip(one_by_one, batched, strict=True):
        assert b.dtype == np.float32 and b.ndim == 2 and b.shape[1] == tiny_pylate_model.dim
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)


def test_bad_inputs_raise_clear_errors(tiny_pylate_model):
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str; got int"):
        tiny_pylate_model.encode_documents(["ok", 3])
    with pytest.raises(TypeError, match="texts must be a str or a sequence of str"):
        tiny_pylate_model.encode_queries(None)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        tiny_pylate_model.encode_queries(["a"], batch_size=0)
    assert tiny_pylate_model.encode_documents([]) == []


def test_bad_settings_raise(tiny_pylate_path):
    with pytest.raises(ValueError, match="query_length must be an int >= 3"):
        ColBERT.from_pretrained(tiny_pylate_path, query_length=2)
    with pytest.raises(ValueError, match="exceeds the 512 positions"):
        ColBERT.from_pretrained(tiny_pylate_path, document_length=1000)
    with pytest.raises(TypeError, match="skiplist_words must be a list of str"):
        ColBERT.from_pretrained(tiny_pylate_path, skiplist_words="abc")
    with pytest.raises(ValueError, match="device must be like"):
        ColBERT.from_pretrained(tiny_pylate_path, device="gpu-please")
    with pytest.raises(ValueError, match="dtype must be"):
        ColBERT.from_pretrained(tiny_pylate_path, device="cpu", dtype="int8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_requested_without_cuda(tiny_pylate_path):
    with pytest.raises(ValueError, match="CUDA is not available"):
        ColBERT.from_pretrained(tiny_pylate_path, device="cuda")


def test_bfloat16_close_to_float32(tiny_pylate_path, tiny_pylate_model):
    model = ColBERT.from_pretrained(tiny_pylate_path, device="cpu", dtype="bfloat16")
    a, b = model.encode_documents(TEXTS), tiny_pylate_model.encode_documents(TEXTS)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == np.float32 and x.shape == y.shape
        np.testing.assert_allclose(x, y, atol=0.08)


def test_cpu_bfloat16_is_autocast_over_float32_weights(default_model):
    from late_interaction._encoding.device import cpu_has_fast_bfloat16, resolve_dtype

    cpu = torch.device("cpu")
    expected_auto = torch.bfloat16 if cpu_has_fast_bfloat16() else torch.float32
    assert resolve_dtype("auto", cpu) is expected_auto
    assert resolve_dtype(None, cpu) is torch.float32
    model = ColBERT.from_pretrained(device="cpu", dtype="bfloat16")
    assert all(p.dtype == torch.float32 for p in model._pipeline.modules.parameters())
    texts = ["Lambda expressions create anonymous functions.", "A with statement (PEP 343)."]
    fast, exact = model.encode_documents(texts), default_model.encode_documents(texts)
    for x, y in zip(fast, exact, strict=True):
        assert x.dtype == np.float32 and x.shape == y.shape
        assert not np.array_equal(x, y)  # bfloat16 matmuls really ran
        assert float((x * y).sum(axis=1).min()) > 0.999  # per-token cosine to float32


def test_concurrent_queries_and_documents(tiny_pylate_model):
    expected = tiny_pylate_model.encode_queries(TEXTS), tiny_pylate_model.encode_documents(TEXTS)
    results, errors = [], []

    def work(i: int) -> None:
        try:
            for _ in range(5):
                enc = (
                    tiny_pylate_model.encode_queries
                    if i % 2
                    else tiny_pylate_model.encode_documents
                )
                results.append((i % 2, enc(TEXTS, batch_size=2)))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for is_query, out in results:
        ref = expected[0] if is_query else expected[1]
        for a, b in zip(out, ref, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)


# --- rerank -----------------------------------------------------------------------------------


def test_rerank_matches_naive_maxsim(tiny_stanford_model):
    docs = ["the cat sat on the mat", "paris is the capital of france", "dogs run fast", ""]
    query = "capital of france"
    q = tiny_stanford_model.encode_queries(query)[0]
    expected = [_naive_maxsim(q, d) for d in tiny_stanford_model.encode_documents(docs)]
    ranked = tiny_stanford_model.rerank(query, docs)
    assert [r.position for r in ranked] == sorted(range(4), key=lambda i: -expected[i])
    for r in ranked:
        assert isinstance(r, RerankResult)
        assert r.score == pytest.approx(expected[r.position], abs=1e-4)
    top = tiny_stanford_model.rerank(query, docs, top_k=2)
    assert top == ranked[:2]
    assert tiny_stanford_model.rerank(query, []) == []
    with pytest.raises(ValueError, match="top_k"):
        tiny_stanford_model.rerank(query, docs, top_k=0)
    with pytest.raises(TypeError, match="query must be a str"):
        tiny_stanford_model.rerank(["q"], docs)


# --- save / load, fingerprint -----------------------------------------------------------------


@pytest.mark.parametrize("which", ["tiny_pylate_model", "tiny_stanford_model"])
def test_save_pretrained_round_trip(request, tmp_path, which):
    model = request.getfixturevalue(which)
    folder = model.save_pretrained(tmp_path / "saved")
    assert (folder / "modules.json").is_file() and (folder / "1_Dense" / "config.json").is_file()
    again = ColBERT.from_pretrained(folder, device="cpu")
    assert again.config.checkpoint_format == "pylate"
    same = {
        k: v
        for k, v in model.fingerprint().items()
        if k not in ("name_or_path", "checkpoint_format")
    }
    assert {k: v for k, v in again.fingerprint().items() if k in same} == same
    for enc in ("encode_queries", "encode_documents"):
        a, b = getattr(model, enc)(TEXTS), getattr(again, enc)(TEXTS)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, atol=1e-6)


def test_missing_marker_is_refused_unless_asked_for(tiny_stanford_path):
    # "[Q] " is not in this vocabulary: a typo or a base encoder, never silently untrained.
    with pytest.raises(ValueError, match=r"marker token\(s\) \['\[Q\] '\].*add_missing_markers"):
        ColBERT.from_pretrained(tiny_stanford_path, device="cpu", query_prefix="[Q] ")


def test_explicit_attention_without_expansion_is_refused(tiny_pylate_path):
    with pytest.raises(ValueError, match="attend_to_expansion_tokens=True needs query expansion"):
        ColBERT.from_pretrained(
            tiny_pylate_path,
            device="cpu",
            attend_to_expansion_tokens=True,
            do_query_expansion=False,
        )


def test_added_markers_survive_save(tiny_stanford_path, tmp_path):
    # "[Q] " is not in this vocabulary: added on request (untrained row), and saved with it.
    model = ColBERT.from_pretrained(
        tiny_stanford_path, device="cpu", query_prefix="[Q] ", add_missing_markers=True
    )
    again = ColBERT.from_pretrained(model.save_pretrained(tmp_path / "saved"), device="cpu")
    assert again.config.query_prefix == "[Q] "
    np.testing.assert_allclose(
        model.encode_queries("cats")[0], again.encode_queries("cats")[0], atol=1e-6
    )


def test_fingerprint_identity(tiny_pylate_path, tiny_pylate_model):
    fp = tiny_pylate_model.fingerprint()
    assert json.loads(json.dumps(fp)) == fp
    assert fp["fingerprint_version"] == 1 and fp["dim"] == 16
    assert ColBERT.from_pretrained(tiny_pylate_path, device="cpu").fingerprint() == fp
    assert (
        ColBERT.from_pretrained(tiny_pylate_path, device="cpu", query_length=8).fingerprint() != fp
    )
    config = EncoderConfig.from_dict({k: v for k, v in fp.items() if k != "fingerprint_version"})
    rebuilt = ColBERT.from_config(config, device="cpu")
    assert rebuilt.fingerprint() == fp


# --- embedded default model -------------------------------------------------------------------


def test_default_model_offline(default_model):
    assert default_model.dim == 384
    assert default_model.config.checkpoint_format == "sentence-transformers"
    assert default_model.fingerprint()["name_or_path"] == DEFAULT_MODEL
    assert default_model.config.query_prefix == "" and not default_model.config.do_query_expansion
    q, d = default_model.encode_queries("late interaction"), default_model.encode_documents(TEXTS)
    assert q[0].shape == (4, 384)  # [CLS] late interaction [SEP]: no marker, no expansion
    for m in (*q, *d):
        np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    ranked = default_model.rerank(
        "capital of France", ["A cat sat.", "Paris is the capital of France."]
    )
    assert ranked[0].position == 1


def test_default_model_equals_its_hidden_states(default_model):
    # Independent reference: transformers' last_hidden_state, L2-normalised, punctuation dropped.
    from transformers import AutoModel, AutoTokenizer

    path = default_model.name_or_path
    tok, bert = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    text = "The cat sat on the mat, fast!"
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        hidden = torch.nn.functional.normalize(bert(**enc).last_hidden_state[0], dim=-1).numpy()
    punct = {tok.encode(p, add_special_tokens=False)[0] for p in string.punctuation}
    rows = np.array([int(t) not in punct for t in enc["input_ids"][0]])
    np.testing.assert_allclose(default_model.encode_documents(text)[0], hidden[rows], atol=1e-5)
    assert (
        ColBERT.from_pretrained(DEFAULT_MODEL, device="cpu").fingerprint()
        == default_model.fingerprint()
    )


def test_a_single_object_is_one_item_and_wrong_items_name_the_fix():
    from late_interaction._validation import as_items

    class Model:  # iterable over its fields, like a pydantic model, but not a collection
        def __iter__(self):
            return iter([("a", 1), ("b", 2)])

    one = Model()
    assert as_items(one, "docs", Model, "a Model") == [one]
    assert as_items((m for m in [one, one]), "docs", Model, "a Model") == [one, one]
    assert as_items("text", "texts", str, "a str") == ["text"]
    with pytest.raises(TypeError, match=r"^docs must be a Model; got str\. Wrap it\.$"):
        as_items("text", "docs", Model, "a Model", {"builtins": "Wrap it."})
    with pytest.raises(TypeError, match=r"^docs\[1\] must be a Model; got int\. Any fix\.$"):
        as_items([one, 3], "docs", Model, "a Model", {"": "Any fix."})
    with pytest.raises(TypeError, match=r"^docs must be a Model or a sequence of them; got None"):
        as_items(None, "docs", Model, "a Model")
