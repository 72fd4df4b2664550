"""The ASCII twin (cheaper normaliser) must give the original tokenizer's ids on ASCII texts."""

from __future__ import annotations

import numpy as np
import pytest

from late_interaction._encoding import rust_tokenizer as _rust
from late_interaction._encoding.ascii_twin import ascii_twin, split_by_ascii

MODELS = ["tiny_pylate_model", "tiny_stanford_model", "default_model"]
WORDS = [
    "the", "Cat", "SAT", "internationalization", "[Q]", "[Q] ", "[D] ", "[MASK]", "[CLS]", "x",
    ",", "...", "!!", "12345", "a-b", "Don't", "e.g.", "(1)", "C++", "~/path", "a" * 120,
]  # fmt: skip


def _ascii_texts(n: int, seed: int) -> list[str]:
    """Words and single characters drawn from all 128 ASCII code points, controls included."""
    rng = np.random.default_rng(seed)
    chars = [chr(c) for c in range(128)]
    texts = []
    for _ in range(n):
        parts = [
            str(rng.choice(WORDS)) if rng.random() < 0.6 else str(rng.choice(chars))
            for _ in range(int(rng.integers(0, 60)))
        ]
        sep = str(rng.choice([" ", "", "\t", "\n", "\r\n", "\x0b", "\x1f"]))
        texts.append(sep.join(parts))
    return texts


def _same(a, b) -> bool:
    fields = ("ids", "special_tokens_mask", "type_ids")
    return all(getattr(a, f) == getattr(b, f) for f in fields) and len(a.overflowing) == len(
        b.overflowing
    )


@pytest.mark.parametrize("model_name", MODELS)
def test_twin_gives_the_original_ids_on_every_ascii_character_and_random_ascii_texts(
    request, model_name
):
    model = request.getfixturevalue(model_name)
    tokenizer, rules = model._pipeline.tokenizer, model._pipeline.rules
    direct = _rust._backend(tokenizer, rules, 16)
    assert direct.ascii is not None  # BERT's normaliser: the twin exists
    singles = [f"{a}{chr(c)}{b}" for c in range(128) for a, b in [("", ""), ("a", "B"), (" ", " ")]]
    texts = singles + _ascii_texts(400, seed=0)
    assert all(t.isascii() for t in texts)
    twin = direct.ascii.encode_batch(texts)
    original = direct.tokenizer.encode_batch(texts)
    different = [t for t, a, b in zip(texts, twin, original, strict=True) if not _same(a, b)]
    assert different == []


def test_cased_bert_normaliser_keeps_case_in_the_twin(tiny_pylate_model):
    from tokenizers import Tokenizer, normalizers

    direct = _rust._backend(
        tiny_pylate_model._pipeline.tokenizer, tiny_pylate_model._pipeline.rules, 16
    )
    cased = Tokenizer.from_str(direct.tokenizer.to_str())
    cased.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    twin = ascii_twin(cased)
    texts = _ascii_texts(300, seed=1)
    twin_ids = [e.ids for e in twin.encode_batch(texts)]
    assert twin_ids == [e.ids for e in cased.encode_batch(texts)]
    # Case matters to this vocabulary here: a lower-casing twin would have differed.
    lowered = [e.ids for e in direct.tokenizer.encode_batch(texts)]
    assert twin_ids != lowered


def test_no_twin_for_other_normalisers(tiny_pylate_model):
    from tokenizers import Tokenizer, normalizers

    direct = _rust._backend(
        tiny_pylate_model._pipeline.tokenizer, tiny_pylate_model._pipeline.rules, 16
    )
    other = Tokenizer.from_str(direct.tokenizer.to_str())
    other.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    assert ascii_twin(other) is None
    other.normalizer = None
    assert ascii_twin(other) is None


def test_split_sends_ascii_texts_to_the_twin_and_keeps_the_order():
    calls = {"original": [], "twin": []}

    def encoder(name):
        def encode(batch):
            calls[name].append(list(batch))
            return [f"{name}:{t}" for t in batch]

        return encode

    split = split_by_ascii(encoder("original"), encoder("twin"))
    texts = ["a", "é", "b c", "東京", "d"]
    assert split(texts) == ["twin:a", "original:é", "twin:b c", "original:東京", "twin:d"]
    assert calls == {"original": [["é", "東京"]], "twin": [["a", "b c", "d"]]}
    assert split(["x", "y"]) == ["twin:x", "twin:y"]
    assert split(["ü"]) == ["original:ü"]
    assert split([]) == []
