"""Refuse damaged or unsupported checkpoints before and after sentence-transformers loads them.

sentence-transformers and transformers are lenient where we must not be: missing backbone weights
are filled with random values (a log line only), an activation outside ``torch`` silently becomes
``Tanh``, and a Stanford projection of the wrong width fails only at the first encode. Each check
here turns such a folder into a :class:`CheckpointFormatError` that names the file and the fix.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from late_interaction._encoding.jsonfile import read_json
from late_interaction._encoding.tokenizer_check import check_tokenizer
from late_interaction.exceptions import CheckpointFormatError

logger = logging.getLogger(__name__)

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _weight_shapes(folder: Path) -> dict[str, tuple[int, ...]] | None:
    """Tensor names and shapes of a folder's weights, read from headers where possible."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = read_json(index).get("weight_map", {})
        files = sorted({folder / str(f) for f in names.values()})
    elif (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    elif (folder / "pytorch_model.bin").is_file():
        import torch

        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        return {k: tuple(v.shape) for k, v in state.items()}
    else:
        return None
    from safetensors import SafetensorError, safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt", device="cpu") as handle:
                for key in handle.keys():
                    shapes[key] = tuple(handle.get_slice(key).get_shape())
        except (SafetensorError, OSError) as exc:  # truncated, or not a safetensors file
            msg = f"{file} is damaged ({exc}); restore the checkpoint."
            raise CheckpointFormatError(msg) from exc
    return shapes


def _check_dense(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        msg = f"{folder}: expected config.json with in_features, out_features, bias, ..."
        raise CheckpointFormatError(msg)
    config = read_json(folder / "config.json")
    activation = str(config.get("activation_function", "torch.nn.modules.linear.Identity"))
    if not activation.startswith("torch.nn"):
        # Importing arbitrary dotted names would run code from the checkpoint, and
        # sentence-transformers would replace the activation by Tanh, changing every vector.
        msg = (
            f"{folder}: activation_function {activation!r} is not a torch.nn module; expected "
            "e.g. 'torch.nn.modules.linear.Identity' or 'torch.nn.modules.activation.Tanh'."
        )
        raise CheckpointFormatError(msg)
    shapes = _weight_shapes(folder)
    if shapes is None:
        found = sorted(p.name for p in folder.iterdir())
        msg = f"{folder}: expected model.safetensors or pytorch_model.bin; found {found}."
        raise CheckpointFormatError(msg)
    try:
        expected = {"linear.weight": (int(config["out_features"]), int(config["in_features"]))}
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{folder}: expected config.json with in_features and out_features ({exc!r})."
        raise CheckpointFormatError(msg) from exc
    if shapes.get("linear.weight") != expected["linear.weight"]:
        msg = f"{folder}: weights {shapes} do not match config.json, which implies {expected}."
        raise CheckpointFormatError(msg)


def _check_stanford(folder: Path) -> None:
    shapes = _weight_shapes(folder)
    if shapes is None:
        return  # no weights at all: loading the backbone says so
    if "linear.weight" not in shapes:
        msg = (
            f"{folder}: a Stanford (HF_ColBERT) checkpoint needs a top-level 'linear.weight' "
            f"[dim, hidden] in model.safetensors or pytorch_model.bin; found keys "
            f"{sorted(shapes)[:8]}..."
        )
        raise CheckpointFormatError(msg)
    shape = shapes["linear.weight"]
    hidden = read_json(folder / "config.json").get("hidden_size")
    if len(shape) != 2 or (hidden is not None and shape[1] != hidden):
        msg = (
            f"{folder}: linear.weight has shape {shape}; expected [dim, {hidden}] to project "
            f"the backbone's hidden size {hidden}."
        )
        raise CheckpointFormatError(msg)
    meta_path = folder / "artifact.metadata"
    if not meta_path.is_file():
        logger.warning("%s has no artifact.metadata; using colbert-ai defaults.", folder)
        return
    similarity = read_json(meta_path).get("similarity", "cosine")
    if similarity != "cosine":
        # Scoring such a checkpoint by cosine MaxSim would rank differently from what it was
        # trained for: refuse rather than warn.
        msg = (
            f"{folder}: artifact.metadata says similarity={similarity!r}; only colbert-ai's "
            "'cosine' (MaxSim over normalised vectors) is supported."
        )
        raise CheckpointFormatError(msg)


def before_loading(folder: Path, fmt: str) -> None:
    """Checks on the files, before anything is loaded.

    Raises:
        CheckpointFormatError: On an unsafe activation, missing or misshapen projection weights,
            or a Stanford checkpoint trained for another similarity.
    """
    if fmt == "stanford":
        _check_stanford(folder)
    if (folder / "modules.json").is_file() and fmt in ("pylate", "multi-vector-encoder"):
        for module in read_json(folder / "modules.json"):
            if str(module.get("type", "")).rsplit(".", 1)[-1] == "Dense":
                _check_dense(folder / str(module.get("path", "")))


# transformers renames the legacy LayerNorm parameter names when it loads weights; checkpoints
# saved by older stacks still carry them (e.g. the PyLate-built benchmark checkpoint).
_LEGACY_NAME = re.compile(r"LayerNorm\.(gamma|beta)$")


def _current_name(match: re.Match[str]) -> str:
    return "LayerNorm.weight" if match.group(1) == "gamma" else "LayerNorm.bias"


def after_loading(stack: Any) -> None:
    """Refuse a tokenizer without its vocabulary, or a backbone whose weights lack parameters.

    transformers would load a 5-token tokenizer (every word [UNK]) or fill missing weights with
    random values and only log it. The pooler is never used for token embeddings, and ColBERT
    checkpoints often omit it.

    Raises:
        CheckpointFormatError: If the tokenizer is incomplete or parameters are missing.
    """
    check_tokenizer(Path(str(stack.folder)), stack.tokenizer, stack.backbone)
    backbone = stack.backbone
    folder = Path(str(getattr(backbone, "name_or_path", "") or stack.folder))
    shapes = _weight_shapes(folder) if folder.is_dir() else None
    if shapes is None or not hasattr(backbone, "state_dict"):
        return  # a non-torch backend, or weights elsewhere: transformers has checked them
    prefix = f"{getattr(backbone, 'base_model_prefix', '')}."
    stored = {_LEGACY_NAME.sub(_current_name, k.removeprefix(prefix)) for k in shapes}
    expected = [k for k in backbone.state_dict() if not k.startswith("pooler.")]
    missing = [k for k in expected if k not in stored and k.removeprefix(prefix) not in stored]
    if missing:
        msg = (
            f"{stack.folder}: the weights lack {len(missing)} backbone parameters of "
            f"{type(backbone).__name__} (e.g. {sorted(missing)[:4]}); they would be random. "
            "Check that the weights belong to this config.json."
        )
        raise CheckpointFormatError(msg)


def supported_expansion(folder: Path, expansion: dict[str, Any]) -> None:
    """Refuse query-expansion variants our tokenisation does not implement.

    Raises:
        CheckpointFormatError: For the ``"min"`` strategy or a custom expansion token.
    """
    if expansion.get("strategy") != "fixed" or expansion.get("token") is not None:
        msg = (
            f"{folder}: query_expansion {expansion} is not supported; only the classic ColBERT "
            "expansion (strategy 'fixed', the [MASK] token) is. Pass do_query_expansion=False "
            "to encode queries without it."
        )
        raise CheckpointFormatError(msg)


def supported_mask(folder: Path, mask: Any) -> None:
    """Refuse scoring masks other than a document skiplist.

    Raises:
        CheckpointFormatError: For a query-side skiplist or a token allowlist.
    """
    if list(mask.skiplist_tasks) != ["document"] or mask.keep_only_token_ids:
        msg = (
            f"{folder}: its MultiVectorMask (skiplist_tasks={mask.skiplist_tasks}, "
            f"keep_only_token_ids={mask.keep_only_token_ids}) is not supported; only a "
            "document-side skiplist is."
        )
        raise CheckpointFormatError(msg)
