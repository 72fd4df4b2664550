#!/usr/bin/env bash
# Packs what benchmarks/studies/gpu.py needs on a bare GPU machine into .cache/benchmarks/gpu-carry
# (< 64 MiB; the folder is _harness.GPU_CARRY):
#   ckpt-fp16/          the shared PyLate checkpoint with float16 backbone weights (88 MB -> 45 MB)
#   scifact-docs.jsonl  the SciFact documents ({"text": title + " " + text}; 5,183, ~7 MB)
#   whl/                PyLate 1.6.0 and the pins the GPU image lacks (sentence-transformers 5.3.0,
#                       datasets, dill, multiprocess, ujson); the image's torch/transformers are used.
# Then, on the device (device tool, carry [".cache/benchmarks/gpu-carry"]), from the repository root,
# after installing into /tmp/site the packages the image lacks (sentence-transformers >= 6.2):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/pl .cache/benchmarks/gpu-carry/whl/*.whl
#   mkdir -p /tmp/pl/fast_plaid && echo 'def __getattr__(n): raise ImportError(n)' \
#     > /tmp/pl/fast_plaid/__init__.py
#   PYTHONPATH=/tmp/site:$PWD/integrations python3 -m benchmarks.studies.gpu \
#     --checkpoint .cache/benchmarks/gpu-carry/ckpt-fp16 \
#     --texts .cache/benchmarks/gpu-carry/scifact-docs.jsonl --pylate-site /tmp/pl --results-dir $OUT
# (the study's docstring has the full command, and the 2-GPU variant).
# Needs the baselines venv when the shared checkpoint is not built yet
# (bash benchmarks/setup_baselines.sh). PY overrides the interpreter of our side (default .venv).
# Usage: bash benchmarks/studies/gpu_prepare.sh [DATA_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$here"
data="${1:-$here/../shared/data/scifact}"
py="${PY:-$here/.venv/bin/python}"
# The cache paths are defined once, in benchmarks/_harness.py.
read -r ckpt out < <("$py" -c \
  'from benchmarks import _harness as h; print(h.CHECKPOINT_DIR, h.GPU_CARRY)')
[ -f "$ckpt/modules.json" ] ||
  "$here/.venv-baselines/bin/python" -m benchmarks._side_pylate --phase checkpoint --checkpoint "$ckpt"
mkdir -p "$out/whl"
"$py" - "$ckpt" "$out" "$data/corpus.jsonl" <<'PY'
import json, shutil, sys
from pathlib import Path
import numpy as np
from safetensors.numpy import load_file, save_file
src, out, corpus = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
dst = out / "ckpt-fp16"
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("README.md"))
w = load_file(src / "model.safetensors")
w = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in w.items()}
save_file(w, dst / "model.safetensors", metadata={"format": "pt"})
with corpus.open() as f, (out / "scifact-docs.jsonl").open("w") as g:
    for line in f:
        r = json.loads(line)
        g.write(json.dumps({"text": f"{r.get('title', '')} {r.get('text', '')}".strip()}) + "\n")
PY
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$out/whl" pylate==1.6.0 sentence-transformers==5.3.0 datasets==5.2.0 dill==0.4.1 \
  multiprocess==0.70.19 ujson==5.12.0
du -sh "$out"
