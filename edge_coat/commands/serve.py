"""``edge-coat serve``: the gRPC event service over the durable event log."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

HELP = "run the gRPC event service over the durable event log (SQLite file shared with the worker)"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config",
                        help="site config (YAML, TOML or JSON), validated whole; its events: section is used")
    parser.add_argument("--db", help="event log file (overrides events.db_path)")
    parser.add_argument("--listen", help="host:port to listen on, port 0 for any (overrides events.listen)")
    parser.add_argument("--tokens", help="tokens file: client tokens and their stream scopes")
    parser.add_argument("--tls-cert", help="server certificate (PEM)")
    parser.add_argument("--tls-key", help="server private key (PEM)")
    parser.add_argument("--client-ca", help="CA of client certificates: turns on mutual TLS")
    parser.add_argument("--insecure", action="store_true", help="allow plaintext and no tokens (tests/demos only)")
    parser.add_argument("--heartbeat", type=float, help="heartbeat period in seconds")
    parser.add_argument("--grace", type=float, default=3.0, help="seconds given to clients on shutdown")


def load_events_config(args: argparse.Namespace):
    """EventsConfig from --config plus command-line overrides (ValueError with the reason if invalid).

    With --config the whole file is validated as a site config (ConfigError naming every problem), with the
    overrides applied to its events: section first, so e.g. --insecure can stand in for a missing tls:."""
    from edge_coat.events.config import EventsConfig

    data: dict = {}
    overrides = {"db_path": args.db, "listen": args.listen, "tokens_file": getattr(args, "tokens", None),
                 "heartbeat_s": getattr(args, "heartbeat", None)}
    data.update({k: v for k, v in overrides.items() if v is not None})
    if args.insecure:
        data["insecure"] = True
    if getattr(args, "tls_cert", None) or getattr(args, "tls_key", None):
        data["tls"] = {"cert_file": args.tls_cert, "key_file": args.tls_key, "client_ca_file": args.client_ca}
    if not args.config:
        return EventsConfig.model_validate(data)
    # the site config's own reader (format by suffix, ConfigError on syntax); the overrides go in before validation
    from edge_coat.config import ConfigError
    from edge_coat.config import _read as read_config_file
    from edge_coat.config import validate_config

    site = read_config_file(Path(args.config))
    section = site.get("events")
    if section is not None and not isinstance(section, dict):
        raise ConfigError([f"events: expected a mapping of fields, got {type(section).__name__}"], args.config)
    if section is not None or data:
        site["events"] = {**(section or {}), **data}
    try:
        cfg = validate_config(site)
    except ConfigError as exc:
        raise ConfigError(exc.problems, args.config) from None
    cfg.require("events", command="edge-coat serve")
    return cfg.events


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from edge_coat.events.control import LogStreamControl
    from edge_coat.events.service import EventServer

    try:
        config = load_events_config(args)
    except (ValidationError, ValueError, OSError) as exc:
        print(f"edge-coat serve: invalid configuration: {exc}", file=sys.stderr)
        return 2
    server = EventServer(config)
    server.control = LogStreamControl(server.log)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        port = server.start()
    except (OSError, ValueError) as exc:
        print(f"edge-coat serve: cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"edge-coat serve: listening on port {port}, log {config.db_path}", flush=True)
    stop.wait()
    logger.info("shutting down (grace %.1f s)", args.grace)
    server.stop(grace=args.grace)
    return 0
