"""``edge-coat keys``: create CurveZMQ key pairs for workers and capture clients."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "create CurveZMQ key pairs for capture clients and workers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", help="one key pair per name, e.g. worker press-hall-capture")
    parser.add_argument("--dir", type=Path, default=Path("keys"), help="output folder (default: ./keys)")
    parser.add_argument("--force", action="store_true", help="overwrite existing key files")


def run(args: argparse.Namespace) -> int:
    from edge_coat.transport.auth import create_keypair

    for name in args.names:
        if (args.dir / f"{name}.key_secret").exists() and not args.force:
            from edge_coat.errors import UserError

            raise UserError(f"{args.dir / name}.key_secret exists; use --force to overwrite")
        public, secret = create_keypair(args.dir, name)
        print(f"{name}: public {public}  secret {secret}")
    print(
        "Copy each client's public *.key into the worker's allowed_clients_dir, and the worker's public "
        "*.key to each client. Secret files stay where they were made."
    )
    return 0
