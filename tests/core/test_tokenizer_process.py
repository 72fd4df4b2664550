"""Tokenizer processes: the same batches as tokenising in this process, and clean failures.

The reference is the in-process path (``batches.make_batches``), which ``test_encode_pipeline``
and ``test_tokenize`` check against each text encoded alone and the tokenizer's own call. The
processes run on CPU here exactly as on a GPU host (``tokenizer_processes`` set explicitly).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from late_interaction._encoding import batches as _batches
from late_interaction._encoding import tokenizer_process as _tp
from late_interaction._encoding import tokenizer_worker as _tw

# Several groups at batch size 2 (groups of 8 texts); ASCII, accented, CJK, empty, punctuation
# and long texts (cut before tokenising by precut.py on BERT vocabularies).
TEXTS = [
    "a b c d e f g h i j k l m n o p",
    "antidisestablishmentarianism pneumonoultramicroscopic",
    "",
    "the cat sat on the mat, fast!",
    "Café au lait, naïve résumé; Ünïcödé text.",
    "日本語のテキストと English words",
    "punctuation... only!!!",
    "   spaced   out   ",
    "supercalifragilistic expialidocious " * 40,
    "x",
] * 3 + [f"text number {i} with some words" for i in range(7)]

MODELS = ["tiny_pylate_model", "tiny_stanford_model", "default_model"]


def _assert_same_batches(made, reference):
    assert len(made) == len(reference)
    for got, want in zip(made, reference, strict=True):
        np.testing.assert_array_equal(got.index, want.index)
        assert set(got.features) == set(want.features)
        for name, tensor in want.features.items():
            np.testing.assert_array_equal(got.features[name].numpy(), tensor.numpy(), name)
        np.testing.assert_array_equal(got.keep.numpy(), want.keep.numpy())
        np.testing.assert_array_equal(got.rows.numpy(), want.rows.numpy())
        np.testing.assert_array_equal(got.counts, want.counts)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("is_query", [False, True])
def test_processes_make_the_same_batches(request, model_name, is_query):
    pipe = request.getfixturevalue(model_name)._pipeline
    groups = _batches.plan_groups(TEXTS, 2)
    assert len(groups) == 5  # three workers below each get more than one group
    reference = list(
        _batches.make_batches(pipe.tokenizer, pipe.rules, pipe.config, TEXTS, groups,
                              is_query=is_query, batch_size=2, pin=False)
    )  # fmt: skip
    for processes in (1, 3):
        workers = _tp.TokenizerProcesses(pipe.tokenizer, pipe.rules, pipe.config, processes, 1)
        try:
            for _ in range(2):  # a second job on the same workers
                made = workers.batches(TEXTS, groups, is_query=is_query, batch_size=2, pin=False)
                _assert_same_batches(list(made), reference)
        finally:
            workers.close()


@pytest.fixture
def with_processes(tiny_pylate_model, monkeypatch):
    """``tiny_pylate_model`` tokenising in two processes (restored and stopped afterwards)."""
    pipe = tiny_pylate_model._pipeline
    monkeypatch.setattr(pipe, "tokenizer_processes", 2)
    yield tiny_pylate_model
    pipe.close()


def test_encoding_through_processes_equals_in_process(with_processes, monkeypatch):
    pipe = with_processes._pipeline
    got = with_processes.encode_documents(TEXTS, batch_size=2)
    workers = pipe._source.tokenizers
    assert workers is not None and not workers.closed  # they were used
    monkeypatch.setattr(pipe, "tokenizer_processes", 0)
    want = with_processes.encode_documents(TEXTS, batch_size=2)
    assert len(got) == len(want) == len(TEXTS)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_killed_worker_is_an_error_and_the_next_call_starts_afresh(with_processes):
    pipe = with_processes._pipeline
    want = with_processes.encode_documents(TEXTS, batch_size=2)
    victim = pipe._source.tokenizers._workers[1][0]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    with pytest.raises(RuntimeError, match=r"tokenizer process died \(exit code -9\)"):
        with_processes.encode_documents(TEXTS, batch_size=2)
    assert pipe._source.tokenizers.closed  # the survivors were stopped too
    again = with_processes.encode_documents(TEXTS, batch_size=2)
    for a, b in zip(again, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_error_in_a_worker_is_raised_with_its_traceback(tiny_pylate_model):
    pipe = tiny_pylate_model._pipeline
    texts = [*TEXTS[:20], None, *TEXTS[21:]]  # not a str: fails in the worker's tokenising
    groups = _batches.plan_groups(TEXTS, 2)  # planned on valid texts, so None reaches a worker
    workers = _tp.TokenizerProcesses(pipe.tokenizer, pipe.rules, pipe.config, 2, 1)
    with pytest.raises(RuntimeError, match=r"(?s)tokenizer process failed.*AttributeError"):
        list(workers.batches(texts, groups, is_query=False, batch_size=2, pin=False))
    assert workers.closed


def test_leaving_a_job_early_stops_the_workers(tiny_pylate_model):
    pipe = tiny_pylate_model._pipeline
    workers = _tp.TokenizerProcesses(pipe.tokenizer, pipe.rules, pipe.config, 2, 1)
    processes = [w[0] for w in workers._workers]
    made = workers.batches(TEXTS, _batches.plan_groups(TEXTS, 2), is_query=False, batch_size=2,
                           pin=False)  # fmt: skip
    next(made)
    made.close()
    assert workers.closed
    assert all(p.poll() is not None for p in processes)


def test_explicit_processes_that_cannot_start_raise(tiny_pylate_model, monkeypatch):
    pipe = tiny_pylate_model._pipeline
    monkeypatch.setattr(pipe, "tokenizer_processes", 1)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(OSError, match="nonexistent"):
        tiny_pylate_model.encode_documents(TEXTS, batch_size=2)
    monkeypatch.undo()
    assert not pipe._source.lock.locked()  # released: a later call can use them


@pytest.mark.parametrize(
    ("values", "kind"),
    [([0, 1], np.uint8), ([0, 30521], np.int16), ([0, 250001], np.int32), ([-1, 5], np.int16)],
)
def test_narrowed_values_are_exact(values, kind):
    array = np.array([values], dtype=np.int64)
    narrow = _tw._narrow(array)
    assert narrow.dtype == kind
    np.testing.assert_array_equal(narrow.astype(np.int64), array)


def test_the_worker_module_imports_neither_torch_nor_transformers():
    # What keeps a worker's start-up to a fraction of a second.
    code = (
        "import sys, late_interaction._encoding.tokenizer_worker; "
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    root = os.path.dirname(os.path.dirname(_tp.__file__))
    env = {**os.environ, "PYTHONPATH": os.path.dirname(root)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_abandoning_an_encode_stops_the_workers_and_frees_them(with_processes):
    # Many groups, so the receiving thread is still reading from the workers when the consumer
    # stops after the first batch.
    pipe = with_processes._pipeline
    texts = TEXTS * 20
    outputs = pipe.run(texts, _batches.plan_groups(texts, 2), False, 2, False)
    next(outputs)
    processes = [w[0] for w in pipe._source.tokenizers._workers]
    outputs.close()
    assert pipe._source.tokenizers.closed
    assert all(p.poll() is not None for p in processes)
    assert not pipe._source.lock.locked()
    got = with_processes.encode_documents(TEXTS, batch_size=2)  # fresh workers
    assert len(got) == len(TEXTS)


def test_workers_run_in_their_own_session(with_processes):
    # So a Ctrl-C in the terminal reaches the caller alone, which then stops them cleanly.
    with_processes.encode_documents(TEXTS, batch_size=2)
    for process, _, _ in with_processes._pipeline._source.tokenizers._workers:
        assert os.getsid(process.pid) != os.getsid(0)


@pytest.mark.parametrize("model_name", ["tiny_pylate_model", "default_model"])
def test_a_worker_that_exits_at_start_is_an_error(request, model_name, tmp_path, monkeypatch):
    # The default model's setup message outgrows a pipe's buffer: the parent must not block
    # sending it to a child that is gone.
    # A "python" that exits at once (an embedded interpreter's binary, a broken venv).
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    pipe = request.getfixturevalue(model_name)._pipeline
    with pytest.raises(RuntimeError, match=r"tokenizer process died \(exit code 3\)"):
        _tp.TokenizerProcesses(pipe.tokenizer, pipe.rules, pipe.config, 1, 1)
