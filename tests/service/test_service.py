"""The whole service in one process: file sources -> worker -> CoatStage -> detectors -> log -> gRPC.

The model is a random tiny one, so its own normal/abnormal judgement means nothing: the anomaly is
driven by enrollment (each stream learns its normal sound from its first windows) and a clearly
different sound, with the fused score set to the profile distance alone. A second stream that stays
normal is the control: it must raise nothing.
"""

from __future__ import annotations

import threading
import time
import urllib.request

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_coat.config import validate_config
from edge_coat.events.client import EventClient
from edge_coat.events.log import EventLog
from edge_coat.service import Service

from .helpers import WINDOW_S, machine_wave, site_dict, write_wav

NORMAL_S, ABNORMAL_S = 16.0, 6.0
ENROLL = 24  # windows: the first 12.5 s


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Subscriber(threading.Thread):
    """A gRPC client subscribed from cursor 0, like any operator's client."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.client = EventClient(f"127.0.0.1:{port}", insecure=True)
        self.events = []
        self.ended_with = None

    def run(self) -> None:
        try:
            for e in self.client.subscribe(from_cursor=0, resume=False):
                self.events.append(e)
        except grpc.RpcError as exc:
            self.ended_with = exc.code()


class HealthWatch(threading.Thread):
    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.statuses = []

    def run(self) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            for resp in stub.Watch(health_pb2.HealthCheckRequest(service="")):
                self.statuses.append(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))
        except grpc.RpcError:
            pass


@pytest.fixture(scope="module")
def run(tiny_model_dir, tmp_path_factory):
    """Start the service, subscribe, stream both files to their end, scrape, stop; return what was seen."""
    tmp = tmp_path_factory.mktemp("service")
    sources = {"m1": write_wav(tmp / "m1.wav", machine_wave(NORMAL_S, ABNORMAL_S, seed=0)),
               "m2": write_wav(tmp / "m2.wav", machine_wave(NORMAL_S + ABNORMAL_S, 0.0, seed=1))}
    cfg = validate_config(site_dict(tmp, tiny_model_dir, sources, enroll={"m1": ENROLL, "m2": ENROLL}))
    svc = Service(cfg)
    first_ts, windows = {}, {}

    def tap(result, _records):
        sid = result.window.stream_id
        first_ts.setdefault(sid, result.window.start_ts)
        windows[sid] = windows.get(sid, 0) + 1

    svc.result_listeners.append(tap)
    svc.start(capture=False)
    sub, health = Subscriber(svc.grpc_port), HealthWatch(svc.grpc_port)
    sub.start()
    health.start()
    wait_for(lambda: health.statuses, 10, "the health watch")
    svc.start_capture()
    wait_for(lambda: svc.sources_ended() and not svc.windows_pending(), 120, "both files to be processed")
    wait_for(lambda: sum(e.phase == "end" and e.stream_id == "m1" for e in sub.events) >= 1, 10,
             "the end of m1's episode (its stream ended)")
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{svc.metrics_port}/metrics", timeout=10).read().decode()
    status = sub.client.get_status()
    summary = svc.stop()
    sub.join(10)
    health.join(10)
    log = EventLog(cfg.events.db_path)
    stored = log.read_after(0, 10_000)
    log.close()
    return dict(svc=svc, sub=sub, health=health, metrics=metrics, status=status, summary=summary,
                stored=stored, first_ts=first_ts, windows=windows)


def rel(event, run) -> float:
    return event.window_start_ts - run["first_ts"][event.stream_id]


def test_anomaly_event_reaches_a_grpc_subscriber_only_after_the_change(run):
    starts = [e for e in run["sub"].events if e.kind == "anomaly" and e.phase == "start"]
    m1 = [e for e in starts if e.stream_id == "m1"]
    assert m1, f"no anomaly start on m1; events: {[(e.stream_id, e.phase, e.text) for e in run['sub'].events]}"
    # every m1 episode starts on a window that overlaps the changed sound
    assert all(rel(e, run) + WINDOW_S > NORMAL_S for e in m1), [rel(e, run) for e in m1]
    assert m1[0].evidence.scores["distance"] > m1[0].evidence.scores["threshold_distance"]
    assert m1[0].evidence.model_name == run["svc"].model_info()["name"]
    assert -30.0 < m1[0].evidence.readings["loudness_dbfs"] < 0.0  # the window's level, in dBFS
    # the control stream never changed its sound: no anomaly
    assert [e for e in starts if e.stream_id == "m2"] == []


def test_stream_end_closes_the_open_episode(run):
    m1 = [e for e in run["sub"].events if e.stream_id == "m1"]
    assert m1[-1].phase == "end"
    assert {e.episode_id for e in m1 if e.phase == "start"} <= {e.episode_id for e in m1 if e.phase == "end"}


def test_every_stored_event_was_delivered_once_in_order(run):
    assert [e.id for e in run["sub"].events] == [s.id for s in run["stored"]]
    assert run["summary"]["events_unwritten"] == 0 and run["summary"]["windows_unfinished"] == 0
    assert run["summary"]["lost_audio"] is False
    assert run["sub"].ended_with == grpc.StatusCode.UNAVAILABLE  # closed by the shutdown, with a resume hint


def test_health_turns_not_serving_on_shutdown(run):
    assert run["health"].statuses[0] == "SERVING"
    assert "NOT_SERVING" in run["health"].statuses


def test_metrics_exposed_with_the_expected_names(run):
    text = run["metrics"]
    for stream in ("m1", "m2"):
        assert f'edge_coat_stream_audio_seconds_total{{stream="{stream}"}} {NORMAL_S + ABNORMAL_S}' in text
        assert f'edge_coat_stream_windows_processed_total{{stream="{stream}"}} {float(run["windows"][stream])}' in text
        assert f'edge_coat_stream_windows_skipped_total{{stream="{stream}"}} 0.0' in text
        assert f'edge_coat_stream_gap_seconds_total{{stream="{stream}"}} 0.0' in text
    for name in ("edge_coat_queue_depth{queue=\"batch\"}", "edge_coat_queue_depth{queue=\"ingest\"}",
                 'edge_coat_model_latency_seconds_bucket{le="+Inf",stage="total"}',
                 'edge_coat_model_latency_seconds_count{stage="thinking"}', "edge_coat_subscribers 1.0",
                 "edge_coat_model_info{", "edge_coat_capture_online", "edge_coat_uptime_seconds",
                 "process_cpu_seconds_total"):
        assert name in text, name
    info_line = next(line for line in text.splitlines() if line.startswith("edge_coat_model_info{"))
    assert 'family="qwen2_audio"' in info_line and 'encoder="' in info_line and 'thinking="' in info_line, info_line
    starts = sum(e.phase == "start" for e in run["sub"].events)
    assert f'edge_coat_events_total{{kind="anomaly",phase="start"}} {float(starts)}' in text


def test_status_reports_streams_model_and_enrollment(run):
    streams = {s.stream_id: s for s in run["status"].streams}
    assert set(streams) == {"m1", "m2"}
    for s in streams.values():
        assert s.enrollment.state == "ready"
        details = MessageToDict(s.details)
        assert details["model"]["quantization"] == "fp32"
        assert details["model"]["thinking_runtime"] == "torch"
        assert details["pipeline"]["windows_processed"] > ENROLL
