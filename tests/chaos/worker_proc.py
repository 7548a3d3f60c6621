"""The worker role of a site config in a process of its own, with a deterministic stand-in model stage,
for the chaos tests that SIGKILL it::

    python -m tests.chaos.worker_proc site.yaml

It is ``edge-coat worker -c site.yaml`` with :class:`LoudnessStage` instead of the model (the real
windowing, detectors, event log and episode resumption): P(abnormal) is 1 for a window louder than
-20 dBFS, else 0. Prints one JSON line ``{"ready": true}`` once it listens; SIGTERM stops it gracefully.
"""

from __future__ import annotations

import json
import sys

from edge_coat.commands._stage import stop_on_signals
from edge_coat.config import load_config
from edge_coat.messages import Window, WindowResult
from edge_coat.service import Service

LOUD_DBFS = -20.0


class LoudnessStage:
    name = "loudness"

    def process(self, windows: list[Window]) -> list[WindowResult]:
        out = []
        for w in windows:
            p = 1.0 if w.rms_dbfs > LOUD_DBFS else 0.0
            out.append(WindowResult(window=w, label_probs={"anomaly": {"normal": 1.0 - p, "abnormal": p}},
                                    readings={"loudness_dbfs": w.rms_dbfs}, model_name=self.name))
        return out


def main() -> int:
    cfg = load_config(sys.argv[1])
    stop = stop_on_signals("worker")
    service = Service(cfg, roles=("worker",), stage=LoudnessStage()).start()
    print(json.dumps({"ready": True, "worker_endpoint": service.worker_endpoint}), flush=True)
    stop.wait()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
