"""The console in a separate ``serve`` process's role: everything from the log file a worker writes
(statuses, timeline points, enrollment requests queued for the worker); TLS when gRPC uses TLS."""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.error
import urllib.request

import pytest

from edge_coat import cli
from edge_coat.commands.serve import load_site_config
from edge_coat.config import ConfigError, validate_config
from edge_coat.console.series import SeriesRecorder
from edge_coat.events.log import EventLog
from edge_coat.service import Service

from .conftest import OPS, VIEWER, event, request, tokens
from .statuses import typed_status


def worker_writes(db) -> EventLog:
    """What `edge-coat worker` leaves in the log file: statuses, a point per window, an event."""
    log = EventLog(db)
    now = time.time()
    log.put_stream_status(typed_status({"stream_id": "press-3", "windows": 12, "tasks": ["anomaly"], "last_window_ts": now,
                                        "anomaly": {"enrollment": {"stream_id": "press-3", "state": "none"}},
                                        "pipeline": {"active": True}}))
    rec = SeriesRecorder(db, 3600)
    rec.add("press-3", now - 1, now, {"level": -30.0, "gap": 0.0, "anomaly": 0.2, "threshold": 0.5})
    rec.flush()
    rec.close()
    log.append(event("press-3", "anomaly", "start", 1, now))
    return log


def test_serve_role_console_reads_the_log_and_queues_enrollment(tmp_path):
    log = worker_writes(tmp_path / "events.db")
    cfg = validate_config({
        "events": {"db_path": str(tmp_path / "events.db"), "listen": "127.0.0.1:0", "insecure": True,
                   "tokens_file": str(tokens(tmp_path / "tokens.json"))},
        "metrics": {"enabled": False},
        "console": {"enabled": True, "listen": "127.0.0.1:0"}})
    svc = Service(cfg, roles=("serve",)).start()
    try:
        _, _, body = request(svc.console_port, "/api/streams", token=VIEWER)
        (tile,) = body["streams"]
        assert tile["stream_id"] == "press-3" and tile["state"] == "no profile" and tile["level"] == -30.0
        status, _, body = request(svc.console_port, "/api/streams/press-3/enrollment", token=OPS, body={"windows": 16})
        assert status == 200 and body["state"] == "pending"
        (cmd,) = log.pending_commands()
        assert cmd[1:] == ("press-3", "start_enrollment", {"windows": 16, "seconds": None})
        _, _, body = request(svc.console_port, "/api/streams/press-3/series?since=0", token=VIEWER)
        assert [p["anomaly"] for p in body["points"]] == [0.2]
    finally:
        svc.stop()
        log.close()


def test_serve_flag_turns_the_console_on_and_config_checks(tmp_path):
    cfg = load_site_config(cli.build_parser().parse_args(
        ["serve", "--db", str(tmp_path / "e.db"), "--insecure", "--listen", "127.0.0.1:0",
         "--console-listen", "127.0.0.1:0"]))
    assert cfg.console.enabled and cfg.console.listen == "127.0.0.1:0"
    with pytest.raises(ConfigError, match="console.enabled"):
        validate_config({"console": {"enabled": True}})
    with pytest.raises(ConfigError, match="console.listen: port 50051 is also used by events.listen"):
        validate_config({"events": {"insecure": True, "listen": "127.0.0.1:50051"},
                         "console": {"enabled": True, "listen": "127.0.0.1:50051"}})


def test_console_uses_tls_when_grpc_does(tmp_path):
    from edge_coat.events.certs import create_site

    pki = create_site(tmp_path / "pki")
    worker_writes(tmp_path / "events.db").close()
    cfg = validate_config({
        "events": {"db_path": str(tmp_path / "events.db"), "listen": "127.0.0.1:0",
                   "tls": {"cert_file": str(pki["server"]), "key_file": str(tmp_path / "pki" / "server-key.pem")},
                   "tokens_file": str(tokens(tmp_path / "tokens.json"))},
        "metrics": {"enabled": False},
        "console": {"enabled": True, "listen": "127.0.0.1:0"}})
    svc = Service(cfg, roles=("serve",)).start()
    try:
        ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        base = f"https://127.0.0.1:{svc.console_port}"
        req = urllib.request.Request(base + "/api/login", data=json.dumps({"token": VIEWER}).encode(),
                                     headers={"Content-Type": "application/json", "Origin": base})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            cookie = r.headers["Set-Cookie"]
            assert r.headers["Strict-Transport-Security"]
        assert cookie.startswith("__Host-edge_coat_session=") and "; Secure" in cookie and "HttpOnly" in cookie
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):  # no plaintext
            urllib.request.urlopen(f"http://127.0.0.1:{svc.console_port}/healthz", timeout=10)
    finally:
        svc.stop()
