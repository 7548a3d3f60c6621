"""Does the thinking block lose on short windows, whatever the language? (README.md here, section 1)

    python docs/coat-tiny-short-windows/short.py NAME=DUMP [...]

DUMP: ``extract.py RUN MODEL DUMP --light --ablate --cut-rows 1.0`` (with ``--train-channels ...,excerpt`` its
excerpt rows are left out: the shipped recipe's readout). Scored by rule.scores: the readout and fused temperature
fitted on the dump's training and validation rows, as analyze.evaluate fits them. Prints, per model, each emotion
figure on whole clips and on cuts, with the block and without, and the block's part (points)."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rule import EMOTION, scores, without_channel  # noqa: E402


def main():
    print("| model | output | windows | " + " | ".join(f"{n} with / without / part" for n in EMOTION) + " |")
    print("|---|---|---|" + "---|" * len(EMOTION))
    for arg in sys.argv[1:]:
        name, path = arg.split("=", 1)
        sc = scores(without_channel(dict(np.load(path)), "excerpt"))
        for out in ("fused", "LLM alone"):
            for windows in ("whole", "cut"):
                w, wo = sc[(out, windows, "with")], sc[(out, windows, "without")]
                print(f"| {name} | {out} | {windows} | " + " | ".join(
                    f"{w[n]:.3f} / {wo[n]:.3f} / {100 * (w[n] - wo[n]):+.1f}" for n in EMOTION) + " |")


if __name__ == "__main__":
    main()
