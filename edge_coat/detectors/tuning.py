"""Choosing the emotion detector's settings from whole calls whose outcome is known.

A call is scored once by the model (per window: the emotion distribution, or None where the gate kept the window
from the model); the real ``EmotionDetector`` is then replayed over those readings for every setting of a small grid
(negative label set x EMA alpha x on-threshold x on-windows), which is cheap. Two users:

* ``bench/tuning/emotion_threshold.py`` chooses the shipped defaults on the development corpora;
* ``edge-coat tune emotion`` chooses a site's settings on its own labelled calls, with a cross-validated estimate of
  how the chosen setting does on calls it was not chosen on.

Outcomes of one call under one setting: *hit* (an alert expected and one started after the onset), *false* (no
alert expected and one started), *early* (an alert expected after ``onset_s`` > 0 and one started before it).
The criterion (``choose_for_calls``): the most hits with false and early alerts on at most ``max_false`` of the calls
that can have them, ties to fewer false alerts, a shorter median delay, then the more conservative setting (it met the
same calls with a higher bar, so it is the likelier to stay quiet on calls it never saw).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_coat.detectors.config import EmotionConfig, EpisodeConfig
from edge_coat.detectors.emotion import EmotionDetector
from edge_coat.messages import SAMPLE_RATE, Window, WindowResult

NEGATIVE_SETS = (("angry",), ("angry", "disgust"), ("angry", "fearful", "disgust"),
                 ("angry", "fearful", "sad", "disgust"))
ALPHAS = (0.3, 0.5, 0.7, 1.0)
ON_THRESHOLDS = tuple(float(round(x, 2)) for x in np.arange(0.25, 0.651, 0.05))
#: at least 2: the detector alerts on *sustained* emotion; one 2 s window is a moment (a shout, a laugh)
ON_WINDOWS = (2, 3, 4)
#: the off-threshold sits this far below the on-threshold (hysteresis)
OFF_GAP = 0.2
MAX_FALSE = 0.10


# ---- settings ---------------------------------------------------------------------------------------------
def grid(labels: Sequence[str] | None = None, negative_sets: Sequence[Sequence[str]] = NEGATIVE_SETS) -> list[dict]:
    """Every setting of the grid; with ``labels`` (the model's emotion labels) only the label sets it can read;
    ``negative_sets``: the label sets to try (a site keeping its own: one)."""
    sets = [tuple(s) for s in negative_sets if labels is None or set(s) <= set(labels)]
    return [{"negative_labels": list(neg), "ema_alpha": a, "on_threshold": on, "on_windows": w}
            for neg, a, on, w in itertools.product(sets, ALPHAS, ON_THRESHOLDS, ON_WINDOWS)]


def config_of(setting: dict, base: EmotionConfig | None = None) -> EmotionConfig:
    """The detector config of a grid setting. Without ``base``: off 0.2 below on, off-windows 3, cooldown 10 s (the
    bench's fixed parts); with it, every field the grid does not set is ``base``'s (a site's own config)."""
    on = setting["on_threshold"]
    off = max(0.0, round(on - OFF_GAP, 3))
    if base is None:
        episode = EpisodeConfig(on_threshold=on, off_threshold=off, on_windows=setting["on_windows"], off_windows=3,
                                cooldown_s=10.0)
        return EmotionConfig(negative_labels=tuple(setting["negative_labels"]), ema_alpha=setting["ema_alpha"],
                             episode=episode)
    episode = base.episode.model_copy(update={"on_threshold": on, "off_threshold": off,
                                              "on_windows": setting["on_windows"]})
    return base.model_copy(update={"negative_labels": tuple(setting["negative_labels"]),
                                   "ema_alpha": setting["ema_alpha"], "episode": episode})


def setting_of(config: EmotionConfig) -> dict:
    """The grid fields of a detector config (a site's current one need not be on the grid)."""
    return {"negative_labels": list(config.negative_labels), "ema_alpha": config.ema_alpha,
            "on_threshold": config.episode.on_threshold, "on_windows": config.episode.on_windows}


def current_setting() -> dict:
    """The ``EmotionConfig`` defaults the service runs with now, as a grid setting (off-threshold and off-windows as
    ``config_of`` sets them; ``test_current_defaults_are_a_grid_setting`` checks they match)."""
    return setting_of(EmotionConfig())


def name_of(setting: dict) -> str:
    return (f"neg={'+'.join(setting['negative_labels'])} alpha={setting['ema_alpha']:g} "
            f"on={setting['on_threshold']:g} windows={setting['on_windows']}")


# ---- the detector replayed ----------------------------------------------------------------------------------
def results_of(call_id: str, labels: list[str], rows: list[list], task: str = "emotion") -> list[WindowResult]:
    """The WindowResults the detector sees for per-window rows ``[start_s, end_s, rms_dbfs, speech_ratio, probs or
    None]`` (gated windows carry no emotion distribution)."""
    out = []
    for i, (s, e, level, speech, probs) in enumerate(rows):
        w = Window(stream_id=call_id, index=i, start_sample=int(s * SAMPLE_RATE), start_ts=s, end_ts=e,
                   samples=np.zeros(0, np.float32), rms_dbfs=level, speech_ratio=speech)
        out.append(WindowResult(window=w, label_probs={task: dict(zip(labels, probs))} if probs else {}))
    return out


def alert_times(config: EmotionConfig, results: list[WindowResult]) -> list[float]:
    """Window end times (s) of the episode starts on one call."""
    det = EmotionDetector(config, top_tags=0)
    return [ev.window_end_ts for r in results for ev in det.process(r) if ev.phase == "start"]


# ---- a site's labelled calls ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelledCall:
    """A call whose outcome is known: ``alert`` (should the detector alert), from ``onset_s`` on; ``group`` (a caller
    or an agent) keeps related calls on one side of a cross-validation split."""

    call_id: str
    alert: bool
    onset_s: float = 0.0
    group: str = ""


def outcome(config: EmotionConfig, call: LabelledCall, results: list[WindowResult]) -> dict:
    """One call under one setting: hit, false, early (see the module doc) and the delay of a hit (s after the onset)."""
    starts = alert_times(config, results)
    early = any(t <= call.onset_s for t in starts) if call.alert and call.onset_s > 0 else False
    late = [t for t in starts if t > call.onset_s] if call.alert else []
    return {"hit": bool(late), "false": bool(starts) and not call.alert, "early": early,
            "delay_s": round(late[0] - call.onset_s, 2) if late else None}


def summed(calls: Sequence[LabelledCall], outcomes: Sequence[dict]) -> dict:
    """Counts of per-call ``outcome``s (see ``tally``)."""
    delays = [o["delay_s"] for o in outcomes if o["delay_s"] is not None]
    return {"hits": sum(o["hit"] for o in outcomes), "alert_calls": sum(c.alert for c in calls),
            "false": sum(o["false"] for o in outcomes), "quiet_calls": sum(not c.alert for c in calls),
            "early": sum(o["early"] for o in outcomes), "onset_calls": sum(c.alert and c.onset_s > 0 for c in calls),
            "delay_median_s": float(np.median(delays)) if delays else None}


def tally(config: EmotionConfig, calls: Sequence[LabelledCall], results: dict[str, list[WindowResult]]) -> dict:
    """Counts over calls: hits of ``alert_calls``, false alerts of ``quiet_calls``, early alerts of ``onset_calls``
    (alert calls with an onset), and the hits' median delay."""
    return summed(calls, [outcome(config, c, results[c.call_id]) for c in calls])


def outcome_table(settings: list[dict], calls: Sequence[LabelledCall], results: dict[str, list[WindowResult]],
                  base: EmotionConfig | None = None) -> list[list[dict]]:
    """Per setting, per call: its ``outcome`` (the detector replayed once per pair; choosing on any subset of the
    calls then only sums)."""
    return [[outcome(config_of(s, base), c, results[c.call_id]) for c in calls] for s in settings]


def _passes(t: dict, max_false: float) -> bool:
    return _rate(t["false"], t["quiet_calls"]) <= max_false and _rate(t["early"], t["onset_calls"]) <= max_false


def _rate(n: int, of: int) -> float:
    return n / of if of else 0.0


def choose_for_calls(settings: list[dict], calls: Sequence[LabelledCall], table: list[list[dict]],
                     subset: Sequence[int] | None = None,
                     max_false: float = MAX_FALSE) -> tuple[int | None, list[dict]]:
    """(the index of the chosen setting or None when none meets the bound, every setting's tally) on the calls of
    ``subset`` (indices into ``calls``; default all), from an ``outcome_table``."""
    subset = range(len(calls)) if subset is None else subset
    picked = [calls[i] for i in subset]
    tallies = [summed(picked, [row[i] for i in subset]) for row in table]
    best, best_key = None, None
    for j, (s, t) in enumerate(zip(settings, tallies)):
        if not _passes(t, max_false):
            continue
        delay = t["delay_median_s"] if t["delay_median_s"] is not None else 1e9
        key = (t["hits"], -t["false"] - t["early"], -delay, s["on_threshold"], s["on_windows"], -s["ema_alpha"])
        if best_key is None or key > best_key:
            best, best_key = j, key
    return best, tallies


def folds_of(calls: Sequence[LabelledCall], k: int, seed: int = 0) -> list[list[int]]:
    """``k`` folds of call indices, a group (or a call without one) never split, alert and quiet calls spread over the
    folds as evenly as the groups allow. Deterministic for a seed."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(calls):
        groups.setdefault(c.group or f"\0call{i}", []).append(i)
    rng = np.random.default_rng(seed)
    order = list(groups)
    rng.shuffle(order)
    alerts = {g: sum(calls[i].alert for i in groups[g]) for g in order}
    order.sort(key=lambda g: (-alerts[g], -len(groups[g])))  # stable: the shuffle breaks ties
    folds: list[list[int]] = [[] for _ in range(k)]
    counts = [[0, 0] for _ in range(k)]  # per fold: alert calls, quiet calls
    for g in order:
        quiet = len(groups[g]) - alerts[g]
        # to the fold with the fewest calls of the kind this group mostly has, then the fewest calls
        kind = 0 if alerts[g] >= quiet else 1
        f = min(range(k), key=lambda j: (counts[j][kind], sum(counts[j]), j))
        folds[f] += groups[g]
        counts[f][0] += alerts[g]
        counts[f][1] += quiet
    return [sorted(f) for f in folds if f]


def cross_validate(settings: list[dict], calls: Sequence[LabelledCall], table: list[list[dict]],
                   fallback: list[dict], k: int = 5, max_false: float = MAX_FALSE, seed: int = 0) -> dict:
    """How choosing a setting on these calls does on calls it was not chosen on: each fold is scored with the setting
    chosen on the other folds, or with ``fallback`` (the outcomes of a site's current config, per call) where none
    meets the bound there; the counts are summed over the folds. Also: the setting each fold chose (None: fallback)."""
    folds = folds_of(calls, k, seed)
    outcomes, chosen = [None] * len(calls), []
    for f in folds:
        held = set(f)
        j, _ = choose_for_calls(settings, calls, table, [i for i in range(len(calls)) if i not in held], max_false)
        chosen.append(None if j is None else settings[j])
        for i in f:
            outcomes[i] = fallback[i] if j is None else table[j][i]
    return {"folds": len(folds), "chosen": chosen, **summed(calls, outcomes), "outcomes": outcomes}


def right(call: LabelledCall, o: dict) -> bool:
    """Did the detector do what the call asked: alert after the onset and not before it, or stay quiet."""
    return (o["hit"] and not o["early"]) if call.alert else not o["false"]


def paired(calls: Sequence[LabelledCall], new: Sequence[dict], old: Sequence[dict]) -> dict:
    """Per call, two settings' outcomes compared: ``better`` (calls the new one gets right and the old one wrong),
    ``worse`` (the reverse), and ``p``: the one-sided exact sign (McNemar) test of ``better`` among the calls where
    they differ, the chance of at least that many with no real difference."""
    better = sum(right(c, n) and not right(c, o) for c, n, o in zip(calls, new, old))
    worse = sum(right(c, o) and not right(c, n) for c, n, o in zip(calls, new, old))
    m = better + worse
    # the binomial tail is a few lines; no statistics package is a dependency for it
    p = sum(math.comb(m, k) for k in range(better, m + 1)) / 2 ** m if m else 1.0
    return {"better": better, "worse": worse, "p": p}
