"""The worker's garbage-collector setting (process-wide, so the test restores it)."""

from __future__ import annotations

import gc

from edge_coat.worker.config import WorkerConfig
from edge_coat.worker.service import Worker
from edge_coat.worker.stage import NoopStage


def _worker(gen0: int) -> Worker:
    return Worker(WorkerConfig(receiver={"bind": "tcp://127.0.0.1:0"}, gc_gen0_threshold=gen0), NoopStage())


def test_worker_raises_the_gc_threshold_and_freezes_startup_objects_only_when_asked():
    saved = gc.get_threshold()
    try:
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)
        with _worker(0):
            assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0
        with _worker(5000):
            assert gc.get_threshold() == (5000, 10, 10) and gc.get_freeze_count() > 0
        with _worker(1000):  # never lowered
            assert gc.get_threshold()[0] == 5000
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
