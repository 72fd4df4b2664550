"""Device and dtype choice for the encoder: cuda > mps > cpu unless told otherwise."""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Pick the device: the given one (checked), else cuda, then mps, then cpu.

    Raises:
        ValueError: If ``device`` is not a device name, or names an unavailable backend.
    """
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        msg = f"device must be like 'cpu', 'cuda', 'cuda:1' or 'mps'; got {device!r}."
        raise ValueError(msg) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        msg = f"device={device!r} was requested but CUDA is not available; pass device='cpu'."
        raise ValueError(msg)
    if resolved.type == "mps" and not _mps_available():
        msg = f"device={device!r} was requested but MPS is not available; pass device='cpu'."
        raise ValueError(msg)
    return resolved


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_dtype(dtype: Any, device: torch.device) -> torch.dtype:
    """Resolve ``dtype``: None -> float32; ``"auto"`` -> a fast dtype for the device.

    ``"auto"`` gives bfloat16 (or float16) on CUDA, float16 on MPS, bfloat16 on a CPU that
    multiplies it natively (AVX512-BF16/AMX; run as autocast by the encoder), else float32.

    Raises:
        ValueError: If ``dtype`` is not a floating torch dtype or one of its names.
    """
    if dtype is None:
        return torch.float32
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.bfloat16 if cpu_has_fast_bfloat16() else torch.float32
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        resolved = dtype
    elif isinstance(dtype, str) and dtype.removeprefix("torch.") in _DTYPES:
        resolved = _DTYPES[dtype.removeprefix("torch.")]
    else:
        msg = f"dtype must be None, 'auto', 'float32', 'float16' or 'bfloat16'; got {dtype!r}."
        raise ValueError(msg)
    if resolved is torch.float16 and device.type == "cpu":
        logger.warning("float16 on CPU is slow and imprecise; consider bfloat16 or float32.")
    return resolved
