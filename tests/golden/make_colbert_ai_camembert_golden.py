"""Regenerate tests/golden/colbert_ai_camembert_golden.npz with colbert-ai 0.2.22 itself.

colbert-ai pins nothing that fits our environment, so it runs in a venv of its own:

    python -m venv /tmp/colbert-ai-venv
    /tmp/colbert-ai-venv/bin/pip install torch==2.13.0  # the CPU build, as in our own venv
    /tmp/colbert-ai-venv/bin/pip install colbert-ai==0.2.22 "transformers<4.58" sentencepiece
    /tmp/colbert-ai-venv/bin/python tests/golden/make_colbert_ai_camembert_golden.py

It builds the tiny CamemBERT-vocabulary Stanford checkpoint (build_camembert_stanford.py, same
bytes in any venv), loads it with ``colbert.modeling.checkpoint.Checkpoint`` (which reads
``artifact.metadata``) and saves ``queryFromText`` / ``docFromText(keep_dims=False)`` per text,
under colbert-ai's own settings and with ``attend_to_mask_tokens`` on. The checkpoint's markers
``[unused0]``/``[unused1]`` are not in this vocabulary: colbert-ai resolves them through the
tokenizer to the unknown-token id, and its punctuation skiplist is the first id of
``encode(symbol)`` (often the bare ``▁``). tests/core/test_colbert_ai_camembert.py compares.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "colbert_ai_camembert_golden.npz"
QUERIES = [
    "Quelle est la capitale de la France ?",
    "chats",
    "",
    "le chat, sur le tapis!",
    "Paris (ville) - « eau » bleu. " * 4,
    "XYZ requête de recherche",
]
DOCUMENTS = [
    "Paris est la capitale de la France.",
    "Le chat est sur le tapis !!!",
    "",
    "des cellules, du modèle : (eau) - « ciel » ; mer...",
    "la recherche d'un document est vite faite. " * 5,
    "Qui ? Le chien.",
]
VARIANTS = {"checkpoint": {}, "attend_expansion": {"attend_to_mask_tokens": True}}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def digest(folder: Path) -> str:
    """SHA-256 of the checkpoint's weights and the files that shape tokenisation."""
    h = hashlib.sha256()
    for name in ("model.safetensors", "tokenizer.json", "artifact.metadata"):
        h.update(name.encode())
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def main() -> None:
    import transformers
    from colbert.infra import ColBERTConfig
    from colbert.modeling.checkpoint import Checkpoint

    build = _load("build_camembert_stanford")
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = build.build_camembert_stanford(Path(tmp) / "ckpt")
        for name, overrides in VARIANTS.items():
            config = ColBERTConfig.load_from_checkpoint(str(folder))
            config.configure(**overrides)
            ckpt = Checkpoint(str(folder), colbert_config=config, verbose=0)
            q = ckpt.queryFromText(QUERIES, to_cpu=True)  # [n, query_maxlen, dim]: all kept
            # to_cpu=True fails with keep_dims=False in 0.2.22 (.cpu() on a list); CPU anyway.
            d = ckpt.docFromText(DOCUMENTS, keep_dims=False)
            for i in range(len(QUERIES)):
                arrays[f"{name}/query/{i}"] = q[i].float().numpy()
            for i, emb in enumerate(d):
                arrays[f"{name}/document/{i}"] = emb.float().numpy()
        marker = ckpt.query_tokenizer.Q_marker_token_id
        meta = {
            "colbert_ai_version": version("colbert-ai"),
            "transformers_version": transformers.__version__,
            "checkpoint_digest": digest(folder),
            "variants": VARIANTS,
            "queries": QUERIES,
            "documents": DOCUMENTS,
            "query_marker_id": int(marker),
            "skiplist_ids": sorted(int(k) for k in ckpt.skiplist if isinstance(k, int)),
        }
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(OUT, **arrays)
    sys.stdout.write(f"wrote {OUT} ({OUT.stat().st_size} bytes): {json.dumps(meta)[:300]}\n")


if __name__ == "__main__":
    main()
