"""One model resolution for every adapter: a name, a path, a loaded encoder or None."""

from __future__ import annotations

import os
from typing import Any

from late_interaction.types import Encoder


def _device_key(device: Any) -> tuple[str, int]:
    """``(type, index)`` of a device; a missing index is the current one, as torch reads it."""
    import torch

    resolved = torch.device(device)
    index = resolved.index
    if index is None:
        index = (
            torch.cuda.current_device()
            if resolved.type == "cuda" and torch.cuda.is_available()
            else 0
        )
    return resolved.type, index


def same_device(a: Any, b: Any) -> bool:
    """Whether two device descriptions name the same device (``"cuda"`` equals ``"cuda:0"``).

    Raises:
        ValueError: If either is not a device name.
    """
    try:
        return _device_key(a) == _device_key(b)
    except (RuntimeError, TypeError) as exc:
        msg = f"device must be like 'cpu', 'cuda', 'cuda:1' or 'mps'; got {a!r} and {b!r}."
        raise ValueError(msg) from exc


def resolve_model(model: Any = None, *, device: str | None = None) -> Encoder:
    """Return an encoder for what a user passed as ``model`` (what every adapter accepts).

    Args:
        model: None (the embedded default model), a checkpoint name or local path (loaded with
            ``ColBERT.from_pretrained``), or an already loaded encoder (a ``ColBERT`` or any
            :class:`~late_interaction.Encoder`), returned as it is.
        device: Device to load a named model on (None: the core's choice, cuda > mps > cpu). With
            a loaded encoder it must name the device the encoder is on.

    Returns:
        The encoder.

    Raises:
        TypeError: If ``model`` is of none of those kinds.
        ValueError: If ``device`` contradicts a loaded encoder's device, or is given with an
            encoder that has no device.
        CheckpointNotFoundError, CheckpointFormatError, ConnectionError: As
            ``ColBERT.from_pretrained`` for a name or path.
    """
    if model is None or isinstance(model, (str, os.PathLike)):
        from late_interaction.encoder import ColBERT

        return ColBERT.from_pretrained(model, device=device)
    if not isinstance(model, Encoder):
        msg = (
            "model must be None (the embedded default), a checkpoint name or path, or a loaded "
            "encoder (late_interaction.ColBERT, or an object with dim, encode_queries, "
            f"encode_documents and fingerprint); got {type(model).__name__}."
        )
        raise TypeError(msg)
    if device is not None:
        own = getattr(model, "device", None)
        if own is None or not same_device(own, device):
            msg = (
                f"device={device!r} but the given encoder is on {own!r}; device only chooses "
                "where a model loaded by name goes. Move the model (ColBERT.from_pretrained(..., "
                "device=...)) or leave device=None."
            )
            raise ValueError(msg)
    return model


def open_index(
    path: Any,
    model: Any = None,
    *,
    device: str | None = None,
    trust_remote_model: bool = False,
    verify: bool = True,
) -> Any:
    """Reopen a saved core index the way every adapter's ``load`` does.

    Args:
        path: The index folder.
        model: None rebuilds the recorded encoder; a name or path loads that checkpoint; a
            loaded encoder is used as it is. Anything but None must be the index's encoder.
        device: Where a checkpoint loaded by name, or rebuilt, runs (a loaded encoder keeps its
            own device); the index searches on its encoder's device.
        trust_remote_model: With ``model=None``, allow rebuilding an encoder the folder names
            by Hub id (see :meth:`LateInteractionIndex.load`).
        verify: Also hash the memory-mapped token arrays on load.

    Returns:
        The :class:`~late_interaction.LateInteractionIndex`.
    """
    from late_interaction.index import LateInteractionIndex

    encoder = None if model is None else resolve_model(model, device=device)
    return LateInteractionIndex.load(
        path,
        encoder,
        device=None if model is not None else device,
        trust_remote_model=trust_remote_model,
        verify=verify,
    )
