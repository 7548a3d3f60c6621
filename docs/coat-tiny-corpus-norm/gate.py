"""Section 6's rule: whole calls, the desk bundle against coat-tiny 1.5, each at the setting the bench chose for it on
its development calls.

    python docs/coat-tiny-corpus-norm/gate.py [DESK_CALLS.json] [OLD_CALLS.json]

Bars, per window setup and channel: held-out angry calls alerted >= 1.5's - 1; false alerts <= 1.5's + 1."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs/coat-tiny-1.6-candidate"))
import gate  # noqa: E402  (its calls(): held-out angry calls alerted and false alerts per setup and channel)


def main():
    new = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs/coat-tiny-corpus-norm/emotion_threshold.json")
    old = Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "docs/coat-tiny-1.5/emotion_threshold.json")
    a, b = gate.calls(new, "chosen"), gate.calls(old, "chosen")
    ok = True
    print("| window setup | channel | desk: angry alerted / false | 1.5: angry alerted / false | bar |")
    print("|---|---|---|---|---|")
    for (scen, ch), (angry, false) in a.items():
        oa, of = b[(scen, ch)]
        passed = angry >= oa - 1 and false <= of + 1
        ok &= passed
        print(f"| {scen} | {ch} | {angry} / {false} | {oa} / {of} | {'passes' if passed else 'FAILS'} |")
    print(f"gate: {'passes' if ok else 'fails'}")


if __name__ == "__main__":
    main()
