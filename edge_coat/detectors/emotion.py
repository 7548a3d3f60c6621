"""Emotion detector: sustained negative emotion on a call, one alert per episode.

Per stream, the emotion distribution of each *speech* window is smoothed with an exponential
moving average; the episode score is the highest smoothed probability among the negative labels.
Windows with too little speech (``speech_ratio < min_speech_ratio``, or quieter than
``silence_dbfs`` when no VAD ran) are skipped entirely: they neither raise nor reset an episode,
nor move the average (a caller who goes quiet is not calmer).

Every phase carries the episode's peak score as ``EventRecord.score``; the label is the negative
emotion that dominated when the episode started (updates/end say what dominates now in evidence).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from edge_coat.detectors.config import EmotionConfig
from edge_coat.detectors.episode import EpisodeTracker
from edge_coat.detectors.evidence import build_evidence, describe_readings, speech_ratio
from edge_coat.detectors.registry import register
from edge_coat.messages import DetectorStatus, EventRecord, WindowResult

logger = logging.getLogger(__name__)


@dataclass
class _Stream:
    tracker: EpisodeTracker
    smoothed: dict[str, float] = field(default_factory=dict)
    label: str = ""  # label of the open episode
    last_score: float | None = None
    speech_windows: int = 0
    skipped_windows: int = 0


def _article(word: str) -> str:
    """"an" before a vowel ("an angry episode"), "a" otherwise ("a sad episode")."""
    return "an" if word[:1].lower() in "aeiou" else "a"


@register(EmotionConfig, default=True)
class EmotionDetector:
    """Emotion episodes per stream (a `Detector`). Not thread-safe: the DetectorSet calls it under its lock."""

    def __init__(self, config: EmotionConfig | None = None, top_tags: int = 5) -> None:
        self.config = config or EmotionConfig()
        self.top_tags = top_tags
        self._streams: dict[str, _Stream] = {}

    def is_speech(self, result: WindowResult) -> bool:
        ratio = speech_ratio(result)
        if ratio is not None:
            return ratio >= self.config.min_speech_ratio
        return result.window.rms_dbfs >= self.config.silence_dbfs

    def process(self, result: WindowResult) -> list[EventRecord]:
        cfg = self.config
        probs = result.label_probs.get(cfg.task)
        if not probs:
            return []
        _check_distribution(probs, cfg.task)
        stream_id = result.window.stream_id
        st = self._stream(stream_id)
        if not self.is_speech(result):
            st.skipped_windows += 1
            return []
        st.speech_windows += 1
        a = cfg.ema_alpha
        for label, p in probs.items():
            st.smoothed[label] = a * float(p) + (1.0 - a) * st.smoothed.get(label, float(p))
        negatives = {k: v for k, v in st.smoothed.items() if k in cfg.negative_labels}
        if not negatives:
            return []
        label, score = max(negatives.items(), key=lambda kv: kv[1])
        st.last_score = score
        tr = st.tracker.step(score, result.window.start_ts, result.window.end_ts)
        if tr is None:
            return []
        if tr.phase == "start":
            st.label = label
        scores = {"score": score, "peak": tr.peak, "raw": float(probs.get(label, 0.0)),
                  **{f"smoothed_{k}": v for k, v in sorted(st.smoothed.items())}}
        evidence = build_evidence(result, scores, self.top_tags)
        evidence["dominant"] = label
        evidence["episode_started_ts"] = tr.started_ts
        detail = describe_readings(evidence)
        if tr.phase == "start":
            text = f"{stream_id}: sustained {st.label} voice (smoothed {score:.2f})"
        elif tr.phase == "update":
            text = f"{stream_id}: {st.label} continues (now {label} {score:.2f}, peak {tr.peak:.2f})"
        else:
            text = (f"{stream_id}: {st.label} episode ended after {result.window.end_ts - tr.started_ts:.0f} s "
                    f"(peak {tr.peak:.2f})")
        if detail:
            text += f"; {detail}"
        return [EventRecord(stream_id=stream_id, kind=self.kind, phase=tr.phase, episode_id=tr.episode_id,
                            label=st.label, score=float(tr.peak), window_start_ts=result.window.start_ts,
                            window_end_ts=result.window.end_ts, text=text, evidence=evidence)]

    def resume_episode(self, stream_id: str, episode_id: str, label: str, peak: float, started_ts: float,
                       last_ts: float) -> None:
        """Continue an episode opened before a restart (the smoothing starts afresh)."""
        st = self._stream(stream_id)
        st.tracker.resume(episode_id, peak, started_ts, last_ts)
        st.label = label

    def close_stream(self, stream_id: str, ts: float, reason: str = "stream ended") -> list[EventRecord]:
        """The call ended (or never came back after a restart): close its open episode and forget its
        smoothing state."""
        st = self._streams.pop(stream_id, None)
        if st is None:
            return []
        tr = st.tracker.close(ts)
        if tr is None:
            return []
        return [EventRecord(stream_id=stream_id, kind=self.kind, phase="end", episode_id=tr.episode_id,
                            label=st.label, score=float(tr.peak), window_start_ts=ts, window_end_ts=ts,
                            text=f"{stream_id}: {'call ended' if reason == 'stream ended' else reason} during "
                                 f"{_article(st.label)} {st.label} episode (peak {tr.peak:.2f})",
                            evidence={"window": {"start_ts": ts, "end_ts": ts}, "scores": {"peak": tr.peak},
                                      "reason": reason})]

    def status(self, stream_id: str) -> DetectorStatus:
        st = self._streams.get(stream_id)
        if st is None:
            return DetectorStatus(kind=self.kind, details={"speech_windows": 0, "skipped_windows": 0})
        return DetectorStatus(kind=self.kind, active_episode=st.tracker.episode_id if st.tracker.active else "",
                              label=st.label, last_score=st.last_score,
                              windows=st.speech_windows + st.skipped_windows,
                              details={"speech_windows": st.speech_windows, "skipped_windows": st.skipped_windows})

    def _stream(self, stream_id: str) -> _Stream:
        st = self._streams.get(stream_id)
        if st is None:
            st = self._streams[stream_id] = _Stream(EpisodeTracker(self.config.episode, f"{stream_id}/emotion"))
        return st


def _check_distribution(probs: dict, task: str) -> None:
    total = 0.0
    for label, p in probs.items():
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"label_probs[{task!r}][{label!r}] must be a probability in [0, 1]; got {p}")
        total += p
    if abs(total - 1.0) > 1e-3:
        raise ValueError(f"label_probs[{task!r}] must sum to 1; got {total:.4f}")
