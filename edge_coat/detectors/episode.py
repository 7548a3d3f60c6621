"""Episode lifecycle with hysteresis, a minimum run and a cooldown.

An :class:`EpisodeTracker` turns a sequence of per-window scores into ``start`` / ``update`` /
``end`` transitions. It knows nothing about what the score means: the anomaly and emotion
detectors each own one tracker per stream.

Rules:
- A window is *on* when ``score >= on_threshold`` and *off* when ``score < off_threshold``;
  between the two it keeps the current state (hysteresis).
- An episode starts after ``on_windows`` consecutive on-windows whose run also spans
  ``min_on_seconds``, unless the previous episode ended less than ``cooldown_s`` ago (the run keeps
  counting, so a condition that persists through the cooldown starts right after it).
- It ends after ``off_windows`` consecutive off-windows.
- Windows passed to :meth:`skip` (e.g. no speech) change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_coat.detectors.config import EpisodeConfig


@dataclass(frozen=True)
class Transition:
    """What an episode did on one window."""

    phase: str  # "start" | "update" | "end"
    episode_id: str
    peak: float  # highest score seen in the episode so far
    started_ts: float  # start of the first window of the on-run that opened the episode


class EpisodeTracker:
    """Hysteresis state machine for one stream and one detector kind."""

    def __init__(self, config: EpisodeConfig, id_prefix: str) -> None:
        self.config = config
        self._prefix = id_prefix
        self._count = 0  # episodes started so far (makes episode ids unique)
        self.active = False
        self.episode_id: str | None = None
        self._on_run = 0
        self._on_since: float | None = None
        self._off_run = 0
        self._peak = 0.0
        self._started_ts = 0.0
        self._last_end_ts: float | None = None
        self._last_emit_ts = 0.0

    def step(self, score: float, start_ts: float, end_ts: float) -> Transition | None:
        """Feed one window's score; return the transition it caused, if any."""
        cfg = self.config
        if not self.active:
            if score >= cfg.on_threshold:
                if self._on_run == 0:
                    self._on_since = start_ts
                self._on_run += 1
            elif score < cfg.off_threshold:
                self._on_run, self._on_since = 0, None
            long_enough = self._on_since is not None and end_ts - self._on_since >= cfg.min_on_seconds
            cooled = self._last_end_ts is None or start_ts - self._last_end_ts >= cfg.cooldown_s
            if self._on_run >= cfg.on_windows and long_enough and cooled:
                self._count += 1
                self.active = True
                self.episode_id = f"{self._prefix}-{int(start_ts * 1000)}-{self._count}"
                self._peak, self._off_run = score, 0
                self._started_ts = self._on_since if self._on_since is not None else start_ts
                self._last_emit_ts = end_ts
                return Transition("start", self.episode_id, self._peak, self._started_ts)
            return None

        self._peak = max(self._peak, score)
        self._off_run = self._off_run + 1 if score < cfg.off_threshold else 0
        if self._off_run >= cfg.off_windows:
            return self.close(end_ts)
        if cfg.update_every_s > 0 and end_ts - self._last_emit_ts >= cfg.update_every_s:
            self._last_emit_ts = end_ts
            return Transition("update", self.episode_id or "", self._peak, self._started_ts)
        return None

    def resume(self, episode_id: str, peak: float, started_ts: float, last_emit_ts: float) -> None:
        """Continue an episode a previous process opened (its start is in the event log, its end is
        not): the next windows update and end it instead of starting a second one."""
        self.active = True
        self.episode_id = episode_id
        self._peak, self._started_ts, self._last_emit_ts = float(peak), float(started_ts), float(last_emit_ts)
        self._on_run, self._on_since, self._off_run = 0, None, 0

    def close(self, end_ts: float) -> Transition | None:
        """End the open episode now (stream ended, profile replaced); None when none is open."""
        if not self.active:
            return None
        transition = Transition("end", self.episode_id or "", self._peak, self._started_ts)
        self.active = False
        self._last_end_ts = end_ts
        self._on_run, self._on_since, self._off_run = 0, None, 0
        return transition
