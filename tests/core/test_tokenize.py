"""The direct Rust-tokenizer path must give exactly what ``tokenizer(...)`` gives."""

from __future__ import annotations

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
        assert torch.equal(fast[name], tensor), name
    assert fast["input_ids"].shape[1] == (max_length if pad_to_max else fast["input_ids"].shape[1])
    assert fast["input_ids"].shape[1] <= max_length


def test_direct_path_leaves_the_users_tokenizer_untouched(tiny_pylate_model):
    tokenizer = tiny_pylate_model._pipeline.tokenizer
    before = (tokenizer.backend_tokenizer.truncation, tokenizer.backend_tokenizer.padding)
    tiny_pylate_model.encode_documents(["some text to encode"])
    assert (tokenizer.backend_tokenizer.truncation, tokenizer.backend_tokenizer.padding) == before
