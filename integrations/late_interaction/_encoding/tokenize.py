"""ColBERT tokenisation rules: markers, query [MASK] expansion, truncation, skiplist.

Why ours and not sentence-transformers' ``Transformer.preprocess``: it prepends the marker as text
(a registered special token), which differs from colbert-ai's id insertion on non-BERT
vocabularies (an unknown marker, a SentencePiece ``▁`` after it); reading ids straight from the
Rust tokenizer (``_backend``) makes GPU encoding ~1.7x faster than its encode loop (REFERENCE.md
§8.1); and explanations need the same token rows with their character offsets (``explain.py``).

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
from typing import Any

import numpy as np
import torch

from late_interaction.config import EncoderConfig

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
    # Configured copies of the Rust tokenizer, keyed by max_length.
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


def _insert(column: torch.Tensor, value: int | bool) -> torch.Tensor:
    fill = torch.full((column.shape[0], 1), value, dtype=column.dtype)
    return torch.cat([column[:, :1], fill, column[:, 1:]], dim=1)


def _backend(tokenizer: Any, rules: TokenRules, max_length: int) -> Any:
    """A private copy of the Rust tokenizer, truncating to ``max_length``, or ``None``.

    Why: ``PreTrainedTokenizerFast.__call__`` spends most of its time in Python turning the Rust
    encodings into lists and tensors (measured on an H100: tokenisation was ~90% of GPU encoding
    time). Reading ids straight from the encodings gives the same arrays several times faster.
    The copy does not pad: each batch is padded to its own longest text (``columns``), after the
    pipeline has grouped texts of similar token counts. Its settings never change after it is
    made, so threads may encode with it at once. Slow (Python) tokenizers and tokenizers without
    a pad token keep the ``__call__`` path.
    """
    with rules.lock:
        if max_length not in rules.backends:
            backend = None
            if getattr(tokenizer, "is_fast", False) and tokenizer.pad_token_id is not None:
                from tokenizers import Tokenizer

                backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
                backend.enable_truncation(max_length)
                backend.no_padding()
            rules.backends[max_length] = backend
        return rules.backends[max_length]


def encodings(tokenizer: Any, rules: TokenRules, texts: list[str], max_length: int) -> Any:
    """Rust encodings of ``texts`` (prepared), truncated to ``max_length``, not padded.

    Returns:
        A list of ``tokenizers.Encoding``, or ``None`` where the tokenizer has no direct path.
    """
    backend = _backend(tokenizer, rules, max_length)
    if backend is None:
        return None
    # encode_batch_fast skips character offsets (~1.4x faster); the ids are the same. The Rust
    # batch encoders run on all cores and release the GIL.
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return encode(texts)


def columns(tokenizer: Any, batch: Sequence[Any], width: int) -> dict[str, torch.Tensor]:
    """Pad Rust encodings to ``width`` (the Rust padding rules) and read them as tensors.

    Returns:
        ``input_ids``, ``attention_mask``, ``special_tokens_mask`` and, where the model takes
        them, ``token_type_ids``: int64 tensors of shape ``(len(batch), width)``.
    """
    pad = {
        "direction": tokenizer.padding_side,
        "pad_id": tokenizer.pad_token_id,
        "pad_type_id": tokenizer.pad_token_type_id,
        "pad_token": tokenizer.pad_token,
    }
    for encoding in batch:  # in place: these encodings are the pipeline's own
        encoding.pad(width, **pad)

    def column(name: str) -> torch.Tensor:
        rows = [getattr(e, name) for e in batch]
        return torch.from_numpy(np.array(rows, dtype=np.int64).reshape(len(rows), width))

    out = {
        "input_ids": column("ids"),
        "attention_mask": column("attention_mask"),
        "special_tokens_mask": column("special_tokens_mask"),
    }
    if "token_type_ids" in tokenizer.model_input_names:
        out["token_type_ids"] = column("type_ids")
    return out


def _encode(
    tokenizer: Any, rules: TokenRules, texts: list[str], max_length: int, pad_to_max: bool
) -> dict[str, torch.Tensor]:
    """Tokenise a batch, padded (to its longest text, or to ``max_length``) and truncated.

    Returns:
        ``input_ids``, ``attention_mask``, ``special_tokens_mask`` and, where the model takes
        them, ``token_type_ids``: int64 tensors of shape ``(batch, seq_len)``.
    """
    batch = encodings(tokenizer, rules, texts, max_length)
    if batch is None:
        with rules.lock:  # __call__ mutates the tokenizer's truncation and padding state
            return dict(
                tokenizer(
                    texts,
                    padding="max_length" if pad_to_max else "longest",
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                    return_special_tokens_mask=True,
                )
            )
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
    max_length, pad_to_max = lengths(config, rules, is_query)
    encoded = _encode(tokenizer, rules, prepare(rules, texts), max_length, pad_to_max)
    return with_rules(encoded, rules, config, is_query=is_query)


def with_rules(
    encoded: dict[str, torch.Tensor], rules: TokenRules, config: EncoderConfig, *, is_query: bool
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Apply marker, expansion, skiplist and special-token rules to a tokenised batch.

    Args:
        encoded: ``_encode``'s or ``columns``' output for the prepared texts.
        rules: The token ids of the rules.
        config: The settings in effect.
        is_query: Apply the query rules (else the document rules).

    Returns:
        ``(features, keep)`` as :func:`tokenize`.
    """
    prefix_id = rules.query_prefix_id if is_query else rules.document_prefix_id
    expand = is_query and config.do_query_expansion
    ids = encoded["input_ids"]
    real = encoded["attention_mask"].bool()
    attention = encoded["attention_mask"]
    if expand:  # PyLate pads queries with the mask token; colbert-ai replaces pads by [MASK]
        ids = ids.masked_fill(~real, rules.expansion_id)
    special = None if config.keep_special_tokens else encoded["special_tokens_mask"]
    features = {"input_ids": ids, "attention_mask": attention}
    if "token_type_ids" in encoded:
        features["token_type_ids"] = encoded["token_type_ids"]
    if prefix_id is not None:
        features["input_ids"] = _insert(ids, prefix_id)
        features["attention_mask"] = _insert(attention, 1)
        if "token_type_ids" in features:
            features["token_type_ids"] = _insert(features["token_type_ids"], 0)
        real = _insert(real, True)
        if special is not None:
            special = _insert(special, 0)
    keep = torch.ones_like(real) if expand else real.clone()
    if not is_query and rules.skiplist:
        keep &= ~torch.isin(features["input_ids"], torch.tensor(rules.skiplist))
    if special is not None:
        keep &= ~(special.bool() & real)
    if is_query and config.attend_to_expansion_tokens and expand:
        features["attention_mask"] = torch.ones_like(features["attention_mask"])
    # Every text keeps at least one vector (MaxSim needs one): if the filters removed them all
    # (an empty or punctuation-only text with keep_special_tokens=False), keep position 0.
    empty = ~keep.any(dim=1)
    if bool(empty.any()):
        keep[empty, 0] = True
    return features, keep
