"""The ship gate of docs/coat-tiny-short-windows, section 6: a candidate bundle against the shipped one.

    python docs/coat-tiny-1.6-candidate/gate.py NEW_RESULTS OLD_RESULTS NEW_CALLS.json OLD_CALLS.json [--chosen]

*_RESULTS: ``docs/coat-tiny-1.5/evaluate.sh MODEL OUT`` folders (card split, whole clips). *_CALLS.json:
``python -m bench.tuning.emotion_threshold --model MODEL --json OUT`` (whole calls). Bars: no whole-clip emotion
figure more than 2.0 points below the old bundle; UrbanSound8K accuracy >= 0.75; at the current detector defaults,
in every window setup and channel, held-out angry calls alerted >= old - 1 and false alerts <= old. ``--chosen``
(gate 2): each bundle at the detector setting the bench chose for it on its development calls instead."""
import json
import sys
from pathlib import Path

FIGURES = [("RAVDESS UA", "emotion", "ua"), ("telephone UA", "emotion-tel", "ua"), ("EMOVO UA", "emotion-emovo", "ua"),
           ("TurEV UA", "emotion-turev", "ua"), ("angry AUC", "emotion", "auc"), ("UrbanSound8K acc", "events", "accuracy")]


def figure(folder: Path, stem: str, arm: str, key: str) -> float:
    d = json.loads((folder / f"{stem}-{arm}.json").read_text())
    if key == "auc":  # angry-vs-rest, as edge-coat eval writes it (per_class.angry.auc_vs_rest)
        return float(d["per_class"]["angry"]["auc_vs_rest"])
    return float(d["metrics"][key])


def calls(path: Path, setting: str = "current") -> dict[tuple[str, str], tuple[int, int]]:
    """(window setup, channel) -> (held-out angry calls alerted, false alerts) at ``setting``: the current defaults,
    or the setting the bench chose on the development calls ("chosen")."""
    out = {}
    for scen, v in json.loads(path.read_text())["scenarios"].items():
        for ch in ("clean", "telephone"):
            r = v["heldout"][f"{setting} {ch}"]
            out[(scen, ch)] = (round(r["angry"] * r["n"]["angry"]), round(r["false"] * r["n"]["calm"]))
    return out


def main():
    new, old, new_calls, old_calls = (Path(a) for a in sys.argv[1:5])
    ok = True
    print("| arm | " + " | ".join(n for n, _, _ in FIGURES) + " |")
    print("|---|" + "---|" * len(FIGURES))
    vals = {}
    for name, folder in (("candidate", new), ("shipped", old)):
        for arm in ("coat", "coat-nothink"):
            vals[(name, arm)] = [figure(folder, s, arm, k) for _, s, k in FIGURES]
            print(f"| {name}, {arm} | " + " | ".join(f"{x:.3f}" for x in vals[(name, arm)]) + " |")
    for (n, _, _), a, b in zip(FIGURES, vals[("candidate", "coat")], vals[("shipped", "coat")]):
        if n == "UrbanSound8K acc":
            good = a >= 0.75
            print(f"  [{'pass' if good else 'FAIL'}] {n}: {a:.3f} (bar >= 0.75; shipped {b:.3f})")
        else:
            good = 100 * (a - b) >= -2.0
            print(f"  [{'pass' if good else 'FAIL'}] {n}: {100 * (a - b):+.1f} points (bar >= -2.0)")
        ok &= good
    print("\nthe thinking block's part, fused (with minus --no-thinking, points):")
    for name in ("candidate", "shipped"):
        print(f"  {name}: " + ", ".join(f"{n} {100 * (a - b):+.1f}" for (n, _, _), a, b in
                                       zip(FIGURES, vals[(name, "coat")], vals[(name, "coat-nothink")])))
    setting = "chosen" if "--chosen" in sys.argv else "current"
    cn, co = calls(new_calls, setting), calls(old_calls, setting)
    print(f"\nwhole calls, each bundle at its {setting} setting:")
    print("\n| window setup | channel | candidate: angry alerted, false | shipped: angry alerted, false |")
    print("|---|---|---|---|")
    for key in co:
        (a1, f1), (a0, f0) = cn[key], co[key]
        good = a1 >= a0 - 1 and f1 <= f0
        ok &= good
        print(f"| {key[0]} | {key[1]} | {a1}, {f1} | {a0}, {f0} | {'pass' if good else 'FAIL'}")
    print(f"\ngate: {'PASSES' if ok else 'fails'}")


if __name__ == "__main__":
    main()
