"""The README's main job runs end to end and finds the obvious answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "cookbooks" / "demo.py"


def test_demo_runs_offline_and_answers(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            "--index-dir",
            str(tmp_path / "idx"),
            "--query",
            "What does the assert statement do?",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    first_hit = next(line for line in lines if line.startswith("  ") and "[" in line)
    assert "[assert-0]" in first_hit, out.stdout
    assert (tmp_path / "idx").is_dir()
    assert any(line.startswith("Rerank of a keyword search") for line in lines)
