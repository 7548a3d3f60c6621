"""Dump, per clip of a run's split, what a readout could read: the audio statistics the 1.4 readout reads, the
thinking latents (supervised-layer states at the thinking positions), the thinking block's own output, and the
LLM's log-likelihoods per task (docs/coat-tiny-thinking-readout/README.md).

    python docs/coat-tiny-thinking-readout/extract.py RUN MODEL OUT.npz [--no-thinking]
        [--light] [--ablate] [--cut-rows S] [--train-channels clean,telephone,room[,excerpt]]

Also the tower output's statistics (``tower_stats``, docs/coat-tiny-tower-readout).

Parts: train (each clip clean, telephone and room, as the readout is fitted), val, held_out (clean), and the
held-out RAVDESS clips through the telephone channel (part held_out_tel), each row tagged with its corpus."""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def loudest(wave: np.ndarray, seconds: float, sr: int = 16000) -> np.ndarray:
    """The ``seconds``-long stretch of ``wave`` with the most energy (the whole wave when shorter)."""
    from edge_coat.train.augment import loudest_stretch

    start = loudest_stretch(wave, int(seconds * sr))
    return wave[start:start + int(seconds * sr)]


def main():
    from edge_coat.model.coat import CoatModel
    from edge_coat.model.readout import window_statistics
    from edge_coat.train.augment import apply_channel
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.data import load_folders, load_wave
    from edge_coat.train.pipeline import dataset_labels, task_specs
    from edge_coat.data.tasks import get_task

    p = argparse.ArgumentParser()
    p.add_argument("run", type=Path)
    p.add_argument("model", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--no-thinking", action="store_true")
    p.add_argument("--aug-seed", type=int, default=0,
                   help="seed of the training rows' room and telephone copies (another draw of the same clips)")
    p.add_argument("--light", action="store_true",
                   help="training rows: only the audio statistics a readout is fitted on (batches of training rows alone skip the LLM: their lp_* are NaN)")
    p.add_argument("--ablate", action="store_true",
                   help="also score every row without the thinking block (lp_<task>_nt), in the same pass")
    p.add_argument("--cut-rows", type=float, default=0.0, metavar="S",
                   help="add each held-out emotion clip cut to its loudest S seconds as parts held_out_cut and "
                        "held_out_tel_cut (RAVDESS through the telephone line), beside the whole clips")
    p.add_argument("--train-channels", default="clean,telephone,room",
                   help="the copies of each training clip the readout is fitted on (excerpt: a short loudest stretch, "
                        "docs/coat-tiny-short-windows)")
    a = p.parse_args()
    torch.set_num_threads(1)
    model = CoatModel.from_pretrained(a.model)
    model.use_readout = False
    cfg = TrainConfig.model_validate_json((a.run / "run_config.json").read_text())
    split = json.loads((a.run / "split.json").read_text())
    tasks = ["emotion", "events"]
    sources = [s for s in cfg.data if s.task in tasks]
    specs = task_specs(sorted({s.task for s in sources}))
    folders = load_folders(sources, {t: dataset_labels(t, spec) for t, spec in specs.items()})
    rows = []  # (part, corpus, task, answer, wave)
    channel = {}  # row index -> the training copy's channel (saved as `channel`, "" for other rows)
    for src, clips in zip(sources, folders):
        corpus = Path(src.path).name
        spec = get_task(src.task)
        for part in ("train", "val", "held_out"):
            keep = set(split[src.path][part])
            for i, c in enumerate(x for x in clips if x.file in keep):
                w = load_wave(c, model.max_window_seconds)
                ans = spec.answer(c.label, c.meta)
                if part == "train":
                    for k, ch in enumerate(a.train_channels.split(",")):
                        channel[len(rows)] = ch
                        rows.append((part, corpus, src.task, ans, apply_channel(w, ch, np.random.default_rng([a.aug_seed, i, k]))))
                else:
                    rows.append((part, corpus, src.task, ans, w))
                    if part == "held_out" and corpus == "ravdess":
                        rows.append(("held_out_tel", corpus, src.task, ans, apply_channel(w, "telephone")))
                    if part == "held_out" and a.cut_rows and src.task == "emotion":
                        cut = loudest(w, a.cut_rows)
                        rows.append(("held_out_cut", corpus, src.task, ans, cut))
                        if corpus == "ravdess":
                            rows.append(("held_out_tel_cut", corpus, src.task, ans, apply_channel(cut, "telephone")))
    print(f"{len(rows)} rows", flush=True)
    use = not a.no_thinking
    stats, tower_stats, lat_mean, lat_std, think_mean, lps = [], [], [], [], [], {t: [] for t in tasks}
    lps_nt = {t: [] for t in tasks}
    n_labels = {t: len(model.config.tasks[t].labels) for t in tasks}
    t0 = time.time()
    bs = 16
    with torch.inference_mode():
        for i in range(0, len(rows), bs):
            waves = [r[4] for r in rows[i:i + bs]]
            hidden, mask = model.encode_tower(waves)  # the tower output, chunked as encode chunks it
            audio = model.adapter.project(hidden)  # = model.encode(waves)
            stats.append(window_statistics(audio, mask).numpy())
            tower_stats.append(window_statistics(hidden, mask).numpy())
            if a.light and all(r[0] == "train" for r in rows[i:i + bs]):
                b, d = len(waves), model.adapter.hidden_size
                for arr in (lat_mean, lat_std, think_mean):
                    arr.append(np.zeros((b, d), np.float32))
                for t in tasks:
                    lps[t].append(np.full((b, n_labels[t]), np.nan, np.float32))
                    lps_nt[t].append(np.full((b, n_labels[t]), np.nan, np.float32))
                if i % (bs * 20) == 0:
                    print(f"{i}/{len(rows)} {time.time() - t0:.0f}s", flush=True)
                continue
            if a.ablate:
                res_nt = model.score_tasks(None, tasks, audio=(audio, mask), thinking=None, use_thinking=False)
                for t in tasks:
                    lps_nt[t].append(res_nt[t].logprobs)
            th = model.think(audio, mask) if use else None
            res = model.score_tasks(None, tasks, audio=(audio, mask), thinking=th, use_thinking=use)
            lat = res[tasks[0]].thinking  # (b, K, D)
            lat_mean.append(lat.mean(1))
            lat_std.append(lat.std(1))
            think_mean.append(th.float().mean(1).numpy() if th is not None else np.zeros_like(lat.mean(1)))
            for t in tasks:
                lps[t].append(res[t].logprobs)
            if i % (bs * 20) == 0:
                print(f"{i}/{len(rows)} {time.time() - t0:.0f}s", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        a.out, part=np.array([r[0] for r in rows]), corpus=np.array([r[1] for r in rows]),
        task=np.array([r[2] for r in rows]), answer=np.array([r[3] for r in rows]),
        channel=np.array([channel.get(i, "") for i in range(len(rows))]),
        stats=np.concatenate(stats), tower_stats=np.concatenate(tower_stats), lat_mean=np.concatenate(lat_mean), lat_std=np.concatenate(lat_std),
        think_mean=np.concatenate(think_mean),
        **{f"lp_{t}": np.concatenate(v) for t, v in lps.items()},
        **({f"lp_{t}_nt": np.concatenate(v) for t, v in lps_nt.items()} if a.ablate else {}),
        labels_emotion=np.array(model.config.tasks["emotion"].labels),
        labels_events=np.array(model.config.tasks["events"].labels),
        temperature=np.array(model.config.temperature))
    print(f"wrote {a.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
