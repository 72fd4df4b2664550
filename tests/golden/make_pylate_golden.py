"""Regenerate tests/golden/pylate_golden.npz: token embeddings computed by PyLate itself.

Run with the PyLate baseline venv (benchmarks/setup_baselines.sh builds it):

    .venv-baselines/bin/python tests/golden/make_pylate_golden.py

It builds a tiny PyLate-format checkpoint with tests/_builders.py (imported by path, so only
torch/transformers/tokenizers/safetensors/numpy are needed), encodes fixed queries and documents
with ``pylate.models.ColBERT(...).encode(..., is_query=...)`` under a few settings, and saves the
matrices plus everything needed to rebuild the same checkpoint (``meta`` entry, JSON).
tests/core/test_golden_pylate.py rebuilds it and compares our encoder with these matrices.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "pylate_golden.npz"

CHECKPOINT = {
    "seed": 7,
    "dense": [
        {
            "out_features": 24,
            "bias": True,
            "use_residual": False,
            "activation_function": "torch.nn.modules.activation.Tanh",
        },
        {"out_features": 16, "bias": False, "use_residual": True},  # residual.weight (24 -> 16)
        {"out_features": 16, "bias": True, "use_residual": True},  # identity residual
    ],
    "st_config": {
        "query_prefix": "[Q] ",
        "document_prefix": "[D] ",
        "query_length": 16,
        "document_length": 24,
        "attend_to_expansion_tokens": False,
        "skiplist_words": list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
        "do_query_expansion": True,
    },
}
# PyLate constructor arguments per variant (None: the checkpoint's own settings).
VARIANTS = {
    "checkpoint": {},
    "attend_expansion": {"attend_to_expansion_tokens": True, "query_length": 12},
    "no_expansion": {"do_query_expansion": False, "document_length": 40},
    "no_skiplist": {"skiplist_words": [], "query_prefix": "[D] "},
}
QUERIES = [
    "What is the capital of France?",
    "cats",
    "",
    "How do late-interaction models search documents, token by token?",
    "Hello WORLD, unknownword!",
    "the river the sea the sky the water the city the cat the dog the mat the cell the gene",
]
DOCUMENTS = [
    "Paris is the capital of France.",
    "The cat sat on the mat!!!",
    "",
    "   ",
    "Cells, proteins & genes: a study (2 results) of blue water.",
    "a search model runs fast. the query is a vector; the document is a token. " * 3,
]


def _load_builders():
    spec = importlib.util.spec_from_file_location("_builders", HERE.parent / "_builders.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_builders"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    import pylate
    from pylate import models

    builders = _load_builders()
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = builders.build_pylate(Path(tmp) / "ckpt", **CHECKPOINT)
        digest = builders.checkpoint_digest(folder)
        for name, kwargs in VARIANTS.items():
            model = models.ColBERT(model_name_or_path=str(folder), device="cpu", **kwargs)
            q = model.encode(QUERIES, is_query=True, batch_size=4, show_progress_bar=False)
            d = model.encode(DOCUMENTS, is_query=False, batch_size=4, show_progress_bar=False)
            for i, emb in enumerate(q):
                arrays[f"{name}/query/{i}"] = np.asarray(emb, dtype=np.float32)
            for i, emb in enumerate(d):
                arrays[f"{name}/document/{i}"] = np.asarray(emb, dtype=np.float32)
    meta = {
        "pylate_version": pylate.__version__,
        "checkpoint": CHECKPOINT,
        "checkpoint_digest": digest,
        "variants": VARIANTS,
        "queries": QUERIES,
        "documents": DOCUMENTS,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(OUT, **arrays)
    sys.stdout.write(f"wrote {OUT} ({OUT.stat().st_size} bytes), pylate {pylate.__version__}\n")


if __name__ == "__main__":
    main()
