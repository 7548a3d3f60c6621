"""Section 5 of README.md: the held-out telephone calls heard on a cold desk, and on a desk that first heard the
development speakers' telephone calls of the same corpus (what `edge-coat tune desk` does with a line's past calls).

    python docs/site-tuning/warm_desk.py [--model /work/cn/card/bundle] [--cache /work/cn/card/calls-cache]

Writes docs/site-tuning/warm_desk.txt and warm_desk.json."""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.tuning import emotion_threshold as et  # noqa: E402

DESK_SETTING = {"negative_labels": ["angry", "disgust"], "ema_alpha": 1.0, "on_threshold": 0.4, "on_windows": 2}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("/work/cn/card/bundle"))
    ap.add_argument("--cache", type=Path, default=Path("/work/cn/card/calls-cache"))
    args = ap.parse_args()
    calls = et.build_calls(et.DATA)
    dev = [c for c in calls if c.split == "dev"]
    held = [c for c in calls if c.split == "heldout"]
    out, lines = [], ["| window setup | setting | desk | angry calls alerted | calm or happy calls alerted (false) |",
                      "|---|---|---|---|---|"]
    for scenario in et.SCENARIOS:
        # a fresh model stage for each run: the bench keeps one stage, whose desks would carry one run into the next
        et._SCORERS.clear()
        # cold: the held-out calls alone, each corpus on its own desk (as the bench's telephone channel)
        labels, cold = et.readings(held, args.model, scenario, "telephone", args.cache)
        et._SCORERS.clear()
        # warm: each corpus's development calls first, then its held-out calls, on one desk
        _, warm = et.readings(dev + held, args.model, scenario, "telephone", args.cache)
        for desk, rows in (("cold", cold), ("warm", warm)):
            results = {c.call_id: et.results_of(c.call_id, labels, rows[c.call_id]) for c in held}
            for sname, setting in (("the folder's own", DESK_SETTING), ("current defaults", et.current_setting())):
                r = et.summarise(et.score_setting(et.config_of(setting), held, results))
                angry, false = round((r["angry"] or 0) * r["n"]["angry"]), round((r["false"] or 0) * r["n"]["calm"])
                out.append({"scenario": list(scenario), "setting": setting, "desk": desk, "angry_alerted": angry,
                            "angry_calls": r["n"]["angry"], "false_alerts": false, "calm_calls": r["n"]["calm"]})
                lines.append(f"| {scenario[0]:g} s / {scenario[1]:g} s | {sname} | {desk} | {angry} of "
                             f"{r['n']['angry']} | {false} of {r['n']['calm']} |")
                print(lines[-1], flush=True)
    (ROOT / "docs/site-tuning/warm_desk.json").write_text(json.dumps(out, indent=1) + "\n")
    (ROOT / "docs/site-tuning/warm_desk.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
