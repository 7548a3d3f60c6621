"""``edge-coat capture``: stream sources to a worker.

With ``-c/--config site.yaml`` it is the production capture process: the ``capture:`` section's sources
and link (``Service(cfg, roles=("capture",))``), metrics from ``metrics:``, until SIGTERM/SIGINT or until
every source has ended; then what was captured is flushed to the worker. Exit 2: the config is invalid
(systemd does not restart on it); 1: the capture could not start or lost audio. Without ``--config``, the
flags below (``--source``, ``--stream-id``, ``--connect``, ...) describe the sources instead.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from edge_coat.errors import debug_traceback

HELP = "stream audio sources (mic, RTSP, files, generated) to a worker over ZeroMQ"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", type=Path,
                        help="site config: stream its capture: section (instead of --source/--stream-id/--connect)")
    parser.add_argument("--source", action="append", metavar="URI",
                        help="rtsp://..., mic:[DEVICE], gen:sine?freq=440, or a file; repeat for several")
    parser.add_argument("--stream-id", action="append", metavar="ID",
                        help="stream name, one per --source, in the same order")
    parser.add_argument("--connect", metavar="ENDPOINT", help="worker endpoint, tcp://host:port")
    parser.add_argument("--chunk-ms", type=int, default=100, help="audio per message (default 100)")
    parser.add_argument("--realtime", action="store_true", help="files: pace at real time")
    parser.add_argument("--loop", action="store_true", help="files: loop forever")
    parser.add_argument("--buffer-s", type=float, default=30.0, help="replay buffer per stream, seconds")
    parser.add_argument("--format", choices=["s16le", "f32le"], default="s16le", help="PCM format on the wire")
    parser.add_argument("--secret-key", type=Path, help="this client's *.key_secret (enables CurveZMQ)")
    parser.add_argument("--server-key", type=Path, help="the worker's public *.key (with --secret-key)")
    parser.add_argument("--state-dir", type=Path,
                        help="files: record how far the worker acknowledged each file here and resume from it on a "
                        "restart (default: no record; every run sends its files whole)")
    parser.add_argument("--status-every", type=float, default=10.0, help="log status every N s (0: never)")


def run_from_config(path: Path, verbose: int = 0) -> int:
    """The capture role of the site config until SIGTERM/SIGINT or the end of every source."""
    import sys

    from edge_coat.commands._stage import CONFIG_ERROR, load_site_config, stop_on_signals
    from edge_coat.service import Service, configure_logging

    cfg = load_site_config(path, "capture", "capture")
    if cfg is None:
        return CONFIG_ERROR
    configure_logging(cfg.logging, verbose)
    stop = stop_on_signals("capture")
    service = Service(cfg, roles=("capture",))
    try:
        service.start()
    except ValueError as exc:  # open_source: a source URI of no known kind is a config error, not a crash
        debug_traceback(exc)
        print(f"edge-coat capture: invalid config: capture.sources: {exc}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:
        debug_traceback(exc)
        print(f"edge-coat capture: cannot start: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"ready": True, "streams": [sc.stream_id for sc in cfg.capture.sources],
                      "endpoint": cfg.capture.sender.endpoint, "metrics_port": service.metrics_port}), flush=True)
    while not stop.wait(0.2):
        if service.sources_ended():
            break
    errors = sum(t.errors for t in service.capture_threads)
    summary = service.stop()
    print(json.dumps({"stopped": True, "source_errors": errors, **summary}), flush=True)
    return 1 if errors or summary.get("lost_audio") else 0


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from pydantic import ValidationError

    from edge_coat.capture.config import CaptureConfig
    from edge_coat.capture.runner import start_capture_threads
    from edge_coat.errors import INVALID_INPUT, UserError, flag_problems
    from edge_coat.transport.sender import Sender

    flags = {"--source": args.source, "--stream-id": args.stream_id, "--connect": args.connect}
    if args.config is not None:
        given = [name for name, value in flags.items() if value]
        if given:
            raise UserError(f"expected either --config or {', '.join(flags)}, got --config with "
                            f"{', '.join(given)}", INVALID_INPUT)
        return run_from_config(args.config, getattr(args, "verbose", 0))
    missing = [name for name, value in flags.items() if not value]
    if missing:
        raise UserError(f"expected --config FILE, or --source, --stream-id and --connect; "
                        f"missing {', '.join(missing)}", INVALID_INPUT)
    log = logging.getLogger("capture")
    if len(args.source) != len(args.stream_id):
        raise UserError(f"expected one --stream-id per --source, got {len(args.stream_id)} for {len(args.source)}",
                        INVALID_INPUT)
    curve = None
    if args.secret_key or args.server_key:
        curve = {"secret_key_file": args.secret_key, "server_public_key_file": args.server_key}
    try:
        cfg = CaptureConfig(
            sources=[{"uri": u, "stream_id": s, "chunk_ms": args.chunk_ms, "realtime": args.realtime,
                      "loop": args.loop} for u, s in zip(args.source, args.stream_id)],
            sender={"endpoint": args.connect, "buffer_s": args.buffer_s, "sample_format": args.format,
                    "curve": curve},
            state_dir=args.state_dir,
        )
        sender = Sender(cfg.sender)
        threads = start_capture_threads(cfg.sources, sender, cfg.state_dir)
    except ValidationError as exc:
        raise UserError(flag_problems(exc), INVALID_INPUT) from None
    except ValueError as exc:
        raise UserError(str(exc), INVALID_INPUT) from None
    sender.start()
    try:
        last = time.monotonic()
        while not all(t.ended.is_set() for t in threads):
            time.sleep(0.2)
            if args.status_every and time.monotonic() - last >= args.status_every:
                last = time.monotonic()
                log.info("status: %s link: %s", {t.stream_id: t.status() for t in threads},
                         {k: v for k, v in sender.stats().items() if k != "streams"})
        sender.wait_acked(10.0)
        for t in threads:
            t.record_progress()
    except KeyboardInterrupt:
        pass
    finally:
        for t in threads:
            t.stop()
        sender.close()
    return 1 if any(t.errors for t in threads) else 0
