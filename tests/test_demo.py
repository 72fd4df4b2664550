"""The README's main job runs end to end, finds the obvious answers and leaves no temp folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "cookbooks" / "demo.py"


def test_demo_runs_offline_answers_and_cleans_up(tmp_path):
    scratch = tmp_path / "tmp"  # the demo's system temp folder for this run
    scratch.mkdir()
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
        "TMPDIR": str(scratch),
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
    }
    out = subprocess.run(
        [sys.executable, str(DEMO)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr == ""  # nothing but what the demo prints itself
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in out.stdout.split("\n\n")}
    first = {q[3:]: lines[0].split()[1] for q, lines in blocks.items() if q.startswith("Q: ")}
    assert first["What does the assert statement do?"] == "assert-0"
    assert first["How do I rebind a variable from an enclosing function scope?"] == "nonlocal-0"
    rerank = next(lines for title, lines in blocks.items() if title.startswith("Rerank of"))
    assert rerank[1].split()[1] == "raise-0"
    counts = next(lines for title, lines in blocks.items() if title.startswith("Answer ranked"))
    assert [line.rsplit(maxsplit=1)[1].endswith("/25") for line in counts] == [True] * 3
    # The index went into a temp folder, removed at exit. torch keeps one cache folder per user
    # there (torchinductor_<user>, made by transformers' model load and reused by every run).
    left = [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")]
    assert left == []
