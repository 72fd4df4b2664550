"""Write an encoder back as a PyLate-format (sentence-transformers) folder.

PyLate format rather than sentence-transformers 6's own (``MultiVectorEncoder.save``): PyLate
(pinned to sentence-transformers 5) and sentence-transformers 6 both load it, while PyLate cannot
load the native format. Hence the files are written here, with PyLate's keys only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from late_interaction._encoding.stack import EXTRA_KEY, EXTRA_KEYS, Stack

# The Dense config keys PyLate 1.6's Dense accepts (it rejects unknown ones).
_DENSE_KEYS = ("in_features", "out_features", "bias", "activation_function", "use_residual")
_ST_KEYS = ("query_prefix", "document_prefix", "query_length", "document_length",
            "do_query_expansion", "attend_to_expansion_tokens", "skiplist_words")  # fmt: skip


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def save_pylate(folder: Path, checkpoint: Stack, config: Any) -> Path:
    """Write ``checkpoint`` with ``config`` (an EncoderConfig) as a PyLate-format folder."""
    folder.mkdir(parents=True, exist_ok=True)
    # save_pretrained records the backbone class (not HF_ColBERT) in config.json, so a saved
    # Stanford model reloads through the PyLate path with its projection as 1_Dense.
    checkpoint.backbone.save_pretrained(str(folder), safe_serialization=True)
    checkpoint.tokenizer.save_pretrained(str(folder))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
    ]
    for i, dense in enumerate(checkpoint.projections, start=1):
        sub = folder / f"{i}_Dense"
        sub.mkdir(exist_ok=True)
        dense_config = {k: getattr(dense, k) for k in _DENSE_KEYS}
        dense_config["activation_function"] = dense.get_config_dict()["activation_function"]
        _dump(sub / "config.json", dense_config)
        state = {k: v.detach().to("cpu").contiguous() for k, v in dense.state_dict().items()}
        save_file(state, str(sub / "model.safetensors"))
        modules.append(
            {"idx": i, "name": str(i), "path": sub.name, "type": "pylate.models.Dense.Dense"}
        )
    _dump(folder / "modules.json", modules)
    _dump(
        folder / "sentence_bert_config.json",
        {
            "max_seq_length": config.document_length,
            "do_lower_case": bool(checkpoint.transformer.do_lower_case),
        },
    )
    st_config = {
        "model_type": "ColBERT",
        "similarity_fn_name": "MaxSim",
        "prompts": {},
        "default_prompt_name": None,
        **{k: getattr(config, k) for k in _ST_KEYS},
        EXTRA_KEY: {k: getattr(config, k) for k in EXTRA_KEYS},
    }
    st_config["skiplist_words"] = list(config.skiplist_words)
    _dump(folder / "config_sentence_transformers.json", st_config)
    return folder
