"""The ``edge-coat`` command line.

Each subcommand lives in ``edge_coat/commands/<name>.py`` and exposes::

    HELP: str                              # one line for ``edge-coat --help``
    def add_arguments(parser) -> None      # argparse arguments (no heavy imports here)
    def run(args) -> int                   # the work; heavy imports go inside
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

#: the subcommands, in the order ``edge-coat --help`` lists them
COMMANDS: tuple[str, ...] = ("run", "capture", "worker", "serve", "events", "demo", "train", "export", "eval", "tune",
                             "probe",
                             "models", "keys", "certs", "status")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-coat",
        description="On-prem audio analytics with a CoAT audio language model.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (by default: one line naming the problem and the fix)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"edge_coat.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        # also after the command (`edge-coat serve ... --debug`); SUPPRESS keeps the global flag's value
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error")
        p.set_defaults(_module=module, _name=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, run the command, and send every error through :mod:`edge_coat.errors`: one line naming
    the problem and the fix, a non-zero exit, a traceback only with ``--debug``."""
    from edge_coat.errors import install_hooks, quiet_progress_bars, report

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
    if not args.debug:
        quiet_progress_bars()
    if args.command is None:
        parser.print_help()
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
