"""The direct path to the Rust tokenizer: encodings read straight into tensors.

Why: ``PreTrainedTokenizerFast.__call__`` spends most of its time in Python turning the Rust
encodings into lists and tensors (measured on an H100: tokenisation was ~90% of GPU encoding
time). Reading ids straight from the encodings gives the same arrays several times faster, and
reading only the fields that are not known in advance saves more. ``tokenize.py`` applies the
ColBERT rules on top; ``tests/core/test_tokenize.py`` checks the arrays equal ``__call__``'s.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from late_interaction._encoding.ascii_twin import ascii_twin, split_by_ascii
from late_interaction._encoding.precut import PreCut

if TYPE_CHECKING:  # pragma: no cover
    from late_interaction._encoding.tokenize import TokenRules


@dataclass(frozen=True)
class _Direct:
    """A private copy of the Rust tokenizer, and what is known of its output in advance."""

    tokenizer: Any
    # Every single-text encoding has token type 0 (and pads too): no need to read them.
    zero_type_ids: bool
    # Long texts cut before tokenising, where that changes no kept token (precut.py).
    precut: PreCut
    # A copy with a cheaper normaliser, exact on ASCII texts (ascii_twin.py), or None.
    ascii: Any = None


def _backend(tokenizer: Any, rules: TokenRules, max_length: int) -> _Direct | None:
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
            direct = None
            if has_direct_path(tokenizer):
                from tokenizers import Tokenizer

                backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
                backend.enable_truncation(max_length)
                backend.no_padding()
                # Single-text type ids come from the post-processor's template alone (one id for
                # the text's tokens, one per special token), so one probe shows them all.
                probe = backend.encode("a b")
                zero = not any(probe.type_ids) and not tokenizer.pad_token_type_id
                direct = _Direct(backend, zero, PreCut(backend), ascii_twin(backend))
            rules.backends[max_length] = direct
        return rules.backends[max_length]


def has_direct_path(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` can be read directly: a fast tokenizer with a pad token."""
    return bool(getattr(tokenizer, "is_fast", False)) and tokenizer.pad_token_id is not None


def encodings(tokenizer: Any, rules: TokenRules, texts: list[str], max_length: int) -> Any:
    """Rust encodings of ``texts`` (prepared), truncated to ``max_length``, not padded.

    Returns:
        A list of ``tokenizers.Encoding``, or ``None`` where the tokenizer has no direct path.
    """
    direct = _backend(tokenizer, rules, max_length)
    if direct is None:
        return None
    # encode_batch_fast skips character offsets (~1.4x faster); the ids are the same. The Rust
    # batch encoders run on all cores and release the GIL.
    encode = _batch_encoder(direct.tokenizer)
    if direct.ascii is not None:
        encode = split_by_ascii(encode, _batch_encoder(direct.ascii))
    if direct.precut.enabled:
        return direct.precut.encode(encode, texts, max_length)
    return encode(texts)


def _batch_encoder(backend: Any) -> Any:
    return getattr(backend, "encode_batch_fast", backend.encode_batch)


def reads_type_ids(tokenizer: Any, rules: TokenRules, max_length: int) -> bool:
    """Whether ``columns`` must read token type ids (else they are all zero, or not used)."""
    direct = _backend(tokenizer, rules, max_length)
    uses = "token_type_ids" in tokenizer.model_input_names
    return uses and (direct is None or not direct.zero_type_ids)


def columns(
    tokenizer: Any, batch: Sequence[Any], width: int, *, special: bool = True,
    type_ids: bool = True,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Read Rust encodings as arrays padded to ``width`` (the Rust padding rules).

    Reading a field of an encoding builds a Python list per text: the pipeline skips the fields
    it knows in advance (see the arguments), since this runs for every text encoded.

    Args:
        tokenizer: The Hugging Face tokenizer the encodings come from (padding settings).
        batch: The encodings (unpadded; left as they are).
        width: The padded length.
        special: Read the special-tokens mask (needed only with ``keep_special_tokens=False``).
        type_ids: Read the token type ids; False where ``reads_type_ids`` says they are zero.

    Returns:
        ``input_ids``, ``attention_mask``, ``special_tokens_mask`` (if ``special``) and, where the
        model takes them, ``token_type_ids``: int64 tensors of shape ``(len(batch), width)``.
    """
    sizes = np.fromiter((len(e) for e in batch), dtype=np.int64, count=len(batch))
    # Attention is 1 on a text's own tokens and 0 on padding: known from the lengths.
    positions = np.arange(width)[None, :]
    if tokenizer.padding_side == "left":
        attention = positions >= (width - sizes)[:, None]
    else:
        attention = positions < sizes[:, None]
    total = int(sizes.sum())

    def column(name: str, pad_value: int) -> np.ndarray:
        # Performance note: the Rust padding rules written here (pads get pad_value), not
        # Encoding.pad per text: a boolean-mask assignment fills the rows in order, left or
        # right padded, and skips a Python call per text (~2x faster reading a batch).
        out = np.full((len(batch), width), pad_value, dtype=np.int64)
        flat = itertools.chain.from_iterable(getattr(e, name) for e in batch)
        out[attention] = np.fromiter(flat, dtype=np.int64, count=total)
        return out

    out = {
        "input_ids": column("ids", tokenizer.pad_token_id),
        "attention_mask": attention.astype(np.int64),
    }
    if special:  # padding counts as special, as the Rust padding marks it
        out["special_tokens_mask"] = column("special_tokens_mask", 1)
    if "token_type_ids" in tokenizer.model_input_names:
        pad_type = int(tokenizer.pad_token_type_id or 0)
        zeros = np.zeros((len(batch), width), dtype=np.int64)
        out["token_type_ids"] = column("type_ids", pad_type) if type_ids else zeros
    return out
