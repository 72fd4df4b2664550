"""Imports of optional dependencies with an error that names the install command."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming the extra that provides it.

    Args:
        module: Dotted module name, e.g. ``"llama_index.core"``.
        extra: The extra of ``late-interaction`` that installs it, e.g. ``"llama-index"``.

    Returns:
        The imported module.

    Raises:
        ImportError: If the module cannot be imported; chained to the original error.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = (
            f"{module!r} is required for this feature but could not be imported ({exc}). "
            f'Install it with: pip install "late-interaction[{extra}]"'
        )
        raise ImportError(msg) from exc
