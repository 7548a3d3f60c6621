"""Fit the answer readout (``edge_coat.model.readout``) of a trained model on its run's training clips.

``fit_readout`` computes each training clip's audio statistics with the model's own encoder and fits a
multinomial logistic regression per task (scikit-learn's: a convex L2-regularised fit whose solver and
convergence checks are well kept; nothing here needs more). The feature standardisation is folded into the
weights, so serving is one matrix product. The training run calls it after the temperature calibration
(``edge-coat train --readout-c``); for a model trained before, or to refit:

    python -m edge_coat.train.readout RUN            # RUN/model gets the readout, RUN/readout.json the report
    python -m edge_coat.train.readout RUN --out DIR/model   # a copy with the readout, DIR/readout.json

which reads the run's own split (``RUN/split.json``) and data folders (``RUN/run_config.json``): the readout is
fitted on the training clips of the tasks asked (default emotion and events), the fused temperature on the
validation clips (``calibrate_readout_temperature``); held-out clips are never read.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

#: the readout's L2 strength: C of LogisticRegression (chosen on the card split and fold A, docs/coat-tiny-readout)
DEFAULT_C = 0.1
DEFAULT_TASKS = ("emotion", "events")
#: what the readout reads (``coat_config.readout_input``): the tower's output before the projector scored better than
#: the projected embeds on folds B and C by a rule written before them (docs/coat-tiny-tower-readout)
DEFAULT_INPUT = "tower"
READOUT_INPUTS = ("audio", "tower")
#: the channel copies of each training clip the readout is fitted on: the LLM's own training channels (a readout
#: fitted on clean clips alone lost 3.5 points on the telephone copy, docs/coat-tiny-readout)
DEFAULT_CHANNELS = ("clean", "telephone", "room")
#: draws of those copies fitted on together: one (1.5); see docs/coat-tiny-readout-both
DEFAULT_DRAWS = 1
#: a desk baseline's warm-up (``readout_baseline_windows`` of a "desk" readout): the heard mean weighs as this many
#: windows against the training mean; a corpus's mean over 50 random clips did as well as over all of them
#: (docs/coat-tiny-corpus-norm)
DESK_WINDOWS = 64


def with_channels(items: dict[str, list[tuple[np.ndarray, str]]], channels: Sequence[str] = DEFAULT_CHANNELS,
                  seed: int = 0, draws: int = 1) -> dict[str, list[tuple[np.ndarray, str]]]:
    """Each (wave, answer) pair once per channel and draw (``edge_coat.train.augment.apply_channel``; the room and
    telephone copies of draw d draw from a generator seeded by (seed + d, clip index, channel index), so a refit is
    reproducible). Draw 0 is the draw ``seed`` alone gives. A clean copy is the clip's own array, repeated once per
    draw (``clip_statistics`` encodes it once), so every draw keeps the clean-to-copy ratio of one draw."""
    from edge_coat.train.augment import CHANNELS, apply_channel

    unknown = [c for c in channels if c not in CHANNELS]
    if unknown or not channels:
        raise ValueError(f"readout channels {list(channels)}: expected a non-empty list of {list(CHANNELS)}")
    if draws < 1:
        raise ValueError(f"readout draws must be >= 1, got {draws}")
    out = {}
    for task, pairs in items.items():
        out[task] = [(apply_channel(w, ch, np.random.default_rng([seed + d, i, k])), a)
                     for d in range(draws) for i, (w, a) in enumerate(pairs) for k, ch in enumerate(channels)]
    return out


@torch.inference_mode()
def clip_statistics(model, waves: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """(N, 2F) float32 ``window_statistics`` of what the model's readout reads in each wave: the audio embeddings
    (``model.encode``, F = D) or, with ``readout_input`` 'tower', the tower's output (``model.encode_tower``, F = Da)."""
    from edge_coat.model.readout import window_statistics

    tower = model.config.readout_input == "tower"
    encode = model.encode_tower if tower else model.encode
    # one array passed several times (a clean copy in every draw, with_channels) is encoded once
    first: dict[int, int] = {}
    index = [first.setdefault(id(w), len(first)) for w in waves]
    unique = list({id(w): w for w in waves}.values())
    out = []
    for i in range(0, len(unique), batch_size):
        audio, mask = encode(list(unique[i:i + batch_size]))
        out.append(window_statistics(audio, mask).cpu().numpy())
    dim = model.adapter.tower_dim if tower else model.adapter.audio_dim
    return np.concatenate(out)[index] if out else np.zeros((0, 2 * dim), np.float32)


def baseline_sizes(rows: int, windows: int) -> np.ndarray:
    """For each of ``rows`` rows, a number of heard windows drawn uniformly from 0..``windows`` (a generator seeded
    with the row's index): the baselines of every size an absolute+relative readout is fitted on."""
    return np.array([np.random.default_rng([r, 1]).integers(0, windows + 1) for r in range(rows)], dtype=int)


def group_contexts(stats: np.ndarray, groups: Sequence[str], windows: int,
                   eligible: Sequence[bool] | None = None, sizes: Sequence[int] | None = None) -> list[np.ndarray]:
    """For each row of ``stats`` (N, F), the statistics of up to ``windows`` *other* rows of its group (a speaker on one
    channel), drawn without replacement by a generator seeded with the row's index: the earlier windows a stream
    would have heard of the same speaker. What a relative readout task is fitted, calibrated and evaluated with.
    ``eligible``: only these rows may be drawn (e.g. the speaker's calm clips: a caller heard calm first).
    ``sizes``: per row, at most that many instead of ``windows`` (``baseline_sizes``)."""
    groups = np.asarray(groups)
    if len(groups) != len(stats):
        raise ValueError(f"expected one group per row ({len(stats)}), got {len(groups)}")
    ok = np.ones(len(groups), bool) if eligible is None else np.asarray(eligible, bool)
    members = {g: np.flatnonzero((groups == g) & ok) for g in np.unique(groups)}
    out = []
    for r, g in enumerate(groups):
        pool = members[g][members[g] != r]
        k = windows if sizes is None else int(sizes[r])
        if len(pool) > k:
            pool = np.random.default_rng(r).choice(pool, k, replace=False)
        out.append(stats[pool])
    return out


def relative_statistics(stats: np.ndarray, groups: Sequence[str], windows: int,
                        center: np.ndarray, sizes: Sequence[int] | None = None) -> np.ndarray:
    """``stats`` (N, F) less each row's baseline from ``group_contexts`` (``stream_baseline``, ``center`` filling
    the windows a small group lacks, or that ``sizes`` leaves unheard): a relative readout task's training rows."""
    from edge_coat.model.readout import stream_baseline

    c = torch.as_tensor(center, dtype=torch.float64)
    base = [stream_baseline(torch.as_tensor(ctx, dtype=torch.float64), c, windows).numpy()
            for ctx in group_contexts(stats, groups, windows, sizes=sizes)]
    return stats - np.stack(base).astype(stats.dtype) if len(base) else stats


def desk_contexts(stats: np.ndarray, groups: Sequence[str], sizes: Sequence[int] | None = None) -> list:
    """For each row of ``stats`` (N, F), the mean of every *other* row of its group (a corpus folder on one channel:
    what a desk on that line has heard of other callers) as a ``HeardMean`` counting them, or ``sizes[r]`` windows
    when given (a desk still warming up). What a "desk" readout task is fitted, calibrated and evaluated with."""
    from edge_coat.model.readout import HeardMean

    groups = np.asarray(groups)
    if len(groups) != len(stats):
        raise ValueError(f"expected one group per row ({len(stats)}), got {len(groups)}")
    x = np.asarray(stats, dtype=np.float64)
    out: list = [None] * len(x)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        total = x[rows].sum(0)
        for r in rows:
            others = len(rows) - 1
            mean = (total - x[r]) / others if others else np.zeros(x.shape[1])
            count = others if sizes is None else min(int(sizes[r]), others)
            out[r] = HeardMean(mean.astype(np.float32), count)
    return out


def desk_statistics(stats: np.ndarray, groups: Sequence[str], windows: int, center: np.ndarray,
                    sizes: Sequence[int] | None = None) -> np.ndarray:
    """``stats`` (N, F) less each row's desk baseline (``desk_contexts`` through ``stream_baseline``, ``center``
    filling a desk's warm-up): a "desk" readout task's training rows."""
    from edge_coat.model.readout import stream_baseline

    c = torch.as_tensor(center, dtype=torch.float64)
    base = [stream_baseline(ctx, c, windows).numpy() for ctx in desk_contexts(stats, groups, sizes)]
    return stats - np.stack(base).astype(stats.dtype) if len(base) else stats


def fit_readout(model, items: dict[str, list[tuple[np.ndarray, str]]], c: float = DEFAULT_C,
                batch_size: int = 16, source: str = DEFAULT_INPUT, relative: Sequence[str] = (),
                groups: dict[str, Sequence[str]] | None = None, with_absolute: bool = False,
                baseline: str = "speaker") -> dict:
    """Fit and install a readout for each task of ``items`` (task -> (wave, answer) training pairs).

    A task needs at least two answers among its pairs; its labels are the answers seen (a subset of the
    task's labels, which the readout then leaves to the LLM alone). ``source``: what it reads ('audio' or
    'tower', ``CoatModel.set_readout_input``; switching drops the model's readouts of the other input).
    ``relative``: tasks fitted on each clip's statistics less its speaker's baseline (``relative_statistics``, the
    model's ``readout_baseline_windows``), ``groups[task]`` naming each pair's speaker-and-channel group.
    ``with_absolute``: they read ``[x, x - b]``, each row's baseline of a random size (``baseline_sizes``).
    ``baseline``: "speaker" (the above) or "desk": each row less the mean of the other rows of its group, which is then
    a corpus folder on one channel (``desk_statistics``). Updates ``model.readout`` and ``model.config.readout``;
    returns a report per task (clips, labels, input, relative or not, training accuracy)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if c <= 0:
        raise ValueError(f"readout C must be > 0, got {c}")
    from edge_coat.model.readout import BASELINE_KINDS

    if baseline not in BASELINE_KINDS:
        raise ValueError(f"readout baseline must be one of {list(BASELINE_KINDS)}, got {baseline!r}")
    if source == "tower" and not model.adapter.supports_tower:  # only Qwen2-Audio exposes it (adapters.py)
        log.info("readout: the %s family does not expose its tower's output; reading the audio embeds",
                 model.config.family)
        source = "audio"
    model.set_readout_input(source)
    missing = [t for t in relative if t in items and (groups is None or t not in groups)]
    if missing:
        raise ValueError(f"relative readout tasks {missing} need each clip's speaker group")
    if bool(with_absolute) != model.readout.with_absolute:  # another width for relative tasks: refit them all
        for task in [t for t in model.readout.relative if t not in items]:
            model.readout.drop(task)
            model.config.readout = {k: v for k, v in model.config.readout.items() if k != task}
        model.readout.with_absolute = model.config.readout_with_absolute = bool(with_absolute)
    report = {}
    for task, pairs in items.items():
        if task not in model.config.tasks:
            raise ValueError(f"no task {task!r} in this model; it has {sorted(model.config.tasks)}")
        answers = [a for _, a in pairs]
        known = set(model.config.tasks[task].labels)
        unknown = sorted(set(answers) - known)
        if unknown:
            raise ValueError(f"task {task!r}: answers {unknown} are not among its labels {sorted(known)}")
        if len(set(answers)) < 2:
            raise ValueError(f"task {task!r}: a readout needs clips of at least two labels, got {sorted(set(answers))}")
        # a report's "clips" counts the rows fitted (channel copies included)
        x = clip_statistics(model, [w for w, _ in pairs], batch_size)  # (N, 2D)
        center = None
        if task in relative:
            center = x.mean(0)  # the baseline of a stream not yet heard
            n = model.config.readout_baseline_windows
            sizes = baseline_sizes(len(x), n) if with_absolute else None
            statistics = desk_statistics if baseline == "desk" else relative_statistics
            rel = statistics(x, groups[task], n, center, sizes)
            x = np.concatenate([x, rel], 1) if with_absolute else rel
        scaler = StandardScaler().fit(x)
        clf = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(x), answers)
        coef, intercept = clf.coef_, clf.intercept_
        if coef.shape[0] == 1:  # two labels: scikit-learn keeps the logit of the second; softmax over [0, logit]
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
        weight = coef / scaler.scale_[None]  # (C, 2D): the standardisation folded in
        bias = intercept - weight @ scaler.mean_  # (C,)
        labels = [str(v) for v in clf.classes_]
        dev = model.readout.tasks[task].weight.device if task in model.readout.tasks else model.device
        model.readout.set_task(task, labels, torch.tensor(weight, dtype=torch.float32, device=dev),
                               torch.tensor(bias, dtype=torch.float32, device=dev),
                               None if center is None else torch.tensor(center, dtype=torch.float32, device=dev))
        model.config.readout = {**model.config.readout, task: labels}
        model.config.readout_relative = model.readout.relative
        if center is not None:
            model.config.readout_baseline = baseline
        report[task] = {"clips": len(pairs), "labels": labels, "c": c, "input": source, "relative": center is not None,
                        **({"baseline": baseline} if center is not None else {}),
                        "with_absolute": center is not None and bool(with_absolute),
                        "train_accuracy": float(clf.score(scaler.transform(x), answers))}
        log.info("readout %s: %d clips, %d labels, training accuracy %.3f", task, len(pairs), len(labels),
                 report[task]["train_accuracy"])
    return report


def calibrate_readout_temperature(model, val: dict[str, list[tuple[np.ndarray, str]]], batch_size: int = 16,
                                  groups: dict[str, Sequence[str]] | None = None) -> dict:
    """Fit ``model.config.readout_temperature`` on ``val`` (task -> (wave, answer)), the tasks the readout scores:
    the NLL-optimal temperature of the fused scores ``logprobs / T + log p_readout``. A relative task's clips are
    scored with a baseline of other clips of their group (``groups[task]``: ``group_contexts``, or ``desk_contexts``
    for a desk readout; without groups, none). Sets it (1.0 when there is nothing to fit) and returns
    ``trainer.fit_temperature``'s report."""
    from edge_coat.train.trainer import fit_temperature

    logits, truth = [], []
    for task, items in val.items():
        labels = model.readout.labels.get(task)  # scored over the readout's own labels (all of the task's, usually)
        if labels is None:
            continue
        keep = [i for i, (_, a) in enumerate(items) if a in labels]
        contexts = None
        if model.readout.is_relative(task) and groups is not None and task in groups:
            g = [groups[task][i] for i in keep]
            n = model.config.readout_baseline_windows
            sizes = baseline_sizes(len(keep), n) if model.readout.with_absolute else None
            stats = clip_statistics(model, [items[i][0] for i in keep], batch_size)
            contexts = (desk_contexts(stats, g, sizes) if model.config.readout_baseline == "desk"
                        else group_contexts(stats, g, n, sizes=sizes))
        items = [items[i] for i in keep]
        prompt = model.config.tasks[task].prompt
        for i in range(0, len(items), batch_size):
            chunk = items[i:i + batch_size]
            res = model.score_labels([w for w, _ in chunk], prompt, labels, task=task,
                                     readout_context=None if contexts is None else contexts[i:i + batch_size])
            if res.readout is None:  # use_readout off: nothing fused to calibrate
                continue
            fused = res.logprobs / model.config.temperature + res.readout  # (b, C)
            logits += [row.astype(np.float64) for row in fused]
            truth += [labels.index(a) for _, a in chunk]
    report = fit_temperature(logits, truth)
    model.config.readout_temperature = float(report["temperature"])
    log.info("readout temperature %.3f (%d validation clips)", report["temperature"], report["n"])
    return report


def labelled_waves(clips, task: str, max_seconds: float) -> list[tuple[np.ndarray, str]]:
    """(wave, answer) of each clip for ``task``: the audio as ``load_wave`` reads it, the task's answer to its label."""
    from edge_coat.data.tasks import get_task
    from edge_coat.train.data import load_wave

    spec = get_task(task)
    return [(load_wave(c, max_seconds), spec.answer(c.label, c.meta)) for c in clips]


def check_run(run: Path) -> Path:
    """``run`` if it holds a finished training run's config and split, else FileNotFoundError naming the file."""
    run = Path(run)
    for name in ("run_config.json", "split.json"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run / name} not found: expected a training run folder (edge-coat train --out)")
    return run


def channel_groups(groups: Sequence[str], channels: Sequence[str] = DEFAULT_CHANNELS, draws: int = 1) -> list[str]:
    """Each clip's group once per channel and draw, in ``with_channels``' order, the channel joined to it: a relative
    readout's baseline comes from the same speaker heard through the same line."""
    return [f"{g}|{ch}" for _ in range(draws) for g in groups for ch in channels]


def training_items(run: Path, tasks: Sequence[str], max_seconds: float, part: str = "train",
                   groups: dict[str, list[str]] | None = None,
                   group_by: str = "speaker") -> dict[str, list[tuple[np.ndarray, str]]]:
    """The (wave, answer) pairs of one part of a finished run's split ("train" or "val"), per task: the folders of
    its ``run_config.json`` and the file lists of its ``split.json``. ``groups``, when given, gets per task each
    pair's group: its folder and ``edge_coat.train.data.group_of`` (the speaker, or the source recording), or with
    ``group_by`` "folder" its folder alone (a desk baseline's group)."""
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.data import group_of, load_folders
    from edge_coat.train.pipeline import dataset_labels, task_specs

    run = check_run(run)
    config = TrainConfig.model_validate_json((run / "run_config.json").read_text())
    split = json.loads((run / "split.json").read_text())
    sources = [s for s in config.data if s.task in tasks]
    if not sources:
        raise ValueError(f"run {run} trained no task of {list(tasks)} (it has {sorted({s.task for s in config.data})})")
    specs = task_specs(sorted({s.task for s in sources}))
    folders = load_folders(sources, {t: dataset_labels(t, spec) for t, spec in specs.items()})
    items: dict[str, list] = {}
    for src, clips in zip(sources, folders):
        files = split.get(src.path, {}).get(part)
        if files is None:
            raise ValueError(f"{run / 'split.json'} has no {part!r} list for {src.path}")
        keep = set(files)
        kept = [c for c in clips if c.file in keep]
        items.setdefault(src.task, []).extend(labelled_waves(kept, src.task, max_seconds))
        if groups is not None:
            groups.setdefault(src.task, []).extend(
                src.path if group_by == "folder" else f"{src.path}/{group_of(c)}" for c in kept)
    return items


def fit_run_readout(model, run: Path, tasks: Sequence[str], c: float = DEFAULT_C,
                    channels: Sequence[str] = DEFAULT_CHANNELS, source: str = DEFAULT_INPUT, seed: int = 0,
                    draws: int = 1, relative: Sequence[str] = (), with_absolute: bool = False,
                    baseline: str = "speaker") -> dict:
    """Fit ``model``'s readout on the training clips of a finished run folder (``training_items``, each clip through
    ``channels``) for those of ``tasks`` the model and the run have, and its fused temperature on the run's validation
    clips. ``seed``, ``draws``: the draws of the channel copies (``with_channels``). ``relative``: tasks read relative to a
    speaker baseline (``fit_readout``), fitted and calibrated with the split's speakers. A task whose clips carry fewer than two answers
    is left to the LLM alone. Returns the report
    (per task, plus "temperature"); ValueError when no task can have a readout."""
    run = check_run(run)
    from edge_coat.train.config import TrainConfig

    trained = {s.task for s in TrainConfig.model_validate_json((run / "run_config.json").read_text()).data}
    asked = [t for t in tasks if t in model.config.tasks and t in trained]
    groups: dict[str, list[str]] = {}
    group_by = "folder" if baseline == "desk" else "speaker"
    items = training_items(run, asked, model.max_window_seconds, groups=groups, group_by=group_by) if asked else {}
    items = {t: pairs for t, pairs in items.items() if len({a for _, a in pairs}) >= 2}
    if not items:
        raise ValueError(f"{run}: no training clips of two answers or more for a readout of {list(tasks)}")
    unknown = [t for t in relative if t not in model.config.tasks]
    if unknown:
        raise ValueError(f"relative readout tasks {unknown}: this model has {sorted(model.config.tasks)}")
    report = fit_readout(model, with_channels(items, channels, seed, draws), c, source=source, relative=relative,
                         groups={t: channel_groups(g, channels, draws) for t, g in groups.items()},
                         with_absolute=with_absolute, baseline=baseline)
    val_groups: dict[str, list[str]] = {}
    tasks_fitted = [t for t in report]
    val = training_items(run, tasks_fitted, model.max_window_seconds, part="val", groups=val_groups,
                         group_by=group_by)
    report["temperature"] = calibrate_readout_temperature(model, val, groups=val_groups)
    report["seed"], report["draws"], report["channels"] = seed, draws, list(channels)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    from edge_coat.model.coat import CoatModel

    p = argparse.ArgumentParser(prog="python -m edge_coat.train.readout", description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a finished training run folder (RUN/model, run_config.json, split.json)")
    p.add_argument("--model", type=Path, default=None, help="model folder to read (default RUN/model)")
    p.add_argument("--out", type=Path, default=None, help="where to write the model with its readout (default: --model)")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma list of tasks (default %(default)s)")
    p.add_argument("--c", type=float, default=DEFAULT_C, help="inverse L2 strength (default %(default)s)")
    p.add_argument("--input", choices=READOUT_INPUTS, default=DEFAULT_INPUT,
                   help="what the readout reads: the tower's output or the projected audio embeds (default %(default)s)")
    p.add_argument("--channels", default=",".join(DEFAULT_CHANNELS),
                   help="channel copies of each training clip to fit on (default %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="draw of the telephone and room copies (default %(default)s; another seed shows the fit's noise)")
    p.add_argument("--draws", type=int, default=DEFAULT_DRAWS,
                   help="draws of the telephone and room copies fitted on together, seeds SEED.. SEED+N-1 "
                        "(default %(default)s)")
    p.add_argument("--relative", default="",
                   help="comma list of tasks read relative to the stream's baseline (e.g. emotion; default none)")
    p.add_argument("--with-absolute", action="store_true",
                   help="the relative tasks read the statistics beside their difference from the baseline, fitted on "
                        "baselines of every size (docs/coat-tiny-speaker-baseline)")
    p.add_argument("--baseline", choices=("speaker", "desk"), default="speaker",
                   help="whose windows make the relative tasks' baseline: the caller's own earlier ones, or the desk's "
                        "long-run mean over every caller (docs/coat-tiny-corpus-norm; default %(default)s)")
    p.add_argument("--baseline-windows", type=int, default=None,
                   help=f"earlier windows in a stream's baseline, or a desk's warm-up (default: the model's, 8; "
                        f"{DESK_WINDOWS} with --baseline desk)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from edge_coat.errors import quiet_progress_bars

    quiet_progress_bars()
    torch.set_num_threads(args.threads)
    src = args.model or args.run / "model"
    out = args.out or src
    try:
        check_run(args.run)
        if not (src / "coat_config.json").is_file():
            raise FileNotFoundError(f"no model in {src} (coat_config.json missing); pass --model DIR")
        model = CoatModel.from_pretrained(src)
        relative = [t for t in args.relative.split(",") if t]
        if args.baseline == "desk" and not relative:
            raise ValueError("--baseline desk needs --relative TASKS (e.g. --relative emotion)")
        if args.baseline_windows is not None:
            if args.baseline_windows < 1:
                raise ValueError(f"--baseline-windows must be >= 1, got {args.baseline_windows}")
            model.config.readout_baseline_windows = args.baseline_windows
        elif args.baseline == "desk":
            model.config.readout_baseline_windows = DESK_WINDOWS
        report = fit_run_readout(model, args.run, [t for t in args.tasks.split(",") if t], args.c,
                                 [c for c in args.channels.split(",") if c], source=args.input, seed=args.seed,
                                 draws=args.draws, relative=relative, with_absolute=args.with_absolute,
                                 baseline=args.baseline)
    except (OSError, ValueError) as exc:
        print(f"edge_coat.train.readout: {exc}", file=sys.stderr)
        return 2
    if out != src:
        model.save_pretrained(out)
    else:
        model.save_pretrained(out, base=False)
    report_dir = args.out.parent if args.out is not None else args.run
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "readout.json").write_text(json.dumps(report, indent=1) + "\n")
    tasks = [t for t, v in report.items() if isinstance(v, dict) and "clips" in v]  # the fitted tasks' entries
    relative = [t for t in tasks if report[t].get("relative")]
    how = "beside its difference from" if args.with_absolute else "relative to"
    whose = "the desk's long-run" if args.baseline == "desk" else "the speaker's"
    rel = f" ({', '.join(relative)} {how} {whose} baseline)" if relative else ""
    print(f"readout on the {args.input} statistics fitted for {', '.join(tasks)}{rel} (fused temperature "
          f"{model.config.readout_temperature:.3f}); model written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
