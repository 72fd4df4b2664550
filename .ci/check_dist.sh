#!/usr/bin/env bash
# Builds the sdist and, from it, the wheel (python -m build), installs the wheel into a fresh venv
# the way the README's Install section says (torch first), and checks that the installed package
# imports from that venv, not from this checkout, and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1   # nothing may come from a model hub
rm -rf dist .venv-dist
.venv/bin/python -m build --outdir dist .          # the "dist" dependency group (.ci/setup.sh)
python3 -m venv .venv-dist
.venv-dist/bin/python -m pip install -q --upgrade "pip>=25.1"
.venv-dist/bin/python -m pip install -q torch==2.13.0   # a CPU wheel here; see README, Install
wheel="$(ls dist/late_interaction-*-py3-none-any.whl)"
.venv-dist/bin/python -m pip install -q "${wheel}[all]"
cd "$(mktemp -d)"   # away from the checkout: imports must resolve to the installed wheel
trap 'rm -rf "$(pwd)"' EXIT
"$repo/.venv-dist/bin/python" - "$repo" <<'PY'
import sys
from pathlib import Path

import langchain_late_interaction
import late_interaction
import llama_index.indices.managed.late_interaction
import llama_index.postprocessor.late_interaction_rerank
import llama_index.retrievers.late_interaction

repo = Path(sys.argv[1]).resolve()
for module in (late_interaction, langchain_late_interaction, llama_index.retrievers.late_interaction):
    path = Path(module.__file__).resolve()
    if repo / "integrations" in path.parents or "site-packages" not in path.parts:
        sys.exit(f"{module.__name__} was imported from {path}, not from the installed wheel")
print(f"late-interaction {late_interaction.__version__} imports from {Path(late_interaction.__file__).parent}")
PY
"$repo/.venv-dist/bin/python" "$repo/cookbooks/demo.py"
