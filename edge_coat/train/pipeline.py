"""``edge-coat train`` end to end: data -> split -> teacher targets -> model -> loop -> calibrated model dir."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge_coat.train.config import TrainConfig, config_defaults
from edge_coat.train.data import (
    BatchMaker,
    Example,
    check_groups_used,
    load_folders,
    split_folder,
)
from edge_coat.train.rundir import RunDir, seed_everything
from edge_coat.train.trainer import (
    Trainer,
    add_tower_lora,
    calibrate_temperature,
    merge_tower_lora,
    new_model,
    save_trained,
    write_split,
)

log = logging.getLogger(__name__)


def task_specs(names) -> dict:
    """name -> TaskSpec (prompt + candidate labels) from the project's task definitions."""
    from edge_coat.data import tasks as task_defs
    from edge_coat.model.config import TaskSpec

    out = {}
    for name in names:
        t = task_defs.get_task(name)
        out[name] = TaskSpec(prompt=t.prompt, labels=list(t.labels))
    return out


def expert_specs(config: TrainConfig):
    """(Expert objects, ExpertSpec list) for the configured experts; weights 0 for the ablation."""
    from edge_coat.experts import get_experts
    from edge_coat.model.config import ExpertSpec

    experts = get_experts(config.experts)
    specs = [
        ExpertSpec(name=e.name, dim=e.dim, loss=e.loss, pooled=e.pooled,
                   weight=config.expert_weights.get(e.name, 1.0) if config.expert_losses else 0.0)
        for e in experts
    ]
    return experts, specs


def dataset_labels(task: str, spec) -> list[str]:
    """Labels a folder for ``task`` may carry (``fault`` folders are anomaly folders with a fault column)."""
    from edge_coat.data.tasks import ANOMALY

    return list(ANOMALY) if task == "fault" else list(spec.labels)


def _load_examples(clips, task: str, experts, cache, progress: bool, strides=None) -> list[Example]:
    from tqdm import tqdm

    from edge_coat.data.folder import load_audio
    from edge_coat.data.tasks import get_task

    answer_of = lambda clip: get_task(task).answer(clip.label, clip.meta)  # noqa: E731

    out = []
    for clip in tqdm(clips, disable=not progress, desc=f"targets {task}", leave=False):
        wave = load_audio(clip.path)
        targets = cache.get_all(experts, wave, strides) if experts else {}
        out.append(Example(wave=wave, task=task, answer=answer_of(clip), targets=targets))
    return out


#: Teachers whose target a speed change leaves as it was: with --speed-teachers the perturbed rows reuse the
#: clip's own target (a transcript; its teacher, Whisper's decoder, costs seconds per clip on a CPU).
SPEED_INVARIANT = ("speech_content",)


def _speed_targets(config: TrainConfig, examples, experts, cache) -> None:
    """--speed-teachers: the teachers' targets on each slow/fast variant of every clip of a speed task, in
    ``Example.variant_targets`` (computed once, then read from the teacher cache like any other clip)."""
    from tqdm import tqdm

    from edge_coat.train.augment import SPEEDS, speed_perturb

    run = [e for e in experts if e.name not in SPEED_INVARIANT]
    variants = [(v, SPEEDS[name]) for v, name in enumerate(config.tower_variants) if name in SPEEDS]
    for src, folder in zip(config.data, examples):
        if src.task not in config.speed_tasks:
            continue
        for ex in tqdm(folder, disable=not config.progress, desc=f"speed targets {src.task}", leave=False):
            for v, factor in variants:
                targets = cache.get_all(run, speed_perturb(ex.wave, factor), config.expert_strides)
                targets.update({k: ex.targets[k] for k in SPEED_INVARIANT if k in ex.targets})
                ex.variant_targets[v] = targets


def _tower_batches(model, config: TrainConfig, examples, prompts, experts, rng):
    """Encode every training clip once per tower variant (cached on disk) and draw batches from that."""
    from tqdm import tqdm

    from edge_coat.train.augment import SPEEDS
    from edge_coat.train.standardize import fold_into_tower, standardize, tower_stats
    from edge_coat.train.towercache import (
        TopInputCache,
        TowerBatchMaker,
        TowerCache,
        top_output,
        tower_fingerprint,
    )

    if config.tower_lora_rank:  # the top block trains: cache its input (everything below it stays frozen)
        towers = TopInputCache(model, config.tower_cache, config.tower_variants, gain_db=config.augment.gain_db)
    else:
        towers = TowerCache(model, config.tower_cache, config.tower_variants, gain_db=config.augment.gain_db)
    features = []
    for folder in examples:
        features.append([towers.features(_cap(ex.wave, model.max_window_seconds))
                         for ex in tqdm(folder, disable=not config.progress, desc="tower", leave=False)])
    log.info("tower cache: %d variants computed, the rest read from %s", towers.computed, towers.root)
    if config.standardize_tower and model.config.tower_standardized is None:
        # measured on the training clips as recorded (the clean variant, else the first), each folder once (one
        # folder may train two tasks), then the same map for every variant
        ref = config.tower_variants.index("clean") if "clean" in config.tower_variants else 0
        folders = {str(src.path): folder for src, folder in zip(config.data, features)}
        clean = [f[ref] for folder in folders.values() for f in folder]
        if config.tower_lora_rank:  # the frozen tower's output: the LoRA is not there yet
            clean = [top_output(model, item) for item in clean]
        mean, std = tower_stats(clean)
        fold_into_tower(model, mean, std, tower_fingerprint(model), len(clean))
        if not config.tower_lora_rank:  # the top block's input does not change; its output now runs the fold
            features = [[[standardize(v, model.config.tower_standardized) for v in f] for f in folder]
                        for folder in features]
    return TowerBatchMaker(examples, features, prompts, experts, model.max_seconds,
                           config.augment.crop_seconds, rng, time_mask=config.time_mask,
                           channel_mask=config.channel_mask,
                           perturbed=[v for v, name in enumerate(config.tower_variants) if name in SPEEDS],
                           perturbed_tasks=config.speed_tasks, perturbed_experts=config.speed_experts,
                           blind=[v for v, name in enumerate(config.tower_variants) if name == "excerpt"],
                           blind_tasks=config.excerpt_tasks)


def validation_sets(config: TrainConfig, splits, clip_seconds: float) -> list[tuple[str, str, list, list[str]]]:
    """Each folder's validation clips: (``<folder>:<task>``, task, waves, answers), folders without any left
    out. Used for checkpoint selection (``make_validator``) and temperature calibration."""
    from edge_coat.data.tasks import get_task
    from edge_coat.train.data import load_wave

    out = []
    for src, s in zip(config.data, splits):
        if s.val:
            task = get_task(src.task)
            out.append((f"{Path(src.path).name}:{src.task}", src.task, [load_wave(c, clip_seconds) for c in s.val],
                        [task.answer(c.label, c.meta) for c in s.val]))
    return out


def make_validator(model, config: TrainConfig, sets, batch_size: int = 16):
    """``validate() -> {"score", "<folder>:<task>": UA, ...}`` on ``validation_sets``: each folder's clips
    scored on its task; the score is the mean of the folders' UA (balanced accuracy). A frozen tower's
    output is computed once here (it does not change while training); a trained tower is run on the waves
    each time. Returns None when no folder has validation clips."""
    import torch

    from edge_coat.train.metrics import classification_metrics

    if not sets:
        return None
    tower_trains = config.train_encoder or bool(config.tower_lora_rank)  # run it on the waves each time
    encoded = []
    for name, task, waves, answers in sets:
        batches = []
        for i in range(0, len(waves), batch_size):
            part = waves[i:i + batch_size]
            if tower_trains:
                batches.append(part)
                continue
            with torch.inference_mode():  # no autograd graph: before setup_trainable every weight requires grad
                hidden, mask = model.encode_tower(part)
            batches.append((hidden.clone(), mask.clone()))
        encoded.append((name, task, batches, answers))
    log.info("validation: %s", ", ".join(f"{name} {len(a)}" for name, _, _, a in sets))

    def validate() -> dict[str, float]:
        out = {}
        for name, task, batches, answers in encoded:
            labels = list(model.config.tasks[task].labels)
            predicted = []
            for b in batches:
                if tower_trains:
                    res = model.score_task(b, task)
                else:
                    with torch.inference_mode():
                        audio = (model.adapter.project(b[0].to(model.device)), b[1].to(model.device))
                    res = model.score_task(None, task, audio=audio, readout_frames=b[0])
                predicted += [labels[int(i)] for i in res.logprobs.argmax(-1)]
            out[name] = classification_metrics(answers, predicted, labels)[0]["ua"]
        out["score"] = float(np.mean(list(out.values())))
        return out

    return validate


def make_splits(config: TrainConfig, tasks: dict) -> list:
    """Each training folder's clips (checked against ``tasks``' labels) split into train / val / held out,
    as the run's config says (the same split for the same config: seeded)."""
    folders = load_folders(config.data, {t: dataset_labels(t, spec) for t, spec in tasks.items()})
    return [split_folder(clips, holdout_speakers=config.holdout_speakers, holdout_sources=config.holdout_sources,
                         val_speakers=config.val_speakers, val_fraction=config.val_fraction, seed=config.seed)
            for clips in folders]


def _cap(wave: np.ndarray, seconds: float) -> np.ndarray:
    """The first ``seconds`` of a clip (training crops start at chunk boundaries from its start)."""
    return wave[: int(seconds * 16_000)]


def train(config: TrainConfig, out_dir: str | Path, *, resume: bool = False, tasks: dict | None = None) -> Path:
    """Run a whole training; returns the trained model directory (``OUT/model``)."""
    from edge_coat.experts import TeacherCache
    from edge_coat.model.coat import CoatModel
    from edge_coat.model.config import CoatConfig

    task_names = sorted({s.task for s in config.data})
    experts, specs = expert_specs(config)
    if config.init_model is not None:
        known = CoatConfig.load(config.init_model).tasks
        unknown = [t for t in task_names if t not in known]
        if unknown:
            raise ValueError(f"model {config.init_model} has no task(s) {unknown}; it has {sorted(known)}")
        tasks = {t: known[t] for t in task_names}
    else:
        tasks = tasks or task_specs(task_names)

    # The data is checked (every problem of every folder) before anything is written or built.
    splits = make_splits(config, tasks)
    check_groups_used(splits, config.holdout_speakers, "speaker", "--holdout-speakers")
    check_groups_used(splits, config.holdout_sources, "source", "--holdout-sources")
    check_groups_used(splits, config.val_speakers, "speaker", "--val-speakers")

    run = RunDir(out_dir, config.model_dump(mode="json"), resume=resume, defaults=config_defaults())
    write_split(run, [s.path for s in config.data], splits)
    for src, s in zip(config.data, splits):
        log.info("%s (%s): %d train, %d val, %d held out", src.path, src.task, len(s.train), len(s.val), len(s.held_out))
    seed_everything(config.seed)
    fresh = None
    if config.init_model is not None:
        model = CoatModel.from_pretrained(config.init_model)
        have = {e.name for e in model.config.experts}
        missing = [s.name for s in specs if s.name not in have]
        if missing:
            raise ValueError(f"model {config.init_model} has no head for expert(s) {missing}")
        # keep the model's heads; their loss weights follow this run's config
        model.config = model.config.model_copy(update={"experts": specs})
        model.heads.specs = {s.name: s for s in specs}
    else:
        init_dir = run.root / "init"
        if resume and (init_dir / "coat_config.json").is_file():
            model = CoatModel.from_pretrained(init_dir)
        else:
            model = new_model(config, tasks, specs)
            fresh = init_dir  # saved once the tower's standardisation (measured on the training clips) is folded in

    model.config.answer_weight = config.answer_weight
    cache = TeacherCache(config.teacher_cache)
    use_experts = experts if config.expert_losses else []
    examples = [_load_examples(s.train, src.task, use_experts, cache, config.progress, config.expert_strides)
                for src, s in zip(config.data, splits)]
    if config.speed_teachers and use_experts:
        _speed_targets(config, examples, use_experts, cache)
    rng = np.random.default_rng(config.seed)
    prompts = {t: spec.prompt for t, spec in tasks.items()}
    if config.tower_variants:
        make_batch = _tower_batches(model, config, examples, prompts, use_experts, rng)
    else:
        make_batch = BatchMaker(examples, prompts, use_experts, model.max_seconds, config.augment, rng)
    if fresh is not None:
        model.save_pretrained(fresh)
    if config.tower_lora_rank:  # after the fresh model is saved: its tower has plain weights
        add_tower_lora(model, config.tower_lora_rank, config.tower_lora_alpha)
    # validation clips held through training only when they select the checkpoint
    val_sets = validation_sets(config, splits, model.clip_seconds) if config.val_every else None
    validate = make_validator(model, config, val_sets) if val_sets is not None else None
    trainer = Trainer(model, config, run, make_batch, rng, validate=validate)
    if resume and run.latest_checkpoint() is not None:
        trainer.resume()
    trainer.train()
    if config.tower_lora_rank:  # the served tower has plain weights; calibration and readout see that tower
        log.info("tower LoRA merged into %d linears of the top block", merge_tower_lora(model))

    if val_sets is None:
        val_sets = validation_sets(config, splits, model.clip_seconds)
    val = {}
    for _, task, waves, answers in val_sets:
        val.setdefault(task, []).extend(zip(waves, answers))
    calibration = calibrate_temperature(model, val)
    log.info("temperature %.3f (%s validation clips)", calibration["temperature"], calibration["n"])
    if config.readout_c > 0:
        _fit_readout(model, config, splits, run, val)
    return save_trained(model, run, calibration)


def _fit_readout(model, config: TrainConfig, splits, run: RunDir, val: dict) -> None:
    """The answer readout of the readout tasks the run trained, on their training clips, and the fused scores'
    temperature on the validation clips ``val`` (task -> (wave, answer)); report in RUN/readout.json."""
    import json

    from edge_coat.train.data import group_of
    from edge_coat.train.readout import (
        DEFAULT_TASKS,
        DESK_WINDOWS,
        calibrate_readout_temperature,
        channel_groups,
        fit_readout,
        labelled_waves,
        with_channels,
    )

    items: dict[str, list] = {}
    groups: dict[str, list[str]] = {}  # each clip's speaker (relative readouts), in the order of items and val
    val_groups: dict[str, list[str]] = {}
    for src, s in zip(config.data, splits):
        desk = src.path if config.readout_baseline == "desk" else None  # a desk's group: the whole folder
        if src.task in DEFAULT_TASKS:
            items.setdefault(src.task, []).extend(labelled_waves(s.train, src.task, model.max_window_seconds))
            groups.setdefault(src.task, []).extend(desk or f"{src.path}/{group_of(c)}" for c in s.train)
        if s.val:  # validation_sets' order, which ``val`` follows
            val_groups.setdefault(src.task, []).extend(desk or f"{src.path}/{group_of(c)}" for c in s.val)
    items = {t: pairs for t, pairs in items.items() if len({a for _, a in pairs}) >= 2}
    if not items:
        log.info("no readout: no emotion or events training clips of two labels or more")
        return
    if config.readout_baseline == "desk" and config.readout_relative:
        model.config.readout_baseline_windows = DESK_WINDOWS  # a desk's warm-up, not a caller's last windows
    report = fit_readout(model, with_channels(items, config.readout_channels), config.readout_c,
                         source=config.readout_input, relative=config.readout_relative,
                         groups={t: channel_groups(g, config.readout_channels) for t, g in groups.items()},
                         with_absolute=config.readout_with_absolute, baseline=config.readout_baseline)
    report["temperature"] = calibrate_readout_temperature(model, {t: v for t, v in val.items() if t in report},
                                                          groups=val_groups)
    report["channels"] = list(config.readout_channels)
    (run.root / "readout.json").write_text(json.dumps(report, indent=1) + "\n")
