"""A Stanford checkpoint on a CamemBERT (SentencePiece) vocabulary equals colbert-ai 0.2.22.

The reference is colbert-ai's own output (tests/golden/make_colbert_ai_camembert_golden.py, run in
colbert-ai's venv) on a tiny checkpoint that tests/golden/build_camembert_stanford.py rebuilds
byte for byte. Its markers ``[unused0]``/``[unused1]`` are not in the vocabulary: colbert-ai
resolves them to the unknown token rather than adding tokens, and drops the first id of
``encode(symbol)`` for punctuation (the bare ``▁`` on this vocabulary) from documents.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from late_interaction import ColBERT

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _builder():
    name = "build_camembert_stanford"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, GOLDEN / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _digest(folder: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for name in ("model.safetensors", "tokenizer.json", "artifact.metadata"):
        h.update(name.encode())
        h.update((folder / name).read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    data = np.load(GOLDEN / "colbert_ai_camembert_golden.npz")
    meta = json.loads(str(data["meta"]))
    folder = _builder().build_camembert_stanford(tmp_path_factory.mktemp("cam") / "ckpt")
    # Same bytes as the checkpoint colbert-ai encoded, or the comparison would be meaningless.
    assert _digest(folder) == meta["checkpoint_digest"]
    return data, meta, folder


@pytest.mark.parametrize("variant", ["checkpoint", "attend_expansion"])
def test_equals_colbert_ai(golden, variant):
    data, meta, folder = golden
    attend = bool(meta["variants"][variant].get("attend_to_mask_tokens", False))
    model = ColBERT.from_pretrained(folder, device="cpu", attend_to_expansion_tokens=attend)
    assert model.config.checkpoint_format == "stanford" and model.dim == 32
    queries = model.encode_queries(meta["queries"], batch_size=4)
    docs = model.encode_documents(meta["documents"], batch_size=4)
    for kind, ours in (("query", queries), ("document", docs)):
        for i, matrix in enumerate(ours):
            ref = data[f"{variant}/{kind}/{i}"]
            assert matrix.shape == ref.shape, f"{kind} {i}: {matrix.shape} != {ref.shape}"
            np.testing.assert_allclose(matrix, ref, atol=1e-5, err_msg=f"{kind} {i}")


def test_unknown_markers_are_not_added(golden):
    _, meta, folder = golden
    model = ColBERT.from_pretrained(folder, device="cpu")
    tokenizer, rules = model._pipeline.tokenizer, model._pipeline.rules
    assert model.config.query_prefix == "[unused0]"
    assert rules.query_prefix_id == tokenizer.unk_token_id == meta["query_marker_id"]
    assert "[unused0]" not in tokenizer.get_vocab() and "[unused1]" not in tokenizer.get_vocab()
    vocab_size = json.loads((folder / "config.json").read_text())["vocab_size"]
    embeddings = model._pipeline.modules[0].auto_model.get_input_embeddings()
    assert embeddings.num_embeddings == vocab_size  # no row added
    assert set(rules.skiplist) == set(meta["skiplist_ids"])
    assert tokenizer.convert_tokens_to_ids("▁") in meta["skiplist_ids"]  # the SentencePiece case


def test_explanations_on_a_sentencepiece_stanford_checkpoint(golden):
    # Texts are not stripped for Stanford checkpoints: spans must still index the original text.
    _, _, folder = golden
    model = ColBERT.from_pretrained(folder, device="cpu")
    document = "  Le chat est sur le tapis !"
    exp = model.explain("le chat", document)
    d = model.encode_documents(document)[0]
    q = model.encode_queries("le chat")[0]
    assert exp.score == pytest.approx(float((q @ d.T).max(axis=1).sum()), abs=1e-4)
    spans = [m.document_span for m in exp.matches if m.document_span is not None]
    assert spans
    for m in exp.matches:
        if m.document_span is not None:
            start, end = m.document_span
            assert document[start:end] == m.document_token.removeprefix("▁")
