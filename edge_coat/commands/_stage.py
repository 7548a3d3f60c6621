"""What the stage commands (run, capture, worker, serve) share: loading the site config with the
exit code the service units rely on, and a stop event set by SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from edge_coat.errors import debug_traceback

#: Exit code of a config error; the systemd units do not restart on it (RestartPreventExitStatus=2).
CONFIG_ERROR = 2


def load_site_config(path: Path, command: str, *sections: str, optional: tuple[str, ...] = (), files: bool = True):
    """The validated SiteConfig with ``sections`` present and the files they (and the ``optional``
    sections the file has) name on this host, or None after printing why (exit 2)."""
    from edge_coat.config import ConfigError, file_problems, load_config

    try:
        cfg = load_config(path)
        cfg.require(*sections, command=f"edge-coat {command}")
        problems = file_problems(cfg, sections + tuple(s for s in optional if getattr(cfg, s) is not None)) \
            if files else []
        if problems:
            raise ConfigError(problems, path)
    except ConfigError as exc:
        debug_traceback(exc)
        print(f"edge-coat {command}: invalid config: {exc}", file=sys.stderr)
        return None
    return cfg


def stop_on_signals(command: str) -> threading.Event:
    """An event set by the first SIGTERM or SIGINT (a second one says the stop is under way)."""
    stop = threading.Event()

    def on_signal(signum, _frame):
        if stop.is_set():
            print(f"edge-coat {command}: {signal.Signals(signum).name} again: already stopping", file=sys.stderr)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    return stop


def reload_tokens_on_sighup(service) -> None:
    """SIGHUP re-reads the event service's tokens file now (it is also followed by its modification time)."""
    server = getattr(service, "server", None)

    def on_hup(_signum, _frame):  # installed even without a tokens file: SIGHUP must never kill the service
        if server is None or server.auth.path is None:
            print("edge-coat: SIGHUP: no tokens file to reload", file=sys.stderr)
            return
        threading.Thread(target=server.auth.reload, name="tokens-reload", daemon=True).start()

    signal.signal(signal.SIGHUP, on_hup)


def start_service(service, command: str) -> int | None:
    """Start ``service``; None when it runs, else the exit code after printing why (2: the config
    does not fit the model, 1: it cannot start)."""
    from edge_coat.config import ConfigError

    try:
        service.start()
    except ConfigError as exc:
        debug_traceback(exc)
        print(f"edge-coat {command}: the config does not fit the model: {exc}", file=sys.stderr)
        return CONFIG_ERROR
    except (OSError, ValueError, RuntimeError) as exc:
        debug_traceback(exc)
        print(f"edge-coat {command}: cannot start: {exc}", file=sys.stderr)
        return 1
    return None
