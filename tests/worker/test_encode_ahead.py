"""Encoding ahead (issue 14): the windowing cuts the chunks a stream's next windows will hold before those
windows are due, the batch queue hands them to the model thread only while no window waits, and through
the real worker a stream's first window encodes only the chunk that completed it, scoring exactly as
whole-window encoding does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_coat.messages import SAMPLE_RATE, AudioChunk, EndOfStream, Window
from edge_coat.transport.config import ReceiverConfig
from edge_coat.transport.sender import Sender
from edge_coat.worker.config import StreamConfig, TaskGateConfig, WorkerConfig
from edge_coat.worker.service import BatchQueue, Worker
from edge_coat.worker.windowing import Ring
from tests.transport.helpers import FAST_LINK, sender_config, wait_for
from tests.worker.streams import Results, cached_and_whole

SR = SAMPLE_RATE


def feed(ring: Ring, x: np.ndarray, step: int, first: int = 0) -> tuple[list, list[tuple[int, int, np.ndarray]]]:
    """Push ``x`` at timeline ``first`` in pieces of ``step``; the windows, and (ring end when cut, start,
    samples) of every chunk cut ahead."""
    windows, chunks = [], []
    for i in range(0, x.size, step):
        windows += ring.push(first + i, x[i:i + step], 0.0)
        chunks += [(ring.end, c.start, c.samples) for c in ring.take_ahead()]
    return windows, chunks


@pytest.mark.parametrize("hop,expected", [(400, [0, 400]), (800, [0, 400, 1200, 2000, 2800, 3600])])
def test_ring_cuts_ahead_the_chunks_no_window_cut_so_far_holds(hop, expected):
    """400-sample chunks, 1200-sample windows. At a one-chunk hop every chunk after the first window's
    completes a window (no work ahead); at a two-chunk hop every other one does not."""
    x = np.random.default_rng(hop).uniform(-0.5, 0.5, 4000).astype(np.float32)
    windows, chunks = feed(Ring(1200, hop, ahead=400), x, 100)
    assert [c for _, c, _ in chunks] == expected
    for end, c, samples in chunks:
        assert end == c + 400  # cut as soon as complete
        np.testing.assert_array_equal(samples, x[c:c + 400])  # bit-identical to every window's stretch
        held = [w for w in windows if w.start <= c and c + 400 <= w.start + 1200]
        assert held or c + 1200 > x.size  # a later window holds it (or the stream ended first)
        assert all(w.start + 1200 > c + 400 for w in held)  # none of them was cut before it
        for w in held:
            np.testing.assert_array_equal(w.samples[c - w.start:c - w.start + 400], samples)


def test_ring_ragged_pieces_cut_only_whole_grid_chunks_once():
    rng = np.random.default_rng(3)
    x = rng.uniform(-0.5, 0.5, 30_000).astype(np.float32)
    ring, pos, chunks, windows = Ring(4000, 2000, ahead=1000), 0, [], []
    while pos < x.size:
        n = int(rng.integers(1, 2500))
        windows += ring.push(pos, x[pos:pos + n], 0.0)
        chunks += ring.take_ahead()
        pos += n
    starts = [c.start for c in chunks]
    assert starts == sorted(set(starts)) and all(s % 1000 == 0 for s in starts) and starts
    for c in chunks:
        np.testing.assert_array_equal(c.samples, x[c.start:c.start + 1000])


def test_ring_cuts_nothing_ahead_across_a_gap_or_while_paused():
    ring = Ring(2000, 400, ahead=400)
    ring.push(0, np.full(300, 0.1, np.float32), 0.0)
    ring.push(700, np.full(900, 0.1, np.float32), 0.0)  # [300, 700) missing: zero-filled
    assert [c.start for c in ring.take_ahead()] == [800, 1200]  # not 0 and 400, which the gap touches
    ring.ahead_paused = True  # the stream's windows are gated out
    ring.push(1600, np.full(400, 0.1, np.float32), 0.0)
    assert ring.take_ahead() == []
    ring.ahead_paused = False
    with pytest.raises(ValueError, match="must divide the hop"):
        Ring(2000, 600, ahead=400)


def _chunk(sid: str, k: int) -> AudioChunk:
    return AudioChunk(sid, k * 400, np.zeros(400, np.float32), 1)


def test_batch_queue_hands_chunks_on_only_while_no_window_waits():
    def keys(items):
        return [(c.stream_id, c.start_sample) for c in items]

    w = Window(stream_id="a", index=0, start_sample=0, start_ts=0.0, end_ts=1.0, samples=np.zeros(10, np.float32))
    q = BatchQueue(max_batch=2, max_wait_s=0.0, capacity=3)
    q.put_many([_chunk("a", 0), _chunk("a", 1), _chunk("b", 0), w])
    assert q.unfinished() == 4
    got = q.take(0.1)
    assert len(got) == 1 and got[0] is w  # the window first, though it came last
    assert keys(q.take(0.1)) == [("a", 0), ("a", 400)]  # then chunks, max_batch at a time
    assert keys(q.take(0.1)) == [("b", 0)]
    q.task_done(4)
    # a full lane drops its oldest chunk (not a window); an end removes its stream's waiting chunks
    q.put_many([_chunk("a", 0), _chunk("b", 1), _chunk("a", 2), _chunk("b", 2)])
    assert q.dropped_ahead == 1 and q.dropped == 0 and q.unfinished() == 3
    q.put_many([EndOfStream("a", 1.0)])
    assert q.take(0.1) == [EndOfStream("a", 1.0)]
    assert keys(q.take(0.1)) == [("b", 400), ("b", 800)]
    q.task_done(3)
    assert q.unfinished() == 0 and q.take(0.01) == []


# ---- through the real worker ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    from edge_coat.model.tiny import tiny_coat_model

    torch.set_num_threads(1)
    return tiny_coat_model("qwen2_audio", max_seconds=1, chunk_features="chunk")  # 1 s chunks


def test_a_streams_first_window_encodes_only_the_chunk_that_completed_it(model):
    stage, whole = cached_and_whole(model)
    keep = Results()
    results = keep.items

    cfg = WorkerConfig(receiver=ReceiverConfig(bind="tcp://127.0.0.1:0", link=FAST_LINK, ack_interval_s=0.02),
                       default_stream=StreamConfig(window_s=3.0, hop_s=1.0,
                                                   tasks={"anomaly": TaskGateConfig(min_rms_dbfs=-200)}))
    w = Worker(cfg, stage, on_result=keep).start()
    rng = np.random.default_rng(5)
    x = (0.05 * rng.standard_normal(5 * SR) * np.repeat(rng.uniform(0.2, 3.0, 5), SR)).astype(np.float32)
    try:
        with Sender(sender_config(w.endpoint)) as sender:
            for i in range(0, int(2.5 * SR), 1600):  # 2.5 s: chunks [0, 1) and [1, 2) s, no window yet
                sender.submit("s", x[i:i + 1600], 100.0 + i / SR)
            assert wait_for(lambda: stage.stats()["ahead_chunks"] == 2)
            for i in range(int(2.5 * SR), x.size, 1600):
                sender.submit("s", x[i:i + 1600], 100.0 + i / SR, end_of_stream=i + 1600 >= x.size)
            assert sender.wait_acked(10)
            assert w.wait_idle(10)
    finally:
        w.close()
    cs = stage.stats()["encoder_cache"]
    # windows [0, 3) [1, 4) [2, 5) s: the first encoded chunk 2 only, each later one its last chunk
    assert len(results) == 3 and cs["ahead_encoded"] == 2 and cs["encoded"] == 3
    assert cs["hits_ahead"] == 3 and cs["resets_ended"] == 1 and w.stats()["totals"]["chunks_ahead"] == 2
    results.sort(key=lambda r: r.window.start_sample)
    for got, ref in zip(results, whole.process([r.window for r in results])):
        np.testing.assert_allclose(list(got.label_probs["anomaly"].values()),
                                   list(ref.label_probs["anomaly"].values()), atol=1e-4)
        np.testing.assert_allclose(got.thinking, ref.thinking, atol=1e-4)
