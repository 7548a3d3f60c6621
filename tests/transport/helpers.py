"""Shared pieces of the link tests: a worker collecting its windows, and a chunked sender loop."""

from __future__ import annotations

import threading
import time

import numpy as np

from edge_coat.transport.config import LinkConfig, ReceiverConfig, SenderConfig
from edge_coat.worker.config import StreamConfig, TaskGateConfig, WorkerConfig
from edge_coat.worker.service import Worker
from edge_coat.worker.stage import NoopStage

FAST_LINK = LinkConfig(heartbeat_s=0.1, liveness=3, backoff_initial_s=0.05, backoff_max_s=0.4)
WINDOW, HOP = 4000, 2000  # samples


class Collector:
    """Thread-safe list of the windows a worker finished, by stream."""

    def __init__(self):
        self.lock = threading.Lock()
        self.windows: dict[str, list] = {}

    def __call__(self, result) -> None:
        with self.lock:
            self.windows.setdefault(result.window.stream_id, []).append(result.window)

    def get(self, sid: str) -> list:
        with self.lock:
            return list(self.windows.get(sid, []))


def make_worker(bind: str = "tcp://127.0.0.1:0", curve=None, collector: Collector | None = None,
                **worker_kw) -> Worker:
    cfg = WorkerConfig(
        **worker_kw,
        receiver=ReceiverConfig(bind=bind, link=FAST_LINK, ack_interval_s=0.02, curve=curve),
        default_stream=StreamConfig(window_s=WINDOW / 16000, hop_s=HOP / 16000,
                                    tasks={"anomaly": TaskGateConfig(min_rms_dbfs=-200)}),
        batch={"max_batch": 8, "max_wait_s": 0.01},
    )
    return Worker(cfg, NoopStage(), on_result=collector).start()


def sender_config(endpoint: str, **kw) -> SenderConfig:
    return SenderConfig(endpoint=endpoint, link=FAST_LINK, **kw)


def signal(n: int, seed: int) -> np.ndarray:
    """(n,) float32 noise on the 16-bit grid, so S16 transport is exact."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-20000, 20000, n) / 32768).astype(np.float32)


def wait_for(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def check_windows(windows: list, x: np.ndarray) -> set[int]:
    """Every window equals its slice of `x` (zeros where the gap is); returns the window starts."""
    for w in windows:
        ref = x[w.start_sample:w.start_sample + WINDOW]
        np.testing.assert_array_equal(w.samples, ref, err_msg=f"window at {w.start_sample}")
    return {w.start_sample for w in windows}


def expected_starts(n: int) -> set[int]:
    return set(range(0, n - WINDOW + 1, HOP))
