"""Window grid phases (issue 14, latency): streams started together get window grids shifted so that their
windows fall due one by one across the hop instead of as one batch; the ring, the chunks cut ahead and the
encoder cache all follow a stream's phase, and through the real worker the answers equal whole-window
encoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_coat.messages import SAMPLE_RATE
from edge_coat.transport.config import ReceiverConfig
from edge_coat.transport.sender import Sender
from edge_coat.worker.config import StreamConfig, TaskGateConfig, WorkerConfig
from edge_coat.worker.service import Worker
from edge_coat.worker.windowing import PhasePlanner, Ring, StreamState
from tests.transport.helpers import FAST_LINK, sender_config, wait_for
from tests.worker.streams import Results, cached_and_whole

SR = SAMPLE_RATE
Q = 320  # the planner tests' chunk length (20 ms, divides the 2 s hop): phases are multiples of it


def _circular_gaps(slots: list[float], period: float) -> list[float]:
    s = sorted(slots)
    return [((s[(i + 1) % len(s)] - a) % period) or period for i, a in enumerate(s)]


# ---- the ring ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("phase", [0, 320, 1000, 1999])
def test_ring_windows_and_chunks_ahead_follow_the_phase(phase):
    x = np.random.default_rng(phase).uniform(-0.5, 0.5, 12_000).astype(np.float32)
    ring = Ring(4000, 2000, ahead=1000, phase=phase)
    windows, chunks = [], []
    for i in range(0, x.size, 700):
        windows += ring.push(i, x[i:i + 700], 0.0)
        chunks += ring.take_ahead()
    starts = [w.start for w in windows]
    assert starts == list(range(phase, x.size - 4000 + 1, 2000))
    for w in windows:
        np.testing.assert_array_equal(w.samples, x[w.start:w.start + 4000])
    # the chunks cut ahead lie on the phased grid and are the first window's leading chunks
    assert chunks and all((c.start - phase) % 1000 == 0 for c in chunks)
    assert [c.start for c in chunks][:3] == [phase, phase + 1000, phase + 2000]


def test_ring_skips_a_long_gap_onto_its_phased_grid():
    ring = Ring(4000, 2000, phase=700)
    x = np.ones(30_000, np.float32) * 0.1
    ring.push(0, x[:6000], 0.0)
    out = ring.push(20_000, x[20_000:26_000], 1.0)  # 14,000 samples missing
    starts = [w.start for w in out]
    assert starts and all((s - 700) % 2000 == 0 for s in starts)
    assert ring.skipped_in_gap > 0


def test_a_phase_outside_the_hop_is_refused():
    for bad in (-1, 2000, 5000):
        with pytest.raises(ValueError, match="phase"):
            Ring(4000, 2000, phase=bad)


def test_a_resumed_stream_windows_from_the_sample_it_resumes_at():
    """A worker that resumes a stream at sample r gives it the phase r % hop (the service's rule), so its first
    window starts at r exactly, as the worker before it would have cut it."""
    r = 123_456
    st = StreamState("s", 4000, 2000, 16000, phase=r % 2000)
    assert st.resume(3, 10, r)
    x = np.full(4000, 0.1, np.float32)
    _, windows = st.accept(("s", 3, 10, r, 1.0, x, 0, False))
    assert [w.start for w in windows] == [r]


def test_the_grid_of_a_ring_moves_only_while_it_holds_no_audio():
    ring = Ring(4000, 2000)
    ring.start_at(0)  # a stream known from its client's hello
    ring.set_phase(600)
    assert [w.start for w in ring.push(0, np.zeros(8000, np.float32), 0.0)] == [600, 2600]
    with pytest.raises(ValueError, match="holds audio"):
        ring.set_phase(0)


# ---- the planner ------------------------------------------------------------------------------------
def test_a_lone_stream_keeps_phase_zero():
    assert PhasePlanner().assign("a", 160_000, 32_000, 1600, now=5.0, chunk=Q) == 0


@pytest.mark.parametrize("n", [2, 3, 8, 16])
def test_streams_started_together_are_spread_evenly_over_the_hop(n):
    planner, hop = PhasePlanner(), 32_000  # 2 s
    phases = [planner.assign(f"s{k}", 160_000, hop, 1600, now=100.0, chunk=Q) for k in range(n)]
    assert all(0 <= p < hop and p % Q == 0 for p in phases)
    assert len(set(phases)) == n
    gaps = _circular_gaps(list(planner.slots().values()), hop / SR)
    # largest-gap insertion: every gap is at least half the even spacing (exactly even for powers of two)
    assert min(gaps) >= (hop / SR / n) / 2 - Q / SR
    if n & (n - 1) == 0:
        assert max(gaps) - min(gaps) <= 2 * Q / SR


def test_a_stream_joining_later_takes_the_middle_of_the_free_stretch():
    planner = PhasePlanner()
    assert planner.assign("a", 160_000, 32_000, 1600, now=10.0, chunk=Q) == 0
    # b joins 0.3 s later at the same place in its own stream: its natural slot is 0.3 s after a's,
    # so it is moved to a's slot + 1 s (the middle of the 2 s hop): a phase of 0.7 s
    phase = planner.assign("b", 160_000, 32_000, 1600, now=10.3, chunk=Q)
    assert phase == pytest.approx(0.7 * SR, abs=Q)
    slots = planner.slots()
    assert (slots["b"] - slots["a"]) % 2.0 == pytest.approx(1.0, abs=Q / SR)


def test_phases_fall_on_the_streams_chunk_grid_when_the_chunk_divides_the_hop():
    planner = PhasePlanner()
    planner.assign("a", 160_000, 32_000, 1600, now=0.0, chunk=1600)
    phases = [planner.assign(f"s{k}", 160_000, 32_000, 1600, now=0.013 * k, chunk=1600) for k in range(5)]
    assert all(p % 1600 == 0 and p for p in phases)
    # 1500 does not divide 32,000: its acknowledged audio would not end on a moved grid, so it is not moved
    assert planner.assign("odd", 160_000, 32_000, 1500, now=0.0, chunk=1500) == 0


def test_released_slots_are_reused_and_other_hops_do_not_count():
    planner = PhasePlanner()
    first = [planner.assign(f"s{k}", 160_000, 32_000, 1600, now=0.0, chunk=Q) for k in range(4)]
    planner.release("s2")
    assert planner.assign("new", 160_000, 32_000, 1600, now=0.0, chunk=Q) == first[2]  # the freed slot's place
    assert planner.assign("other-hop", 160_000, 16_000, 1600, now=0.0, chunk=Q) == 0  # alone at its hop
    assert "s2" not in planner.slots()


# ---- through the real worker ------------------------------------------------------------------------
def _worker(stage, phase: str, keep) -> Worker:
    cfg = WorkerConfig(receiver=ReceiverConfig(bind="tcp://127.0.0.1:0", link=FAST_LINK, ack_interval_s=0.02),
                       default_stream=StreamConfig(window_s=3.0, hop_s=1.0,
                                                   tasks={"anomaly": TaskGateConfig(min_rms_dbfs=-200)}),
                       window_phase=phase)
    return Worker(cfg, stage, on_result=keep).start()


@pytest.mark.parametrize("mode", ["spread", "aligned"])
def test_streams_started_together_get_spread_phases_through_the_worker(mode):
    from edge_coat.worker.stage import NoopStage

    keep = Results()
    w = _worker(NoopStage(), mode, keep)
    x = np.random.default_rng(1).uniform(-0.3, 0.3, 6 * SR).astype(np.float32)
    sids = [f"m{k}" for k in range(4)]
    try:
        with Sender(sender_config(w.endpoint)) as sender:
            for sid in sids:
                sender.submit(sid, x[:1600], 100.0)
            assert wait_for(lambda: len(w.phases.slots()) == 4 or mode == "aligned")
            slots = w.phases.slots()  # once all four have audio (an ended stream's slot is freed); aligned: none
            for i in range(1600, x.size, 1600):
                for sid in sids:
                    sender.submit(sid, x[i:i + 1600], 100.0 + i / SR, end_of_stream=i + 1600 >= x.size)
            assert sender.wait_acked(10)
            assert w.wait_idle(10)
        phases = {sid: w.stats()["streams"][sid]["window_phase_s"] for sid in sids}
    finally:
        w.close()
    for sid in sids:
        starts = sorted(r.window.start_sample for r in keep.items if r.window.stream_id == sid)
        p = round(phases[sid] * SR)
        assert starts == list(range(p, x.size - 3 * SR + 1, SR))  # every window of its grid, none lost
    if mode == "aligned":
        assert set(phases.values()) == {0.0}
    else:
        # their windows fall due about a quarter of the 1 s hop apart (to the 0.1 s chunk grid), whenever each
        # joined; joined within milliseconds of each other, that takes four different grids
        assert len(slots) == 4 and min(_circular_gaps(list(slots.values()), 1.0)) >= 0.25 - 0.1
        assert len(set(phases.values())) > 1
        # on the 100 ms chunk grid: each window ends where a chunk ends, so no window waits for the next chunk
        assert all(round(p * SR) % 1600 == 0 for p in phases.values())


@pytest.fixture(scope="module")
def model():
    from edge_coat.model.tiny import tiny_coat_model

    torch.set_num_threads(1)
    return tiny_coat_model("qwen2_audio", max_seconds=1, chunk_features="chunk")  # 1 s chunks


def test_a_phased_stream_encodes_ahead_on_its_grid_and_answers_as_whole_windows(model):
    """Two streams joined together: the second one's grid is shifted by about half the hop; its chunks cut
    ahead lie on that grid, so its first window encodes only the chunk that completed it, and every answer
    equals whole-window encoding."""
    stage, whole = cached_and_whole(model)
    keep = Results()
    results = keep.items

    w = _worker(stage, "spread", keep)
    rng = np.random.default_rng(5)
    x = {sid: (0.05 * rng.standard_normal(5 * SR) * np.repeat(rng.uniform(0.2, 3.0, 5), SR)).astype(np.float32)
         for sid in ("a", "b")}
    try:
        with Sender(sender_config(w.endpoint)) as sender:
            split = 27 * 1600  # 2.7 s: no window of either stream is complete yet
            for i in range(0, split, 1600):
                for sid in ("a", "b"):
                    sender.submit(sid, x[sid][i:i + 1600], 100.0 + i / SR)
            assert wait_for(lambda: stage.stats()["ahead_chunks"] == 4)  # 2 per stream, before any window
            for i in range(split, 5 * SR, 1600):
                for sid in ("a", "b"):
                    sender.submit(sid, x[sid][i:i + 1600], 100.0 + i / SR, end_of_stream=i + 1600 >= 5 * SR)
            assert sender.wait_acked(10)
            assert w.wait_idle(10)
        phase_b = w.stats()["streams"]["b"]["window_phase_s"]
    finally:
        w.close()
    assert w.stats()["streams"]["a"]["window_phase_s"] == 0.0 and 0.3 <= phase_b <= 0.7
    starts = {sid: sorted(r.window.start_sample for r in results if r.window.stream_id == sid) for sid in "ab"}
    assert starts["a"] == [0, SR, 2 * SR] and starts["b"] == [round(phase_b * SR), round(phase_b * SR) + SR]
    cs = stage.stats()["encoder_cache"]
    # a: 2 chunks ahead, then one new chunk per window (3); b: 2 ahead, one per window (2)
    assert cs["ahead_encoded"] == 4 and cs["encoded"] == 5 and cs["hits_ahead"] == 6
    results.sort(key=lambda r: (r.window.stream_id, r.window.start_sample))
    for got, ref in zip(results, whole.process([r.window for r in results])):
        np.testing.assert_allclose(list(got.label_probs["anomaly"].values()),
                                   list(ref.label_probs["anomaly"].values()), atol=1e-4)
        np.testing.assert_allclose(got.thinking, ref.thinking, atol=1e-4)


def test_hello_then_an_empty_end_as_first_chunk_then_audio():
    """A stream named in its client's hello gets its grid at its first chunk with samples: a bare end-of-stream
    (no samples) first plans nothing and breaks nothing, and the stream's next run is planned like any new
    stream's (here beside another stream, so it is moved). The windowing thread's ingest, called directly
    (deterministic: over a socket the hello's content depends on connection timing)."""
    from edge_coat.transport.wire import WireAudio
    from edge_coat.v1 import audio_pb2 as pb
    from edge_coat.worker.stage import NoopStage

    w = _worker(NoopStage(), "spread", lambda r: None)
    try:
        w._stop.set()  # the worker's threads idle; this test is the windowing thread
        x = np.full(1600, 0.1, np.float32)
        w._ingest([WireAudio("other", 1, 0, 0, 100.0, x, 0, False)], now=10.0)
        w._ingest([pb.StreamResume(stream_id="e", sender_epoch=1, next_sequence=0, next_sample=0)], now=10.0)
        assert w.streams["e"].phase_pending == (None,)
        w._ingest([WireAudio("e", 1, 0, 0, 100.0, x[:0], 0, True)], now=10.0)  # empty end first: no plan
        assert w.streams["e"].phase_pending == (None,) and w.streams["e"].ring.phase == 0
        w._ingest([WireAudio("e", 2, 0, 0, 200.0, x, 0, False)], now=10.0)  # a new run with audio
        assert w.streams["e"].phase_pending is None and w.streams["e"].ring.phase == 8000  # half the 1 s hop
    finally:
        w.close()
