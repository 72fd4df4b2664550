"""Texts to token matrices: tokenise, run the module stack, normalise, keep rows.

One :class:`Pipeline` per loaded encoder. The modules are sentence-transformers' (``stack.py``);
the pipeline owns where they live (device, precision), the tokenisation rules (``tokenize.py``)
and the batching policy (``batches.py``; halving a batch on CUDA out-of-memory). The rows to
keep come from our rules rather than the stack's ``MultiVectorMask``, which knows neither
colbert-ai's skiplist rule, nor ``keep_special_tokens``, nor the one-row minimum.

The same pass also gives each text's dense vector (``pooled.py``: the mean-pooled output of the
backbone, before the projections).

Performance (why the loop looks the way it does): on a GPU, tokenising and copying used to take
~90% of encoding time with the GPU idle (0.93M tokens/s end to end against 9.8M for the bare
bfloat16 forward on an H200; figures from issue 11). Now the next batches are tokenised while the
GPU runs (on a GPU in a tokenizer process, ``tokenizer_process.py``, so the launch loop keeps
the interpreter to itself; elsewhere in a background thread, ``prefetch.py``) and arrive in
pinned memory, reading only what is not known in advance and cutting long texts where no kept
token changes (``rust_tokenizer.py``, ``precut.py``; the Rust tokenizer runs one group ahead of
those reads, ``token_arrays.py``); each
batch's kept rows are gathered and normalised
on the device and come back in one asynchronous copy, on a side stream, while the next batch is
already running, and a collector thread copies them out of page-locked memory
(``flight.py``); and the host splits them into per-text views of that one array instead of
indexing a padded array text by text. What is left is mostly the Rust tokenizer itself: alone,
on 16 cores, it reaches about half of the bfloat16 forward bound of an H200
(``benchmarks/results/gpu-tokenizer-scaling-h200-20261130-1012.md``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from late_interaction._encoding import tokenize as _tokenize
from late_interaction._encoding.batch_source import BatchSource
from late_interaction._encoding.batches import Batch, plan_groups
from late_interaction._encoding.flight import Flight, Output, collector, place_rows
from late_interaction._encoding.pooled import mean_pooled
from late_interaction._encoding.stack import Stack
from late_interaction._validation import positive_int
from late_interaction.config import EncoderConfig

logger = logging.getLogger(__name__)


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
        self._copy_stream: Any = None  # CUDA stream for device-to-host copies, made on first use
        self._collector: Any = None  # and the thread that copies them out (flight.py)
        #: ``load_pipeline``'s arguments, for loading the same encoder in a pool worker.
        self.load_args: dict[str, Any] | None = None
        self.backend, self.quantize = "torch", None
        self._runner: Any = None  # backends.Runner: the backbone in onnxruntime or OpenVINO
        #: Tokenizer worker processes (``tokenizer_process.py``): None is automatic (on CUDA
        #: only), 0 tokenises in this process, N > 0 uses N on any device.
        self.tokenizer_processes: int | None = None
        #: How many pipelines share this host's cores (a multi-GPU pool sets it), so their
        #: tokenizer processes split the cores instead of each taking them all.
        self.cpu_share = 1
        self._source = BatchSource(self)  # where batches come from (tokenizer processes or not)

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
        self,
        texts: list[str],
        is_query: bool,
        batch_size: int,
        show_progress_bar: bool | None,
        *,
        as_tensors: bool = False,
    ) -> tuple[list[Any], Any]:
        """Token matrices and dense vectors of ``texts``, in input order.

        Args:
            texts: The texts (already checked to be str).
            is_query: Encode as queries (else documents).
            batch_size: Texts per forward pass.
            show_progress_bar: None shows a bar from 256 texts on.
            as_tensors: Return tensors on the encoder's device instead of numpy arrays, for a
                consumer on the same device (no copy to the host). The matrices are views of
                one tensor per batch.

        Returns:
            ``(matrices, dense)``: one float32 ``(n_tokens, dim)`` matrix per text, rows
            L2-normalised, and a float32 ``(n_texts, hidden)`` array of the texts' unit-length
            mean-pooled backbone outputs (:func:`~late_interaction._encoding.pooled.mean_pooled`).
            The matrices of one batch are views of one array.

        Raises:
            ValueError: If ``batch_size`` is not a positive integer.
        """
        batch_size = positive_int(batch_size, "batch_size")  # type: ignore[assignment]
        hidden = int(self.checkpoint.backbone.config.hidden_size)
        if as_tensors:
            dense: Any = torch.empty((len(texts), hidden), dtype=torch.float32, device=self.device)
        else:
            dense = np.empty((len(texts), hidden), np.float32)
        if not texts:
            return [], dense
        out: list[Any] = [None] * len(texts)
        groups = plan_groups(texts, batch_size)
        outputs = self.run(texts, groups, is_query, batch_size, show_progress_bar, as_tensors)
        with contextlib.closing(outputs):
            for index, rows, counts, vectors in outputs:
                place_rows(out, index, rows, counts)  # views of the batch's one array
                dense[torch.from_numpy(index) if as_tensors else index] = vectors
        return out, dense

    def run(
        self,
        texts: list[str],
        groups: list[np.ndarray],
        is_query: bool,
        batch_size: int,
        show_progress_bar: bool | None,
        as_tensors: bool = False,
    ) -> Iterator[Output]:
        """Encode the ``groups`` of ``texts`` (``batches.plan_groups``), one output per batch.

        Batches come in the plan's order, not the input order. Used by :meth:`encode` and by the
        workers of a multi-process pool (``pool.py``), which each run some of the groups.
        """
        n_texts = sum(len(g) for g in groups)
        from late_interaction._progress import encode_bar

        source = self._source.open(texts, groups, is_query, batch_size)
        with source as batches, encode_bar(n_texts, is_query, show_progress_bar) as bar:
            # Launch batch k + 1 before collecting batch k, so the GPU never waits for the host.
            pending: list[Flight] = []
            for batch in batches:
                launched = self._launch(batch, as_tensors)
                for flight in pending:
                    yield flight.result()
                    bar.update(flight.size)
                pending = launched
            for flight in pending:
                yield flight.result()
                bar.update(flight.size)

    def close(self) -> None:
        """Stop the tokenizer processes, if any (a later encode starts them again).

        Waits for a job that is using them, in another thread, to finish.
        """
        self._source.close()

    def _launch(self, batch: Batch, as_tensors: bool) -> list[Flight]:
        try:
            return [self._flight(batch, as_tensors)]
        except torch.cuda.OutOfMemoryError:
            if len(batch) == 1:
                raise
            # Halve the batch rather than fail a long encode job on one oversized batch.
            logger.warning("CUDA out of memory on a batch of %d; retrying in halves.", len(batch))
            torch.cuda.empty_cache()
            return [f for half in batch.halves() for f in self._launch(half, as_tensors)]

    def _flight(self, batch: Batch, as_tensors: bool) -> Flight:
        cuda = self.device.type == "cuda"
        # int64 on the device: batches from tokenizer processes come in narrower integer types.
        features = {
            k: v.to(self.device, non_blocking=cuda).long() for k, v in batch.features.items()
        }
        rows = batch.rows.to(self.device, non_blocking=cuda)
        with torch.inference_mode():
            hidden, dense = self._forward(features)
            kept = hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows)
            vectors = torch.nn.functional.normalize(kept.float(), p=2, dim=-1)
            if not cuda or as_tensors:
                return Flight(batch, vectors, dense, as_tensors)
            if self._copy_stream is None:
                self._copy_stream = torch.cuda.Stream(device=self.device)
                self._collector = collector()
            return Flight(batch, vectors, dense, False, self._copy_stream, self._collector)

    def _forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The module stack on one batch: ``(token vectors, dense vectors)`` on the device."""
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
        return features["token_embeddings"], dense
