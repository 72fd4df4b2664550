"""Groups of texts to padded batches of numpy arrays: the tokenising half of ``batches.py``.

Within a group the texts are tokenised together (one call of the Rust tokenizer, which runs on
all cores) and sorted by token count before being cut into batches, so each batch pads to nearly
its own length. Character counts alone left 5-27% of a batch as padding on SciFact at 256-512
tokens; this leaves 1-8%.

Why a module of its own, without torch: the same code runs in tokenizer processes
(``tokenizer_process.py``), which start in a fraction of a second because they import neither
torch nor transformers. ``batches.py`` turns these arrays into the pipeline's ``Batch``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from late_interaction._encoding import rust_tokenizer as _rust
from late_interaction._encoding import tokenize as _tokenize
from late_interaction._encoding.prefetch import Prefetch
from late_interaction.config import EncoderConfig

GROUP_BATCHES = 4  # batches per tokenizer call and token-count sort


def arrays_of(
    tokenizer: Any,
    rules: _tokenize.TokenRules,
    config: EncoderConfig,
    source: Iterable[tuple[np.ndarray, list[str]]],
    *,
    is_query: bool,
    batch_size: int,
    ahead: bool = True,
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
    """The batches of groups as ``source`` yields them, as arrays: ``(index, features, keep)``.

    Args:
        tokenizer: The Hugging Face tokenizer.
        rules: The ColBERT token rules.
        config: The settings in effect.
        source: ``(positions, texts)`` per group: the batches' ``index`` are those positions.
        is_query: Apply the query rules (else the document rules).
        batch_size: Texts per batch.
        ahead: Run the Rust tokenizer one group ahead in a thread (else all in this one).
    """
    max_length, _ = _tokenize.lengths(config, rules, is_query)
    read = {
        "special": not config.keep_special_tokens,
        "type_ids": _rust.reads_type_ids(tokenizer, rules, max_length),
    }

    def tokenised() -> Iterator[tuple[np.ndarray, list[str], Any]]:
        for group, raw in source:
            prepared = _tokenize.prepare(rules, raw)
            yield group, raw, _rust.encodings(tokenizer, rules, prepared, max_length)

    # Performance note: the Rust tokenizer (all cores, GIL released) runs one group ahead in its
    # own thread while this one reads the previous group's encodings in Python. With the
    # cheaper reads of rust_tokenizer.columns and precut.py, tokenising alone went from 0.9 to
    # 0.6 s for 10k SciFact passages on a 16-core GPU host, and end-to-end GPU encoding 1.5M ->
    # 2.0M tokens/s (benchmarks/results/gpu-tokenize-h200-20261130-1037.md).
    with (
        Prefetch(tokenised(), depth=1, name="late-interaction-tokenize")
        if ahead
        else contextlib.nullcontext(tokenised())
    ) as tokens:
        yield from _arrays(tokenizer, rules, config, tokens, is_query, batch_size, read)


def _arrays(
    tokenizer: Any,
    rules: _tokenize.TokenRules,
    config: EncoderConfig,
    source: Iterable[tuple[np.ndarray, list[str], Any]],
    is_query: bool,
    batch_size: int,
    read: dict[str, bool],
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
    """The batches of tokenised groups (``arrays_of``' second half)."""
    max_length, pad_to_max = _tokenize.lengths(config, rules, is_query)
    for group, raw, encodings in source:
        if encodings is None:  # no direct Rust path: batches in character order
            for start in range(0, len(group), batch_size):
                part = slice(start, start + batch_size)
                features, keep = _tokenize.tokenize_arrays(
                    tokenizer, rules, config, raw[part], is_query=is_query
                )
                yield group[part], features, keep
            continue
        sizes = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-sizes, kind="stable")
        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            width = max_length if pad_to_max else int(sizes[part].max())
            encoded = _rust.columns(tokenizer, [encodings[j] for j in part], width, **read)
            features, keep = _tokenize.with_rules(encoded, rules, config, is_query=is_query)
            yield group[part], features, keep
