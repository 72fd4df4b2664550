"""Find, recognise and load ColBERT checkpoints; write them back in PyLate format.

Formats, checked in this order:

* ``"pylate"``: a sentence-transformers folder (``modules.json``) with ``N_Dense`` modules and/or
  ColBERT keys in ``config_sentence_transformers.json`` (PyLate's own checkpoints).
* ``"stanford"``: colbert-ai's ``HF_ColBERT`` (``config.json`` architectures), backbone under its
  ``base_model_prefix`` plus a top-level ``linear.weight`` ``[dim, hidden]``; settings from
  ``artifact.metadata``.
* ``"sentence-transformers"``: any other ``modules.json`` model, used for its token embeddings
  (pooling, normalisation and sentence-level Dense modules are not token projections: ignored).
* ``"hf"``: a plain transformers encoder folder (``config.json``), token embeddings.

Hub ids and local folders go through the same code: a hub id is first turned into a local
snapshot with ``huggingface_hub.snapshot_download``.
"""

from __future__ import annotations

import json
import logging
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from late_interaction._dense import DenseLayer, Projection
from late_interaction.config import ENCODER_SETTING_NAMES
from late_interaction.exceptions import CheckpointFormatError

__all__ = ["FORMAT_DEFAULTS", "LoadedCheckpoint", "load_checkpoint", "resolve_folder"]

logger = logging.getLogger(__name__)

# Built-in defaults per format (the last step of: argument > checkpoint config > default).
_PUNCT = tuple(string.punctuation)
FORMAT_DEFAULTS: dict[str, dict[str, Any]] = {
    # PyLate's ColBERT.__init__ defaults.
    "pylate": {
        "query_prefix": "[Q] ",
        "document_prefix": "[D] ",
        "query_length": 32,
        "document_length": 180,
        "do_query_expansion": True,
        "attend_to_expansion_tokens": False,
        "skiplist_words": _PUNCT,
        "skiplist_rule": "vocab",
        "keep_special_tokens": True,
    },
    # colbert-ai's settings.py defaults.
    "stanford": {
        "query_prefix": "[unused0]",
        "document_prefix": "[unused1]",
        "query_length": 32,
        "document_length": 220,
        "do_query_expansion": True,
        "attend_to_expansion_tokens": False,
        "skiplist_words": _PUNCT,
        "skiplist_rule": "encode",
        "keep_special_tokens": True,
    },
    # Untrained-for-ColBERT encoders (the embedded MiniLM default included): no markers, no
    # expansion. Provisional; the lead tunes these by measurement.
    "plain": {
        "query_prefix": "",
        "document_prefix": "",
        "query_length": 32,
        "document_length": 256,
        "do_query_expansion": False,
        "attend_to_expansion_tokens": False,
        "skiplist_words": _PUNCT,
        "skiplist_rule": "encode",
        "keep_special_tokens": True,
    },
}

_ST_KEYS = (
    "query_prefix",
    "document_prefix",
    "query_length",
    "document_length",
    "do_query_expansion",
    "attend_to_expansion_tokens",
    "skiplist_words",
)
# Our own settings, saved by save_pretrained under this key of config_sentence_transformers.json.
EXTRA_KEY = "late_interaction"
_EXTRA_KEYS = tuple(k for k in ENCODER_SETTING_NAMES if k not in _ST_KEYS)
_HUB_IGNORE = ["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "*.tflite"]


@dataclass
class LoadedCheckpoint:
    """Everything :class:`~late_interaction.ColBERT` needs from a checkpoint."""

    folder: Path
    checkpoint_format: str
    backbone: Any
    tokenizer: Any
    projection: Projection | None
    settings: dict[str, Any] = field(default_factory=dict)
    settings_source: str = "defaults"
    do_lower_case: bool = False

    @property
    def defaults(self) -> dict[str, Any]:
        """Built-in defaults for this format."""
        fmt = self.checkpoint_format
        return FORMAT_DEFAULTS[fmt if fmt in ("pylate", "stanford") else "plain"]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{path}: expected a readable JSON file ({exc})."
        raise CheckpointFormatError(msg) from exc


def resolve_folder(name_or_path: str, revision: str | None = None) -> Path:
    """Return a local folder for a local path or a Hugging Face Hub id.

    Raises:
        CheckpointFormatError: If the path is not a folder, or the hub download fails.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            msg = f"{name_or_path!r} is a file; expected a checkpoint folder or a hub id."
            raise CheckpointFormatError(msg)
        return path.resolve()
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local:
        msg = f"checkpoint folder {name_or_path!r} does not exist; check the path."
        raise CheckpointFormatError(msg)
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(name_or_path, revision=revision, ignore_patterns=_HUB_IGNORE)
    except Exception as exc:  # hub errors have no common base besides Exception
        msg = (
            f"{name_or_path!r} is not a local folder and could not be fetched from the Hugging "
            f"Face Hub ({type(exc).__name__}: {exc}). Pass an existing folder, or check the id, "
            "the revision and network access."
        )
        raise CheckpointFormatError(msg) from exc
    return Path(local)


def _dense_modules(modules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in modules if str(m.get("type", "")).rsplit(".", 1)[-1] == "Dense"]


def detect_format(folder: Path) -> str:
    """Name the checkpoint format of ``folder`` (see module docstring).

    Raises:
        CheckpointFormatError: If no known format matches.
    """
    config = _read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    stanford = "HF_ColBERT" in (config.get("architectures") or [])
    if (folder / "modules.json").is_file():
        modules = _read_json(folder / "modules.json")
        st_config = {}
        if (folder / "config_sentence_transformers.json").is_file():
            st_config = _read_json(folder / "config_sentence_transformers.json")
        colbert_keys = st_config.get("model_type") == "ColBERT" or any(
            k in st_config for k in _ST_KEYS
        )
        is_pylate = any(str(m.get("type", "")).startswith("pylate.") for m in modules)
        if _dense_modules(modules) and (colbert_keys or is_pylate):
            return "pylate"
        if stanford:
            return "stanford"
        return "pylate" if (colbert_keys or is_pylate) else "sentence-transformers"
    if stanford:
        return "stanford"
    if config.get("model_type"):
        return "hf"
    found = sorted(p.name for p in folder.iterdir())[:20]
    msg = (
        f"{folder} is not a checkpoint we can load: found {found}. Expected modules.json "
        "(PyLate / sentence-transformers), or config.json with a model_type (Hugging Face "
        "encoder) or architectures ['HF_ColBERT'] (Stanford colbert-ai)."
    )
    raise CheckpointFormatError(msg)


def _load_backbone(
    folder: Path,
    trust_remote_code: bool,
    model_kwargs: dict,
    tok_kwargs: dict,
    *,
    quiet: bool = False,
):
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder), trust_remote_code=trust_remote_code, **tok_kwargs
        )
        if quiet:  # a Stanford checkpoint's top-level linear.weight is expected, not news
            hf_logging.set_verbosity_error()
        backbone, info = AutoModel.from_pretrained(
            str(folder),
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
            **model_kwargs,
        )
    except (OSError, ValueError, KeyError) as exc:
        msg = (
            f"{folder}: could not load the transformer backbone or its tokenizer with "
            f"transformers' AutoModel/AutoTokenizer ({type(exc).__name__}: {exc}). Expected "
            "config.json, weights (model.safetensors or pytorch_model.bin) and tokenizer files."
        )
        raise CheckpointFormatError(msg) from exc
    finally:
        hf_logging.set_verbosity(verbosity)
    # transformers fills missing weights with random values and only warns; refuse instead (the
    # pooler is never used for token embeddings, and ColBERT checkpoints often omit it).
    missing = [k for k in info.get("missing_keys", ()) if not k.startswith("pooler.")]
    if missing:
        msg = (
            f"{folder}: the weights lack {len(missing)} backbone parameters of "
            f"{type(backbone).__name__} (e.g. {sorted(missing)[:4]}); they would be random. "
            "Check that the weights belong to this config.json."
        )
        raise CheckpointFormatError(msg)
    backbone.eval()
    if tokenizer.padding_side != "right":
        # Markers go in at position 1 and expansion pads at the end, so padding must be right.
        tokenizer.padding_side = "right"
    return backbone, tokenizer


def _stanford_linear(folder: Path) -> torch.Tensor:
    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").is_file() or index.is_file():
        from safetensors import safe_open

        file = folder / "model.safetensors"
        if index.is_file():
            shard = _read_json(index).get("weight_map", {}).get("linear.weight")
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


def _stanford_settings(folder: Path) -> tuple[dict[str, Any], str]:
    path = folder / "artifact.metadata"
    if not path.is_file():
        logger.warning("%s has no artifact.metadata; using colbert-ai defaults.", folder)
        return {}, "defaults"
    meta = _read_json(path)
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
        logger.warning(
            "%s: similarity=%r is not supported; scoring uses cosine.", folder, meta["similarity"]
        )
    return settings, "artifact.metadata"


def _st_settings(folder: Path) -> tuple[dict[str, Any], str, bool]:
    settings: dict[str, Any] = {}
    path = folder / "config_sentence_transformers.json"
    if path.is_file():
        config = _read_json(path)
        settings = {k: config[k] for k in _ST_KEYS if config.get(k) is not None}
        extra = config.get(EXTRA_KEY) or {}
        settings.update({k: extra[k] for k in _EXTRA_KEYS if k in extra})
    lower = False
    if (folder / "sentence_bert_config.json").is_file():
        lower = bool(_read_json(folder / "sentence_bert_config.json").get("do_lower_case", False))
    return settings, path.name, lower


def load_checkpoint(
    folder: Path,
    *,
    trust_remote_code: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
) -> LoadedCheckpoint:
    """Load backbone, tokenizer, projection and stored settings from a local folder.

    Raises:
        CheckpointFormatError: If the folder is not a known format or is damaged.
    """
    fmt = detect_format(folder)
    logger.debug("%s: detected checkpoint format %r", folder, fmt)
    model_kwargs, tok_kwargs = dict(model_kwargs or {}), dict(tokenizer_kwargs or {})
    if fmt == "stanford":
        backbone, tokenizer = _load_backbone(
            folder, trust_remote_code, model_kwargs, tok_kwargs, quiet=True
        )
        weight = _stanford_linear(folder)
        hidden = backbone.get_input_embeddings().embedding_dim
        if weight.ndim != 2 or weight.shape[1] != hidden:
            msg = (
                f"{folder}: linear.weight has shape {tuple(weight.shape)}; expected "
                f"[dim, {hidden}] to project the backbone's hidden size {hidden}."
            )
            raise CheckpointFormatError(msg)
        layer = DenseLayer(weight.shape[1], weight.shape[0], bias=False)
        layer.linear.weight.data.copy_(weight)
        settings, source = _stanford_settings(folder)
        return LoadedCheckpoint(
            folder, fmt, backbone, tokenizer, Projection([layer]), settings, source
        )
    if fmt == "hf":
        backbone, tokenizer = _load_backbone(folder, trust_remote_code, model_kwargs, tok_kwargs)
        return LoadedCheckpoint(folder, fmt, backbone, tokenizer, None)
    modules = _read_json(folder / "modules.json")
    transformer = [m for m in modules if str(m.get("type", "")).endswith("Transformer")]
    if len(transformer) != 1 or not isinstance(modules, list):
        msg = (
            f"{folder}/modules.json: expected exactly one sentence_transformers.models.Transformer "
            f"module; found types {[m.get('type') for m in modules]}."
        )
        raise CheckpointFormatError(msg)
    sub = folder / str(transformer[0].get("path", ""))
    backbone, tokenizer = _load_backbone(sub, trust_remote_code, model_kwargs, tok_kwargs)
    settings, source, lower = _st_settings(folder)
    projection = None
    if fmt == "pylate" and _dense_modules(modules):
        projection = Projection(
            [DenseLayer.load(folder / str(m["path"])) for m in _dense_modules(modules)]
        )
        hidden = backbone.get_input_embeddings().embedding_dim
        if projection.layers[0].in_features != hidden:
            msg = (
                f"{folder}: the first Dense module expects {projection.layers[0].in_features} "
                f"input features but the backbone's hidden size is {hidden}."
            )
            raise CheckpointFormatError(msg)
    elif _dense_modules(modules):
        logger.info("%s: sentence-level Dense modules ignored; using token embeddings.", folder)
    return LoadedCheckpoint(folder, fmt, backbone, tokenizer, projection, settings, source, lower)


def ensure_tokens(backbone: Any, tokenizer: Any, tokens: list[str]) -> list[str]:
    """Add marker tokens missing from the vocabulary, as PyLate does; return those added.

    New embedding rows are set to the mean of the existing vocabulary rows (deterministic, close
    to transformers' mean resizing that PyLate relies on).
    """
    unk = tokenizer.unk_token_id
    missing = []
    for token in dict.fromkeys(tokens):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or (token_id == unk and token != tokenizer.unk_token):
            missing.append(token)
    if not missing:
        return []
    old = len(tokenizer)
    tokenizer.add_tokens(missing)
    embeddings = backbone.get_input_embeddings()
    if embeddings.num_embeddings < len(tokenizer):
        backbone.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        embeddings = backbone.get_input_embeddings()
    with torch.no_grad():
        mean = embeddings.weight[:old].mean(dim=0)
        for token in missing:
            embeddings.weight[tokenizer.convert_tokens_to_ids(token)] = mean
    logger.warning(
        "Marker tokens %s were not in the vocabulary: added with untrained embeddings (the "
        "vocabulary mean). Expected for a base encoder; a trained ColBERT checkpoint ships them.",
        missing,
    )
    return missing


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
        **{k: getattr(config, k) for k in _ST_KEYS},
        EXTRA_KEY: {k: getattr(config, k) for k in _EXTRA_KEYS},
    }
    st_config["skiplist_words"] = list(config.skiplist_words)
    path = folder / "config_sentence_transformers.json"
    path.write_text(json.dumps(st_config, indent=2), encoding="utf-8")
    return folder
