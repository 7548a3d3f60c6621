"""Choosing the emotion detector's settings on labelled calls (``edge_coat.detectors.tuning``): the outcome of a call,
the criterion, folds that keep a caller together, and a cross-validation that scores each call only with a setting
chosen without it."""

from __future__ import annotations

from edge_coat.detectors import tuning
from edge_coat.detectors.config import EmotionConfig, EpisodeConfig

LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


def _rows(angry: list[float]) -> list[list]:
    """1 s windows every 1 s whose angry probability is given (the rest spread evenly), all speech."""
    out = []
    for i, a in enumerate(angry):
        rest = (1.0 - a) / (len(LABELS) - 1)
        out.append([float(i), i + 1.0, -30.0, 0.9, [a if lab == "angry" else rest for lab in LABELS]])
    return out


def _results(readings: dict[str, list[float]]):
    return {cid: tuning.results_of(cid, LABELS, _rows(a)) for cid, a in readings.items()}


def test_a_call_is_a_hit_after_its_onset_early_before_it_and_false_when_it_should_stay_quiet():
    cfg = tuning.config_of({"negative_labels": ["angry"], "ema_alpha": 1.0, "on_threshold": 0.5, "on_windows": 2})
    res = _results({"turns": [0.1] * 5 + [0.9] * 5, "early": [0.9] * 4 + [0.1] * 6, "quiet": [0.9] * 3})
    hit = tuning.outcome(cfg, tuning.LabelledCall("turns", True, onset_s=5.0), res["turns"])
    assert hit == {"hit": True, "false": False, "early": False, "delay_s": 2.0}  # 2 windows after the onset
    early = tuning.outcome(cfg, tuning.LabelledCall("early", True, onset_s=5.0), res["early"])
    assert early["early"] and not early["hit"] and not early["false"]
    false = tuning.outcome(cfg, tuning.LabelledCall("quiet", False), res["quiet"])
    assert false["false"] and not false["hit"]


def test_the_chosen_setting_alerts_on_the_angry_calls_and_stays_under_a_calm_call_that_reads_somewhat_angry():
    calls = [tuning.LabelledCall(f"a{i}", True) for i in range(3)] + [tuning.LabelledCall("q", False)]
    res = _results({"a0": [0.7] * 6, "a1": [0.62] * 6, "a2": [0.8] * 6, "q": [0.45] * 6})
    settings = tuning.grid(LABELS)
    table = tuning.outcome_table(settings, calls, res)
    j, tallies = tuning.choose_for_calls(settings, calls, table, max_false=0.0)
    s = settings[j]
    assert tallies[j]["hits"] == 3 and tallies[j]["false"] == 0
    assert 0.45 < s["on_threshold"] <= 0.6  # over the calm call's reading, at or under the weakest angry one
    # ties (hits, false alerts, delay) go to the more conservative setting: the highest bar that still catches every
    # angry call as soon
    assert s["on_threshold"] == 0.6 and s["on_windows"] == 2
    # allowing every call to alert falsely lets a lower bar win only on delay, never on hits
    j_any, t_any = tuning.choose_for_calls(settings, calls, table, max_false=1.0)
    assert t_any[j_any]["hits"] == 3
    # the grid leaves out label sets the model cannot read; a site may keep its own label set
    assert all(set(x["negative_labels"]) <= {"angry", "disgust"} for x in tuning.grid(["angry", "disgust", "calm"]))
    kept = tuning.grid(LABELS, [("angry", "sad")])
    assert {tuple(x["negative_labels"]) for x in kept} == {("angry", "sad")}
    assert len(kept) == len(tuning.ALPHAS) * len(tuning.ON_THRESHOLDS) * len(tuning.ON_WINDOWS)


def test_folds_keep_a_group_together_and_spread_the_alert_calls():
    calls = [tuning.LabelledCall(f"{g}-{k}", k % 2 == 0, group=g) for g in "abcdef" for k in range(4)]
    calls += [tuning.LabelledCall(f"solo{i}", i % 3 == 0) for i in range(6)]
    folds = tuning.folds_of(calls, 3, seed=1)
    assert sorted(i for f in folds for i in f) == list(range(len(calls)))
    for g in "abcdef":
        homes = {n for n, f in enumerate(folds) for i in f if calls[i].group == g}
        assert len(homes) == 1, g
    alerts = [sum(calls[i].alert for i in f) for f in folds]
    assert max(alerts) - min(alerts) <= 2 and min(alerts) > 0
    assert tuning.folds_of(calls, 3, seed=1) == folds  # deterministic


def test_cross_validation_scores_each_call_with_a_setting_chosen_without_it():
    # callers whose angry calls read 0.7, and one caller whose two angry calls read 0.42; calm calls read 0.3. Chosen
    # without that caller (its calls stay together), the bar sits over 0.42 and misses it; the pooled choice catches
    # everyone
    readings = {"hi1": [0.7] * 6, "hi2": [0.7] * 6, "lo-a": [0.42] * 6, "lo-b": [0.42] * 6}
    readings |= {f"q{i}": [0.3] * 6 for i in range(4)}
    calls = [tuning.LabelledCall(c, not c.startswith("q"), group=c.split("-")[0]) for c in readings]
    res = _results(readings)
    settings = tuning.grid(LABELS)
    table = tuning.outcome_table(settings, calls, res)
    current = [tuning.outcome(EmotionConfig(), c, res[c.call_id]) for c in calls]
    j, tallies = tuning.choose_for_calls(settings, calls, table, max_false=0.0)
    assert tallies[j]["hits"] == 4
    cv = tuning.cross_validate(settings, calls, table, current, k=3, max_false=0.0)
    assert cv["folds"] == 3 and cv["alert_calls"] == 4 and cv["quiet_calls"] == 4
    assert cv["hits"] == 2 and cv["false"] == 0  # the held-out caller's two calls are missed: worse than fitted
    # where no setting meets the bound on the other folds, a fold keeps the site's current settings
    loud = {f"q{i}": [0.95] * 6 for i in range(4)} | {"hi1": [0.95] * 6, "hi2": [0.95] * 6}
    calls2 = [tuning.LabelledCall(c, c.startswith("hi")) for c in loud]
    res2 = _results(loud)
    table2 = tuning.outcome_table(settings, calls2, res2)
    fallback = [{"hit": False, "false": False, "early": False, "delay_s": None} for _ in calls2]
    cv2 = tuning.cross_validate(settings, calls2, table2, fallback, k=2, max_false=0.0)
    assert cv2["chosen"] == [None, None] and cv2["hits"] == 0 and cv2["false"] == 0


def test_a_site_setting_keeps_every_field_the_grid_does_not_set():
    base = EmotionConfig(min_speech_ratio=0.5, episode=EpisodeConfig(on_threshold=0.3, off_threshold=0.1,
                                                                     cooldown_s=120.0, update_every_s=15.0))
    got = tuning.config_of({"negative_labels": ["angry", "disgust"], "ema_alpha": 0.5, "on_threshold": 0.45,
                            "on_windows": 3}, base)
    assert got.negative_labels == ("angry", "disgust") and got.ema_alpha == 0.5 and got.min_speech_ratio == 0.5
    ep = got.episode
    assert (ep.on_threshold, ep.off_threshold, ep.on_windows, ep.cooldown_s, ep.update_every_s) == (0.45, 0.25, 3,
                                                                                                    120.0, 15.0)
    assert tuning.setting_of(got) == {"negative_labels": ["angry", "disgust"], "ema_alpha": 0.5, "on_threshold": 0.45,
                                      "on_windows": 3}
