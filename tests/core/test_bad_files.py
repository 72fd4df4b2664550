"""Damaged files are refused by name, failed saves lose nothing, and a save keeps others' files.

Corruption fuzzing flips bytes in every file of a saved index (exact and compressed) and expects
the load to refuse, naming the file, or (config.json whitespace only) to load the very same index.
Fault injection raises inside each step of save and compact and expects the index in memory
unchanged and still saveable, and the folder still holding the last good save.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from late_interaction import IndexConfig, IndexFormatError, LateInteractionIndex
from late_interaction._index import atomic, persistence, state
from late_interaction._index.document_store import DocumentStore
from late_interaction._index.hnsw import VoyagerTokenIndex
from late_interaction._index.ivf import InvertedLists
from late_interaction._index.token_store import TokenStore

QUERIES = ["w1 w2 w3", "w100 w7", "w42 w250 w3 w9"]


def _build(encoder, ref, nbits=None, n=40):
    ids, texts, metas = ref.make_corpus(n, seed=5)
    config = IndexConfig(hnsw_m=8, exact_scan_tokens=0, exact_scan_fraction=0, nbits=nbits)
    index = LateInteractionIndex(encoder, config=config)
    index.add(texts, ids=ids, metadatas=metas)
    return index


def _answers(index):
    """What a user sees: stored documents and the results of a few searches."""
    return (
        index.ids,
        index.get(index.ids),
        [index.search(q, k=5) for q in QUERIES],
        [index.search(q, k=5, exact=True) for q in QUERIES],
    )


def _flip(path, offset, mask):
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("nbits", [None, 2], ids=["exact", "compressed"])
def test_flipped_bytes_in_any_file_are_refused_naming_the_file(fake_encoder, ref, tmp_path, nbits):
    index = _build(fake_encoder, ref, nbits)
    folder = index.save(tmp_path / "idx")
    expected = _answers(LateInteractionIndex.load(folder, fake_encoder))
    rng = random.Random(7)
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == (6 if nbits is None else 11)
    refused = 0
    for name in files:
        original = (folder / name).read_bytes()
        size = len(original)
        offsets = {0, size // 2, size - 1, *(rng.randrange(size) for _ in range(5))}
        for offset in sorted(offsets):
            _flip(folder / name, offset, rng.randrange(1, 256))
            try:
                loaded = LateInteractionIndex.load(folder, fake_encoder)
            except IndexFormatError as exc:
                assert name in str(exc), (name, offset, str(exc))
                refused += 1
            else:  # only a change JSON ignores (whitespace in config.json) may load...
                assert name == "config.json", (name, offset)
                assert _answers(loaded) == expected  # ...and then it is the very same index
            (folder / name).write_bytes(original)
    assert refused >= 6 * len(files)
    assert _answers(LateInteractionIndex.load(folder, fake_encoder)) == expected


_VOYAGER_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from conftest import FakeEncoder
    from late_interaction import IndexFormatError, LateInteractionIndex
    try:
        index = LateInteractionIndex.load(sys.argv[1], FakeEncoder())
        index.search("w1 w2 w3", k=3)
        print("LOADED")
    except IndexFormatError as exc:
        print("REFUSED", exc)
    """
)


def test_same_size_damage_to_the_graph_is_refused_before_voyager_reads_it(
    fake_encoder, ref, tmp_path
):
    # Before checksums this load passed and the first search killed the process (SIGSEGV); run
    # in a child process so that a crash is reported as a failure, not as a dead test run.
    folder = _build(fake_encoder, ref, n=200).save(tmp_path / "idx")
    graph = folder / "tokens.voyager"
    data = bytearray(graph.read_bytes())
    start = len(data) // 3
    data[start : start + 4096] = os.urandom(4096)
    graph.write_bytes(bytes(data))
    script = tmp_path / "child.py"
    script.write_text(_VOYAGER_CHILD)
    tests_core = str(os.path.dirname(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, str(script), str(folder), tests_core],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    assert run.stdout.startswith("REFUSED") and "tokens.voyager is damaged" in run.stdout


def test_a_changed_record_with_its_size_kept_is_refused(fake_encoder, ref, tmp_path):
    # The probe's case: two live documents sharing an id, same file size.
    folder = _build(fake_encoder, ref).save(tmp_path / "idx")
    docs = folder / "docs.jsonl"
    text = docs.read_text()
    assert '"id": "d10"' in text
    docs.write_text(text.replace('"id": "d10"', '"id": "d11"', 1))
    with pytest.raises(IndexFormatError, match=r"docs\.jsonl is damaged"):
        LateInteractionIndex.load(folder, fake_encoder)


def test_a_folder_saved_without_checksums_loads_with_one_warning(
    fake_encoder, ref, tmp_path, caplog
):
    index = _build(fake_encoder, ref)
    folder = index.save(tmp_path / "old")
    manifest = json.loads((folder / "config.json").read_text())
    del manifest["checksums"], manifest["manifest_checksum"]  # as older releases wrote it
    (folder / "config.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="late_interaction"):
        loaded = LateInteractionIndex.load(folder, fake_encoder)
        LateInteractionIndex.load(folder, fake_encoder)
    warnings = [r for r in caplog.records if "without checksums" in r.getMessage()]
    assert len(warnings) == 1 and str(folder) in warnings[0].getMessage()
    assert _answers(loaded) == _answers(index)
    loaded.save()  # the next save adds them
    assert "checksums" in json.loads((folder / "config.json").read_text())
    _flip(folder / "embeddings.npy", 200, 0x10)
    with pytest.raises(IndexFormatError, match=r"embeddings\.npy is damaged"):
        LateInteractionIndex.load(folder, fake_encoder)


def test_verify_false_skips_only_the_memory_mapped_arrays(fake_encoder, ref, tmp_path):
    folder = _build(fake_encoder, ref).save(tmp_path / "idx")
    original = (folder / "embeddings.npy").read_bytes()
    _flip(folder / "embeddings.npy", len(original) - 3, 0x01)  # a low mantissa bit
    assert len(LateInteractionIndex.load(folder, fake_encoder, verify=False)) == 40
    with pytest.raises(IndexFormatError, match=r"embeddings\.npy"):
        LateInteractionIndex.load(folder, fake_encoder)
    (folder / "embeddings.npy").write_bytes(original)
    _flip(folder / "tokens.voyager", 100, 0x01)  # what Voyager parses is always verified
    with pytest.raises(IndexFormatError, match=r"tokens\.voyager is damaged"):
        LateInteractionIndex.load(folder, fake_encoder, verify=False)


# --- fault injection --------------------------------------------------------------------------

_real_replace = os.replace


def _save_steps(nbits):
    """(name, object, attribute, call number to fail) for every step a save takes."""
    steps = [
        ("token store", TokenStore, "save", 1),
        ("documents", DocumentStore, "save", 1),
        ("checksums", persistence, "file_checksums", 1),
        ("manifest seal", persistence, "seal", 1),
        ("fsync", atomic, "fsync_path", 1),
        ("carry foreign files", atomic, "_carry_foreign_files", 1),
        ("rename aside", os, "replace", 1),
        ("rename in", os, "replace", 2),
        ("fsync parent", atomic, "fsync_path", 2),
    ]
    if nbits is None:
        steps.append(("graph", VoyagerTokenIndex, "save", 1))
    else:
        steps.append(("codec arrays", np, "save", 6))  # after the 4 token-store arrays
    return steps


@pytest.mark.parametrize("nbits", [None, 2], ids=["exact", "compressed"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_save_that_fails_at_any_step_loses_nothing(
    fake_encoder, ref, tmp_path, monkeypatch, nbits, error
):
    index = _build(fake_encoder, ref, nbits)
    folder = index.save(tmp_path / "idx")
    (folder / "retriever.json").write_text('{"k": 3}')  # another library's file beside it
    good = _answers(index)
    index.add(["w1 w2 w3 fresh"], ids=["new"])
    index.delete(["d3"])
    changed = _answers(index)
    for step, owner, attribute, fail_at in _save_steps(nbits):
        real = getattr(owner, attribute)
        calls = []

        def failing(*args, _real=real, _calls=calls, _at=fail_at, _step=step, **kwargs):
            _calls.append(1)
            if len(_calls) == _at:
                raise error(f"injected into {_step}")
            return _real(*args, **kwargs)

        monkeypatch.setattr(owner, attribute, failing)
        with pytest.raises(error, match="injected"):
            index.save(folder)
        monkeypatch.setattr(owner, attribute, real)
        assert _answers(index) == changed, step  # memory untouched
        on_disk = LateInteractionIndex.load(folder, fake_encoder)
        assert _answers(on_disk) == good, step  # the folder holds the last good save
        assert (folder / "retriever.json").read_text() == '{"k": 3}', step
        siblings = [p.name for p in tmp_path.iterdir() if p.name != "idx"]
        assert siblings == [".idx.lock"], (step, siblings)
    index.save(folder)  # still saveable, and the save is whole
    assert _answers(LateInteractionIndex.load(folder, fake_encoder)) == changed
    assert (folder / "retriever.json").read_text() == '{"k": 3}'


@pytest.mark.parametrize("nbits", [None, 2], ids=["exact", "compressed"])
def test_a_compact_that_fails_at_any_step_changes_nothing(
    fake_encoder, ref, tmp_path, monkeypatch, nbits
):
    index = _build(fake_encoder, ref, nbits)
    index.delete(["d1", "d2", "d30"])
    before = _answers(index)
    steps = [
        (TokenStore, "compacted"),
        (DocumentStore, "append"),
        (state.Snapshot, "build"),
        (state.IndexState, "_adopt"),
        (VoyagerTokenIndex, "add_all") if nbits is None else (InvertedLists, "appended"),
    ]
    for owner, attribute in steps:
        real = getattr(owner, attribute)

        def failing(*args, **kwargs):
            raise MemoryError("injected")

        monkeypatch.setattr(owner, attribute, failing)
        with pytest.raises(MemoryError):
            index.compact()
        monkeypatch.setattr(owner, attribute, real)
        assert _answers(index) == before, attribute
    folder = index.save(tmp_path / "idx")
    assert _answers(LateInteractionIndex.load(folder, fake_encoder)) == before
    index.compact()
    assert _answers(index)[:2] == before[:2]
    assert _answers(LateInteractionIndex.load(index.save(folder), fake_encoder))[:2] == before[:2]


# --- files a save did not write ---------------------------------------------------------------


def test_a_save_keeps_files_and_folders_it_did_not_write(fake_encoder, ref, tmp_path):
    index = _build(fake_encoder, ref, n=10)
    folder = index.save(tmp_path / "persist", extra_files={"retriever.json": {"k": 4}})
    (folder / "notes.txt").write_text("mine")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.bin").write_bytes(b"\x00\x01")
    index.add(["w5 w6"], ids=["x"])
    index.save(folder)  # a plain core save into the adapter's folder
    assert json.loads((folder / "retriever.json").read_text()) == {"k": 4}
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "sub" / "data.bin").read_bytes() == b"\x00\x01"
    assert "x" in LateInteractionIndex.load(folder, fake_encoder)
    compressed = _build(fake_encoder, ref, nbits=2, n=10)  # another format: old index files go
    compressed.save(folder)
    names = {p.name for p in folder.iterdir()}
    assert "embeddings.npy" not in names and "tokens.voyager" not in names
    assert {"retriever.json", "notes.txt", "sub", "codes.npy"} <= names
    assert len(LateInteractionIndex.load(folder, fake_encoder)) == 10


def test_llamaindex_retriever_survives_a_core_save_into_its_folder(fake_encoder, ref, tmp_path):
    pytest.importorskip("llama_index.core")
    from llama_index.retrievers.late_interaction import ColBERTRetriever

    index = _build(fake_encoder, ref, n=12)
    retriever = ColBERTRetriever(index=index, similarity_top_k=3)
    retriever.persist(tmp_path / "store")
    index.add(["w9 w8"], ids=["late"])
    index.save(tmp_path / "store")
    again = ColBERTRetriever.from_persist_dir(tmp_path / "store", model=fake_encoder)
    assert again.similarity_top_k == 3 and "late" in again._index
