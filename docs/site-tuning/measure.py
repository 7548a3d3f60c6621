"""Section 3 of README.md: tune the emotion detector on one half of a held-out language's speakers with
`edge-coat tune emotion`, score the chosen setting on the other half with `--check-only`, and swap the halves.

    python docs/site-tuning/measure.py [--work /work/st] [--desk /work/cn/loco-desk] [--tower /work/loco/tower]
        [--channel telephone]

Writes docs/site-tuning/results[-telephone].json and .txt (the table)."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.tuning import emotion_threshold as et  # noqa: E402

KINDS = ("angry", "calm>angry", "calm", "happy")
SITE = """worker:
  receiver: {{bind: 'tcp://127.0.0.1:5555'}}
  streams:
    desk-1:
      window_s: 2.0
      hop_s: 1.0
      tasks:
        emotion: {{min_rms_dbfs: -55, min_speech_ratio: 0.3}}
model:
  path: {model}
  torch_threads: 1
  thinking: {{backend: torch, verify_bundle: false}}
  encoder: {{backend: torch}}
"""


def edge_coat(*argv) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "edge_coat", *map(str, argv)], cwd=ROOT, capture_output=True,
                         text=True)
    print(out.stdout[-600:], out.stderr[-300:], sep="\n", flush=True)
    return out


def write_half(calls, folder: Path, channel: str = "clean") -> None:
    from edge_coat.train.augment import telephone

    folder.mkdir(parents=True, exist_ok=True)
    rows = ["file,alert,onset_s,group"]
    for c in calls:
        name = c.call_id.replace("/", "_").replace(">", "-") + ".wav"
        if not (folder / name).is_file():
            wave = et.render(c)
            sf.write(folder / name, telephone(wave) if channel == "telephone" else wave, 16000)
        onset = f"{c.onset_s:.2f}" if c.onset_s > 0 else ""
        rows.append(f"{name},{'yes' if c.kind in et.ANGRY_KINDS else 'no'},{onset},{c.speaker}")
    (folder / "calls.csv").write_text("\n".join(rows) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/work/st"))
    ap.add_argument("--desk", type=Path, default=Path("/work/cn/loco-desk"))
    ap.add_argument("--tower", type=Path, default=Path("/work/loco/tower"))
    ap.add_argument("--channel", default="clean", choices=("clean", "telephone"),
                    help="the calls as recorded, or through the telephone channel (README section 6)")
    args = ap.parse_args()
    suffix = "" if args.channel == "clean" else f"-{args.channel}"
    if args.channel != "clean" and args.work == Path("/work/st"):
        args.work = Path(f"/work/st{suffix}")
    out = []
    for corpus in et.CORPORA:
        calls = et.build_calls(et.DATA, corpora=(corpus,), kinds=KINDS)
        speakers = sorted({c.speaker for c in calls})
        halves = {"A": set(speakers[0::2]), "B": set(speakers[1::2])}
        for h, members in halves.items():
            write_half([c for c in calls if c.speaker in members], args.work / corpus / h, args.channel)
        for readout, root in (("desk", args.desk), ("1.5", args.tower)):
            w = args.work / corpus / readout
            w.mkdir(parents=True, exist_ok=True)
            site = w / "site.yaml"
            model = root / "models" / f"loco-{corpus}" / "model"
            site.write_text(SITE.format(model=model) + "detectors:\n  emotion: {}\n")
            tuned = {}
            for h in halves:
                rc = edge_coat("tune", "emotion", "-c", site, "--calls", args.work / corpus / h,
                               "--out", w / f"tuned-{h}.yaml", "--json", w / f"tune-{h}.json",
                               "--readings", w / f"readings-{h}.json").returncode
                report = json.loads((w / f"tune-{h}.json").read_text())
                tuned[h] = (w / f"tuned-{h}.yaml") if rc == 0 else None
                if rc not in (0, 1):
                    raise SystemExit(f"tune failed on {corpus} {readout} {h}")
                tuned[h + "-report"] = report
            for h, other in (("A", "B"), ("B", "A")):
                rep = tuned[h + "-report"]
                advice = (rep.get("verdict") or {}).get("advice") or ""
                row = {"corpus": corpus, "readout": readout, "tuned_on": h, "tested_on": other,
                       "chosen": (rep["chosen"] or {}).get("setting"), "advice": advice,
                       "cv_estimate": rep["cross_validated"], "defaults_test": tuned[other + "-report"]["current"]}
                for arm, use in (("snippet_test", tuned[h] is not None),
                                 ("following_test", tuned[h] is not None and advice.startswith("Use the chosen"))):
                    cfg = yaml.safe_load(site.read_text())
                    if use:
                        cfg["detectors"] = yaml.safe_load(tuned[h].read_text())["detectors"]
                    (w / f"site-{arm}-{h}.yaml").write_text(yaml.safe_dump(cfg))
                    edge_coat("tune", "emotion", "-c", w / f"site-{arm}-{h}.yaml", "--calls",
                              args.work / corpus / other, "--check-only", "--json", w / f"{arm}-{h}-on-{other}.json",
                              "--readings", w / f"readings-{other}.json")
                    row[arm] = json.loads((w / f"{arm}-{h}-on-{other}.json").read_text())["current"]
                out.append(row)
    (ROOT / f"docs/site-tuning/results{suffix}.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = ["| language | readout | following the tool: angry alerted, false, early | snippet alone | defaults | "
             "tool's estimate on its tuning half: alerted, false, early |", "|---|---|---|---|---|---|"]
    for corpus in et.CORPORA:
        for readout in ("desk", "1.5"):
            rows = [r for r in out if r["corpus"] == corpus and r["readout"] == readout]
            def total(arm):
                return {k: sum(r[arm][k] for r in rows) for k in ("hits", "alert_calls", "false", "quiet_calls",
                                                                 "early", "onset_calls")}

            def cell(t):
                return (f"{t['hits']}/{t['alert_calls']}, {t['false']}/{t['quiet_calls']}, "
                        f"{t['early']}/{t['onset_calls']}")

            est = "; ".join(f"{r['tuned_on']}: {cell(r['cv_estimate'])}" if r["cv_estimate"] else f"{r['tuned_on']}: -"
                            for r in rows)
            lines.append(f"| {corpus} | {readout} | {cell(total('following_test'))} | {cell(total('snippet_test'))} | "
                         f"{cell(total('defaults_test'))} | {est} |")
    (ROOT / f"docs/site-tuning/results{suffix}.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
