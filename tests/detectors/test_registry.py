"""Detector plugins: a third detector type from a test module (tests/detectors/loud_plugin.py), named in
the site config and run through the whole service (real capture source, ZeroMQ, worker, SQLite log,
gRPC on port 0), its typed status in ListStreams; and the registry's refusals."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edge_coat.config import ConfigError, validate_config
from edge_coat.detectors import DetectorSet, DetectorsConfig, detector_types, register
from edge_coat.detectors.config import DetectorConfig
from edge_coat.events.client import EventClient
from edge_coat.messages import SAMPLE_RATE, EndOfStream
from edge_coat.service import Service
from edge_coat.worker.stage import NoopStage
from tests.detectors import loud_plugin
from tests.detectors.helpers import window_result
from tests.service.helpers import write_wav


def tone(seconds: float, dbfs: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (10 ** (dbfs / 20) * np.sqrt(2) * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def site(tmp_path, sources: dict) -> dict:
    return {
        "capture": {"sources": [{"uri": str(p), "stream_id": sid, "chunk_ms": 100} for sid, p in sources.items()],
                    "sender": {"endpoint": "tcp://127.0.0.1:0", "buffer_s": 30.0}},
        "worker": {"receiver": {"bind": "tcp://127.0.0.1:0"},
                   "default_stream": {"window_s": 1.0, "hop_s": 0.5, "tasks": {"loud": {"min_rms_dbfs": -100.0}}},
                   "batch": {"max_batch": 8, "max_wait_s": 0.02}},
        # the plugin: its module (imported when the config is validated) and its entry
        "detectors": {"plugins": [loud_plugin.__name__], "loud": {"threshold_dbfs": -20.0},
                      "anomaly": {"profile_dir": str(tmp_path / "profiles")}},
        "events": {"db_path": str(tmp_path / "events.db"), "listen": "127.0.0.1:0", "insecure": True},
        "metrics": {"enabled": False},
        "service": {"drain_timeout_s": 30.0, "grace_s": 0.5},
    }


def test_a_third_detector_from_a_test_module_runs_through_the_service(tmp_path):
    loud = write_wav(tmp_path / "press.wav", np.concatenate([tone(3.0, -40.0), tone(3.0, -6.0)]))
    quiet = write_wav(tmp_path / "desk.wav", tone(4.0, -40.0))
    cfg = validate_config(site(tmp_path, {"press-1": loud, "desk-1": quiet}))
    assert isinstance(cfg.detectors["loud"], loud_plugin.LoudConfig)
    svc = Service(cfg, stage=NoopStage()).start()
    try:
        deadline = time.monotonic() + 60
        while not (svc.sources_ended() and not svc.windows_pending()):
            assert time.monotonic() < deadline, "the service did not drain"
            time.sleep(0.05)
        with EventClient(f"127.0.0.1:{svc.grpc_port}", insecure=True) as client:
            events = []
            for e in client.subscribe(kinds=["loud"], from_cursor=0, resume=False):
                events.append(e)
                if e.phase == "end":
                    break
            streams = {s.stream_id: s for s in client.list_streams()}
    finally:
        summary = svc.stop()
    # the loud stream: an episode that starts in the loud half and is ended by the stream's end
    assert [(e.stream_id, e.kind, e.phase) for e in events] == [("press-1", "loud", "start"), ("press-1", "loud", "end")]
    assert "stream ended" in events[1].text
    assert summary["events"] == {"loud/end": 1, "loud/start": 1}
    # its typed status, per detector, through gRPC
    press, desk = streams["press-1"].detectors["loud"], streams["desk-1"].detectors["loud"]
    assert press.kind == "loud" and press.windows > 0 and press.last_score == 1.0
    assert desk.windows > 0 and desk.last_score == 0.0 and not desk.active_episode
    assert streams["press-1"].detectors["anomaly"].kind == "anomaly"  # the built-ins still report
    assert list(streams["press-1"].tasks) == ["loud"]


def test_the_plugin_needs_only_its_module_and_config():
    cfg = DetectorsConfig.model_validate({"plugins": [loud_plugin.__name__], "kiln": {"type": "loud"}})
    assert set(cfg.instances) == {"anomaly", "emotion", "kiln"}  # built-ins run by default
    det = DetectorSet(cfg)
    records = []
    for i in range(3):
        records += det.process(window_result("kiln-2", i, tasks=("loud",), rms_dbfs=-3.0))
    assert [r.phase for r in records] == ["start"] and records[0].kind == "loud"
    assert [r.phase for r in det.end_stream(EndOfStream("kiln-2", 1e9))] == ["end"]
    assert det.stream_status("kiln-2").detectors["kiln"].windows == 3
    assert cfg.model_dump()["kiln"]["type"] == "loud"
    assert DetectorsConfig.model_validate(cfg.model_dump()).instances.keys() == cfg.instances.keys()


def test_config_errors_name_the_detector_field_and_the_known_types(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate_config({"detectors": {"plugins": [loud_plugin.__name__], "loud": {"threshold_dbfs": 5.0},
                                       "anomaly": {"k": 0, "colour": "red"}, "kiln": {"type": "klin"}}})
    text = "\n".join(err.value.problems)
    assert "detectors.loud.threshold_dbfs" in text and "windows this loud or louder" in text
    assert "detectors.anomaly.k" in text
    assert "detectors.anomaly.colour: unknown field; expected one of: type, enabled, task" in text
    assert "detectors.kiln: unknown detector type 'klin'; known: ['anomaly', 'emotion', 'loud']" in text
    with pytest.raises(ConfigError, match="detectors.plugins.*cannot be imported|cannot be imported"):
        validate_config({"detectors": {"plugins": ["no_such_detector_module"]}})


def test_a_type_registered_twice_is_refused():
    class Other(DetectorConfig):
        type: str = "loud"
        task: str = "loud"

    with pytest.raises(ValueError, match="registered twice"):
        @register(Other)
        class Clash:  # noqa: F811 - the point is the clash
            pass
    assert detector_types()["loud"].build is loud_plugin.LoudDetector
