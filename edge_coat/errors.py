"""The one path every command's errors take to the user.

A user of ``edge-coat`` sees one line per problem, naming it and saying how to fix it, and a non-zero
exit; a traceback only with ``edge-coat --debug``. :func:`explain` turns an exception into that
line and the exit code (2: the input or config is wrong, 1: the command could not do its work), and
:func:`install_hooks` covers what escapes on other threads. Code that knows the fix raises
:class:`UserError` with it; the mapping here covers the exceptions of the libraries underneath
(ZeroMQ, SQLite, gRPC, the OS), so a new command cannot leak a traceback by forgetting a ``try``.
"""

from __future__ import annotations

import errno
import logging
import sys
import threading

#: exit codes
INVALID_INPUT = 2  # bad arguments or config: the systemd units do not restart on it
FAILED = 1  # could not start or finish: a retry may work


class UserError(Exception):
    """A problem the user can fix. ``str()`` is the whole message (what is wrong; how to fix it)."""

    def __init__(self, message: str, exit_code: int = FAILED):
        super().__init__(message)
        self.exit_code = exit_code


def _zmq_message(exc) -> str:
    code = getattr(exc, "errno", None)
    if code == errno.EADDRINUSE:
        return f"cannot bind: address already in use ({exc}); stop the process holding the port or choose another"
    if code == errno.EADDRNOTAVAIL:
        return f"cannot bind: address not available on this host ({exc}); use an address of this host or 127.0.0.1"
    if code == errno.EINVAL:
        return f"invalid ZeroMQ endpoint ({exc}); expected tcp://HOST:PORT"
    return f"ZeroMQ error: {exc}"


def explain(exc: BaseException) -> tuple[str, int]:
    """(one-line message, exit code) for an exception that ended a command."""
    from edge_coat.config import ConfigError

    if isinstance(exc, UserError):
        return str(exc), exc.exit_code
    if isinstance(exc, ConfigError):
        return f"invalid config: {exc}", INVALID_INPUT
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return flag_problems(exc), INVALID_INPUT
    try:
        import zmq

        if isinstance(exc, zmq.ZMQError):
            return _zmq_message(exc), FAILED
    except ImportError:  # pragma: no cover - pyzmq is a dependency
        pass
    import sqlite3

    if isinstance(exc, sqlite3.DatabaseError):
        return (f"the event log is not a usable SQLite database ({exc}); point the command at an event log "
                "file (or a new path for a fresh one)"), FAILED
    if isinstance(exc, sqlite3.Error):
        return f"event log error: {exc}", FAILED
    try:
        import grpc

        if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
            return f"{exc.code().name}: {exc.details()}", FAILED
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder: {exc.filename or exc}; check the path", INVALID_INPUT
    if isinstance(exc, IsADirectoryError):
        return f"expected a file, got a folder: {exc.filename or exc}", INVALID_INPUT
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}; check the file's owner and mode", FAILED
    if isinstance(exc, OSError):
        return f"cannot continue: {exc}", FAILED
    if isinstance(exc, ValueError) and type(exc).__module__.startswith(("edge_coat", "builtins")):
        return str(exc), INVALID_INPUT  # the project's checks raise ValueError naming what was expected
    if isinstance(exc, MemoryError):
        return "out of memory; lower the batch size or the number of streams", FAILED
    return (f"unexpected error: {type(exc).__name__}: {exc}. Rerun with `edge-coat --debug ...` for the traceback "
            "and report it"), FAILED


def flag_problems(exc) -> str:
    """A pydantic ValidationError of settings built from command-line flags, one line per problem."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(value)"
        got = err.get("input")
        shown = "" if isinstance(got, (dict, list)) else f", got {got!r}"  # a whole section says nothing
        lines.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}{shown}")
    return "invalid settings: " + "; ".join(lines)


def report(command: str, exc: BaseException, debug: bool) -> int:
    """Print the one-line message (and, with ``debug``, the traceback) to stderr; return the exit code."""
    message, code = explain(exc)
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    first, *rest = str(message).splitlines() or [""]
    print(f"edge-coat {command}: {first}", file=sys.stderr)
    for line in rest:
        print(line, file=sys.stderr)
    return code


class _OneLineFormatter(logging.Formatter):
    """Log records with exception info keep their message and add the exception's one line, not
    the traceback (unless debug)."""

    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        exc = ei[1]
        return f"  ({type(exc).__name__}: {exc}; traceback with --debug)"

    def formatStack(self, stack_info) -> str:  # noqa: N802
        return ""


def one_line_tracebacks(handler: logging.Handler) -> None:
    """Make ``handler`` print exceptions as one line (keeps its format)."""
    fmt = handler.formatter
    new = _OneLineFormatter(fmt._fmt if fmt else None, fmt.datefmt if fmt else None)
    if fmt is not None and hasattr(fmt, "format") and type(fmt) is not logging.Formatter:
        # a custom formatter (JSON lines): wrap its exception formatting only
        fmt.formatException = new.formatException  # type: ignore[method-assign]
        fmt.formatStack = new.formatStack  # type: ignore[method-assign]
        return
    handler.setFormatter(new)


_debug = False


def debug_enabled() -> bool:
    """Whether ``edge-coat --debug`` asked for tracebacks."""
    return _debug


def debug_traceback(exc: BaseException) -> None:
    """For code that catches an error and prints its own one line: the traceback too, with --debug."""
    if _debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)


def quiet_progress_bars() -> None:
    """Hide transformers' "Loading weights" bars: a local model loads in a second, and on stderr the bar would sit
    above a command's one-line error. Read when transformers is first imported; a command that never loads a model
    does not pay for importing it here."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # imported already: the variable came too late
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def install_hooks(command: str, debug: bool) -> None:
    """Uncaught exceptions on other threads print one line (traceback with debug), and log
    handlers of the root logger print exceptions as one line unless debug."""
    def thread_hook(args) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        message, _ = explain(args.exc_value)
        if debug:
            import traceback

            traceback.print_exception(args.exc_value, file=sys.stderr)
        print(f"edge-coat {command}: thread {name} stopped: {message}", file=sys.stderr)

    global _debug
    _debug = debug
    threading.excepthook = thread_hook
    if not debug:
        for handler in logging.getLogger().handlers:
            one_line_tracebacks(handler)
