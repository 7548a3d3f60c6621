"""``edge-coat probe``: linear probes of the thinking vs audio positions for each expert, at several layers."""

from __future__ import annotations

HELP = "linear probes: what thinking vs audio positions hold about each expert (R^2) and the labels (accuracy)"


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="model directory")
    parser.add_argument("--data", required=True, help="dataset folder (labels.csv + audio)")
    parser.add_argument("--task", required=True, choices=("emotion", "anomaly", "events"),
                        help="the task whose prompt follows the thinking block")
    parser.add_argument("--experts", help="comma list of experts to probe (default: the model's experts)")
    parser.add_argument("--layers", help="comma list of hidden-state indices (0 = embeddings; default 0, middle, "
                        "supervised, last)")
    parser.add_argument("--holdout-speakers", help="probe only these speakers (comma list or file)")
    parser.add_argument("--holdout-sources", help="probe only these source recordings (list or file)")
    parser.add_argument("--max-clips", type=int, default=0, help="use at most this many clips (file order; 0 = all)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--teacher-cache", default=".cache/teacher", help="teacher-target cache directory")
    parser.add_argument("--json", dest="json_out", help="write the table as JSON here")


def run(args) -> int:
    import sys

    from edge_coat.data.folder import DatasetError, DatasetFolder
    from edge_coat.train.data import group_of, parse_list
    from edge_coat.train.probe import run_probes
    from edge_coat.train.report import format_table, write_json

    try:
        clips = DatasetFolder(args.data).clips
    except DatasetError as exc:
        print(f"edge-coat probe: {exc}", file=sys.stderr)
        return 2
    wanted = {f"speaker:{s}" for s in parse_list(args.holdout_speakers)}
    wanted |= {f"source:{s}" for s in parse_list(args.holdout_sources)}
    if wanted:
        clips = [c for c in clips if group_of(c) in wanted]
    if args.max_clips > 0:
        clips = clips[: args.max_clips]

    from edge_coat.experts import TeacherCache, get_experts
    from edge_coat.model.coat import CoatModel

    model = CoatModel.from_pretrained(args.model)
    if args.task not in model.config.tasks:
        print(f"edge-coat probe: model has no task {args.task!r} (it has {sorted(model.config.tasks)})", file=sys.stderr)
        return 2
    names = parse_list(args.experts) or [e.name for e in model.config.experts]
    try:
        experts = get_experts(names)
        layers = [int(x) for x in parse_list(args.layers)] or None
        rows = run_probes(model, clips, model.config.tasks[args.task].prompt, experts, TeacherCache(args.teacher_cache),
                          layers=layers, folds=args.folds, progress=sys.stderr.isatty())
    except ValueError as exc:
        print(f"edge-coat probe: {exc}", file=sys.stderr)
        return 2
    print(f"probes on {args.data}: {len(clips)} clips, model {args.model} (out-of-fold, {args.folds}-fold CV)")
    print(format_table(["target", "metric", "layer", "thinking", "audio", "thinking - audio"],
                       [[r.target, r.metric, r.layer, r.thinking, r.audio, r.thinking - r.audio] for r in rows]))
    if args.json_out:
        write_json(args.json_out, {
            "model": str(args.model), "data": str(args.data), "task": args.task, "n": len(clips), "folds": args.folds,
            "results": [r.__dict__ for r in rows],
        })
        print(f"wrote {args.json_out}")
    return 0
