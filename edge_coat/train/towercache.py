"""Training on a frozen pretrained audio tower: its output cached per clip and per channel variant.

With the tower frozen, every training step would recompute the same encoder output; on a CPU that is
most of a step. So each training clip is encoded once per *variant* (the clean clip, a telephone
line, a room, ...; ``edge_coat.train.augment.apply_channel``) with the model's own ``encode_tower``,
which chunks a clip exactly as serving chunks a window of that length, and kept in memory as fp16.
Batches then draw a clip and a variant, crop at encoder-chunk boundaries (so a crop is what serving
computes for a window starting there) and train the projector, thinking block, heads and LLM.

A run whose top tower block trains (``--tower-lora-rank``) caches the input of that block instead
(``TopInputCache``: everything below it is still frozen) and runs the block, the pool and the final norm in
each training step.

Disk layout (resume and re-runs skip the encoder): ``ROOT/<fingerprint>/<sha[:2]>/<sha>-<variant>.npy``
where ``fingerprint`` hashes the tower weights and chunking, and ``sha`` the clip's samples. A
variant's augmentation is seeded by the clip and the variant index, so the same variant is the same
audio in every run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edge_coat.experts.cache import audio_sha256
from edge_coat.messages import SAMPLE_RATE
from edge_coat.train.augment import apply_channel
from edge_coat.train.data import expert_batch
from edge_coat.train.standardize import standardize, unstandardize

log = logging.getLogger(__name__)

#: Encoder positions per second after the tower's stride-2 conv and stride-2 average pool.
TOWER_RATE = 25


def tower_fingerprint(model) -> str:
    """Hash of what decides the tower output: its weights, mel bins, chunk length and chunk features."""
    h = hashlib.sha256()
    h.update(f"{model.frontend.n_mels}:{model.frontend.max_frames}:{model.frontend.per_chunk}".encode())
    for name, tensor in sorted(model.base.model.audio_tower.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def variant_wave(wave: np.ndarray, channel: str, seed: int, gain_db: float) -> np.ndarray:
    """One channel variant of a clip, reproducible from ``seed``. The clean variant stays as it is;
    the others also get a random gain within +-``gain_db`` (Whisper's log-mel is not gain-invariant)."""
    if channel == "clean":
        return wave
    rng = np.random.default_rng(seed)
    out = apply_channel(wave, channel, rng)
    if gain_db > 0:
        out = out * np.float32(10 ** (rng.uniform(-gain_db, gain_db) / 20))
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def top_fingerprint(model) -> str:
    """Hash of what decides the top block's input: the chunking and every tower weight below that block (not
    the block, its LoRA or the final norm with a folded standardisation)."""
    tower = model.base.model.audio_tower
    top = f"layers.{len(tower.layers) - 1}."
    h = hashlib.sha256(b"top-input")
    h.update(f"{model.frontend.n_mels}:{model.frontend.max_frames}:{model.frontend.per_chunk}".encode())
    for name, tensor in sorted(tower.state_dict().items()):
        if name.startswith((top, "layer_norm.")):
            continue
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _write_atomic(path: Path, save) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        save(f)
    os.replace(tmp, path)


class _VariantStore:
    """What the two caches share: a model, its channel variants and their folder ``root/key``."""

    def __init__(self, model, root: str | os.PathLike, key: str, variants: Sequence[str], gain_db: float) -> None:
        if not variants:
            raise ValueError("expected at least one tower variant (e.g. clean)")
        self.model = model
        self.variants = list(variants)
        self.gain_db = gain_db
        self.root = Path(root) / key
        self.root.mkdir(parents=True, exist_ok=True)
        self.computed = 0


class TowerCache(_VariantStore):
    """Tower outputs of clips x variants, on disk under ``root`` and in memory."""

    def __init__(self, model, root: str | os.PathLike, variants: Sequence[str], gain_db: float = 6.0) -> None:
        #: a tower with a folded standardisation (``edge_coat.train.standardize``) reads and writes the cache of
        #: the tower before the fold, through the same affine map
        self.standardized = model.config.tower_standardized
        key = self.standardized.source_fingerprint if self.standardized is not None else tower_fingerprint(model)
        super().__init__(model, root, key, variants, gain_db)

    def _path(self, sha: str, v: int) -> Path:
        return self.root / sha[:2] / f"{sha}-{v}-{self.variants[v]}.npy"

    def features(self, wave: np.ndarray) -> list[np.ndarray]:
        """(T, Da) float16 tower output of each variant of ``wave``."""
        sha = audio_sha256(wave)
        out: list[np.ndarray | None] = []
        todo = []
        for v in range(len(self.variants)):
            path = self._path(sha, v)
            try:
                out.append(np.load(path))
            except (OSError, ValueError):
                out.append(None)
                todo.append(v)
        if todo:
            seed = int(sha[:8], 16)
            waves = [variant_wave(wave, self.variants[v], seed + 7919 * v, self.gain_db) for v in todo]
            with torch.inference_mode():
                hidden, mask = self.model.encode_tower(waves)  # (n, T, Da), (n, T)
            for i, v in enumerate(todo):
                arr = hidden[i][mask[i]].float().cpu().numpy()  # (T_v, Da)
                if self.standardized is not None:
                    arr = unstandardize(arr, self.standardized)
                arr = arr.astype(np.float16)
                self._write(self._path(sha, v), arr)
                out[v] = arr
            self.computed += len(todo)
        if self.standardized is not None:
            out = [standardize(a, self.standardized) for a in out]
        return out  # type: ignore[return-value]

    @staticmethod
    def _write(path: Path, arr: np.ndarray) -> None:
        _write_atomic(path, lambda f: np.save(f, arr))


#: One clip variant's top-block input: (hidden (n, T', Da) float16 of its n encoder chunks, frames after the conv
#: (n,), valid output positions (n,)), as ``CoatModel.top_inputs`` gives them.
TopInput = tuple[np.ndarray, np.ndarray, np.ndarray]


class TopInputCache(_VariantStore):
    """The input of the tower's top block, per clip and variant (``CoatModel.top_inputs``), on disk under
    ``root`` and in memory: what a run that trains that block (a LoRA) draws its batches from. Whole chunks are
    kept, padding included: the stride-2 pool of a chunk's last valid position can read a padded one."""

    def __init__(self, model, root: str | os.PathLike, variants: Sequence[str], gain_db: float = 6.0) -> None:
        super().__init__(model, root, top_fingerprint(model), variants, gain_db)

    def _path(self, sha: str, v: int) -> Path:
        return self.root / sha[:2] / f"{sha}-{v}-{self.variants[v]}.npz"

    def features(self, wave: np.ndarray) -> list[TopInput]:
        """Each variant's ``TopInput`` of ``wave``."""
        sha = audio_sha256(wave)
        out: list[TopInput] = []
        seed = int(sha[:8], 16)
        for v in range(len(self.variants)):
            path = self._path(sha, v)
            try:
                with np.load(path) as z:
                    out.append((z["hidden"], z["conv"], z["out"]))
                continue
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # absent or damaged: recompute
                pass
            w = variant_wave(wave, self.variants[v], seed + 7919 * v, self.gain_db)
            with torch.inference_mode():
                hidden, conv, valid = self.model.top_inputs(w)
            item = (hidden.float().cpu().numpy().astype(np.float16), conv.cpu().numpy().astype(np.int16),
                    valid.cpu().numpy().astype(np.int16))
            _write_atomic(path, lambda f: np.savez(f, hidden=item[0], conv=item[1], out=item[2]))
            out.append(item)
            self.computed += 1
        return out


def top_output(model, item: TopInput) -> np.ndarray:
    """A cached ``TopInput`` through the model's top block now -> the tower's output (T, Da) float16."""
    h, conv, valid = item
    with torch.inference_mode():
        out, mask = model.tower_from_top(torch.from_numpy(h).float(), torch.from_numpy(conv).long(),
                                         torch.from_numpy(valid).long(), [h.shape[0]])
    return out[0][mask[0]].float().cpu().numpy().astype(np.float16)


def mask_features(h: np.ndarray, time_share: float, channel_share: float, rng: np.random.Generator,
                  parts: int = 2) -> np.ndarray:
    """SpecAugment (Park et al., 2019) on a clip's tower output (T, Da): ``parts`` stretches of time, each
    up to ``time_share / parts`` of the positions, and ``parts`` bands of channels, each up to
    ``channel_share / parts`` of them, replaced by the clip's per-channel mean. The mean, not zero:
    Whisper's hidden states are far from zero-mean, and a zeroed stretch would be a signal of its own.
    A masked channel keeps its mean and loses its variation over time. Returns a new float32 array."""
    out = h.astype(np.float32, copy=True)  # (T, Da)
    t, d = out.shape
    mean = out.mean(axis=0)  # (Da,)
    for share, size, axis in ((time_share, t, 0), (channel_share, d, 1)):
        longest = int(share / parts * size)
        if longest < 1:
            continue
        for _ in range(parts):
            width = int(rng.integers(0, longest + 1))
            if width == 0:
                continue
            lo = int(rng.integers(0, size - width + 1))
            if axis == 0:
                out[lo:lo + width] = mean
            else:
                out[:, lo:lo + width] = mean[lo:lo + width]
    return out


class TowerBatchMaker:
    """Draws training batches from cached tower outputs: a folder uniformly, a clip uniformly within
    it, a variant uniformly; crop at encoder-chunk boundaries; targets cut to the crop.

    ``examples``: per folder, Example objects (their ``wave`` is only used for its length);
    ``features``: per folder, per clip, the variants' (T, Da) float16 arrays, or their ``TopInput`` (the top
    block's input, ``TopInputCache``): the batch then carries ``tower_top`` for the model to run that block.
    ``time_mask`` / ``channel_mask``: SpecAugment on the tower output (``mask_features``), 0 = off.
    ``perturbed``: indices of variants whose audio the teachers' targets no longer describe (speed
    perturbations, ``edge_coat.train.augment.SPEEDS``). Only clips of ``perturbed_tasks`` draw them, and on
    their rows only the ``perturbed_experts`` (targets that survive the perturbation) keep a loss, unless the
    clip carries the teachers' targets for that variant (``Example.variant_targets``).
    ``blind``: indices of variants that no teacher target describes (short excerpts); only clips of ``blind_tasks``
    draw them, and their rows train answers only.
    """

    def __init__(self, examples, features, prompts: dict[str, str], experts: Sequence, chunk_seconds: float,
                 crop_seconds: float, rng: np.random.Generator, time_mask: float = 0.0,
                 channel_mask: float = 0.0, perturbed: Sequence[int] = (),
                 perturbed_tasks: Sequence[str] = ("emotion",), perturbed_experts: Sequence[str] = (),
                 blind: Sequence[int] = (), blind_tasks: Sequence[str] = ("emotion",)) -> None:
        pairs = [(list(e), list(f)) for e, f in zip(examples, features) if e]
        if not pairs:
            raise ValueError("no training clips left after the held-out and validation splits")
        self.examples = [p[0] for p in pairs]
        self.features = [p[1] for p in pairs]
        self.prompts = prompts
        self.experts = list(experts)
        self.chunk_pos = int(round(chunk_seconds * TOWER_RATE))
        self.chunk_samples = int(round(chunk_seconds * SAMPLE_RATE))
        crop_chunks = max(1, int(crop_seconds // chunk_seconds)) if crop_seconds > 0 else 10**6
        self.crop_chunks = crop_chunks
        self.crop_pos = crop_chunks * self.chunk_pos
        self.rng = rng
        self.time_mask = time_mask
        self.channel_mask = channel_mask
        self.perturbed = frozenset(perturbed)
        self.perturbed_tasks = frozenset(perturbed_tasks)
        self.perturbed_experts = frozenset(perturbed_experts)
        n_variants = len(self.features[0][0])
        self.top = isinstance(self.features[0][0][0], tuple)
        if self.top and (time_mask or channel_mask):
            raise ValueError("time and channel masks act on the cached tower output, not on the top block's input")
        self.blind = frozenset(blind)
        self.blind_tasks = frozenset(blind_tasks)
        self._n_variants = n_variants
        self._drawable: dict[str, list[int]] = {}

    def drawable(self, task: str) -> list[int]:
        """The variants a clip of ``task`` draws from: speed copies only for ``perturbed_tasks``, excerpts only for
        ``blind_tasks``."""
        if task not in self._drawable:
            self._drawable[task] = [v for v in range(self._n_variants)
                                    if (v not in self.perturbed or task in self.perturbed_tasks)
                                    and (v not in self.blind or task in self.blind_tasks)]
            if not self._drawable[task]:
                raise ValueError(f"no tower variant left for {task} clips: add clean (or another channel)")
        return self._drawable[task]

    def __call__(self, batch_size: int):
        from edge_coat.model.coat import CoatBatch

        rows, prompts, answers, cuts, perturbed_rows, blind_rows = [], [], [], [], [], []
        for _ in range(batch_size):
            f = int(self.rng.integers(len(self.examples)))
            i = int(self.rng.integers(len(self.examples[f])))
            ex = self.examples[f][i]
            variants = self.features[f][i]
            allowed = self.drawable(ex.task)  # e.g. a machine by default: no speed-perturbed copy, no excerpt
            v = allowed[int(self.rng.integers(len(allowed)))]
            h = variants[v]  # (T, Da)
            heard = v in ex.variant_targets  # the teachers heard this variant (--speed-teachers): every expert trains
            if heard:
                ex = replace(ex, targets=ex.variant_targets[v])
            perturbed_rows.append(v in self.perturbed and not heard)
            blind_rows.append(v in self.blind)
            if self.top:
                h, start_chunk, positions = self._crop_chunks(h)
            else:
                h, start_chunk = self._crop(h)
                positions = h.shape[0]
            rows.append(h)
            prompts.append(self.prompts[ex.task])
            answers.append(ex.answer)
            start = start_chunk * self.chunk_samples
            length = min(ex.wave.shape[0] - start, int(round(positions / TOWER_RATE * SAMPLE_RATE)))
            cuts.append((ex, start, max(length, 1)))
        if self.top:
            hidden = torch.from_numpy(np.concatenate([r[0] for r in rows])).float()  # (N, T', Da)
            conv = torch.from_numpy(np.concatenate([r[1] for r in rows])).long()  # (N,)
            valid = torch.from_numpy(np.concatenate([r[2] for r in rows])).long()  # (N,)
            tower, tower_top = None, (hidden, conv, valid, [r[0].shape[0] for r in rows])
        else:
            t = max(r.shape[0] for r in rows)
            hidden = np.zeros((len(rows), t, rows[0].shape[1]), np.float32)  # (B, T, Da)
            mask = np.zeros((len(rows), t), bool)  # (B, T)
            for b, r in enumerate(rows):
                hidden[b, : r.shape[0]] = r
                mask[b, : r.shape[0]] = True
            tower, tower_top = (torch.from_numpy(hidden), torch.from_numpy(mask)), None
        targets, masks = expert_batch(self.experts, cuts)
        drop = torch.tensor(perturbed_rows)
        for name in masks.keys() - self.perturbed_experts:
            masks[name][drop] = False  # (B,) or (B, F): the whole row
        blind = torch.tensor(blind_rows)
        for name in masks:
            masks[name][blind] = False
        return CoatBatch(waves=[], prompts=prompts, answers=answers, expert_targets=targets, expert_masks=masks,
                         tower=tower, tower_top=tower_top)

    def _crop(self, h: np.ndarray) -> tuple[np.ndarray, int]:
        """A clip's tower output (T, Da) -> at most ``crop_pos`` positions from a random chunk boundary, masked."""
        start_chunk = 0
        if h.shape[0] > self.crop_pos:
            start_chunk = int(self.rng.integers(0, -(-(h.shape[0] - self.crop_pos) // self.chunk_pos) + 1))
        lo = start_chunk * self.chunk_pos
        h = h[lo:lo + self.crop_pos]
        if self.time_mask or self.channel_mask:
            h = mask_features(h, self.time_mask, self.channel_mask, self.rng)
        return h, start_chunk

    def _crop_chunks(self, item: TopInput) -> tuple[TopInput, int, int]:
        """A clip's top-block input -> at most as many whole chunks as the crop holds, from a random one; the
        chunk it starts at and the tower output positions it gives."""
        hidden, conv, valid = item
        n, keep = hidden.shape[0], self.crop_chunks
        start = int(self.rng.integers(0, n - keep + 1)) if n > keep else 0
        part = (hidden[start:start + keep], conv[start:start + keep], valid[start:start + keep])
        return part, start, int(part[2].sum())
