"""The production split: capture, worker and serve as separate roles sharing one site config.

The worker writes events and stream statuses to the log file; serve (another role, as another process
would) fans them out and answers status from the same file; capture reaches the worker over TCP.
"""

from __future__ import annotations

import socket
import threading
import time

import grpc
from google.protobuf.json_format import MessageToDict

from edge_coat.config import validate_config
from edge_coat.events.client import EventClient
from edge_coat.service import Service

from .helpers import machine_wave, site_dict, write_wav


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_capture_worker_and_serve_as_separate_roles(tiny_model_dir, tmp_path):
    wav = write_wav(tmp_path / "m1.wav", machine_wave(16.0, 6.0, seed=0))
    data = site_dict(tmp_path, tiny_model_dir, {"m1": wav}, enroll={"m1": 24}, metrics=False)
    port = free_port()
    data["worker"]["receiver"]["bind"] = f"tcp://127.0.0.1:{port}"
    data["capture"]["sender"]["endpoint"] = f"tcp://127.0.0.1:{port}"
    data["service"]["status_interval_s"] = 0.2
    cfg = validate_config(data)
    worker = Service(cfg, roles=("worker",)).start()
    serve = Service(cfg, roles=("serve",)).start()
    capture = None
    try:
        client = EventClient(f"127.0.0.1:{serve.grpc_port}", insecure=True)
        got: list = []

        def subscribe():
            try:
                for e in client.subscribe(from_cursor=0, resume=False):
                    got.append(e)
            except grpc.RpcError:
                pass

        sub = threading.Thread(target=subscribe, daemon=True)
        sub.start()
        capture = Service(cfg, roles=("capture",)).start()
        deadline = time.monotonic() + 120
        while not any(e.phase == "end" for e in got):
            assert time.monotonic() < deadline, f"no episode end over the split roles; got {[e.text for e in got]}"
            time.sleep(0.1)
        assert [e.phase for e in got][:1] == ["start"]
        # serve answers status from the statuses the worker wrote to the log (with the model details)
        deadline = time.monotonic() + 10
        while True:
            streams = client.list_streams()
            if streams and streams[0].enrollment.state == "ready":
                break
            assert time.monotonic() < deadline, streams
            time.sleep(0.1)
        details = MessageToDict(streams[0].details)
        assert streams[0].stream_id == "m1" and details["model"]["family"] == "qwen2_audio"
        assert details["pipeline"]["audio_s_in"] == 22.0
    finally:
        if capture is not None:
            capture.stop()
        summary = worker.stop()
        serve.stop()
    sub.join(10)
    assert summary["events_unwritten"] == 0 and summary["log_head"] == len(got)


def test_a_failing_model_batch_does_not_stop_the_service(tiny_model_dir, tmp_path):
    """A batch that raises (e.g. a GPU out of memory) is counted and logged; later windows still go
    through, the drain still completes and the stream's episode still ends."""
    from edge_coat.config import ModelSection
    from edge_coat.worker.coat_stage import CoatStage

    class FirstBatchFails:
        def __init__(self, stage):
            self.stage, self.calls = stage, 0

        def process(self, windows):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("CUDA out of memory (simulated)")
            return self.stage.process(windows)

        def info(self):
            return self.stage.info()

    wav = write_wav(tmp_path / "m1.wav", machine_wave(16.0, 6.0, seed=0))
    cfg = validate_config(site_dict(tmp_path, tiny_model_dir, {"m1": wav}, enroll={"m1": 16}, metrics=False))
    # (16 enrollment windows: the failed first batch of up to 8 windows still leaves them inside the normal part)
    stage = FirstBatchFails(CoatStage(ModelSection(path=tiny_model_dir, readings=[],
                                                   thinking={"backend": "torch", "verify_bundle": False})))
    svc = Service(cfg, stage=stage).start()
    deadline = time.monotonic() + 120
    while not (svc.sources_ended() and not svc.windows_pending()):
        assert time.monotonic() < deadline, "the service did not drain after a failed batch"
        time.sleep(0.05)
    stats = svc.stats()
    summary = svc.stop()
    assert stats["worker"]["totals"]["stage_errors"] == 1 and stage.calls > 1
    assert summary["windows_unfinished"] == 0
    assert summary["events"].get("anomaly/end", 0) >= 1  # the stream's episode still ended
