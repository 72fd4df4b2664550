"""The direct Rust-tokenizer path must give exactly what ``tokenizer(...)`` gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from late_interaction._encoding import tokenize as _tokenize

TEXTS = [
    "",
    "   ",
    "Short one.",
    "A much longer sentence, with punctuation; numbers 12345 and UPPER case Words! " * 40,
    "naïve café — ünïcödé ✓ 東京",
]


MODELS = ["tiny_pylate_model", "tiny_stanford_model", "default_model"]


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("pad_to_max", [False, True])
def test_direct_path_equals_transformers_call(request, model_name, pad_to_max):
    model = request.getfixturevalue(model_name)
    tokenizer, rules = model._pipeline.tokenizer, model._pipeline.rules
    max_length = 24
    fast = _tokenize._encode(tokenizer, rules, TEXTS, max_length, pad_to_max)
    assert rules.backends[max_length] is not None  # the direct path was taken
    reference = tokenizer(
        TEXTS,
        padding="max_length" if pad_to_max else "longest",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
        return_special_tokens_mask=True,
    )
    assert set(fast) == set(reference)
    for name, tensor in reference.items():
        assert torch.equal(torch.from_numpy(fast[name]), tensor), name
    assert fast["input_ids"].shape[1] == (max_length if pad_to_max else fast["input_ids"].shape[1])
    assert fast["input_ids"].shape[1] <= max_length


def test_direct_path_leaves_the_users_tokenizer_untouched(tiny_pylate_model):
    tokenizer = tiny_pylate_model._pipeline.tokenizer
    before = (tokenizer.backend_tokenizer.truncation, tokenizer.backend_tokenizer.padding)
    tiny_pylate_model.encode_documents(["some text to encode"])
    assert (tokenizer.backend_tokenizer.truncation, tokenizer.backend_tokenizer.padding) == before


# --- cutting long texts before tokenising (precut.py) -----------------------------------------

PIECES = [
    "the", "Cat", "sat", "internationalization", "[Q]", "[q] ", "[Q] ", "[D] ", "[MASK]", "东京",
    "naïve", "ΣΊΣΥΦΟΣ", "x", ",", "...", "!!", "12345", "\t", "\n", "  ", "\x00", "café", "a-b",
]  # fmt: skip


def _random_texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        words = rng.choice(PIECES, size=int(rng.integers(0, 120)))
        texts.append(" ".join(words))
    return texts


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("max_length", [8, 24])
def test_cut_texts_tokenise_to_the_whole_texts_tokens(request, model_name, max_length):
    from late_interaction._encoding import rust_tokenizer as _rust

    model = request.getfixturevalue(model_name)
    tokenizer, rules = model._pipeline.tokenizer, model._pipeline.rules
    texts = _tokenize.prepare(rules, _random_texts(300, seed=max_length))
    direct = _rust._backend(tokenizer, rules, max_length)
    assert direct.precut.enabled  # BERT normaliser and pre-tokenizer
    _, cut = direct.precut.cut(texts, max_length)
    assert len(cut) > 50  # the cut path is taken (and learns its length on the way)
    for _ in range(3):
        got = _rust.encodings(tokenizer, rules, texts, max_length)
        whole = direct.tokenizer.encode_batch(texts)  # the same tokenizer, texts not cut
        for a, b in zip(got, whole, strict=True):
            assert (a.ids, a.special_tokens_mask, a.type_ids) == (
                b.ids, b.special_tokens_mask, b.type_ids
            )  # fmt: skip


def test_a_cut_text_that_fills_the_length_exactly_is_not_tokenised_again(tiny_pylate_model):
    from late_interaction._encoding import rust_tokenizer as _rust

    tokenizer, rules = tiny_pylate_model._pipeline.tokenizer, tiny_pylate_model._pipeline.rules
    max_length = 10
    direct = _rust._backend(tokenizer, rules, max_length)
    kept = max_length - 2  # [CLS] and [SEP]
    text = "the " * 50  # one token per word, a space every 4 characters
    assert len(direct.tokenizer.encode("the the", add_special_tokens=False)) == 2
    direct.precut._chars_per_token = (4 * kept + 1) / max_length  # cut right after word `kept`
    calls = []

    def encode(batch):
        calls.append(list(batch))
        return direct.tokenizer.encode_batch(batch)

    got = direct.precut.encode(encode, [text], max_length)
    assert calls[0][0].split() == ["the"] * kept  # cut, and the cut text fills the length
    assert len(calls) == 1  # not tokenised again
    whole = direct.tokenizer.encode(text)
    assert (got[0].ids, got[0].special_tokens_mask) == (whole.ids, whole.special_tokens_mask)


def test_no_cut_next_to_a_marker_with_a_space(tiny_pylate_model):
    from late_interaction._encoding import rust_tokenizer as _rust

    tokenizer, rules = tiny_pylate_model._pipeline.tokenizer, tiny_pylate_model._pipeline.rules
    direct = _rust._backend(tokenizer, rules, 8)
    plain = "word " * 200
    at = plain.rfind(" ", 0, int(8 * direct.precut._chars_per_token))
    near = plain[: at - 3] + "[q] " + plain[at + 1 :]  # "[Q] " would match across the cut
    _, cut = direct.precut.cut([plain, near], 8)
    assert 0 in cut and 1 not in cut
