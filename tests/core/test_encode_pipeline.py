"""The encoding loop: background tokenisation, token-count batches, one copy per batch.

References are independent of the loop under test: each text encoded alone (one batch of one,
tokenised in the calling thread), and the tokenizer's own token counts.
"""

from __future__ import annotations

import threading
from typing import ClassVar

import numpy as np
import pytest
import torch

from late_interaction._encoding import batch_source as _batch_source
from late_interaction._encoding import batches as _batches
from late_interaction._encoding import rust_tokenizer as _rust
from late_interaction._encoding import tokenize as _tokenize
from late_interaction._encoding.prefetch import Prefetch

# Character order differs from token order: long words split into many pieces, short ones not.
TEXTS = [
    "a b c d e f g h i j k l m n o p",
    "antidisestablishmentarianism pneumonoultramicroscopic",
    "",
    "the cat sat on the mat, fast!",
    "x" * 3,
    "supercalifragilistic expialidocious " * 3,
    "one two three four five six seven eight nine ten eleven twelve",
    "cats",
    "   spaced   out   ",
    "punctuation... only!!!",
    "a",
]


def _prefetch_threads() -> list[threading.Thread]:
    names = ("late-interaction-prefetch", "late-interaction-tokenize")
    return [t for t in threading.enumerate() if t.name.startswith(names)]


class _Recorded(Prefetch):
    """Prefetch that records its instances, to show the threaded path was taken."""

    made: ClassVar[list[Prefetch]] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _Recorded.made.append(self)


@pytest.fixture
def recorded(monkeypatch):
    _Recorded.made = []
    monkeypatch.setattr(_batch_source, "Prefetch", _Recorded)
    return _Recorded.made


@pytest.mark.parametrize("is_query", [False, True])
def test_threaded_batches_equal_each_text_alone(tiny_pylate_model, recorded, is_query):
    pipe = tiny_pylate_model._pipeline
    alone = [pipe.encode([t], is_query, 1, False) for t in TEXTS]
    matrices, dense = pipe.encode(TEXTS, is_query, 2, False)  # 6 batches, 2 groups
    assert len(recorded) == 1  # the background thread ran
    for (ref, ref_dense), got, got_dense in zip(alone, matrices, dense, strict=True):
        assert got.dtype == np.float32 and got.shape == ref[0].shape
        np.testing.assert_allclose(got, ref[0], atol=1e-5)
        np.testing.assert_allclose(got_dense, ref_dense[0], atol=1e-5)
    assert _prefetch_threads() == []


def test_as_tensors_equal_numpy(tiny_pylate_model):
    pipe = tiny_pylate_model._pipeline
    matrices, dense = pipe.encode(TEXTS, False, 3, False)
    tensors, dense_t = pipe.encode(TEXTS, False, 3, False, as_tensors=True)
    assert isinstance(dense_t, torch.Tensor) and dense_t.device == pipe.device
    np.testing.assert_array_equal(dense_t.numpy(), dense)
    for array, tensor in zip(matrices, tensors, strict=True):
        assert isinstance(tensor, torch.Tensor)
        np.testing.assert_array_equal(tensor.numpy(), array)


def test_batches_are_sorted_and_padded_by_token_count(tiny_pylate_model):
    pipe = tiny_pylate_model._pipeline
    max_length, _ = _tokenize.lengths(pipe.config, pipe.rules, False)
    prepared = _tokenize.prepare(pipe.rules, TEXTS)
    # The reference count: the tokenizer's own call, text by text.
    counts = [
        len(pipe.tokenizer(t, truncation=True, max_length=max_length)["input_ids"])
        for t in prepared
    ]
    groups = _batches.plan_groups(TEXTS, 3)
    assert [len(g) for g in groups] == [11]  # one group of four batches of three
    made = list(
        _batches.make_batches(
            pipe.tokenizer, pipe.rules, pipe.config, TEXTS, groups,
            is_query=False, batch_size=3, pin=False,
        )
    )  # fmt: skip
    order = np.concatenate([b.index for b in made])
    assert sorted(order.tolist()) == list(range(len(TEXTS)))
    seen = [counts[i] for i in order]
    assert seen == sorted(counts, reverse=True)
    for batch in made:  # the marker adds one position to the tokenizer's count
        assert batch.features["input_ids"].shape[1] == max(counts[i] for i in batch.index) + 1


def test_producer_error_is_raised_and_no_thread_is_left(tiny_pylate_model, monkeypatch):
    real, calls = _rust.columns, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("tokenizer broke on the third batch")
        return real(*args, **kwargs)

    monkeypatch.setattr(_rust, "columns", failing)
    with pytest.raises(ValueError, match="third batch"):
        tiny_pylate_model.encode_documents(TEXTS, batch_size=2)
    assert _prefetch_threads() == []


def test_error_in_the_tokenizer_thread_is_raised_and_no_thread_is_left(
    tiny_pylate_model, monkeypatch
):
    real, calls = _rust.encodings, []

    def failing(*args, **kwargs):
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            raise ValueError("tokenizer broke on the second group")
        return real(*args, **kwargs)

    monkeypatch.setattr(_rust, "encodings", failing)
    with pytest.raises(ValueError, match="second group"):
        tiny_pylate_model.encode_documents(TEXTS, batch_size=2)  # 2 groups of 4 batches
    assert calls == ["late-interaction-tokenize"] * 2  # groups are tokenised one ahead
    assert _prefetch_threads() == []


def test_interrupt_in_the_consumer_stops_the_thread(tiny_pylate_model, monkeypatch):
    pipe = tiny_pylate_model._pipeline
    real, launched = type(pipe)._launch, []

    def interrupted(self, batch, as_tensors):
        launched.append(len(batch))
        if len(launched) == 2:
            raise KeyboardInterrupt
        return real(self, batch, as_tensors)

    monkeypatch.setattr(type(pipe), "_launch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tiny_pylate_model.encode_documents(TEXTS * 20, batch_size=2)
    assert _prefetch_threads() == []


def test_out_of_memory_halves_the_batch(tiny_pylate_model, monkeypatch):
    pipe = tiny_pylate_model._pipeline
    expected = tiny_pylate_model.encode_documents(TEXTS, batch_size=8)
    real, sizes = type(pipe)._forward, []

    def small_memory(self, features):
        sizes.append(features["input_ids"].shape[0])
        if features["input_ids"].shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, features)

    monkeypatch.setattr(type(pipe), "_forward", small_memory)
    got = tiny_pylate_model.encode_documents(TEXTS, batch_size=8)
    assert max(sizes) == 8 and sizes.count(2) >= 4  # halved 8 -> 4 -> 2
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


# --- Prefetch on its own ----------------------------------------------------------------------


def test_prefetch_keeps_order_and_raises_the_producers_error():
    def source():
        yield from range(5)
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"), Prefetch(source(), depth=2) as ahead:
        got.extend(ahead)
    assert got == [0, 1, 2, 3, 4]
    assert _prefetch_threads() == []


def test_prefetch_close_stops_a_blocked_producer_and_closes_its_source():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    with Prefetch(endless(), depth=1) as ahead:
        first = next(iter(ahead))
    assert first == 0
    assert closed.is_set()
    assert _prefetch_threads() == []


# --- CUDA: pinned memory, asynchronous copies on a side stream (``pytest -m gpu``) -----------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_encoding_equals_cpu(tiny_pylate_path, tiny_pylate_model, recorded, dtype):
    from late_interaction import ColBERT

    gpu = ColBERT.from_pretrained(tiny_pylate_path, device="cuda", dtype=dtype)
    texts = TEXTS * 30  # many batches: the copy of one overlaps the next one's forward
    ref, ref_dense = tiny_pylate_model.encode_documents(texts, batch_size=8, return_dense=True)
    got, got_dense = gpu.encode_documents(texts, batch_size=8, return_dense=True)
    assert recorded and gpu._pipeline._copy_stream is not None  # the asynchronous path ran
    atol = 1e-4 if dtype == "float32" else 0.1  # bfloat16 weights (CPU runs autocast: 0.08)
    for a, b in zip(got, ref, strict=True):
        assert a.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=atol)
    np.testing.assert_allclose(got_dense, ref_dense, atol=atol)
    tensors, _ = gpu._pipeline.encode(texts, False, 8, False, as_tensors=True)
    assert tensors[0].device.type == "cuda"
    for a, t in zip(got, tensors, strict=True):
        np.testing.assert_array_equal(a, t.cpu().numpy())
    assert _prefetch_threads() == []
