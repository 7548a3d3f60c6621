"""The service: capture sources, worker, model stage, detectors, event log and gRPC server in one process.

Roles (``Service(cfg, roles=...)``): ``capture`` (this host's sources -> the worker's socket),
``worker`` (windowing, model stage, detectors, writing events to the log) and ``serve`` (the gRPC event
service over the log). ``edge-coat run`` takes all three; ``edge-coat worker --config`` the worker
alone (a separate ``serve`` process reads the same log file).

Threads: the worker's own (receiver, windowing, model); detectors run on the model thread through the
result callback, so an event is in the durable log before the next batch starts; a stream's end
(`messages.EndOfStream`) reaches the detectors on the same thread right after its last window's result,
and closes its open episodes; a housekeeping thread applies enrollment requests queued in the log, writes
stream statuses and retries unwritten events; the gRPC server runs on its own event loop; /metrics on a
prometheus_client HTTP thread.

Graceful stop (:meth:`Service.stop`, on SIGTERM/SIGINT in ``run``):

1. capture stops reading; what it captured is sent and acknowledged by the worker (up to
   ``service.drain_timeout_s``);
2. in-flight windows finish: every window cut so far goes through the model and the detectors;
3. the worker closes its socket; every open episode is ended (an ``end`` event per open episode);
4. the events are in the log (written synchronously), the stream statuses written a last time;
5. the gRPC server has fanned the last events out, then turns health NOT_SERVING and closes
   subscribers with a resume cursor; the log and /metrics close.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from edge_coat.config import ConfigError, SiteConfig
from edge_coat.logutil import RateLimitedLog
from edge_coat.messages import EndOfStream, EnrollmentStatus, EventRecord, StreamStatus, WindowResult

log = logging.getLogger(__name__)

ROLES = ("capture", "worker", "serve")
_NEEDS = {"capture": ("capture",), "worker": ("worker", "model", "events"), "serve": ("events",)}


def speech_presence(kind: str) -> Callable:
    """A speech-presence function (samples -> fraction of speech) for the worker's gates."""
    from edge_coat.experts import ExpertUnavailable, get_expert

    if kind in ("auto", "silero"):
        try:
            vad = get_expert("speech_vad").load()
            return lambda samples: vad.readings(vad(samples))["speech_ratio"]
        except ExpertUnavailable as exc:
            if kind == "silero":
                raise ValueError(f"service.speech_presence is silero but {exc}") from exc
            log.warning("silero VAD unavailable (%s): speech presence from YIN voicing instead", exc)
    pitch = get_expert("pitch_prosody")
    return lambda samples: pitch.readings(pitch(samples))["voiced_ratio"]


def stop_time_s(cfg: SiteConfig, roles: Iterable[str] = ROLES) -> float:
    """The longest :meth:`Service.stop` of a process running ``roles`` waits by the config: the drain
    (captured audio acknowledged, in-flight windows through; both within one ``service.drain_timeout_s``),
    then, with serve, the fan-out of the last events (``grace_s``, at least 1 s) and the subscribers' grace
    (``grace_s``). The supervisor's stop timeout (systemd ``TimeoutStopSec``, Kubernetes
    ``terminationGracePeriodSeconds``) must exceed it, with a margin for closing files and threads."""
    roles = set(roles)
    svc = cfg.service
    out = svc.drain_timeout_s if roles & {"capture", "worker"} else 0.0
    if "serve" in roles:
        out += max(svc.grace_s, 1.0) + svc.grace_s
    return out


class ServiceControl:
    """The event service's StreamControl for this process: the detectors' enrollment control, and stream
    statuses enriched with what the service knows (model, quantization, thinking runtime, providers, the
    worker's per-stream counters, the local capture's state). ``edge-coat status`` shows them."""

    def __init__(self, service: "Service"):
        self.service = service

    def list_streams(self) -> list[StreamStatus]:
        svc = self.service
        statuses = {s.stream_id: s for s in svc.detectors.list_streams()}
        worker_streams = svc.worker.stats()["streams"] if svc.worker is not None else {}
        for sid in worker_streams:  # streams whose windows have not reached the detectors (yet)
            if sid not in statuses:
                statuses[sid] = svc.detectors.stream_status(sid)
        model = svc.model_info()
        capture = {t.stream_id: t.status() for t in svc.capture_threads}
        out = []
        for sid in sorted(statuses):
            details = {"model": model}
            if sid in worker_streams:
                details["pipeline"] = {k: v for k, v in worker_streams[sid].items() if k != "recent_gaps"}
            if sid in capture:
                details["capture"] = capture[sid]
            out.append(replace(statuses[sid], details=details))
        return out

    def start_enrollment(self, stream_id: str, windows: int | None = None,
                         seconds: float | None = None) -> EnrollmentStatus:
        return self.service.detectors.start_enrollment(stream_id, windows=windows, seconds=seconds)

    def stop_enrollment(self, stream_id: str, commit: bool = True) -> EnrollmentStatus:
        return self.service.detectors.stop_enrollment(stream_id, commit=commit)

    def get_enrollment(self, stream_id: str) -> EnrollmentStatus:
        return self.service.detectors.get_enrollment(stream_id)


class Service:
    """Use::

        svc = Service(load_config("site.yaml")).start()     # all roles
        svc.grpc_port, svc.metrics_port, svc.worker_endpoint
        svc.stop()                                            # graceful; returns a summary dict
    """

    def __init__(self, cfg: SiteConfig, *, roles: Iterable[str] = ROLES, stage=None):
        self.cfg = cfg
        self.roles = tuple(roles)
        unknown = [r for r in self.roles if r not in ROLES]
        if unknown:
            raise ValueError(f"unknown service role(s) {unknown}; expected some of {ROLES}")
        for role in self.roles:
            cfg.require(*(s for s in _NEEDS[role] if s != "model" or stage is None), command=f"the {role} role")
        self._given_stage = stage
        self.stage = None
        self.worker = None
        self.detectors = None
        self.log = None
        self.server = None
        self.bridge = None
        self.sender = None
        self.capture_threads: list = []
        self.control = None
        self.console = None  # the web console (serve role, console.enabled)
        self.series = None  # per-window timeline points for the console (worker role, console.enabled)
        self.grpc_port: int | None = None
        self.console_port: int | None = None
        self.metrics_port: int | None = None
        self.worker_endpoint: str | None = None
        self.started_ts = 0.0
        self._metrics_httpd = None
        self._lock = threading.Lock()
        self._events = collections.Counter()  # (kind, phase) -> n
        self._pending: list[EventRecord] = []  # records a log error kept from being written
        self._ended: set[str] = set()  # streams whose end went through the detectors (since their last window)
        self._resumed: dict[str, float] = {}  # stream -> monotonic deadline for its resumed episodes
        self._epochs: dict[str, int] = {}  # stream -> sender epoch of its last window (model thread only)
        self._console_thresholds = (0.5, 0.6, "emotion")  # anomaly / emotion on-thresholds, emotion task
        self._stop = threading.Event()
        self._housekeeper: threading.Thread | None = None
        self._stopped = False
        self.publish_errors = 0
        self.detector_errors = 0
        self._refused_log = RateLimitedLog(log, 60.0)  # a broken stream must not flood the log
        #: called on the model thread with each result and the events it caused (demo display, tests)
        self.result_listeners: list[Callable[[WindowResult, list[EventRecord]], None]] = []

    # ---- start ---------------------------------------------------------------------------------------
    def start(self, capture: bool = True) -> "Service":
        """Start every role; with ``capture=False`` the sources wait for :meth:`start_capture`."""
        self.started_ts = time.time()
        try:
            if "worker" in self.roles:
                self._start_worker()
            if "serve" in self.roles:
                self._start_server()
            if self.cfg.metrics.enabled:
                from edge_coat.service.metrics import start_metrics_server

                listen = self.cfg.metrics.listen_for(self.roles)
                self._metrics_httpd, self.metrics_port = start_metrics_server(listen, self.stats)
                log.info("metrics on http://%s:%d/metrics", listen.rpartition(":")[0], self.metrics_port)
            if "worker" in self.roles:
                self._housekeeper = threading.Thread(target=self._housekeeping, name="housekeeping", daemon=True)
                self._housekeeper.start()
            if capture and "capture" in self.roles:
                self.start_capture()
        except BaseException:
            self._abort()
            raise
        return self

    def _start_worker(self) -> None:
        from edge_coat.detectors import DetectorSet
        from edge_coat.events.control import WorkerBridge
        from edge_coat.events.log import EventLog
        from edge_coat.worker.service import Worker

        cfg = self.cfg
        if self._given_stage is not None:
            self.stage = self._given_stage
        else:
            from edge_coat.worker.coat_stage import CoatStage

            self.stage = CoatStage(cfg.model)
        self._check_stage()
        self.detectors = DetectorSet(cfg.detectors)
        self.control = ServiceControl(self)
        ev = cfg.events
        self.log = EventLog(ev.db_path, ev.retention, ev.synchronous, ev.file_mode)
        self.bridge = WorkerBridge(self.log, self.control, on_publish=self._notify)
        self._resume_open_episodes()
        for sid, spec in cfg.service.enroll_at_start.items():
            state = self.detectors.get_enrollment(sid).state
            if state in ("none", "stale"):
                self.detectors.start_enrollment(sid, windows=spec.windows, seconds=spec.seconds)
                log.info("stream %s enrolls its normal profile on its first %s", sid,
                         f"{spec.windows} windows" if spec.windows else f"{spec.seconds:g} s")
            else:
                log.info("stream %s already has a normal profile (%s): no enrollment at start", sid, state)
        needs_speech = any(g.min_speech_ratio is not None for sc in [cfg.worker.default_stream,
                                                                     *cfg.worker.streams.values()]
                           for g in sc.tasks.values())
        speech_fn = speech_presence(cfg.service.speech_presence) if needs_speech else None
        if cfg.console.enabled:
            from edge_coat.console.series import SeriesRecorder

            self.series = SeriesRecorder(ev.db_path, cfg.console.history_s)
            anomaly, emotion = (next(iter(cfg.detectors.of_type(t)), None) for t in ("anomaly", "emotion"))
            self._console_thresholds = (anomaly.episode.on_threshold if anomaly else 0.5,
                                        emotion.episode.on_threshold if emotion else 0.6,
                                        emotion.task if emotion else "emotion")
        self.worker = Worker(cfg.worker, self.stage, on_result=self._on_result, on_end=self._on_end,
                             speech_fn=speech_fn)
        self.worker.start()
        self.worker_endpoint = self.worker.endpoint
        log.info("worker listening on %s", self.worker_endpoint)

    def _resume_open_episodes(self) -> None:
        """Episodes a killed worker left open (a start in the log, no end) continue here: the replayed
        audio updates and ends them as one episode, not a dangling start and a second one. A stream that
        does not come back within ``service.resume_timeout_s`` has them ended with reason 'interrupted'."""
        episodes = self.log.open_episodes()
        if not episodes:
            return
        streams = self.detectors.resume_episodes(episodes)
        deadline = time.monotonic() + self.cfg.service.resume_timeout_s
        with self._lock:
            self._resumed = {sid: deadline for sid in streams}
        log.info("resumed %d open episode(s) of %s left by the previous worker", len(episodes), ", ".join(streams))

    def _close_interrupted(self, everything: bool = False) -> None:
        """End the resumed episodes of streams that did not come back in time (all of them: ``everything``)."""
        now = time.monotonic()
        with self._lock:
            due = [sid for sid, deadline in self._resumed.items() if everything or now >= deadline]
            for sid in due:
                del self._resumed[sid]
        for sid in due:
            status = self.detectors.stream_status(sid)
            records = self.detectors.close_stream(sid, status.last_window_ts or time.time(), "interrupted")
            if records:
                log.warning("stream %s did not come back after the restart: %d episode(s) ended as interrupted",
                            sid, len(records))
                self._publish(records)

    def _check_stage(self) -> None:
        check = getattr(self.stage, "check_window", None)
        if check is None:
            return
        w = self.cfg.worker
        problems = check(w.default_stream.window_s, list(w.default_stream.tasks), "worker.default_stream")
        for sid, sc in w.streams.items():
            problems += check(sc.window_s, list(sc.tasks), f"worker.streams.{sid}")
        if problems:
            raise ConfigError(problems)
        note = getattr(self.stage, "encoding_for_hop", None)
        if callable(note):
            for where, sc in [("worker.default_stream", w.default_stream),
                              *((f"worker.streams.{sid}", sc) for sid, sc in w.streams.items())]:
                log.info("%s (%g s windows, %g s hop): %s", where, sc.window_s, sc.hop_s, note(sc.hop_s))

    def _start_server(self) -> None:
        from edge_coat.events.control import LogStreamControl
        from edge_coat.events.log import EventLog
        from edge_coat.events.service import EventServer

        ev = self.cfg.events
        if self.log is None:
            self.log = EventLog(ev.db_path, ev.retention, ev.synchronous, ev.file_mode)
        control = self.control if self.control is not None else LogStreamControl(self.log)
        self.server = EventServer(ev, control=control, log=self.log)
        self.grpc_port = self.server.start()
        log.info("event service on port %d", self.grpc_port)
        if self.cfg.console.enabled:
            from edge_coat.console.server import ConsoleServer

            self.console = ConsoleServer(self.cfg.console, ev, control=control, auth=self.server.auth,
                                         on_append=self.server.notify)
            self.console_port = self.console.start()

    def start_capture(self) -> None:
        """Open the configured sources and stream them to the worker (this process's, when it has one)."""
        from edge_coat.capture.runner import start_capture_threads
        from edge_coat.transport.sender import Sender

        cap = self.cfg.capture
        sender_cfg = cap.sender
        if self.worker_endpoint is not None:
            # the config check made sure the endpoint reaches the bind; use the bound one (port 0 in tests)
            sender_cfg = sender_cfg.model_copy(update={"endpoint": self.worker_endpoint.replace("0.0.0.0", "127.0.0.1")})
        self.sender = Sender(sender_cfg)
        try:
            self.capture_threads = start_capture_threads(cap.sources, self.sender, cap.state_dir)
        except BaseException:
            self.sender = None
            raise
        self.sender.start()
        log.info("capturing %d source(s) -> %s", len(cap.sources), sender_cfg.endpoint)

    # ---- the result path (model thread) --------------------------------------------------------------
    def _on_result(self, result: WindowResult) -> None:
        sid = result.window.stream_id
        if self._resumed:
            with self._lock:
                self._resumed.pop(sid, None)  # the stream came back: its windows continue the episode
        epoch = result.window.sender_epoch
        if epoch and self._epochs.get(sid, epoch) != epoch:
            # a capture that restarted as a new run (it could not resume): what its last run left open ends
            closing = self.detectors.close_stream(sid, result.window.start_ts, "new run")
            if closing:
                log.info("stream %s: a new capture run: %d open episode(s) ended", sid, len(closing))
                self._publish(closing)
        if epoch:
            self._epochs[sid] = epoch
        try:
            records = self.detectors.process(result)
        except ValueError as exc:
            self.detector_errors += 1
            self._refused_log.warning("detectors refused window %d of %s (%d refused so far): %s",
                                      result.window.index, sid, self.detector_errors, exc)
            records = []
        if records:
            self._publish(records)
        self._ended.discard(sid)
        if self.series is not None:
            self._record_point(result)
        for listener in self.result_listeners:
            try:
                listener(result, records)
            except Exception:  # noqa: BLE001 - a display bug must not stop the model loop
                log.exception("result listener failed")

    def _on_end(self, end: EndOfStream) -> None:
        """The stream's last window went through the detectors: close its open episodes."""
        records = self.detectors.end_stream(end)
        if records:
            log.info("stream %s %s: %d open episode(s) closed", end.stream_id, end.reason, len(records))
            self._publish(records)
        self._ended.add(end.stream_id)

    def _record_point(self, result: WindowResult) -> None:
        """The window's timeline point for the console (flushed to the log by housekeeping)."""
        from edge_coat.console.series import window_point

        w = result.window
        point = window_point(result, self.detectors.stream_status(w.stream_id), *self._console_thresholds)
        self.series.add(w.stream_id, w.start_ts, w.end_ts, point)

    def _publish(self, records: list[EventRecord]) -> None:
        with self._lock:
            batch, self._pending = self._pending + list(records), []
        try:
            self.bridge.publish(batch)
        except Exception:  # noqa: BLE001 - a full disk or locked file must not stop the model loop
            self.publish_errors += 1
            log.exception("writing %d event(s) to %s failed; kept for the next try", len(batch), self.log.path)
            with self._lock:
                self._pending = batch + self._pending
            return
        with self._lock:
            for r in batch:
                self._events[(r.kind, r.phase)] += 1
        for r in batch:
            log.info("event %s %s %s score %.2f: %s", r.kind, r.phase, r.stream_id, r.score, r.text)

    def _notify(self) -> None:
        if self.server is not None:
            self.server.notify()

    # ---- housekeeping ------------------------------------------------------------------------------------
    def _housekeeping(self) -> None:
        interval = self.cfg.service.status_interval_s
        next_status = 0.0
        while not self._stop.wait(0.2):
            try:
                if self._resumed:
                    self._close_interrupted()
                if self._pending:
                    self._publish([])
                if self.series is not None:
                    self.series.flush()
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + interval
                    self.bridge.poll()
            except Exception:  # noqa: BLE001 - keep the service up; the next round retries
                log.exception("housekeeping round failed")

    # ---- state -------------------------------------------------------------------------------------------
    def model_info(self) -> dict:
        info = getattr(self.stage, "info", None)
        return info() if info is not None else {"name": getattr(self.stage, "name", "")}

    def sources_ended(self) -> bool:
        return bool(self.capture_threads) and all(t.ended.is_set() for t in self.capture_threads)

    def ended_streams_closed(self) -> bool:
        """Every stream whose source ended has had its open episodes closed (their end events written)."""
        if self.worker is None:
            return True
        return all(sid in self._ended for sid, st in list(self.worker.streams.items()) if st.ended)

    def windows_pending(self) -> int:
        """Chunks and windows on their way: captured here and not yet acknowledged by the worker, or
        received by this process's worker and not yet through the model and detectors (a chunk is
        acknowledged only once its windows went through)."""
        pending = self.sender.unacked() if self.sender is not None else 0
        return pending + (self.worker.unfinished() if self.worker is not None else 0)

    def stats(self) -> dict:
        """Everything the metrics collector and the status need, as plain data."""
        with self._lock:
            events = {"by_kind": dict(self._events), "pending": len(self._pending)}
        out: dict = {"uptime_s": time.time() - self.started_ts if self.started_ts else 0.0, "roles": list(self.roles),
                     "events": events, "rejected": self._rejected()}
        if self.worker is not None:
            out["worker"] = self.worker.stats()
            stage_stats = getattr(self.stage, "stats", None)
            out["stage"] = stage_stats() if stage_stats is not None else {}
            out["model"] = self.model_info()
        if self.log is not None:
            try:
                events["head"] = self.log.head()
            except Exception:  # noqa: BLE001 - a scrape during shutdown
                events["head"] = None
        events["subscribers"] = self.server.subscribers if self.server is not None else None
        if self.server is not None:
            events["followed_by_kind"] = self.server.followed()
        if self.capture_threads:
            out["capture"] = {t.stream_id: t.status() for t in self.capture_threads}
            out["sender"] = self.sender.stats()
        return out

    def _rejected(self) -> dict[tuple[str, str], int]:
        """(edge, reason) -> inputs refused at the edges of this process (issue 15: counted, not printed):
        wire messages the worker dropped, gRPC bodies that did not parse, windows the detectors refused,
        NaN/inf samples a capture source gave, token file reloads that failed."""
        out: dict[tuple[str, str], int] = {}
        if self.worker is not None:
            messages = self.worker.receiver.stats()["messages"]
            for reason in ("malformed", "oversized", "bad_version", "bad_format", "out_of_range", "unexpected_kind",
                           "unannounced"):
                out[("wire", reason)] = int(messages.get(reason, 0))
            out[("detectors", "refused_window")] = self.detector_errors
        if self.server is not None:
            from edge_coat.events.service import malformed_requests

            out[("grpc", "malformed_body")] = sum(malformed_requests.values())
            out[("tokens", "reload_failed")] = self.server.auth.reload_errors
        if self.sender is not None:
            out[("capture", "nonfinite_samples")] = int(self.sender.counters.get("nonfinite_samples", 0))
        return out

    # ---- stop ----------------------------------------------------------------------------------------------
    def stop(self) -> dict:
        """Graceful stop (see the module docstring); returns a summary. Safe to call twice."""
        if self._stopped:
            return {}
        self._stopped = True
        cfg = self.cfg.service
        deadline = time.monotonic() + cfg.drain_timeout_s
        summary: dict = {"lost_audio": False, "windows_unfinished": 0}
        # 1. capture stops; what it read reaches the worker
        for t in self.capture_threads:
            t.stop()
        if self.sender is not None:
            acked = self.sender.wait_acked(max(0.0, deadline - time.monotonic()))
            for t in self.capture_threads:
                t.record_progress()  # a file's state file says how far the worker acknowledged it
            if not acked:
                summary["lost_audio"] = True
                log.warning("shutdown: captured audio not acknowledged by the worker within %.0f s",
                            cfg.drain_timeout_s)
            self.sender.close()
        # 2. in-flight windows finish
        if self.worker is not None:
            self.worker.wait_idle(max(0.0, deadline - time.monotonic()))
            summary["windows_unfinished"] = self.worker.unfinished()
            if summary["windows_unfinished"]:
                log.warning("shutdown: %d window(s) still unfinished after %.0f s", summary["windows_unfinished"],
                            cfg.drain_timeout_s)
            self._stop.set()
            if self._housekeeper is not None:
                self._housekeeper.join(10.0)
            self.worker.close()
            # 3. open episodes end; 4. the last events and statuses are in the log
            self._close_interrupted(everything=True)
            closing = self.detectors.close_all()
            if closing or self._pending:
                self._publish(closing)
            try:
                self.bridge.poll()
                if self.series is not None:
                    self.series.flush()
            except Exception:  # noqa: BLE001
                log.exception("shutdown: writing the final stream statuses failed")
        self._stop.set()
        if self.console is not None:
            self.console.stop()
        if self.series is not None:
            self.series.close()
        # 5. subscribers get the last events, then NOT_SERVING and a resume cursor
        if self.server is not None:
            self._wait_fanned_out(max(cfg.grace_s, 1.0))
            self.server.stop(grace=cfg.grace_s)
        if self._metrics_httpd is not None:
            self._metrics_httpd.shutdown()
            self._metrics_httpd.server_close()
        with self._lock:
            summary["events"] = {f"{k}/{p}": n for (k, p), n in sorted(self._events.items())}
            summary["events_unwritten"] = len(self._pending)
        if self.log is not None:
            summary["log_head"] = self.log.head()
            self.log.close()
        log.info("service stopped: %s", summary)
        return summary

    def _wait_fanned_out(self, timeout: float) -> None:
        """Until the gRPC hub has read every event in the log (so live subscribers get the last ones)."""
        if self.server is None or self.log is None:
            return
        if self.server.drain(self.log.head(), timeout):
            time.sleep(min(0.2, timeout))  # let the woken subscriber tasks write their last message

    def _abort(self) -> None:
        """Undo a start that failed half-way (no draining: nothing was processed yet)."""
        self._stopped = True
        self._stop.set()
        for t in self.capture_threads:
            t.stop(1.0)
        if self.sender is not None:
            self.sender.close()
        if self.worker is not None:
            self.worker.close()
        if self.console is not None:
            self.console.stop()
        if self.series is not None:
            self.series.close()
        if self.server is not None:
            self.server.stop(grace=0.0)
        if self._metrics_httpd is not None:
            self._metrics_httpd.shutdown()
            self._metrics_httpd.server_close()
        if self.log is not None:
            self.log.close()
