"""Issue 15 at the gRPC edge (defects 10, 11, 13): out-of-range fields refused, junk bodies counted
and not logged with a traceback, tokens that expire, are revoked or reloaded while serving, and a
status scoped to the token. A real server on port 0 over a real log file."""

from __future__ import annotations

import json
import logging
import os
import time

import grpc
import pytest

from edge_coat.events import service as service_module
from edge_coat.events.auth import AuthError, TokenAuth
from edge_coat.events.client import EventClient

from .conftest import ADMIN, AGENT, record

DESK = "desk-token-0123456789abcdefgh"


def client(server, token=ADMIN) -> EventClient:
    return EventClient(f"127.0.0.1:{server.port}", token=token, insecure=True)


def write_tokens(path, *entries) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"clients": list(entries)}))
    tmp.replace(path)  # atomic, as an operator's editor or config management would


OPS = {"name": "ops", "token": ADMIN, "streams": ["*"], "control": True}
DESK_ENTRY = {"name": "desk", "token": DESK, "streams": ["desk-*"]}


def test_out_of_range_fields_are_refused(make_server):
    """Defect 10: min_score NaN, windows 2**32 - 1 and seconds 1e300 are INVALID_ARGUMENT."""
    from edge_coat.detectors import AnomalyConfig, DetectorSet, DetectorsConfig

    det = DetectorSet(DetectorsConfig(anomaly=AnomalyConfig(profile_dir=os.devnull + "-none")))
    server = make_server(control=det)
    with client(server) as c:
        for score in (float("nan"), -0.1, 1.5):
            with pytest.raises(grpc.RpcError) as err:
                next(c.subscribe(min_score=score, from_cursor=0, resume=False))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        for kwargs in ({"windows": 4294967295}, {"seconds": 1e300}, {"seconds": float("nan")},
                       {"seconds": float("inf")}, {"seconds": -5.0}):
            with pytest.raises(grpc.RpcError) as err:
                c.start_enrollment("press-1", **kwargs)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, kwargs
        assert det.get_enrollment("press-1").state == "none"  # nothing started


def test_junk_request_bodies_are_counted_not_logged_per_call(make_server, caplog):
    """Defect 11: random bytes as a request body: no traceback per call, the token is checked first,
    the body is refused as INVALID_ARGUMENT, and the count grows."""
    server = make_server(insecure=True)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    raw = channel.unary_unary("/edge_coat.v1.EventService/GetStatus", request_serializer=None,
                              response_deserializer=None)
    before = service_module.malformed_requests["GetStatus"]
    junk = bytes(range(256)) * 4  # invalid wire types: does not parse
    caplog.set_level(logging.DEBUG)
    for _ in range(50):
        with pytest.raises(grpc.RpcError) as err:
            raw(junk, metadata=[("authorization", "Bearer wrong-token-0123456789")])
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for _ in range(20):
        with pytest.raises(grpc.RpcError) as err:
            raw(junk, metadata=[("authorization", f"Bearer {ADMIN}")])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel.close()
    assert service_module.malformed_requests["GetStatus"] - before == 70
    assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records if r.exc_info]
    assert sum("did not parse" in r.getMessage() for r in caplog.records) <= 1


def test_revoked_token_loses_its_subscription_and_reload_needs_no_restart(make_server, writer, tmp_path):
    """Defect 13: deleting a token from the file ends its live subscription and refuses new calls; a
    token added later works; an invalid file keeps the tokens in force."""
    tokens = tmp_path / "live-tokens.json"
    write_tokens(tokens, OPS, DESK_ENTRY)
    server = make_server(tokens_file=tokens)
    server.auth.check_interval_s = 0.0  # look at the file on every call (the default is once a second)
    writer.append_many([record("desk-1", n=0)])
    with client(server, DESK) as c:
        stream = c.subscribe(from_cursor=0, resume=False)
        assert next(stream).stream_id == "desk-1"
        write_tokens(tokens, OPS)  # the desk token is revoked
        with pytest.raises(grpc.RpcError) as err:
            for _ in stream:  # heartbeats every 0.3 s: the next round notices
                pass
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            c.get_status()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    tokens.write_text("clients: [ {broken")  # a typo must not lock everybody out
    os.utime(tokens, (time.time() + 5, time.time() + 5))
    with client(server, ADMIN) as c:
        assert c.get_status().head == 1
    assert server.auth.reload_errors >= 1 and "invalid tokens file" in server.auth.last_error
    write_tokens(tokens, OPS, DESK_ENTRY)
    os.utime(tokens, (time.time() + 10, time.time() + 10))
    with client(server, DESK) as c:
        assert c.get_status().head == 1


def test_expired_tokens_are_refused(tmp_path):
    """Defect 13: an entry's `expires` refuses the token from then on, and ends calls that were open."""
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "clients:\n"
        f"  - {{name: old, token: {AGENT}, streams: ['*'], expires: '2020-01-01T00:00:00Z'}}\n"
        f"  - {{name: desk, token: {DESK}, streams: ['desk-*'], expires: '2100-01-01T00:00:00Z'}}\n"
        f"  - {{name: gone, token: {ADMIN}, streams: ['*'], revoked: true}}\n"
    )
    now = [time.time()]
    auth = TokenAuth.from_file(path)
    auth.clock = lambda: now[0]
    with pytest.raises(AuthError, match="expired"):
        auth.authenticate([("authorization", f"Bearer {AGENT}")])
    with pytest.raises(AuthError, match="unknown or revoked"):
        auth.authenticate([("authorization", f"Bearer {ADMIN}")])
    desk = auth.authenticate([("authorization", f"Bearer {DESK}")])
    assert auth.still_valid(desk) == ""
    now[0] = 4102444800.0 + 1  # 2100-01-01 passed
    assert "expired" in auth.still_valid(desk)
    with pytest.raises(AuthError, match="expired"):
        auth.authenticate_token(DESK)


def test_sighup_style_reload(tmp_path):
    path = tmp_path / "tokens.json"
    write_tokens(path, OPS)
    auth = TokenAuth.from_file(path, check_interval_s=3600)  # no file watch within the test
    with pytest.raises(AuthError):
        auth.authenticate_token(DESK)
    write_tokens(path, OPS, DESK_ENTRY)
    assert auth.reload() is True and auth.authenticate_token(DESK).name == "desk"


def test_status_is_scoped_to_the_token(make_server, writer, tmp_path):
    """Defect 13: a desk-* token's GetStatus counts desk events only."""
    tokens = tmp_path / "scoped.json"
    write_tokens(tokens, OPS, DESK_ENTRY)
    server = make_server(tokens_file=tokens)
    writer.append_many([record("press-1", n=0), record("desk-1", n=1), record("press-2", n=2),
                        record("desk-2", n=3), record("press-3", n=4)])
    with client(server, ADMIN) as c:
        st = c.get_status()
        assert (st.oldest, st.head, st.events_stored) == (1, 5, 5)
    with client(server, DESK) as c:
        st = c.get_status()
        assert (st.oldest, st.head, st.events_stored) == (2, 4, 2)


def test_sighup_reloads_the_tokens_of_a_running_serve(tmp_path):
    """Defect 13: `edge-coat serve` re-reads its tokens file on SIGHUP (here a change the file watch
    cannot see: same inode, size and modification time)."""
    import re
    import signal
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    tokens = tmp_path / "tokens.json"
    other = {"name": "ops", "token": AGENT, "streams": ["*"], "control": True}  # same length as ADMIN's entry
    tokens.write_text(json.dumps({"clients": [OPS]}))
    before = tokens.stat()
    proc = subprocess.Popen([sys.executable, "-m", "edge_coat", "serve", "--db", str(tmp_path / "ev.db"),
                             "--listen", "127.0.0.1:0", "--insecure", "--tokens", str(tokens)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        port = int(re.search(r"listening on port (\d+)", proc.stdout.readline()).group(1))
        server = type("S", (), {"port": port})
        with client(server, ADMIN) as c:
            assert c.get_status().head == 0
        with open(tokens, "r+") as f:  # rewrite in place: the watch sees nothing change
            text = json.dumps({"clients": [other]})
            assert len(text) == before.st_size
            f.write(text)
        os.utime(tokens, ns=(before.st_atime_ns, before.st_mtime_ns))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while True:
            with client(server, ADMIN) as c:
                try:
                    c.get_status()
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
                    break
            assert time.monotonic() < deadline, "SIGHUP did not reload the tokens"
            time.sleep(0.1)
        with client(server, AGENT) as c:
            assert c.get_status().head == 0
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err
