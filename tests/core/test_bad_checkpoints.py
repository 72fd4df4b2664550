"""Incomplete or damaged checkpoints are refused with what is missing and how to fix it.

Also: a saved index whose recorded model is a Hugging Face Hub id is not fetched by
``LateInteractionIndex.load(path)`` without the caller's consent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from late_interaction import (
    CheckpointFormatError,
    CheckpointNotFoundError,
    ColBERT,
    LateInteractionIndex,
)
from late_interaction._index.encoder_identity import names_hub_model

_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def _strip_tokenizer(folder: Path) -> None:
    for name in _TOKENIZER_FILES:
        (folder / name).unlink(missing_ok=True)


def _other_small_tokenizer(folder: Path) -> None:
    _strip_tokenizer(folder)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "[Q]", "[D]"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer"}')


CHECKPOINT_CASES = [
    ("pylate_without_tokenizer", "pylate", _strip_tokenizer, CheckpointFormatError,
     r"tokenizer knows 5 tokens but the model has \d+.*found: none.*save_pretrained"),
    ("stanford_without_tokenizer", "stanford", _strip_tokenizer, CheckpointFormatError,
     r"tokenizer knows 5 tokens.*save_pretrained"),
    ("tokenizer_of_another_model", "pylate", _other_small_tokenizer, CheckpointFormatError,
     r"tokenizer knows 1\d tokens.*vocab\.txt"),
    ("weights_missing", "pylate", lambda f: (f / "model.safetensors").unlink(),
     CheckpointFormatError, "no file named model.safetensors"),
    ("weights_damaged", "pylate", lambda f: (f / "model.safetensors").write_bytes(b"\0" * 7),
     CheckpointFormatError, "SafetensorError"),
    ("dense_weights_damaged", "pylate",
     lambda f: (f / "1_Dense" / "model.safetensors").write_bytes(b"garbage"),
     CheckpointFormatError, r"1_Dense/model\.safetensors is damaged"),
    ("dense_config_missing", "pylate", lambda f: (f / "1_Dense" / "config.json").unlink(),
     CheckpointFormatError, "1_Dense: expected config.json"),
    ("modules_json_garbage", "pylate", lambda f: (f / "modules.json").write_text("{oops"),
     CheckpointFormatError, "modules.json: expected a readable JSON"),
    ("no_known_format", "pylate",
     lambda f: [(f / n).unlink() for n in ("modules.json", "config.json")],
     CheckpointFormatError, "not a checkpoint we can load"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "damage", "error", "match"),
    [c[1:] for c in CHECKPOINT_CASES],
    ids=[c[0] for c in CHECKPOINT_CASES],
)
def test_incomplete_checkpoints_are_refused(
    tiny_pylate_path, tiny_stanford_path, tmp_path, kind, damage, error, match
):
    source = tiny_pylate_path if kind == "pylate" else tiny_stanford_path
    folder = shutil.copytree(source, tmp_path / "ckpt")
    damage(folder)
    with pytest.raises(error, match=match):
        ColBERT.from_pretrained(folder, device="cpu", add_missing_markers=True)


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("/no/such/checkpoint", CheckpointNotFoundError, "does not exist"),
        ("./missing-ckpt", CheckpointNotFoundError, "does not exist"),
    ],
)
def test_missing_checkpoint_paths_are_refused_without_a_download(name, error, match, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(error, match=match):
        ColBERT.from_pretrained(name, device="cpu")


def test_a_checkpoint_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(CheckpointFormatError, match="is a file; expected a checkpoint folder"):
        ColBERT.from_pretrained(tmp_path / "model.bin", device="cpu")


# --- a folder naming a Hub model -------------------------------------------------------------


class _HubNamed:
    """An encoder whose fingerprint names a Hub repository, as ColBERT.from_pretrained's does."""

    def __init__(self, fake):
        self._fake, self.dim = fake, fake.dim

    def encode_documents(self, *args, **kwargs):
        return self._fake.encode_documents(*args, **kwargs)

    def encode_queries(self, *args, **kwargs):
        return self._fake.encode_queries(*args, **kwargs)

    def fingerprint(self):
        return {**self._fake.fingerprint(), "name_or_path": "someorg/colbert-model"}


def test_a_hub_model_named_by_a_folder_needs_the_callers_consent(
    fake_encoder, ref, tmp_path, monkeypatch
):
    model = _HubNamed(fake_encoder)
    index = LateInteractionIndex(model)
    index.add(["w1 w2"], ids=["a"])
    folder = index.save(tmp_path / "untrusted")
    fetched = []

    def from_pretrained(name=None, **kwargs):  # stands in for the download
        fetched.append(name)
        return model

    monkeypatch.setattr(ColBERT, "from_pretrained", staticmethod(from_pretrained))
    with pytest.raises(ValueError, match="names the Hugging Face Hub model 'someorg/colbert-mod"):
        LateInteractionIndex.load(folder)
    assert fetched == []  # refused before anything was fetched
    assert LateInteractionIndex.load(folder, model).ids == ["a"]  # passing the model works
    assert LateInteractionIndex.load(folder, trust_remote_model=True).ids == ["a"]
    assert fetched == ["someorg/colbert-model"]


@pytest.mark.parametrize(
    ("name", "remote"),
    [
        ("someorg/colbert-model", True),
        ("bert-base-uncased", True),
        ("embedded:all-MiniLM-L6-v2", False),
        ("/abs/missing/ckpt", False),
        ("./rel/ckpt", False),
        ("~/ckpt", False),
        ("a/b/c", False),
    ],
)
def test_which_recorded_names_count_as_hub_models(name, remote):
    assert names_hub_model(name) is remote
