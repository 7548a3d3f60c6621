"""Structured logs and the metrics collector on their own (fast; the end-to-end tests scrape a live service)."""

from __future__ import annotations

import io
import json
import logging
import urllib.request

from edge_coat.config import LoggingConfig
from edge_coat.service import JsonFormatter, configure_logging
from edge_coat.service.metrics import start_metrics_server


def test_json_formatter_writes_one_object_per_record_with_extras_and_traceback():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("edge_coat.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("stream %s: %d windows", "press-3", 7, extra={"stream": "press-3"})
        try:
            raise ValueError("bad window")
        except ValueError:
            logger.exception("model stage failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "stream press-3: 7 windows" and first["level"] == "WARNING"
    assert first["logger"] == "edge_coat.test.json" and first["stream"] == "press-3"
    assert first["time"].endswith("Z") and isinstance(first["ts"], float)
    assert second["level"] == "ERROR" and "ValueError: bad window" in second["exc"]


def test_configure_logging_sets_level_and_format_on_root_handlers():
    root = logging.getLogger()
    saved = (root.level, [h.formatter for h in root.handlers], list(root.handlers))
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        configure_logging(LoggingConfig(level="WARNING", format="json"))
        assert root.level == logging.WARNING and isinstance(handler.formatter, JsonFormatter)
        configure_logging(LoggingConfig(level="WARNING", format="text"), verbose=2)  # -vv wins: more detail
        assert root.level == logging.DEBUG and not isinstance(handler.formatter, JsonFormatter)
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for h, f in zip(saved[2], saved[1]):
            h.setFormatter(f)


def test_metrics_scrape_survives_a_failing_stats_function():
    calls = {"n": 0}

    def stats():
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("stage gone")
        return {"uptime_s": 5.0, "events": {"by_kind": {("anomaly", "start"): 2}, "head": 9, "subscribers": 3}}

    httpd, port = start_metrics_server("127.0.0.1:0", stats)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        first = urllib.request.urlopen(url, timeout=10).read().decode()
        assert "edge_coat_uptime_seconds" not in first and "process_cpu_seconds_total" in first
        second = urllib.request.urlopen(url, timeout=10).read().decode()
        assert 'edge_coat_events_total{kind="anomaly",phase="start"} 2.0' in second
        assert "edge_coat_event_log_head 9.0" in second and "edge_coat_subscribers 3.0" in second
        assert "edge_coat_uptime_seconds 5.0" in second
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_inputs_refused_at_the_edges_are_counted_in_metrics(tmp_path):
    """Issue 15: input validation at the edges shows as counters, never a line per input."""
    import time

    import numpy as np
    import zmq

    from edge_coat.config import validate_config
    from edge_coat.service import Service
    from edge_coat.transport import wire
    from edge_coat.v1 import audio_pb2 as pb
    from tests.chaos.worker_proc import LoudnessStage

    cfg = validate_config({
        "worker": {"receiver": {"bind": "tcp://127.0.0.1:0"}},
        "events": {"db_path": str(tmp_path / "events.db"), "listen": "127.0.0.1:0", "insecure": True},
        "detectors": {"anomaly": {"profile_dir": str(tmp_path / "profiles")}},
        "metrics": {"enabled": True, "listen": "127.0.0.1:0"},
    })
    svc = Service(cfg, stage=LoudnessStage(), roles=("worker", "serve")).start()
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.linger = 0
    try:
        dealer.connect(svc.worker_endpoint)
        header = pb.Frame(protocol_version=wire.PROTOCOL_VERSION, audio=pb.AudioHeader(
            stream_id="a", sender_epoch=1, sequence=0, start_sample=0, capture_ts=1.0, sample_rate=16000,
            channels=1, sample_format=wire.F32, num_frames=2)).SerializeToString()
        for _ in range(5):
            dealer.send_multipart([header, np.array([0.0, 1e30], "<f4").tobytes()])
        dealer.send_multipart([b"\xff\x00junk"])
        url = f"http://127.0.0.1:{svc.metrics_port}/metrics"
        deadline = time.monotonic() + 10
        # both counts, polled together: the malformed message is counted after the five out-of-range ones, so a
        # scrape may land between them
        wanted = ('edge_coat_input_rejected_total{edge="wire",reason="out_of_range"} 5.0',
                  'edge_coat_input_rejected_total{edge="wire",reason="malformed"} 1.0')
        while True:
            text = urllib.request.urlopen(url, timeout=10).read().decode()
            if all(w in text for w in wanted):
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
        assert 'edge_coat_input_rejected_total{edge="grpc",reason="malformed_body"}' in text
    finally:
        dealer.close()
        svc.stop()
