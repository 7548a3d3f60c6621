"""Where does the thinking block cost Turkish? Its part by clip duration (README.md here).

    python docs/coat-tiny-seed-noise/by_duration.py RUN=DUMP:NO_THINKING_DUMP [...]

RUN is the run folder the dumps came from (its run_config.json and split.json give the rows' clips, in extract.py's
order). For every held-out emotion clip: whether the fused answer (1.5's readout, as analyze.evaluate fits it) is right
with the thinking block and with `--no-thinking`, pooled over the runs, by corpus and clip duration."""
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "coat-tiny-thinking-readout"))
from analyze import CANDIDATES, log_softmax, shipped_fusion  # noqa: E402

BINS = [(0.0, 1.5), (1.5, 3.0), (3.0, 99.0)]


def durations(run: Path) -> list[float]:
    """Seconds per dump row, in extract.py's row order (train rows x3, ravdess held-out x2)."""
    from edge_coat.data.tasks import get_task  # noqa: F401  (the folders' label maps, as extract.py loads them)
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.data import load_folders
    from edge_coat.train.pipeline import dataset_labels, task_specs

    cfg = TrainConfig.model_validate_json((run / "run_config.json").read_text())
    split = json.loads((run / "split.json").read_text())
    sources = [s for s in cfg.data if s.task in ("emotion", "events")]
    specs = task_specs(sorted({s.task for s in sources}))
    folders = load_folders(sources, {t: dataset_labels(t, spec) for t, spec in specs.items()})
    out = []
    for src, clips in zip(sources, folders):
        corpus = Path(src.path).name
        for part in ("train", "val", "held_out"):
            keep = set(split[src.path][part])
            for c in (x for x in clips if x.file in keep):
                info = sf.info(str(Path(src.path) / c.file))
                sec = info.frames / info.samplerate  # (the longest held-out clips are cut to 10 s; the bins stop at 3 s)
                out.extend([sec] * (3 if part == "train" else 2 if (part == "held_out" and corpus == "ravdess") else 1))
    return out


def correct(d, nt):
    """(row index, right with thinking, right without) for the held-out emotion rows, fused as shipped."""
    labels = list(d["labels_emotion"])
    rows = d["task"] == "emotion"
    ro, T, tr = shipped_fusion(d, "emotion")
    out = []
    for corpus in ("ravdess", "emovo", "turev"):
        sel = np.where(rows & (d["corpus"] == corpus) & (d["part"] == "held_out"))[0]
        cand = CANDIDATES.get(corpus, labels)
        idx = [labels.index(c) for c in cand]
        for lp, tag in ((d["lp_emotion"], "with"), (nt["lp_emotion"], "without")):
            z = (lp[sel][:, idx] / T + log_softmax(ro[sel][:, idx])) / tr
            pred = np.array(cand)[z.argmax(1)]
            if tag == "with":
                w = pred == d["answer"][sel]
            else:
                wo = pred == d["answer"][sel]
        out.extend(zip(sel, [corpus] * len(sel), w, wo))
    return out


def main():
    table = {}
    for arg in sys.argv[1:]:
        run, pair = arg.split("=", 1)
        d, nt = (dict(np.load(p)) for p in pair.split(":"))
        dur = durations(Path(run))
        if len(dur) != len(d["part"]):
            raise SystemExit(f"{run}: {len(dur)} rows rebuilt, the dump has {len(d['part'])}")
        for i, corpus, w, wo in correct(d, nt):
            b = next(k for k, (lo, hi) in enumerate(BINS) if lo <= dur[i] < hi)
            t = table.setdefault((corpus, b), [0, 0, 0])
            t[0] += 1
            t[1] += int(w)
            t[2] += int(wo)
    print("| corpus | clip duration | held-out clips (pooled over runs) | accuracy with thinking | without | difference (points) |")
    print("|---|---|---|---|---|---|")
    for (corpus, b), (n, w, wo) in sorted(table.items()):
        lo, hi = BINS[b]
        print(f"| {corpus} | {lo:g}-{hi:g} s | {n} | {w / n:.3f} | {wo / n:.3f} | {100 * (w - wo) / n:+.1f} |")


if __name__ == "__main__":
    main()
