"""``edge-coat run -c site.yaml``: the all-in-one service (capture sources, worker, event service).

Prints one JSON line on stdout once everything listens (``{"ready": true, "grpc_port": ..., ...}``),
runs until SIGTERM/SIGINT (or, with ``--exit-when-sources-end``, until every local source has ended
and its windows are through), then stops gracefully and exits 0. Exit 2: the config is invalid (every
problem listed); 1: the service could not start (model missing, port taken, ...).
"""

from __future__ import annotations

import argparse
import json

HELP = "run the all-in-one service (capture, worker, event service) from a config file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="site config (YAML, TOML or JSON)")
    parser.add_argument("--check", action="store_true",
                        help="validate the config and the files it names on this host (model folder, TLS, keys, "
                        "tokens), then exit (0: valid, 2: not)")
    parser.add_argument("--syntax-only", action="store_true",
                        help="with --check: the config file alone, not the files it names (a config checked away "
                        "from its host)")
    parser.add_argument("--exit-when-sources-end", action="store_true",
                        help="stop gracefully once every local source has ended and its windows are through")


def run(args: argparse.Namespace) -> int:
    from edge_coat.commands._stage import (
        CONFIG_ERROR,
        load_site_config,
        reload_tokens_on_sighup,
        start_service,
        stop_on_signals,
    )
    from edge_coat.service import Service, configure_logging
    from edge_coat.service.service import ROLES

    cfg = load_site_config(args.config, "run", "worker", "model", "events", optional=("capture",),
                           files=not (args.check and args.syntax_only))
    if cfg is None:
        return CONFIG_ERROR
    if args.check:
        print(f"{args.config}: valid")
        return 0
    configure_logging(cfg.logging, getattr(args, "verbose", 0))
    stop = stop_on_signals("run")
    # capture: is optional: remote capture processes may feed this worker instead
    service = Service(cfg, roles=ROLES if cfg.capture is not None else ("worker", "serve"))
    failed = start_service(service, "run")
    if failed is not None:
        return failed
    reload_tokens_on_sighup(service)
    print(json.dumps({"ready": True, "grpc_port": service.grpc_port, "metrics_port": service.metrics_port,
                      "console_port": service.console_port, "worker_endpoint": service.worker_endpoint, "model": service.model_info()}), flush=True)
    while not stop.wait(0.2):
        if args.exit_when_sources_end and service.sources_ended() and not service.windows_pending():
            break
    summary = service.stop()
    print(json.dumps({"stopped": True, **summary}), flush=True)
    return 0 if not summary.get("events_unwritten") else 1
