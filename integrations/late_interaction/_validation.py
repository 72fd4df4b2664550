"""Boundary checks shared by the encoder and the index: one validator of each kind.

Every public entry point converts its arguments here, so a bad value gets the same clear message
wherever it is passed (what was expected, what came, how to fix it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from late_interaction.exceptions import DimensionMismatchError


def as_list(values: Any, name: str) -> list[Any]:
    """Return ``values`` as a list; a bare string is one item, not a sequence of characters.

    Raises:
        TypeError: If ``values`` is not iterable.
    """
    if isinstance(values, str):
        return [values]
    if isinstance(values, np.ndarray) and values.ndim == 2:
        msg = (
            f"{name} must be a sequence; got one 2-D array of shape {values.shape}. Wrap a single "
            "token matrix in a list."
        )
        raise TypeError(msg)
    try:
        return list(values)
    except TypeError as exc:
        msg = f"{name} must be a string or a sequence of them; got {type(values).__name__}."
        raise TypeError(msg) from exc


def as_texts(values: Any, name: str) -> list[str]:
    """Return ``values`` as a list of strings (a bare string is one text).

    Raises:
        TypeError: If ``values`` is not a string or a sequence of strings; names the position.
    """
    if values is None:
        msg = f"{name} must be a str or a sequence of str; got None."
        raise TypeError(msg)
    texts = as_list(values, name)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            msg = f"{name}[{i}] must be a str; got {type(text).__name__}. Convert it first."
            raise TypeError(msg)
    return texts


def positive_int(value: Any, name: str, *, optional: bool = False) -> int | None:
    """Return ``value`` as an int if it is a positive integer (or None when ``optional``).

    Raises:
        ValueError: Otherwise, naming the argument.
    """
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        msg = f"{name} must be a positive integer{' or None' if optional else ''}; got {value!r}."
        raise ValueError(msg)
    return int(value)


def as_token_matrices(embeddings: Sequence[Any], dim: int, what: str) -> list[np.ndarray]:
    """Convert token matrices (numpy or torch) to float32 and check their shape and values.

    Args:
        embeddings: Matrices of shape ``(n_tokens, dim)``, ``n_tokens >= 1``.
        dim: The index's dimension.
        what: ``"embeddings"`` or ``"query"``, for messages.

    Raises:
        DimensionMismatchError: If a matrix's dim differs from ``dim``.
        ValueError: If a matrix is not 2-D, has no rows, or holds NaN/inf.
    """
    out = []
    for i, emb in enumerate(embeddings):
        matrix = np.asarray(emb.detach().cpu() if hasattr(emb, "detach") else emb, np.float32)
        if matrix.ndim != 2 or matrix.shape[0] < 1:
            msg = f"{what}[{i}] must be a (n_tokens >= 1, dim) matrix; got shape {matrix.shape}."
            raise ValueError(msg)
        if matrix.shape[1] != dim:
            msg = (
                f"{what}[{i}] has dim {matrix.shape[1]}; the index holds dim {dim}. "
                "Encode with the index's model."
            )
            raise DimensionMismatchError(msg)
        if not np.isfinite(matrix).all():
            msg = f"{what}[{i}] holds NaN or infinite values."
            raise ValueError(msg)
        out.append(matrix)
    return out
