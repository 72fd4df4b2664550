"""ColBERT tokenisation rules: markers, query [MASK] expansion, truncation, skiplist.

Why ours and not sentence-transformers' ``Transformer.preprocess``: it prepends the marker as text
(a registered special token), which differs from colbert-ai's id insertion on non-BERT
vocabularies (an unknown marker, a SentencePiece ``▁`` after it); reading ids straight from the
Rust tokenizer (``rust_tokenizer.py``) makes GPU encoding ~1.7x faster than its encode loop
(REFERENCE.md §8.1); and explanations need the same token rows with their character offsets
(``explain.py``).

Faithful to PyLate's ``ColBERT.tokenize``/``encode`` and colbert-ai's ``QueryTokenizer``/
``DocTokenizer`` (REFERENCE.md §2):

* texts are stripped (and lower-cased when the checkpoint's ``Transformer`` module says so), as
  sentence-transformers and PyLate do before tokenising; colbert-ai does not strip, so Stanford
  checkpoints keep their texts as they are (it matters on SentencePiece vocabularies, where
  leading spaces become tokens);
* a text is cut to ``length - 1`` tokens when a marker is used, then the marker id goes in at
  position 1 (after ``[CLS]``/BOS), so the result has at most ``length`` tokens;
* with query expansion, queries are padded to that length with the expansion token (``[MASK]``,
  else EOS, else PAD); the encoder attends to them only if ``attend_to_expansion_tokens``, but
  every position is kept in the output;
* documents drop skiplist token ids (punctuation) and padding after encoding.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from late_interaction._encoding.rust_tokenizer import columns, encodings
from late_interaction.config import EncoderConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenRules:
    """Token ids derived once from a tokenizer and an :class:`EncoderConfig`."""

    query_prefix_id: int | None
    document_prefix_id: int | None
    expansion_id: int
    skiplist: tuple[int, ...]
    do_lower_case: bool
    strip: bool
    # Guards ``backends`` and the ``tokenizer(...)`` fallback: a fast tokenizer's ``__call__``
    # mutates its truncation/padding state, so concurrent calls (queries and documents from two
    # threads) fail with "Already borrowed".
    lock: Any
    # Configured copies of the Rust tokenizer (``_Direct``), keyed by max_length.
    backends: dict[int, Any] = field(default_factory=dict)


def skiplist_ids(tokenizer: Any, words: Sequence[str], rule: str) -> tuple[int, ...]:
    """Token ids dropped from documents.

    Args:
        tokenizer: A Hugging Face tokenizer.
        words: Skiplist words (punctuation symbols by default).
        rule: ``"vocab"``: ``convert_tokens_to_ids(word)`` (PyLate); ``"encode"``: the first id of
            ``encode(word, add_special_tokens=False)`` (colbert-ai, fastembed). Under ``"vocab"``
            a word missing from the vocabulary is skipped (PyLate would map it to ``[UNK]`` and
            drop every unknown token from documents).

    Returns:
        Sorted unique ids.
    """
    ids: set[int] = set()
    unknown = []
    for word in words:
        if rule == "vocab":
            token_id = tokenizer.convert_tokens_to_ids(word)
            if token_id is None or (
                token_id == tokenizer.unk_token_id and word != tokenizer.unk_token
            ):
                unknown.append(word)
                continue
            ids.add(int(token_id))
        else:
            encoded = tokenizer.encode(word, add_special_tokens=False)
            if encoded:
                ids.add(int(encoded[0]))
    if unknown:
        logger.debug("skiplist words not in the vocabulary, ignored: %s", unknown)
    return tuple(sorted(ids))


def build_rules(
    tokenizer: Any, config: EncoderConfig, do_lower_case: bool, *, strip: bool = True
) -> TokenRules:
    """Resolve marker, expansion and skiplist ids for ``config``.

    A marker the vocabulary lacks resolves to the unknown-token id, as colbert-ai resolves its
    ``query_token_id``/``doc_token_id`` (``load.py`` only lets that happen for a Stanford
    checkpoint's own markers).

    Raises:
        ValueError: If query expansion is on but the tokenizer has no mask, EOS or pad token.
    """

    def marker(prefix: str) -> int | None:
        return int(tokenizer.convert_tokens_to_ids(prefix)) if prefix else None

    candidates = (tokenizer.mask_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    expansion = next((c for c in candidates if c is not None), None)
    if expansion is None and config.do_query_expansion:
        msg = (
            "query expansion needs a [MASK], EOS or PAD token, and this tokenizer has none; "
            "pass do_query_expansion=False."
        )
        raise ValueError(msg)
    return TokenRules(
        query_prefix_id=marker(config.query_prefix),
        document_prefix_id=marker(config.document_prefix),
        expansion_id=int(expansion) if expansion is not None else 0,
        skiplist=skiplist_ids(tokenizer, config.skiplist_words, config.skiplist_rule),
        do_lower_case=do_lower_case,
        strip=strip,
        lock=threading.Lock(),
    )


def _insert(column: np.ndarray, value: int | bool) -> np.ndarray:
    fill = np.full((column.shape[0], 1), value, dtype=column.dtype)
    return np.concatenate([column[:, :1], fill, column[:, 1:]], axis=1)


def _encode(
    tokenizer: Any, rules: TokenRules, texts: list[str], max_length: int, pad_to_max: bool
) -> dict[str, np.ndarray]:
    """Tokenise a batch, padded (to its longest text, or to ``max_length``) and truncated.

    Returns:
        ``input_ids``, ``attention_mask``, ``special_tokens_mask`` and, where the model takes
        them, ``token_type_ids``: int64 arrays of shape ``(batch, seq_len)``.
    """
    batch = encodings(tokenizer, rules, texts, max_length)
    if batch is None:
        with rules.lock:  # __call__ mutates the tokenizer's truncation and padding state
            called = dict(
                tokenizer(
                    texts,
                    padding="max_length" if pad_to_max else "longest",
                    truncation=True,
                    max_length=max_length,
                    return_tensors="np",
                    return_special_tokens_mask=True,
                )
            )
        # int64 whatever the platform (numpy < 2 makes int32 arrays on Windows).
        return {name: np.asarray(a, dtype=np.int64) for name, a in called.items()}
    width = max_length if pad_to_max else max((len(e) for e in batch), default=0)
    return columns(tokenizer, batch, width)


def lengths(config: EncoderConfig, rules: TokenRules, is_query: bool) -> tuple[int, bool]:
    """``(max_length, pad_to_max)`` the tokenizer runs with for queries or documents."""
    prefix_id = rules.query_prefix_id if is_query else rules.document_prefix_id
    length = config.query_length if is_query else config.document_length
    max_length = length - 1 if prefix_id is not None else length
    return max_length, is_query and config.do_query_expansion


def prepare(rules: TokenRules, texts: list[str]) -> list[str]:
    """The texts as the tokenizer sees them: stripped and lower-cased where the rules say so."""
    if rules.strip:
        texts = [t.strip() for t in texts]
    if rules.do_lower_case:
        texts = [t.lower() for t in texts]
    return texts


def tokenize(
    tokenizer: Any,
    rules: TokenRules,
    config: EncoderConfig,
    texts: list[str],
    *,
    is_query: bool,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Tokenise a batch following the ColBERT rules.

    Returns:
        ``(features, keep)``: model inputs (``input_ids``, ``attention_mask`` and, if the
        tokenizer makes them, ``token_type_ids``), and a boolean mask of shape
        ``(batch, seq_len)`` marking the positions whose vectors are returned.
    """
    import torch

    features, keep = tokenize_arrays(tokenizer, rules, config, texts, is_query=is_query)
    return {name: torch.from_numpy(a) for name, a in features.items()}, torch.from_numpy(keep)


def tokenize_arrays(
    tokenizer: Any,
    rules: TokenRules,
    config: EncoderConfig,
    texts: list[str],
    *,
    is_query: bool,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """:func:`tokenize` as numpy arrays (for code that must not import torch)."""
    max_length, pad_to_max = lengths(config, rules, is_query)
    encoded = _encode(tokenizer, rules, prepare(rules, texts), max_length, pad_to_max)
    return with_rules(encoded, rules, config, is_query=is_query)


def with_rules(
    encoded: dict[str, np.ndarray], rules: TokenRules, config: EncoderConfig, *, is_query: bool
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Apply marker, expansion, skiplist and special-token rules to a tokenised batch.

    Args:
        encoded: ``_encode``'s or ``columns``' output for the prepared texts.
        rules: The token ids of the rules.
        config: The settings in effect.
        is_query: Apply the query rules (else the document rules).

    Returns:
        ``(features, keep)`` as :func:`tokenize`, as numpy arrays (no torch here: this also runs
        in tokenizer processes, ``tokenizer_worker.py``, which do not import it).
    """
    # numpy, not torch: this runs in the pipeline's tokenising thread, where torch's thread pool
    # made these small operations ~100x slower when the cores were busy (the Rust tokenizer's).
    prefix_id = rules.query_prefix_id if is_query else rules.document_prefix_id
    expand = is_query and config.do_query_expansion
    arrays = {name: np.asarray(value) for name, value in encoded.items()}
    ids, attention = arrays["input_ids"], arrays["attention_mask"]
    real = attention.astype(bool)
    if expand:  # PyLate pads queries with the mask token; colbert-ai replaces pads by [MASK]
        ids = np.where(real, ids, rules.expansion_id)
    special = None if config.keep_special_tokens else arrays["special_tokens_mask"].astype(bool)
    features = {"input_ids": ids, "attention_mask": attention}
    if "token_type_ids" in arrays:
        features["token_type_ids"] = arrays["token_type_ids"]
    if prefix_id is not None:
        features["input_ids"] = _insert(ids, prefix_id)
        features["attention_mask"] = _insert(attention, 1)
        if "token_type_ids" in features:
            features["token_type_ids"] = _insert(features["token_type_ids"], 0)
        real = _insert(real, True)
        if special is not None:
            special = _insert(special, False)
    keep = np.ones_like(real) if expand else real.copy()
    if not is_query and rules.skiplist:
        keep &= ~np.isin(features["input_ids"], rules.skiplist)
    if special is not None:
        keep &= ~(special & real)
    if is_query and config.attend_to_expansion_tokens and expand:
        features["attention_mask"] = np.ones_like(features["attention_mask"])
    # Every text keeps at least one vector (MaxSim needs one): if the filters removed them all
    # (an empty or punctuation-only text with keep_special_tokens=False), keep position 0.
    empty = ~keep.any(axis=1)
    if empty.any():
        keep[empty, 0] = True
    return {name: np.ascontiguousarray(a) for name, a in features.items()}, keep
