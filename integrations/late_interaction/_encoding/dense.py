"""Token-level projection layers as PyLate stores them (``N_Dense/`` folders), chained.

A PyLate ``Dense`` computes ``activation(linear(x))`` and, with ``use_residual``, adds ``x`` (or
``residual(x)`` when the widths differ). Weights live in ``N_Dense/model.safetensors`` (fallback
``pytorch_model.bin``) as ``linear.weight`` ``[out, in]``, optional ``linear.bias`` and
``residual.weight``; the shape and flags in ``N_Dense/config.json``. We read these files directly
rather than through sentence-transformers because PyLate's ``Dense`` class is not importable here.
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from late_interaction.exceptions import CheckpointFormatError

logger = logging.getLogger(__name__)

_IDENTITY = "torch.nn.modules.linear.Identity"


def _activation(name: str, where: Path) -> nn.Module:
    # Only torch.nn activations: importing arbitrary dotted names from a downloaded config would
    # execute code from the checkpoint.
    module_name, _, class_name = name.rpartition(".")
    if not module_name.startswith("torch.nn"):
        msg = (
            f"{where}: activation_function {name!r} is not a torch.nn module; expected e.g. "
            f"{_IDENTITY!r} or 'torch.nn.modules.activation.Tanh'."
        )
        raise CheckpointFormatError(msg)
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls()
    except (ImportError, AttributeError, TypeError) as exc:
        msg = f"{where}: cannot build activation_function {name!r} ({exc})."
        raise CheckpointFormatError(msg) from exc


class DenseLayer(nn.Module):
    """One PyLate/sentence-transformers ``Dense`` layer applied to every token vector."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool,
        activation_function: str = _IDENTITY,
        use_residual: bool = False,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.bias = bias
        self.activation_function = activation_function
        self.use_residual = use_residual
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation = _activation(activation_function, Path("<config>"))
        if use_residual and in_features != out_features:
            self.residual = nn.Linear(in_features, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``x`` of shape ``(..., in_features)`` to ``(..., out_features)``."""
        out = self.activation(self.linear(x))
        if self.use_residual:
            out = out + (self.residual(x) if self.in_features != self.out_features else x)
        return out

    def config_dict(self) -> dict[str, Any]:
        """The ``config.json`` content PyLate writes for this layer."""
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "activation_function": self.activation_function,
            "use_residual": self.use_residual,
        }

    @classmethod
    def load(cls, folder: Path) -> DenseLayer:
        """Load one ``N_Dense`` folder.

        Raises:
            CheckpointFormatError: If the config or the weights are missing or inconsistent.
        """
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            layer = cls(
                int(config["in_features"]),
                int(config["out_features"]),
                bias=bool(config.get("bias", True)),
                activation_function=config.get("activation_function", _IDENTITY),
                use_residual=bool(config.get("use_residual", False)),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            msg = (
                f"{folder}: expected config.json with in_features, out_features, bias, "
                f"activation_function, use_residual; could not read it ({exc!r})."
            )
            raise CheckpointFormatError(msg) from exc
        state = _read_weights(folder)
        try:
            layer.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            expected = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
            found = {k: tuple(v.shape) for k, v in state.items()}
            msg = f"{folder}: weights {found} do not match config.json, which implies {expected}."
            raise CheckpointFormatError(msg) from exc
        return layer


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        try:
            return load_file(str(folder / "model.safetensors"))
        except SafetensorError as exc:  # truncated or not a safetensors file
            msg = f"{folder}/model.safetensors is damaged ({exc}); restore the checkpoint."
            raise CheckpointFormatError(msg) from exc
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "no folder"
    msg = f"{folder}: expected model.safetensors or pytorch_model.bin; found {found}."
    raise CheckpointFormatError(msg)


class Projection(nn.Module):
    """Dense layers applied in order (PyLate's ``1_Dense``, ``2_Dense``, ...)."""

    def __init__(self, layers: list[DenseLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    @property
    def out_features(self) -> int:
        """Width of the last layer."""
        return int(self.layers[-1].out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply every layer in order."""
        for layer in self.layers:
            x = layer(x)
        return x

    def save(self, folder: Path) -> list[str]:
        """Write ``1_Dense``, ``2_Dense``, ... under ``folder``; return their names."""
        names = []
        for i, layer in enumerate(self.layers, start=1):
            sub = folder / f"{i}_Dense"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / "config.json").write_text(
                json.dumps(layer.config_dict(), indent=2), encoding="utf-8"
            )
            state = {k: v.detach().to("cpu").contiguous() for k, v in layer.state_dict().items()}
            save_file(state, str(sub / "model.safetensors"))
            names.append(sub.name)
        return names
