"""Crash and concurrency soak of one index folder (marker ``soak``, excluded by default).

Run it with ``pytest -m soak -s tests/core/test_soak.py`` (a few minutes); it prints its figures,
and appends them as JSON lines to the file named by ``SOAK_REPORT`` when that is set.

1. SIGKILL trials: a child process repeats one write operation (add, delete, upsert, save,
   compact), saving after each, and is killed at a random moment. The reloaded folder must equal
   the state after the last save the child reported or the one in flight (a reference model of
   the same steps gives both), and every stored document's tokens must find it again.
2. One writer and two readers in separate processes: every load is one whole save.
3. Two writers (and a reader) on one folder: no save fails, every load is one writer's whole state.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.soak

# Shared by the child processes and the test's reference model: the deterministic steps.
_STEPS = textwrap.dedent(
    """
    import json, sys, time
    from late_interaction import IndexConfig, LateInteractionIndex

    N_BASE = 300

    def text(doc_id, version=0):  # a unique word per document (and version): it finds itself
        words = " ".join(f"w{(hash_(doc_id) * 7 + k) % 400}" for k in range(12))
        return f"u{doc_id}v{version} {words}"

    def hash_(s):
        return sum(ord(c) * 31 ** i for i, c in enumerate(s)) % 100003

    def base():
        return {f"b{i}": (text(f"b{i}"), {"kind": "base"}) for i in range(N_BASE)}

    def apply(state, op, step):
        # One write step on a reference state {id: (text, metadata)}; returns the calls made.
        calls = []
        if op == "add":
            new = {f"a{step}-{j}": (text(f"a{step}-{j}"), {"step": step}) for j in range(20)}
            calls.append(("add", new))
        elif op == "delete":  # the oldest 15 go, 15 fresh ones keep the size
            victims = sorted(k for k in state if k != "_step")[:15]
            new = {f"r{step}-{j}": (text(f"r{step}-{j}"), {"step": step}) for j in range(15)}
            calls += [("delete", victims), ("add", new)]
        elif op == "upsert":
            chosen = sorted(k for k in state if k != "_step")[step % 7 :: 25][:12]
            calls.append(("add", {k: (text(k, step), {"up": step}) for k in chosen}))
        elif op == "compact":
            victims = sorted(k for k in state if k != "_step")[:10]
            new = {f"c{step}-{j}": (text(f"c{step}-{j}"), {"step": step}) for j in range(10)}
            calls += [("delete", victims), ("add", new), ("compact", None)]
        calls.append(("add", {"_step": (f"step {step}", {"step": step})}))
        for kind, arg in calls:
            if kind == "add":
                state.update(arg)
            elif kind == "delete":
                for k in arg:
                    state.pop(k)
        return calls

    def run(index, calls):
        for kind, arg in calls:
            if kind == "add":
                ids = list(arg)
                index.add([arg[i][0] for i in ids], ids=ids, metadatas=[arg[i][1] for i in ids])
            elif kind == "delete":
                index.delete(arg)
            elif kind == "compact":
                index.compact()

    def read_state(index):
        return {d.id: (d.text, d.metadata) for d in index.get(index.ids)}

    def new_index(nbits):
        from conftest import FakeEncoder  # tests/core is on the children's PYTHONPATH

        return LateInteractionIndex(FakeEncoder(), config=IndexConfig(hnsw_m=8, nbits=nbits))


    def load(path):
        from conftest import FakeEncoder

        return LateInteractionIndex.load(path, FakeEncoder())
    """
)

_KILLED_CHILD = textwrap.dedent(
    """
    from soak_steps import *
    path, op, nbits = sys.argv[2], sys.argv[3], None if sys.argv[4] == "exact" else 2
    try:
        index = load(path)
    except FileNotFoundError:
        index = new_index(nbits)
        state = base()
        state["_step"] = ("step 0", {"step": 0})
        run(index, [("add", state)])
        index.save(path)
    step = index.get("_step")[0].metadata["step"]
    print("AT", step, flush=True)
    state = read_state(index)
    while True:
        step += 1
        run(index, apply(state, op, step))
        index.save(path)
        print("DONE", step, flush=True)
    """
)

_WRITER = textwrap.dedent(
    """
    from soak_steps import *
    path, prefix, seconds = sys.argv[2], sys.argv[3], float(sys.argv[4])
    index, saves, errors = new_index(None), 0, []
    docs = {f"{prefix}{i}": text(f"{prefix}{i}") for i in range(N_BASE)}
    index.add(list(docs.values()), ids=list(docs))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        gen = saves + 1
        index.add([text(f"{prefix}g{gen}")], ids=[f"{prefix}g{gen}"], metadatas=[{"gen": gen}])
        index.add([f"gen {gen}"], ids=["_gen"], metadatas=[{"gen": gen, "writer": prefix}])
        try:
            index.save(path)
            saves += 1
        except Exception as exc:
            errors.append(repr(exc))
            saves += 1
    print(json.dumps({"saves": saves, "errors": errors}), flush=True)
    """
)

_READER = textwrap.dedent(
    """
    from soak_steps import *
    path, seconds, prefixes = sys.argv[2], float(sys.argv[3]), sys.argv[4].split(",")
    loads, errors, mixed = 0, [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            index = load(path)
        except FileNotFoundError:
            continue  # before the first save
        except Exception as exc:
            errors.append(repr(exc))
            continue
        loads += 1
        gen, writer = (index.get("_gen")[0].metadata[k] for k in ("gen", "writer"))
        expected = {f"{writer}{i}" for i in range(N_BASE)}
        expected |= {f"{writer}g{g}" for g in range(1, gen + 1)}
        if set(index.ids) != expected | {"_gen"}:
            mixed.append(f"gen {gen} of {writer}: {len(index)} ids")
            continue
        probe = f"{writer}g{gen}"
        if index.search(text(probe), k=1, exact=True)[0].id != probe:
            mixed.append(f"gen {gen} of {writer}: tokens do not find {probe}")
    print(json.dumps({"loads": loads, "errors": errors, "mixed": mixed}), flush=True)
    """
)


def _setup(tmp_path: Path) -> tuple[dict, object]:
    """Write the child scripts; return their environment and the steps module (the reference)."""
    for name, text in (
        ("soak_steps.py", _STEPS), ("killed.py", _KILLED_CHILD), ("writer.py", _WRITER),
        ("reader.py", _READER),
    ):  # fmt: skip
        (tmp_path / name).write_text(text)
    paths = [str(Path(__file__).parent), str(tmp_path), *sys.path]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    spec = importlib.util.spec_from_file_location("soak_steps_ref", tmp_path / "soak_steps.py")
    steps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(steps)
    return env, steps


def _report(name: str, figures: dict) -> None:
    line = json.dumps({"soak": name, **figures})
    print(line)
    if os.environ.get("SOAK_REPORT"):
        with open(os.environ["SOAK_REPORT"], "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _spawn(env, script, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), "-", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


@pytest.mark.parametrize("store", ["exact", "compressed"])
def test_sigkill_during_every_write_operation(tmp_path, store, fake_encoder):
    from late_interaction import LateInteractionIndex

    env, steps = _setup(tmp_path)
    encoder = fake_encoder
    rng = random.Random(16)
    figures = {
        "store": store, "trials": 0, "steps_done": 0, "interrupted_saves": 0,
        "reloaded_last_save": 0, "reloaded_save_in_flight": 0, "lost": 0, "mixed": 0,
        "errors": [],
    }  # fmt: skip
    rounds = int(os.environ.get("SOAK_ROUNDS", "4"))
    for op in ("add", "delete", "upsert", "save", "compact"):
        path = tmp_path / f"idx-{op}"
        reference = steps.base()
        reference["_step"] = ("step 0", {"step": 0})
        history = {0: dict(reference)}
        for _ in range(rounds):
            child = _spawn(env, tmp_path / "killed.py", path, op, store)
            try:
                first = child.stdout.readline().split()
                assert first[:1] == ["AT"], child.stderr.read()[-3000:]
                child.stdout.readline()  # one step done in this round: the kill lands mid-way
                time.sleep(rng.uniform(0.0, 0.5))
            finally:
                child.send_signal(signal.SIGKILL)
                out, _ = child.communicate()
            # Only whole lines: the kill can cut the last one mid-write ("DONE" without its step).
            lines = out.split("\n")[:-1]
            done = [int(line.split()[1]) for line in lines if line.startswith("DONE ")]
            last = max([int(first[1]) + 1, *done])
            for step in range(max(history) + 1, last + 2):  # the reference up to the one in flight
                state = dict(history[step - 1])
                steps.apply(state, op, step)
                history[step] = state
            figures["trials"] += 1
            figures["steps_done"] += last - int(first[1])
            leftovers = (f".{path.name}.tmp", f".{path.name}.old")
            figures["interrupted_saves"] += any(
                p.name.startswith(leftovers) for p in tmp_path.iterdir()
            )
            try:
                index = LateInteractionIndex.load(path, encoder)
            except Exception as exc:
                figures["errors"].append(f"{op}: {exc!r}")
                continue
            got = steps.read_state(index)
            if got not in (history[last], history[last + 1]):
                figures["lost" if got in history.values() else "mixed"] += 1
                continue
            figures[
                "reloaded_last_save" if got == history[last] else "reloaded_save_in_flight"
            ] += 1
            for probe in rng.sample(sorted(got), 5):  # the stored tokens are this document's
                if index.search(got[probe][0], k=1, exact=True)[0].id != probe:
                    figures["mixed"] += 1
                    break
            history = {k: v for k, v in history.items() if k >= max(history) - 3 or k == 0}
    _report("sigkill", figures)
    assert figures["errors"] == [] and figures["lost"] == 0 and figures["mixed"] == 0


def _join(processes) -> list[dict]:
    results = []
    for p in processes:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_a_writer_and_readers_in_separate_processes(tmp_path):
    env, _ = _setup(tmp_path)
    seconds = float(os.environ.get("SOAK_SECONDS", "25"))
    path = tmp_path / "shared"
    writer = _spawn(env, tmp_path / "writer.py", path, "a", seconds)
    readers = [_spawn(env, tmp_path / "reader.py", path, seconds, "a") for _ in range(2)]
    (w,), rs = _join([writer]), _join(readers)
    figures = {
        "saves": w["saves"], "save_errors": len(w["errors"]),
        "loads": sum(r["loads"] for r in rs), "load_errors": sum(len(r["errors"]) for r in rs),
        "mixed": sum(len(r["mixed"]) for r in rs),
        "examples": (w["errors"] + [e for r in rs for e in r["errors"] + r["mixed"]])[:5],
    }  # fmt: skip
    _report("writer+readers", figures)
    assert figures["saves"] > 5 and figures["loads"] > 5
    assert figures["save_errors"] == figures["load_errors"] == figures["mixed"] == 0


def test_two_writers_and_a_reader_on_one_folder(tmp_path):
    env, _ = _setup(tmp_path)
    seconds = float(os.environ.get("SOAK_SECONDS", "25"))
    path = tmp_path / "shared"
    writers = [_spawn(env, tmp_path / "writer.py", path, p, seconds) for p in ("a", "b")]
    reader = _spawn(env, tmp_path / "reader.py", path, seconds, "a,b")
    ws, (r,) = _join(writers), _join([reader])
    figures = {
        "saves": sum(w["saves"] for w in ws),
        "save_errors": sum(len(w["errors"]) for w in ws),
        "loads": r["loads"], "load_errors": len(r["errors"]), "mixed": len(r["mixed"]),
        "examples": ([e for w in ws for e in w["errors"]] + r["errors"] + r["mixed"])[:5],
    }  # fmt: skip
    _report("two writers+reader", figures)
    assert figures["saves"] > 5 and figures["loads"] > 5
    assert figures["save_errors"] == figures["load_errors"] == figures["mixed"] == 0
