"""CPU inference backends for the backbone: onnxruntime and OpenVINO (``backend=...``).

``"torch"`` runs the sentence-transformers ``Transformer`` module as loaded. ``"onnx"`` and
``"openvino"`` run the same backbone from an ONNX file exported from the loaded weights
(``onnx_export.py``); everything after the backbone stays in torch (``pipeline.py``).
``quantize="int8"`` runs int8 weights, with activations quantised at run time (no calibration
data): on onnxruntime one scale per batch (``quantize_dynamic``); on OpenVINO one scale per token
and group of 128 input channels (``int8_weights.py``), which is both faster and much closer to
float32 (token cosine >= 0.99 vs 0.90 on the benchmark checkpoint).

Both runtimes use ``torch.get_num_threads()`` threads (read at load), so one setting governs
every backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from late_interaction._encoding.device import cpu_has_fast_bfloat16
from late_interaction._optional import require

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "openvino")
QUANTIZATIONS = (None, "int8")

#: A new export must give these token cosines to the torch backbone on a probe batch (int8: mean).
_MIN_COSINE = {"base": 0.9999, "ort": 0.9999, "ort-int8": 0.95, "ov-int8": 0.98}

Runner = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def check_backend(backend: Any, quantize: Any, device: Any, dtype: Any) -> None:
    """Validate the backend options before anything is loaded.

    Raises:
        ValueError: On an unknown backend or quantisation, int8 without onnxruntime, a
            non-CPU device, or a dtype the backend does not run.
    """
    if backend not in BACKENDS:
        msg = f"backend must be one of {BACKENDS}; got {backend!r}."
        raise ValueError(msg)
    if quantize not in QUANTIZATIONS:
        msg = f"quantize must be None or 'int8'; got {quantize!r}."
        raise ValueError(msg)
    if quantize is not None and backend == "torch":
        msg = (
            f"quantize={quantize!r} runs on the CPU backends: pass backend='openvino' (the "
            "faster and more accurate int8) or backend='onnx'."
        )
        raise ValueError(msg)
    if backend == "torch":
        return
    from late_interaction._encoding.resolve import same_device

    if device is not None and not same_device(device, "cpu"):  # ValueError on a bad name too
        msg = f"backend={backend!r} runs on CPU; got device={device!r}. Use backend='torch' there."
        raise ValueError(msg)
    allowed = ("float32", "bfloat16") if backend == "openvino" and not quantize else ("float32",)
    name = str(dtype).removeprefix("torch.") if dtype is not None else "float32"
    name = {"fp32": "float32", "bf16": "bfloat16"}.get(name, name)
    if name not in (*allowed, "auto"):
        what = f"backend={backend!r}" + (f", quantize={quantize!r}" if quantize else "")
        hint = "" if quantize else " quantize='int8' is the faster, approximate option."
        msg = f"{what} computes in {' or '.join(allowed)}; got dtype={dtype!r}.{hint}"
        raise ValueError(msg)


def backend_dtype(backend: str, dtype: Any, quantize: str | None = None) -> torch.dtype:
    """The compute precision a non-torch backend runs at for the ``dtype`` argument."""
    if (
        backend == "openvino"
        and quantize is None
        and (
            dtype in (torch.bfloat16, "bfloat16", "bf16", "torch.bfloat16")
            or (dtype == "auto" and cpu_has_fast_bfloat16())
        )
    ):
        return torch.bfloat16
    return torch.float32


class OnnxRuntimeBackbone:
    """The backbone in an onnxruntime session: features in, last hidden states out."""

    def __init__(self, path: Path, threads: int) -> None:
        ort = require("onnxruntime", "onnx")
        self.path = path
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no per-session notices on stderr
        # Idle workers sleep instead of spinning: spinning steals the cycles of the threads that
        # have work whenever the CPU is shared (+15% docs/s measured on 2 busy cores, int8 and
        # float32 alike).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: features[name].numpy() for name in self.inputs}
        return torch.from_numpy(self.session.run(None, feeds)[0])


class OpenVinoBackbone:
    """The backbone compiled by OpenVINO for the CPU: features in, last hidden states out."""

    def __init__(self, path: Path, threads: int, dtype: torch.dtype, int8: bool = False) -> None:
        ov = require("openvino", "openvino")
        self.path = path
        core = ov.Core()
        precision = "bf16" if dtype is torch.bfloat16 else "f32"
        # An explicit f32 hint: on CPUs with bfloat16 units OpenVINO would otherwise pick bf16.
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                  "INFERENCE_PRECISION_HINT": precision}  # fmt: skip
        if int8:  # int8 products over activations quantised per token group (int8_weights.py)
            from late_interaction._encoding.int8_weights import GROUP_SIZE

            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = GROUP_SIZE
        model = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.inputs = [port.get_any_name() for port in model.inputs]
        self.request = model.create_infer_request()

    def __call__(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: features[name].numpy() for name in self.inputs}
        result = self.request.infer(feeds)
        # The request reuses its output buffer on the next call: copy.
        return torch.from_numpy(np.array(result[0], dtype=np.float32, copy=True))


def _token_cosines(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    x, y = a[mask.bool()].double(), b[mask.bool()].double()
    return torch.nn.functional.cosine_similarity(x, y, dim=-1)


def build_runner(
    backend: str,
    quantize: str | None,
    dtype: torch.dtype,
    backbone: Any,
    probe: dict[str, torch.Tensor],
    folder: Path,
) -> Runner:
    """Export (or reuse) the backbone's ONNX file and load it in the backend's runtime.

    Args:
        backend: ``"onnx"`` or ``"openvino"``.
        quantize: None or ``"int8"``.
        dtype: Compute precision (``backend_dtype``).
        backbone: The Hugging Face model (float32, CPU).
        probe: A tokenised batch to trace with and to check a new export on.
        folder: Where the exported files live (``onnx_export.export_folder``).

    Raises:
        ImportError: If the backend's runtime is not installed (names the extra to install).
        RuntimeError: If a new export disagrees with the torch backbone.
    """
    from late_interaction._encoding import onnx_export

    # Fail on a missing runtime before spending seconds on an export.
    require("onnxruntime" if backend == "onnx" else "openvino", backend)
    require("onnx", backend)
    threads = torch.get_num_threads()

    def load(path: Path) -> Runner:
        if backend == "openvino":
            return OpenVinoBackbone(path, threads, dtype, int8=quantize is not None)
        return OnnxRuntimeBackbone(path, threads)

    def check(path: Path, variant: str) -> None:
        if backend == "onnx" and variant == "base":
            return  # an intermediate step: the fused file made from it is checked
        with torch.inference_mode():
            expected = backbone(**probe, return_dict=True).last_hidden_state
        cosines = _token_cosines(load(path)(probe), expected, probe["attention_mask"])
        # onnxruntime's int8 moves single tokens more (measured min ~0.85 on all-MiniLM-L6-v2):
        # its mean.
        cosine = float(cosines.mean() if variant == "ort-int8" else cosines.min())
        floor = _MIN_COSINE[variant] if dtype is torch.float32 else 0.99
        if not cosine >= floor:
            fix = "load it without quantize" if quantize else "use backend='torch'"
            msg = (
                f"the {variant} ONNX export of this backbone gives token vectors at cosine "
                f"{cosine:.5f} to the torch model's (expected >= {floor}); {fix} and report "
                "the model type."
            )
            raise RuntimeError(msg)
        logger.debug("%s export checked: token cosine %.6f to torch", variant, cosine)

    if backend == "openvino":
        variant = "ov-int8" if quantize else "base"
    else:
        variant = "ort-int8" if quantize else "ort"
    return load(onnx_export.onnx_file(backbone, probe, folder, variant, check))
