"""Does the thinking block lose on short windows, whatever the language? (README.md here)

    python docs/coat-tiny-short-windows/short.py NAME=FULL:FULL_NT:CROP:CROP_NT [...]

Four extract.py dumps of one model: the held-out clips whole, with and without the thinking block, and cut to their
loudest stretch (``extract.py --crop-held-out S``), with and without. The readout and fused temperature are fitted on
each dump's training and validation rows (which the crop leaves whole), as analyze.evaluate fits them. Prints, per
model, each figure whole and cut, with the block and without, and the block's part (points)."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "coat-tiny-thinking-readout"))
from analyze import FIGURES, evaluate  # noqa: E402

EMOTION = [n for c, _, n in FIGURES if n != "UrbanSound8K acc"]  # the crop touches only emotion clips


def share(d, nt, fused: bool) -> tuple[dict, dict]:
    feats = ("tower_stats",) if fused else None
    if fused:
        return evaluate(d, feats), evaluate(d, feats, score=nt)
    return evaluate(d, None), evaluate(nt, None)


def main():
    print("| model | output | windows | " + " | ".join(f"{n} with / without / part" for n in EMOTION) + " |")
    print("|---|---|---|" + "---|" * len(EMOTION))
    parts = {}
    for arg in sys.argv[1:]:
        name, files = arg.split("=", 1)
        full, full_nt, crop, crop_nt = (dict(np.load(p)) for p in files.split(":"))
        for a, b in ((full, full_nt), (crop, crop_nt), (full, crop)):
            if not np.array_equal(a["answer"], b["answer"]) or not np.array_equal(a["part"], b["part"]):
                raise SystemExit(f"{name}: the dumps' rows differ")
        for fused in (True, False):
            for tag, d, nt in (("whole", full, full_nt), ("cut", crop, crop_nt)):
                w, wo = share(d, nt, fused)
                out = "fused" if fused else "LLM alone"
                parts.setdefault((out, tag), []).append([100 * (w[n] - wo[n]) for n in EMOTION])
                print(f"| {name} | {out} | {tag} | " + " | ".join(
                    f"{w[n]:.3f} / {wo[n]:.3f} / {100 * (w[n] - wo[n]):+.1f}" for n in EMOTION) + " |")
    if len(sys.argv) > 2:
        print("\nthe block's part, mean over the models (points)")
        for (out, tag), v in parts.items():
            print(f"  {out}, {tag}: " + ", ".join(f"{n} {m:+.1f}" for n, m in zip(EMOTION, np.mean(v, 0))))


if __name__ == "__main__":
    main()
