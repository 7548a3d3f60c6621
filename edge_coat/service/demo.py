"""``edge-coat demo``: the product end to end on this machine, with nothing downloaded.

1. Generate a scene: a pump that runs normally and then develops cavitation
   (``edge_coat.data.factory.render_scene``), and a stretch of calm synthetic speech (espeak-ng, when
   installed; its voices are GPL-3.0 data we generate at run time, nothing is shipped).
2. Start the service (worker, model, detectors, event log, gRPC) with the embedded model on loopback.
3. Like any client, over gRPC: enroll the pump's normal profile from its first stretch, subscribe.
4. Stream both files through real capture sources (faster than real time; ``--realtime`` paces them).
5. Show progress and events live (a redrawn table on a terminal, plain lines otherwise).
6. Stop gracefully (open episodes end) and print what was expected against what was seen.

With ``console`` (``edge-coat demo --console``) the service also serves the operator web console and
stays up after the summary, which then prints the console's URL and a read-only token, until
``console_wait`` returns (Ctrl-C on the command line). The event service then requires tokens: the
demo's own client uses a second one, with control, that is not printed.

Exit status: 0 when the expected anomaly was detected after the fault's onset; 1 when it was missed
(false alarms and emotion alerts are reported but do not change the status: the demo's promise is the
anomaly); 2 when the demo cannot run (no model, bad arguments).
"""

from __future__ import annotations

import logging
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_coat.messages import SAMPLE_RATE

log = logging.getLogger(__name__)

MACHINE_STREAM = "pump-1"
SPEECH_STREAM = "desk-1"
SENTENCES = (
    "Good morning, this is the maintenance desk.",
    "The pump on line one was serviced last week and the report is ready.",
    "Please check the pressure readings before the next shift starts.",
    "Thank you, I will send the schedule this afternoon.",
)


@dataclass
class DemoOptions:
    model: Path
    workdir: Path
    scene_s: float = 60.0
    onset_s: float = 30.0
    develop_s: float = 5.0
    enroll_s: float = 20.0
    window_s: float = 2.0
    hop_s: float = 1.0
    realtime: bool = False
    speech: bool = True
    threads: int = 1
    seed: int = 0
    console: bool = False  # serve the web console and stay up after the summary until console_wait returns
    console_listen: str = "127.0.0.1:0"
    console_wait: Callable[[], object] | None = None
    caller: Path | None = None  # a real recording (any rate/channels) put on the desk stream instead of espeak-ng


@dataclass
class DemoResult:
    expected_anomaly_seen: bool
    first_anomaly_at: float | None
    false_alarms: int
    events: list = field(default_factory=list)  # pb.Event
    stored: int = 0
    lines: list[str] = field(default_factory=list)  # the summary table

    @property
    def exit_code(self) -> int:
        return 0 if self.expected_anomaly_seen else 1


# ---- the scene --------------------------------------------------------------------------------------


def write_scene(opts: DemoOptions) -> dict[str, Path]:
    """The machine scene (always) and the speech stretch (when espeak-ng is there) as WAV files."""
    import soundfile as sf

    from edge_coat.data.factory import render_scene

    opts.workdir.mkdir(parents=True, exist_ok=True)
    scene = render_scene("pump", duration_s=opts.scene_s, fault="cavitation", onset_s=opts.onset_s,
                         severity=0.9, develop_s=opts.develop_s, seed=opts.seed)
    files = {MACHINE_STREAM: opts.workdir / f"{MACHINE_STREAM}.wav"}
    sf.write(str(files[MACHINE_STREAM]), scene.wave, SAMPLE_RATE, subtype="PCM_16")
    if opts.caller is not None:
        files[SPEECH_STREAM] = caller_recording(opts.caller, opts.workdir)
    elif opts.speech:
        speech = synthesize_speech(opts.workdir)
        if speech is not None:
            files[SPEECH_STREAM] = speech
    return files


def caller_recording(path: Path, workdir: Path) -> Path:
    """A user's own call recording as the desk stream: decoded (WAV, FLAC, MP3, ...; any rate and channel
    count), downmixed and resampled to 16 kHz mono. Raises ValueError naming the file when it cannot."""
    import soundfile as sf

    from edge_coat.data.folder import AudioReadError, load_audio

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--caller {path}: no such file")
    try:
        wave = load_audio(path)  # (N,) float32, 16 kHz mono
    except AudioReadError as exc:
        raise ValueError(f"--caller: {exc}; give a WAV, FLAC or MP3 file") from None
    if wave.shape[0] < 2 * SAMPLE_RATE:
        raise ValueError(f"--caller {path}: {wave.shape[0] / SAMPLE_RATE:.1f} s is too short; give at least 2 s")
    out = workdir / f"{SPEECH_STREAM}.wav"
    sf.write(str(out), wave, SAMPLE_RATE, subtype="PCM_16")
    return out


def synthesize_speech(workdir: Path) -> Path | None:
    """Calm sentences from espeak-ng with pauses between them (16 kHz mono WAV), or None without espeak-ng."""
    import soundfile as sf

    exe = shutil.which("espeak-ng")
    if exe is None:
        log.warning("espeak-ng is not installed (apt-get install espeak-ng): the demo runs without speech")
        return None
    from scipy.signal import resample_poly

    parts = []
    for i, text in enumerate(SENTENCES):
        raw = workdir / f"sentence-{i}.wav"
        subprocess.run([exe, "-v", "en", "-s", "150", "-w", str(raw), text], check=True, capture_output=True,
                       timeout=60)
        wave, rate = sf.read(str(raw), dtype="float32")
        if wave.ndim == 2:
            wave = wave.mean(axis=1)
        if rate != SAMPLE_RATE:
            wave = resample_poly(wave, SAMPLE_RATE, rate).astype(np.float32)  # (N,) 16 kHz
        parts += [0.5 * wave / max(1e-6, float(np.abs(wave).max())), np.zeros(SAMPLE_RATE, np.float32)]
        raw.unlink()
    out = workdir / f"{SPEECH_STREAM}.wav"
    sf.write(str(out), np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    return out


# ---- the service config --------------------------------------------------------------------------------


def demo_tokens(workdir: Path) -> tuple[str, str]:
    """A tokens file in ``workdir`` with the demo client's token (control) and a read-only viewer's."""
    import json

    demo, viewer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    path = workdir / "tokens.json"
    path.write_text(json.dumps({"clients": [
        {"name": "demo", "token": demo, "streams": ["*"], "control": True, "ack": True},
        {"name": "viewer", "token": viewer, "streams": ["*"]},
    ]}))
    path.chmod(0o600)
    return demo, viewer


#: the desk stream's emotion gate: windows quieter than this, or with less speech, are not scored
DESK_MIN_DBFS = -50.0
DESK_MIN_SPEECH = 0.3


def demo_config(opts: DemoOptions, files: dict[str, Path], model_tasks: set[str]) -> dict:
    model = Path(opts.model)
    streams = {}
    if "anomaly" in model_tasks:
        streams[MACHINE_STREAM] = {"window_s": opts.window_s, "hop_s": opts.hop_s,
                                   "tasks": {"anomaly": {"min_rms_dbfs": -70.0}}}
    if "emotion" in model_tasks and SPEECH_STREAM in files:
        streams[SPEECH_STREAM] = {"window_s": opts.window_s, "hop_s": opts.hop_s,
                                  "tasks": {"emotion": {"min_rms_dbfs": DESK_MIN_DBFS,
                                                        "min_speech_ratio": DESK_MIN_SPEECH}}}
    site = {
        "capture": {"sources": [{"uri": str(files[s]), "stream_id": s, "realtime": opts.realtime} for s in streams],
                    "sender": {"endpoint": "tcp://127.0.0.1:0", "buffer_s": 120.0},
                    "state_dir": str(opts.workdir / "capture-state")},
        "worker": {"receiver": {"bind": "tcp://127.0.0.1:0"}, "default_stream": next(iter(streams.values())),
                   "streams": streams, "batch": {"max_batch": 8, "max_wait_s": 0.05},
                   # recordings played through: every window of a user's call from its first sample (a spread
                   # grid would skip up to a hop of each stream's start to spread live streams' windows)
                   "window_phase": "aligned"},
        "model": {"path": str(model), "torch_threads": opts.threads,
                  "thinking": {"backend": "onnx" if (model / "thinking.onnx").is_file() else "torch",
                               "verify_bundle": (model / "manifest.json").is_file()}},
        "detectors": {"anomaly": {"profile_dir": str(opts.workdir / "profiles"), "percentile": 99.0,
                                  "episode": {"on_windows": 3, "off_windows": 3, "cooldown_s": 10.0,
                                              "update_every_s": 10.0}}},
        "events": {"db_path": str(opts.workdir / "events.db"), "listen": "127.0.0.1:0", "insecure": True,
                   "heartbeat_s": 1.0},
        "metrics": {"enabled": True, "listen": "127.0.0.1:0"},
        "service": {"drain_timeout_s": 120.0, "grace_s": 1.0},
    }
    if opts.console:
        site["events"]["tokens_file"] = str(opts.workdir / "tokens.json")
        site["console"] = {"enabled": True, "listen": opts.console_listen}
    return site


def model_tasks(model_dir: Path) -> set[str]:
    from edge_coat.model.config import CoatConfig

    return set(CoatConfig.load(model_dir).tasks)


# ---- live display ----------------------------------------------------------------------------------------


class Display:
    """Progress and the events table: redrawn in place on a terminal, one line per event otherwise."""

    def __init__(self, out, tty: bool, durations: dict[str, float], header: str):
        self.out, self.tty, self.durations, self.header = out, tty, durations, header
        self.lock = threading.Lock()
        self.first_ts: dict[str, float] = {}
        self.done_s: dict[str, float] = {s: 0.0 for s in durations}
        self.score: dict[str, str] = {}
        self.emotion: list[tuple[float, str, float]] = []  # (window start s, top emotion, probability)
        self.scored: dict[str, int] = {}  # stream -> windows the model scored (gated windows never arrive)
        self.events: list = []
        self._last_progress = 0.0

    def rel(self, stream: str, ts: float) -> float:
        return ts - self.first_ts.get(stream, ts)

    def on_result(self, result, _records) -> None:
        w = result.window
        with self.lock:
            self.first_ts.setdefault(w.stream_id, w.start_ts)
            self.done_s[w.stream_id] = max(self.done_s.get(w.stream_id, 0.0), self.rel(w.stream_id, w.end_ts))
            self.scored[w.stream_id] = self.scored.get(w.stream_id, 0) + 1
            probs = next(iter(result.label_probs.values()), {})
            if probs:
                label, p = max(probs.items(), key=lambda kv: kv[1])
                self.score[w.stream_id] = f"{label} {p:.2f}"
            emotion = result.label_probs.get("emotion")
            if emotion and w.stream_id == SPEECH_STREAM:
                label, p = max(emotion.items(), key=lambda kv: kv[1])
                self.emotion.append((self.rel(w.stream_id, w.start_ts), label, p))

    def on_event(self, event) -> None:
        with self.lock:
            self.events.append(event)
        if not self.tty:
            self.line(self.event_row(event))

    def event_row(self, e) -> str:
        return (f"{self.rel(e.stream_id, e.window_start_ts):6.1f}s  {e.stream_id:<7} {e.kind:<8} {e.phase:<6} "
                f"{e.score:5.2f}  {e.text[:90]}")

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def progress_text(self) -> str:
        parts = []
        for s, total in self.durations.items():
            frac = min(1.0, self.done_s.get(s, 0.0) / total) if total else 1.0
            bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
            parts.append(f"{s} [{bar}] {self.done_s.get(s, 0.0):5.1f}/{total:.0f}s {self.score.get(s, '')}")
        return "   ".join(parts)

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        with self.lock:
            if self.tty:
                rows = [self.header, "", self.progress_text(), "",
                        f"{'time':>7}  {'stream':<7} {'kind':<8} {'phase':<6} {'score':>5}  text"]
                rows += [self.event_row(e) for e in self.events[-15:]]
                self.out.write("\x1b[H\x1b[2J" + "\n".join(rows) + "\n")
                self.out.flush()
            elif force or now - self._last_progress >= 5.0:
                self._last_progress = now
                self.line("progress: " + self.progress_text())


# ---- the run ---------------------------------------------------------------------------------------------------


def run_demo(opts: DemoOptions, out=None) -> DemoResult:
    """Run the whole demo; returns what was seen (``exit_code`` says whether the anomaly was caught)."""
    import grpc

    from edge_coat.config import validate_config
    from edge_coat.events.client import EventClient
    from edge_coat.service import Service

    out = out or sys.stdout
    tty = out.isatty()
    tasks = model_tasks(opts.model)
    if "anomaly" not in tasks:
        raise ValueError(f"the model in {opts.model} has no 'anomaly' task (it has {sorted(tasks)}); "
                         "the demo needs one")
    print(f"edge-coat demo: generating the scene in {opts.workdir} ...", file=out, flush=True)
    files = write_scene(opts)
    token, viewer = demo_tokens(opts.workdir) if opts.console else (None, None)
    cfg = validate_config(demo_config(opts, files, tasks))
    svc = Service(cfg)
    svc.start(capture=False)
    info = svc.model_info()
    durations = {s.stream_id: _duration(files[s.stream_id]) for s in cfg.capture.sources}
    header = (f"edge-coat demo  model {info['name']} {info['version']} ({info['family']}, {info['quantization']}, "
              f"encoder on {info.get('encoder', 'torch')}, thinking on {info['thinking']})  "
              f"gRPC 127.0.0.1:{svc.grpc_port}  "
              f"metrics http://127.0.0.1:{svc.metrics_port}/metrics")
    if svc.console is not None:  # watch it live (with --realtime) or browse it after the summary
        header += f"\nconsole {_console_line(svc, viewer)}"
    display = Display(out, tty, durations, header)
    svc.result_listeners.append(display.on_result)
    client = EventClient(f"127.0.0.1:{svc.grpc_port}", insecure=True, token=token)
    received: list = []

    def subscribe():
        try:
            for e in client.subscribe(from_cursor=0, resume=False):
                received.append(e)
                display.on_event(e)
        except grpc.RpcError:
            pass  # the service shut down (UNAVAILABLE with a resume cursor)

    sub = threading.Thread(target=subscribe, name="demo-subscriber", daemon=True)

    def stop() -> dict:
        summary = svc.stop()
        if sub.ident is not None:
            sub.join(10)
        client.close()
        return summary

    try:
        enroll_windows = max(cfg.detectors["anomaly"].min_enroll_windows,
                             int((opts.enroll_s - opts.window_s) / opts.hop_s) + 1)
        status = client.start_enrollment(MACHINE_STREAM, windows=enroll_windows)
        if not tty:
            display.line(header)
            display.line(f"enrolling {MACHINE_STREAM}'s normal sound on its first {enroll_windows} windows "
                         f"({opts.enroll_s:g} s): {status.state}; fault develops at {opts.onset_s:g} s")
        sub.start()
        svc.start_capture()
        while not (svc.sources_ended() and not svc.windows_pending()):
            display.refresh()
            time.sleep(0.25)
        # with the console the service stays up: the summary counts what the log holds now
        summary = _delivered(svc, received) if opts.console else stop()
    except grpc.RpcError as exc:
        stop()
        raise OSError(f"the demo cannot reach its own event service on 127.0.0.1:{svc.grpc_port} "
                      f"({exc.code().name}: {exc.details()}); is the loopback interface up?") from None
    except BaseException:
        stop()
        raise
    display.refresh(force=True)
    result = _summarize(opts, display, received, summary, files, out)
    if opts.console:
        try:
            print(f"\nconsole: {_console_line(svc, viewer)}\n"
                  "  (paste the token into the console's login form; Ctrl-C stops the demo)", file=out, flush=True)
            if opts.console_wait is not None:
                opts.console_wait()
        finally:
            stop()
    return result


def _console_line(svc, token: str) -> str:
    """The console's URL and the read-only token (never in the URL itself)."""
    return f"{svc.console.scheme}://127.0.0.1:{svc.console_port}/  read-only token: {token}"


def _delivered(svc, received: list, timeout: float = 10.0) -> dict:
    """Wait until the subscriber has every event the log holds; the summary's numbers, service still up."""
    deadline = time.monotonic() + timeout
    while not svc.ended_streams_closed() and time.monotonic() < deadline:  # the episodes' end events
        time.sleep(0.05)
    head = svc.log.head()
    while len(received) < head and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"log_head": head}


def _duration(path: Path) -> float:
    import soundfile as sf

    return float(sf.info(str(path)).duration)


def _summarize(opts, display: Display, received: list, summary: dict, files: dict, out) -> DemoResult:
    starts = [e for e in received if e.stream_id == MACHINE_STREAM and e.kind == "anomaly" and e.phase == "start"]
    # a window that overlaps the fault's onset may already carry it
    after = [e for e in starts if display.rel(e.stream_id, e.window_start_ts) + opts.window_s > opts.onset_s]
    before = [e for e in starts if e not in after]
    emotion = [e for e in received if e.kind == "emotion" and e.phase == "start"]
    first = display.rel(MACHINE_STREAM, after[0].window_start_ts) if after else None
    stored = int(summary.get("log_head", 0) or 0)
    ok = "ok" if after else "MISSED"
    rows = [
        ("expectation", "seen", "result"),
        (f"{MACHINE_STREAM}: anomaly after the fault develops ({opts.onset_s:g} s)",
         f"at {first:.0f} s, score {after[0].score:.2f}" if after else "none", ok),
        (f"{MACHINE_STREAM}: no anomaly on its normal sound", f"{len(before)} false alarm(s)",
         "ok" if not before else "false alarm"),
    ]
    if SPEECH_STREAM in display.durations and opts.caller is not None:
        seen = ", ".join(f"{e.text[:60]} at {display.rel(e.stream_id, e.window_start_ts):.0f} s" for e in emotion)
        rows.append((f"{SPEECH_STREAM}: your recording {opts.caller.name}: emotion alert?",
                     f"yes: {seen}" if emotion else "no alert", "fired" if emotion else "none"))
        gated = _gated_note(opts, display)
        if gated:
            rows.append((f"{SPEECH_STREAM}: windows of your recording scored", gated, "partly"))
    elif SPEECH_STREAM in display.durations:
        rows.append((f"{SPEECH_STREAM}: synthetic speech carries no emotion (espeak-ng)", f"{len(emotion)} alert(s)",
                     "ok" if not emotion else "unexpected (informational)"))
    elif opts.speech:
        rows.append((f"{SPEECH_STREAM}: speech stream", "skipped (no espeak-ng or no emotion task)", "-"))
    rows.append(("every stored event delivered over gRPC", f"{len(received)} of {stored}",
                 "ok" if len(received) == stored else "MISMATCH"))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["", "summary:"] + [f"  {r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}" for r in rows]
    if display.emotion:
        shown = display.emotion if len(display.emotion) <= 12 else display.emotion[:: -(-len(display.emotion) // 12)]
        lines.append(f"  {SPEECH_STREAM} emotion per window (start: top reading): "
                     + ", ".join(f"{t:.0f}s {label} {p:.2f}" for t, label, p in shown))
        if opts.caller is None:
            lines.append("  (espeak-ng speaks without emotion; try your own call: edge-coat demo --caller FILE)")
    lines.append(f"  events log: {opts.workdir / 'events.db'}")
    for line in lines:
        print(line, file=out, flush=True)
    return DemoResult(expected_anomaly_seen=bool(after), first_anomaly_at=first, false_alarms=len(before),
                      events=received, stored=stored, lines=lines)


def _gated_note(opts, display: Display) -> str:
    """'' when every window of the caller's recording was scored, else how many were and why the rest were not."""
    total = display.durations.get(SPEECH_STREAM, 0.0)
    expected = int((total - opts.window_s) // opts.hop_s) + 1 if total >= opts.window_s else 0
    scored = display.scored.get(SPEECH_STREAM, 0)
    if scored >= expected:
        return ""
    return (f"{scored} of {expected}: the others were quieter than {DESK_MIN_DBFS:g} dBFS or held under "
            f"{DESK_MIN_SPEECH:.0%} speech (the desk stream's gate); raise the level of a quiet recording")


def default_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="edge-coat-demo-"))
