"""Processes sharing one index folder: writers take turns, readers see one whole save.

The long randomised version (SIGKILL trials, a writer with readers, two writers) is the ``soak``
marker's ``test_soak.py``; these are the quick deterministic cases of the same guarantees.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time

from late_interaction import IndexConfig, LateInteractionIndex
from late_interaction._index import atomic
from late_interaction._index.document_store import DocumentStore


def _build(encoder, ref, n, prefix="d"):
    ids, texts, metas = ref.make_corpus(n, seed=len(prefix) + n)
    index = LateInteractionIndex(encoder, config=IndexConfig(hnsw_m=8))
    index.add(texts, ids=[prefix + i for i in ids], metadatas=metas)
    return index


def test_a_reader_reads_again_when_a_save_replaces_the_folder_mid_read(
    fake_encoder, ref, tmp_path, monkeypatch
):
    folder = _build(fake_encoder, ref, 12).save(tmp_path / "idx")
    newer = _build(fake_encoder, ref, 20, prefix="n")
    real_load = DocumentStore.load
    raced = []

    def load_while_a_writer_saves(cls, path, n_docs, **kwargs):
        if not raced:  # between reading the token arrays and the records: another save lands
            raced.append(1)
            newer.save(folder)
        return real_load(path, n_docs, **kwargs)

    monkeypatch.setattr(DocumentStore, "load", classmethod(load_while_a_writer_saves))
    loaded = LateInteractionIndex.load(folder, fake_encoder)
    assert raced and loaded.ids == newer.ids  # never "damaged", never a mix of the two saves
    assert loaded.search("w1 w2 w3", k=5) == newer.search("w1 w2 w3", k=5)


def test_a_reader_finding_a_swap_in_progress_waits_for_the_writer(fake_encoder, ref, tmp_path):
    old = _build(fake_encoder, ref, 12)
    folder = old.save(tmp_path / "idx")
    new = _build(fake_encoder, ref, 20, prefix="n")
    staged = new.save(tmp_path / "staged")
    result = {}
    with atomic.writer_lock(folder):  # this thread is a writer between its two renames
        os.replace(folder, tmp_path / ".idx.old-1")
        os.replace(staged, tmp_path / ".idx.tmp-2")
        reader = threading.Thread(
            target=lambda: result.update(ids=LateInteractionIndex.load(folder, fake_encoder).ids)
        )
        reader.start()
        time.sleep(0.3)  # room for a reader that would "recover" the folder under our feet
        os.replace(tmp_path / ".idx.tmp-2", folder)  # the writer finishes its swap
        shutil.rmtree(tmp_path / ".idx.old-1")
    reader.join(timeout=60)
    assert result["ids"] == new.ids


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[3])
    from conftest import FakeEncoder, make_corpus
    from late_interaction import IndexConfig, LateInteractionIndex
    path, prefix = sys.argv[1], sys.argv[2]
    ids, texts, metas = make_corpus(400, seed=len(prefix))
    index = LateInteractionIndex(FakeEncoder(), config=IndexConfig(hnsw_m=8))
    index.add(texts, ids=[prefix + i for i in ids], metadatas=metas)
    for round in range(10):
        index.add([f"w{round} w9"], ids=[f"{prefix}round{round}"])
        index.save(path)
    print("SAVED", len(index), flush=True)
    """
)


def test_two_writer_processes_on_one_folder_lose_no_save(fake_encoder, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    here = os.path.dirname(__file__)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "env": env}
    writers = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path / "idx"), p, here], **pipes)
        for p in ("a", "bb")
    ]
    outs = [w.communicate(timeout=300) for w in writers]
    for writer, (out, err) in zip(writers, outs, strict=True):
        assert writer.returncode == 0 and out.strip() == "SAVED 410", err[-3000:]
    final = LateInteractionIndex.load(tmp_path / "idx", fake_encoder)
    prefixes = {i[0] for i in final.ids}
    assert len(final) == 410 and prefixes in ({"a"}, {"b"})  # one writer's whole last save
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".idx")] == [".idx.lock"]
