"""A third detector type, defined outside the package: this module and a config entry are all it takes.

Loudness episodes: a window at or above ``threshold_dbfs`` is "on". tests/detectors/test_registry.py
names this module in ``detectors.plugins`` and runs it through the whole service.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge_coat.detectors import DetectorConfig, register
from edge_coat.detectors.config import EpisodeConfig
from edge_coat.detectors.episode import EpisodeTracker
from edge_coat.detectors.evidence import build_evidence
from edge_coat.messages import DetectorStatus, EventRecord, WindowResult


class LoudConfig(DetectorConfig):
    type: Literal["loud"] = Field("loud", description="detector type")
    task: str = Field("loud", min_length=1, description="window task this detector reads")
    threshold_dbfs: float = Field(-20.0, ge=-160.0, le=0.0, description="windows this loud or louder are 'on'")
    episode: EpisodeConfig = Field(
        default_factory=lambda: EpisodeConfig(on_windows=2, off_windows=2, cooldown_s=0.0),
        description="hysteresis of loudness episodes",
    )


@register(LoudConfig)
class LoudDetector:
    def __init__(self, config: LoudConfig, top_tags: int) -> None:
        self.config, self.top_tags = config, top_tags
        self._trackers: dict[str, EpisodeTracker] = {}
        self._windows: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def process(self, result: WindowResult) -> list[EventRecord]:
        w = result.window
        tracker = self._tracker(w.stream_id)
        self._windows[w.stream_id] = self._windows.get(w.stream_id, 0) + 1
        score = 1.0 if w.rms_dbfs >= self.config.threshold_dbfs else 0.0
        self._last[w.stream_id] = score
        tr = tracker.step(score, w.start_ts, w.end_ts)
        if tr is None:
            return []
        return [EventRecord(stream_id=w.stream_id, kind=self.kind, phase=tr.phase, episode_id=tr.episode_id,
                            label="loud", score=tr.peak, window_start_ts=w.start_ts, window_end_ts=w.end_ts,
                            text=f"{w.stream_id}: loud ({w.rms_dbfs:.0f} dBFS)",
                            evidence=build_evidence(result, {"score": score}, self.top_tags))]

    def close_stream(self, stream_id: str, ts: float, reason: str = "stream ended") -> list[EventRecord]:
        tr = self._tracker(stream_id).close(ts)
        if tr is None:
            return []
        return [EventRecord(stream_id=stream_id, kind=self.kind, phase="end", episode_id=tr.episode_id, label="loud",
                            score=tr.peak, window_start_ts=ts, window_end_ts=ts, text=f"{stream_id}: {reason} while loud",
                            evidence={"reason": reason})]

    def status(self, stream_id: str) -> DetectorStatus:
        tracker = self._tracker(stream_id)
        return DetectorStatus(kind=self.kind, active_episode=tracker.episode_id if tracker.active else "",
                              label="loud", last_score=self._last.get(stream_id),
                              windows=self._windows.get(stream_id, 0),
                              details={"threshold_dbfs": self.config.threshold_dbfs})

    def _tracker(self, stream_id: str) -> EpisodeTracker:
        if stream_id not in self._trackers:
            self._trackers[stream_id] = EpisodeTracker(self.config.episode, f"{stream_id}/loud")
        return self._trackers[stream_id]
