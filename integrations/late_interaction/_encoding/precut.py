"""Cut long texts before the tokenizer sees them, where that provably changes no kept token.

Why: a document is truncated to ``document_length`` tokens, but the Rust tokenizer tokenises the
whole text first. On SciFact (241 tokens on average, cut to 179) a third of its time went to
tokens that were thrown away, and on a GPU the tokenizer sets the pace. Cutting a text at a
space some way past where its last kept token should end saves that work.

Why it is exact, and when it is used at all: with a normaliser that maps characters one by one
(``BertNormalizer``, lower-casing, Unicode normal forms, accent stripping) and a pre-tokenizer
that splits at whitespace (BERT's, ``Whitespace``, ``WhitespaceSplit``, with ``Punctuation`` or
``Digits``), each word is tokenised on its own, so a text cut at a space tokenises to a prefix
of the whole text's tokens. Two checks make that prefix long enough and untouched:

* the cut text must still fill the truncation length (then its kept tokens are the whole
  text's: every word before the cut is tokenised whole); if it does not, the whole text is
  tokenised instead;
* an added token containing whitespace (PyLate's ``"[Q] "``/``"[D] "`` markers) could match
  across the cut; a text with such a token's visible part near the cut is not cut.

Any other tokenizer (byte-level BPE, SentencePiece without whitespace splitting, custom
normalisers) is never cut. How far past the end to cut is learned from the texts: 1.3x the 95th
percentile of characters per token seen so far, starting at 8.
"""

from __future__ import annotations

import json
import threading
import unicodedata
from typing import Any

import numpy as np

_NORMALIZERS = {
    *("BertNormalizer", "Lowercase", "StripAccents", "Strip"),
    *("NFC", "NFD", "NFKC", "NFKD"),
}
_SPLITTERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}
_LOCAL_PRE = _SPLITTERS | {"Punctuation", "Digits"}
_START_CHARS_PER_TOKEN = 8.0
_HEADROOM = 1.3
_RATIO_SAMPLE = 64  # cut texts per call whose characters per token are read


def _members(node: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    if node is None:
        return []
    return list(node.get(key) or []) if node.get("type") == "Sequence" else [node]


def _fold(text: str) -> str:
    """Casefold, strip accents and drop invisible characters: what a normaliser might do."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(
        c for c in decomposed if not unicodedata.combining(c) and (c.isprintable() or c.isspace())
    )


class PreCut:
    """The cutting rule of one Rust tokenizer (see the module docstring).

    Args:
        backend: A ``tokenizers.Tokenizer``.
    """

    def __init__(self, backend: Any) -> None:
        spec = json.loads(backend.to_str())
        norms = _members(spec.get("normalizer"), "normalizers")
        pres = _members(spec.get("pre_tokenizer"), "pretokenizers")
        self.enabled = (
            all(n.get("type") in _NORMALIZERS for n in norms)
            and any(p.get("type") in _SPLITTERS for p in pres)
            and all(p.get("type") in _LOCAL_PRE for p in pres)
        )
        spaced = [a["content"] for a in spec.get("added_tokens", []) if _has_space(a["content"])]
        self._markers = [_fold(t).strip() for t in spaced]
        self._reach = max((len(t) for t in spaced), default=0) + 2
        self._n_special = int(backend.num_special_tokens_to_add(False))
        self._chars_per_token = _START_CHARS_PER_TOKEN
        self._lock = threading.Lock()  # the estimate, when two threads tokenise at once

    def _near_marker(self, text: str, at: int) -> bool:
        if not self._markers:
            return False
        window = _fold(text[max(0, at - self._reach) : at + self._reach])
        return any(marker in window for marker in self._markers)

    def cut(self, texts: list[str], max_length: int) -> tuple[list[str], dict[int, int]]:
        """``(inputs, cut)``: the texts to tokenise, and where each cut text was cut."""
        limit = int(max_length * self._chars_per_token)
        inputs, cut = list(texts), {}
        for i, text in enumerate(texts):
            if len(text) > limit:
                at = text.rfind(" ", 0, limit)
                if at > 0 and not self._near_marker(text, at):
                    inputs[i], cut[i] = text[:at], at
        return inputs, cut

    def encode(self, encode: Any, texts: list[str], max_length: int) -> list[Any]:
        """``encode(texts)`` (a Rust batch encoder truncating to ``max_length``), cutting first."""
        inputs, cut = self.cut(texts, max_length)
        out = encode(inputs)
        if not cut:
            return out
        kept = max_length - self._n_special
        redo, ratios = [], []
        for i, at in cut.items():
            if len(out[i]) < max_length:  # the cut text fits: tokens were lost, so redo it
                redo.append(i)
            elif len(ratios) < _RATIO_SAMPLE:
                # Performance note: reading ``overflowing`` builds Python objects (~25 us a
                # text, as much as the rest of the pipeline's Python); a sample learns as well.
                dropped = sum(len(o) - self._n_special for o in out[i].overflowing)
                ratios.append(at / (kept + dropped))
        if redo:
            for i, encoding in zip(redo, encode([texts[i] for i in redo]), strict=True):
                out[i] = encoding
        with self._lock:
            if ratios:
                estimate = _HEADROOM * float(np.percentile(ratios, 95))
                self._chars_per_token = max(estimate, 1.0)
            if len(redo) > 0.05 * len(cut):  # cut too short too often: cut later
                self._chars_per_token *= 1.5
        return out


def _has_space(text: str) -> bool:
    return any(c.isspace() for c in text)
