"""Summarise ``edge-coat eval`` JSON files: UA (accuracy for events), the angry-vs-rest AUC where there is one.

    python docs/coat-tiny-corpus-norm/table.py FILE.json ..."""
import json
import sys
from pathlib import Path


def main():
    print("| file | UA | accuracy | angry AUC | clips with a baseline |")
    print("|---|---|---|---|---|")
    for f in sys.argv[1:]:
        d = json.loads(Path(f).read_text())
        m = d["metrics"]
        auc = d.get("per_class", {}).get("angry", {}).get("auc_vs_rest")
        base = m.get("readout_baseline", {}).get("clips_with_context", "")
        print(f"| {Path(f).stem} | {m['ua']:.3f} | {m['accuracy']:.3f} | {'' if auc is None else f'{auc:.3f}'} "
              f"| {base} |")


if __name__ == "__main__":
    main()
