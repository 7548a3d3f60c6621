"""Every stage command takes the site config as -c/--config and exits 2 on a config error (the systemd
units do not restart on 2); `edge-coat capture --config` streams the capture: section to a real worker
on loopback, ends with its sources, and stops gracefully on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from edge_coat import cli
from tests.transport.helpers import FAST_LINK, Collector, make_worker, wait_for

REPO = Path(__file__).resolve().parents[2]
STAGES = ("capture", "worker", "serve", "run")


@pytest.fixture
def keep_signal_handlers():
    """The commands install SIGTERM/SIGINT handlers in the calling process: put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def capture_config(tmp_path: Path, endpoint: str, uri: str, stream_id: str = "line-1") -> dict:
    """A capture-host config; its link beats like the test worker's (FAST_LINK), which forgets slower peers."""
    return {"capture": {"sources": [{"uri": uri, "stream_id": stream_id, "chunk_ms": 100}],
                        "sender": {"endpoint": endpoint, "buffer_s": 10.0, "link": FAST_LINK.model_dump()}},
            "metrics": {"listen": "127.0.0.1:0"},
            "service": {"drain_timeout_s": 20.0}}


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("flag", ["-c", "--config"])
@pytest.mark.parametrize("command", STAGES)
def test_every_stage_command_takes_the_site_config_as_c_or_config(command, flag):
    args = cli.build_parser().parse_args([command, flag, "/etc/edge-coat/site.yaml"])
    assert args.command == command and str(args.config) == "/etc/edge-coat/site.yaml"


@pytest.mark.parametrize("command", STAGES)
def test_every_stage_command_exits_2_on_a_config_error(command, tmp_path, capsys):
    misspelt = write_config(tmp_path / "misspelt.yaml", {
        "capture": {"sources": [{"uri": "gen:sine", "stream_id": "s1"}],
                    "sender": {"endpoint": "tcp://127.0.0.1:5555", "buffer_s": 30, "bufer_s": 1}},
        "events": {"db_path": str(tmp_path / "e.db"), "insecure": True, "heartbeat": 2}})
    assert cli.main([command, "-c", str(misspelt)]) == 2
    err = capsys.readouterr().err
    assert "capture.sender.bufer_s: unknown field" in err and "events.heartbeat: unknown field" in err

    assert cli.main([command, "--config", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read the config file" in capsys.readouterr().err

    # a valid file without the section this command needs
    only_metrics = write_config(tmp_path / "metrics-only.yaml", {"metrics": {"listen": "127.0.0.1:0"}})
    assert cli.main([command, "-c", str(only_metrics)]) == 2
    needed = {"capture": "capture", "worker": "worker", "serve": "events", "run": "worker"}[command]
    assert f"{needed}: section missing; `edge-coat {command}` needs it" in capsys.readouterr().err


def test_capture_flags_still_need_each_other_and_exclude_the_config(tmp_path, capsys):
    assert cli.main(["capture", "--source", "gen:sine", "--stream-id", "a"]) == 2
    assert "missing --connect" in capsys.readouterr().err
    cfg = write_config(tmp_path / "site.yaml", capture_config(tmp_path, "tcp://127.0.0.1:5555", "gen:sine"))
    assert cli.main(["capture", "-c", str(cfg), "--source", "gen:sine"]) == 2
    assert "got --config with --source" in capsys.readouterr().err


def test_capture_config_with_an_unknown_source_kind_exits_2(tmp_path, capsys, keep_signal_handlers):
    cfg = write_config(tmp_path / "site.yaml", capture_config(tmp_path, "tcp://127.0.0.1:5555", "smb://nas/a.wav"))
    assert cli.main(["capture", "--config", str(cfg)]) == 2
    assert "capture.sources: expected a source URI" in capsys.readouterr().err


def test_capture_config_streams_a_file_to_the_worker_and_ends_with_it(tmp_path, capsys, keep_signal_handlers):
    t = np.arange(16000) / 16000  # (T,) one second at 16 kHz
    wav = tmp_path / "tone.wav"
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 700 * t)).astype(np.float32), 16000, subtype="PCM_16")
    got = Collector()
    worker = make_worker(collector=got)
    try:
        cfg = write_config(tmp_path / "site.yaml", capture_config(tmp_path, worker.endpoint, str(wav)))
        assert cli.main(["capture", "-c", str(cfg)]) == 0
        ready, stopped = json_lines(capsys.readouterr().out)
        assert ready["ready"] and ready["streams"] == ["line-1"] and ready["metrics_port"] > 0
        assert stopped["stopped"] and stopped["lost_audio"] is False and stopped["source_errors"] == 0
        # every sample arrived: 4000-sample windows every 2000 samples over 16000 samples
        assert wait_for(lambda: len(got.get("line-1")) == 7), len(got.get("line-1"))
    finally:
        worker.close()


def test_capture_config_process_stops_gracefully_on_sigterm(tmp_path):
    got = Collector()
    worker = make_worker(collector=got)
    proc = None
    try:
        cfg = write_config(tmp_path / "site.yaml",
                           capture_config(tmp_path, worker.endpoint, "gen:sine?freq=500", stream_id="live-1"))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen([sys.executable, "-m", "edge_coat", "capture", "--config", str(cfg)], cwd=tmp_path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = json.loads(proc.stdout.readline())
        assert ready["ready"] and ready["streams"] == ["live-1"]
        assert wait_for(lambda: len(got.get("live-1")) >= 2, timeout=30)  # an endless source is streaming
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        stopped = json_lines(out)[-1]
        assert stopped["stopped"] and stopped["lost_audio"] is False  # its tail reached the worker and was acked
        assert not worker.stats()["streams"]["live-1"]["active"]  # the stop ended the stream at the worker
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        worker.close()
