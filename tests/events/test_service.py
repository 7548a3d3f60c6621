"""The gRPC event service in-process on port 0 over a real log file."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_coat.events.client import EventClient
from edge_coat.events.config import RetentionConfig
from edge_coat.events.log import EventLog
from edge_coat.v1 import events_pb2 as pb

from .conftest import ADMIN, AGENT, record


def client(server, token=ADMIN) -> EventClient:
    return EventClient(f"127.0.0.1:{server.port}", token=token, insecure=True)


def take(iterator, n, timeout=20.0):
    """The first n items of a subscription (fails the test instead of hanging)."""
    out, deadline = [], time.monotonic() + timeout
    for item in iterator:
        out.append(item)
        if len(out) >= n:
            return out
        assert time.monotonic() < deadline, f"only {len(out)} of {n} events arrived"
    return out


def test_replay_then_live_without_gap_or_duplicate(make_server, writer):
    server = make_server()
    writer.append_many([record(n=i) for i in range(300)])  # before the subscription: replayed

    def produce():
        for i in range(300, 600):
            writer.append(record(n=i))  # while it replays and after: live
            if i % 50 == 0:
                server.notify()

    t = threading.Thread(target=produce)
    with client(server) as c:
        sub = c.subscribe(from_cursor=0)
        first = next(sub)
        t.start()
        events = [first] + take(sub, 599)
    t.join()
    assert [e.id for e in events] == list(range(1, 601))
    assert events[0].evidence.readings["pitch_hz"] == 120.0 and events[0].evidence.model_name == "coat-tiny"


def test_filters_by_stream_kind_and_min_score(make_server, writer):
    server = make_server()
    writer.append_many([record("press-1", "anomaly", 0.9, n=0), record("press-2", "anomaly", 0.9, n=1),
                        record("call-1", "emotion", 0.8, n=2), record("press-1", "anomaly", 0.3, n=3),
                        record("press-1", "emotion", 0.95, n=4), record("press-1", "anomaly", 0.7, n=5)])
    with client(server) as c:
        got = take(c.subscribe(stream_ids=["press-1"], kinds=["anomaly"], min_score=0.5, from_cursor=0), 2)
        assert [e.id for e in got] == [1, 6]


def test_heartbeats_carry_the_cursor_past_filtered_events(make_server, writer):
    server = make_server()
    writer.append_many([record("press-1", n=i) for i in range(5)])
    beats = []
    with client(server) as c:
        sub = c.subscribe(kinds=["emotion"], from_cursor=0, on_heartbeat=beats.append)
        writer.append(record("call-9", "emotion", n=9))
        server.notify()
        (event,) = take(sub, 1)
        assert event.id == 6
        assert c.cursor == 6
    # a heartbeat came while only filtered-out events existed, and it had moved the cursor past them
    assert beats == [] or beats[0].cursor >= 5


def test_auth_no_token_wrong_token_and_scope(make_server, writer):
    server = make_server()
    writer.append_many([record("press-1", n=0), record("call-7", "emotion", n=1), record("press-2", n=2),
                        record("call-8", "emotion", n=3)])
    for token in (None, "wrong-token-0123456789"):
        with client(server, token) as c:
            with pytest.raises(grpc.RpcError) as err:
                next(c.subscribe(from_cursor=0, resume=False))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as err:
                c.list_streams()
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with client(server, AGENT) as c:
        with pytest.raises(grpc.RpcError) as err:
            next(c.subscribe(stream_ids=["call-7", "press-1"], from_cursor=0, resume=False))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "press-1" in err.value.details()
        # no explicit streams: the out-of-scope ones are filtered server-side, never delivered
        got = take(c.subscribe(from_cursor=0), 2)
        assert [(e.id, e.stream_id) for e in got] == [(2, "call-7"), (4, "call-8")]
        with pytest.raises(grpc.RpcError) as err:
            c.start_enrollment("call-7", windows=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_expired_and_foreign_cursors_get_clear_errors(make_server, writer):
    writer.append_many([record(n=i) for i in range(20)])
    writer.retention = RetentionConfig(max_events=5)
    writer.prune()
    # (a running server's ring may still hold dropped events and serve them: only the log's loss is an error)
    server = make_server()
    with client(server) as c:
        with pytest.raises(grpc.RpcError) as err:
            next(c.subscribe(from_cursor=3, resume=False))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "events 4..15 (12 events) were dropped" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            next(c.subscribe(from_cursor=500, resume=False))
        assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert [e.id for e in take(c.subscribe(from_cursor=0), 5)] == [16, 17, 18, 19, 20]


def test_health_reflection_and_shutdown(make_server, writer):
    server = make_server()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(service="edge_coat.v1.EventService")).status == \
        health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    (resp,) = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in resp.list_services_response.service}
    assert {"edge_coat.v1.EventService", "grpc.health.v1.Health"} <= names

    watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    with client(server) as c:
        sub = c.subscribe(from_cursor=0, resume=False)
        writer.append(record(n=0))
        server.notify()
        assert next(sub).id == 1
        stopper = threading.Thread(target=server.stop, kwargs={"grace": 1.0})
        stopper.start()
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as err:
            next(sub)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        stopper.join()
    channel.close()


def test_status_and_enrollment_through_a_detector_set(make_server, tmp_path):
    import numpy as np

    from edge_coat.detectors import AnomalyConfig, DetectorSet, DetectorsConfig

    from detectors.helpers import window_result

    det = DetectorSet(DetectorsConfig(anomaly=AnomalyConfig(profile_dir=tmp_path / "p", min_enroll_windows=8, k=3)))
    det.process(window_result("press-7", 0, anomaly=0.2, thinking=np.zeros((2, 4), np.float32)))
    server = make_server(control=det)
    with client(server) as c:
        (s,) = c.list_streams()
        assert s.stream_id == "press-7" and s.model_only and s.enrollment.state == "none"
        assert "no normal profile" in s.enrollment.message
        status = c.start_enrollment("press-7", windows=8)
        assert status.state == "enrolling" and status.target_windows == 8
        rng = np.random.default_rng(0)
        for i in range(8):
            det.process(window_result("press-7", 1 + i, anomaly=0.2, thinking=rng.normal(size=(2, 4)).astype(np.float32)))
        assert c.get_enrollment("press-7").state == "ready"
        with pytest.raises(grpc.RpcError) as err:
            c.stop_enrollment("press-7")
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not enrolling" in err.value.details()
        st = c.get_status()
        assert st.streams[0].stream_id == "press-7" and st.head == 0
    with client(server, AGENT) as c:
        assert c.list_streams() == []  # press-7 is outside the agent's scope


def test_split_processes_share_status_and_enrollment_through_the_log(make_server, tmp_path):
    import numpy as np

    from edge_coat.detectors import AnomalyConfig, DetectorSet, DetectorsConfig
    from edge_coat.events.control import LogStreamControl, WorkerBridge

    from detectors.helpers import window_result

    server = make_server()
    server.control = None
    server_log = server.log
    server._hub  # the servicer holds the control given at start: rebuild with the log-backed one
    server.stop(grace=0.1)
    server2 = make_server(control=LogStreamControl(server_log))
    worker_log = EventLog(tmp_path / "events.db")
    det = DetectorSet(DetectorsConfig(anomaly=AnomalyConfig(profile_dir=tmp_path / "p", min_enroll_windows=8, k=3)))
    bridge = WorkerBridge(worker_log, det)
    rng = np.random.default_rng(0)
    det.process(window_result("press-8", 0, anomaly=0.2, thinking=rng.normal(size=(2, 4)).astype(np.float32)))
    bridge.poll()
    with client(server2) as c:
        assert [s.stream_id for s in c.list_streams()] == ["press-8"]
        assert c.start_enrollment("press-8", windows=8).state == "pending"
        assert c.get_enrollment("press-8").state == "pending"
        assert bridge.poll() == 1
        assert c.get_enrollment("press-8").state == "enrolling"
        for i in range(8):
            det.process(window_result("press-8", 1 + i, anomaly=0.2, thinking=rng.normal(size=(2, 4)).astype(np.float32)))
        bridge.poll()
        assert c.get_enrollment("press-8").state == "ready"
        # events the worker publishes reach subscribers of the separate service
        bridge.publish([record("press-8", n=0)])
        (ev,) = take(c.subscribe(from_cursor=0), 1)
        assert ev.stream_id == "press-8"
    worker_log.close()


def test_drain_waits_until_the_fanout_has_read_the_log(make_server, writer):
    server = make_server()
    stored = writer.append_many([record(n=i) for i in range(20)])
    assert server.drain(stored[-1].id, timeout=10.0)
    # an id the log never reaches: drain gives up after its timeout instead of hanging
    assert not server.drain(stored[-1].id + 5, timeout=0.2)
