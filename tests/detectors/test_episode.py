"""Hysteresis, minimum run and cooldown of the episode state machine, on scripted scores."""

from edge_coat.detectors.config import EpisodeConfig
from edge_coat.detectors.episode import EpisodeTracker


def run(tracker, scores, start=0.0):
    out = []
    for i, s in enumerate(scores):
        t = tracker.step(s, start + i, start + i + 1)
        out.append(t.phase if t else None)
    return out


def test_start_needs_k_consecutive_on_windows_and_hysteresis_holds():
    tr = EpisodeTracker(EpisodeConfig(on_threshold=0.6, off_threshold=0.4, on_windows=3, off_windows=2,
                                      cooldown_s=0), "s")
    # a 2-window spike does not start; the third consecutive on-window does
    assert run(tr, [0.7, 0.7, 0.1, 0.7, 0.7, 0.7]) == [None, None, None, None, None, "start"]
    # between thresholds keeps the episode; one off window is not enough; two end it
    assert run(tr, [0.5, 0.45, 0.3, 0.5, 0.3, 0.2], start=6) == [None, None, None, None, None, "end"]
    assert not tr.active


def test_cooldown_delays_a_new_episode_until_it_has_passed():
    tr = EpisodeTracker(EpisodeConfig(on_threshold=0.5, off_threshold=0.5, on_windows=1, off_windows=1,
                                      cooldown_s=5), "s")
    phases = run(tr, [0.9, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
    # ended at t=2 (end of window 1); windows starting before t=7 cannot start a new one
    assert phases == ["start", "end", None, None, None, None, None, "start"]
    first, second = tr.episode_id, None
    assert first.endswith("-2")


def test_update_events_are_periodic_and_ids_unique():
    tr = EpisodeTracker(EpisodeConfig(on_windows=1, off_windows=1, cooldown_s=0, update_every_s=3), "s")
    phases = run(tr, [0.9] * 8 + [0.0])
    assert phases == ["start", None, None, "update", None, None, "update", None, "end"]


def test_min_on_seconds_spans_the_run():
    tr = EpisodeTracker(EpisodeConfig(on_windows=1, min_on_seconds=4, cooldown_s=0), "s")
    assert run(tr, [0.9, 0.9, 0.9, 0.9]) == [None, None, None, "start"]
