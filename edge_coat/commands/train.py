"""``edge-coat train``: train CoAT on dataset folders (answer loss + weighted expert distillation)."""

from __future__ import annotations

from edge_coat.model.config import FAMILIES

HELP = "train CoAT (thinking block, expert heads, LLM or LoRA) on dataset folders; checkpoints and --resume"


def add_arguments(parser) -> None:
    g = parser.add_argument_group("data and split")
    g.add_argument("--data", action="append", required=True, metavar="FOLDER:TASK",
                   help="a dataset folder and its task (emotion, anomaly, events); repeat for several")
    g.add_argument("--holdout-speakers", help="speakers never trained on (the reported split): comma list or file")
    g.add_argument("--holdout-sources", help="source recordings never trained on (UrbanSound8K fsIDs): list or file")
    g.add_argument("--val-speakers", help="speakers kept out of training to calibrate the temperature")
    g.add_argument("--val-fraction", type=float, default=0.0,
                   help="share of the remaining groups per folder kept to calibrate the temperature (default 0: T=1)")
    m = parser.add_argument_group("model")
    src = m.add_mutually_exclusive_group(required=True)
    src.add_argument("--init", dest="init_family", choices=FAMILIES,
                     help="build a new model of this family (tokenizer from the tasks' vocabulary)")
    src.add_argument("--model", dest="init_model", help="continue training this model directory")
    m.add_argument("--size", dest="init_size", default="tiny", choices=("test", "tiny", "small"),
                   help="size preset of a new model (default tiny: a few million parameters)")
    m.add_argument("--max-seconds", type=int, default=5, help="encoder window of a new model in seconds (default 5)")
    m.add_argument("--num-thinking", type=int, default=8, help="K thinking vectors of a new model (default 8)")
    m.add_argument("--thinking-summary", action="store_true",
                   help="a new model's thinking block also reads the window's mean and std (statistics pooling)")
    m.add_argument("--no-summary-mlp", dest="summary_frame_mlp", action="store_false",
                   help="a new model's summary pools the thinking block's linear input projection, no per-frame MLP")
    m.add_argument("--thinking-slot-time", action="store_true",
                   help="a new model's thinking slot k listens mostly to the k-th of K equal stretches of the window")
    m.add_argument("--standardize-tower", action="store_true",
                   help="a new model folds the per-channel standardisation of its pretrained tower's output, measured "
                        "on the training clips, into the tower's final LayerNorm (needs --tower-variants)")
    m.add_argument("--llm-audio-stride", type=int, default=1, metavar="N",
                   help="a new model averages audio positions in groups of N before the LLM (default 1: all)")
    m.add_argument("--train-encoder", action="store_true", help="also train the audio encoder (default: frozen)")
    m.add_argument("--init-encoder", metavar="DIR",
                   help="a new model's audio tower: this pretrained encoder (edge-coat models import-whisper)")
    m.add_argument("--encoder-layers", type=int, help="keep the first N blocks of --init-encoder (default all)")
    m.add_argument("--tower-variants", default="",
                   help="frozen tower: cache its output per clip for these channels (comma list of clean, telephone, room; "
                        "slow, fast: 0.9x / 1.1x speed perturbations: see --speed-tasks, --speed-experts)")
    m.add_argument("--clip-seconds", type=float,
                   help="a new model's evaluation window in seconds (default: its encoder input, --max-seconds)")
    m.add_argument("--tower-cache", default=".cache/tower", help="tower-output cache directory")
    m.add_argument("--tower-lora-rank", type=int, default=0,
                   help="LoRA of this rank on the pretrained tower's top block, merged into it at the end (needs "
                        "--tower-variants; its input is cached instead of the tower's output). Default 0: frozen")
    m.add_argument("--tower-lora-alpha", type=float, default=16.0, help="the tower LoRA's alpha (default 16)")
    m.add_argument("--tower-anchor-weight", type=float, default=0.0, metavar="W",
                   help="keep the tower LoRA's output near the pretrained tower's: weight W of their mean squared "
                        "difference (default 0: none)")
    m.add_argument("--answer-weight", type=float, default=1.0,
                   help="answer-loss weight (0 = stage 1: thinking block aligned to the experts only)")
    m.add_argument("--freeze-llm", action="store_true", help="keep the LLM frozen")
    m.add_argument("--lora", action="store_true", help="LoRA (peft) on the LLM instead of training all its weights")
    m.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default 8)")
    m.add_argument("--no-expert-losses", action="store_true",
                   help="ablation: identical run with every expert loss weight set to 0")
    m.add_argument("--experts", help="comma list of experts (default: the five defaults)")
    m.add_argument("--expert-weight", action="append", default=[], metavar="NAME=W", help="an expert's loss weight")
    m.add_argument("--expert-scale-end", type=float, default=1.0, metavar="S",
                   help="scale of the expert losses at the last step, falling linearly from 1 at step 0 "
                        "(0 = fade them out; default 1: constant)")
    m.add_argument("--expert-stride", action="append", default=[], metavar="NAME=N",
                   help="an expensive expert reads one training clip in N (by content hash; the rest masked)")
    o = parser.add_argument_group("optimisation")
    o.add_argument("--out", required=True, help="run directory (config, metrics.jsonl, checkpoints, model/)")
    o.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    o.add_argument("--steps", type=int, default=1000, help="total optimizer steps (default 1000)")
    o.add_argument("--batch-size", type=int, default=8)
    o.add_argument("--lr", type=float, default=1e-3)
    o.add_argument("--warmup-steps", type=int, default=50)
    o.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default 0.01)")
    o.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing of the answer loss (default 0)")
    o.add_argument("--readout-c", type=float, default=0.1, metavar="C",
                   help="after training, fit the linear answer readout of emotion and events on the training clips with "
                        "this inverse L2 strength (default 0.1; 0 = none)")
    o.add_argument("--readout-channels", default="clean,telephone,room",
                   help="channel copies of each training clip the readout is fitted on (default %(default)s)")
    o.add_argument("--readout-input", choices=("tower", "audio"), default="tower",
                   help="what the readout reads: the tower's output before the projector, or the projected audio "
                        "embeds (coat-tiny 1.4) (default %(default)s)")
    o.add_argument("--readout-relative", default="",
                   help="comma list of readout tasks read relative to the speaker's (the stream's) baseline, e.g. "
                        "emotion (default: none)")
    o.add_argument("--readout-baseline", choices=("speaker", "desk"), default="speaker",
                   help="whose windows make the relative tasks' baseline: the caller's own, or the desk's long-run "
                        "mean over every caller (default %(default)s)")
    o.add_argument("--readout-with-absolute", action="store_true",
                   help="the relative readout tasks read the statistics beside their difference from the baseline")
    o.add_argument("--val-every", type=int, default=0, metavar="N",
                   help="score the validation split every N steps and keep the best weights (default 0: the last)")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--checkpoint-every", type=int, default=200)
    o.add_argument("--log-every", type=int, default=10)
    o.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    o.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default: torch's choice; 1 is often fastest for tiny models on a shared CPU)")
    o.add_argument("--teacher-cache", default=".cache/teacher", help="teacher-target cache directory")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = parser.add_argument_group("augmentation")
    a.add_argument("--crop-seconds", type=float, default=0.0, help="random crop length (default: the encoder window)")
    a.add_argument("--gain-db", type=float, default=0.0, help="random gain within +-DB (default off)")
    a.add_argument("--noise-snr-db", type=float, default=None, help="add noise at SNR in [DB, DB+20] (default off)")
    a.add_argument("--speed-tasks", default="emotion",
                   help="tasks whose clips draw the slow/fast tower variants (comma list; default emotion)")
    a.add_argument("--excerpt-tasks", default="emotion",
                   help="tasks whose clips draw the excerpt tower variant (comma list; default emotion)")
    a.add_argument("--speed-experts", default="",
                   help="experts still trained on slow/fast rows (comma list; default none: answers only)")
    a.add_argument("--speed-teachers", action="store_true",
                   help="run the teachers on the slow/fast audio too, so every expert trains on those rows "
                        "(speech_content keeps the clip's own transcript target)")
    a.add_argument("--time-mask", type=float, default=0.0, metavar="SHARE",
                   help="frozen tower: mask up to SHARE of the audio positions per clip (SpecAugment; default off)")
    a.add_argument("--channel-mask", type=float, default=0.0, metavar="SHARE",
                   help="frozen tower: flatten up to SHARE of the tower's channels per clip (default off)")


def config_from_args(args):
    """argparse namespace -> TrainConfig (raises pydantic's ValidationError / ValueError)."""
    from edge_coat.train.augment import AugmentConfig
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.data import parse_data_spec, parse_list

    weights = {}
    for item in args.expert_weight:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--expert-weight: expected NAME=WEIGHT, got {item!r}")
        weights[name] = float(value)
    strides = {}
    for item in args.expert_stride:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"--expert-stride: expected NAME=N with N a whole number, got {item!r}")
        strides[name] = int(value)
    extra = {"experts": parse_list(args.experts)} if args.experts else {}
    return TrainConfig(
        data=[parse_data_spec(s) for s in args.data],
        init_family=args.init_family, init_size=args.init_size, init_model=args.init_model,
        max_seconds=args.max_seconds, num_thinking=args.num_thinking, thinking_summary=args.thinking_summary,
        summary_frame_mlp=args.summary_frame_mlp, thinking_slot_time=args.thinking_slot_time,
        standardize_tower=args.standardize_tower,
        llm_audio_stride=args.llm_audio_stride, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, warmup_steps=args.warmup_steps, seed=args.seed, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, val_every=args.val_every, readout_c=args.readout_c,
        readout_channels=parse_list(args.readout_channels), readout_input=args.readout_input,
        readout_relative=parse_list(args.readout_relative), readout_with_absolute=args.readout_with_absolute,
        readout_baseline=args.readout_baseline,
        time_mask=args.time_mask, channel_mask=args.channel_mask,
        speed_tasks=parse_list(args.speed_tasks), speed_experts=parse_list(args.speed_experts),
        excerpt_tasks=parse_list(args.excerpt_tasks),
        speed_teachers=args.speed_teachers,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, progress=not args.no_progress,
        train_encoder=args.train_encoder, init_encoder=args.init_encoder, encoder_layers=args.encoder_layers,
        tower_variants=parse_list(args.tower_variants), tower_cache=args.tower_cache,
        tower_lora_rank=args.tower_lora_rank, tower_lora_alpha=args.tower_lora_alpha, tower_anchor_weight=args.tower_anchor_weight, clip_seconds=args.clip_seconds, answer_weight=args.answer_weight,
        freeze_llm=args.freeze_llm, lora=args.lora, lora_r=args.lora_r,
        expert_losses=not args.no_expert_losses, expert_weights=weights, expert_strides=strides,
        expert_scale_end=args.expert_scale_end,
        holdout_speakers=parse_list(args.holdout_speakers), holdout_sources=parse_list(args.holdout_sources),
        val_speakers=parse_list(args.val_speakers), val_fraction=args.val_fraction,
        augment=AugmentConfig(crop_seconds=args.crop_seconds, gain_db=args.gain_db, noise_snr_db=args.noise_snr_db),
        teacher_cache=args.teacher_cache, device=args.device, **extra,
    )


def run(args) -> int:
    import sys

    from pydantic import ValidationError

    from edge_coat.data.folder import DatasetError
    from edge_coat.train.pipeline import train

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    try:
        config = config_from_args(args)
        model_dir = train(config, args.out, resume=args.resume)
    except (ValidationError, DatasetError, ValueError) as exc:
        print(f"edge-coat train: {exc}", file=sys.stderr)
        return 2
    print(f"trained model written to {model_dir}")
    return 0
