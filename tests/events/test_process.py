"""The event service as its own process (``edge-coat serve``) over a log file the test writes into,
as the worker would: SIGKILL mid-stream with exact-once resume, and a slow subscriber being closed.

(In-process, gRPC's client and server share one transport engine and a non-reading client never
pushes back, so back-pressure is tested across processes.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import replace

import grpc
import pytest

from edge_coat.events.client import EventClient
from edge_coat.events.log import EventLog
from edge_coat.v1 import events_pb2 as pb

from .conftest import ADMIN, record

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(tmp_path, port: int, **events) -> subprocess.Popen:
    cfg = {"events": {"db_path": str(tmp_path / "events.db"), "listen": f"127.0.0.1:{port}", "insecure": True,
                      "tokens_file": str(tmp_path / "tokens.json"), "heartbeat_s": 0.5, "poll_interval_s": 0.01,
                      **events},
           "metrics": {"enabled": False}}  # several serve processes at once: none binds the default port
    (tmp_path / "site.json").write_text(json.dumps(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "edge_coat", "serve", "--config", str(tmp_path / "site.json")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert "listening on port" in line, f"serve did not start: {line!r}"
    return proc


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def test_subscriber_resumes_across_sigkill_and_gets_every_event_exactly_once(tmp_path, tokens_file, procs):
    port = free_port()
    procs.append(start_serve(tmp_path, port))
    writer = EventLog(tmp_path / "events.db")
    n = 400
    received: list[int] = []
    halfway = threading.Event()

    def consume():
        with EventClient(f"127.0.0.1:{port}", token=ADMIN, insecure=True) as c:
            for event in c.subscribe(from_cursor=0, backoff=(0.05, 0.5)):
                received.append(event.id)
                if len(received) == n // 2:
                    halfway.set()
                if len(received) >= n:
                    return

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    for i in range(n // 2):
        writer.append(record(n=i))
    assert halfway.wait(30)
    procs[0].send_signal(signal.SIGKILL)  # mid-stream: no graceful anything
    procs[0].wait(timeout=10)
    for i in range(n // 2, n):  # the worker keeps writing while serve is down
        writer.append(record(n=i))
    procs.append(start_serve(tmp_path, port))
    t.join(60)
    assert not t.is_alive(), f"received {len(received)} of {n}"
    assert received == list(range(1, n + 1))  # every event, exactly once, in order
    writer.close()


def test_slow_subscriber_is_closed_and_resumes_exactly_once(tmp_path, tokens_file, procs):
    port = free_port()
    procs.append(start_serve(tmp_path, port, queue_events=64, max_batch=8))
    writer = EventLog(tmp_path / "events.db")
    fast = EventClient(f"127.0.0.1:{port}", token=ADMIN, insecure=True)
    # its own connection (no subchannel sharing with the fast one), with a small receive window
    slow = EventClient(f"127.0.0.1:{port}", token=ADMIN, insecure=True,
                       options=[("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0),
                                ("grpc.http2.lookahead_bytes", 1024)])
    slow_call = slow.stub.Subscribe(pb.SubscribeRequest(from_cursor=0), metadata=slow.metadata)
    fast_events = fast.subscribe(from_cursor=0)
    n, pad = 3000, "x" * 4000  # ~12 MB: far beyond what the slow reader's transport buffers
    got_fast = []

    def read_fast():
        for e in fast_events:
            got_fast.append(e.id)
            if len(got_fast) >= n:
                return

    t = threading.Thread(target=read_fast, daemon=True)
    t.start()
    # both catch up (live), then the slow one stops reading while the burst arrives
    writer.append_many([record(n=i) for i in range(5)])
    got = []
    while len(got) < 5:
        got += [e.id for e in next(slow_call).events]
    for start in range(5, n, 100):
        writer.append_many([replace(record(n=i), text=pad) for i in range(start, start + 100)])
    t.join(60)
    assert got_fast == list(range(1, n + 1))  # the slow one did not hold the fast one back
    with pytest.raises(grpc.RpcError) as err:
        for resp in slow_call:
            got += [e.id for e in resp.events]
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"resume with from_cursor={got[-1]}" in err.value.details()
    assert got == list(range(1, len(got) + 1)) and len(got) < n
    rest = []
    for e in slow.subscribe(from_cursor=got[-1]):
        rest.append(e.id)
        if len(rest) >= n - len(got):
            break
    assert rest == list(range(len(got) + 1, n + 1))  # resumed from its cursor: the rest, exactly once
    fast.close()
    slow.close()
    writer.close()
