"""Bad paths and folders: one case per input class, each refused with a clear error.

Every case names the problem and the fix, and leaves what was there unchanged (the saved index
still loads to the same answers, a foreign folder keeps its files). Also: glob characters in a
folder name never reach another index's files. Checkpoints: ``test_bad_checkpoints.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from late_interaction import IndexConfig, IndexFormatError, LateInteractionIndex
from late_interaction._index.checksums import file_checksums, seal


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
