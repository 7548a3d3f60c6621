"""``edge-coat run`` as a real process: SIGTERM mid-stream loses no event and no window.

The file is read faster than the model analyses it, so at SIGTERM the worker holds a backlog of
windows: the graceful stop must put every one of them through the model and the detectors, end the
open episode, write every event and deliver it to the subscriber before the process exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
import yaml

from edge_coat.events.client import EventClient
from edge_coat.events.log import EventLog

from .helpers import machine_wave, site_dict, write_wav

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # a fresh Python process importing torch and transformers: ~30 s here
def test_sigterm_loses_no_event(tiny_model_dir, tmp_path):
    wav = write_wav(tmp_path / "m1.wav", machine_wave(16.0, 50.0, seed=0))  # 66 s: ~130 windows
    cfg = site_dict(tmp_path, tiny_model_dir, {"m1": wav}, enroll={"m1": 24})
    cfg["logging"] = {"level": "INFO", "format": "json"}
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edge_coat", "run", "-c", str(config)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    readers = [threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)]
    readers[0].start()
    try:
        ready = json.loads(proc.stdout.readline() or "{}")
        assert ready.get("ready"), "".join(stderr)[-3000:]
        client = EventClient(f"127.0.0.1:{ready['grpc_port']}", insecure=True)
        received, first_start = [], threading.Event()

        def subscribe():
            try:
                for e in client.subscribe(from_cursor=0, resume=False):
                    received.append(e)
                    if e.phase == "start":
                        first_start.set()
            except grpc.RpcError:
                pass

        sub = threading.Thread(target=subscribe, daemon=True)
        sub.start()
        assert first_start.wait(120), f"no anomaly started; stderr: {''.join(stderr)[-3000:]}"
        proc.send_signal(signal.SIGTERM)
        out = proc.stdout.read()  # until the process closes it, at exit
        proc.wait(120)
        readers[0].join(10)
        sub.join(15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(stderr)[-3000:]
    stopped = json.loads(out.strip().splitlines()[-1])
    assert stopped["stopped"] and stopped["windows_unfinished"] == 0 and stopped["events_unwritten"] == 0
    assert stopped["lost_audio"] is False

    log = EventLog(tmp_path / "events.db")
    stored = log.read_after(0, 10_000)
    log.close()
    # every event the detectors produced is in the log, and the subscriber got each once, in order
    assert [e.id for e in received] == [s.id for s in stored]
    assert sum(stopped["events"].values()) == len(stored)
    # the episode open at SIGTERM was ended by the shutdown
    assert stored[-1].record.phase == "end"
    starts = {s.record.episode_id for s in stored if s.record.phase == "start"}
    assert starts and starts <= {s.record.episode_id for s in stored if s.record.phase == "end"}
    # structured logs: every stderr line of the service is one JSON object
    records = [json.loads(line) for line in stderr if line.startswith("{")]
    assert any(r["logger"] == "edge_coat.service.service" and r["msg"].startswith("service stopped") for r in records)
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)


def test_run_command_exits_when_its_sources_end(tiny_model_dir, tmp_path, capsys):
    """``edge-coat run --exit-when-sources-end`` (in this process): ready line, full drain, exit 0."""
    from edge_coat.cli import main

    wav = write_wav(tmp_path / "m1.wav", machine_wave(16.0, 6.0, seed=0))
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump(site_dict(tmp_path, tiny_model_dir, {"m1": wav}, enroll={"m1": 24})))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert main(["run", "-c", str(config), "--exit-when-sources-end"]) == 0
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines[0]["ready"] and lines[0]["grpc_port"] > 0 and lines[0]["model"]["quantization"] == "fp32"
    stopped = lines[-1]
    assert stopped["stopped"] and stopped["windows_unfinished"] == 0 and stopped["events_unwritten"] == 0
    log = EventLog(tmp_path / "events.db")
    phases = [s.record.phase for s in log.read_after(0, 100)]
    log.close()
    assert phases and phases[0] == "start" and phases[-1] == "end"
    assert sum(stopped["events"].values()) == len(phases)
