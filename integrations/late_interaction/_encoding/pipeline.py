"""Texts to token matrices: tokenise, run the module stack, normalise, keep rows.

One :class:`Pipeline` per loaded encoder. The modules are sentence-transformers' (``stack.py``);
the pipeline owns where they live (device, precision), the tokenisation rules (``tokenize.py``)
and the batching policy (longest texts first, halving a batch on CUDA out-of-memory). The rows to
keep come from our rules rather than the stack's ``MultiVectorMask``, which knows neither
colbert-ai's skiplist rule, nor ``keep_special_tokens``, nor the one-row minimum.

The same pass also gives each text's dense vector (``pooled.py``: the mean-pooled output of the
backbone, before the projections).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from late_interaction._encoding import tokenize as _tokenize
from late_interaction._encoding.pooled import mean_pooled
from late_interaction._encoding.stack import Stack
from late_interaction._validation import positive_int
from late_interaction.config import EncoderConfig

logger = logging.getLogger(__name__)

_PROGRESS_THRESHOLD = 256  # show a progress bar by default from this many texts on
# What an ONNX export is traced with and checked on: two lengths, so padding is exercised.
_PROBE_TEXTS = ["Late interaction compares every query token with every document token.", "ok"]


class Pipeline:
    """The modules of one checkpoint, placed on a device, with the ColBERT tokenisation rules.

    Args:
        checkpoint: The loaded module stack.
        config: The settings in effect.
        device: Where to run.
        dtype: Compute precision (bfloat16 on CPU runs as autocast over float32 weights).
        auto_device: The device was chosen automatically, so a failure to use it falls back to
            CPU float32 (with a warning) instead of raising.
        setting_sources: Where each setting of ``config`` came from (``resolve_settings``).
    """

    def __init__(
        self,
        checkpoint: Stack,
        config: EncoderConfig,
        *,
        device: torch.device,
        dtype: torch.dtype,
        auto_device: bool = False,
        setting_sources: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.setting_sources = dict(setting_sources or {})
        self.checkpoint = checkpoint
        self.tokenizer = checkpoint.tokenizer
        self.rules = _tokenize.build_rules(
            self.tokenizer,
            config,
            bool(checkpoint.transformer.do_lower_case),
            strip=checkpoint.checkpoint_format != "stanford",
        )
        self.modules = checkpoint.model
        from sentence_transformers.base.modules import Normalize
        from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

        # The forward path: Transformer, then the projections. Scoring masks and normalisation
        # are applied below (normalisation in float32, after any bfloat16 compute).
        self._forward_modules = [
            m for m in self.modules if not isinstance(m, (MultiVectorMask, Normalize))
        ]
        self.device, self.dtype = self._place(device, dtype, auto_device)
        self.backend, self.quantize = "torch", None
        self._runner: Any = None  # backends.Runner: the backbone in onnxruntime or OpenVINO

    def use_backend(self, backend: str, quantize: str | None, folder: Path) -> None:
        """Run the backbone in ``backend`` from now on (see ``backends.build_runner``)."""
        from late_interaction._encoding.backends import build_runner

        probe, _ = _tokenize.tokenize(
            self.tokenizer, self.rules, self.config, _PROBE_TEXTS, is_query=False
        )
        backbone = self.checkpoint.backbone
        self._runner = build_runner(backend, quantize, self.dtype, backbone, probe, folder)
        self.backend, self.quantize = backend, quantize

    def _place(
        self, device: torch.device, dtype: torch.dtype, auto: bool
    ) -> tuple[torch.device, torch.dtype]:
        # On CPU, bfloat16 runs as autocast over float32 weights: matmuls in bfloat16 (about 1.7x
        # faster with AVX512-BF16), layer norms and softmax in float32, so token vectors stay
        # within ~1e-4 cosine of float32 ones.
        self._cpu_autocast = device.type == "cpu" and dtype is torch.bfloat16
        weights_dtype = torch.float32 if self._cpu_autocast else dtype
        try:
            self.modules.to(device=device, dtype=weights_dtype)
        except (RuntimeError, AssertionError) as exc:  # torch raises these for device failures
            if not auto or device.type == "cpu":
                msg = f"could not move the model to {device} ({exc}); pass device='cpu'."
                raise RuntimeError(msg) from exc
            # Only an automatic choice falls back: an explicit device is never replaced.
            logger.warning("Could not use %s (%s); falling back to CPU float32.", device, exc)
            self.modules.to(device="cpu", dtype=torch.float32)
            self._cpu_autocast = False
            return torch.device("cpu"), torch.float32
        return device, dtype

    def encode(
        self, texts: list[str], is_query: bool, batch_size: int, show_progress_bar: bool | None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Token matrices and dense vectors of ``texts``, in input order.

        Returns:
            ``(matrices, dense)``: one float32 ``(n_tokens, dim)`` matrix per text, rows
            L2-normalised, and a float32 ``(n_texts, hidden)`` array of the texts' unit-length
            mean-pooled backbone outputs (:func:`~late_interaction._encoding.pooled.mean_pooled`).

        Raises:
            ValueError: If ``batch_size`` is not a positive integer.
        """
        batch_size = positive_int(batch_size, "batch_size")  # type: ignore[assignment]
        hidden = int(self.checkpoint.backbone.config.hidden_size)
        if not texts:
            return [], np.empty((0, hidden), np.float32)
        from late_interaction._progress import auto_tqdm

        tqdm = auto_tqdm()

        show = len(texts) >= _PROGRESS_THRESHOLD if show_progress_bar is None else show_progress_bar
        # Performance note: longest first, so each batch pads to similar lengths; order restored.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[np.ndarray] = [np.empty((0, self.config.dim), np.float32)] * len(texts)
        dense = np.empty((len(texts), hidden), np.float32)
        kind = "queries" if is_query else "documents"
        with (
            torch.inference_mode(),
            tqdm(total=len(texts), disable=not show, desc=f"Encoding {kind}") as bar,
        ):
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                matrices, dense[idx] = self._encode_batch([texts[i] for i in idx], is_query)
                for i, matrix in zip(idx, matrices, strict=True):
                    out[i] = matrix
                bar.update(len(idx))
        return out, dense

    def _encode_batch(
        self, texts: list[str], is_query: bool
    ) -> tuple[list[np.ndarray], np.ndarray]:
        try:
            return self._forward(texts, is_query)
        except torch.cuda.OutOfMemoryError:
            if len(texts) == 1:
                raise
            # Halve the batch rather than fail a long encode job on one oversized batch.
            logger.warning("CUDA out of memory on a batch of %d; retrying in halves.", len(texts))
            torch.cuda.empty_cache()
            half = len(texts) // 2
            first, second = (
                self._encode_batch(part, is_query) for part in (texts[:half], texts[half:])
            )
            return first[0] + second[0], np.concatenate([first[1], second[1]])

    def _forward(self, texts: list[str], is_query: bool) -> tuple[list[np.ndarray], np.ndarray]:
        features, keep = _tokenize.tokenize(
            self.tokenizer, self.rules, self.config, texts, is_query=is_query
        )
        features = {k: v.to(self.device) for k, v in features.items()}
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._cpu_autocast):
            transformer, *projections = self._forward_modules
            if self._runner is None:
                features = transformer(features)
            else:
                features["token_embeddings"] = self._runner(features)
            # The dense vector: the backbone's last hidden states, before any projection.
            dense = mean_pooled(features["token_embeddings"], features["attention_mask"])
            for module in projections:
                features = module(features)
        hidden = features["token_embeddings"]
        dense = dense.cpu().numpy()
        vectors = torch.nn.functional.normalize(hidden.float(), p=2, dim=-1).cpu().numpy()
        keep_np = keep.numpy()
        return [vectors[i][keep_np[i]] for i in range(len(texts))], dense
