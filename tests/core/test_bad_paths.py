"""Bad paths, folders and checkpoints: one case per input class, each refused with a clear error.

Every case names the problem and the fix, and leaves what was there unchanged (the saved index
still loads to the same answers, a foreign folder keeps its files). Also: glob characters in a
folder name never reach another index's files, and a folder naming a Hub model is not fetched
without the caller's consent.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from late_interaction import (
    CheckpointFormatError,
    CheckpointNotFoundError,
    ColBERT,
    IndexConfig,
    IndexFormatError,
    LateInteractionIndex,
)
from late_interaction._index.checksums import file_checksums, seal
from late_interaction._index.encoder_identity import names_hub_model


def _build(encoder, ref, n=12):
    ids, texts, metas = ref.make_corpus(n, seed=9)
    index = LateInteractionIndex(encoder, config=IndexConfig(hnsw_m=8))
    index.add(texts, ids=ids, metadatas=metas)
    return index


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _reseal(folder: Path, change) -> None:
    manifest = json.loads((folder / "config.json").read_text())
    manifest.pop("manifest_checksum")
    change(manifest)
    (folder / "config.json").write_text(json.dumps(seal(manifest)))


# Each case: (prepare(tmp, saved_folder, encoder) -> call, expected error, message pattern).
def _load(path, encoder=None):
    return lambda: LateInteractionIndex.load(path, encoder)


def _missing(tmp, saved, enc):
    return _load(tmp / "nothing", enc)


def _a_file(tmp, saved, enc):
    (tmp / "file").write_text("x")
    return _load(tmp / "file", enc)


def _empty_folder(tmp, saved, enc):
    (tmp / "empty").mkdir()
    return _load(tmp / "empty", enc)


def _llamaindex_persist_dir(tmp, saved, enc):  # another library's folder, no index in it
    (tmp / "storage").mkdir()
    for name in ("docstore.json", "index_store.json", "vector_store.json"):
        (tmp / "storage" / name).write_text("{}")
    return _load(tmp / "storage", enc)


def _int_path(tmp, saved, enc):
    return _load(5, enc)


def _empty_path(tmp, saved, enc):
    return _load("", enc)


def _nul_path(tmp, saved, enc):
    return _load(str(tmp / "a\0b"), enc)


def _file_deleted(tmp, saved, enc):
    (saved / "docs.jsonl").unlink()
    return _load(saved, enc)


def _file_truncated(tmp, saved, enc):
    data = (saved / "embeddings.npy").read_bytes()
    (saved / "embeddings.npy").write_bytes(data[:-64])
    return _load(saved, enc)


def _manifest_names_outside_file(tmp, saved, enc):
    (tmp / "outside.json").write_text("{}")

    def change(m):
        m["files"]["../outside.json"] = 2
        m["checksums"]["../outside.json"] = "sha256:0"

    _reseal(saved, change)
    return _load(saved, enc)


def _manifest_checksums_dropped(tmp, saved, enc):
    manifest = json.loads((saved / "config.json").read_text())
    del manifest["checksums"]  # its own checksum left in place: a half-stripped manifest
    (saved / "config.json").write_text(json.dumps(manifest))
    return _load(saved, enc)


def _manifest_checksum_of_another_file(tmp, saved, enc):
    def change(m):
        m["checksums"]["docs.jsonl"] = file_checksums(saved, ["token_doc.npy"])["token_doc.npy"]

    _reseal(saved, change)
    return _load(saved, enc)


def _future_version(tmp, saved, enc):
    _reseal(saved, lambda m: m.update(format_version=99))
    return _load(saved, enc)


def _save_into_file(tmp, saved, enc):
    (tmp / "file").write_text("x")
    return lambda: LateInteractionIndex.load(saved, enc).save(tmp / "file")


def _save_into_foreign_folder(tmp, saved, enc):
    (tmp / "storage").mkdir()
    (tmp / "storage" / "docstore.json").write_text('{"mine": 1}')
    return lambda: LateInteractionIndex.load(saved, enc).save(tmp / "storage")


def _save_into_model_checkpoint(tmp, saved, enc):  # its config.json is the model's, not ours
    (tmp / "ckpt").mkdir()
    (tmp / "ckpt" / "config.json").write_text('{"model_type": "bert"}')
    (tmp / "ckpt" / "model.safetensors").write_bytes(b"weights")
    return lambda: LateInteractionIndex.load(saved, enc).save(tmp / "ckpt")


def _save_to_int_path(tmp, saved, enc):
    return lambda: LateInteractionIndex.load(saved, enc).save(3.5)


def _construct_with_list_path(tmp, saved, enc):
    return lambda: LateInteractionIndex(enc, [str(tmp / "x")])


def _construct_on_saved_index(tmp, saved, enc):
    return lambda: LateInteractionIndex(enc, saved)


def _glob_name_missing(tmp, saved, enc):  # "idx" has an interrupted save; "i?x" is no index
    os.replace(saved, saved.with_name(".idx.old-0123"))
    return _load(tmp / "i?x", enc)


FOLDER_CASES = [
    (_missing, FileNotFoundError, "no saved index at .*save one"),
    (_a_file, NotADirectoryError, "is a file, not an index folder"),
    (_empty_folder, IndexFormatError, "holds no config.json"),
    (_llamaindex_persist_dir, IndexFormatError, "holds no config.json"),
    (_int_path, TypeError, "must be a folder path .*got int"),
    (_empty_path, ValueError, "non-empty folder path"),
    (_nul_path, ValueError, "without NUL"),
    (_file_deleted, IndexFormatError, r"docs\.jsonl is missing.*rebuild"),
    (_file_truncated, IndexFormatError, r"embeddings\.npy is \d+ bytes; config\.json expects"),
    (_manifest_names_outside_file, IndexFormatError, "outside the folder"),
    (_manifest_checksums_dropped, IndexFormatError, r"config\.json is damaged"),
    (_manifest_checksum_of_another_file, IndexFormatError, r"docs\.jsonl is damaged"),
    (_future_version, IndexFormatError, "format_version 99.*Rebuild"),
    (_save_into_file, FileExistsError, "is a file; save the index into a folder"),
    (_save_into_foreign_folder, FileExistsError, "non-empty folder without a saved index"),
    (_save_into_model_checkpoint, FileExistsError, "non-empty folder without a saved index"),
    (_save_to_int_path, TypeError, "must be a folder path .*got float"),
    (_construct_with_list_path, TypeError, "must be a folder path .*got list"),
    (_construct_on_saved_index, FileExistsError, r"already holds a saved index; open it"),
    (_glob_name_missing, FileNotFoundError, "no saved index"),
]


@pytest.mark.parametrize(
    ("prepare", "error", "match"), FOLDER_CASES, ids=[c[0].__name__[1:] for c in FOLDER_CASES]
)
def test_bad_folder_inputs_are_refused_clearly(fake_encoder, ref, tmp_path, prepare, error, match):
    index = _build(fake_encoder, ref)
    saved = index.save(tmp_path / "idx")
    expected = [index.search("w1 w2 w3", k=5), index.ids]
    call = prepare(tmp_path, saved, fake_encoder)
    before = {p.name: _snapshot(p) if p.is_dir() else p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(error, match=match):
        call()
    after = {p.name: _snapshot(p) if p.is_dir() else p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # nothing written, moved or deleted by the failed call
    assert [index.search("w1 w2 w3", k=5), index.ids] == expected


def test_glob_characters_never_reach_another_index(fake_encoder, ref, tmp_path):
    first = _build(fake_encoder, ref, n=7)
    abc = first.save(tmp_path / "abc")
    os.replace(abc, tmp_path / ".abc.old-77")  # abc's save was interrupted mid-swap
    (tmp_path / ".abc.tmp-88").mkdir()  # and an earlier attempt was cut short
    other = _build(fake_encoder, ref, n=3)
    for name in ("a*", "a?c", "[a]bc", "*", "abc.old-77"):
        with pytest.raises(FileNotFoundError):
            LateInteractionIndex.load(tmp_path / name, fake_encoder)
        saved = other.save(tmp_path / name)
        assert saved.name == name and len(LateInteractionIndex.load(saved, fake_encoder)) == 3
    assert (tmp_path / ".abc.old-77").is_dir() and (tmp_path / ".abc.tmp-88").is_dir()
    recovered = LateInteractionIndex.load(tmp_path / "abc", fake_encoder)
    assert recovered.ids == first.ids


# --- checkpoints ------------------------------------------------------------------------------

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
