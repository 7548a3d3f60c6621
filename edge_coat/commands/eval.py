"""``edge-coat eval``: evaluate a model on a labelled dataset folder (command-line contract)."""

from __future__ import annotations

import logging
from pathlib import Path

HELP = "evaluate a model on a labelled dataset folder (accuracy/UA/macro F1, or anomaly AUC/pAUC)"

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="model directory (CoatModel.save_pretrained)")
    parser.add_argument("--coat-path", help="a separate CoAT folder loaded over --model's base (the site config's "
                                            "model.coat_path, e.g. models/coat-tiny-desk)")
    parser.add_argument("--task", required=True, choices=("emotion", "anomaly", "events"), help="task to evaluate")
    parser.add_argument("--data", required=True, help="dataset folder: labels.csv (file,label[,...]) + audio")
    parser.add_argument("--label-map", help="JSON object (inline or a file) from dataset labels to model labels; "
                        "null drops a label; predictions are restricted to the mapped labels")
    parser.add_argument("--json", dest="json_out", help="write the results as JSON here")
    parser.add_argument("--no-thinking", action="store_true", help="ablation: the same weights without the thinking block")
    parser.add_argument("--no-readout", action="store_true",
                        help="ablation: the LLM's answers alone, without the model's linear answer readout")
    parser.add_argument("--enroll", type=int, help="anomaly: normal clips (per machine) used for enrollment, "
                        "first in file order (default: half)")
    parser.add_argument("--anomaly-features", choices=("mel", "thinking", "mel+thinking"),
                        help="anomaly: what the normal profile compares (default: the detector's default, mel)")
    parser.add_argument("--anomaly-k", type=int, help="anomaly: kNN neighbours (default: the detector's default)")
    parser.add_argument("--model-weight", type=float,
                        help="anomaly: weight of the model's P(abnormal) in the fused score (default: the detector's)")
    parser.add_argument("--holdout-speakers", help="evaluate only these speakers (comma list or file), e.g. 14,15,16")
    parser.add_argument("--holdout-sources", help="evaluate only these source recordings (UrbanSound8K fsIDs; list or file)")
    parser.add_argument("--loudness-norm", type=float, metavar="DBFS",
                        help="normalise every clip to this RMS level first (e.g. -26), so loudness alone cannot decide")
    parser.add_argument("--channel", default="clean", choices=("clean", "telephone"),
                        help="pass every clip through this channel first (telephone: 300-3400 Hz, 8 kHz, G.711 mu-law)")
    parser.add_argument("--snr-db", type=float, metavar="DB",
                        help="add pink background noise at this SNR to every clip (the same noise for every model)")
    parser.add_argument("--baseline-context", default=None, choices=("speaker", "calm", "desk", "none"),
                        help="emotion/events with a readout relative to a stream's baseline: each clip is scored after "
                             "other clips of its speaker (speaker: up to the model's baseline windows), after the "
                             "speaker's neutral and calm clips only (calm: a caller heard calm first), after every "
                             "other clip of the --data folder, every speaker's (desk: a desk that has heard its "
                             "callers; --holdout-speakers only picks what is scored), or as a stream's first window "
                             "(none); default: the model's own kind (speaker or desk)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per forward pass (default 8)")
    parser.add_argument("--quantization", default="fp32", choices=("fp32", "int8", "nf4"),
                        help="how to load the LLM (the site config's model.quantization)")
    parser.add_argument("--encoder-quantization", default="fp32", choices=("fp32", "int8"),
                        help="int8: dynamic int8 of the torch audio encoder and projector (model.encoder.quantization)")
    parser.add_argument("--device", default=None, help="torch device (default: the model's load device, CPU)")
    parser.add_argument("--predictions", help="also write per-clip predictions (csv) here")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="emotion/events: 95%% intervals of accuracy and UA over N clip resamples (default "
                             "%(default)s; 0: none)")


def run(args) -> int:
    import csv
    import sys
    from pathlib import Path

    from edge_coat.data.folder import DatasetError, DatasetFolder
    from edge_coat.train.data import group_of, parse_list
    from edge_coat.train.evaluate import evaluate_anomaly, evaluate_classification
    from edge_coat.train.labelmap import apply_label_map, parse_label_map
    from edge_coat.train.report import eval_document, format_confusion, format_table, write_json

    try:
        if args.snr_db is not None and not -20.0 <= args.snr_db <= 80.0:  # also refuses nan
            raise ValueError(f"--snr-db must be between -20 and 80 dB, got {args.snr_db}")
        if args.bootstrap < 0:
            raise ValueError(f"--bootstrap must be >= 0 resamples (0: no interval), got {args.bootstrap}")
        mapping = parse_label_map(args.label_map)
        folder = DatasetFolder(args.data)
    except (ValueError, DatasetError) as exc:
        print(f"edge-coat eval: {exc}", file=sys.stderr)
        return 2
    from edge_coat.model.coat import CoatModel

    if args.coat_path and not (Path(args.coat_path) / "coat_config.json").is_file():
        print(f"edge-coat eval: --coat-path {args.coat_path} holds no coat_config.json: give a CoAT folder "
              "(e.g. models/coat-tiny-desk)", file=sys.stderr)
        return 2
    model = CoatModel.from_pretrained(args.model, quantization=args.quantization, device=args.device,
                                      coat_dir=args.coat_path)
    if args.encoder_quantization == "int8":
        model.quantize_encoder_int8()
    model.use_readout = not args.no_readout
    if args.task not in model.config.tasks:
        print(f"edge-coat eval: model {args.model} has no task {args.task!r} (it has {sorted(model.config.tasks)})",
              file=sys.stderr)
        return 2
    clips = folder.clips
    wanted = {f"speaker:{s}" for s in parse_list(args.holdout_speakers)}
    wanted |= {f"source:{s}" for s in parse_list(args.holdout_sources)}
    if wanted:
        clips = [c for c in clips if group_of(c) in wanted]
        if not clips:
            print(f"edge-coat eval: no clip of {args.data} belongs to {sorted(wanted)}", file=sys.stderr)
            return 2
    try:
        clips, candidates = apply_label_map(clips, mapping, model.config.tasks[args.task].labels)
        common = dict(use_thinking=not args.no_thinking, batch_size=args.batch_size,
                      loudness_dbfs=args.loudness_norm, progress=sys.stderr.isatty(), model_name=str(args.model),
                      channel=args.channel, snr_db=args.snr_db)
        if args.task == "anomaly":
            from edge_coat.detectors.config import AnomalyConfig

            overrides = {"features": args.anomaly_features, "k": args.anomaly_k, "model_weight": args.model_weight}
            config = AnomalyConfig(**{k: v for k, v in overrides.items() if v is not None})
            result = evaluate_anomaly(model, clips, enroll=args.enroll, config=config, **common)
        else:
            result = evaluate_classification(model, args.task, clips, candidates, bootstrap=args.bootstrap,
                                             baseline_context=args.baseline_context, desk_clips=folder.clips,
                                             **common)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        print(f"edge-coat eval: {exc}", file=sys.stderr)
        return 2

    mode = "".join(m for m, on in ((" (no thinking)", args.no_thinking), (" (no readout)", args.no_readout)) if on)
    print(f"{args.task} on {args.data}: {result.n} clips, model {args.model}{mode}")
    m = result.metrics
    if args.task == "anomaly":
        print(format_table(["class", "n", "mean score", "share > 0.5"],
                           [[k, v["n"], v["mean_score"], v["above_0.5"]] for k, v in result.per_class.items()]))
        faults = result.per_class["abnormal"].get("by_fault", {})
        if faults:
            print(format_table(["fault", "n", "AUC", "pAUC"], [[f, v["n"], v["auc"], v["pauc"]] for f, v in faults.items()]))
        print(f"profile: {m['features']} features, {m['method']} k={m['k']}, model weight {m['model_weight']:g}")
        print(format_table(["score", "AUC", f"pAUC (FPR<={m['max_fpr']:g})"],
                           [["fused", m["auc"], m["pauc"]], ["distance only", m["auc_distance"], m["pauc_distance"]],
                            ["model only", m["auc_model"], m["pauc_model"]]]))
    else:
        print(format_table(["class", "precision", "recall", "F1", "support"],
                           [[k, v["precision"], v["recall"], v["f1"], v["support"]] for k, v in result.per_class.items()]))
        print(format_confusion(m["labels"], m["confusion"]))
        print(format_table(["accuracy", "UA", "macro F1"], [[m["accuracy"], m["ua"], m["macro_f1"]]]))
        if "readout_baseline" in m:
            b = m["readout_baseline"]
            whose = "the desk's long-run" if b.get("kind") == "desk" else "the caller's"
            print(f"readout relative to {whose} baseline: context {b['context']}, up to {b['windows']} earlier "
                  f"windows; {b['clips_with_context']} of {result.n} clips had one")
        if "ci95" in m:
            ci = m["ci95"]
            print(f"95% interval over {m['ci95_resamples']} clip resamples: accuracy {ci['accuracy'][0]:.3f}-"
                  f"{ci['accuracy'][1]:.3f}, UA {ci['ua'][0]:.3f}-{ci['ua'][1]:.3f}")
    if args.json_out:
        write_json(args.json_out, eval_document(result.task, result.model, result.n, result.metrics, result.per_class))
        print(f"wrote {args.json_out}")
    if args.predictions:
        Path(args.predictions).parent.mkdir(parents=True, exist_ok=True)
        with open(args.predictions, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["file", "prediction", "score"])
            w.writerows(result.predictions)
    return 0
