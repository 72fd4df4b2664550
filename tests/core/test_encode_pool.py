"""The multi-process encoding pool, on two CPU processes (the code path of several GPUs).

The reference is the same encoder in this process: a pool must give the same arrays, bit for
bit (float32, same device type), in input order. One pool serves the module's tests (starting
worker processes is most of the time); the test that breaks a worker runs last and makes its
own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from late_interaction import ColBERT

TEXTS = [
    f"text {i} " + "word " * (i * 7 % 23) + ("and punctuation!" if i % 3 else "") for i in range(40)
]


@pytest.fixture(scope="module")
def pool_and_model(tiny_pylate_path):
    model = ColBERT.from_pretrained(tiny_pylate_path, device="cpu")
    pool = model.start_pool(["cpu", "cpu"])
    yield model, pool
    pool.close()


@pytest.mark.parametrize("is_query", [False, True])
def test_pool_equals_one_process_in_input_order(pool_and_model, tiny_pylate_model, is_query):
    model, pool = pool_and_model
    assert model._pool is pool and not pool.closed
    encode = model.encode_queries if is_query else model.encode_documents
    local = tiny_pylate_model.encode_queries if is_query else tiny_pylate_model.encode_documents
    got, got_dense = encode(TEXTS, batch_size=3, return_dense=True)
    ref, ref_dense = local(TEXTS, batch_size=3, return_dense=True)
    assert len(got) == len(TEXTS)
    for a, b in zip(got, ref, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got_dense, ref_dense)


def test_workers_share_the_cores(pool_and_model):
    """Two workers get half the cores each, for torch and for the Rust tokenizer's threads (a
    value the caller set for the tokenizer is kept: see the next test)."""
    _, pool = pool_and_model
    half = max(1, (os.cpu_count() or 1) // 2)
    tokenizer = os.environ.get("RAYON_NUM_THREADS", str(half))
    shares = [{k: w[k] for k in ("device", "torch_threads", "tokenizer_threads")}
              for w in pool.workers]  # fmt: skip
    assert shares == [{"device": "cpu", "torch_threads": half, "tokenizer_threads": tokenizer}] * 2
    assert all(w["load_seconds"] > 0 for w in pool.workers)


def test_a_tokenizer_thread_count_set_by_the_caller_is_kept(tiny_pylate_model, monkeypatch):
    monkeypatch.setenv("RAYON_NUM_THREADS", "3")
    with tiny_pylate_model.start_pool(["cpu"]) as pool:
        assert pool.workers[0]["tokenizer_threads"] == "3"
        assert pool.workers[0]["torch_threads"] == (os.cpu_count() or 1)


def test_a_job_interrupted_while_being_sent_closes_the_pool(tiny_pylate_path, monkeypatch):
    """Ctrl-C after one worker got its share and before the other did: the pool must close
    (its workers stopped), not stay open with a worker busy on a job nobody reads."""
    model = ColBERT.from_pretrained(tiny_pylate_path, device="cpu")
    pool = model.start_pool(["cpu", "cpu"])
    processes = list(pool._processes)

    def interrupted(item):
        raise KeyboardInterrupt

    monkeypatch.setattr(pool._inboxes[1], "put", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.encode_documents(TEXTS, batch_size=2)
    assert pool.closed and not any(p.is_alive() for p in processes)
    # The encoder goes on without the closed pool.
    assert model._pool is None or model._pool.closed
    ref = ColBERT.from_pretrained(tiny_pylate_path, device="cpu").encode_documents(TEXTS[:3])
    for a, b in zip(model.encode_documents(TEXTS[:3]), ref, strict=True):
        np.testing.assert_array_equal(a, b)


def test_pool_handles_empty_and_tiny_inputs(pool_and_model, tiny_pylate_model):
    model, _ = pool_and_model
    assert model.encode_documents([]) == []
    (one,) = model.encode_documents(["only one text"])  # fewer groups than workers
    np.testing.assert_array_equal(one, tiny_pylate_model.encode_documents(["only one text"])[0])
    with pytest.raises(ValueError, match="batch_size"):
        model.encode_documents(TEXTS, batch_size=0)


def test_pool_serves_two_threads_at_once(pool_and_model, tiny_pylate_model):
    model, _ = pool_and_model
    results: dict[int, list] = {}

    def work(i: int) -> None:
        encode = model.encode_queries if i % 2 else model.encode_documents
        results[i] = encode(TEXTS, batch_size=4)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    docs = tiny_pylate_model.encode_documents(TEXTS, batch_size=4)
    queries = tiny_pylate_model.encode_queries(TEXTS, batch_size=4)
    for got, ref in ((results[0], docs), (results[1], queries)):
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_array_equal(a, b)


def test_pool_rejects_bad_devices(tiny_pylate_model):
    for devices in ([], "cpu"):
        with pytest.raises(ValueError, match="non-empty list"):
            tiny_pylate_model.start_pool(devices)


def test_a_script_without_a_main_guard_is_told_to_add_one(tiny_pylate_path, tmp_path):
    """Spawned workers import the main script again; one that starts a pool at import time
    makes every worker die while starting. The error must say what to change."""
    script = tmp_path / "no_guard.py"
    script.write_text(
        "import sys\n"
        "from late_interaction import ColBERT\n"
        "model = ColBERT.from_pretrained(sys.argv[1], device='cpu')\n"
        "model.start_pool(['cpu'])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, str(script), str(tiny_pylate_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: encoding worker(s) died"), run.stderr[-2000:]
    assert 'if __name__ == "__main__":' in last


def test_closed_pool_detaches_and_refuses_work(pool_and_model):
    model, pool = pool_and_model
    pool.close()
    assert pool.closed
    with pytest.raises(RuntimeError, match="closed"):
        pool.encode(TEXTS, False, 4, False)
    # The encoder falls back to its own device once its pool is closed.
    assert len(model.encode_documents(TEXTS[:3])) == 3 and model._pool is None


def test_a_failing_worker_raises_its_error_and_closes_the_pool(tiny_pylate_path, tmp_path):
    folder = shutil.copytree(tiny_pylate_path, tmp_path / "ckpt")
    model = ColBERT.from_pretrained(folder, device="cpu")
    pool = model.start_pool(["cpu"])
    # bytes pass the parent's planning (they have a length) but not the worker's tokenizer.
    with pytest.raises(RuntimeError, match=r"worker on cpu failed(.|\n)*TypeError"):
        pool.encode(["fine", b"not a str"], False, 2, False)
    assert pool.closed
    # A worker that cannot load the encoder (its folder is gone) fails the start, clearly.
    shutil.rmtree(folder)
    with pytest.raises(RuntimeError, match=r"worker on cpu failed(.|\n)*ckpt"):
        model.encode_documents(TEXTS, devices=["cpu"])


@pytest.mark.gpu
def test_pool_on_every_gpu_equals_one_gpu(tiny_pylate_path):
    import torch

    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    model = ColBERT.from_pretrained(tiny_pylate_path, device="cuda:0")
    ref = model.encode_documents(TEXTS * 10, batch_size=4)
    with model.start_pool(devices):
        got = model.encode_documents(TEXTS * 10, batch_size=4)
    for a, b in zip(got, ref, strict=True):  # same batches on the same kind of GPU
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.gpu
def test_a_one_off_call_on_every_gpu_equals_one_gpu(tiny_pylate_path):
    """``devices=`` on GPUs runs one thread per GPU (``DeviceThreads``), not worker processes."""
    import torch

    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    model = ColBERT.from_pretrained(tiny_pylate_path, device="cuda:0")
    ref = model.encode_documents(TEXTS * 10, batch_size=4)
    got = model.encode_documents(TEXTS * 10, batch_size=4, devices=devices)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_gpu_pools_are_processes_when_kept_and_threads_for_one_call(tiny_pylate_path, monkeypatch):
    """Which pool serves GPUs (no GPU needed: the pool classes are replaced by recorders, and
    the encoder itself stays on the CPU)."""
    from late_interaction._encoding import pool_methods

    made = []

    class Recorder:
        closed = False

        def __init__(self, load_args, devices):
            made.append((type(self).__name__, list(devices)))

        def encode(self, texts, is_query, batch_size, show):
            return [np.zeros((1, 2), np.float32)] * len(texts), np.zeros((len(texts), 2))

        def close(self, wait=True):
            self.closed = True

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.close()

    monkeypatch.setattr(pool_methods, "EncodePool", type("EncodePool", (Recorder,), {}))
    monkeypatch.setattr(pool_methods, "DeviceThreads", type("DeviceThreads", (Recorder,), {}))
    model = ColBERT.from_pretrained(tiny_pylate_path, device="cpu")
    gpus = ["cuda:0", "cuda:1"]
    model.encode_documents(TEXTS[:2], devices=gpus)
    model.start_pool(gpus).close()
    model.encode_documents(TEXTS[:2], devices=["cpu", "cpu"])
    model.start_pool(["cuda:0", "cpu"]).close()
    assert made == [
        ("DeviceThreads", gpus),
        ("EncodePool", gpus),
        ("EncodePool", ["cpu", "cpu"]),
        ("EncodePool", ["cuda:0", "cpu"]),
    ]


def test_pool_workers_run_the_parents_backend(tiny_pylate_path, tmp_path, monkeypatch):
    """A pool of an ONNX encoder encodes with ONNX too: its output equals the in-process ONNX
    output bit for bit, and is not the torch output (the backends agree only to ~1e-6)."""
    monkeypatch.setenv("LATE_INTERACTION_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    shutil.copytree(tiny_pylate_path, folder)
    model = ColBERT.from_pretrained(folder, device="cpu", backend="onnx")
    ref = model.encode_documents(TEXTS[:8])
    torch_ref = ColBERT.from_pretrained(folder, device="cpu").encode_documents(TEXTS[:8])
    got = model.encode_documents(TEXTS[:8], devices=["cpu"])
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(got, torch_ref, strict=True))


# --- several GPUs from one process (device_threads.py), run here on CPU copies ---------------


def test_device_threads_equal_one_process_in_input_order(tiny_pylate_path, tiny_pylate_model):
    """The thread pool's code path on two CPU copies: same arrays, bit for bit, in input order,
    with more groups than devices (batch_size 2: 40 texts in 5 groups of 8)."""
    from late_interaction._encoding.device_threads import DeviceThreads

    model = ColBERT.from_pretrained(tiny_pylate_path, device="cpu")
    with DeviceThreads(model._pipeline.load_args, ["cpu", "cpu"]) as pool:
        assert [w["device"] for w in pool.workers] == ["cpu", "cpu"]
        for is_query in (False, True):
            got, dense = pool.encode(TEXTS, is_query, batch_size=2, show_progress_bar=False)
            ref, ref_dense = tiny_pylate_model._pipeline.encode(TEXTS, is_query, 2, False)
            for a, b in zip(got, ref, strict=True):
                np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(dense, ref_dense)
        got, _ = pool.encode(TEXTS[:1], False, batch_size=2, show_progress_bar=False)
        np.testing.assert_array_equal(got[0], tiny_pylate_model.encode_documents(TEXTS[:1])[0])
    assert pool.closed
    with pytest.raises(RuntimeError, match="closed"):
        pool.encode(TEXTS, False, batch_size=2, show_progress_bar=False)


def test_device_threads_raise_a_devices_error_and_stay_usable(tiny_pylate_path, monkeypatch):
    from late_interaction._encoding.device_threads import DeviceThreads

    model = ColBERT.from_pretrained(tiny_pylate_path, device="cpu")
    pool = DeviceThreads(model._pipeline.load_args, ["cpu", "cpu"])
    broken = pool._pipelines[1]

    def fail(*args, **kwargs):
        raise ValueError("boom on the second copy")

    monkeypatch.setattr(broken, "run", fail)
    with pytest.raises(RuntimeError, match=r"encoding on cpu failed: ValueError: boom"):
        pool.encode(TEXTS, False, batch_size=2, show_progress_bar=False)
    monkeypatch.undo()
    got, _ = pool.encode(TEXTS, False, batch_size=2, show_progress_bar=False)
    ref = model.encode_documents(TEXTS, batch_size=2)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    pool.close()
