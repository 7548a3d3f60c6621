"""The site config: one YAML (or TOML/JSON) file for every process of a site.

Sections mirror the pipeline stages; each stage owns its section's model, composed here::

    capture:    edge_coat.capture.config.CaptureConfig      (sources, link to the worker)
    worker:     edge_coat.worker.config.WorkerConfig        (socket, windowing, gates, batching)
    model:      edge_coat.model.config.ModelSection         (which model, quantization, where its parts run)
    detectors:  edge_coat.detectors.config.DetectorsConfig
    events:     edge_coat.events.config.EventsConfig        (event log, gRPC service, TLS, tokens)
    console:    edge_coat.console.config.ConsoleConfig      (operator web console; off unless enabled)
    metrics:    MetricsConfig                               (Prometheus /metrics: listen for run, roles.* per split process)
    logging:    LoggingConfig                               (level, text or JSON lines)
    service:    ServiceConfig                               (shutdown, enrollment at start)

Every section is optional in the file; each command asks for the ones it needs
(:meth:`SiteConfig.require`): ``run`` needs worker, model and events; ``capture`` needs capture; ``serve``
needs events. So one file can drive the all-in-one ``run`` or the split ``capture``/``worker``/``serve``
processes, and a capture host can have a file with only ``capture`` and ``metrics``.

``load_config(path)`` raises :class:`ConfigError` listing every problem at once, each naming the field
(``worker.default_stream.hop_s``) and saying how to fix it. Relative paths in the file are taken
relative to the working directory of the process (systemd units and the example use absolute paths).
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge_coat.capture.config import CaptureConfig
from edge_coat.console.config import ConsoleConfig
from edge_coat.detectors.config import MAX_ENROLL_SECONDS, MAX_ENROLL_WINDOWS, DetectorsConfig, EnrollConfig
from edge_coat.events.config import EventsConfig
from edge_coat.messages import StreamId
from edge_coat.model.config import ModelSection
from edge_coat.worker.config import WorkerConfig

log = logging.getLogger(__name__)

_LISTEN = r"^[A-Za-z0-9.\-\[\]:*]+:[0-9]{1,5}$"


class EnrollSpec(BaseModel):
    """Enrollment of one stream's normal profile from its first windows."""

    model_config = ConfigDict(extra="forbid")

    windows: int | None = Field(None, ge=3, le=MAX_ENROLL_WINDOWS, description="enroll on the stream's first N windows")
    seconds: float | None = Field(None, gt=0.0, le=MAX_ENROLL_SECONDS,
                                  description="or on its first N seconds of audio")

    @model_validator(mode="after")
    def _one(self) -> "EnrollSpec":
        if (self.windows is None) == (self.seconds is None):
            raise ValueError("give exactly one of `windows` or `seconds`")
        return self


class ServiceConfig(BaseModel):
    """Section ``service``: how the processes start and stop."""

    model_config = ConfigDict(extra="forbid")

    drain_timeout_s: float = Field(
        60.0, ge=0.0, le=3600.0,
        description="on SIGTERM: longest wait for captured audio to reach the worker and in-flight windows to finish",
    )
    grace_s: float = Field(3.0, ge=0.0, le=600.0, description="on SIGTERM: seconds gRPC subscribers get before close")
    status_interval_s: float = Field(
        1.0, gt=0.0, le=3600.0,
        description="how often stream statuses are written to the log and pending enrollment requests applied",
    )
    speech_presence: Literal["auto", "silero", "voicing"] = Field(
        "auto",
        description="speech-presence function for gates with min_speech_ratio: silero VAD, YIN voicing (DSP), "
        "or auto (silero when installed, else voicing)",
    )
    resume_timeout_s: float = Field(
        120.0, gt=0.0, le=86400.0,
        description="after a restart, how long an episode the previous worker left open waits for its stream "
        "to come back and continue it; then it ends with reason 'interrupted'",
    )
    enroll_at_start: dict[StreamId, EnrollSpec] = Field(
        default_factory=dict,
        description="stream id -> enroll its normal profile on its first windows, when it has no profile yet",
    )


#: Port offsets from ``metrics.listen`` for the split processes, so that capture, worker and serve on one
#: box (three systemd units reading one site config) each get a port of their own by default.
ROLE_PORT_OFFSET = {"capture": 1, "worker": 2, "serve": 3}


class RoleMetricsConfig(BaseModel):
    """Section ``metrics.roles``: /metrics addresses of the split processes (``edge-coat capture``,
    ``worker``, ``serve``). Unset: ``metrics.listen``'s host and its port plus 1, 2 or 3 (9109, 9110, 9111 for
    9108; port 0 stays 0)."""

    model_config = ConfigDict(extra="forbid")

    capture: str | None = Field(
        None, pattern=_LISTEN, description="host:port for `edge-coat capture`'s /metrics (default: metrics.listen's "
        "host, its port + 1)",
    )
    worker: str | None = Field(
        None, pattern=_LISTEN, description="host:port for `edge-coat worker`'s /metrics (default: metrics.listen's "
        "host, its port + 2)",
    )
    serve: str | None = Field(
        None, pattern=_LISTEN, description="host:port for `edge-coat serve`'s /metrics (default: metrics.listen's "
        "host, its port + 3)",
    )


class MetricsConfig(BaseModel):
    """Section ``metrics``: Prometheus exposition over HTTP, one listener per process.

    ``listen`` is the all-in-one ``edge-coat run``'s; each split process (a single role) listens on its
    ``roles`` address, so the three split units of one box never compete for one port."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="serve /metrics")
    listen: str = Field(
        "127.0.0.1:9108", pattern=_LISTEN,
        description="host:port for the all-in-one process's /metrics (port 0: any free port)",
    )
    roles: RoleMetricsConfig = Field(
        default_factory=RoleMetricsConfig,
        description="host:port per split process (capture, worker, serve); default: listen's port + 1, 2, 3",
    )

    def listen_for(self, roles: typing.Iterable[str]) -> str:
        """The /metrics address of a process running ``roles``: one role's own (``roles.<role>``, else
        ``listen``'s host with its port plus the role's offset); several roles in one process: ``listen``."""
        roles = tuple(roles)
        if len(roles) != 1:
            return self.listen
        role = roles[0]
        if role not in ROLE_PORT_OFFSET:
            raise ValueError(f"expected a role among {tuple(ROLE_PORT_OFFSET)}, got {role!r}")
        given = getattr(self.roles, role)
        if given is not None:
            return given
        host, _, port = self.listen.rpartition(":")
        return f"{host}:{int(port) + ROLE_PORT_OFFSET[role] if int(port) else 0}"


class LoggingConfig(BaseModel):
    """Section ``logging``."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="root log level")
    format: Literal["text", "json"] = Field(
        "text", description="text: one readable line per record; json: one JSON object per line (log shippers)"
    )


class SiteConfig(BaseModel):
    """The whole site config. Cross-section checks run here; each stage validates its own section."""

    model_config = ConfigDict(extra="forbid")

    capture: CaptureConfig | None = Field(None, description="audio sources of this host and their link to the worker")
    worker: WorkerConfig | None = Field(None, description="the worker's socket, windowing, gates and batching")
    model: ModelSection | None = Field(None, description="the model the worker runs")
    detectors: DetectorsConfig = Field(default_factory=DetectorsConfig, description="anomaly and emotion detectors")
    events: EventsConfig | None = Field(None, description="the durable event log and the gRPC event service")
    console: ConsoleConfig = Field(default_factory=ConsoleConfig,
                                   description="the operator web console next to the event service (off by default)")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus metrics")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="log level and format")
    service: ServiceConfig = Field(default_factory=ServiceConfig, description="start-up and shutdown")

    @model_validator(mode="after")
    def _cross_checks(self) -> "SiteConfig":
        problems = cross_field_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def require(self, *sections: str, command: str = "this command") -> None:
        """Raise ConfigError naming every section ``command`` needs that the file lacks."""
        missing = [s for s in sections if getattr(self, s) is None]
        if missing:
            raise ConfigError(
                [f"{s}: section missing; `{command}` needs it (see deploy/site.example.yaml)" for s in missing]
            )


class ConfigError(ValueError):
    """A site config that cannot be used. ``problems``: one line per problem, each naming its field."""

    def __init__(self, problems: list[str], source: str | Path | None = None):
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"{len(self.problems)} problem(s){where}:\n" + "\n".join(f"  - {p}" for p in self.problems))


# ---- cross-field checks --------------------------------------------------------------------------


def _split_endpoint(endpoint: str) -> tuple[str, str, str] | None:
    """tcp://host:port -> (scheme, host, port); None for other transports."""
    m = re.fullmatch(r"(tcp)://(.+):(\d+|\*)", endpoint)
    return (m.group(1), m.group(2).strip("[]"), m.group(3)) if m else None


_ANY_HOST = {"*", "0.0.0.0", "::"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def endpoint_reaches(endpoint: str, bind: str) -> bool:
    """Does a client connecting to ``endpoint`` reach a socket bound to ``bind``?

    Port 0 on both sides means "the port the worker bound", which an all-in-one process fills in."""
    e, b = _split_endpoint(endpoint), _split_endpoint(bind)
    if e is None or b is None:
        return endpoint == bind
    if e[2] != b[2]:
        return False
    if b[1] in _ANY_HOST or e[1] == b[1]:
        return True
    return e[1] in _LOOPBACK and b[1] in _LOOPBACK


def _port(listen: str) -> int | None:
    m = re.search(r":(\d+)$", listen)
    return int(m.group(1)) if m else None


def _port_problems(cfg: SiteConfig) -> list[str]:
    """Listeners that would share a port on one box: within the all-in-one process (``run``), and among
    the split processes (capture, worker, serve units reading this one file, each a role whose sections
    the file has)."""
    common: dict[str, int | None] = {}
    if cfg.worker is not None and (b := _split_endpoint(cfg.worker.receiver.bind)) and b[2].isdigit():
        common["worker.receiver.bind"] = int(b[2])
    if cfg.events is not None:
        common["events.listen"] = _port(cfg.events.listen)
        if cfg.console.enabled:
            common["console.listen"] = _port(cfg.console.listen)
    split_roles = [role for role, present in (("capture", cfg.capture), ("worker", cfg.worker), ("serve", cfg.events))
                   if present is not None]
    groups = [dict(common), dict(common)]
    if cfg.metrics.enabled:
        groups[0]["metrics.listen"] = _port(cfg.metrics.listen)
        for role in split_roles:
            given = getattr(cfg.metrics.roles, role) is not None
            path = f"metrics.roles.{role}" + ("" if given else f" (by default metrics.listen's port + "
                                                                  f"{ROLE_PORT_OFFSET[role]})")
            groups[1][path] = _port(cfg.metrics.listen_for((role,)))
    out: list[str] = []
    for ports in groups:
        seen: dict[int, str] = {}
        for path, port in ports.items():
            if not port:
                continue
            if port > 65535:
                problem = f"{path}: port {port} is beyond 65535; lower metrics.listen's port or set {path.split()[0]}"
            elif port in seen:
                problem = f"{path}: port {port} is also used by {seen[port]}; give each listener its own port"
            else:
                seen[port] = path
                continue
            if problem not in out:
                out.append(problem)
    return out


def cross_field_problems(cfg: SiteConfig) -> list[str]:
    """Problems between fields or sections, each as 'path: what is wrong; how to fix it'."""
    out: list[str] = []
    streams = {}
    if cfg.worker is not None:
        streams = {"worker.default_stream": cfg.worker.default_stream,
                   **{f"worker.streams.{sid}": sc for sid, sc in cfg.worker.streams.items()}}
    for path, sc in streams.items():
        if sc.hop_s > sc.window_s:
            out.append(f"{path}.hop_s: the hop ({sc.hop_s} s) exceeds window_s ({sc.window_s} s), so audio between "
                       "windows would never be analysed; lower hop_s or raise window_s")
    if cfg.capture is not None and cfg.worker is not None:
        endpoint, bind = cfg.capture.sender.endpoint, cfg.worker.receiver.bind
        if not endpoint_reaches(endpoint, bind):
            out.append(f"capture.sender.endpoint: {endpoint} does not reach the worker's bind address {bind} "
                       "(worker.receiver.bind); the capture endpoint must match the worker bind: use the same "
                       "port, and the worker's host (or 127.0.0.1 when it binds 0.0.0.0)")
        longest = max(sc.window_s for sc in streams.values())
        if cfg.capture.sender.buffer_s <= longest:
            out.append(f"capture.sender.buffer_s: the replay buffer ({cfg.capture.sender.buffer_s} s) must exceed "
                       f"the window length ({longest} s), which the worker holds unacknowledged; raise buffer_s "
                       "or lower window_s")
        if (cfg.capture.sender.curve is None) != (cfg.worker.receiver.curve is None):
            side = "capture.sender.curve" if cfg.capture.sender.curve is None else "worker.receiver.curve"
            out.append(f"{side}: CurveZMQ is set on one end of the capture->worker link only; set both "
                       "capture.sender.curve and worker.receiver.curve, or neither (loopback tests only)")
    enrolling = [(n, c) for n, c in cfg.detectors.instances.items() if isinstance(c, EnrollConfig)]
    if cfg.service.enroll_at_start and not enrolling:
        out.append("service.enroll_at_start: no configured detector enrolls a profile; add one (e.g. "
                   "detectors.anomaly) or remove enroll_at_start")
    for name, det in enrolling[:1]:
        for sid, spec in cfg.service.enroll_at_start.items():
            if spec.windows is not None and spec.windows < det.min_enroll_windows:
                out.append(f"service.enroll_at_start.{sid}.windows: {spec.windows} windows is below "
                           f"detectors.{name}.min_enroll_windows ({det.min_enroll_windows}); raise windows or "
                           "lower min_enroll_windows")
    if cfg.console.enabled and cfg.events is None:
        out.append("console.enabled: the console is a view on the event service; add an events: section "
                   "(or set console.enabled: false)")
    out += _port_problems(cfg)
    return out


# ---- files on this host ----------------------------------------------------------------------------


def _file_problem(path_name: str, path: Path | None, *, folder: bool = False, needs: str = "") -> list[str]:
    if path is None:
        return []
    p = Path(path)
    if not p.exists():
        return [f"{path_name}: {p} does not exist on this host; fix the path{needs}"]
    if folder and not p.is_dir():
        return [f"{path_name}: {p} is not a folder; give the model folder{needs}"]
    if not folder and p.is_dir():
        return [f"{path_name}: {p} is a folder; give the file itself"]
    return []


def file_problems(cfg: SiteConfig, sections: typing.Iterable[str]) -> list[str]:
    """Files and folders the given sections name that are missing on this host (the model folder, TLS
    and key files, the tokens file), as 'path: what is wrong; how to fix it'. The config's syntax is
    fine without them; ``--check`` and the start of each command use this to fail before anything runs."""
    out: list[str] = []
    sections = set(sections)
    if "model" in sections and cfg.model is not None:
        m = cfg.model
        out += _file_problem("model.path", m.path, folder=True,
                             needs=" (a model folder such as models/coat-tiny, with coat_config.json)")
        out += _file_problem("model.coat_path", m.coat_path, folder=True)
        coat_dir = m.coat_path or m.path
        if not out and not (Path(coat_dir) / "coat_config.json").is_file():
            out.append(f"model.{'coat_path' if m.coat_path else 'path'}: {coat_dir} has no coat_config.json; "
                       "point it at a model folder (`edge-coat models` lists them)")
        if m.desk_dir is not None and Path(m.desk_dir).exists() and not Path(m.desk_dir).is_dir():
            out.append(f"model.desk_dir: {m.desk_dir} is a file; give a folder for the desk baselines, e.g. "
                       f"{Path(m.desk_dir).parent / 'desks'}")
    if "events" in sections and cfg.events is not None:
        ev = cfg.events
        if ev.tls is not None:
            out += _file_problem("events.tls.cert_file", ev.tls.cert_file)
            out += _file_problem("events.tls.key_file", ev.tls.key_file)
            out += _file_problem("events.tls.client_ca_file", ev.tls.client_ca_file)
            if not out:
                from edge_coat.events.config import check_tls_files

                try:
                    check_tls_files(ev.tls)
                except ValueError as exc:
                    out.append(str(exc))
        out += _file_problem("events.tokens_file", ev.tokens_file)
        if Path(ev.db_path).is_dir():
            out.append(f"events.db_path: {ev.db_path} is a folder; give the event log file, e.g. "
                       f"{Path(ev.db_path) / 'events.db'}")
    curves = []
    if "worker" in sections and cfg.worker is not None and cfg.worker.receiver.curve is not None:
        curves.append(("worker.receiver.curve", cfg.worker.receiver.curve))
    if "capture" in sections and cfg.capture is not None and cfg.capture.sender.curve is not None:
        curves.append(("capture.sender.curve", cfg.capture.sender.curve))
    for name, curve in curves:
        out += _file_problem(f"{name}.secret_key_file", curve.secret_key_file)
        out += _file_problem(f"{name}.server_public_key_file", curve.server_public_key_file)
        out += _file_problem(f"{name}.allowed_clients_dir", curve.allowed_clients_dir, folder=True)
    return out


# ---- loading -------------------------------------------------------------------------------------


def read_config(path: str | Path) -> dict:
    """The raw mapping of a site config file (YAML, or TOML/JSON by suffix), not yet validated: for
    commands that merge command-line overrides in before :func:`validate_config`. ConfigError on a
    missing or unreadable file, bad syntax, or a top level that is not a mapping."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"cannot read the config file: {exc}"], path) from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - YAML, TOML and JSON each raise their own syntax errors
        kind = {".toml": "TOML", ".json": "JSON"}.get(suffix, "YAML")
        raise ConfigError([f"not valid {kind}: {exc}"], path) from exc
    if data is None:
        raise ConfigError(["the file is empty; expected sections such as worker:, model:, events:"], path)
    if not isinstance(data, dict):
        raise ConfigError([f"expected a mapping of sections at the top level, got {type(data).__name__}"], path)
    return data


def load_config(path: str | Path) -> SiteConfig:
    """Read and validate a site config (YAML, or TOML/JSON by suffix). Raises ConfigError listing every problem."""
    path = Path(path)
    data = read_config(path)
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain(exc), path) from None


def validate_config(data: dict) -> SiteConfig:
    """Validate an in-memory config (tests, the demo); ConfigError like :func:`load_config`."""
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain(exc)) from None


# ---- error messages --------------------------------------------------------------------------------


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(annotation):
    """The pydantic model (or dict/list of one) inside Optional[...] / X | None."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    return annotation


def _field_at(loc: tuple):
    """(model class holding the last field, FieldInfo or None) for an error location."""
    cls, info = SiteConfig, None
    owner = SiteConfig
    i = 0
    while i < len(loc):
        part = loc[i]
        ann = _unwrap(cls) if cls is not None else None
        origin = typing.get_origin(ann)
        if origin in (dict, list, tuple):
            cls = _unwrap(typing.get_args(ann)[-1])  # skip the key / index
            i += 1
            continue
        if ann is DetectorsConfig and part not in ann.model_fields:  # detectors.<name>: its type's config
            cls = owner = DetectorsConfig.config_class(part)
            i += 1
            continue
        if isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(part, str):
            owner = ann
            info = ann.model_fields.get(part)
            if info is None:
                return owner, None
            cls = info.annotation
            i += 1
            continue
        return owner, info
    return owner, info


def explain(exc: ValidationError) -> list[str]:
    """Turn pydantic's errors into one line each: 'path: what is wrong; how to fix it'."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _dotted(loc) or "(top level)"
        kind, msg = err["type"], err["msg"]
        if kind == "extra_forbidden":
            owner, _ = _field_at(loc[:-1] + ("\0",))
            allowed = ", ".join(owner.model_fields)
            out.append(f"{path}: unknown field; expected one of: {allowed} (check the spelling and the section)")
            continue
        _, info = _field_at(loc)
        hint = f" ({info.description})" if info is not None and info.description else ""
        if kind == "missing":
            out.append(f"{path}: required field is missing; add it{hint}")
        elif kind == "string_pattern_mismatch" and info is not None and info.description:
            out.append(f"{path}: got {err.get('input')!r}; expected {info.description}")
        elif kind == "value_error":
            # cross-field checks carry one 'path: message' per line already
            text = msg.removeprefix("Value error, ")
            for line in text.splitlines():
                out.append(line if ":" in line.split(" ")[0] or not loc else f"{path}: {line}")
        else:
            out.append(f"{path}: {msg}, got {err.get('input')!r}{hint}")
    return out
