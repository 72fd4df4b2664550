"""What a Stanford colbert-ai (``HF_ColBERT``) checkpoint adds: its projection and its settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from late_interaction._encoding.jsonfile import read_json
from late_interaction.exceptions import CheckpointFormatError

logger = logging.getLogger(__name__)


def stanford_linear(folder: Path) -> torch.Tensor:
    """The top-level ``linear.weight`` ``[dim, hidden]`` of a Stanford checkpoint.

    Raises:
        CheckpointFormatError: If the weights hold none.
    """
    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").is_file() or index.is_file():
        from safetensors import safe_open

        file = folder / "model.safetensors"
        if index.is_file():
            shard = read_json(index).get("weight_map", {}).get("linear.weight")
            file = folder / str(shard)
        if file.is_file():
            with safe_open(str(file), framework="pt", device="cpu") as handle:
                if "linear.weight" in handle.keys():
                    return handle.get_tensor("linear.weight")
                keys = sorted(handle.keys())[:8]
    elif (folder / "pytorch_model.bin").is_file():
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        if "linear.weight" in state:
            return state["linear.weight"]
        keys = sorted(state)[:8]
    else:
        keys = []
    msg = (
        f"{folder}: a Stanford (HF_ColBERT) checkpoint needs a top-level 'linear.weight' "
        f"[dim, hidden] in model.safetensors or pytorch_model.bin; found keys {keys}..."
    )
    raise CheckpointFormatError(msg)


def stanford_settings(folder: Path) -> tuple[dict[str, Any], str]:
    """Our settings from ``artifact.metadata`` (colbert-ai's names mapped), and their source."""
    path = folder / "artifact.metadata"
    if not path.is_file():
        logger.warning("%s has no artifact.metadata; using colbert-ai defaults.", folder)
        return {}, "defaults"
    meta = read_json(path)
    mapping = {
        "query_token_id": "query_prefix",
        "doc_token_id": "document_prefix",
        "query_maxlen": "query_length",
        "doc_maxlen": "document_length",
        "attend_to_mask_tokens": "attend_to_expansion_tokens",
    }
    settings = {
        ours: meta[theirs] for theirs, ours in mapping.items() if meta.get(theirs) is not None
    }
    if meta.get("mask_punctuation") is False:
        settings["skiplist_words"] = ()
    if meta.get("similarity", "cosine") != "cosine":
        # Scoring such a checkpoint by cosine MaxSim would rank differently from what it was
        # trained for: refuse rather than warn.
        msg = (
            f"{folder}: artifact.metadata says similarity={meta['similarity']!r}; only "
            "colbert-ai's 'cosine' (MaxSim over normalised vectors) is supported."
        )
        raise CheckpointFormatError(msg)
    return settings, "artifact.metadata"
