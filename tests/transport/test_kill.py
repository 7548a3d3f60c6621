"""The worker PROCESS is killed with SIGKILL mid-stream (no close, no goodbye: what it had not
acknowledged dies with it) and a new one starts on the same endpoint. Two streams go through the
same outage: one whose client buffers more than the outage (nothing may be lost) and one whose
client buffers less (the loss must come back as a gap of exact length)."""

from __future__ import annotations

import json
import os
import signal as sig
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np

from edge_coat.transport.sender import Sender
from tests.transport.helpers import WINDOW, expected_starts, sender_config, signal, wait_for

REPO = Path(__file__).resolve().parents[2]
CHUNK = 1600


class WorkerProcess:
    """`tests.transport.worker_proc` in a child process, its JSON lines read by a thread."""

    def __init__(self, bind: str, window_phase: str = "spread"):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.transport.worker_proc", "--bind", bind,
                                      "--window-phase", window_phase],
                                     cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        self.lock = threading.Lock()
        self.windows: dict[str, dict[int, tuple[float, int]]] = {}  # stream -> start -> (gap s, crc)
        self.stats: dict = {}
        self.n_stats = 0
        self.endpoint: str | None = None
        threading.Thread(target=self._read, daemon=True).start()
        assert wait_for(lambda: self.endpoint is not None, 30), "the worker process did not start"

    def _read(self) -> None:
        for line in self.proc.stdout:
            msg = json.loads(line)
            with self.lock:
                if "window" in msg:
                    sid, start, gap, crc = msg["window"]
                    self.windows.setdefault(sid, {})[start] = (gap, crc)
                elif "stats" in msg:
                    self.stats = msg["stats"]
                    self.n_stats += 1
                else:
                    self.endpoint = msg["endpoint"]

    def got(self, sid: str) -> dict[int, tuple[float, int]]:
        with self.lock:
            return dict(self.windows.get(sid, {}))

    def kill(self) -> None:
        self.proc.send_signal(sig.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()


def _crc(x: np.ndarray, start: int) -> int:
    return zlib.crc32(np.ascontiguousarray(x[start:start + WINDOW], dtype=np.float32).tobytes())


def test_sigkilled_worker_process_loses_nothing_within_the_buffer_and_reports_the_gap_beyond():
    x = signal(16000 * 4, seed=11)
    # every grid at phase 0: the windows are checked against the plain grid (grid phases: the next test)
    a = WorkerProcess("tcp://127.0.0.1:0", "aligned")
    senders = {"keep": Sender(sender_config(a.endpoint, buffer_s=10.0)).start(),  # outage < buffer
               "lose": Sender(sender_config(a.endpoint, buffer_s=0.5)).start()}  # outage > buffer
    b = None

    def send(lo: int, hi: int, pace: float, eos_at_end: bool = False) -> None:
        for i in range(lo, hi, CHUNK):
            for sid, s in senders.items():
                s.submit(sid, x[i:i + CHUNK], 1_000.0 + i / 16000, end_of_stream=eos_at_end and i + CHUNK >= hi)
            if pace:
                wait_for(lambda: False, pace)

    try:
        assert all(s.connected.wait(10) for s in senders.values())
        send(0, 16000, pace=0.01)  # 1 s at 10x real time
        assert wait_for(lambda: all(len(a.got(sid)) >= 5 for sid in senders), 10)
        a.kill()
        assert wait_for(lambda: not any(s.connected.is_set() for s in senders.values()), 10)
        split = 16000 + 20 * CHUNK  # 2 s captured while no worker runs
        send(16000, split, pace=0.0)
        b = WorkerProcess(a.endpoint, "aligned")  # same port, fresh process
        assert all(s.connected.wait(10) for s in senders.values())
        send(split, len(x), pace=0.01, eos_at_end=True)
        assert all(s.wait_acked(15) for s in senders.values())
        last = len(x) - WINDOW
        assert wait_for(lambda: all(last in b.got(sid) for sid in senders), 10)
        n = b.n_stats
        assert wait_for(lambda: b.n_stats >= n + 2, 5)  # a stats line taken after the last window

        # within the bound: every window exactly once or more, sample for sample, no gap anywhere
        keep_a, keep_b = a.got("keep"), b.got("keep")
        assert set(keep_a) | set(keep_b) == expected_starts(len(x))
        for start, (gap, crc) in {**keep_a, **keep_b}.items():
            assert gap == 0 and crc == _crc(x, start), f"window at {start}"
        assert b.stats["keep"]["gap_s"] == 0
        assert senders["keep"].stats()["worker_restarts"] == 1

        # beyond it: one gap of exact length, counted by the new worker, carried by its windows
        (g0, gap_s), = b.stats["lose"]["recent_gaps"]
        n_gap = round(gap_s * 16000)
        assert b.stats["lose"]["gap_s"] == gap_s and n_gap > 0
        assert n_gap <= senders["lose"].stats()["streams"]["lose"]["dropped_samples"]
        y = x.copy()
        y[g0:g0 + n_gap] = 0  # windows are exact, zero-filled where the gap is
        lose_a, lose_b = a.got("lose"), b.got("lose")
        assert all(gap == 0 and crc == _crc(x, start) for start, (gap, crc) in lose_a.items())
        assert any(gap > 0 for gap, _ in lose_b.values())
        for start, (gap, crc) in lose_b.items():
            assert crc == _crc(y, start), f"window at {start}"
            overlap = max(0, min(start + WINDOW, g0 + n_gap) - max(start, g0))
            assert round(gap * 16000) == overlap
        # nothing missing silently: every sample is in a window (either worker) or in the gap
        covered = np.zeros(len(x), bool)
        for start in [*lose_a, *lose_b]:
            covered[start:start + WINDOW] = True
        covered[g0:g0 + n_gap] = True
        assert covered[:max(expected_starts(len(x))) + WINDOW].all()
    finally:
        for s in senders.values():
            s.close()
        for w in (a, b):
            if w is not None and w.proc.poll() is None:
                w.kill()


def test_a_restarted_worker_keeps_each_streams_window_grid():
    """Grid phases across a SIGKILL: two streams joined together get different grids (the second shifted by
    half the hop, on its 1,000-sample chunk grid); the new worker resumes each at its acknowledged sample and
    cuts its windows on the grid the dead one used, so together they cut every window of each grid exactly
    once or more, sample for sample."""
    chunk = 1000  # divides the 2,000-sample hop: phases fall on the chunk grid
    x = signal(16000 * 3, seed=12)
    a = WorkerProcess("tcp://127.0.0.1:0")
    sender = Sender(sender_config(a.endpoint, buffer_s=10.0)).start()
    sids = ("first", "second")
    b = None

    def send(lo: int, hi: int, eos_at_end: bool = False) -> None:
        for i in range(lo, hi, chunk):
            for sid in sids:
                sender.submit(sid, x[i:i + chunk], 1_000.0 + i / 16000, end_of_stream=eos_at_end and i + chunk >= hi)
            wait_for(lambda: False, 0.005)

    try:
        assert sender.connected.wait(10)
        send(0, 16000)
        assert wait_for(lambda: all(len(a.got(sid)) >= 3 for sid in sids), 10)
        assert wait_for(lambda: all(sid in a.stats for sid in sids), 5)
        phase = {sid: round(a.stats[sid]["window_phase_s"] * 16000) for sid in sids}
        assert phase["first"] == 0 and phase["second"] == 1000
        a.kill()
        assert wait_for(lambda: not sender.connected.is_set(), 10)
        b = WorkerProcess(a.endpoint)
        assert sender.connected.wait(10)
        send(16000, len(x), eos_at_end=True)
        assert sender.wait_acked(15)
        for sid in sids:
            grid = set(range(phase[sid], len(x) - WINDOW + 1, 2000))
            assert wait_for(lambda: max(grid) in b.got(sid), 10), sid
            got_a, got_b = a.got(sid), b.got(sid)
            assert got_b and set(got_b) <= grid  # the new worker's windows are on the old grid
            assert set(got_a) | set(got_b) == grid  # and, with the dead worker's, every window of it
            for start, (gap, crc) in {**got_a, **got_b}.items():
                assert gap == 0 and crc == _crc(x, start), (sid, start)
    finally:
        sender.close()
        for w in (a, b):
            if w is not None and w.proc.poll() is None:
                w.kill()
