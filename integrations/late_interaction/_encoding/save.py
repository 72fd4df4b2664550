"""Write an encoder back as a PyLate-format (sentence-transformers) folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from late_interaction._encoding.checkpoints import EXTRA_KEY, EXTRA_KEYS, ST_KEYS, LoadedCheckpoint


def save_pylate(folder: Path, checkpoint: LoadedCheckpoint, config: Any) -> Path:
    """Write ``checkpoint`` with ``config`` (an EncoderConfig) as a PyLate-format folder."""
    folder.mkdir(parents=True, exist_ok=True)
    # save_pretrained records the backbone class (not HF_ColBERT) in config.json, so a saved
    # Stanford model reloads through the PyLate path with its projection as 1_Dense.
    checkpoint.backbone.save_pretrained(str(folder), safe_serialization=True)
    checkpoint.tokenizer.save_pretrained(str(folder))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
    ]
    names = checkpoint.projection.save(folder) if checkpoint.projection is not None else []
    for i, name in enumerate(names, start=1):
        modules.append(
            {"idx": i, "name": str(i), "path": name, "type": "pylate.models.Dense.Dense"}
        )
    (folder / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    bert_config = {
        "max_seq_length": config.document_length,
        "do_lower_case": checkpoint.do_lower_case,
    }
    (folder / "sentence_bert_config.json").write_text(
        json.dumps(bert_config, indent=2), encoding="utf-8"
    )
    st_config = {
        "model_type": "ColBERT",
        "similarity_fn_name": "MaxSim",
        "prompts": {},
        "default_prompt_name": None,
        **{k: getattr(config, k) for k in ST_KEYS},
        EXTRA_KEY: {k: getattr(config, k) for k in EXTRA_KEYS},
    }
    st_config["skiplist_words"] = list(config.skiplist_words)
    path = folder / "config_sentence_transformers.json"
    path.write_text(json.dumps(st_config, indent=2), encoding="utf-8")
    return folder
