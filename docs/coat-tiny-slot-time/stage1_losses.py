"""Stage 1's expert losses at its end (mean of the last three logged 25-step averages, training batches), per run.

    python docs/coat-tiny-slot-time/stage1_losses.py RUN [RUN ...]"""
import json
import sys
from pathlib import Path

import numpy as np

runs = sys.argv[1:]
rows = {r: [json.loads(x) for x in (Path(r) / "metrics.jsonl").read_text().splitlines() if '"expert/' in x][-3:]
        for r in runs}
experts = sorted({k for v in rows.values() for e in v for k in e if k.startswith("expert/")})
print("| run | " + " | ".join(e.split("/")[1] for e in experts) + " | all experts |")
print("|---|" + "---|" * (len(experts) + 1))
for r, v in rows.items():
    print(f"| {r} | " + " | ".join(f"{np.mean([e[x] for e in v if x in e]):.4f}" for x in experts)
          + f" | {np.mean([e['experts'] for e in v]):.3f} |")
