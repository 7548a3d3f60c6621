"""The training loop of ``edge-coat train``.

Loss = answer cross-entropy + weighted expert distillation losses (``CoatModel.training_losses``), + with a tower
LoRA, optionally, an anchor that keeps the adapted tower's output near the pretrained one.
What trains: the thinking block, think markers and expert heads always; the LLM fully (default), as
LoRA adapters (``lora``) or not at all (``freeze_llm``); the audio encoder only with
``train_encoder``. Fixed seeds, AdamW with warm-up and cosine decay, gradient clipping, a tqdm bar
showing every loss component, metrics.jsonl, checkpoints every N steps and at the end, and
``resume`` restoring weights, optimizer, scheduler, step and every RNG.

The trained model is written to ``RUN/model`` (``CoatModel.save_pretrained``). Its softmax
temperature is calibrated on the validation split (never the reported held-out split) when there
is one, and left at 1.0 otherwise (recorded in ``RUN/calibration.json``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from edge_coat.train.config import SIZE_PRESETS, TrainConfig
from edge_coat.train.rundir import RunDir, rng_state, set_rng_state

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    return dev


def new_model(config: TrainConfig, tasks: dict, expert_specs: list):
    """A new CoatModel of ``config.init_family`` at ``config.init_size`` with a word tokenizer built
    from the tasks' prompts and labels. ``tasks``: name -> TaskSpec; ``expert_specs``: ExpertSpec list."""
    from edge_coat.model.coat import CoatModel
    from edge_coat.model.config import CoatConfig
    from edge_coat.model.tiny import tiny_base_config
    from edge_coat.model.tokenizer import build_word_tokenizer

    preset = dict(SIZE_PRESETS[config.init_size])
    thinking = {k: preset.pop(k) for k in ("thinking_dim", "thinking_layers", "thinking_heads")}
    prefix = "audio :"
    texts = [prefix] + [t.prompt for t in tasks.values()] + [lab for t in tasks.values() for lab in t.labels]
    tokenizer = build_word_tokenizer(texts)
    coat = CoatConfig(
        family=config.init_family, num_thinking=config.num_thinking, supervised_layer=-1,
        experts=expert_specs, prefix=prefix, tasks=tasks, clip_seconds=config.clip_seconds,
        storage_dtype="float16" if config.init_encoder is not None else "float32",
        chunk_features="chunk" if config.init_encoder is not None else "window",
        thinking_summary=config.thinking_summary, summary_frame_mlp=config.summary_frame_mlp,
        thinking_slot_time=config.thinking_slot_time, llm_audio_stride=config.llm_audio_stride, **thinking,
    )
    torch.manual_seed(config.seed)
    base = tiny_base_config(
        config.init_family, vocab_size=len(tokenizer), max_seconds=config.max_seconds,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, **preset,
    )
    if config.init_encoder is not None:
        encoder = _pretrained_tower(base, config)
    model = CoatModel.from_config(config.init_family, base, coat, tokenizer)
    if config.init_encoder is not None:
        model.base.model.audio_tower.load_state_dict(encoder)
    return model


def _pretrained_tower(base, config: TrainConfig) -> dict:
    """Make ``base``'s audio config that of the pretrained encoder in ``config.init_encoder`` (first
    ``encoder_layers`` blocks, ``max_seconds`` chunks); returns the tower's state dict to load."""
    from edge_coat.model.whisper import load_encoder

    enc = load_encoder(config.init_encoder)
    ac = enc.config
    layers = config.encoder_layers or ac.encoder_layers
    if layers > ac.encoder_layers:
        raise ValueError(f"--encoder-layers {layers}: {config.init_encoder} has only {ac.encoder_layers} blocks")
    positions = 50 * config.max_seconds
    if positions > ac.max_source_positions:
        raise ValueError(f"--max-seconds {config.max_seconds} is longer than the encoder's "
                         f"{ac.max_source_positions // 50} s input")
    audio = base.audio_config
    for key in ("d_model", "encoder_attention_heads", "encoder_ffn_dim", "num_mel_bins", "activation_function",
                "scale_embedding"):
        setattr(audio, key, getattr(ac, key))
    audio.encoder_layers = layers
    audio.max_source_positions = positions
    state = enc.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("layers.") or int(k.split(".")[1]) < layers}
    state["embed_positions.weight"] = state["embed_positions.weight"][:positions]
    return state


def setup_trainable(model, config: TrainConfig) -> list[tuple[str, torch.nn.Parameter]]:
    """Freeze / unfreeze / add LoRA per the config; return the (name, parameter) pairs that train."""
    for p in model.parameters():
        p.requires_grad_(False)
    for part in (model.thinking, model.heads):
        for p in part.parameters():
            p.requires_grad_(True)
    model.think_open.requires_grad_(True)
    model.think_close.requires_grad_(True)
    base = model.base.model
    if config.init_encoder is not None or config.tower_variants:
        # A pretrained tower stays frozen; its new projector into the LLM learns.
        for p in base.multi_modal_projector.parameters():
            p.requires_grad_(True)
    if config.train_encoder:
        for name in ("audio_tower", "multi_modal_projector"):
            module = getattr(base, name, None)
            if module is not None:
                for p in module.parameters():
                    p.requires_grad_(True)
    if config.tower_lora_rank:
        for name, p in base.audio_tower.named_parameters():
            p.requires_grad_("lora_" in name)
    if config.lora:
        from peft import LoraConfig, inject_adapter_in_model

        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        inject_adapter_in_model(lora, model.adapter.llm)
        for name, p in model.adapter.llm.named_parameters():
            p.requires_grad_("lora_" in name)
    elif not config.freeze_llm:
        for p in model.adapter.llm.parameters():
            p.requires_grad_(True)
        for p in model.base.lm_head.parameters():
            p.requires_grad_(True)
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


#: the tower's top-block linears a tower LoRA adapts (``add_tower_lora``)
TOWER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def add_tower_lora(model, rank: int, alpha: float) -> None:
    """LoRA adapters (peft) on the linears of the audio tower's top block; the rest of the tower stays as it is.
    B starts at zero, so the tower's output is unchanged until training moves it."""
    from peft import LoraConfig, inject_adapter_in_model

    tower = model.base.model.audio_tower
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=TOWER_LORA_TARGETS)
    tower.layers[-1] = inject_adapter_in_model(config, tower.layers[-1])


def merge_lora(model, root=None) -> int:
    """Fold LoRA adapters under ``root`` (default: the LLM) into their base linears and put the plain linears
    back; returns how many."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return 0
    merged = 0
    for parent in list((root if root is not None else model.adapter.llm).modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, LoraLayer):
                child.merge()
                setattr(parent, child_name, child.get_base_layer())
                merged += 1
    return merged


def merge_tower_lora(model) -> int:
    """Merge a tower LoRA into the top block (``add_tower_lora``); returns how many linears it merged. The tower's
    weights have changed: a standardisation folded into it keeps its map (the projector trained through it) and
    takes the merged tower's fingerprint, so a frozen-tower cache (``towercache.TowerCache``) of this model is
    never read from the cache of the tower it started from."""
    from edge_coat.train.towercache import tower_fingerprint

    tower = model.base.model.audio_tower
    merged = merge_lora(model, tower)
    if not merged:
        return 0
    storage = torch.float16 if model.config.storage_dtype == "float16" else torch.float32
    with torch.no_grad():  # rounded as the model will be saved, so the live model is the saved one
        for p in tower.layers[-1].parameters():
            p.copy_(p.to(storage).to(p.dtype))
    st = model.config.tower_standardized
    if st is not None:
        model.config = model.config.model_copy(update={"tower_standardized": st.model_copy(
            update={"source_fingerprint": "adapted-" + tower_fingerprint(model)})})
    return merged


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up to 1, then cosine decay to 0.1 at ``total``."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def expert_scale(step: int, config: TrainConfig) -> float:
    """The expert losses' scale at ``step`` (0-based, before the update): linear from 1 at step 0 to
    ``config.expert_scale_end`` at the last step, so a resumed run continues the same schedule."""
    if config.expert_scale_end >= 1.0 or config.steps <= 1:
        return 1.0
    return 1.0 - (1.0 - config.expert_scale_end) * step / (config.steps - 1)


def _short(name: str) -> str:
    return name.removeprefix("expert/")[:10]


class Trainer:
    """Runs the optimisation of ``model`` on batches from ``make_batch`` into ``run``.

    ``make_batch(batch_size) -> CoatBatch`` must draw from ``sampler_rng`` only (its state is
    checkpointed with the other RNGs). ``validate() -> {"score": s, ...}`` (higher is better), when
    given with ``config.val_every``, is called every ``val_every`` steps and at the end; the weights
    of the best score are kept in ``checkpoints/best.pt`` and restored when training ends (early
    stopping by checkpoint selection on the validation split, never on the held-out one).
    """

    def __init__(self, model, config: TrainConfig, run: RunDir, make_batch: Callable, sampler_rng: np.random.Generator,
                 validate: Callable[[], dict[str, float]] | None = None):
        self.model = model
        self.validate = validate if config.val_every else None
        self.best: dict | None = None  # {"step", "score"} of checkpoints/best.pt
        self.config = config
        self.run = run
        self.make_batch = make_batch
        self.rng = sampler_rng
        self.device = pick_device(config.device)
        self.params = setup_trainable(model, config)
        model.to(self.device)
        decay = [p for n, p in self.params if p.ndim >= 2]
        no_decay = [p for n, p in self.params if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(config.warmup_steps, config.steps))
        self.step = 0
        n_train = sum(p.numel() for _, p in self.params)
        n_all = sum(p.numel() for p in model.parameters())
        log.info("training %d of %d parameters on %s", n_train, n_all, self.device)

    # -- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "trainable": {n: p.detach().cpu().clone() for n, p in self.params},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(self.rng),
        }

    def save_checkpoint(self) -> Path:
        return self.run.save_checkpoint(self.step, self.state(), keep=self.config.keep_checkpoints)

    def resume(self) -> int:
        """Load the newest checkpoint; returns the step it was taken at."""
        ckpt = self.run.load_checkpoint()
        names = {n for n, _ in self.params}
        if set(ckpt["trainable"]) != names:
            missing = sorted(names - set(ckpt["trainable"]))[:5]
            extra = sorted(set(ckpt["trainable"]) - names)[:5]
            raise ValueError(f"checkpoint does not match the model's trainable parameters (missing {missing}, extra {extra})")
        with torch.no_grad():
            for n, p in self.params:
                p.copy_(ckpt["trainable"][n].to(p.device))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"], self.rng)
        self.step = int(ckpt["step"])
        best = self.run.checkpoints / "best.json"
        if best.is_file():
            self.best = json.loads(best.read_text())
        log.info("resumed from step %d", self.step)
        return self.step

    # -- the loop --------------------------------------------------------------------------------
    def train(self) -> dict[str, float]:
        """Run from the current step to ``config.steps``; returns the last logged averages."""
        from tqdm import tqdm

        cfg = self.config
        self.model.train()
        sums: dict[str, float] = defaultdict(float)
        count, t0, last = 0, time.time(), {}
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not cfg.progress, desc="train", dynamic_ncols=True)
        try:
            while self.step < cfg.steps:
                batch = self.make_batch(cfg.batch_size)
                losses = self.model.training_losses(batch, label_smoothing=cfg.label_smoothing,
                                                    expert_scale=expert_scale(self.step, cfg),
                                                    tower_anchor=cfg.tower_anchor_weight)
                self.optimizer.zero_grad(set_to_none=True)
                losses["total"].backward()
                grad_norm = torch.nn.utils.clip_grad_norm_([p for _, p in self.params], cfg.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                values = {k: float(v.detach()) for k, v in losses.items()}
                if not math.isfinite(values["total"]):
                    raise FloatingPointError(f"non-finite loss at step {self.step}: {values}")
                for k, v in values.items():
                    sums[k] += v
                sums["grad_norm"] += float(grad_norm)
                count += 1
                bar.update(1)
                bar.set_postfix({_short(k): f"{v:.3f}" for k, v in values.items() if k != "experts"}, refresh=False)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    last = {k: v / count for k, v in sums.items()}
                    last["lr"] = self.scheduler.get_last_lr()[0]
                    if cfg.expert_scale_end < 1.0:
                        last["expert_scale"] = expert_scale(self.step - 1, cfg)
                    last["seconds"] = time.time() - t0
                    self.run.log_metrics(self.step, last)
                    sums.clear()
                    count, t0 = 0, time.time()
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.save_checkpoint()
                if self.validate is not None and (self.step % cfg.val_every == 0 or self.step == cfg.steps):
                    self.run_validation()
        finally:
            bar.close()
            self.model.eval()
        if self.validate is not None:
            self.restore_best()
        return last

    # -- checkpoint selection on the validation split --------------------------------------------
    def run_validation(self) -> float:
        """Score the validation split now; keep the weights when the score is the best so far."""
        self.model.eval()
        try:
            scores = self.validate()
        finally:
            self.model.train()
        score = float(scores["score"])
        self.run.log_metrics(self.step, {f"val/{k}": v for k, v in scores.items()})
        if self.best is None or score > self.best["score"]:
            self.best = {"step": self.step, "score": score}
            path = self.run.checkpoints / "best.pt"
            torch.save({"step": self.step, "trainable": {n: p.detach().cpu().clone() for n, p in self.params}},
                       path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
            (self.run.checkpoints / "best.json").write_text(json.dumps(self.best) + "\n")
        log.info("step %d: validation score %.4f (best %.4f at step %d)", self.step, score, self.best["score"],
                 self.best["step"])
        return score

    def restore_best(self) -> None:
        """Put the best validated weights back into the model (no-op when none was saved)."""
        path = self.run.checkpoints / "best.pt"
        if self.best is None or not path.is_file():
            return
        state = torch.load(path, map_location="cpu", weights_only=True)
        with torch.no_grad():
            for n, p in self.params:
                p.copy_(state["trainable"][n].to(p.device))
        log.info("kept the weights of step %d (validation score %.4f) of %d steps", self.best["step"],
                 self.best["score"], self.step)


def calibrate_temperature(model, val: dict[str, list[tuple[np.ndarray, str]]], batch_size: int = 16) -> dict:
    """Fit the softmax temperature minimising the NLL of the true labels on ``val`` (task -> (wave, label)).

    Returns ``{"temperature", "nll_before", "nll_after", "n"}``; T stays 1.0 when ``val`` is empty.
    """
    logps, truth = [], []
    for task, items in val.items():
        spec = model.config.tasks[task]
        for i in range(0, len(items), batch_size):
            chunk = items[i:i + batch_size]
            res = model.score_labels([w for w, _ in chunk], spec.prompt, list(spec.labels))
            for row, (_, label) in zip(res.logprobs, chunk):
                logps.append(row.astype(np.float64))
                truth.append(list(spec.labels).index(label))
    return fit_temperature(logps, truth)


def fit_temperature(logits: Sequence[np.ndarray], truth: Sequence[int]) -> dict:
    """The temperature T minimising the mean NLL of ``softmax(logits / T)`` at the true indices.

    Returns ``{"temperature", "nll_before" (T = 1), "nll_after", "n"}``; T = 1.0 when there is nothing to fit."""
    from scipy.optimize import minimize_scalar

    if not len(logits):
        return {"temperature": 1.0, "n": 0, "note": "no validation split: temperature left at 1.0"}

    def nll(log_t: float) -> float:
        t = math.exp(log_t)
        total = 0.0
        for lp, y in zip(logits, truth):
            z = np.asarray(lp, dtype=np.float64) / t
            total += float(np.logaddexp.reduce(z) - z[y])
        return total / len(logits)

    res = minimize_scalar(nll, bounds=(math.log(0.05), math.log(50.0)), method="bounded")
    return {"temperature": float(math.exp(res.x)), "nll_before": nll(0.0), "nll_after": float(res.fun), "n": len(logits)}


def save_trained(model, run: RunDir, calibration: dict) -> Path:
    """Merge LoRA (if any), set the calibrated temperature, write RUN/model and RUN/calibration.json."""
    merge_lora(model)
    model.config.temperature = float(calibration["temperature"])
    out = model.save_pretrained(run.root / "model")
    (run.root / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n")
    return out


def write_split(run: RunDir, names: Sequence[str], splits: Sequence) -> Path:
    """RUN/split.json: the files of each folder in train / val / held_out (the split is part of the run)."""
    doc = {
        name: {part: [c.file for c in getattr(s, part)] for part in ("train", "val", "held_out")}
        for name, s in zip(names, splits)
    }
    path = run.root / "split.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path
