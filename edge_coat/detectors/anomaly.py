"""Anomaly detector: per-stream normal profiles, fused scores, episodes with hysteresis.

Per window: ``fused = (1 - model_weight) * profile_score + model_weight * P(abnormal)``, where
``profile_score`` comes from the distance of the window's feature vector (``config.features``: the
model front end's log-mel statistics, or the pooled thinking latents; see
:mod:`edge_coat.detectors.features`) to the stream's normal profile (see
:mod:`edge_coat.detectors.profile`). A stream without a profile (or with one fitted on other features
or latents of another shape) says so in its status and is judged by the model's P(abnormal) alone.
:meth:`AnomalyDetector.score` is that computation without episodes; ``edge-coat eval --task anomaly``
calls it too, so offline figures and the service agree.

Enrollment: :meth:`AnomalyDetector.start_enrollment` marks the next N windows (or seconds) of a stream
as normal; they raise no events and, when the target is reached, the profile is fitted, written to
``profile_dir`` and used from the next window. :meth:`enroll_from_results` fits from results computed
elsewhere (e.g. files run through the model) in one call.

Every phase of an episode carries the episode's peak score as ``EventRecord.score`` (so a subscriber
filtering on a minimum score gets the update and end of every episode whose start it got); the
current window's scores are in the evidence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from edge_coat.detectors.config import AnomalyConfig, check_enrollment_request
from edge_coat.detectors.episode import EpisodeTracker, Transition
from edge_coat.detectors.evidence import build_evidence, describe_readings
from edge_coat.detectors.features import fuse, uses_thinking, window_features
from edge_coat.detectors.profile import NormalProfile
from edge_coat.detectors.registry import register
from edge_coat.messages import DetectorStatus, EnrollmentStatus, EventRecord, WindowResult, check_stream_id

logger = logging.getLogger(__name__)


@dataclass
class _Enrollment:
    target_windows: int | None
    target_seconds: float | None
    vectors: list = field(default_factory=list)  # pooled vectors, each (F,)
    spans: list = field(default_factory=list)  # (start_ts, end_ts) of each window: overlaps stay out of calibration
    first_ts: float | None = None
    last_ts: float | None = None
    latent_shape: tuple[int, int] = (0, 0)  # of the thinking latents, (0, 0) when the windows had none
    model_name: str = ""
    model_version: str = ""

    def done(self) -> bool:
        if self.target_windows is not None:
            return len(self.vectors) >= self.target_windows
        return self.first_ts is not None and (self.last_ts or 0.0) - self.first_ts >= (self.target_seconds or 0.0)


@dataclass
class _Stream:
    tracker: EpisodeTracker
    profile: NormalProfile | None = None
    note: str = "no normal profile: model judgement only"
    enrollment: _Enrollment | None = None
    last_score: float | None = None
    last_ts: float = 0.0
    windows: int = 0
    last_error: str = ""


@register(AnomalyConfig, default=True)
class AnomalyDetector:
    """Anomaly episodes per stream (a `Detector` with the `Enrolling` capability). Not thread-safe: the
    DetectorSet calls it under its lock."""

    def __init__(self, config: AnomalyConfig | None = None, top_tags: int = 5) -> None:
        self.config = config or AnomalyConfig()
        self.top_tags = top_tags
        self._streams: dict[str, _Stream] = {}

    # ------------------------------------------------------------------ per-window
    def process(self, result: WindowResult) -> list[EventRecord]:
        cfg = self.config
        stream_id = result.window.stream_id
        st = self._stream(stream_id)
        st.windows += 1
        st.last_ts = result.window.end_ts
        if st.enrollment is not None:
            self._collect(stream_id, st, result, window_features(result, cfg.features, cfg.pooling))
            return []  # enrollment audio is declared normal: no events
        scores = self.score(result)
        if scores is None:
            return []  # neither features against a profile nor a model answer: nothing to judge
        score = scores["score"]
        st.last_score = score
        transition = st.tracker.step(score, result.window.start_ts, result.window.end_ts)
        if transition is None:
            return []
        return [self._event(stream_id, st, result, transition, scores)]

    def score(self, result: WindowResult) -> dict[str, float] | None:
        """The window's scores against its stream's profile, without episodes or enrollment.

        Returns ``{"score": fused, "p_abnormal", "distance", "threshold_distance", "profile_score"}``
        (the last three only with a usable profile, ``p_abnormal`` only with a model answer), or None
        when there is nothing to judge. Raises ValueError on malformed input.
        """
        cfg = self.config
        stream_id = result.window.stream_id
        st = self._stream(stream_id)
        p_abnormal = _p_abnormal(result, cfg.task, cfg.abnormal_label)
        scores: dict[str, float] = {}
        profile_score = None
        # thinking features are cheap: pooled (and validated) on every window; mel only against a profile
        vector = window_features(result, cfg.features, cfg.pooling) \
            if st.profile is not None or cfg.features == "thinking" else None  # (F,) or None
        if st.profile is not None:
            problem = self._mismatch(st.profile, result, vector)
            if problem:
                self._mark_stale(stream_id, st, problem)
            elif vector is not None:
                distance = st.profile.distance(vector)
                profile_score = st.profile.score(distance)
                scores.update(distance=distance, threshold_distance=st.profile.threshold,
                              profile_score=profile_score)
        if p_abnormal is not None:
            scores["p_abnormal"] = p_abnormal
        fused = fuse(profile_score, p_abnormal, cfg.model_weight)
        if fused is None:
            return None
        scores["score"] = fused
        return scores

    def close_stream(self, stream_id: str, ts: float, reason: str = "stream ended") -> list[EventRecord]:
        """The stream ended (or, ``reason="interrupted"``, never came back after a restart): end its open
        episode (an 'end' event whose evidence says why)."""
        st = self._streams.get(stream_id)
        if st is None:
            return []
        transition = st.tracker.close(ts)
        if transition is None:
            return []
        evidence = {"window": {"start_ts": ts, "end_ts": ts}, "scores": {"peak": transition.peak},
                    "reason": reason}
        return [EventRecord(stream_id=stream_id, kind=self.kind, phase="end", episode_id=transition.episode_id,
                            label="abnormal", score=transition.peak, window_start_ts=ts, window_end_ts=ts,
                            text=f"{stream_id}: {reason} during an anomaly (peak score {transition.peak:.2f})",
                            evidence=evidence)]

    def resume_episode(self, stream_id: str, episode_id: str, label: str, peak: float, started_ts: float,
                       last_ts: float) -> None:
        """Continue an episode opened before a restart (see EpisodeTracker.resume)."""
        self._stream(check_stream_id(stream_id)).tracker.resume(episode_id, peak, started_ts, last_ts)

    # ------------------------------------------------------------------ enrollment
    def start_enrollment(self, stream_id: str, windows: int | None = None,
                         seconds: float | None = None) -> EnrollmentStatus:
        """Treat the stream's next ``windows`` windows (or ``seconds`` of audio) as normal and fit on them."""
        check_stream_id(stream_id)
        if windows is not None and seconds is not None:
            raise ValueError("give enrollment windows or seconds, not both")
        check_enrollment_request(windows, seconds)
        if windows is not None and windows < self.config.min_enroll_windows:
            raise ValueError(f"enrollment needs at least {self.config.min_enroll_windows} windows; got {windows}")
        if seconds is not None and not seconds > 0:
            raise ValueError(f"enrollment seconds must be > 0; got {seconds}")
        if windows is None and seconds is None:
            windows = self.config.default_enroll_windows
        st = self._stream(stream_id)
        for_close = st.tracker.close(st.last_ts)
        if for_close is not None:
            logger.info("anomaly episode %s on %s closed by enrollment", for_close.episode_id, stream_id)
        st.enrollment = _Enrollment(target_windows=windows, target_seconds=seconds)
        logger.info("enrollment started on %s (windows=%s seconds=%s)", stream_id, windows, seconds)
        return self.enrollment_status(stream_id)

    def stop_enrollment(self, stream_id: str, commit: bool = True) -> EnrollmentStatus:
        """Stop collecting; with ``commit`` fit the profile on what was collected (if enough)."""
        st = self._stream(check_stream_id(stream_id))
        enr = st.enrollment
        if enr is None:
            raise ValueError(f"stream {stream_id!r} is not enrolling")
        if commit:
            if len(enr.vectors) < self.config.min_enroll_windows:
                raise ValueError(
                    f"stream {stream_id!r} has {len(enr.vectors)} enrollment windows; a profile needs at least "
                    f"{self.config.min_enroll_windows} (stop with commit=false to discard)"
                )
            self._fit(stream_id, st, enr)
        else:
            st.enrollment = None
            st.last_error = "enrollment discarded"
        return self.enrollment_status(stream_id)

    def enroll_from_results(self, stream_id: str, results) -> EnrollmentStatus:
        """Fit a profile from normal WindowResults computed elsewhere (e.g. files); replaces any profile."""
        st = self._stream(check_stream_id(stream_id))
        enr = _Enrollment(target_windows=None, target_seconds=None)
        for result in results:
            vector = window_features(result, self.config.features, self.config.pooling)
            if vector is None:
                raise ValueError(f"enrollment results must carry thinking latents (K, D) for features "
                                 f"{self.config.features!r}; "
                                 "got one with None")
            self._add(enr, result, vector)
        if len(enr.vectors) < self.config.min_enroll_windows:
            raise ValueError(
                f"enrollment from results needs at least {self.config.min_enroll_windows} windows; got "
                f"{len(enr.vectors)}"
            )
        self._fit(stream_id, st, enr)
        return self.enrollment_status(stream_id)

    def enrollment_status(self, stream_id: str) -> EnrollmentStatus:
        st = self._stream(check_stream_id(stream_id))
        state, message, profile = "none", st.note, {}
        if st.profile is not None:
            state, profile = "ready", st.profile.summary()
        if self._stale(st):
            state = "stale"
        collected = target_windows = 0
        target_seconds = 0.0
        if st.enrollment is not None:
            enr = st.enrollment
            state, collected = "enrolling", len(enr.vectors)
            target_windows, target_seconds = enr.target_windows or 0, enr.target_seconds or 0.0
            message = f"collecting normal windows ({collected} so far)"
        return EnrollmentStatus(stream_id=stream_id, state=state, collected=collected, target_windows=target_windows,
                                target_seconds=target_seconds,
                                threshold=st.profile.threshold if st.profile is not None else 0.0,
                                message=message, last_error=st.last_error, profile=profile)

    def status(self, stream_id: str) -> DetectorStatus:
        st = self._stream(check_stream_id(stream_id))
        return DetectorStatus(kind=self.kind, active_episode=st.tracker.episode_id if st.tracker.active else "",
                              label="abnormal", last_score=st.last_score, windows=st.windows, note=st.note,
                              enrollment=self.enrollment_status(stream_id),
                              details={"model_only": st.profile is None or self._stale(st)})

    @staticmethod
    def _stale(st: _Stream) -> bool:
        return st.note.startswith("profile stale")

    # ------------------------------------------------------------------ internals
    def _stream(self, stream_id: str) -> _Stream:
        st = self._streams.get(stream_id)
        if st is None:
            st = _Stream(tracker=EpisodeTracker(self.config.episode, f"{stream_id}/anomaly"))
            try:
                st.profile = NormalProfile.load(self.config.profile_dir, stream_id)
            except (OSError, ValueError, KeyError) as exc:
                logger.warning("cannot load the normal profile of %s (%s): model judgement only", stream_id, exc)
                st.note = f"profile unreadable ({exc}): model judgement only"
            if st.profile is not None:
                st.note = f"normal profile of {st.profile.data.shape[0]} windows"
            self._streams[stream_id] = st
        return st

    def _collect(self, stream_id: str, st: _Stream, result: WindowResult, vector) -> None:
        if vector is None:
            st.last_error = f"window {result.window.index} had no thinking latents; not enrolled"
            return
        self._add(st.enrollment, result, vector)
        if st.enrollment.done():
            try:
                self._fit(stream_id, st, st.enrollment)
            except ValueError as exc:  # e.g. too few windows for the seconds asked: say so, keep collecting
                st.last_error = str(exc)
                if len(st.enrollment.vectors) >= 10 * self.config.default_enroll_windows:
                    st.enrollment = None

    def _add(self, enr: _Enrollment, result: WindowResult, vector: np.ndarray) -> None:
        shape = tuple(result.thinking.shape) if result.thinking is not None else (0, 0)
        if enr.vectors and (shape != enr.latent_shape or vector.shape != enr.vectors[0].shape):
            raise ValueError(f"enrollment latents changed shape from {enr.latent_shape} to {shape} "
                             f"(feature vectors {enr.vectors[0].shape} -> {vector.shape})")
        enr.vectors.append(vector)
        enr.spans.append((result.window.start_ts, result.window.end_ts))
        enr.latent_shape = shape
        enr.first_ts = result.window.start_ts if enr.first_ts is None else enr.first_ts
        enr.last_ts = result.window.end_ts
        enr.model_name, enr.model_version = result.model_name, result.model_version

    def _fit(self, stream_id: str, st: _Stream, enr: _Enrollment) -> None:
        cfg = self.config
        if len(enr.vectors) < cfg.min_enroll_windows:
            raise ValueError(f"{len(enr.vectors)} enrollment windows; a profile needs {cfg.min_enroll_windows}")
        robust_z, min_ratio = cfg.threshold_floors()
        profile = NormalProfile.fit(np.stack(enr.vectors), method=cfg.method, pooling=cfg.pooling, k=cfg.k,
                                    percentile=cfg.percentile, latent_shape=enr.latent_shape,
                                    model_name=enr.model_name, model_version=enr.model_version,
                                    features=cfg.features, spans=np.array(enr.spans), robust_z=robust_z,
                                    min_ratio=min_ratio)
        path = profile.save(cfg.profile_dir, stream_id)
        st.profile, st.enrollment, st.last_error = profile, None, ""
        st.note = f"normal profile of {len(enr.vectors)} windows"
        if profile.degenerate:  # say so: the operator should enroll on the machine's varied normal sound
            st.note += (f"; degenerate enrollment ({profile.degenerate}): threshold floored at "
                        f"{profile.threshold:.2f}; re-enroll on a longer, varied stretch of normal sound")
        elif profile.raised:  # say so: a longer enrollment would let the percentile speak
            st.note += (f"; tight enrollment: threshold raised from the {profile.percentile:g}th percentile to "
                        f"{profile.threshold / max(profile.median, 1e-12):.2f} x the median normal distance")
        logger.info("normal profile for %s fitted on %d windows, threshold %.3f, saved to %s", stream_id,
                    len(enr.vectors), profile.threshold, path)

    def _mismatch(self, profile: NormalProfile, result: WindowResult, vector) -> str:
        """Why this profile cannot judge this window ("" when it can)."""
        if profile.features != self.config.features:
            return f"fitted on {profile.features!r} features, the detector uses {self.config.features!r}"
        if uses_thinking(profile.features) and result.thinking is not None \
                and tuple(result.thinking.shape) != tuple(profile.latent_shape):
            return f"fitted on latents {tuple(profile.latent_shape)}, model gives {tuple(result.thinking.shape)}"
        if vector is not None and vector.shape != profile.mean.shape:
            return f"fitted on {profile.mean.shape[0]} features, the window gives {vector.shape[0]}"
        return ""

    def _mark_stale(self, stream_id: str, st: _Stream, problem: str) -> None:
        if not self._stale(st):
            logger.warning("profile of %s does not fit its windows (%s): model judgement only until re-enrolled",
                           stream_id, problem)
        st.note = f"profile stale: {problem}; re-enroll. Model judgement only"

    def _event(self, stream_id: str, st: _Stream, result: WindowResult, tr: Transition, scores: dict) -> EventRecord:
        evidence = build_evidence(result, scores, self.top_tags)
        evidence["scores"]["peak"] = tr.peak
        evidence["episode_started_ts"] = tr.started_ts
        evidence["profile"] = "ready" if st.profile is not None and not self._stale(st) \
            else st.note
        detail = describe_readings(evidence)
        basis = (f"distance {scores['distance']:.2f} vs normal threshold {scores['threshold_distance']:.2f}"
                 if "distance" in scores else "no normal profile: model judgement only")
        if "p_abnormal" in scores:
            basis += f", model P(abnormal) {scores['p_abnormal']:.2f}"
        if tr.phase == "start":
            text = f"{stream_id}: abnormal sound (score {scores['score']:.2f}; {basis})"
        elif tr.phase == "update":
            text = f"{stream_id}: abnormal sound continues (score {scores['score']:.2f}, peak {tr.peak:.2f})"
        else:
            text = (f"{stream_id}: sound back to normal after {result.window.end_ts - tr.started_ts:.0f} s "
                    f"(peak score {tr.peak:.2f})")
        if detail:
            text += f"; {detail}"
        return EventRecord(stream_id=stream_id, kind=self.kind, phase=tr.phase, episode_id=tr.episode_id,
                           label="abnormal", score=float(tr.peak), window_start_ts=result.window.start_ts,
                           window_end_ts=result.window.end_ts, text=text, evidence=evidence)


def _p_abnormal(result: WindowResult, task: str, label: str) -> float | None:
    probs = result.label_probs.get(task)
    if not probs or label not in probs:
        return None
    p = float(probs[label])
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"label_probs[{task!r}][{label!r}] must be a probability in [0, 1]; got {p}")
    return p
