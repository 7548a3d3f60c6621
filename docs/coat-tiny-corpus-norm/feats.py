"""The readout's input (tower statistics) of every clip of the three emotion corpora, clean and through the
telephone line and a room (README.md).

    python docs/coat-tiny-corpus-norm/feats.py MODEL OUT.npz [DATA_ROOT]

One model's tower for every row (the frozen tower differs between runs only by the per-channel standardisation folded
into its LayerNorm, an affine map that the readout's own standardisation removes). Rows are in each folder's clip
order (the order of ``docs/coat-tiny-readout-weight/dump.py``), clean, telephone, room per clip; the telephone and
room copies of clip i draw from a generator seeded with (corpus index, i, channel index)."""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

CORPORA = ("ravdess", "emovo", "turev")
CHANNELS = ("clean", "telephone", "room")


def main():
    from edge_coat.data.folder import DatasetFolder
    from edge_coat.model.coat import CoatModel
    from edge_coat.train.augment import apply_channel
    from edge_coat.train.data import load_wave
    from edge_coat.train.readout import clip_statistics

    model_dir, out = sys.argv[1:3]
    root = Path(sys.argv[3] if len(sys.argv) > 3 else "../shared/data")
    torch.set_num_threads(1)
    model = CoatModel.from_pretrained(model_dir)
    assert model.config.readout_input == "tower", "expected a model whose readout reads the tower"
    cols = {k: [] for k in ("corpus", "clip", "answer", "speaker", "channel")}
    stats = []
    t0 = time.time()
    for ci, corpus in enumerate(CORPORA):
        clips = DatasetFolder(root / corpus).clips
        for i in range(0, len(clips), 32):
            batch = clips[i:i + 32]
            waves = [load_wave(c, model.max_window_seconds) for c in batch]
            copies = [apply_channel(w, ch, np.random.default_rng([ci, i + j, k]))
                      for j, w in enumerate(waves) for k, ch in enumerate(CHANNELS)]
            stats.append(clip_statistics(model, copies))
            for c in batch:
                for ch in CHANNELS:
                    cols["corpus"].append(corpus)
                    cols["clip"].append(c.file)
                    cols["answer"].append(c.label)
                    cols["speaker"].append(str(c.meta.get("speaker", "")))
                    cols["channel"].append(ch)
            print(f"{corpus} {i + len(batch)}/{len(clips)} {time.time() - t0:.0f}s", flush=True)
    np.savez(out, stats=np.concatenate(stats), **{k: np.array(v) for k, v in cols.items()})


if __name__ == "__main__":
    main()
