#!/usr/bin/env bash
# Creates .venv with the package, both framework extras and the test tools, on a fresh machine.
# torch==2.13.0 goes in first: it is a CPU wheel on disk here, while any looser torch requirement
# resolved on its own pulls several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade "pip>=25.1"   # --group needs pip 25.1
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[all]" --group test --group lint --group dist
