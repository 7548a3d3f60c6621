"""The service as a whole: the stages assembled in one process, graceful shutdown, metrics, logs.

Public API::

    from edge_coat.config import load_config
    from edge_coat.service import Service

    svc = Service(load_config("site.yaml")).start()     # roles: capture, worker, serve
    svc.grpc_port, svc.metrics_port, svc.worker_endpoint, svc.stats()
    svc.stop()                                            # drain, close episodes, flush, NOT_SERVING

``stop_time_s(cfg, roles)`` is the longest a graceful stop waits (the supervisor's stop timeout must exceed it);
``configure_logging(cfg.logging)`` applies the logging section (text or JSON lines);
``start_metrics_server(listen, stats_fn)`` serves /metrics from a stats function.
"""

from edge_coat.service.logs import JsonFormatter, configure_logging
from edge_coat.service.service import ROLES, Service, ServiceControl, stop_time_s

__all__ = ["ROLES", "JsonFormatter", "Service", "ServiceControl", "configure_logging", "stop_time_s"]
