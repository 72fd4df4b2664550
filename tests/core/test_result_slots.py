"""The pool's result slots: rows come back exact, slots are reused and grow, copies stay put.

The cross-process path (a worker process writing, the parent reading) is exercised by
``test_encode_pool.py``, whose pool results must equal one process's; here both sides run in one
process over a plain queue, so reuse and growth can be followed step by step.
"""

from __future__ import annotations

import queue

import numpy as np

from late_interaction._encoding.result_slots import SLOTS, SlotReader, SlotWriter


def test_rows_round_trip_through_reused_and_grown_slots():
    free: queue.Queue = queue.Queue()
    reader, writer = SlotReader(free), SlotWriter(free)
    rng = np.random.default_rng(0)
    taken, sent_segments = [], 0
    # Ten batches of changing sizes (a later one larger than any slot so far) and dtypes.
    sizes, dtypes = [5, 3, 7, 7, 2, 40, 1, 0, 9, 40], ["<f4"] * 8 + ["<f2", "<f4"]
    for n, dtype in zip(sizes, dtypes, strict=True):
        rows = rng.standard_normal((n, 4)).astype(dtype)
        message = writer.put(rows)
        sent_segments += message[3] is not None
        got = reader.take(*message)
        assert got.dtype == rows.dtype and got.shape == rows.shape
        np.testing.assert_array_equal(got, rows)
        taken.append((rows, got))
    # Each slot's segment is sent when first used and again only when it must grow.
    assert SLOTS <= sent_segments < 10
    # What the parent took is a copy: later batches written into the same slots left it intact.
    for rows, got in taken:
        np.testing.assert_array_equal(got, rows)
    assert free.qsize() == SLOTS  # every slot handed back


def test_a_writer_waits_for_a_free_slot():
    free: queue.Queue = queue.Queue()
    reader, writer = SlotReader(free), SlotWriter(free)
    rows = np.ones((2, 3), np.float32)
    messages = [writer.put(rows) for _ in range(SLOTS)]
    assert free.empty()  # a further put would block until the reader hands one back
    reader.take(*messages[1])
    slot = writer.put(rows * 2)[0]
    assert slot == messages[1][0]


def test_segments_are_sent_once_per_slot_and_again_only_to_grow():
    free: queue.Queue = queue.Queue()
    reader, writer = SlotReader(free), SlotWriter(free)
    small, large = np.ones((4, 8), np.float32), np.ones((400, 8), np.float32)
    sent = []
    for rows in [small] * SLOTS + [small[:2]] * SLOTS + [large]:
        message = writer.put(rows)
        sent.append(message[3] is not None)
        reader.take(*message)
    assert sent == [True] * SLOTS + [False] * SLOTS + [True]


def test_a_skipped_message_frees_its_slot_and_keeps_its_segment():
    """A batch no job waits for (an abandoned job's) must still hand its slot back, and a
    segment it brought must be the one later messages of that slot are read from."""
    free: queue.Queue = queue.Queue()
    reader, writer = SlotReader(free), SlotWriter(free)
    first = writer.put(np.zeros((3, 2), np.float32))
    reader.skip(*first)
    assert free.qsize() == SLOTS
    for _ in range(SLOTS):  # back round to the skipped slot, whose segment is not sent again
        message = writer.put(np.full((3, 2), 7.0, np.float32))
        got = reader.take(*message)
    assert message[0] == first[0] and message[3] is None
    np.testing.assert_array_equal(got, np.full((3, 2), 7.0))
