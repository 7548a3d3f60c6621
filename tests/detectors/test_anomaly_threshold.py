"""The anomaly profile's alarm threshold on short, tight enrollments: the floors relative to the median
normal distance (profile.calibrated_threshold, AnomalyConfig.threshold_floors) keep a stationary machine
quiet on more of its own normal audio, and a real fault still starts an episode."""

from __future__ import annotations

import numpy as np
import pytest

from edge_coat.data.factory import render_clip
from edge_coat.detectors import AnomalyConfig, AnomalyDetector
from edge_coat.detectors.config import MEL_THRESHOLD_FLOORS
from edge_coat.detectors.profile import NormalProfile, calibrated_threshold
from edge_coat.messages import SAMPLE_RATE, Window, WindowResult

T0 = 1_700_000_000.0
CLIP_S = 40.0
ONSET_S = 30.0
ENROLL_WINDOWS = 23  # 1 s windows every 0.5 s over the first 12 s: the service test's kind of enrollment


def run_stream(detector: AnomalyDetector, wave: np.ndarray) -> list[tuple[str, float]]:
    """Enroll the first windows, feed the rest of ``wave`` as 1 s windows every 0.5 s (no model answer:
    the score is the profile's); return (phase, window end seconds from the clip start) per event."""
    detector.start_enrollment("m1", windows=ENROLL_WINDOWS)
    n, hop = SAMPLE_RATE, SAMPLE_RATE // 2
    events = []
    for i, s in enumerate(range(0, wave.size - n + 1, hop)):
        start = T0 + s / SAMPLE_RATE
        window = Window(stream_id="m1", index=i, start_sample=s, start_ts=start, end_ts=start + 1.0,
                        samples=wave[s:s + n], rms_dbfs=-26.0, tasks=("anomaly",))
        result = WindowResult(window=window, label_probs={})
        events += [(e.phase, e.window_end_ts - T0) for e in detector.process(result)]
    return events


@pytest.fixture(scope="module")
def fan():
    """A generated fan (dev seed, not the held-out one): 40 s normal, and the same audio with a squeal at 30 s."""
    normal = render_clip("fan", seed=3, duration_s=CLIP_S).wave
    faulty = render_clip("fan", seed=3, duration_s=CLIP_S, fault="squeal", onset_s=ONSET_S, severity=0.6).wave
    return normal, faulty


def detector(tmp_path, **kw) -> AnomalyDetector:
    return AnomalyDetector(AnomalyConfig(profile_dir=tmp_path / "profiles", min_enroll_windows=8, **kw))


def test_threshold_floors_follow_the_tightness_of_the_enrollment():
    rng = np.random.default_rng(0)
    tight = 1.0 + 0.01 * rng.standard_normal(24)  # (24,) held-out distances barely vary
    assert calibrated_threshold(tight, 99.0) == pytest.approx(np.percentile(tight, 99.0))
    assert calibrated_threshold(tight, 99.0, 5.0, 1.4) == pytest.approx(1.4 * np.median(tight))
    wide = np.concatenate([np.linspace(1.0, 2.0, 190), np.full(10, 6.0)])  # (200,) a machine with a loud mode:
    # the percentile already clears both floors
    assert calibrated_threshold(wide, 99.0, 5.0, 1.4) == pytest.approx(np.percentile(wide, 99.0))
    spread = np.concatenate([np.ones(12), np.full(12, 1.2)])  # median 1.1, MAD 0.1
    assert calibrated_threshold(spread, 99.0, 5.0, 1.0) == pytest.approx(1.1 + 5.0 * 1.4826 * 0.1)
    with pytest.raises(ValueError, match="non-empty finite"):
        calibrated_threshold(np.array([1.0, np.nan]), 99.0)


def test_defaults_floor_the_mel_profile_only_and_can_be_set():
    assert AnomalyConfig().threshold_floors() == MEL_THRESHOLD_FLOORS
    assert AnomalyConfig(features="thinking").threshold_floors() == (0.0, 1.0)  # measured on mel only
    assert AnomalyConfig(threshold_z=2.0, threshold_min_ratio=1.1).threshold_floors() == (2.0, 1.1)
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        AnomalyConfig(threshold_min_ratio=0.9)


def test_tight_enrollment_raises_no_false_alarm_on_more_normal_audio(tmp_path, fan):
    normal, _ = fan
    det = detector(tmp_path)
    assert run_stream(det, normal) == []
    status = det.enrollment_status("m1")
    assert status.state == "ready"
    assert "threshold raised" in status.message, status.message  # the floor, not the percentile, set it
    profile = NormalProfile.load(tmp_path / "profiles", "m1")
    assert profile.min_ratio == MEL_THRESHOLD_FLOORS[1] and profile.raised
    assert profile.threshold == pytest.approx(MEL_THRESHOLD_FLOORS[1] * profile.median)


def test_the_bare_percentile_alarms_on_the_same_normal_audio(tmp_path, fan):
    """The contrast that makes the test above mean something: without the floors, the 99th percentile of
    23 overlapping enrollment windows is crossed by the same machine's normal drift."""
    normal, _ = fan
    events = run_stream(detector(tmp_path, threshold_z=0.0, threshold_min_ratio=1.0), normal)
    assert [p for p, _ in events if p == "start"], events


def test_a_real_fault_still_starts_an_episode_soon_after_its_onset(tmp_path, fan):
    _, faulty = fan
    starts = [t for p, t in run_stream(detector(tmp_path), faulty) if p == "start"]
    assert len(starts) == 1, starts
    assert ONSET_S < starts[0] <= ONSET_S + 3.0  # within a few windows of the onset, none before it
