"""Boundary checks shared by the encoder and the index: one validator of each kind.

Every public entry point converts its arguments here, so a bad value gets the same clear message
wherever it is passed (what was expected, what came, how to fix it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from late_interaction.exceptions import DimensionMismatchError

# The fixes ``as_items`` gives for the other framework's objects (the classic mix-up).
UNIT_TOLERANCE = 1e-2  # float16 inputs are unit to ~1e-3

FROM_LANGCHAIN = (
    "That is a LangChain object: convert it with "
    "llama_index.core.Document.from_langchain_format(doc), or use the LangChain classes "
    "(langchain_late_interaction.ColBERTRetriever / ColBERTReranker)."
)
FROM_LLAMA_INDEX = (
    "That is a LlamaIndex object: convert a node with Document(page_content=node.get_content(), "
    "metadata=node.metadata, id=node.node_id) (a LlamaIndex Document has .to_langchain_format()),"
    " or use the LlamaIndex classes (llama_index.retrievers.late_interaction, "
    "llama_index.postprocessor.late_interaction_rerank)."
)


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
        ValueError: If a string is not valid Unicode (an unpaired surrogate); names it.
    """
    items = as_items(values, name, str, "a str", {"": "Convert it first."}, plural="str")
    single = isinstance(values, str)
    for i, text in enumerate(items):
        check_unicode(text, name if single else f"{name}[{i}]")
    return items


def as_items(
    values: Any,
    name: str,
    kind: type | tuple[type, ...],
    expected: str,
    fixes: Mapping[str, str] | None = None,
    *,
    plural: str = "them",
) -> list[Any]:
    """Return ``values`` as a list of ``kind`` instances; one bare instance (or str) is one item.

    The same rule everywhere: a single object where a sequence is expected means one item, never
    the sequence of its characters or fields (pydantic objects such as LangChain's ``Document``
    iterate over their fields).

    Args:
        values: One item or a sequence of items.
        name: The argument's name, for messages.
        kind: The accepted type(s).
        expected: What an item must be, in words (``"a LangChain Document"``).
        fixes: How to fix a wrong item, keyed by the top-level package of its type
            (``"llama_index"``, ``"builtins"``...); the key ``""`` applies to any other type.
        plural: How the message names several items (``"a str or a sequence of str"``).

    Raises:
        TypeError: If ``values`` is None or an item is not a ``kind``; the message names the
            position, the type received and, where ``fixes`` knows it, the fix.
    """
    if values is None:
        msg = f"{name} must be {expected} or a sequence of {plural}; got None."
        raise TypeError(msg)
    # A str, or no collection (e.g. one pydantic object, iterable over its fields): one item.
    single = isinstance(values, (kind, str)) or not isinstance(values, (Collection, Iterator))
    items = [values] if single else as_list(values, name)
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            got = type(item)
            package = got.__module__.partition(".")[0]
            fix = (fixes or {}).get(package, (fixes or {}).get("", ""))
            label = got.__qualname__ if package == "builtins" else f"{package}'s {got.__qualname__}"
            msg = f"{name}{'' if single else f'[{i}]'} must be {expected}; got {label}."
            raise TypeError(f"{msg} {fix}".strip())
    return items


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


def as_token_matrices(
    embeddings: Sequence[Any],
    dim: int,
    what: str,
    *,
    max_abs: float | None = None,
    unit: bool = False,
) -> list[np.ndarray]:
    """Convert token matrices (numpy or torch) to float32 and check their shape and values.

    Args:
        embeddings: Matrices of shape ``(n_tokens, dim)``, ``n_tokens >= 1``.
        dim: The index's dimension.
        what: ``"embeddings"`` or ``"query"``, for messages.
        max_abs: Largest absolute value the store can hold (65504 for float16), or None.
        unit: Require unit-norm rows (a compressed store encodes directions only).

    Raises:
        DimensionMismatchError: If a matrix's dim differs from ``dim``.
        ValueError: If a matrix is not 2-D, has no rows, holds NaN/inf, a value beyond
            ``max_abs`` or (``unit``) a row that is not unit-norm.
    """
    return [
        as_token_matrix(emb, dim, f"{what}[{i}]", max_abs=max_abs, unit=unit)
        for i, emb in enumerate(embeddings)
    ]


def storable(storage_dtype: str, nbits: int | None) -> dict[str, Any]:
    """The :func:`as_token_matrix` rules of a store: float16's range, unit rows if compressed."""
    dtype = np.dtype(storage_dtype)
    return {
        "max_abs": float(np.finfo(dtype).max) if dtype == np.float16 else None,
        "unit": nbits is not None,
    }


def float32_matrix(emb: Any) -> np.ndarray:
    """``emb`` (numpy, torch or nested lists) as a float32 array, not checked (a view if it is)."""
    return np.asarray(emb.detach().cpu() if hasattr(emb, "detach") else emb, np.float32)


def as_token_matrix(
    emb: Any, dim: int, name: str, *, max_abs: float | None = None, unit: bool = False
) -> np.ndarray:
    """One matrix of :func:`as_token_matrices` (``name`` as in messages: ``embeddings[3]``)."""
    try:
        matrix = float32_matrix(emb)
    except (TypeError, ValueError) as exc:
        msg = f"{name} must be a numeric (n_tokens, dim) matrix; got {type(emb).__name__} ({exc})."
        raise ValueError(msg) from None
    if matrix.ndim != 2 or matrix.shape[0] < 1:
        msg = f"{name} must be a (n_tokens >= 1, dim) matrix; got shape {matrix.shape}."
        raise ValueError(msg)
    if matrix.shape[1] != dim:
        msg = (
            f"{name} has dim {matrix.shape[1]}; the index holds dim {dim}. "
            "Encode with the index's model."
        )
        raise DimensionMismatchError(msg)
    # Performance note: a compressed store's rows pass one float32 norm pass: unit rows are
    # finite and hold no value beyond 1 + UNIT_TOLERANCE, so the other checks cannot fail.
    # Otherwise max and min (NaN and inf propagate) stand for an isfinite pass and an abs
    # pass, each with its own temporary; the slow paths below only word the error. Before: 0.25
    # us per token for each of add_embeddings' two checks (compressed-inputchecks-*.md).
    norms = None
    if unit:
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
        if bool((np.abs(norms - 1.0) <= UNIT_TOLERANCE).all()):  # False on NaN
            return matrix
    high, low = float(matrix.max()), float(matrix.min())
    if not (np.isfinite(high) and np.isfinite(low)):
        row, col = (int(x) for x in np.argwhere(~np.isfinite(matrix))[0])
        msg = (
            f"{name} holds NaN or infinite values (first at row {row}, column {col}); "
            "a token matrix must be finite: check the encoder output."
        )
        raise ValueError(msg)
    peak = max(high, -low)
    if max_abs is not None and peak > max_abs:
        msg = (
            f"{name} holds a value of magnitude {peak:.6g}; the float16 token store holds at "
            f"most {max_abs:.6g} (larger values would become infinite). Normalise the rows "
            "(ColBERT token vectors are unit-norm) or use IndexConfig(storage_dtype='float32')."
        )
        raise ValueError(msg)
    if norms is not None:
        msg = (
            f"{name} has rows of norm {norms.min():.3g} to {norms.max():.3g}; a compressed "
            "index (IndexConfig.nbits) stores unit-norm token vectors, as ColBERT encoders "
            "produce. Normalise the rows or use nbits=None (the exact store)."
        )
        raise ValueError(msg)
    return matrix


def check_unicode(text: str, name: str) -> str:
    """Return ``text`` if it can be written as UTF-8 (no unpaired surrogates).

    Raises:
        ValueError: Naming the position of the first bad character and how to fix it.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        msg = (
            f"{name} is not valid Unicode: unpaired surrogate {text[exc.start]!r} at character "
            f"{exc.start}; it could not be saved. Decode bytes with errors='replace' (or "
            "remove the surrogate) first."
        )
        raise ValueError(msg) from None
    return text
