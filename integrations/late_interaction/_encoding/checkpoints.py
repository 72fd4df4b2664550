"""Recognise and load ColBERT checkpoints from a local folder.

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
snapshot (``hub.py``). Writing a folder back is ``save.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from late_interaction._encoding.dense import DenseLayer, Projection
from late_interaction._encoding.jsonfile import read_json
from late_interaction._encoding.stanford import stanford_linear, stanford_settings
from late_interaction._encoding.tokenizer_check import check_tokenizer
from late_interaction.config import FORMAT_DEFAULTS, EncoderConfig
from late_interaction.exceptions import CheckpointFormatError

logger = logging.getLogger(__name__)

# Our own settings (PyLate has no such keys), saved by save_pretrained under this key of
# config_sentence_transformers.json; the other settings use PyLate's own keys there.
EXTRA_KEY = "late_interaction"
EXTRA_KEYS = ("keep_special_tokens", "skiplist_rule", "dense_weight")
ST_KEYS = tuple(k for k in EncoderConfig.SETTINGS if k not in EXTRA_KEYS)


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


def _dense_modules(modules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in modules if str(m.get("type", "")).rsplit(".", 1)[-1] == "Dense"]


def detect_format(folder: Path) -> str:
    """Name the checkpoint format of ``folder`` (see module docstring).

    Raises:
        CheckpointFormatError: If no known format matches.
    """
    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    stanford = "HF_ColBERT" in (config.get("architectures") or [])
    if (folder / "modules.json").is_file():
        modules = read_json(folder / "modules.json")
        st_config = {}
        if (folder / "config_sentence_transformers.json").is_file():
            st_config = read_json(folder / "config_sentence_transformers.json")
        colbert_keys = st_config.get("model_type") == "ColBERT" or any(
            k in st_config for k in ST_KEYS
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
    from late_interaction._progress import auto_tqdm, no_loading_bar

    auto_tqdm()  # before transformers imports tqdm.auto itself (see _progress)
    from safetensors import SafetensorError
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder), trust_remote_code=trust_remote_code, **tok_kwargs
        )
        if quiet:  # a Stanford checkpoint's top-level linear.weight is expected, not news
            hf_logging.set_verbosity_error()
        with no_loading_bar():
            backbone, info = AutoModel.from_pretrained(
                str(folder),
                trust_remote_code=trust_remote_code,
                output_loading_info=True,
                **model_kwargs,
            )
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
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
    check_tokenizer(folder, tokenizer, backbone)
    backbone.eval()
    if tokenizer.padding_side != "right":
        # Markers go in at position 1 and expansion pads at the end, so padding must be right.
        tokenizer.padding_side = "right"
    return backbone, tokenizer


def _st_settings(folder: Path) -> tuple[dict[str, Any], str, bool]:
    settings: dict[str, Any] = {}
    path = folder / "config_sentence_transformers.json"
    if path.is_file():
        config = read_json(path)
        settings = {k: config[k] for k in ST_KEYS if config.get(k) is not None}
        extra = config.get(EXTRA_KEY) or {}
        settings.update({k: extra[k] for k in EXTRA_KEYS if k in extra})
    lower = False
    if (folder / "sentence_bert_config.json").is_file():
        lower = bool(read_json(folder / "sentence_bert_config.json").get("do_lower_case", False))
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
        weight = stanford_linear(folder)
        hidden = backbone.get_input_embeddings().embedding_dim
        if weight.ndim != 2 or weight.shape[1] != hidden:
            msg = (
                f"{folder}: linear.weight has shape {tuple(weight.shape)}; expected "
                f"[dim, {hidden}] to project the backbone's hidden size {hidden}."
            )
            raise CheckpointFormatError(msg)
        layer = DenseLayer(weight.shape[1], weight.shape[0], bias=False)
        layer.linear.weight.data.copy_(weight)
        settings, source = stanford_settings(folder)
        return LoadedCheckpoint(
            folder, fmt, backbone, tokenizer, Projection([layer]), settings, source
        )
    if fmt == "hf":
        backbone, tokenizer = _load_backbone(folder, trust_remote_code, model_kwargs, tok_kwargs)
        return LoadedCheckpoint(folder, fmt, backbone, tokenizer, None)
    modules = read_json(folder / "modules.json")
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
