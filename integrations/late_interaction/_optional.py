"""Imports of optional dependencies with an error that names the install command."""

from __future__ import annotations

import importlib
import importlib.metadata
from types import ModuleType

__all__ = ["require"]


def _requirements(extra: str) -> list[str]:
    """The requirements an extra of the installed distribution adds (``[]`` if not installed)."""
    try:
        requires = importlib.metadata.requires("late-interaction") or []
    except importlib.metadata.PackageNotFoundError:  # running from a source tree on sys.path
        return []
    out = []
    for requirement in requires:
        spec, _, marker = requirement.partition(";")
        if marker.replace("'", '"').strip() == f'extra == "{extra}"':
            out.append(spec.strip())
    return out


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming what to install.

    The message gives the requirements themselves (``pip install "llama-index-core>=0.13,<0.15"``,
    right wherever late-interaction came from: a clone, a wheel) and the extra that adds them.

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
        needed = " ".join(f'"{r}"' for r in _requirements(extra))
        extra_cmd = (
            f'the "{extra}" extra of late-interaction: pip install "late-interaction[{extra}]", '
            f'or pip install ".[{extra}]" in a clone'
        )
        how = f"it with: pip install {needed} ({extra_cmd})" if needed else extra_cmd
        msg = f"{module!r} is required for this feature but could not be imported ({exc}). "
        msg += f"Install {how}."
        raise ImportError(msg) from exc
