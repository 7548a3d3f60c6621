"""Render the model card's measured table from the JSON that scripts/train_coat_tiny.sh writes.

    python scripts/coat_tiny_table.py runs/coat-tiny/results > table.md

Every number comes from `edge-coat eval`, bench/accuracy/reference_baselines.py or `edge-coat probe` JSON;
nothing is typed in by hand. A missing result is shown as "not run".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = (("coat", "CoAT"), ("coat-nothink", "same weights, `--no-thinking`"),
        ("no-experts", "trained without expert losses"))


def _load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def classification(results: Path, task: str) -> list[str]:
    out = ["| model | n | accuracy | UA | macro F1 |", "|---|---|---|---|---|"]
    for key, title in ROWS:
        d = _load(results, f"{task}-{key}")
        if d is None:
            out.append(f"| {title} | not run | | | |")
            continue
        m = d["metrics"]
        out.append(f"| {title} | {d['n']} | {_f(m['accuracy'])} | {_f(m['ua'])} | {_f(m['macro_f1'])} |")
    refs = _load(results, f"references-{task}")
    if refs is not None:
        for name, r in refs["results"].items():
            m = r["metrics"]
            out.append(f"| reference: {name} + logistic regression | {refs['n_test']} | {_f(m['accuracy'])} "
                       f"| {_f(m['ua'])} | {_f(m['macro_f1'])} |")
    return out


def confusion(results: Path, task: str, key: str = "coat") -> list[str]:
    d = _load(results, f"{task}-{key}")
    if d is None:
        return []
    labels, cm = d["metrics"]["labels"], d["metrics"]["confusion"]
    out = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    out += [f"| {lab} | " + " | ".join(str(v) for v in row) + " |" for lab, row in zip(labels, cm)]
    return out


def anomaly(results: Path) -> list[str]:
    """The detector's fused score (AUC, pAUC), then the model's own P(abnormal) alone ("model AUC"), which
    is where the three rows differ when the profile features (mel) do not depend on the weights."""
    out = ["| model | test clips (normal/abnormal) | AUC | pAUC | AUC loudness-normalised | pAUC loudness-normalised "
           "| model alone: AUC / loudness-normalised |",
           "|---|---|---|---|---|---|---|"]
    for key, title in ROWS:
        a, b = _load(results, f"anomaly-{key}"), _load(results, f"anomaly-loudnorm-{key}")
        if a is None:
            out.append(f"| {title} | not run | | | | | |")
            continue
        m, mb = a["metrics"], (b or {}).get("metrics", {})
        out.append(f"| {title} | {m['n_test_normal']}/{m['n_test_abnormal']} | {_f(m['auc'])} | {_f(m['pauc'])} "
                   f"| {_f(mb.get('auc'))} | {_f(mb.get('pauc'))} | {_f(m.get('auc_model'))} / {_f(mb.get('auc_model'))} |")
    a = _load(results, "anomaly-coat")
    if a is not None and "features" in a["metrics"]:
        m = a["metrics"]
        out.append("")
        out.append(f"Detector: profile features `{m['features']}`, {m['method']} k={m['k']}, fused with the model's "
                   f"P(abnormal) at weight {m['model_weight']}; the profile distance alone: AUC {_f(m.get('auc_distance'))}, "
                   f"pAUC {_f(m.get('pauc_distance'))}; {m['n_enroll']} normal clips enrolled.")
    return out


def probes(results: Path, task: str) -> list[str]:
    d = _load(results, f"probe-{task}")
    if d is None:
        return []
    out = ["| target | metric | layer | thinking positions | audio positions |", "|---|---|---|---|---|"]
    for row in d["results"]:
        out.append(f"| {row['target']} | {row['metric']} | {row['layer']} | {_f(row['thinking'])} | {_f(row['audio'])} |")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    results = Path(argv[0])
    parts = [
        "### Emotion, held-out RAVDESS speakers 14, 15, 16 (8 classes, chance 0.125)", *classification(results, "emotion"),
        "", "Confusion matrix (CoAT):", "", *confusion(results, "emotion"),
        "", "### Anomaly, held-out generated clips (seed 99, never trained on)", *anomaly(results),
        "", "### Sound events, held-out UrbanSound8K source recordings (10 classes)", *classification(results, "events"),
        "", "### Probes: out-of-fold R^2 / accuracy of linear probes, thinking vs audio positions (held-out speakers)",
        *probes(results, "emotion"),
    ]
    print("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
