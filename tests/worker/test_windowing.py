"""Ring windowing, sequence checks, gates and the batch queue, fed hand-built inputs."""

from __future__ import annotations

import numpy as np
import pytest

from edge_coat.messages import SAMPLE_RATE
from edge_coat.transport.wire import WireAudio, as_float
from edge_coat.worker.config import StreamConfig, TaskGateConfig
from edge_coat.worker.gate import Gate, rms_dbfs
from edge_coat.worker.service import BatchQueue
from edge_coat.worker.windowing import BufferPool, Ring, StreamState


def _chunk(x, seq, start, epoch=1, gap=0, eos=False, ts=None):
    return WireAudio("s", epoch, seq, start, ts if ts is not None else 1000.0 + start / SAMPLE_RATE,
                     x.astype(np.float32), gap, eos)


@pytest.mark.parametrize("window,hop", [(800, 400), (1000, 1000), (500, 700)])
def test_ring_windows_equal_slices_for_ragged_chunks(window, hop):
    rng = np.random.default_rng(window + hop)
    x = rng.standard_normal(20_000).astype(np.float32)  # (N,)
    ring, pos, got = Ring(window, hop), 0, []
    while pos < len(x):
        n = int(rng.integers(1, 900))
        got += ring.push(pos, x[pos:pos + n], 50.0 + pos / SAMPLE_RATE)
        pos += n
    starts = list(range(0, len(x) - window + 1, hop))
    assert [w.start for w in got] == starts
    for w in got:
        np.testing.assert_array_equal(w.samples, x[w.start:w.start + window])
        assert w.gap_samples == 0
        assert w.start_ts == pytest.approx(50.0 + w.start / SAMPLE_RATE)


def test_ring_short_gap_is_zero_filled_and_counted_in_later_windows():
    x = np.ones(3000, np.float32)
    ring = Ring(1000, 500)
    out = ring.push(0, x[:1200], 0.0)
    out += ring.push(1500, x[1500:], 1500 / SAMPLE_RATE)  # 300 samples missing
    by_start = {w.start: w for w in out}
    assert sorted(by_start) == [0, 500, 1000, 1500, 2000]
    assert by_start[1000].gap_samples == 300 and by_start[500].gap_samples == 300
    assert by_start[0].gap_samples == 0 and by_start[1500].gap_samples == 0
    assert np.all(by_start[1000].samples[200:500] == 0) and np.all(by_start[1000].samples[500:] == 1)


def test_ring_long_gap_skips_windows_inside_it():
    ring = Ring(1000, 500)
    out = ring.push(0, np.ones(1000, np.float32), 0.0)
    out += ring.push(100_000, np.ones(2000, np.float32), 10.0)
    starts = [w.start for w in out]
    assert starts[:2] == [0, 500]  # the one straddling the gap start is completed with zeros
    assert out[1].gap_samples == 500
    assert 99_500 in starts and 101_000 in starts  # resumes on the grid with the first reaching window
    assert ring.skipped_in_gap == (99_500 - 1000) // 500
    w = out[starts.index(99_500)]
    assert w.gap_samples == 500 and w.start_ts == pytest.approx(10.0 - 500 / SAMPLE_RATE)


def test_stream_state_classifies_duplicates_forgeries_and_restarts():
    st = StreamState("s", 1600, 1600, max_gap=10 * SAMPLE_RATE)
    x = np.zeros(800, np.float32)
    assert st.accept(_chunk(x, 0, 0))[0] == "ok"
    assert st.accept(_chunk(x, 0, 0))[0] == "duplicate"
    assert st.accept(_chunk(x, 1, 900))[0] == "inconsistent"  # jumps without declaring a gap
    assert st.accept(_chunk(x, 1, 900, gap=100))[0] == "ok"
    assert st.accept(_chunk(x, 9, 10**9))[0] == "inconsistent"  # beyond max_gap: forged
    assert st.accept(_chunk(x, 5, 5000))[0] == "ok"  # chunks 2-4 lost: a gap of 5000-1700
    assert st.gap_samples == 100 + 3300
    assert st.accept(_chunk(x, 0, 0, epoch=0))[0] == "stale"
    # the sender restarts (new epoch, seq 0) 1 s of wall time after the last chunk ended
    assert st.accept(_chunk(x, 0, 0, epoch=2, ts=st.end_ts + 1.0))[0] == "ok"
    assert st.gap_samples == 3400 + SAMPLE_RATE
    assert st.accept(_chunk(x, 1, 800, epoch=2, eos=True))[0] == "ok"
    assert st.accept(_chunk(x, 1, 800, epoch=2))[0] == "ended"
    assert st.ack_seq() == 1


def test_ack_covers_only_chunks_no_window_needs():
    st = StreamState("s", 1000, 1000, max_gap=SAMPLE_RATE)
    x = np.zeros(400, np.float32)
    acks = []
    for i in range(5):
        st.accept(_chunk(x, i, 400 * i))
        acks.append(st.ack_seq())
    # [0, 1000) is cut once chunk 2 arrives; chunk 2 (800-1200) is still needed by [1000, 2000)
    assert acks == [-1, -1, 1, 1, 4]  # chunk 4 completes [1000, 2000)


def test_gate_rms_and_speech_hook_per_task():
    calls = []

    def speech(x):
        calls.append(len(x))
        return 0.6

    cfg = StreamConfig(tasks={
        "anomaly": TaskGateConfig(min_rms_dbfs=-60),
        "emotion": TaskGateConfig(min_rms_dbfs=-30, min_speech_ratio=0.5),
        "strict": TaskGateConfig(min_rms_dbfs=-30, min_speech_ratio=0.9),
    })
    gate = Gate(cfg, speech)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    loud = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    quiet = (0.001 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    tasks, level, ratio = gate(loud)
    assert tasks == ("anomaly", "emotion") and level == pytest.approx(-9.03, abs=0.05) and ratio == 0.6
    assert gate(quiet)[0] == () and len(calls) == 1  # VAD not run when nothing is loud enough
    assert rms_dbfs(np.zeros(10, np.float32)) == -120.0
    with pytest.raises(ValueError, match="min_speech_ratio"):
        Gate(cfg, None)


def test_batch_queue_batches_waits_and_drops_oldest():
    q = BatchQueue(max_batch=3, max_wait_s=0.02, capacity=5)
    q.put_many(list(range(7)))
    assert q.dropped == 2
    assert q.take(1.0) == [2, 3, 4]
    assert q.take(1.0) == [5, 6]  # fewer than max_batch once the oldest waited max_wait_s
    assert q.take(0.01) == []


def test_buffer_pool_reuses_an_array_only_once_nothing_refers_to_it():
    pool = BufferPool()
    a = pool.take(16)
    view = a[4:8]  # a consumer keeps a slice of a window: the array must stay untouched
    del a
    b = pool.take(16)
    assert not np.shares_memory(b, view) and pool.allocated == 2
    first = id(view.base)
    del view  # now nothing but the pool refers to the first array
    c = pool.take(16)
    assert id(c) == first and pool.reused == 1 and pool.allocated == 2
    assert not np.shares_memory(c, b)
    small = BufferPool(max_bytes=2 * 4 * 16)  # room for two arrays: older ones are forgotten, not reused
    held = [small.take(16) for _ in range(5)]
    assert small.allocated == 5 and len({id(h) for h in held}) == 5


def test_ring_takes_int16_pcm_and_float_alike_and_recycles_window_arrays():
    rng = np.random.default_rng(3)
    pcm = rng.integers(-32768, 32767, 12_000).astype(np.int16)  # (N,) as received on the wire
    x = as_float(pcm)  # (N,) float32 in [-1, 1]
    pool = BufferPool()
    by_pcm, by_float = Ring(1000, 500, pool), Ring(1000, 500)
    starts = []
    for pos in range(0, len(pcm), 700):
        got = by_pcm.push(pos, pcm[pos:pos + 700], 0.0)
        ref = by_float.push(pos, x[pos:pos + 700], 0.0)
        for w, r in zip(got, ref, strict=True):
            np.testing.assert_array_equal(w.samples, x[w.start:w.start + 1000])
            np.testing.assert_array_equal(w.samples, r.samples)
            starts.append(w.start)
        got = ref = w = r = None  # the consumer lets go: the pool may hand the arrays out again
    assert starts == list(range(0, len(pcm) - 999, 500))
    assert pool.reused > 0 and pool.allocated < len(starts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_run_length_acks_equal_a_per_chunk_record(seed):
    """The acknowledgement record is kept as runs of equal, contiguous chunks; whatever the
    stream does (ragged lengths, declared gaps, lost chunks, empty chunks, duplicates, windows
    held in flight, a sender restart, the end), `ack_seq` must equal what a plain per-chunk
    (seq, end) list gives: the last chunk of the longest prefix that ends where no window needs it."""
    rng = np.random.default_rng(seed)
    st = StreamState("s", 1000, 600, max_gap=10 * SAMPLE_RATE)
    ref: list[tuple[int, int]] = []  # (seq, end on the worker's timeline) of the current life
    ref_acked, seq, start, epoch, checked = -1, 0, 0, 1, 0
    for step in range(600):
        r = rng.random()
        n = 0 if r < 0.03 else int(rng.choice([160, 160, 160, 400, rng.integers(1, 900)]))
        gap = 0
        if r > 0.95:  # lost chunks: the sequence and the timeline jump
            lost = int(rng.integers(1, 4))
            seq, start, gap = seq + lost, start + lost * 160 + int(rng.integers(0, 50)), 0
        elif r > 0.9:  # a declared gap
            gap = int(rng.integers(1, 2000))
            start += gap
        if step == 300:  # the sender restarts: new epoch, its timeline from 0
            epoch, seq, start, gap = 2, 0, 0, 0
            ref = []
            ref_acked = -1
        eos = step == 599
        outcome, _ = st.accept(_chunk(np.zeros(n, np.float32), seq, start, epoch=epoch, gap=gap, eos=eos))
        assert outcome == "ok", (step, outcome)
        ref.append((seq, start + st.offset + n))
        if rng.random() < 0.2 and st.inflight.__len__() < 3:
            st.inflight.append(st.ring.next_win)  # a window on its way through the model
        if st.inflight and rng.random() < 0.3:
            st.inflight.popleft()
        if rng.random() < 0.1:  # a replay of the last chunk: a duplicate, no change
            assert st.accept(_chunk(np.zeros(n, np.float32), seq, start, epoch=epoch))[0] == "duplicate"
        seq, start = seq + 1, start + n
        keep = None if st.ended else st.ring.pos0
        if st.inflight:
            keep = st.inflight[0] if keep is None else min(keep, st.inflight[0])
        while ref and (keep is None or ref[0][1] <= keep):
            ref_acked = ref.pop(0)[0]
        got = st.ack_seq()
        assert got == ref_acked, (step, got, ref_acked)
        checked += got >= 0
    assert checked > 300
    st.inflight.clear()  # the last windows came through the model: the ended stream is acknowledged whole
    assert st.ack_seq() == seq - 1
