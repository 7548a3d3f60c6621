"""``edge-coat serve -c``: the serve role of the service, so it has /metrics (subscribers, events read from
the log by kind, the log head) and a graceful stop; its command-line overrides still apply."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml

from edge_coat import cli
from edge_coat.commands.serve import load_site_config
from edge_coat.config import ConfigError
from edge_coat.events.client import EventClient
from edge_coat.events.log import EventLog
from edge_coat.v1 import events_pb2 as pb

from .conftest import ADMIN, record

REPO = Path(__file__).resolve().parents[2]


def site(tmp_path: Path, tokens_file: Path, **metrics) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({
        "events": {"db_path": str(tmp_path / "events.db"), "listen": "127.0.0.1:0", "insecure": True,
                   "tokens_file": str(tokens_file), "heartbeat_s": 0.5, "poll_interval_s": 0.01},
        "metrics": {"listen": "127.0.0.1:0", **metrics},
        "service": {"grace_s": 0.5}}))
    return path


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^(edge_coat_\S+) (\S+)$", text, re.M)}


def parse(args: list[str]):
    return load_site_config(cli.build_parser().parse_args(["serve", *args]))


def test_serve_process_exposes_metrics_and_stops_gracefully(tmp_path, tokens_file):
    cfg = site(tmp_path, tokens_file)
    proc = subprocess.Popen([sys.executable, "-m", "edge_coat", "serve", "-c", str(cfg)], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    writer = EventLog(tmp_path / "events.db")
    try:
        line = proc.stdout.readline()
        match = re.search(r"listening on port (\d+), log .*, metrics on port (\d+)", line)
        assert match, f"serve did not start with metrics: {line!r}"
        grpc_port, metrics_port = int(match[1]), int(match[2])
        got: list[int] = []
        ended: list[grpc.RpcError] = []
        three = threading.Event()
        client = EventClient(f"127.0.0.1:{grpc_port}", token=ADMIN, insecure=True)
        call = client.stub.Subscribe(pb.SubscribeRequest(from_cursor=0), metadata=client.metadata)

        def consume():
            try:
                for response in call:
                    got.extend(e.id for e in response.events)
                    if len(got) >= 3:
                        three.set()
            except grpc.RpcError as exc:
                ended.append(exc)

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        writer.append_many([record(n=0), record(n=1, phase="end"), record(kind="emotion", n=2)])
        assert three.wait(30), got
        metrics = scrape(metrics_port)
        assert metrics["edge_coat_subscribers"] == 1.0
        assert metrics["edge_coat_event_log_head"] == 3.0
        assert metrics['edge_coat_events_followed_total{kind="anomaly",phase="start"}'] == 1.0
        assert metrics['edge_coat_events_followed_total{kind="anomaly",phase="end"}'] == 1.0
        assert metrics['edge_coat_events_followed_total{kind="emotion",phase="start"}'] == 1.0
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        stopped = json.loads(out.strip().splitlines()[-1])
        assert stopped["stopped"] and stopped["log_head"] == 3
        consumer.join(10)
        assert got == [1, 2, 3]
        # the graceful stop closed the subscription with the cursor to resume from
        assert ended and "resume with from_cursor=3" in ended[0].details()
        client.close()
    finally:
        writer.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_overrides_apply_over_the_config(tmp_path, tokens_file):
    path = site(tmp_path, tokens_file, roles={"serve": "127.0.0.1:9311"})
    cfg = parse(["-c", str(path)])
    assert cfg.metrics.enabled and cfg.metrics.listen_for(("serve",)) == "127.0.0.1:9311"
    assert cfg.service.grace_s == 0.5 and cfg.events.heartbeat_s == 0.5
    cfg = parse(["-c", str(path), "--db", str(tmp_path / "other.db"), "--listen", "127.0.0.1:7001",
                 "--heartbeat", "2", "--grace", "1.5", "--metrics-listen", "0.0.0.0:9400"])
    assert Path(cfg.events.db_path) == tmp_path / "other.db"
    assert cfg.events.listen == "127.0.0.1:7001" and cfg.events.heartbeat_s == 2.0
    assert cfg.service.grace_s == 1.5 and cfg.metrics.listen_for(("serve",)) == "0.0.0.0:9400"
    assert cfg.metrics.listen == "127.0.0.1:0"  # the all-in-one address is left alone


def test_serve_without_config_has_no_metrics_unless_asked(tmp_path):
    base = ["--db", str(tmp_path / "e.db"), "--listen", "127.0.0.1:0", "--insecure"]
    assert parse(base).metrics.enabled is False
    cfg = parse([*base, "--metrics-listen", "127.0.0.1:0"])
    assert cfg.metrics.enabled and cfg.metrics.listen_for(("serve",)) == "127.0.0.1:0"


def test_serve_refuses_bad_overrides_and_sections_by_name(tmp_path, tokens_file, capsys):
    with pytest.raises(ConfigError) as info:
        parse(["-c", str(site(tmp_path, tokens_file)), "--metrics-listen", "nowhere"])
    assert any(p.startswith("metrics.roles.serve: got 'nowhere'") for p in info.value.problems)
    bad = tmp_path / "bad.yaml"
    bad.write_text("events: [1, 2]\n")
    assert cli.main(["serve", "-c", str(bad), "--insecure"]) == 2
    assert "events: expected a mapping of fields, got list" in capsys.readouterr().err
