"""``edge-coat status``: what the event service knows (streams, model, enrollment); enrollment control."""

from __future__ import annotations

import argparse
import json
import sys
import time

from edge_coat.commands.events import add_client_arguments, make_client

HELP = "show the status of a running service (streams, model, enrollment); start/stop enrollment"


def _windows(text: str) -> int:
    from edge_coat.detectors.config import MAX_ENROLL_WINDOWS

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of windows, got {text!r}") from None
    if not 0 <= value <= MAX_ENROLL_WINDOWS:
        raise argparse.ArgumentTypeError(f"expected 0 (the default) to {MAX_ENROLL_WINDOWS} windows, got {value}")
    return value


def _seconds(text: str) -> float:
    import math

    from edge_coat.detectors.config import MAX_ENROLL_SECONDS

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= MAX_ENROLL_SECONDS):
        raise argparse.ArgumentTypeError(f"expected 0 to {MAX_ENROLL_SECONDS:g} seconds, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--enroll", metavar="STREAM", help="start enrollment of STREAM's normal sound")
    parser.add_argument("--windows", type=_windows, default=0, help="with --enroll: windows to collect")
    parser.add_argument("--seconds", type=_seconds, default=0.0, help="with --enroll: seconds of audio to collect")
    parser.add_argument("--stop-enroll", metavar="STREAM", help="stop enrollment and fit on what was collected")
    parser.add_argument("--discard", action="store_true", help="with --stop-enroll: discard instead of fitting")


def run(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format

    client = make_client(args)
    try:
        if args.enroll:
            st = client.start_enrollment(args.enroll, windows=args.windows, seconds=args.seconds)
            print(f"{st.stream_id}: enrollment {st.state} ({st.message})")
            return 0
        if args.stop_enroll:
            st = client.stop_enrollment(args.stop_enroll, discard=args.discard)
            print(f"{st.stream_id}: enrollment {st.state} ({st.message})")
            return 0
        status = client.get_status()
    except grpc.RpcError as exc:
        print(f"edge-coat status: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if args.json:
        print(json.dumps(json_format.MessageToDict(status, preserving_proto_field_name=True), indent=2))
        return 0
    print(f"edge-coat {status.version}: up {status.uptime_s:.0f} s, events {status.oldest}..{status.head} "
          f"({status.events_stored} stored), {status.subscribers} subscriber(s)")
    if not status.streams:
        print("no streams reported by the worker")
    for s in status.streams:
        seen = time.strftime("%H:%M:%S", time.localtime(s.last_window_ts)) if s.last_window_ts else "never"
        model = f"{s.model_name} {s.model_version}".strip() or "?"
        episodes = ", ".join(f"{name} {d.active_episode}" for name, d in sorted(s.detectors.items())
                             if d.active_episode) or "none"
        print(f"  {s.stream_id}: last window {seen}, {s.windows} windows, model {model}; enrollment "
              f"{s.enrollment.state} ({s.enrollment.message}); open episodes: {episodes}")
    return 0
