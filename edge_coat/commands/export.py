"""``edge-coat export``: thinking block to ONNX, parity against torch, verified bundle."""

from __future__ import annotations

import argparse
import sys

HELP = "export the thinking block to ONNX, check parity against torch and write a verified model bundle"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder (base weights + tokenizer, and CoAT files unless --coat)")
    parser.add_argument("--coat", default=None, help="separate CoAT weights folder (coat_config.json, coat.safetensors)")
    parser.add_argument("--out", required=True, help="bundle folder to write (must not exist unless --force)")
    parser.add_argument("--coat-only", action="store_true",
                        help="write only the CoAT part (for a site that keeps its base checkpoint in its own folder)")
    parser.add_argument("--name", default=None, help="bundle name (default: the source manifest's, else the folder name)")
    parser.add_argument("--version", default="", help="bundle version")
    parser.add_argument("--license", default="", help="license of the weights (default: the source manifest's)")
    parser.add_argument("--provenance", action="append", default=None,
                        help="a training dataset and its license (repeat; default: the source manifest's)")
    parser.add_argument("--base-model", default="", help="upstream checkpoint name, e.g. Qwen/Qwen2-Audio-7B-Instruct")
    parser.add_argument("--notes", default="", help="free text for operators")
    parser.add_argument("--parity-data", default=None,
                        help="dataset folder (labels.csv + audio) whose first clips are used as real parity windows")
    parser.add_argument("--parity-clips", type=int, default=4, help="how many real clips to compare (default 4)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference allowed (default 1e-4)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--encoder", action=argparse.BooleanOptionalAction, default=None,
                        help="also export the audio encoder + projector (encoder.onnx) with its parity check; "
                        "default: on for a whole Qwen2-Audio-family model, off otherwise (other families keep "
                        "the encoder in torch)")


def run(args: argparse.Namespace) -> int:
    from edge_coat.export.bundle import export_bundle
    from edge_coat.model.manifest import BundleError
    from edge_coat.export.parity import ParityError, load_real_waves

    real = None
    try:
        if args.parity_data:
            real = load_real_waves(args.parity_data, args.parity_clips, max_seconds=_max_seconds(args))
        manifest = export_bundle(
            args.model, args.out, coat_dir=args.coat, coat_only=args.coat_only, name=args.name,
            version=args.version, license=args.license, data_provenance=args.provenance,
            base_model=args.base_model, notes=args.notes, real_waves=real, tolerance=args.tolerance,
            force=args.force, encoder=args.encoder,
        )
    except ParityError as exc:
        print(f"parity failed, no bundle written: {exc}", file=sys.stderr)
        return 1
    except (BundleError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {manifest.role} bundle {manifest.name} ({manifest.family}) to {args.out}: {len(manifest.files)} files")
    for p in manifest.parity:
        print(f"{p.component} parity ({p.file}, fp32, {p.runtime}): max abs diff {p.max_abs_diff:.3g} <= "
              f"{p.tolerance:g} over {len(p.cases)} cases")
        for c in p.cases:
            print(f"  {c.source:9} B={c.batch:<3d} T={c.frames:<5d} {c.max_abs_diff:.3g}")
    return 0


def _max_seconds(args: argparse.Namespace) -> float:
    """The encoder's window limit, read from the model's config without loading weights."""
    from pathlib import Path

    from transformers import AutoConfig

    from edge_coat.model.audio import HOP
    from edge_coat.messages import SAMPLE_RATE

    config = AutoConfig.from_pretrained(str(Path(args.model)), local_files_only=True)
    frames = 2 * int(config.audio_config.max_source_positions)
    return frames * HOP / SAMPLE_RATE
