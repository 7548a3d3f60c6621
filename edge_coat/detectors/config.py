"""Configuration of the detectors stage (the ``detectors:`` section of the site config)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


#: threshold floors (robust z, ratio to the median) of the mel profile, from bench/anomaly_threshold.py on
#: generated dev machines (seed 55, never the held-out 99). Streams (1 s / 2 s windows, 12 / 20 s
#: enrollments, default episodes): the bare 99th percentile gave 112 / 105 false alarms per hour and, by
#: alarming before the fault, missed 3-5 of 10 faults of each type; ratio 1.4 gave 0 / 0 with every
#: fault type caught 10/10 (cavitation 2/2) but imbalance 8-9/10 and rubbing 9-10/10, median 1-2 s
#: after the onset. Clip level on runs/anomaly-dev (one 5 s clip, one score): normal clips over the
#: threshold 3/49 -> 0/49, faint faults lost: imbalance 23/26 -> 15/26, rubbing 12/13 -> 11/13. Ratio 1.3
#: left 2-3 false alarms per hour on the streams; a robust z of 5 changed nothing on the streams and
#: cost faint imbalances at clip level, so it is off.
MEL_THRESHOLD_FLOORS = (0.0, 1.4)


#: Largest enrollment a request may ask for (gRPC StartEnrollment, service.enroll_at_start): a week of
#: audio or 100,000 windows. Larger asks are refused, not silently run for years.
MAX_ENROLL_WINDOWS = 100_000
MAX_ENROLL_SECONDS = 7 * 86400.0


def check_enrollment_request(windows: int | None, seconds: float | None) -> None:
    """ValueError naming the bound when an enrollment target is out of range (NaN, negative, too large)."""
    import math

    if windows is not None and not 0 < windows <= MAX_ENROLL_WINDOWS:
        raise ValueError(f"enrollment windows must be between 1 and {MAX_ENROLL_WINDOWS}; got {windows}")
    if seconds is not None and not (math.isfinite(seconds) and 0 < seconds <= MAX_ENROLL_SECONDS):
        raise ValueError(f"enrollment seconds must be > 0 and at most {MAX_ENROLL_SECONDS:g} (a week); got {seconds}")


class EpisodeConfig(BaseModel):
    """Hysteresis and cooldown shared by every episode-based detector."""

    model_config = ConfigDict(extra="forbid")

    on_threshold: float = Field(0.5, ge=0.0, le=1.0, description="score at or above which a window counts as 'on'")
    off_threshold: float = Field(0.35, ge=0.0, le=1.0, description="score below which a window counts as 'off' (hysteresis)")
    on_windows: int = Field(2, ge=1, le=1000, description="consecutive 'on' windows needed to start an episode")
    off_windows: int = Field(2, ge=1, le=1000, description="consecutive 'off' windows needed to end an episode")
    min_on_seconds: float = Field(
        0.0, ge=0.0, le=3600.0,
        description="the 'on' run must also span this long (first on-window start to current window end)",
    )
    cooldown_s: float = Field(30.0, ge=0.0, le=86400.0, description="no new episode starts this soon after the last ended")
    update_every_s: float = Field(
        0.0, ge=0.0, le=86400.0, description="emit an 'update' event this often while an episode lasts (0: never)"
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> "EpisodeConfig":
        if self.off_threshold > self.on_threshold:
            raise ValueError(
                f"off_threshold ({self.off_threshold}) must not exceed on_threshold ({self.on_threshold}): "
                "lower off_threshold or raise on_threshold"
            )
        return self


class AnomalyConfig(BaseModel):
    """Anomaly detection against a per-stream normal profile (DCASE task-2 style calibration)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="run the anomaly detector on windows that carry the anomaly task")
    task: str = Field("anomaly", min_length=1, description="label_probs key holding the model's normal/abnormal answer")
    abnormal_label: str = Field("abnormal", min_length=1, description="label whose probability is P(abnormal)")
    method: Literal["knn", "mahalanobis"] = Field("knn", description="distance of a window's features to the profile")
    features: Literal["mel", "thinking"] = Field(
        "mel", description="what the profile compares: 'mel' (level-centred log-mel band means and stds of the model "
        "front end, loudness-invariant) or 'thinking' (the pooled thinking latents); see detectors.features"
    )
    pooling: Literal["mean", "flatten"] = Field(
        "mean", description="how the (K, D) thinking latents become one vector: mean over K, or flattened K*D"
    )
    k: int = Field(3, ge=1, le=100, description="neighbours for the kNN mean distance")
    percentile: float = Field(
        95.0, gt=50.0, lt=100.0, description="threshold = this percentile of the held-out enrollment distances"
    )
    threshold_z: float | None = Field(
        None, ge=0.0, le=50.0,
        description="the threshold is at least median + this * 1.4826 * MAD of the held-out enrollment distances "
        "(None: 0, i.e. off, for either features; measured in bench/anomaly_threshold.py)",
    )
    threshold_min_ratio: float | None = Field(
        None, ge=1.0, le=10.0,
        description="the threshold is at least this times the median held-out enrollment distance, so a short, "
        "tight enrollment of a stationary machine does not alarm on its normal drift (None: 1.4 for 'mel', "
        "1 (off) for 'thinking')",
    )
    model_weight: float = Field(
        0.1, ge=0.0, le=1.0,
        description="weight of the model's P(abnormal) in the fused score (distance score gets 1 - this)",
    )
    min_enroll_windows: int = Field(8, ge=3, le=100_000, description="fewest windows a profile may be fitted on")
    default_enroll_windows: int = Field(60, ge=3, le=100_000, description="windows collected when enrollment gives no target")
    profile_dir: Path = Field(Path("profiles"), description="where normal profiles are stored (<stream>.npz + .json)")
    episode: EpisodeConfig = Field(
        default_factory=lambda: EpisodeConfig(update_every_s=10.0),
        description="hysteresis/cooldown of anomaly episodes",
    )

    def threshold_floors(self) -> tuple[float, float]:
        """(robust z, min ratio to the median) for this config's features, defaults filled in."""
        z, ratio = MEL_THRESHOLD_FLOORS if self.features == "mel" else (0.0, 1.0)
        return (z if self.threshold_z is None else self.threshold_z,
                ratio if self.threshold_min_ratio is None else self.threshold_min_ratio)

    @model_validator(mode="after")
    def _enroll_bounds(self) -> "AnomalyConfig":
        if self.default_enroll_windows < self.min_enroll_windows:
            raise ValueError(
                f"default_enroll_windows ({self.default_enroll_windows}) is below min_enroll_windows "
                f"({self.min_enroll_windows}): raise default_enroll_windows or lower min_enroll_windows"
            )
        if self.method == "knn" and self.k >= self.min_enroll_windows:
            raise ValueError(
                f"k ({self.k}) must be below min_enroll_windows ({self.min_enroll_windows}) so leave-one-out "
                "calibration has neighbours: lower k or raise min_enroll_windows"
            )
        return self


class EmotionConfig(BaseModel):
    """Sustained negative-emotion alerts on speech streams."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="run the emotion detector on windows that carry the emotion task")
    task: str = Field("emotion", min_length=1, description="label_probs key holding the emotion distribution")
    negative_labels: tuple[str, ...] = Field(
        ("angry", "fearful", "sad", "disgust"), min_length=1, description="labels that raise an alert when sustained"
    )
    ema_alpha: float = Field(
        0.5, gt=0.0, le=1.0, description="EMA weight of the newest speech window (1: no smoothing)"
    )
    min_speech_ratio: float = Field(
        0.3, ge=0.0, le=1.0, description="windows with less speech than this neither raise nor reset an alert"
    )
    silence_dbfs: float = Field(
        -55.0, ge=-160.0, le=0.0, description="without a VAD reading, windows quieter than this count as speech-free"
    )
    episode: EpisodeConfig = Field(
        default_factory=lambda: EpisodeConfig(on_threshold=0.6, off_threshold=0.4, on_windows=3, off_windows=3,
                                              cooldown_s=10.0),
        description="hysteresis/cooldown of emotion episodes",
    )


class DetectorsConfig(BaseModel):
    """The ``detectors:`` section."""

    model_config = ConfigDict(extra="forbid")

    anomaly: AnomalyConfig = Field(default_factory=AnomalyConfig, description="anomaly detector")
    emotion: EmotionConfig = Field(default_factory=EmotionConfig, description="emotion detector")
    top_tags: int = Field(5, ge=0, le=50, description="sound tags kept in an event's evidence")
