"""A cheaper normaliser for ASCII texts: the same token ids as BERT's, a faster tokenizer.

Why: ``BertNormalizer`` does Unicode work on every character (accent stripping through NFD,
spacing around CJK characters, control-character tests by Unicode category) with alignment
tracking. On a text made only of ASCII characters all of it reduces to three steps the Rust
library also offers: drop control characters, turn tab, newline and carriage return into spaces,
lower-case. On a GPU the tokenizer sets the pace of encoding small models: with a copy of the
tokenizer using those three steps for ASCII texts, tokenising SciFact (80% ASCII) on the H200
host's 16 cores went from 5.13M to 5.80M tokens/s, and bfloat16 encoding end to end from
2.04-2.09M to 2.24-2.29M (``benchmarks/results/gpu-asciitwin-h200-20261130-1227.md``). Texts
with any other character keep the original tokenizer. ``tests/core/test_ascii_twin.py`` checks
equal ids against the original on every ASCII character and on random ASCII texts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# BertNormalizer(clean_text=True) drops NUL, U+FFFD and Unicode "Other" characters except tab,
# newline and carriage return, which (with other whitespace) become a space. In ASCII the
# "Other" characters are the C0 controls and DEL; the whitespace among what is left is those
# three and the space itself.
_ASCII_CONTROL = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]"
_ASCII_SPACING = "[\\t\\n\\r]"

Encode = Callable[[list[str]], list[Any]]


def ascii_twin(backend: Any) -> Any | None:
    """A copy of ``backend`` whose normaliser is exact on ASCII texts, or ``None``.

    Args:
        backend: A ``tokenizers.Tokenizer`` (its truncation and padding settings are copied).

    Returns:
        The copy, where the normaliser is a lone ``BertNormalizer``; else ``None`` (no gain
        known, or no equivalent: any other normaliser keeps the original for every text).
    """
    from tokenizers import Regex, Tokenizer, normalizers

    spec = json.loads(backend.to_str())
    norm = spec.get("normalizer")
    if not norm or norm.get("type") != "BertNormalizer":
        return None
    # Accent stripping and CJK spacing change no ASCII character, whatever their settings.
    steps: list[Any] = []
    if norm.get("clean_text", True):
        steps.append(normalizers.Replace(Regex(_ASCII_CONTROL), ""))
        steps.append(normalizers.Replace(Regex(_ASCII_SPACING), " "))
    if norm.get("lowercase", True):
        steps.append(normalizers.Lowercase())
    twin = Tokenizer.from_str(backend.to_str())
    twin.normalizer = normalizers.Sequence(steps)
    return twin


def split_by_ascii(encode: Encode, encode_ascii: Encode) -> Encode:
    """A batch encoder sending ASCII texts to ``encode_ascii`` and the rest to ``encode``.

    Args:
        encode: The original tokenizer's batch encoder.
        encode_ascii: The twin's batch encoder (same truncation, same ids on ASCII texts).

    Returns:
        A function of a list of texts returning their encodings in order.
    """

    def split(texts: list[str]) -> list[Any]:
        # str.isascii reads a flag CPython keeps per string: free next to tokenising.
        flags = [text.isascii() for text in texts]
        n_ascii = sum(flags)
        if n_ascii == len(texts):
            return encode_ascii(texts)
        if n_ascii == 0:
            return encode(texts)
        out: list[Any] = [None] * len(texts)
        ascii_at = [i for i, flag in enumerate(flags) if flag]
        other_at = [i for i, flag in enumerate(flags) if not flag]
        for at, batch in ((ascii_at, encode_ascii), (other_at, encode)):
            for i, encoding in zip(at, batch([texts[i] for i in at]), strict=True):
                out[i] = encoding
        return out

    return split
