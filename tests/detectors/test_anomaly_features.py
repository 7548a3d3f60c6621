"""The anomaly detector on real generated machine sound: log-mel profile features, enrollment,
persistence, staleness, and ``edge-coat eval --task anomaly`` sharing the detector's scoring."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edge_coat.data.factory import render_clip, write_dataset
from edge_coat.detectors import AnomalyConfig, AnomalyDetector, EpisodeConfig
from edge_coat.detectors.features import MEL_BINS, mel_statistics, window_features
from edge_coat.messages import SAMPLE_RATE, Window, WindowResult

SECONDS = 2.0


def result(stream: str, index: int, wave: np.ndarray, p_abnormal: float = 0.5) -> WindowResult:
    start = 1_700_000_000.0 + index * SECONDS
    window = Window(stream_id=stream, index=index, start_sample=int(index * SECONDS * SAMPLE_RATE), start_ts=start,
                    end_ts=start + SECONDS, samples=wave, rms_dbfs=-26.0, tasks=("anomaly",))
    return WindowResult(window=window, label_probs={"anomaly": {"normal": 1 - p_abnormal, "abnormal": p_abnormal}},
                        model_name="test", model_version="0")


def pump(seed: int, fault: str | None = None) -> np.ndarray:
    return render_clip("pump", seed=seed, duration_s=SECONDS, fault=fault, onset_s=0.0, severity=0.8).wave


def detector(tmp_path, **kw) -> AnomalyDetector:
    return AnomalyDetector(AnomalyConfig(profile_dir=tmp_path / "profiles", min_enroll_windows=8, k=3,
                                         episode=EpisodeConfig(cooldown_s=0), **kw))


def test_mel_statistics_ignore_loudness_and_see_a_fault():
    wave = pump(1)
    base = mel_statistics(wave)
    assert base.shape == (2 * MEL_BINS,)
    np.testing.assert_allclose(mel_statistics(0.25 * wave), base, atol=2e-3)  # -12 dB: the same vector
    squeal = mel_statistics(pump(1, "squeal"))  # same seed: identical machine sound plus the squeal
    assert np.abs(squeal - base).max() > 50 * np.abs(mel_statistics(0.25 * wave) - base).max()


def test_mel_statistics_reject_bad_windows_clearly():
    with pytest.raises(ValueError, match=r"\(num_samples,\) mono audio.*got shape \(2, 16000\)"):
        mel_statistics(np.zeros((2, 16000), np.float32))
    with pytest.raises(ValueError, match="at least 1600 samples"):
        mel_statistics(np.zeros(100, np.float32))
    bad = pump(2)
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        mel_statistics(bad)
    with pytest.raises(ValueError, match="features must be one of"):
        window_features(result("p", 0, pump(2)), "spectrogram")


def test_enrolled_mel_profile_separates_faults_persists_and_reloads(tmp_path):
    det = detector(tmp_path)
    det.start_enrollment("pump-1", windows=10)
    for i in range(10):
        assert det.process(result("pump-1", i, pump(100 + i))) == []
    status = det.enrollment_status("pump-1")
    assert status.state == "ready" and status.profile["features"] == "mel"
    assert json.loads((tmp_path / "profiles" / "pump-1.json").read_text())["features"] == "mel"

    normal = [det.score(result("pump-1", 20 + i, pump(200 + i)))["profile_score"] for i in range(4)]
    faults = [det.score(result("pump-1", 30 + i, pump(300 + i, f)))["profile_score"]
              for i, f in enumerate(("squeal", "bearing", "cavitation"))]
    assert max(normal) < min(faults), (normal, faults)
    assert min(faults) > 0.5  # beyond the 95th percentile of the normal enrollment distances

    again = detector(tmp_path)  # a restarted worker reads the saved profile
    probe = result("pump-1", 40, pump(300, "squeal"))
    assert again.score(probe) == pytest.approx(det.score(probe))
    events = []
    for i in range(3):
        events += again.process(result("pump-1", 50 + i, pump(400 + i, "squeal")))
    assert [e.phase for e in events] == ["start"] and "distance" in events[0].evidence["scores"]


def test_profile_of_other_features_is_stale_until_re_enrolled(tmp_path):
    rng = np.random.default_rng(0)
    old = detector(tmp_path, features="thinking")
    old.enroll_from_results("pump-2", [
        WindowResult(window=result("pump-2", i, pump(500 + i)).window, label_probs={},
                     thinking=rng.normal(size=(4, 8)).astype(np.float32)) for i in range(8)])
    det = detector(tmp_path)  # features="mel" now, same profile folder
    scores = det.score(result("pump-2", 9, pump(509), p_abnormal=0.7))
    assert scores == {"p_abnormal": 0.7, "score": 0.7}  # the model's judgement only
    status = det.enrollment_status("pump-2")
    assert status.state == "stale" and "'thinking' features" in status.message
    det.enroll_from_results("pump-2", [result("pump-2", i, pump(600 + i)) for i in range(8)])
    assert det.enrollment_status("pump-2").state == "ready"
    assert "profile_score" in det.score(result("pump-2", 9, pump(509)))


@pytest.mark.slow  # ~15-25 s on the shared VM: 28 generated clips through a tiny model and the eval command
def test_eval_anomaly_scores_clips_with_the_detectors_mel_profile(tmp_path):
    """`edge-coat eval --task anomaly` on generated pumps: an untrained tiny model's own judgement is
    near chance, the mel profile separates the faults; the per-clip score is the detector's fused score."""
    from edge_coat.cli import main
    from edge_coat.model.tiny import tiny_coat_model

    model_dir = tiny_coat_model("qwen2_audio", max_seconds=1).save_pretrained(tmp_path / "m")
    data = tmp_path / "pumps"
    write_dataset(data, 28, seed=7, duration_s=1.0, machines=("pump",), faults=("squeal", "bearing", "cavitation"),
                  severity_range=(0.8, 1.0), onset_range=(0.0, 0.1))
    labels = [r["label"] for r in csv.DictReader(open(data / "labels.csv"))]
    assert labels.count("normal") >= 8 and labels.count("abnormal") >= 4
    out = tmp_path / "a.json"
    assert main(["eval", "--model", str(model_dir), "--task", "anomaly", "--data", str(data), "--json", str(out),
                 "--model-weight", "0.2"]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert m["features"] == "mel" and m["model_weight"] == 0.2
    assert m["auc_distance"] >= 0.95 and m["auc"] >= 0.9
    assert m["auc_distance"] > m["auc_model"] + 0.2
    assert main(["eval", "--model", str(model_dir), "--task", "anomaly", "--data", str(data),
                 "--anomaly-k", "0"]) == 2  # a bad option is a clear error, not a traceback


def test_calibration_leaves_out_windows_that_share_audio():
    """Windows with hop < length share audio with their neighbours: with their spans known, the
    leave-one-out calibration skips them, so the threshold is not set by near-copies."""
    from edge_coat.detectors.profile import NormalProfile

    wave = render_clip("fan", seed=5, duration_s=6.0).wave
    starts = np.arange(0.0, 5.0 + 1e-9, 0.25)  # 1 s windows every 0.25 s
    vectors = np.stack([mel_statistics(wave[int(s * SAMPLE_RATE):int((s + 1) * SAMPLE_RATE)]) for s in starts])
    spans = np.stack([starts, starts + 1.0], axis=1)  # (N, 2)
    plain = NormalProfile.fit(vectors, k=3, features="mel")
    aware = NormalProfile.fit(vectors, k=3, features="mel", spans=spans)
    assert aware.median > 1.2 * plain.median and aware.threshold > plain.threshold
    apart = np.stack([10 * starts, 10 * starts + 1.0], axis=1)  # spans that never overlap: plain leave-one-out
    apart = NormalProfile.fit(vectors, k=3, features="mel", spans=apart)
    np.testing.assert_allclose(apart.calib, plain.calib, rtol=1e-6)
    with pytest.raises(ValueError, match=r"spans must have shape \(21, 2\)"):
        NormalProfile.fit(vectors, k=3, spans=spans[:5])


def with_latents(res: WindowResult, latents: np.ndarray | None) -> WindowResult:
    return WindowResult(window=res.window, label_probs=res.label_probs, thinking=latents, model_name="test",
                        model_version="0")


def test_mel_plus_thinking_is_both_vectors_in_one_and_needs_latents():
    wave = pump(3)
    latents = np.arange(32, dtype=np.float32).reshape(4, 8)
    vec = window_features(with_latents(result("p", 0, wave), latents), "mel+thinking")
    assert vec.shape == (2 * MEL_BINS + 8,)
    np.testing.assert_array_equal(vec[:2 * MEL_BINS], mel_statistics(wave))
    np.testing.assert_allclose(vec[2 * MEL_BINS:], latents.mean(axis=0))
    assert window_features(with_latents(result("p", 0, wave), latents), "mel+thinking", "flatten").shape == \
        (2 * MEL_BINS + 32,)
    assert window_features(result("p", 0, wave), "mel+thinking") is None  # no latents: nothing to compare
    assert AnomalyConfig(features="mel+thinking").threshold_floors() == AnomalyConfig(features="mel").threshold_floors()


def test_mel_plus_thinking_profile_sees_a_fault_only_the_latents_carry(tmp_path):
    """A fault that changes nothing in the audio but the model's latents (a stand-in for what the thinking
    block hears) is found by 'mel+thinking' and not by 'mel'; a fault in the audio still is; latents of
    another shape make the profile stale, not a crash."""
    rng = np.random.default_rng(1)
    normal_latents = lambda: rng.normal(0, 1, size=(4, 8)).astype(np.float32)  # noqa: E731
    both, mel = detector(tmp_path / "a", features="mel+thinking"), detector(tmp_path / "b", features="mel")
    enroll = [with_latents(result("pump-3", i, pump(700 + i)), normal_latents()) for i in range(12)]
    both.enroll_from_results("pump-3", enroll)
    mel.enroll_from_results("pump-3", enroll)
    assert both.enrollment_status("pump-3").profile["features"] == "mel+thinking"

    def scores(det, wave, latents, i):
        return det.score(with_latents(result("pump-3", 40 + i, wave), latents))["profile_score"]

    shifted = [normal_latents() + 8.0 for _ in range(3)]  # same audio as a normal window, latents far away
    normal = [scores(both, pump(800 + i), normal_latents(), i) for i in range(4)]
    assert max(normal) < min(scores(both, pump(800 + i), shifted[i], i) for i in range(3))
    assert min(scores(both, pump(800 + i), shifted[i], i) for i in range(3)) > 0.5
    assert max(scores(mel, pump(800 + i), shifted[i], i) for i in range(3)) < 0.5  # mel alone cannot see it
    assert scores(both, pump(900, "squeal"), normal_latents(), 9) > 0.5  # an audible fault still shows

    stale = both.score(with_latents(result("pump-3", 60, pump(901), p_abnormal=0.3),
                                    rng.normal(size=(2, 8)).astype(np.float32)))
    assert stale == {"p_abnormal": 0.3, "score": 0.3}
    assert "latents (4, 8)" in both.enrollment_status("pump-3").message
    with pytest.raises(ValueError, match="'mel\\+thinking'"):
        both.enroll_from_results("pump-4", [result("pump-4", i, pump(i)) for i in range(12)])
