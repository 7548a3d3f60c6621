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
