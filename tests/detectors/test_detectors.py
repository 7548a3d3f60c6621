"""Anomaly and emotion detectors on scripted WindowResult sequences."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_coat.detectors import AnomalyConfig, DetectorSet, DetectorsConfig, EmotionConfig, EpisodeConfig
from edge_coat.detectors.profile import NormalProfile

from .helpers import emotions, window_result

K, D = 4, 16


def normal_latents(rng, n):
    return rng.normal(0.0, 1.0, size=(n, K, D)).astype(np.float32)  # (N, K, D)


def make_set(tmp_path, **anomaly):
    anomaly.setdefault("features", "thinking")  # these tests script the latents; mel features: test_anomaly_features.py
    cfg = DetectorsConfig(
        anomaly=AnomalyConfig(profile_dir=tmp_path / "profiles", min_enroll_windows=10, k=3,
                              episode=EpisodeConfig(on_windows=2, off_windows=2, cooldown_s=0), **anomaly),
        emotion=EmotionConfig(ema_alpha=1.0, episode=EpisodeConfig(on_threshold=0.6, off_threshold=0.4,
                                                                   on_windows=3, off_windows=2, cooldown_s=0)),
    )
    return DetectorSet(cfg)


def test_stream_without_profile_says_so_and_reports_the_model_judgement(tmp_path):
    det = make_set(tmp_path)
    phases = []
    for i, p in enumerate([0.1, 0.9, 0.95, 0.9, 0.1, 0.1]):
        phases += [(r.phase, r.score) for r in det.process(window_result("press-1", i, anomaly=p))]
    status = det.stream_status("press-1")
    anomaly = status.detectors["anomaly"]
    assert anomaly.kind == "anomaly" and anomaly.enrollment.state == "none"
    assert "no normal profile" in anomaly.enrollment.message and "no normal profile" in anomaly.note
    assert anomaly.details["model_only"] is True
    assert status.enrollment() == anomaly.enrollment
    assert status.detectors["emotion"].enrollment is None
    assert phases == [("start", 0.95), ("end", 0.95)]


@pytest.mark.parametrize("method", ["knn", "mahalanobis"])
def test_enrollment_is_persisted_reloaded_and_separates_abnormal_latents(tmp_path, method):
    rng = np.random.default_rng(0)
    det = make_set(tmp_path, method=method)
    status = det.start_enrollment("press-2", windows=40)
    assert status.state == "enrolling"
    for i, lat in enumerate(normal_latents(rng, 40)):
        # the model's own judgement is noisy; enrollment windows never raise events
        assert det.process(window_result("press-2", i, anomaly=0.9, thinking=lat)) == []
    assert det.get_enrollment("press-2").state == "ready"
    meta = json.loads((tmp_path / "profiles" / "press-2.json").read_text())
    assert meta["n"] == 40 and meta["method"] == method

    # a fresh detector (worker restart) reloads the profile from disk
    det2 = make_set(tmp_path, method=method)
    assert det2.get_enrollment("press-2").state == "ready"
    events = []
    normal = normal_latents(rng, 10)
    abnormal = normal_latents(rng, 6) + 4.0  # shifted: far from the profile
    seq = [*normal[:5], *abnormal, *normal[5:]]
    for i, lat in enumerate(seq):
        events += det2.process(window_result("press-2", 100 + i, anomaly=0.5, thinking=lat))
    assert [e.phase for e in events] == ["start", "end"]
    start = events[0]
    assert start.kind == "anomaly" and start.label == "abnormal" and start.score > 0.5
    ev = start.evidence
    assert ev["scores"]["distance"] > ev["scores"]["threshold_distance"]
    assert ev["scores"]["p_abnormal"] == 0.5
    assert ev["readings"]["pitch_hz"] == 180.0 and ev["tags"][0] == ["Speech", 0.9]
    assert ev["model"] == {"name": "coat-tiny", "version": "0.1"}
    assert ev["window"]["end_ts"] > ev["window"]["start_ts"]
    assert "abnormal sound" in start.text
    json.dumps(ev)  # evidence is JSON-serialisable


def test_threshold_is_calibrated_on_held_out_normal_scores(tmp_path):
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(200, D))
    prof = NormalProfile.fit(vecs[:150], k=5, percentile=90.0)
    # fresh normal vectors exceed the threshold at about the chosen rate, not (optimistically) never
    exceed = np.mean([prof.score(prof.distance(v)) > 0.5 for v in vecs[150:]])
    assert 0.0 < exceed < 0.35
    in_sample = prof.distance(vecs[0])  # its own point is at distance 0 from itself
    assert prof.score(in_sample) < 0.5


def test_stale_profile_falls_back_to_model_judgement(tmp_path):
    rng = np.random.default_rng(2)
    det = make_set(tmp_path)
    det.enroll_from_results("press-3", [window_result("press-3", i, thinking=lat)
                                        for i, lat in enumerate(normal_latents(rng, 12))])
    wrong = rng.normal(size=(K, D + 1)).astype(np.float32)
    det.process(window_result("press-3", 50, anomaly=0.2, thinking=wrong))
    status = det.get_enrollment("press-3")
    assert status.state == "stale" and "re-enroll" in status.message


def test_enrollment_errors_are_clear(tmp_path):
    det = make_set(tmp_path)
    with pytest.raises(ValueError, match="at least 10"):
        det.start_enrollment("press-4", windows=3)
    with pytest.raises(ValueError, match="not enrolling"):
        det.stop_enrollment("press-4")
    det.start_enrollment("press-4", windows=20)
    rng = np.random.default_rng(3)
    for i, lat in enumerate(normal_latents(rng, 5)):
        det.process(window_result("press-4", i, anomaly=0.1, thinking=lat))
    with pytest.raises(ValueError, match="has 5 enrollment windows"):
        det.stop_enrollment("press-4", commit=True)
    assert det.stop_enrollment("press-4", commit=False).state == "none"


def test_emotion_one_alert_per_episode_with_an_end(tmp_path):
    det = make_set(tmp_path)
    seq = [0.1, 0.8, 0.9, 0.9, 0.95, 0.9, 0.85, 0.9, 0.2, 0.1, 0.1]
    events = []
    for i, a in enumerate(seq):
        events += det.process(window_result("call-1", i, emotion=emotions(a), speech_ratio=0.9))
    assert [(e.phase, e.label) for e in events] == [("start", "angry"), ("end", "angry")]
    assert events[0].episode_id == events[1].episode_id
    assert events[0].evidence["readings"]["speech_ratio"] == 0.9


def test_speech_free_windows_neither_raise_nor_reset(tmp_path):
    det = make_set(tmp_path)
    events = []
    # angry-looking probabilities on silence never raise
    for i in range(10):
        events += det.process(window_result("call-2", i, emotion=emotions(0.99), speech_ratio=0.0))
    assert events == []
    # two angry speech windows, a silent stretch, then one more: the run continues -> start
    seq = [(0.9, 0.9), (0.9, 0.9), (0.1, 0.0), (0.1, 0.05), (0.9, 0.8)]
    for i, (a, sr) in enumerate(seq):
        events += det.process(window_result("call-2", 10 + i, emotion=emotions(a), speech_ratio=sr))
    assert [e.phase for e in events] == ["start"]
    # silence during the episode does not end it; the stream closing does
    for i in range(5):
        events += det.process(window_result("call-2", 20 + i, emotion=emotions(0.0), rms_dbfs=-90.0))
    assert [e.phase for e in events] == ["start"]
    events += det.close_stream("call-2", ts=1e9)
    assert [e.phase for e in events] == ["start", "end"]
    assert "call ended during an angry episode" in events[-1].text


def test_bad_input_gets_a_clear_value_error(tmp_path):
    det = make_set(tmp_path)
    with pytest.raises(ValueError, match="sum to 1"):
        det.process(window_result("call-3", 0, emotion={"angry": 0.9, "neutral": 0.9}))
    # stream ids are checked where they enter (wire, config, control requests; tests/test_stream_id.py):
    # an enrollment request for a path-like id is refused, and no profile file is written for it
    with pytest.raises(ValueError, match="stream id"):
        det.start_enrollment("../etc", windows=8)
    with pytest.raises(ValueError, match="stream id"):
        det.stream_status("-pump")
    with pytest.raises(ValueError, match=r"shape \(K, D\)"):
        det.process(window_result("press-5", 0, anomaly=0.1, thinking=np.zeros(8, dtype=np.float32)))
    with pytest.raises(ValueError, match="WindowResult"):
        det.process({"stream": "x"})


def test_config_cross_field_errors_say_how_to_fix():
    with pytest.raises(ValueError, match="lower off_threshold"):
        EpisodeConfig(on_threshold=0.4, off_threshold=0.6)
    with pytest.raises(ValueError, match="lower k"):
        AnomalyConfig(k=10, min_enroll_windows=8)


def test_a_profile_saved_before_feature_sets_loads_as_thinking(tmp_path):
    """Profiles written before feature sets existed stored the vector width under "features"."""
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(30, 16)).astype(np.float32)  # (N, D)
    prof = NormalProfile.fit(vectors, method="knn", pooling="mean", k=3, percentile=99.0,
                             latent_shape=(4, 4), model_name="coat-tiny", model_version="0.1", features="mel")
    prof.save(tmp_path, "fan-1")
    meta_path = tmp_path / "fan-1.json"
    meta = json.loads(meta_path.read_text())
    assert meta["features"] == "mel" and meta["dim"] == 16
    assert NormalProfile.load(tmp_path, "fan-1").features == "mel"

    old = {k: v for k, v in meta.items() if k not in ("dim", "robust_z", "min_ratio")}
    old["features"] = 16  # the old layout
    meta_path.write_text(json.dumps(old))
    loaded = NormalProfile.load(tmp_path, "fan-1")
    assert loaded.features == "thinking" and loaded.threshold == pytest.approx(prof.threshold)


def test_profile_files_are_private(tmp_path):
    """Issue 15, defect 14: a normal profile describes a site's machines: 0600, whatever the umask."""
    import os
    import stat

    rng = np.random.default_rng(0)
    profile = NormalProfile.fit(rng.standard_normal((12, 4)), k=3)
    old = os.umask(0o022)
    try:
        npz = profile.save(tmp_path, "press-1")
    finally:
        os.umask(old)
    for path in (npz, tmp_path / "press-1.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert NormalProfile.load(tmp_path, "press-1").threshold == profile.threshold


def _tone_result(index: int, samples: np.ndarray, p_abnormal: float = 0.1):
    from dataclasses import replace

    r = window_result("tone-1", index, anomaly=p_abnormal)
    return replace(r, window=replace(r.window, samples=samples.astype(np.float32)))


def test_enrolling_on_a_steady_tone_floors_the_threshold_and_says_so(tmp_path):
    """Issue 15, defect 8: enrollment on gen:sine?freq=440&amp=0.3 gave threshold 0.000 and then an
    'abnormal sound (distance 0.00 vs threshold 0.00)' episode that never ended."""
    t = np.arange(32000) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)  # 2 s windows, 1 s hops: every window the same
    det = DetectorSet(DetectorsConfig(anomaly=AnomalyConfig(profile_dir=tmp_path, features="mel",
                                                            min_enroll_windows=8)))
    det.start_enrollment("tone-1", windows=10)
    for i in range(10):
        assert det.process(_tone_result(i, tone)) == []
    enr = det.get_enrollment("tone-1")
    assert enr.state == "ready" and enr.threshold > 1.0
    assert "degenerate enrollment" in enr.message and "distinct window" in enr.message
    assert enr.profile["degenerate"]
    events = [e for i in range(10, 40) for e in det.process(_tone_result(i, tone))]
    assert events == []  # the same tone is normal
    rng = np.random.default_rng(1)
    events = [e for i in range(40, 50) for e in det.process(_tone_result(i, tone + 0.2 * rng.standard_normal(32000)))]
    assert events and events[0].phase == "start"
    events = [e for i in range(50, 70) for e in det.process(_tone_result(i, tone))]
    assert [e.phase for e in events] == ["end"]  # and it ends when the tone is back
    assert NormalProfile.load(tmp_path, "tone-1").degenerate  # the reason is saved with the profile


def test_emotion_defaults_are_the_tuned_ones_and_alert_on_a_spread_out_angry_reading():
    """The defaults chosen by bench/tuning/emotion_threshold.py for coat-tiny 1.4 (BENCHMARKS.md "Emotion alert
    thresholds", 8e): an 8-class distribution whose top label is angry at 0.35 alerts on its third window in a row
    (no smoothing, on 0.3 for 3 windows); two angry windows between calm ones, a reading that stays under 0.3,
    sadness, fear or disgust however strong, do not."""
    from edge_coat.detectors.emotion import EmotionDetector

    cfg = EmotionConfig()
    assert cfg.negative_labels == ("angry",) and cfg.ema_alpha == 1.0
    ep = cfg.episode
    assert (ep.on_threshold, ep.off_threshold, ep.on_windows, ep.off_windows, ep.cooldown_s) == (0.3, 0.1, 3, 3, 10.0)

    def spread(top: str, p: float) -> dict:
        labels = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
        return {k: p if k == top else (1.0 - p) / 7 for k in labels}

    def starts(readings) -> list[int]:
        det = EmotionDetector()
        return [i for i, r in enumerate(readings) for ev in det.process(
            window_result("desk-1", i, emotion=r, speech_ratio=0.9)) if ev.phase == "start"]

    calm = [spread("neutral", 0.5)] * 3
    assert starts(calm + [spread("angry", 0.35)] * 5) == [5]  # the third window in a row over 0.3
    assert starts(calm + [spread("angry", 0.9)] * 2 + calm) == []  # two windows are a moment, not sustained anger
    assert starts(calm + [spread("angry", 0.25)] * 8) == []  # a reading that never reaches 0.3 never alerts
    assert starts(calm + [spread("sad", 0.9)] * 6) == []
    assert starts(calm + [spread("fearful", 0.9)] * 6) == []
    assert starts([spread("disgust", 0.9)] * 6) == []  # disgust is not a negative label any more (8e)
