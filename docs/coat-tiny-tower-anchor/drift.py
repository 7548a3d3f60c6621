"""How far a trained model's tower output moved from another model's (the pretrained tower of its stage 1):
mean squared difference per output value on 12 clips per corpus, and its share of the output's variance.

    python docs/coat-tiny-tower-anchor/drift.py BEFORE_MODEL AFTER_MODEL [FACTORY_FOLDER]
"""

import glob
import sys

import numpy as np
import soundfile as sf
import torch

from edge_coat.model.coat import CoatModel


def main(before: str, after: str, factory: str | None = None) -> None:
    a = CoatModel.from_pretrained(before).eval()
    b = CoatModel.from_pretrained(after).eval()
    sets = {"urbansound8k": sorted(glob.glob("../shared/data/urbansound8k/*.wav"))[:24:2],
            "ravdess": sorted(glob.glob("../shared/data/ravdess/*.wav"))[:24:2]}
    if factory:
        sets["factory"] = sorted(glob.glob(f"{factory}/*.wav"))[:12]
    for name, files in sets.items():
        rows = []
        for f in files:
            wave, sr = sf.read(f, dtype="float32")
            wave = wave[: 10 * sr]
            with torch.inference_mode():
                ha, ma = a.encode_tower([wave])
                hb, _ = b.encode_tower([wave])
            x, y = ha[0][ma[0]], hb[0][ma[0]]
            rows.append((float((x - y).pow(2).mean()), float(x.var(0).mean())))
        r = np.array(rows)
        print(f"{name}: mean squared difference {r[:, 0].mean():.3f}, output variance {r[:, 1].mean():.3f}, "
              f"share {np.mean(r[:, 0] / r[:, 1]):.1%}")


if __name__ == "__main__":
    main(*sys.argv[1:])
