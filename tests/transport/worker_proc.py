"""A worker in a process of its own, for tests that kill it with SIGKILL.

    python -m tests.transport.worker_proc --bind tcp://127.0.0.1:0 [--window-phase aligned]

It prints JSON lines, each flushed at once so that a test knows what the worker had done when it
died: ``{"endpoint": ...}`` first; ``{"window": [stream, start sample, gap seconds, CRC-32 of the
float32 samples]}`` for every window that went through the (no-op) model stage; and
``{"stats": {stream: {"gap_s": ..., "recent_gaps": ..., "window_phase_s": ...}}}`` every 50 ms. It runs until killed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import zlib

from tests.transport.helpers import make_worker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bind", default="tcp://127.0.0.1:0")
    ap.add_argument("--window-phase", choices=("spread", "aligned"), default="spread")
    args = ap.parse_args()
    lock = threading.Lock()

    def emit(obj: dict) -> None:
        line = json.dumps(obj)
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def on_result(result) -> None:
        w = result.window
        emit({"window": [w.stream_id, w.start_sample, w.gap_seconds, zlib.crc32(w.samples.tobytes())]})

    worker = make_worker(bind=args.bind, collector=on_result, window_phase=args.window_phase)
    emit({"endpoint": worker.endpoint})
    while True:
        time.sleep(0.05)
        streams = worker.stats()["streams"]
        emit({"stats": {sid: {k: s[k] for k in ("gap_s", "recent_gaps", "window_phase_s")}
                        for sid, s in streams.items()}})


if __name__ == "__main__":
    main()
