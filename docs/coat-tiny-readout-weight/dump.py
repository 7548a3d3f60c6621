"""Per clip of a held-out corpus, the LOCO model's LLM answer and two readouts' opinions (README.md).

    python docs/coat-tiny-readout-weight/dump.py MODEL_A MODEL_B DATA OUT.npz

MODEL_A: a leave-one-corpus-out model with a readout (its LLM scores every clip, its readout gives ``ro_a``);
MODEL_B: the same model with another readout (only its readout is used, ``ro_b``, on MODEL_A's window statistics).
DATA: the held-out corpus folder; every clip, scored over the corpus's own labels (as ``edge-coat eval --label-map``
restricts them). Writes ``lp`` (the LLM's candidate log-likelihoods divided by its calibrated temperature), ``ro_a``,
``ro_b``, ``answer``, ``labels``."""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main():
    from edge_coat.data.folder import DatasetFolder
    from edge_coat.model.coat import CoatModel
    from edge_coat.train.data import load_wave

    a, b, data, out = sys.argv[1:5]
    torch.set_num_threads(1)
    model, other = CoatModel.from_pretrained(a), CoatModel.from_pretrained(b)
    spec = model.config.tasks["emotion"]
    folder = DatasetFolder(data)
    labels = [x for x in spec.labels if x in {c.label for c in folder.clips}]
    lp, ro_a, ro_b, answer = [], [], [], []
    for i in range(0, len(folder.clips), 16):
        clips = folder.clips[i:i + 16]
        waves = [load_wave(c, model.max_window_seconds) for c in clips]
        r = model.score_labels(waves, spec.prompt, labels, task="emotion")
        feats = torch.from_numpy(r.features)
        lp.append(r.logprobs / model.config.temperature)
        ro_a.append(r.readout)
        with torch.inference_mode():
            ro_b.append(other.readout.log_probs("emotion", feats, labels).cpu().numpy())
        answer += [c.label for c in clips]
        print(f"{i + len(clips)}/{len(folder.clips)}", flush=True)
    np.savez(out, lp=np.concatenate(lp), ro_a=np.concatenate(ro_a), ro_b=np.concatenate(ro_b),
             answer=np.array(answer), labels=np.array(labels))


if __name__ == "__main__":
    main()
