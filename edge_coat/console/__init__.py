"""The operator console: a live web page on the events stage (streams, timelines, enrollment, events).

``edge-coat serve`` (and so ``run``) serves it on ``console.listen`` when ``console.enabled``. It is a
view: it reads the event log file (events, stream statuses, the worker's per-window timeline points of
:mod:`edge_coat.console.series`), asks the worker for enrollment through the same
:class:`~edge_coat.events.control.StreamControl` as the gRPC service, and writes acknowledgements
as events of their own into the same log. It authenticates with the gRPC service's tokens
(:mod:`edge_coat.console.sessions`). The page and its chart library (uPlot, vendored from npm with
its license, see ``static/vendor/README.md``) are package files: nothing comes from a CDN.
"""

from edge_coat.console.config import ConsoleConfig

__all__ = ["ConsoleConfig"]
