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
    """
    return as_items(values, name, str, "a str", {"": "Convert it first."}, plural="str")


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
