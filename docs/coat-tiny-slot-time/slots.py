"""How different are a model's K thinking vectors? (docs/coat-tiny-slot-time/README.md)

    python docs/coat-tiny-slot-time/slots.py MODEL DATA_FOLDER [--n 120]

For the first N clips of a labelled folder (sorted by file), the thinking block's output (``CoatModel.think``, the K
vectors placed after the audio) and the LLM's states at the thinking positions (``ScoreResult.thinking``, the
latents the expert heads read). For each: the spread between the K slots of one clip (the standard deviation over
the slots, averaged over channels and clips) against the spread of the slot-averaged vector between clips (over
clips, averaged over channels). A ratio near 0 means the K vectors are copies of one vector."""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def spread(x: np.ndarray) -> dict:
    """x (N, K, D) -> between-slot and between-clip spreads and their ratio."""
    within = float(x.std(1).mean())
    between = float(x.mean(1).std(0).mean())
    return {"between_slots": within, "between_clips": between, "ratio": within / max(between, 1e-12)}


def main():
    from edge_coat.data.folder import DatasetFolder
    from edge_coat.model.coat import CoatModel
    from edge_coat.train.evaluate import _waves

    p = argparse.ArgumentParser()
    p.add_argument("model", type=Path)
    p.add_argument("data", type=Path)
    p.add_argument("--n", type=int, default=120)
    a = p.parse_args()
    torch.set_num_threads(1)
    model = CoatModel.from_pretrained(a.model)
    model.use_readout = False  # the latents do not depend on the readout
    clips = sorted(DatasetFolder(a.data).clips, key=lambda c: c.file)[:a.n]
    waves = _waves(clips, model.clip_seconds, None)
    block, latents = [], []
    with torch.inference_mode():
        for i in range(0, len(waves), 8):
            audio, mask = model.encode(waves[i:i + 8])
            th = model.think(audio, mask)
            block.append(th.float().numpy())
            res = model.score_tasks(None, ["emotion"], audio=(audio, mask), thinking=th, use_thinking=True)
            latents.append(res["emotion"].thinking)
    out = {"model": str(a.model), "data": str(a.data), "clips": len(clips),
           "block_output": spread(np.concatenate(block)), "llm_latents": spread(np.concatenate(latents))}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
