"""The per-stream pitch frame cache (issue 14): the ``pitch`` reading of overlapping windows from the frames each
window adds equals ``pitch_readings`` on the whole window, on real speech (RAVDESS, skipped without
../shared/data) and on generated voice-like audio; resets at gaps, restarts, rewinds, off-grid hops, silent
windows and stream ends; no mixing across streams; bounded memory; and the model stage around it.

The site setting: 10 s windows, 2 s hop (each 20 ms frame is in 5 windows).
"""

from __future__ import annotations

import csv
import functools

import numpy as np
import pytest
import torch

from edge_coat.config import ModelSection
from edge_coat.experts.dsp import FRAME_REACH, PitchReading, pitch_frames, pitch_readings
from edge_coat.messages import SAMPLE_RATE, EndOfStream, Window
from edge_coat.worker.pitch_cache import PitchFrameCache

from .streams import stream_windows

SR = SAMPLE_RATE
WINDOW, HOP = 10 * SR, 2 * SR
windows_of = functools.partial(stream_windows, length=WINDOW, hop=HOP)
#: the parity tolerance: float noise only (the frames are equal to the bit on this machine; see BENCHMARKS.md).
#: A window read from another window's or another stream's frames is off by far more (``assert_discriminates``).
PITCH_REL, RATIO_ABS = 1e-6, 1e-9


def voice_like(seconds: float, seed: int) -> np.ndarray:
    """Syllables of a harmonic source whose F0 (100-300 Hz) and loudness change from syllable to syllable,
    with pauses and a noise floor: (N,) float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    syllables = -(-n // (SR // 2))
    f0 = np.repeat(rng.uniform(100.0, 300.0, syllables), SR // 2)[:n] * (1.0 + 0.03 * np.sin(np.arange(n) / 900.0))
    phase = np.cumsum(f0 / SR)
    x = sum(np.sin(2 * np.pi * k * phase) / k for k in range(1, 7))
    gain = np.repeat(rng.uniform(0.02, 0.3, syllables) * (rng.random(syllables) < 0.7), SR // 2)[:n]
    return (gain * x + 0.003 * rng.standard_normal(n)).astype(np.float32)


def real_speech(folder, speaker: str, clips: int = 10) -> np.ndarray:
    """A speaker's RAVDESS clips one after the other: (N,) float32, ~35 s for 10 clips."""
    import soundfile as sf

    files = [r["file"] for r in csv.DictReader(open(folder / "labels.csv")) if r["speaker"] == speaker][:clips]
    waves = [sf.read(folder / f, dtype="float32")[0] for f in files]
    assert all(w.ndim == 1 for w in waves)
    return np.concatenate(waves)


def assert_same_reading(got: PitchReading, want: PitchReading) -> None:
    assert got.pitch_hz == pytest.approx(want.pitch_hz, rel=PITCH_REL, abs=1e-9)
    assert got.voiced_ratio == pytest.approx(want.voiced_ratio, abs=RATIO_ABS)


def differs(a: PitchReading, b: PitchReading) -> bool:
    """Outside the parity tolerance."""
    return (abs(a.pitch_hz - b.pitch_hz) > PITCH_REL * max(b.pitch_hz, 1e-3)
            or abs(a.voiced_ratio - b.voiced_ratio) > RATIO_ABS)


def read_all(cache: PitchFrameCache, batches: list[list[Window]]) -> list[PitchReading]:
    return [r for batch in batches for r in cache.readings(batch)]


def test_real_speech_cached_equals_whole_windows(shared_data):
    """Two real voices, interleaved in each batch, 10 s windows every 2 s: every frame and every reading as
    ``pitch_frames`` / ``pitch_readings`` give on the whole window, with 4/5 of the frames reused."""
    folder = shared_data / "ravdess"
    streams = {spk: windows_of(real_speech(folder, spk), spk) for spk in ("03", "12")}
    a, b = streams.values()
    assert min(len(a), len(b)) >= 10
    cache = PitchFrameCache()
    for wa, wb in zip(a, b):
        got = cache.frames([wa, wb])
        for w, frames in zip((wa, wb), got):
            want = pitch_frames([w.samples])[0]
            np.testing.assert_allclose(frames.f0_hz, want.f0_hz, rtol=PITCH_REL)
            np.testing.assert_allclose(frames.voicing, want.voicing, rtol=0, atol=1e-6)
            np.testing.assert_allclose(frames.energy_db, want.energy_db, rtol=0, atol=1e-9)
    cache = PitchFrameCache()
    pairs = list(zip(a, b))
    got = read_all(cache, [list(p) for p in pairs])
    want = [r for p in pairs for r in pitch_readings([w.samples for w in p])]
    for g, w in zip(got, want):
        assert_same_reading(g, w)
    assert_discriminates(want[0::2], want[1::2])
    s = cache.stats()
    assert s["windows_whole"] == 2 and s["windows_cached"] == len(got) - 2 and s["mismatches"] == 0
    assert s["reused_share"] > 0.7  # each window computes ~107 of its 501 frames


def assert_discriminates(a: list[PitchReading], b: list[PitchReading]) -> None:
    """The parity tolerance catches a wrong cache: the previous window's frames (stale) or the other stream's
    would give readings outside it in most windows."""
    stale = sum(differs(x, y) for x, y in zip(a[:-1], a[1:]))
    other = sum(differs(x, y) for x, y in zip(a, b))
    assert stale >= 0.8 * (len(a) - 1) and other >= 0.8 * len(a)


def test_generated_voice_cached_equals_whole_windows():
    """Without the real corpus: the same parity on generated voice-like audio, one stream, one window a batch,
    then two consecutive windows of the stream in one batch (the second reuses the first's frames)."""
    ws = windows_of(voice_like(40.0, seed=1))
    cache = PitchFrameCache()
    got = read_all(cache, [[w] for w in ws[:8]]) + cache.readings(ws[8:])
    want = pitch_readings([w.samples for w in ws])
    for g, w in zip(got, want):
        assert_same_reading(g, w)
    assert_discriminates(want, pitch_readings([w.samples for w in windows_of(voice_like(40.0, seed=2))]))
    s = cache.stats()
    assert s["windows_whole"] == 1 and s["windows_cached"] == len(ws) - 1


def test_edge_frames_are_recomputed_inner_frames_reused():
    """A window's edge frames differ from the same place's frames in the window before (padding, filter edge):
    reusing them would be wrong; frames at least FRAME_REACH inside both windows are equal to the bit."""
    audio = voice_like(14.0, seed=3)
    first, second = pitch_frames([audio[:WINDOW], audio[HOP:HOP + WINDOW]])
    d = HOP // 320  # frames between the two windows
    # frame t of the second window is frame t + d of the first
    inner = slice(-(-FRAME_REACH // 320), (WINDOW - FRAME_REACH) // 320 + 1 - d)
    np.testing.assert_array_equal(second.f0_hz[inner], first.f0_hz[inner.start + d: inner.stop + d])
    np.testing.assert_array_equal(second.voicing[inner], first.voicing[inner.start + d: inner.stop + d])
    # the first window's tail edge frames are not the second window's frames at the same place
    last = first.f0_hz.size - 1
    assert not np.array_equal(first.voicing[last - 1:], second.voicing[last - 1 - d: last + 1 - d])


def test_gap_restart_rewind_and_end_start_a_stream_over():
    audio = voice_like(30.0, seed=4)
    ws = windows_of(audio, gap_at={3})
    cache = PitchFrameCache()
    plan = ws[:6] + windows_of(audio, epoch=2, first=6, count=2) + windows_of(audio, epoch=2, first=2, count=2)
    got = read_all(cache, [[w] for w in plan])
    for g, w in zip(got, pitch_readings([w.samples for w in plan])):
        assert_same_reading(g, w)
    s = cache.stats()
    assert (s["resets_gap"], s["resets_restart"], s["resets_rewind"]) == (1, 1, 1)
    # whole: the first window, the gap window, the new sender run's first, the rewound one
    assert s["windows_whole"] == 4 and s["windows_cached"] == len(plan) - 4
    assert cache.stream_frames("s1") > 0
    cache.drop("s1", "ended")
    assert cache.stream_frames("s1") == 0 and cache.stats()["resets_ended"] == 1 and cache.stats()["bytes"] == 0
    cache.readings([ws[7]])  # the stream starts over: read whole
    assert cache.stats()["windows_whole"] == 5


def test_replayed_audio_after_a_gap_is_a_miss_not_a_stale_hit():
    """A window with a zero-filled gap, then the next window with the real audio there (the sender replayed
    it): the frames held from the zeros are not reused for the real audio."""
    audio = voice_like(16.0, seed=5)
    holed = audio.copy()
    holed[3 * SR:4 * SR] = 0.0
    first = windows_of(holed, gap_at={0}, count=1)
    second = windows_of(audio, first=1, count=1)
    cache = PitchFrameCache()
    got = read_all(cache, [first, second])
    assert_same_reading(got[1], pitch_readings([second[0].samples])[0])
    assert differs(pitch_readings([holed[HOP:HOP + WINDOW]])[0], got[1])  # a stale hit would have read this
    assert cache.stats()["mismatches"] == 1 and cache.stats()["windows_whole"] == 2


def test_a_hop_off_the_frame_grid_reads_whole_windows():
    hop = SR + 160  # 1.01 s: not a whole number of 20 ms frames
    ws = windows_of(voice_like(16.0, seed=6), hop=hop, length=4 * SR)
    cache = PitchFrameCache()
    got = read_all(cache, [[w] for w in ws])
    for g, w in zip(got, pitch_readings([w.samples for w in ws])):
        assert_same_reading(g, w)
    s = cache.stats()
    assert s["windows_cached"] == 0 and s["frames_reused"] == 0 and s["resets_off_grid"] == len(ws) - 1


def test_a_silent_window_keeps_nothing():
    audio = voice_like(20.0, seed=7)
    audio[4 * SR:14 * SR] = 0.0  # the window at 4 s is silent
    ws = windows_of(audio, count=5)
    cache = PitchFrameCache()
    got = read_all(cache, [[w] for w in ws])
    assert got[2] == PitchReading(0.0, 0.0)
    for g, w in zip(got, pitch_readings([w.samples for w in ws])):
        assert_same_reading(g, w)
    s = cache.stats()
    assert s["windows_silent"] == 1 and s["windows_whole"] == 2  # the first window and the one after the silence


def test_streams_never_mix():
    """Two streams on the same timeline positions with different audio, in the same batches and in turns."""
    a, b = windows_of(voice_like(30.0, seed=8), "a"), windows_of(voice_like(30.0, seed=9), "b")
    cache = PitchFrameCache()
    got_same = read_all(cache, [[x, y] for x, y in zip(a, b)])
    cache.drop("a")
    cache.drop("b")
    got_turns = read_all(cache, [[w] for pair in zip(b, a) for w in pair])
    want = [r for x, y in zip(a, b) for r in pitch_readings([x.samples, y.samples])]
    want_turns = [r for x, y in zip(b, a) for r in pitch_readings([x.samples, y.samples])]
    for g, w in zip(got_same + got_turns, want + want_turns):
        assert_same_reading(g, w)
    assert_discriminates(want[0::2], want[1::2])
    assert cache.stats()["mismatches"] == 0


def test_memory_is_bounded_per_stream_and_in_streams():
    """A stream holds its latest window's inner frames (16 bytes each) and one check sample per frame, whatever
    its length; beyond max_streams the least recently seen stream is dropped."""
    ws = windows_of(voice_like(60.0, seed=10))
    cache = PitchFrameCache(max_streams=2)
    held = []
    for w in ws:
        cache.readings([w])
        held.append(cache.stream_bytes("s1"))
    frames = 1 + (WINDOW // 2) // 160
    assert cache.stream_frames("s1") == frames - 4  # 2 edge frames at each end are never kept
    assert len(set(held)) == 1 and held[0] <= frames * (4 + 4 + 8) + frames * 4
    for sid in ("t", "u"):
        cache.readings(windows_of(voice_like(10.0, seed=11), sid))
    s = cache.stats()
    assert s["streams"] == 2 and s["streams_evicted"] == 1 and cache.stream_frames("s1") == 0
    assert s["bytes"] == cache.stream_bytes("t") + cache.stream_bytes("u")


# ---- the model stage ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    from edge_coat.model.tiny import tiny_coat_model

    torch.set_num_threads(1)
    return tiny_coat_model("qwen2_audio", max_seconds=1, chunk_features="chunk")


def test_the_stage_reads_pitch_through_the_cache(model):
    from edge_coat.worker.coat_stage import CoatStage

    cfg = ModelSection(path="unused", readings=["pitch"])
    on, off = CoatStage(cfg, model=model), CoatStage(cfg, model=model, pitch_cache=False)
    assert off.pitch_cache is None and "pitch_cache" not in off.stats()
    ws = [w for w in windows_of(voice_like(20.0, seed=12), length=5 * SR, hop=SR)]
    for w in ws:
        w_on, w_off = on.process([w])[0], off.process([w])[0]
        assert w_on.readings["pitch_hz"] == pytest.approx(w_off.readings["pitch_hz"], rel=PITCH_REL)
        assert w_on.readings["voiced_ratio"] == pytest.approx(w_off.readings["voiced_ratio"], abs=RATIO_ABS)
    s = on.stats()["pitch_cache"]
    assert s["windows_cached"] == len(ws) - 1 and s["streams"] == 1
    on.end_stream(EndOfStream(stream_id="s1", ts=20.0, reason="ended"))
    assert on.pitch_cache.stream_frames("s1") == 0 and on.stats()["pitch_cache"]["resets_ended"] == 1
