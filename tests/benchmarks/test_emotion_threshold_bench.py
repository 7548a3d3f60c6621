"""bench/tuning/emotion_threshold.py: the detector replay, the scoring of a setting and the choice rule on
hand-built window readings; the calls it builds from the real corpora (skipped without ../shared/data); the
model readings and their cache on two short real calls (skipped without the data or models/coat-tiny)."""

from __future__ import annotations

import pytest

from bench.tuning import emotion_threshold as et

LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


def probs(angry: float, sad: float = 0.05) -> list[float]:
    rest = (1.0 - angry - sad) / 6
    return [rest, rest, rest, sad, angry, rest, rest, rest]


def rows(values, hop: float = 2.0, window: float = 10.0, speech: float = 0.9) -> list[list]:
    """Window rows as the cache holds them; a value of None is a window the gate kept from the model."""
    return [[i * hop, i * hop + window, -25.0, speech if v is not None else 0.0, None if v is None else probs(*v)]
            for i, v in enumerate(values)]


def call(kind: str, onset: float = 0.0, name: str | None = None) -> et.Call:
    return et.Call(name or f"x/1/{kind}", "x", "1", kind, "dev", ("a.wav",), onset)


SETTING = {"negative_labels": ["angry"], "ema_alpha": 1.0, "on_threshold": 0.4, "on_windows": 2}


def test_a_setting_counts_alerts_after_the_onset_early_alerts_and_false_alerts():
    calls = [call("angry"), call("calm>angry", onset=12.0), call("calm"), call("happy", name="x/1/happy"),
             call("sad")]
    readings = {
        "x/1/angry": rows([(0.5,), (0.5,), (0.5,), (0.5,)]),  # alert at the 2nd window (ends 12 s)
        "x/1/calm>angry": rows([(0.1,), (0.1,), (0.1,), (0.6,), (0.6,), (0.6,)]),  # on from 6 s: alert at 18 s
        "x/1/calm": rows([(0.45,), (0.45,), (0.1,)]),  # two windows over 0.4: a false alert
        "x/1/happy": rows([(0.45,), None, (0.45,)]),  # a gated window between neither counts nor resets
        "x/1/sad": rows([(0.1, 0.8), (0.1, 0.8)]),  # sad is not negative in this setting
    }
    results = {c: et.results_of(c, LABELS, r) for c, r in readings.items()}
    per_kind = et.score_setting(et.config_of(SETTING), calls, results)
    assert per_kind["angry"] == {"calls": 1, "alerted": 1, "early": 0, "delays": [12.0]}
    assert per_kind["calm>angry"] == {"calls": 1, "alerted": 1, "early": 0, "delays": [6.0]}
    assert per_kind["calm"]["alerted"] == 1 and per_kind["happy"]["alerted"] == 1
    assert per_kind["sad"]["alerted"] == 0
    s = et.summarise(per_kind)
    assert s["angry"] == 1.0 and s["angry_only"] == 1.0 and s["false"] == 1.0 and s["early"] == 0.0
    assert s["negative"] == 2 / 3 and s["n"]["calm"] == 2 and s["delay_median_s"] == 9.0
    with_sad = et.score_setting(et.config_of({**SETTING, "negative_labels": ["angry", "sad"]}), calls, results)
    assert with_sad["sad"]["alerted"] == 1


def test_the_off_threshold_sits_below_the_on_threshold_and_never_below_zero():
    assert et.config_of({**SETTING, "on_threshold": 0.5}).episode.off_threshold == pytest.approx(0.3)
    assert et.config_of({**SETTING, "on_threshold": 0.1}).episode.off_threshold == 0.0


def test_choose_maximises_worst_case_angry_detection_within_the_false_alert_bound():
    def row(angry, false, early=0.0, delay=4.0):
        return {"angry": angry, "false": false, "early": early, "delay_median_s": delay}

    sweeps = [{"loose": row(1.0, 0.3), "good": row(0.8, 0.05), "tight": row(0.5, 0.0),
               "faster": row(0.8, 0.05, delay=2.0)},
              {"loose": row(1.0, 0.2), "good": row(0.7, 0.1), "tight": row(0.5, 0.0), "faster": row(0.6, 0.0)}]
    assert et.choose(sweeps, 0.1) == "good"  # "faster" is worse in the second scenario
    assert et.choose(sweeps, 0.0) == "tight"
    sweeps[0]["tight"]["early"] = 0.5
    assert et.choose(sweeps, 0.0) is None
    assert len({et.name_of(s) for s in et.grid()}) == len(et.grid())
    assert et.name_of(et.PREVIOUS) in {et.name_of(s) for s in et.grid()}  # the old defaults are in the sweep


def test_current_defaults_are_a_grid_setting():
    """The row "current" replays EmotionConfig() exactly: its setting is in the sweep, and config_of rebuilds it."""
    from edge_coat.detectors.config import EmotionConfig

    current = et.current_setting()
    assert et.name_of(current) in {et.name_of(s) for s in et.grid()}
    assert et.config_of(current) == EmotionConfig()


def test_calls_from_the_real_corpora_follow_the_speaker_split(shared_data):
    speakers = {"ravdess": {"01", "14"}, "turev": {"1984"}}
    calls = et.build_calls(shared_data, corpora=("ravdess", "turev"), speakers=speakers)
    assert calls == et.build_calls(shared_data, corpora=("ravdess", "turev"), speakers=speakers)  # deterministic
    assert {(c.corpus, c.speaker, c.split) for c in calls} == {("ravdess", "01", "dev"), ("ravdess", "14", "heldout"),
                                                              ("turev", "1984", "heldout")}
    assert {c.kind for c in calls if c.corpus == "ravdess"} == set(et.KINDS)
    assert {c.kind for c in calls if c.corpus == "turev"} <= set(et.KINDS) - {"fearful", "disgust"}  # TurEV lacks them
    labels = {c.file: c.label for c in et.DatasetFolder(shared_data / "ravdess", check_audio=False)}
    for c in calls:
        seconds = [et.clip_seconds(shared_data / c.corpus, f) + et.PAUSE_S for f in c.files]
        assert et.MIN_CALL_S <= sum(seconds) < et.CALL_S + 15, c.call_id
        assert len(set(c.files)) == len(c.files)
        if c.corpus != "ravdess":
            continue
        if c.kind == "calm>angry":
            n_lead = sum(labels[f] in et.CALM for f in c.files)
            assert c.files[:n_lead] and all(labels[f] == "angry" for f in c.files[n_lead:])
            assert c.onset_s == pytest.approx(sum(seconds[:n_lead]))
            assert et.CALL_S / 2 <= c.onset_s < sum(seconds) - et.MIN_CALL_S / 2 + 1e-6
        else:
            assert c.onset_s == 0.0 and {labels[f] for f in c.files} <= set(et.KINDS[c.kind][1])


def test_model_readings_are_cached_per_model_and_scenario(shared_data, tmp_path, monkeypatch):
    if not (et.REPO / "models" / "coat-tiny" / "coat_config.json").is_file():
        pytest.skip("models/coat-tiny is not in this checkout")
    calls = et.build_calls(shared_data, corpora=("ravdess",), speakers={"ravdess": {"14"}}, kinds=("angry",),
                           call_s=et.MIN_CALL_S)
    assert len(calls) == 1
    model = et.REPO / "models" / "coat-tiny"
    labels, got = et.readings(calls, model, (4.0, 2.0), "clean", tmp_path, shared_data)
    assert set(labels) >= {"angry", "neutral"} and set(got) == {"ravdess/14/angry"}
    windows = got["ravdess/14/angry"]
    assert [w[:2] for w in windows] == [[2.0 * i, 2.0 * i + 4.0] for i in range(len(windows))]
    scored = [w for w in windows if w[4] is not None]
    assert scored and all(abs(sum(w[4]) - 1.0) < 1e-3 and w[3] >= et.GATE["min_speech_ratio"] for w in scored)
    monkeypatch.setattr(et, "_scorer", lambda *a: pytest.fail("the second run must read the cache"))
    assert et.readings(calls, model, (4.0, 2.0), "clean", tmp_path, shared_data) == (labels, got)


def _tiny_scorer(desk: bool) -> et.Scorer:
    """A Scorer over the tiny model with a random emotion readout relative to a desk baseline (or absolute)."""
    import numpy as np
    import torch

    from edge_coat.config import ModelSection
    from edge_coat.model import tiny_coat_model
    from edge_coat.service.service import speech_presence
    from edge_coat.worker.coat_stage import CoatStage

    torch.set_num_threads(1)
    model = tiny_coat_model("qwen2_audio", seed=0, max_seconds=2)
    model.set_readout_input("tower")
    labels = list(model.config.tasks["emotion"].labels)
    g = torch.Generator().manual_seed(0)
    dim = model.readout.feature_dim
    weight = 0.02 * torch.randn(len(labels), dim, generator=g)  # small: probabilities far from saturated
    model.readout.set_task("emotion", labels, weight, torch.zeros(len(labels)),
                           center=torch.randn(dim, generator=g) if desk else None)
    model.config.readout, model.config.readout_relative = {"emotion": labels}, model.readout.relative
    model.config.readout_baseline, model.config.readout_baseline_windows = "desk", 2
    scorer = et.Scorer.__new__(et.Scorer)
    scorer.stage = CoatStage(ModelSection(path="unused", readings=[]), model=model)
    scorer.labels, scorer.speech_fn, scorer.max_batch = labels, speech_presence("auto"), 8
    scorer.desk, scorer.calls = desk, 0
    np.random.seed(0)
    return scorer


def test_a_desk_readout_hears_every_call_of_a_corpus_on_one_desk(shared_data):
    import numpy as np

    calls = et.build_calls(shared_data, corpora=("ravdess",), speakers={"ravdess": {"14", "15"}}, kinds=("angry",),
                           call_s=et.MIN_CALL_S)
    waves = [et.render(c, shared_data) for c in calls]
    desk = _tiny_scorer(True)
    first = desk(calls[0].call_id, waves[0], 2.0, 2.0, desk="d")
    taken = desk.stage._desks["d"].count
    second = desk(calls[1].call_id, waves[1], 2.0, 2.0, desk="d")
    alone = _tiny_scorer(True)(calls[1].call_id, waves[1], 2.0, 2.0, desk="other")
    assert taken > 0 and desk.stage._desks["d"].count > taken  # both calls' speech windows, on one desk
    assert sum(w[4] is not None for w in first + second) >= desk.stage._desks["d"].count
    # the second call starts on a desk that heard the first: its first window is not scored as a cold desk's is
    k = next(i for i, w in enumerate(second) if w[4] is not None)
    assert np.abs(np.array(second[k][4]) - np.array(alone[k][4])).max() > 1e-4
    # a model without a desk readout keeps one stream per call, as before
    plain = _tiny_scorer(False)
    plain(calls[0].call_id, waves[0], 2.0, 2.0, desk="d")
    assert not plain.stage._desks
