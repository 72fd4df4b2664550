"""Load a checkpoint folder as a sentence-transformers ``MultiVectorEncoder`` module stack.

sentence-transformers (>= 6.2) does the loading: the backbone and tokenizer (``Transformer``), the
projections (``Dense``, PyLate's ``N_Dense/`` folders or a Stanford checkpoint's top-level
``linear.weight``), and the settings each format stores (PyLate's
``config_sentence_transformers.json``, Stanford's ``artifact.metadata``, its own native format).
What stays here is what it does not do:

* naming the format, and building plain encoders (an ``"hf"`` folder or a sentence-transformers
  model such as the embedded MiniLM) from modules, because ``MultiVectorEncoder`` would append a
  new, random 384->128 projection to them (``checks.py`` refuses damaged folders);
* reading the stored settings back from the loaded modules into our :class:`EncoderConfig` names,
  so that an explicit argument, the checkpoint and the format's default can be told apart.

Formats: ``"pylate"`` (PyLate, ``model_type: "ColBERT"``), ``"stanford"`` (colbert-ai's
``HF_ColBERT``), ``"multi-vector-encoder"`` (sentence-transformers 6 native, as written by
``MultiVectorEncoder.save``), ``"sentence-transformers"`` and ``"hf"`` (plain encoders).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from late_interaction._encoding import checks
from late_interaction._encoding.jsonfile import read_json
from late_interaction.config import FORMAT_DEFAULTS
from late_interaction.exceptions import CheckpointFormatError

logger = logging.getLogger(__name__)

# Our own settings (PyLate has no such keys), saved by save_pretrained under this key of
# config_sentence_transformers.json.
EXTRA_KEY = "late_interaction"
EXTRA_KEYS = ("keep_special_tokens", "skiplist_rule", "dense_weight")
_COLBERT_KEYS = ("query_prefix", "document_prefix", "query_length", "document_length",
                 "do_query_expansion", "attend_to_expansion_tokens", "skiplist_words")  # fmt: skip
_PLAIN = ("sentence-transformers", "hf")


@dataclass
class Stack:
    """A loaded checkpoint: the sentence-transformers modules and what the checkpoint stores."""

    folder: Path
    checkpoint_format: str
    model: Any  # sentence_transformers.MultiVectorEncoder
    settings: dict[str, Any] = field(default_factory=dict)
    settings_source: str = "defaults"

    @property
    def transformer(self) -> Any:
        """The ``Transformer`` module (backbone and tokenizer)."""
        return self.model[0]

    @property
    def backbone(self) -> Any:
        """The Hugging Face model inside the ``Transformer`` module."""
        return self.transformer.auto_model

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face tokenizer."""
        return self.transformer.tokenizer

    @property
    def projections(self) -> list[Any]:
        """The ``Dense`` modules, in order (empty for a plain encoder)."""
        from sentence_transformers.base.modules import Dense

        return [m for m in self.model if isinstance(m, Dense)]

    @property
    def defaults(self) -> dict[str, Any]:
        """Built-in defaults for this format (PyLate's for the native format)."""
        fmt = self.checkpoint_format
        return FORMAT_DEFAULTS["plain" if fmt in _PLAIN else "stanford" if fmt == "stanford"
                               else "pylate"]  # fmt: skip


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
        if st_config.get("model_type") == "MultiVectorEncoder":
            return "multi-vector-encoder"
        is_pylate = st_config.get("model_type") == "ColBERT" or any(
            str(m.get("type", "")).startswith("pylate.") for m in modules
        )
        if is_pylate or any(k in st_config for k in _COLBERT_KEYS):
            return "pylate"
        return "stanford" if stanford else "sentence-transformers"
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


def _build(folder: Path, fmt: str, kwargs: dict[str, Any]) -> Any:
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Normalize, Transformer

    if fmt not in _PLAIN:
        return MultiVectorEncoder(str(folder), local_files_only=True, device="cpu", **kwargs)
    # MultiVectorEncoder would append an untrained projection to a plain encoder (it prepares
    # one for training); its token embeddings are what we want, so the stack is built by hand.
    sub = folder
    if fmt == "sentence-transformers":
        modules = read_json(folder / "modules.json")
        found = [m for m in modules if str(m.get("type", "")).endswith("Transformer")]
        if not isinstance(modules, list) or len(found) != 1:
            msg = (
                f"{folder}/modules.json: expected exactly one sentence_transformers.models."
                f"Transformer module; found types {[m.get('type') for m in modules]}."
            )
            raise CheckpointFormatError(msg)
        sub = folder / str(found[0].get("path", ""))
    transformer = Transformer.load(str(sub), local_files_only=True, **kwargs)
    normalize = Normalize(module_input_name="token_embeddings")
    return MultiVectorEncoder(modules=[transformer, normalize], device="cpu", local_files_only=True)


def _stored_settings(folder: Path, fmt: str, model: Any) -> dict[str, Any]:
    """The settings the loaded modules carry, under our names (only those the checkpoint sets)."""
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    if fmt in _PLAIN:
        return {}
    path = folder / "config_sentence_transformers.json"
    saved = read_json(path) if path.is_file() else {}
    transformer, out = model[0], {}
    for ours, role in (("query_prefix", "query"), ("document_prefix", "document")):
        prompt = model.prompts.get(role)
        # An empty prompt is sentence-transformers' "none": stored only if PyLate's key says so.
        if prompt or (prompt is not None and ours in saved):
            # sentence-transformers prepends a Stanford marker as text with a space after it.
            out[ours] = prompt.removesuffix(" ") if fmt == "stanford" else prompt
    expansion = transformer.query_expansion
    if expansion is not None:
        checks.supported_expansion(folder, expansion)
        out["do_query_expansion"] = True
        out["attend_to_expansion_tokens"] = bool(expansion["attend"])
        out["query_length"] = int(expansion["length"])
    elif fmt != "stanford":
        out["do_query_expansion"] = False
        if transformer.query_length is not None:
            out["query_length"] = int(transformer.query_length)
    if transformer.document_length is not None:
        out["document_length"] = int(transformer.document_length)
    masks = [m for m in model if isinstance(m, MultiVectorMask)]
    if masks:
        checks.supported_mask(folder, masks[0])
        out["skiplist_words"] = tuple(masks[0].skiplist_words)
    extra = saved.get(EXTRA_KEY) or {}
    out.update({k: extra[k] for k in EXTRA_KEYS if k in extra})
    return out


def load_stack(
    folder: Path,
    *,
    trust_remote_code: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
) -> Stack:
    """Load a local checkpoint folder with sentence-transformers, on CPU in float32.

    Raises:
        CheckpointFormatError: If the folder is not a known format or is damaged.
    """
    from late_interaction._progress import quiet_loading

    fmt = detect_format(folder)
    logger.debug("%s: detected checkpoint format %r", folder, fmt)
    checks.before_loading(folder, fmt)
    kwargs = {
        "trust_remote_code": trust_remote_code,
        "model_kwargs": dict(model_kwargs or {}),
        "processor_kwargs": dict(tokenizer_kwargs or {}),
    }
    from safetensors import SafetensorError

    try:
        with quiet_loading():
            model = _build(folder, fmt, kwargs)
    except CheckpointFormatError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, SafetensorError) as exc:
        msg = (
            f"{folder}: could not load the transformer backbone or its tokenizer with "
            f"sentence-transformers ({type(exc).__name__}: {exc}). Expected config.json, weights "
            "(model.safetensors or pytorch_model.bin) and tokenizer files."
        )
        raise CheckpointFormatError(msg) from exc
    model.eval()
    stack = Stack(folder, fmt, model)
    checks.after_loading(stack)
    stack.settings = _stored_settings(folder, fmt, model)
    if fmt == "stanford":
        stack.settings_source = (
            "artifact.metadata" if (folder / "artifact.metadata").is_file() else "defaults"
        )
    elif fmt not in _PLAIN:
        stack.settings_source = "config_sentence_transformers.json"
    tokenizer = stack.tokenizer
    if tokenizer.padding_side != "right":
        # Markers go in at position 1 and expansion pads at the end, so padding must be right.
        tokenizer.padding_side = "right"
    return stack
