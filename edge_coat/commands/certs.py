"""``edge-coat certs``: a local CA, server and client certificates, and client tokens (air-gapped sites)."""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
from pathlib import Path

HELP = "create a local CA and TLS certificates (and client tokens) for an air-gapped site"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="certs", help="output folder (the CA is reused when present)")
    parser.add_argument("--host", action="append", default=[],
                        help="server host name or IP for the certificate (repeatable; default localhost, 127.0.0.1)")
    parser.add_argument("--client", action="append", default=[], help="client certificate to issue (repeatable)")
    parser.add_argument("--token", metavar="NAME", help="instead: print a new client token entry for a tokens file")
    parser.add_argument("--streams", default="*", help="with --token: comma-separated stream patterns")
    parser.add_argument("--control", action="store_true", help="with --token: may control enrollment")
    parser.add_argument("--ack", action="store_true", help="with --token: may acknowledge alerts in the web console")


def run(args: argparse.Namespace) -> int:
    if args.token:
        token = secrets.token_urlsafe(32)
        entry = {"name": args.token, "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
                 "streams": [s.strip() for s in args.streams.split(",") if s.strip()], "control": args.control,
                 "ack": args.ack}
        print(f"token for {args.token} (give it to the client; it is not stored): {token}")
        print("add to the tokens file under 'clients:':")
        print(json.dumps(entry))
        return 0
    from edge_coat.events.certs import create_site

    hosts = tuple(args.host) or ("localhost", "127.0.0.1")
    try:
        paths = create_site(Path(args.out), hosts=hosts, clients=tuple(args.client) or ("client",))
    except (OSError, ValueError) as exc:
        print(f"edge-coat certs: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
