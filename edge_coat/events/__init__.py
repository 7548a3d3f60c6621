"""Events: the durable log, the gRPC event service and its client.

Worker side: ``EventLog(path).append_many(records)`` (or ``WorkerBridge``). Service:
``EventServer(EventsConfig(...), control=...)``. Client: ``EventClient`` in ``edge_coat.events.client``.
"""
