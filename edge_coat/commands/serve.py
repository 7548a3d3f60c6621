"""``edge-coat serve``: the gRPC event service over the durable event log.

It is the serve role of the service (``Service(cfg, roles=("serve",))``): the event service over the log
file the worker writes, /metrics on ``metrics.roles.serve`` (subscribers, events read from the log by
kind and phase, the log head), and a graceful stop on SIGTERM/SIGINT (the last events fanned out, health
NOT_SERVING, subscribers closed with a resume cursor). With ``-c/--config`` the whole site config is
validated; the flags below override its ``events:`` (and ``--grace``, ``--metrics-listen``,
``--console-listen`` its ``service.grace_s``, ``metrics.roles.serve`` and ``console``) before
validation. Without ``--config`` the flags are the whole config and /metrics is off unless
``--metrics-listen`` is given (the console, unless ``--console-listen`` is).

Prints ``edge-coat serve: listening on port N, log PATH[, metrics on port M][, console on http(s) port
C]`` once it serves, and a JSON line ``{"stopped": true, ...}`` after the stop. Exit 2: invalid config; 1: could not start.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_coat.errors import debug_traceback

HELP = "run the gRPC event service over the durable event log (SQLite file shared with the worker)"


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
    parser.add_argument("--grace", type=float,
                        help="seconds given to clients on shutdown (overrides service.grace_s, default 3)")
    parser.add_argument("--metrics-listen", metavar="HOST:PORT",
                        help="serve /metrics here (overrides metrics.roles.serve; turns metrics on)")
    parser.add_argument("--console-listen", metavar="HOST:PORT",
                        help="serve the operator web console here (overrides console.listen; turns it on)")


def _section(site: dict, name: str, source) -> dict:
    from edge_coat.config import ConfigError

    section = site.get(name)
    if section is not None and not isinstance(section, dict):
        raise ConfigError([f"{name}: expected a mapping of fields, got {type(section).__name__}"], source)
    return dict(section or {})


def load_site_config(args: argparse.Namespace):
    """The SiteConfig serve runs on: --config (read, not yet validated) with the command-line overrides
    merged into its sections, then validated whole. Raises ConfigError naming every problem."""
    from edge_coat.config import ConfigError, file_problems, read_config, validate_config

    source = args.config
    site = read_config(Path(source)) if source else {"metrics": {"enabled": False}}
    events = {"db_path": args.db, "listen": args.listen, "tokens_file": getattr(args, "tokens", None),
              "heartbeat_s": getattr(args, "heartbeat", None)}
    events = {k: v for k, v in events.items() if v is not None}
    if args.insecure:
        events["insecure"] = True
    if getattr(args, "tls_cert", None) or getattr(args, "tls_key", None):
        events["tls"] = {"cert_file": args.tls_cert, "key_file": args.tls_key, "client_ca_file": args.client_ca}
    if events:  # the overrides go in before validation, so e.g. --insecure can stand in for a missing tls:
        site["events"] = {**_section(site, "events", source), **events}
    if getattr(args, "grace", None) is not None:
        site["service"] = {**_section(site, "service", source), "grace_s": args.grace}
    if getattr(args, "metrics_listen", None):
        metrics = _section(site, "metrics", source)
        roles = metrics.get("roles") if isinstance(metrics.get("roles"), dict) else {}
        site["metrics"] = {**metrics, "enabled": True, "roles": {**roles, "serve": args.metrics_listen}}
    if getattr(args, "console_listen", None):
        site["console"] = {**_section(site, "console", source), "enabled": True, "listen": args.console_listen}
    try:
        cfg = validate_config(site)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None
    cfg.require("events", command="edge-coat serve")
    problems = file_problems(cfg, ("events",))
    if problems:
        raise ConfigError(problems, source)
    return cfg


def run(args: argparse.Namespace) -> int:
    from edge_coat.commands._stage import reload_tokens_on_sighup, stop_on_signals
    from edge_coat.service import Service, configure_logging

    try:
        cfg = load_site_config(args)
    except (ValueError, OSError) as exc:  # ConfigError is a ValueError
        debug_traceback(exc)
        print(f"edge-coat serve: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if args.config:
        configure_logging(cfg.logging, getattr(args, "verbose", 0))
    stop = stop_on_signals("serve")
    service = Service(cfg, roles=("serve",))
    try:
        service.start()
    except (OSError, ValueError, RuntimeError) as exc:
        debug_traceback(exc)
        print(f"edge-coat serve: cannot start: {exc}", file=sys.stderr)
        return 1
    reload_tokens_on_sighup(service)
    metrics = f", metrics on port {service.metrics_port}" if service.metrics_port is not None else ""
    console = f", console on {service.console.scheme} port {service.console_port}" if service.console else ""
    print(f"edge-coat serve: listening on port {service.grpc_port}, log {cfg.events.db_path}{metrics}{console}",
          flush=True)
    stop.wait()
    summary = service.stop()
    print(json.dumps({"stopped": True, **summary}), flush=True)
    return 0
