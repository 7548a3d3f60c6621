"""The console's HTTP API without a browser: authentication, scope, CSRF, headers, events, acks."""

from __future__ import annotations

import json
import logging
import socket
import time

from edge_coat.console.server import CSP

from .conftest import DESK, OPS, VIEWER, request


def login(port: int, token: str) -> tuple[str, str]:
    """(cookie header value, CSRF token) of a fresh session."""
    status, headers, body = request(port, "/api/login", body={"token": token},
                                    headers={"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200, body
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return cookie.split(";")[0], body["csrf"]


def test_refused_without_a_token_and_the_page_has_a_strict_csp(console):
    server, _, _ = console
    port = server.port
    for path in ("/api/streams", "/api/events", "/api/session", "/api/streams/pump-1/series", "/api/live"):
        status, _, body = request(port, path)
        assert status == 401, (path, body)
    status, _, _ = request(port, "/api/streams", token="wrong-token-0123456789abc")
    assert status == 401
    status, headers, page = request(port, "/")
    assert status == 200 and "<title>edge-coat console</title>" in page
    assert headers["Content-Security-Policy"] == CSP
    assert "http" not in CSP and "unsafe" not in CSP  # no third-party origin, no inline code
    assert headers["X-Content-Type-Options"] == "nosniff"
    for asset in ("/static/console.js", "/static/vendor/uplot/uPlot.iife.min.js", "/static/console.css"):
        status, headers, _ = request(port, asset)
        assert status == 200 and headers["Content-Security-Policy"] == CSP
    assert request(port, "/static/../server.py")[0] == 404


def test_scope_a_desk_token_sees_only_desk_streams_and_events(console):
    server, _, _ = console
    port = server.port
    _, _, body = request(port, "/api/streams", token=DESK)
    assert [t["stream_id"] for t in body["streams"]] == ["desk-1"]
    _, _, body = request(port, "/api/events", token=DESK)
    assert {e["stream_id"] for e in body["events"]} == {"desk-1"}
    assert request(port, "/api/streams/pump-1", token=DESK)[0] == 404
    assert request(port, "/api/streams/pump-1/series", token=DESK)[0] == 404
    _, _, body = request(port, "/api/streams", token=OPS)
    assert [t["stream_id"] for t in body["streams"]] == ["desk-1", "pump-1"]
    pump = body["streams"][1]
    assert pump["alarm"] and pump["state"] == "live" and pump["reading"]["value"] == 0.9


def test_events_filter_and_page(console):
    server, log, _ = console
    port = server.port
    _, _, first = request(port, "/api/events?limit=2", token=VIEWER)
    assert [e["id"] for e in first["events"]] == [3, 2] and first["next_before"] == 2
    _, _, older = request(port, f"/api/events?limit=2&before={first['next_before']}", token=VIEWER)
    assert [e["id"] for e in older["events"]] == [1] and older["next_before"] == 0
    _, _, body = request(port, "/api/events?kind=anomaly", token=VIEWER)
    assert [e["kind"] for e in body["events"]] == ["anomaly"]
    _, _, body = request(port, f"/api/events?since={time.time() - 10}", token=VIEWER)
    assert [e["id"] for e in body["events"]] == [3]
    assert request(port, "/api/events?since=nan", token=VIEWER)[0] == 400


def test_enrollment_needs_control_scope_and_csrf(console):
    server, _, control = console
    port = server.port
    origin = {"Origin": f"http://127.0.0.1:{port}"}
    status, _, body = request(port, "/api/streams/pump-1/enrollment", token=VIEWER, body={"windows": 10})
    assert status == 403 and "control" in body["error"]
    cookie, csrf = login(port, OPS)
    status, _, _ = request(port, "/api/streams/pump-1/enrollment", body={"windows": 10},
                           headers={"Cookie": cookie, **origin})
    assert status == 403  # no CSRF header
    status, _, _ = request(port, "/api/streams/pump-1/enrollment", body={"windows": 10},
                           headers={"Cookie": cookie, "X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert status == 403  # another origin
    status, _, body = request(port, "/api/streams/pump-1/enrollment", body={"windows": 10},
                              headers={"Cookie": cookie, "X-CSRF-Token": csrf, **origin})
    assert status == 200 and body["state"] == "enrolling"
    assert control.requests == [("pump-1", 10)]
    status, _, body = request(port, "/api/streams/pump-1/enrollment", token=OPS, body={"windows": 2})
    assert status == 400 and "at least 3" in body["error"]
    assert request(port, "/api/streams/pump-1/enrollment", token=OPS, body={"windows": "x"})[0] == 400


def test_acknowledge_is_an_event_of_its_own(console):
    server, log, _ = console
    port = server.port
    status, _, body = request(port, "/api/events/1/ack", token=VIEWER, body={"note": "on it"})
    assert status == 403
    status, _, body = request(port, "/api/events/1/ack", token=DESK, body={})
    assert status == 404  # pump-1 is outside the desk token's scope
    status, _, ack = request(port, "/api/events/1/ack", token=OPS, body={"note": "checking the pump"})
    assert status == 200 and ack["kind"] == "ack"
    stored = log.read_after(ack["id"] - 1, 1)[0].record
    assert stored.evidence["by"] == "ops" and stored.evidence["acknowledges"]["event_id"] == 1
    assert stored.episode_id == "pump-1/anomaly-1" and "acknowledged by ops" in stored.text
    _, _, body = request(port, "/api/events?kind=anomaly", token=VIEWER)
    assert body["acks"]["pump-1/anomaly-1"][0]["by"] == "ops"
    assert request(port, f"/api/events/{ack['id']}/ack", token=OPS, body={})[0] == 400


def test_session_revoked_when_the_token_is_no_longer_accepted(console):
    server, _, _ = console
    port = server.port
    cookie, _ = login(port, VIEWER)
    assert request(port, "/api/streams", headers={"Cookie": cookie})[0] == 200
    path = server.auth.path
    clients = json.loads(path.read_text())["clients"]
    path.write_text(json.dumps({"clients": [c for c in clients if c["name"] != "viewer"]}))
    assert server.auth.reload()  # (serve also reloads a changed file by itself, and on SIGHUP)
    assert request(port, "/api/streams", headers={"Cookie": cookie})[0] == 401
    assert request(port, "/api/streams", token=OPS)[0] == 200


def test_live_feed_resumes_from_a_cursor_and_filters_by_scope(console):
    server, log, _ = console
    from .conftest import event

    log.append(event("pump-1", "anomaly", "end", 1, time.time()))
    log.append(event("desk-1", "emotion", "start", 2, time.time()))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(f"GET /api/live?from=3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DESK}\r\n\r\n".encode())
        data = b""
        deadline = time.monotonic() + 10
        while b"id: 5" not in data and time.monotonic() < deadline:
            data += s.recv(65536)
    text = data.decode()
    assert "text/event-stream" in text
    blocks = [dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
              for block in text.split("\r\n\r\n", 1)[1].split("\n\n")]
    seen = [e for b in blocks if b.get("event") == "events" for e in json.loads(b["data"])]
    assert [(e["id"], e["stream_id"]) for e in seen] == [(5, "desk-1")]  # 4 is pump-1: not in scope
    assert "id: 5" in text


def test_no_secret_in_logs(console, caplog):
    server, _, _ = console
    caplog.set_level(logging.DEBUG, logger="edge_coat.console")
    login(server.port, OPS)
    request(server.port, "/api/events?stream=pump-1", token=OPS)
    request(server.port, "/api/login", body={"token": "not-a-token-0123456789"})
    assert caplog.records
    assert all(OPS not in r.getMessage() and "not-a-token" not in r.getMessage() for r in caplog.records)
