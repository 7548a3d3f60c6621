"""``edge-coat events``: subscribe to the event service and print events (resumes on reconnect)."""

from __future__ import annotations

import argparse
import json
import sys
import time

HELP = "subscribe to the event service and print events"


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Connection flags shared with ``edge-coat status``."""
    parser.add_argument("--server", default="127.0.0.1:50051", help="event service host:port")
    parser.add_argument("--token", help="bearer token (or the EDGE_COAT_TOKEN environment variable)")
    parser.add_argument("--ca", help="CA certificate that signed the server's (PEM)")
    parser.add_argument("--cert", help="client certificate for mutual TLS (PEM)")
    parser.add_argument("--key", help="client key for mutual TLS (PEM)")
    parser.add_argument("--insecure", action="store_true", help="plaintext connection (tests/demos only)")


def make_client(args: argparse.Namespace):
    import os

    from edge_coat.events.client import EventClient

    return EventClient(args.server, token=args.token or os.environ.get("EDGE_COAT_TOKEN"), ca_file=args.ca,
                       cert_file=args.cert, key_file=args.key, insecure=args.insecure)


def cursor_value(text: str) -> int:
    """An event id for --from: a whole number from 0 (argparse reports anything else as a usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an event id (a whole number >= 0), got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected an event id >= 0 (0: every retained event), got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("--follow", action="store_true", help="keep following live events (default: replay and exit)")
    parser.add_argument("--from", dest="from_cursor", type=cursor_value, metavar="EVENT_ID",
                        help="resume after this event id (0: all retained)")
    parser.add_argument("--stream", action="append", default=[], help="only this stream (repeatable)")
    parser.add_argument("--kind", action="append", default=[], help="only this kind (repeatable)")
    parser.add_argument("--min-score", type=float, default=0.0, help="only events scoring at least this")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace) -> int:
    import grpc

    from edge_coat.events.convert import event_to_dict

    if not 0.0 <= args.min_score <= 1.0:
        print(f"edge-coat events: --min-score must be in [0, 1]; got {args.min_score}", file=sys.stderr)
        return 2
    client = make_client(args)
    from_cursor = args.from_cursor
    if from_cursor is None and not args.follow:
        from_cursor = 0  # without --follow: print what is retained, then exit
    stop_at = None
    try:
        if not args.follow:
            stop_at = client.get_status().head
            if stop_at <= (from_cursor or 0):
                return 0
        for event in client.subscribe(stream_ids=args.stream, kinds=args.kind, min_score=args.min_score,
                                      from_cursor=from_cursor,
                                      on_heartbeat=(lambda r: None) if args.follow else _stop_on(stop_at)):
            if args.json:
                print(json.dumps(event_to_dict(event)), flush=True)
            else:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.window_start_ts))
                print(f"#{event.id} {when} {event.stream_id} {event.kind}/{event.phase} {event.label} "
                      f"score={event.score:.2f} {event.text}", flush=True)
            if stop_at is not None and event.id >= stop_at:
                break
    except _Done:
        pass
    except grpc.RpcError as exc:
        print(f"edge-coat events: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"stopped; resume with --from {client.cursor}", file=sys.stderr)
    finally:
        client.close()
    return 0


class _Done(Exception):
    pass


def _stop_on(head):
    def check(resp):
        if resp.cursor >= head:
            raise _Done
    return check
