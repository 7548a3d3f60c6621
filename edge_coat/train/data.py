"""Training data: dataset folders with their tasks, the held-out split, teacher targets and batches.

Splits are by group, never by clip, so a held-out speaker or source recording is never heard in
training: a clip's group is its ``speaker`` column (RAVDESS), else its UrbanSound8K source
recording (the fsID of ``fsID-classID-occurrenceID-sliceID.wav``), else the clip itself (generated
data, whose held-out clips come from separate seeds, i.e. a separate folder).

Three disjoint parts per folder: ``held_out`` (the reported split: ``--holdout-speakers`` /
``--holdout-sources``; never used for training or calibration), ``val`` (``--val-speakers`` or a
``--val-fraction`` of the remaining groups: used only to calibrate the softmax temperature) and
``train``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edge_coat.data.folder import Clip, DatasetError, DatasetFolder, split_by_group
from edge_coat.train.augment import AugmentConfig, augment, crop_frames, random_crop
from edge_coat.train.config import DataSource

log = logging.getLogger(__name__)


def parse_data_spec(spec: str) -> DataSource:
    """``FOLDER:TASK`` -> DataSource (the last ``:`` splits, so folders may contain colons)."""
    path, sep, task = spec.rpartition(":")
    if not sep or not path:
        raise ValueError(f"--data: expected FOLDER:TASK (task one of emotion, anomaly, events), got {spec!r}")
    return DataSource(path=path, task=task)


def parse_list(value: str | None) -> list[str]:
    """``a,b,c`` or the path of a file with one item per line (or comma-separated) -> items."""
    if not value:
        return []
    path = Path(value)
    text = path.read_text(encoding="utf-8") if path.is_file() else value
    return [item.strip() for line in text.splitlines() for item in line.split(",") if item.strip()]


def group_of(clip: Clip) -> str:
    """``speaker:<id>``, ``source:<fsID>`` or ``clip:<file>``: the unit a split may not cut through."""
    speaker = clip.meta.get("speaker", "")
    if speaker:
        return f"speaker:{speaker}"
    parts = Path(clip.file).stem.split("-")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return f"source:{parts[0]}"
    return f"clip:{clip.file}"


def load_folders(sources: Sequence[DataSource], labels_of_task: dict[str, Sequence[str]]) -> list[list[Clip]]:
    """Validate every folder against its task's labels; one DatasetError lists the problems of all of them."""
    out: list[list[Clip]] = []
    problems: list[str] = []
    for src in sources:
        try:
            out.append(DatasetFolder(src.path, allowed_labels=labels_of_task[src.task]).clips)
        except DatasetError as exc:
            problems += [f"{src.path}: {p}" for p in exc.problems]
    if problems:
        raise DatasetError(Path(sources[0].path) if len(sources) == 1 else Path("."), problems)
    return out


@dataclass(frozen=True)
class Split:
    """Clips of one folder, in three disjoint parts."""

    train: list[Clip]
    val: list[Clip]
    held_out: list[Clip]


def split_folder(
    clips: Sequence[Clip],
    *,
    holdout_speakers: Sequence[str] = (),
    holdout_sources: Sequence[str] = (),
    val_speakers: Sequence[str] = (),
    val_fraction: float = 0.0,
    seed: int = 0,
) -> Split:
    """Split one folder's clips by group (see the module doc)."""
    held = {f"speaker:{s}" for s in holdout_speakers} | {f"source:{s}" for s in holdout_sources}
    val_groups = {f"speaker:{s}" for s in val_speakers}
    held_out = [c for c in clips if group_of(c) in held]
    rest = [c for c in clips if group_of(c) not in held]
    val = [c for c in rest if group_of(c) in val_groups]
    train = [c for c in rest if group_of(c) not in val_groups]
    if val_fraction > 0 and not val and len({group_of(c) for c in train}) >= 2:
        train, val = split_by_group(train, group_of, held_out=val_fraction, seed=seed)
    return Split(train=train, val=val, held_out=held_out)


def check_groups_used(splits: Sequence[Split], names: Sequence[str], prefix: str, option: str) -> None:
    """Refuse a held-out/val group that matches no clip (a typo would silently hold out nothing)."""
    present = {group_of(c) for s in splits for part in (s.train, s.val, s.held_out) for c in part}
    missing = [n for n in names if f"{prefix}:{n}" not in present]
    if missing:
        raise ValueError(f"{option}: {missing} match no clip in the training folders")


@dataclass
class Example:
    """One training clip: audio, its task and answer, and its teacher targets (whole clip)."""

    wave: np.ndarray  # (N,) float32
    task: str
    answer: str
    targets: dict[str, np.ndarray]  # expert name -> (frames, dim) or (dim,)
    # tower variant index -> the teachers' targets on that variant's audio (speed perturbations with
    # --speed-teachers); a variant without an entry is described by ``targets``
    variant_targets: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


def load_wave(clip: Clip, max_seconds: float) -> np.ndarray:
    """A clip's 16 kHz audio, centre-cropped to ``max_seconds`` when longer (evaluation, probes)."""
    from edge_coat.data.folder import load_audio

    wave = load_audio(clip.path)  # (N,)
    n = int(max_seconds * 16_000)
    if wave.shape[0] > n:
        start = (wave.shape[0] - n) // 2
        wave = wave[start:start + n]
    return wave


class BatchMaker:
    """Draws training batches: a folder uniformly, then a clip uniformly within it; crop + augment.

    Time-resolved targets are cut to the crop and padded to the batch's longest, with a frame mask
    (``expert_batch``, shared with the tower-cache batches).
    """

    def __init__(
        self,
        examples: Sequence[Sequence[Example]],
        prompts: dict[str, str],
        experts: Sequence,  # edge_coat.experts.Expert: name, dim, frame_rate, pooled
        max_seconds: float,
        augment_config: AugmentConfig,
        rng: np.random.Generator,
    ) -> None:
        self.examples = [list(e) for e in examples if e]
        if not self.examples:
            raise ValueError("no training clips left after the held-out and validation splits")
        self.prompts = prompts
        self.experts = list(experts)
        self.max_seconds = max_seconds
        self.augment = augment_config
        self.rng = rng

    def __call__(self, batch_size: int):
        from edge_coat.model.coat import CoatBatch

        crop_s = self.augment.crop_seconds or self.max_seconds
        crop_s = min(crop_s, self.max_seconds)
        waves, prompts, answers, cuts = [], [], [], []
        for _ in range(batch_size):
            folder = self.examples[int(self.rng.integers(len(self.examples)))]
            ex = folder[int(self.rng.integers(len(folder)))]
            wave, start = random_crop(ex.wave, crop_s, self.rng)
            waves.append(augment(wave, self.augment, self.rng))
            prompts.append(self.prompts[ex.task])
            answers.append(ex.answer)
            cuts.append((ex, start, wave.shape[0]))
        targets, masks = expert_batch(self.experts, cuts)
        return CoatBatch(waves=waves, prompts=prompts, answers=answers, expert_targets=targets, expert_masks=masks)


def expert_batch(experts: Sequence, cuts) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Teacher targets of a batch, cut to each clip's crop. ``cuts``: (Example, start sample, length).

    A clip without a reading for an expert (missing, or an all-zero pooled target: e.g. no speech for
    the speech-content teacher) is masked out for that expert, not dropped from the batch."""
    targets, masks = {}, {}
    for expert in experts:
        have = [expert.name in ex.targets for ex, _, _ in cuts]
        if not any(have):
            continue
        if expert.pooled:
            rows = [ex.targets[expert.name] if ok else np.zeros(expert.dim, np.float32) for (ex, _, _), ok in zip(cuts, have)]
            arr = np.stack(rows).astype(np.float32)  # (B, dim)
            targets[expert.name] = torch.from_numpy(arr)
            masks[expert.name] = torch.from_numpy(np.array(have) & (np.abs(arr).sum(-1) > 0))
            continue
        rows = [crop_frames(ex.targets[expert.name], expert.frame_rate, s, n) if ok else np.zeros((1, expert.dim), np.float32)
                for (ex, s, n), ok in zip(cuts, have)]
        f = max(r.shape[0] for r in rows)
        t = np.zeros((len(rows), f, expert.dim), np.float32)  # (B, F, dim)
        m = np.zeros((len(rows), f), bool)  # (B, F)
        for i, (r, ok) in enumerate(zip(rows, have)):
            t[i, : r.shape[0]] = r
            m[i, : r.shape[0]] = ok
        targets[expert.name] = torch.from_numpy(t)
        masks[expert.name] = torch.from_numpy(m)
    return targets, masks
