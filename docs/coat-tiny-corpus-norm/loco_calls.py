"""Whole calls in a language the model never heard (README.md section 8): each corpus's calls, every speaker, scored
by the leave-one-corpus-out model that never heard it, with 1.5's readout and with the desk readout.

    python docs/coat-tiny-corpus-norm/loco_calls.py [--tower /work/loco/tower] [--desk /work/cn/loco-desk]
        [--json docs/coat-tiny-corpus-norm/loco_calls.json]

--tower, --desk: the ``loco.sh`` output folders (models/loco-<corpus>/model). Clean calls; the model stage, the gate
and the detector of ``bench.tuning.emotion_threshold`` (a desk model hears each corpus's calls on one desk, in speaker
order). Settings: each readout's shipped setting and the current defaults; none is tuned here."""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.tuning import emotion_threshold as et  # noqa: E402

DESK_SETTING = {"negative_labels": ["angry", "disgust"], "ema_alpha": 1.0, "on_threshold": 0.4, "on_windows": 2}
SCENARIOS = ((3.0, 1.5), (2.0, 1.0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tower", type=Path, default=Path("/work/loco/tower"))
    ap.add_argument("--desk", type=Path, default=Path("/work/cn/loco-desk"))
    ap.add_argument("--cache", type=Path, default=Path("/work/cn/loco-calls-cache"))
    ap.add_argument("--json", type=Path, default=ROOT / "docs/coat-tiny-corpus-norm/loco_calls.json")
    args = ap.parse_args()
    readouts = {"1.5 readout": (args.tower, et.current_setting()), "desk readout": (args.desk, DESK_SETTING)}
    out, lines = [], ["| held-out corpus | window setup | readout | setting | angry calls alerted | calm/happy calls "
                      "alerted (false) | median delay s |", "|---|---|---|---|---|---|---|"]
    for corpus in et.CORPORA:
        calls = et.build_calls(et.DATA, corpora=(corpus,))
        for name, (root, own) in readouts.items():
            model = root / "models" / f"loco-{corpus}" / "model"
            for scenario in SCENARIOS:
                labels, rows = et.readings(calls, model, scenario, "clean", args.cache)
                results = {c: et.results_of(c, labels, r) for c, r in rows.items()}
                for sname, setting in (("its own", own), ("current defaults", et.current_setting())):
                    if sname == "current defaults" and setting == own:
                        continue
                    r = et.summarise(et.score_setting(et.config_of(setting), calls, results))
                    angry = round((r["angry"] or 0) * r["n"]["angry"])
                    false = round((r["false"] or 0) * r["n"]["calm"])
                    row = {"corpus": corpus, "scenario": list(scenario), "readout": name, "setting": setting,
                           "angry_alerted": angry, "angry_calls": r["n"]["angry"], "false_alerts": false,
                           "calm_calls": r["n"]["calm"], "delay_median_s": r["delay_median_s"]}
                    out.append(row)
                    lines.append(f"| {corpus} | {scenario[0]:g} s / {scenario[1]:g} s | {name} | {sname} | "
                                 f"{angry} of {r['n']['angry']} | {false} of {r['n']['calm']} | "
                                 f"{r['delay_median_s'] if r['delay_median_s'] is not None else '-'} |")
                    print(lines[-1], flush=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
