"""Regenerate tests/golden/index_before_dense/: an index folder saved before dense vectors existed.

Run with the package as it was before them (commit eabb88d, the base of issue 14's fused score):

    git archive eabb88d integrations | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/integrations python tests/golden/make_index_before_dense.py

It indexes the fixed texts below with the embedded default model (exact float32 store) and saves
the folder: no ``dense.npy`` and no ``dense_weight`` in its manifest, as every index saved by that
release. tests/core/test_fused_index.py loads it with the current code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from late_interaction import ColBERT, IndexConfig, LateInteractionIndex

OUT = Path(__file__).resolve().parent / "index_before_dense"
TEXTS = [
    "Vaccines expose the body to a harmless piece of a pathogen so immunity develops.",
    "Train the system: how vaccines are shipped by rail.",
    "Immune cells learn from vaccines.",
    "Paris is the capital of France.",
]

if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    index = LateInteractionIndex(
        ColBERT.from_pretrained(device="cpu"), config=IndexConfig(storage_dtype="float32")
    )
    index.add(TEXTS, ids=[f"d{i}" for i in range(len(TEXTS))])
    index.save(OUT)
    print(f"wrote {OUT}: {sorted(p.name for p in OUT.iterdir())}")
