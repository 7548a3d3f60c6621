"""``edge-coat worker``: receive streams, window and gate them, run a model stage on batches.

With ``--config site.yaml`` it is the production worker: the model stage from the ``model:``
section (`edge_coat.worker.coat_stage.CoatStage`), the detectors, events written to the shared
event log (a separate ``edge-coat serve`` reads it), metrics; graceful stop on SIGTERM. Without
``--config``, the flags below run the stand-in ``noop`` stage (windowing only: tests, benchmarks).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HELP = "window, gate and analyse incoming streams with the model; emit events"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", type=Path,
                        help="site config: run the model stage, detectors and event log from it (other flags ignored)")
    parser.add_argument("--bind", default="tcp://127.0.0.1:5555",
                        help="endpoint to bind (default tcp://127.0.0.1:5555: this host only; another address needs "
                        "--secret-key/--allowed-clients or --insecure)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback --bind without CurveZMQ (isolated test networks only)")
    parser.add_argument("--stage", choices=["noop"], default="noop", help="model stage (noop: windowing only)")
    parser.add_argument("--window-s", type=float, default=2.0, help="window length, seconds")
    parser.add_argument("--hop-s", type=float, default=1.0, help="hop between windows, seconds")
    parser.add_argument("--task", action="append", default=None, help="task name (repeatable; default anomaly)")
    parser.add_argument("--min-rms-dbfs", type=float, default=-70.0, help="skip windows quieter than this")
    parser.add_argument("--max-batch", type=int, default=16, help="windows per model call")
    parser.add_argument("--max-wait-s", type=float, default=0.05, help="longest wait for a fuller batch")
    parser.add_argument("--secret-key", type=Path, help="the worker's *.key_secret (enables CurveZMQ)")
    parser.add_argument("--allowed-clients", type=Path, help="folder of allowed client public *.key files")
    parser.add_argument("--print-windows", action="store_true", help="print one JSON line per window result")
    parser.add_argument("--stats-every", type=float, default=10.0, help="print stats every N s (0: never)")
    parser.add_argument("--duration-s", type=float, default=0.0, help="stop after N s (0: run until Ctrl-C)")


def run_from_config(path: Path, verbose: int = 0) -> int:
    """The worker role of the site config until SIGTERM/SIGINT, then a graceful stop."""

    from edge_coat.commands._stage import CONFIG_ERROR, load_site_config, start_service, stop_on_signals
    from edge_coat.service import Service, configure_logging

    cfg = load_site_config(path, "worker", "worker", "model", "events")
    if cfg is None:
        return CONFIG_ERROR
    configure_logging(cfg.logging, verbose)
    stop = stop_on_signals("worker")
    service = Service(cfg, roles=("worker",))
    failed = start_service(service, "worker")
    if failed is not None:
        return failed
    print(json.dumps({"ready": True, "worker_endpoint": service.worker_endpoint,
                      "metrics_port": service.metrics_port, "model": service.model_info()}), flush=True)
    stop.wait()
    summary = service.stop()
    print(json.dumps({"stopped": True, **summary}), flush=True)
    return 0 if not summary.get("events_unwritten") else 1


def run(args: argparse.Namespace) -> int:
    if getattr(args, "config", None):
        return run_from_config(args.config, getattr(args, "verbose", 0))
    from pydantic import ValidationError

    from edge_coat.errors import INVALID_INPUT, UserError, flag_problems
    from edge_coat.worker.config import WorkerConfig
    from edge_coat.worker.service import Worker
    from edge_coat.worker.stage import NoopStage

    curve = None
    if args.secret_key or args.allowed_clients:
        curve = {"secret_key_file": args.secret_key, "allowed_clients_dir": args.allowed_clients}
    from edge_coat.transport.config import is_loopback_endpoint

    if curve is None and not args.insecure and not is_loopback_endpoint(args.bind):
        raise UserError(f"--bind {args.bind} accepts audio from other hosts without CurveZMQ; give --secret-key and "
                        "--allowed-clients (edge-coat keys), bind tcp://127.0.0.1:PORT, or add --insecure (isolated "
                        "test networks only)", INVALID_INPUT)
    tasks = {t: {"min_rms_dbfs": args.min_rms_dbfs} for t in (args.task or ["anomaly"])}
    try:
        cfg = WorkerConfig(
            receiver={"bind": args.bind, "curve": curve, "insecure": args.insecure},
            default_stream={"window_s": args.window_s, "hop_s": args.hop_s, "tasks": tasks},
            batch={"max_batch": args.max_batch, "max_wait_s": args.max_wait_s},
        )
    except ValidationError as exc:
        raise UserError(flag_problems(exc), INVALID_INPUT) from None

    def show(result) -> None:
        w = result.window
        print(json.dumps({"stream": w.stream_id, "index": w.index, "start_ts": round(w.start_ts, 3),
                          "rms_dbfs": round(w.rms_dbfs, 1), "gap_s": w.gap_seconds, "tasks": list(w.tasks)}),
              flush=True)

    try:
        worker = Worker(cfg, NoopStage(), on_result=show if args.print_windows else None)
    except ValueError as exc:
        raise UserError(str(exc), INVALID_INPUT) from None
    worker.start()
    print(f"worker listening on {worker.endpoint}", flush=True)
    t0 = last = time.monotonic()
    try:
        while not args.duration_s or time.monotonic() - t0 < args.duration_s:
            time.sleep(0.2)
            if args.stats_every and time.monotonic() - last >= args.stats_every:
                last = time.monotonic()
                print(json.dumps({"stats": worker.stats()}), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        worker.close()
    return 0
