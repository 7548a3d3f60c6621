"""Structured logs: the ``logging:`` section applied to the root logger, with a JSON-lines option."""

from __future__ import annotations

import json
import logging
import sys
import time

from edge_coat.config import LoggingConfig

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# attributes every LogRecord has; anything else was passed with extra={...} and is kept as a field
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (epoch s), time (UTC ISO 8601), level, logger, msg, thread,
    plus ``extra={...}`` fields and ``exc`` (the traceback) when there is one.

    Written here rather than taking python-json-logger: it is twenty lines and one dependency less."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 6),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(cfg: LoggingConfig, verbose: int = 0) -> None:
    """Apply the level and format to the root logger's handlers (adding one on stderr if there is none).

    ``verbose`` (the CLI's -v count) can only make logging more detailed than the config says."""
    root = logging.getLogger()
    level = logging.getLevelName(cfg.level)
    if verbose:
        level = min(level, logging.INFO if verbose == 1 else logging.DEBUG)
    root.setLevel(level)
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    formatter = JsonFormatter() if cfg.format == "json" else logging.Formatter(TEXT_FORMAT)
    from edge_coat.errors import debug_enabled, one_line_tracebacks

    for handler in root.handlers:
        handler.setFormatter(formatter)
        if not debug_enabled():
            one_line_tracebacks(handler)
