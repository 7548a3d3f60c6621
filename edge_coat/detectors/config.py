"""Configuration of the detectors stage (the ``detectors:`` section of the site config).

The section maps a detector name to its config; the name is also the default ``type`` (the registry
key, ``edge_coat.detectors.registry``), so the usual file reads::

    detectors:
      anomaly: {features: mel, k: 3}       # type anomaly
      emotion: {negative_labels: [angry]}  # type emotion
      press-loud: {type: loud}             # a plugin type, its module in detectors.plugins
      top_tags: 5

Each detector's config derives from `DetectorConfig` (``type``, ``enabled``, ``task``) and is
validated by its registered class; errors name the field (``detectors.anomaly.k``). Types registered
with ``default=True`` (anomaly, emotion) run with their defaults when the file does not name them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer, model_validator



#: threshold floors (robust z, ratio to the median) of the mel profile, from bench/tuning/anomaly_threshold.py on
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


class DetectorConfig(BaseModel):
    """What every detector's config has; a detector type's config derives from it and gives ``type`` a
    ``Literal`` default (its registry key)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="detector type (registry key); default: the section's name")
    enabled: bool = Field(True, description="run this detector on windows that carry its task")
    task: str = Field(min_length=1, description="the window task (and label_probs key) this detector reads")


class EnrollConfig(DetectorConfig):
    """What a detector that enrolls a per-stream profile has (the `Enrolling` capability)."""

    min_enroll_windows: int = Field(8, ge=3, le=100_000, description="fewest windows a profile may be fitted on")
    default_enroll_windows: int = Field(60, ge=3, le=100_000, description="windows collected when enrollment gives no target")

    @model_validator(mode="after")
    def _enroll_bounds(self) -> "EnrollConfig":
        if self.default_enroll_windows < self.min_enroll_windows:
            raise ValueError(
                f"default_enroll_windows ({self.default_enroll_windows}) is below min_enroll_windows "
                f"({self.min_enroll_windows}): raise default_enroll_windows or lower min_enroll_windows"
            )
        return self


class AnomalyConfig(EnrollConfig):
    """Anomaly detection against a per-stream normal profile (DCASE task-2 style calibration)."""

    type: Literal["anomaly"] = Field("anomaly", description="detector type")
    task: str = Field("anomaly", min_length=1, description="label_probs key holding the model's normal/abnormal answer")
    abnormal_label: str = Field("abnormal", min_length=1, description="label whose probability is P(abnormal)")
    method: Literal["knn", "mahalanobis"] = Field("knn", description="distance of a window's features to the profile")
    features: Literal["mel", "thinking", "mel+thinking"] = Field(
        "mel", description="what the profile compares: 'mel' (level-centred log-mel band means and stds of the model "
        "front end, loudness-invariant), 'thinking' (the pooled thinking latents) or 'mel+thinking' (both in one "
        "vector); see detectors.features"
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
        "(None: 0, i.e. off, for either features; measured in bench/tuning/anomaly_threshold.py)",
    )
    threshold_min_ratio: float | None = Field(
        None, ge=1.0, le=10.0,
        description="the threshold is at least this times the median held-out enrollment distance, so a short, "
        "tight enrollment of a stationary machine does not alarm on its normal drift (None: 1.4 for 'mel', "
        "1 (off) for 'thinking'; 'mel+thinking' takes mel's)",
    )
    model_weight: float = Field(
        0.1, ge=0.0, le=1.0,
        description="weight of the model's P(abnormal) in the fused score (distance score gets 1 - this)",
    )
    profile_dir: Path = Field(Path("profiles"), description="where normal profiles are stored (<stream>.npz + .json)")
    episode: EpisodeConfig = Field(
        default_factory=lambda: EpisodeConfig(update_every_s=10.0),
        description="hysteresis/cooldown of anomaly episodes",
    )

    def threshold_floors(self) -> tuple[float, float]:
        """(robust z, min ratio to the median) for this config's features, defaults filled in."""
        z, ratio = MEL_THRESHOLD_FLOORS if self.features in ("mel", "mel+thinking") else (0.0, 1.0)
        return (z if self.threshold_z is None else self.threshold_z,
                ratio if self.threshold_min_ratio is None else self.threshold_min_ratio)

    @model_validator(mode="after")
    def _knn_bounds(self) -> "AnomalyConfig":
        if self.method == "knn" and self.k >= self.min_enroll_windows:
            raise ValueError(
                f"k ({self.k}) must be below min_enroll_windows ({self.min_enroll_windows}) so leave-one-out "
                "calibration has neighbours: lower k or raise min_enroll_windows"
            )
        return self


class EmotionConfig(DetectorConfig):
    """Sustained negative-emotion alerts on speech streams."""

    type: Literal["emotion"] = Field("emotion", description="detector type")
    task: str = Field("emotion", min_length=1, description="label_probs key holding the emotion distribution")
    # Defaults tuned on whole calls of development speakers with the embedded model, coat-tiny 1.4 with its
    # fused temperature (bench/tuning/emotion_threshold.py, BENCHMARKS.md "Emotion alert thresholds", 8e): the most
    # angry calls alerted in the worst of 10 s/2 s, 3 s/1.5 s and 2 s/1 s windows (77 %; 86-91 % at the short
    # windows) with false alerts on at most 10 % of calm/happy calls in each. 1.3's setting (angry + disgust,
    # EMA 0.7, on 0.4 for 2 windows) raised false alerts on 29 % of dev calm/happy calls at 2 s windows with 1.4.
    negative_labels: tuple[str, ...] = Field(
        ("angry",), min_length=1, description="labels that raise an alert when sustained"
    )
    ema_alpha: float = Field(
        1.0, gt=0.0, le=1.0, description="EMA weight of the newest speech window (1: no smoothing)"
    )
    min_speech_ratio: float = Field(
        0.3, ge=0.0, le=1.0, description="windows with less speech than this neither raise nor reset an alert"
    )
    silence_dbfs: float = Field(
        -55.0, ge=-160.0, le=0.0, description="without a VAD reading, windows quieter than this count as speech-free"
    )
    episode: EpisodeConfig = Field(
        default_factory=lambda: EpisodeConfig(on_threshold=0.3, off_threshold=0.1, on_windows=3, off_windows=3,
                                              cooldown_s=10.0),
        description="hysteresis/cooldown of emotion episodes",
    )


class DetectorsConfig(BaseModel):
    """The ``detectors:`` section: detector name -> its config, plus the settings below."""

    model_config = ConfigDict(extra="forbid")

    top_tags: int = Field(5, ge=0, le=50, description="sound tags kept in an event's evidence")
    plugins: list[str] = Field(
        default_factory=list, description="modules outside edge_coat/detectors that register detector types "
        "(imported when the config is validated)",
    )
    instances: dict[str, DetectorConfig] = Field(
        default_factory=dict, description="detector name -> config (written in the file as detectors.<name>)"
    )

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data):
        """Split the file's mapping into settings and detector configs, each validated by its type's class."""
        from edge_coat.detectors.registry import detector_type, detector_types, load_plugins

        if isinstance(data, DetectorsConfig):
            return data
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping of detector names to their configs, got {type(data).__name__}")
        data = dict(data)
        settings = {k: data.pop(k) for k in ("top_tags", "plugins") if k in data}
        given = data.pop("instances", {}) or {}
        given.update(data)
        load_plugins(settings.get("plugins") or [])
        instances, errors = {}, []
        for name, value in given.items():
            try:
                if isinstance(value, DetectorConfig):
                    instances[name] = value
                    continue
                value = dict(value or {})
                instances[name] = detector_type(value.setdefault("type", name)).config.model_validate(value)
            except ValidationError as exc:
                errors += [{"type": e["type"], "loc": (name, *e["loc"]), "input": e["input"], "ctx": e.get("ctx", {})}
                           for e in exc.errors(include_url=False)]
            except (ValueError, TypeError) as exc:
                errors.append({"type": "value_error", "loc": (name,), "input": value, "ctx": {"error": exc}})
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        for t in detector_types().values():
            if t.default and t.name not in {c.type for c in instances.values()} and t.name not in instances:
                instances[t.name] = t.config()
        return {**settings, "instances": instances}

    @model_serializer(mode="wrap")
    def _as_file(self, handler, info):
        """Dump in the file's shape (``{top_tags, plugins, <name>: {...}}``), so a dump validates again."""
        out = handler(self)
        out.update({name: c.model_dump(mode=info.mode) for name, c in self.instances.items()})
        del out["instances"]
        return out

    @classmethod
    def config_class(cls, name: str) -> type[DetectorConfig]:
        """The config class of the detector type named ``name`` (the default type of a section of that name)."""
        from edge_coat.detectors.registry import detector_types

        t = detector_types().get(name)
        return t.config if t is not None else DetectorConfig

    def __getitem__(self, name: str) -> DetectorConfig:
        return self.instances[name]

    def of_type(self, type_name: str) -> list[DetectorConfig]:
        """The configs of every detector of one type, in file order."""
        return [c for c in self.instances.values() if c.type == type_name]
