"""Render the model card's measured tables from the JSON that scripts/train_coat_tiny.sh writes.

    python scripts/coat_tiny_table.py runs/coat-tiny-13/results [docs/coat-tiny-1.1/results] > table.md
    python scripts/coat_tiny_table.py docs/coat-tiny-1.2-candidate/results docs/coat-tiny-1.1/results \
        --name "1.2 candidate" --previous-name 1.1

The optional second folder holds the previous version's results: its CoAT rows are shown beside the new ones.
``--name`` / ``--previous-name`` label the two (default: coat-tiny 1.2 and 1.1, the shipped card's).
``--seeds "LABEL=RUN:DIR,DIR,..."`` (repeatable) adds a table of the held-out figures of several training seeds,
each folder's ``<figure>-RUN.json`` (RUN: coat or no-experts), with their mean:

    python scripts/coat_tiny_table.py runs/coat-tiny-20/results --seeds "1.3=coat:runs/coat-tiny-20/results,..."

Every number comes from `edge-coat eval` or `python -m bench.accuracy.reference_baselines` JSON;
nothing is typed in by hand. A missing result is shown as "not run".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PREVIOUS = "coat-tiny 1.1 (previous version)"
PREVIOUS_SHORT = "1.1"
MODELS = (("coat", "CoAT (coat-tiny 1.2)"), ("coat-nothink", "same weights, `--no-thinking`"),
          ("no-experts", "trained without expert losses"))


def set_names(name: str, previous: str) -> None:
    """Label the rows: ``name`` for the results' CoAT, ``previous`` for the previous folder's."""
    global PREVIOUS, PREVIOUS_SHORT, MODELS
    PREVIOUS = f"{previous if previous.startswith('coat') else 'coat-tiny ' + previous} (previous version)"
    PREVIOUS_SHORT = previous
    MODELS = ((MODELS[0][0], f"CoAT ({name})"),) + MODELS[1:]
REFS = (("mfcc_prosody", "MFCC+prosody + LR"), ("whisper", "frozen Whisper (same tower) + LR"), ("yamnet", "YAMNet + LR"))


def _load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _f(x) -> str:
    return "not run" if x is None else f"{x:.3f}"


def _metric(doc: dict | None, key: str):
    return None if doc is None else doc["metrics"].get(key)


def _angry_auc(doc: dict | None):
    """The angry-vs-rest AUC of an emotion result (the alert's clip-level figure)."""
    return None if doc is None else doc.get("per_class", {}).get("angry", {}).get("auc_vs_rest")


def _ref(doc: dict | None, kind: str, key: str):
    if doc is None or kind not in doc.get("results", {}):
        return None
    return doc["results"][kind]["metrics"].get(key)


def emotion_table(results: Path, previous: Path | None = None) -> list[str]:
    cols = [("emotion", "RAVDESS 8-class UA (spk 14-16)", "ua"), ("emotion-tel", "RAVDESS telephone UA", "ua"),
            ("emotion-emovo", "EMOVO UA (f3, m3)", "ua"), ("emotion-turev", "TurEV UA (1984)", "ua")]
    out = ["| model | " + " | ".join(c[1] for c in cols) + " | angry-vs-rest AUC (RAVDESS) |",
           "|---|" + "---|" * (len(cols) + 1)]
    for key, title in MODELS:
        cells = [_f(_metric(_load(results, f"{c[0]}-{key}"), c[2])) for c in cols]
        out.append(f"| {title} | " + " | ".join(cells) + f" | {_f(_angry_auc(_load(results, f'emotion-{key}')))} |")
    if previous is not None:
        cells = [_f(_metric(_load(previous, f"{c[0]}-coat"), c[2])) for c in cols]
        out.append(f"| {PREVIOUS} | " + " | ".join(cells) + f" | {_f(_angry_auc(_load(previous, 'emotion-coat')))} |")
    for kind, title in REFS[:2]:
        cells = [_f(_ref(_load(results, f"ref-{c[0]}"), kind, c[2])) for c in cols]
        out.append(f"| {title} | " + " | ".join(cells) + " | n/a |")
    return out


def loco_table(results: Path, previous: Path | None = None) -> list[str]:
    prev = f" | {PREVIOUS_SHORT} CoAT UA" if previous is not None else ""
    out = [f"| held-out corpus (trained on the other two) | CoAT UA{prev} | MFCC+prosody + LR UA | frozen Whisper + LR UA |",
           "|---|---|---|---|" + ("---|" if previous is not None else "")]
    for held in ("ravdess", "emovo", "turev"):
        ref = _load(results, f"ref-loco-{held}")
        old = f" | {_f(_metric(_load(previous, f'loco-{held}'), 'ua'))}" if previous is not None else ""
        out.append(f"| {held} | {_f(_metric(_load(results, f'loco-{held}'), 'ua'))}{old} | "
                   f"{_f(_ref(ref, 'mfcc_prosody', 'ua'))} | {_f(_ref(ref, 'whisper', 'ua'))} |")
    return out


def events_table(results: Path, previous: Path | None = None) -> list[str]:
    out = ["| model | accuracy | UA |", "|---|---|---|"]
    for key, title in MODELS:
        doc = _load(results, f"events-{key}")
        out.append(f"| {title} | {_f(_metric(doc, 'accuracy'))} | {_f(_metric(doc, 'ua'))} |")
    if previous is not None:
        doc = _load(previous, "events-coat")
        out.append(f"| {PREVIOUS} | {_f(_metric(doc, 'accuracy'))} | {_f(_metric(doc, 'ua'))} |")
    ref = _load(results, "ref-events")
    for kind, title in REFS:
        out.append(f"| {title} | {_f(_ref(ref, kind, 'accuracy'))} | {_f(_ref(ref, kind, 'ua'))} |")
    return out


def anomaly_table(results: Path) -> list[str]:
    out = ["| model | held-out set | profile | AUC (fused) | AUC distance only | AUC model P(abnormal) alone |",
           "|---|---|---|---|---|---|"]
    for key, title in MODELS:
        for folder, name in (("factory-test", "seed 99, known machines/faults"),
                             ("factory-novel-machine", "new machine (compressor)"),
                             ("factory-novel-fault", "new fault (squeal)")):
            for feat in ("mel", "thinking"):
                doc = _load(results, f"anomaly-{folder}-{feat}-{key}")
                if doc is None and key != "coat":
                    continue
                out.append(f"| {title} | {name} | {feat} | {_f(_metric(doc, 'auc'))} | "
                           f"{_f(_metric(doc, 'auc_distance'))} | {_f(_metric(doc, 'auc_model'))} |")
    return out


def noise_table(results: Path) -> list[str]:
    out = ["| background noise (pink) | mel profile AUC | thinking-latent profile AUC | model P(abnormal) alone AUC |",
           "|---|---|---|---|"]
    for label, suffix in (("none", "factory-test"), ("20 dB SNR", "snr20"), ("10 dB SNR", "snr10"), ("5 dB SNR", "snr5")):
        mel, think = (_load(results, f"anomaly-{suffix}-{feat}-coat") for feat in ("mel", "thinking"))
        out.append(f"| {label} | {_f(_metric(mel, 'auc'))} | {_f(_metric(think, 'auc'))} | {_f(_metric(think, 'auc_model'))} |")
    return out


SEED_FIGURES = (("emotion", "ua", "RAVDESS 8-class UA (spk 14-16)"), ("emotion-tel", "ua", "RAVDESS telephone UA"),
                ("emotion-emovo", "ua", "EMOVO UA (f3, m3)"), ("emotion-turev", "ua", "TurEV UA (1984)"),
                ("emotion", "angry", "angry-vs-rest AUC (RAVDESS)"), ("events", "accuracy", "UrbanSound8K accuracy"))


def _seed_value(folder: Path, figure: str, key: str, run: str):
    doc = _load(folder, f"{figure}-{run}")
    return _angry_auc(doc) if key == "angry" else _metric(doc, key)


def seeds_table(groups: list[tuple[str, str, list[Path]]]) -> list[str]:
    """One column per (label, run, folders): each seed's figure and the mean of the seeds that have it."""
    out = ["| held-out figure | " + " | ".join(f"{label}: {len(dirs)} seeds, each / **mean**" for label, _, dirs in groups) + " |",
           "|---|" + "---|" * len(groups)]
    for figure, key, title in SEED_FIGURES:
        cells = []
        for _, run, dirs in groups:
            values = [_seed_value(d, figure, key, run) for d in dirs]
            have = [v for v in values if v is not None]
            mean = f"**{sum(have) / len(have):.3f}**" if have else "not run"
            cells.append(" / ".join("-" if v is None else f"{v:.3f}" for v in values) + f" / {mean}")
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    return out


def parse_seeds(spec: str) -> tuple[str, str, list[Path]]:
    """"LABEL=RUN:DIR,DIR,..." -> (label, run, folders)."""
    label, sep, rest = spec.partition("=")
    run, sep2, dirs = rest.partition(":")
    if not (sep and sep2 and label and run in ("coat", "no-experts") and dirs):
        raise SystemExit(f"--seeds: expected LABEL=coat:DIR,DIR,... or LABEL=no-experts:DIR,..., got {spec!r}")
    return label, run, [Path(d) for d in dirs.split(",")]


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path)
    p.add_argument("previous", type=Path, nargs="?")
    p.add_argument("--name", default="coat-tiny 1.2")
    p.add_argument("--previous-name", default="1.1")
    p.add_argument("--seeds", action="append", default=[], metavar="LABEL=RUN:DIR,DIR,...",
                   help="a table of several seeds' held-out figures (repeatable: one column each)")
    args = p.parse_args(argv)
    set_names(args.name, args.previous_name)
    results, previous = args.results, args.previous
    for title, rows in (("Emotion (held-out speakers; loudness as recorded)", emotion_table(results, previous)),
                        ("Leave-one-corpus-out emotion (predictions restricted to the corpus's labels)",
                         loco_table(results, previous)),
                        ("UrbanSound8K fold 1, held-out recordings", events_table(results, previous)),
                        ("Machine anomalies, loudness-normalised to -26 dBFS", anomaly_table(results)),
                        ("Anomaly profiles in noise (factory seed 99, loudness-normalised)", noise_table(results))):
        print(f"### {title}\n")
        print("\n".join(rows) + "\n")
    if args.seeds:
        print("### Training seeds (held-out figures of each seed; means over the seeds that have the figure)\n")
        print("\n".join(seeds_table([parse_seeds(s) for s in args.seeds])) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
