"""``edge-coat demo``: one command, no GPU, no download (see ``edge_coat.service.demo``).

Exit status: 0 the expected anomaly was detected; 1 it was missed; 2 the demo cannot run (no model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "one-command demo on this machine with the embedded model"

EMBEDDED = Path(__file__).resolve().parents[2] / "models" / "coat-tiny"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=EMBEDDED, help=f"model folder (default: {EMBEDDED})")
    parser.add_argument("--realtime", action="store_true", help="play the scene at real time (default: faster)")
    parser.add_argument("--scene-s", type=float, default=60.0, help="length of the machine scene, seconds")
    parser.add_argument("--onset-s", type=float, help="when the fault starts developing (default: half the scene)")
    parser.add_argument("--no-speech", action="store_true", help="leave out the synthetic speech stream")
    parser.add_argument("--caller", type=Path, metavar="FILE",
                        help="a real call recording (WAV/FLAC/MP3, any rate) on the desk stream instead of synthetic "
                        "speech; the summary says whether an emotion alert fired")
    parser.add_argument("--workdir", type=Path, help="keep the scene, event log and profiles here (default: temp)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--console", action="store_true",
                        help="also serve the web console, keep the service up after the summary and print the "
                        "console's URL with a read-only token (Ctrl-C ends)")
    parser.add_argument("--console-listen", default="127.0.0.1:0", metavar="HOST:PORT",
                        help="where the console listens with --console (default: a free port on loopback)")


def run(args: argparse.Namespace) -> int:
    import logging
    import shutil

    from edge_coat.service.demo import DemoOptions, default_workdir, run_demo

    if not (args.model / "coat_config.json").is_file():
        print(f"edge-coat demo: no model in {args.model}. The embedded model models/coat-tiny is not in this "
              "checkout yet (scripts/train_coat_tiny.sh trains it); pass --model DIR with a model folder.",
              file=sys.stderr)
        return 2
    onset = args.onset_s if args.onset_s is not None else args.scene_s / 2
    enroll = min(20.0, onset - 5.0)
    if args.scene_s < 20 or not 10.0 <= onset <= args.scene_s - 8.0:
        print(f"edge-coat demo: need --scene-s >= 20 and 10 <= --onset-s <= scene - 8; got {args.scene_s:g} "
              f"and {onset:g}", file=sys.stderr)
        return 2
    if args.verbose == 0:
        root_level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # the demo's own display says what happens
    workdir = args.workdir or default_workdir()
    wait = None
    if args.console:
        from edge_coat.commands._stage import stop_on_signals

        wait = stop_on_signals("demo").wait
    opts = DemoOptions(model=args.model, workdir=workdir, scene_s=args.scene_s, onset_s=onset, enroll_s=enroll,
                       realtime=args.realtime, speech=not args.no_speech, threads=args.threads,
                       console=args.console, console_listen=args.console_listen, console_wait=wait,
                       caller=args.caller)
    try:
        result = run_demo(opts)
    except (ValueError, OSError) as exc:
        print(f"edge-coat demo: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.verbose == 0:
            logging.getLogger().setLevel(root_level)  # a caller in the same process keeps its logging
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return result.exit_code
