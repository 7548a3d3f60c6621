"""Detector plugins: the `Detector` protocol and the registry keyed by the config's ``type``.

The way Frigate finds its detector types (``frigate/detectors/plugins/``): a detector is one module
that defines a config class and a detector class and registers them::

    class LoudConfig(DetectorConfig):
        type: Literal["loud"] = "loud"
        task: str = "anomaly"                     # which windows it reads (window tasks / label_probs keys)
        threshold_dbfs: float = -20.0

    @register(LoudConfig)
    class LoudDetector:
        def __init__(self, config: LoudConfig, top_tags: int): ...
        def process(self, result: WindowResult) -> list[EventRecord]: ...
        def close_stream(self, stream_id: str, ts: float) -> list[EventRecord]: ...
        def status(self, stream_id: str) -> DetectorStatus: ...

and the site config names it (``detectors: {loud: {type: loud}}``, or ``detectors: {loud: {}}``: the
section's name is the default type). Modules inside ``edge_coat/detectors/`` are found by scanning the
package; modules elsewhere are listed in ``detectors.plugins`` and imported when the config is
validated. A detector that can enroll a per-stream profile also implements `Enrolling` (the enrollment
RPCs go to the first enrolling detector of the config); one whose episodes can survive a worker restart
implements `Resuming`.

The events a detector emits carry its type as ``kind``; its status is keyed by its config name.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from edge_coat.detectors.config import DetectorConfig
from edge_coat.messages import DetectorStatus, EnrollmentStatus, EventRecord, WindowResult


@runtime_checkable
class Detector(Protocol):
    """Windows in, events and a typed status out. Called under the DetectorSet's lock (one thread at
    a time); ``stream_id`` arguments are valid stream ids (`messages.StreamId`), checked where they
    entered."""

    kind: str  # the registered type, set by `register`
    config: DetectorConfig

    def process(self, result: WindowResult) -> list[EventRecord]:
        """Events caused by one window of a task this detector reads. ValueError on malformed input."""
        ...

    def close_stream(self, stream_id: str, ts: float, reason: str = "stream ended") -> list[EventRecord]:
        """The stream ended (went idle, a new capture run, interrupted...): end its open episode at ``ts``;
        ``reason`` says why in the end event."""
        ...

    def status(self, stream_id: str) -> DetectorStatus: ...


@runtime_checkable
class Enrolling(Protocol):
    """Optional capability: a per-stream profile enrolled on audio marked normal."""

    def start_enrollment(self, stream_id: str, windows: int | None = None,
                         seconds: float | None = None) -> EnrollmentStatus: ...

    def stop_enrollment(self, stream_id: str, commit: bool = True) -> EnrollmentStatus: ...

    def enrollment_status(self, stream_id: str) -> EnrollmentStatus: ...

    def enroll_from_results(self, stream_id: str, results) -> EnrollmentStatus: ...


@runtime_checkable
class Resuming(Protocol):
    """Optional capability: continue an episode a previous worker process opened (its start is in the
    event log, its end is not), so replayed audio updates and ends it instead of starting another."""

    def resume_episode(self, stream_id: str, episode_id: str, label: str, peak: float, started_ts: float,
                       last_ts: float) -> None: ...


@dataclass(frozen=True)
class DetectorType:
    """One registered detector type."""

    name: str
    config: type[DetectorConfig]
    build: Callable[[DetectorConfig, int], Detector]  # (config, top_tags) -> detector
    default: bool  # built with its defaults when the site config does not name it


_TYPES: dict[str, DetectorType] = {}
_LOCK = threading.Lock()
_scanned = False


def register(config: type[DetectorConfig], *, default: bool = False):
    """Class decorator: register a detector class under ``config``'s ``type`` default.

    ``default=True``: the detectors stage runs it (with its config defaults) even when the site
    config does not name it (the built-in anomaly and emotion detectors)."""
    name = config.model_fields["type"].default
    if not isinstance(name, str) or not name:
        raise TypeError(f"{config.__name__}.type needs a default, the detector type name (e.g. Literal['loud'] = 'loud')")

    def wrap(cls):
        with _LOCK:
            known = _TYPES.get(name)
            if known is not None and (known.build.__module__, known.build.__qualname__) != (cls.__module__, cls.__qualname__):
                raise ValueError(f"detector type {name!r} is registered twice: by {known.build.__module__} and "
                                 f"{cls.__module__}; rename one (its config's `type`)")
            cls.kind = name
            _TYPES[name] = DetectorType(name, config, cls, default)
        return cls

    return wrap


def _scan() -> None:
    """Import every module of this package once, so their `register` calls run."""
    global _scanned
    if _scanned:
        return
    import edge_coat.detectors as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    _scanned = True


def load_plugins(modules) -> None:
    """Import detector modules from outside the package (``detectors.plugins``)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"detector plugin module {name!r} cannot be imported ({exc}): install it or fix "
                             "detectors.plugins") from exc


def detector_types() -> dict[str, DetectorType]:
    """Every registered type by name (the package's own and those of imported plugin modules)."""
    _scan()
    return dict(_TYPES)


def detector_type(name: str) -> DetectorType:
    types = detector_types()
    if name not in types:
        raise ValueError(f"unknown detector type {name!r}; known: {sorted(types)} (a plugin module outside "
                         "edge_coat/detectors must be listed in detectors.plugins)")
    return types[name]
