"""The ``edge-coat`` command line.

Each subcommand lives in ``edge_coat/commands/<name>.py`` and exposes::

    HELP: str                              # one line for ``edge-coat --help``
    def add_arguments(parser) -> None      # argparse arguments (no heavy imports here)
    def run(args) -> int                   # the work; heavy imports go inside

A subcommand of the contract whose module does not exist yet is listed, and running it says
plainly that it is not built and exits 2 (no fake output).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Nothing in edge-coat may reach a model hub: set offline mode before transformers is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

#: name -> help used when the command's module does not exist yet.
COMMANDS: dict[str, str] = {
    "run": "run the all-in-one service (capture, worker, event service) from a config file",
    "capture": "stream audio sources (mic, RTSP, files, generated) to a worker over ZeroMQ",
    "worker": "window, gate and analyse incoming streams with the model; emit events",
    "serve": "run the gRPC event service over the durable event log",
    "events": "subscribe to the event service and print events",
    "demo": "one-command demo on this machine with the embedded model",
    "train": "train CoAT (thinking block, expert heads, optionally LoRA) on dataset folders",
    "export": "export the thinking block to ONNX and write a verified model bundle",
    "eval": "evaluate a model on a labelled dataset folder",
    "probe": "linear probes: what thinking vs audio positions hold about each expert",
    "models": "list and verify model bundles",
    "keys": "create CurveZMQ key pairs for capture clients and workers",
    "certs": "create a local CA and TLS certificates for an air-gapped site",
    "status": "show the status of a running service",
}


def _load(name: str):
    try:
        return importlib.import_module(f"edge_coat.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"edge_coat.commands.{name}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-coat",
        description="On-prem audio analytics with a CoAT audio language model.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (by default: one line naming the problem and the fix)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, default_help in COMMANDS.items():
        module = _load(name)
        help_text = getattr(module, "HELP", default_help) if module else f"{default_help} [not built yet]"
        p = sub.add_parser(name, help=help_text, description=help_text)
        if module is not None:
            module.add_arguments(p)
        p.set_defaults(_module=module, _name=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, run the command, and send every error through :mod:`edge_coat.errors`: one line naming
    the problem and the fix, a non-zero exit, a traceback only with ``--debug``."""
    from edge_coat.errors import install_hooks, report

    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - a broken install must still say so in one line
        return report("", exc, debug)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    name = args.command or ""
    install_hooks(name, args.debug)
    if args.command is None:
        parser.print_help()
        return 2
    if args._module is None:
        print(f"edge-coat {args._name}: not built yet in this version.", file=sys.stderr)
        return 2
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"edge-coat {name}: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the single error path of every command
        return report(name, exc, args.debug)


if __name__ == "__main__":
    sys.exit(main())
