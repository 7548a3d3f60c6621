"""Python client of the event service, with automatic resume.

    client = EventClient("host:50051", token="...", ca_file="ca.pem")      # TLS
    for event in client.subscribe(stream_ids=["press-3"], from_cursor=0):
        print(event.id, event.text)                                        # pb.Event

``subscribe`` remembers the cursor (``client.cursor``) and, when the server goes away (UNAVAILABLE),
or closes a subscriber that fell behind (RESOURCE_EXHAUSTED), reconnects with exponential backoff
and resumes from it: every event arrives exactly once, in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

from edge_coat.v1 import events_pb2 as pb
from edge_coat.v1 import events_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

RESUMABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.INTERNAL)


def channel_credentials(ca_file=None, cert_file=None, key_file=None) -> grpc.ChannelCredentials:
    """TLS credentials from PEM files (client cert + key for mutual TLS)."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("mutual TLS needs both a client certificate and its key")
    read = lambda p: Path(p).read_bytes() if p else None  # noqa: E731
    return grpc.ssl_channel_credentials(read(ca_file), read(key_file), read(cert_file))


class EventClient:
    """Synchronous client. ``insecure=True`` (plaintext) must be asked for explicitly."""

    def __init__(self, target: str, *, token: str | None = None, ca_file=None, cert_file=None, key_file=None,
                 insecure: bool = False, server_name: str | None = None, options=()) -> None:
        opts = list(options)
        if server_name:
            opts.append(("grpc.ssl_target_name_override", server_name))
        if insecure:
            self.channel = grpc.insecure_channel(target, options=opts)
        else:
            self.channel = grpc.secure_channel(target, channel_credentials(ca_file, cert_file, key_file), opts)
        self.stub = pb_grpc.EventServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.cursor: int | None = None
        self.head = 0

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "EventClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def subscribe(self, stream_ids=(), kinds=(), min_score: float = 0.0, from_cursor: int | None = None, *,
                  resume: bool = True, max_retries: int | None = None, backoff: tuple[float, float] = (0.1, 5.0),
                  on_heartbeat: Callable[[pb.SubscribeResponse], None] | None = None) -> Iterator[pb.Event]:
        """Yield events in cursor order, resuming across server restarts when ``resume``."""
        self.cursor = from_cursor
        delay, retries = backoff[0], 0
        while True:
            request = pb.SubscribeRequest(stream_ids=list(stream_ids), kinds=list(kinds), min_score=min_score)
            if self.cursor is not None:
                request.from_cursor = self.cursor
            call = self.stub.Subscribe(request, metadata=self.metadata)
            try:
                for resp in call:
                    delay, retries = backoff[0], 0
                    self.head = resp.head
                    for event in resp.events:
                        if self.cursor is not None and event.id <= self.cursor:
                            continue  # never hand out a duplicate, whatever the server does
                        self.cursor = event.id
                        yield event
                    self.cursor = max(self.cursor or 0, resp.cursor)
                    if resp.heartbeat and on_heartbeat is not None:
                        on_heartbeat(resp)
                return  # the server ended the stream normally
            except grpc.RpcError as exc:
                code = exc.code()
                if not resume or code not in RESUMABLE or (max_retries is not None and retries >= max_retries):
                    raise
                retries += 1
                logger.info("subscription interrupted (%s: %s); resuming from cursor %s in %.1f s", code.name,
                            exc.details(), self.cursor, delay)
                time.sleep(delay)
                delay = min(delay * 2, backoff[1])
            finally:
                call.cancel()

    def list_streams(self, timeout: float = 10.0) -> list[pb.StreamStatus]:
        return list(self.stub.ListStreams(pb.ListStreamsRequest(), metadata=self.metadata, timeout=timeout).streams)

    def get_status(self, timeout: float = 10.0) -> pb.ServiceStatus:
        return self.stub.GetStatus(pb.GetStatusRequest(), metadata=self.metadata, timeout=timeout)

    def start_enrollment(self, stream_id: str, windows: int = 0, seconds: float = 0.0,
                         timeout: float = 10.0) -> pb.EnrollmentStatus:
        return self.stub.StartEnrollment(pb.StartEnrollmentRequest(stream_id=stream_id, windows=windows,
                                                                   seconds=seconds),
                                         metadata=self.metadata, timeout=timeout)

    def stop_enrollment(self, stream_id: str, discard: bool = False, timeout: float = 10.0) -> pb.EnrollmentStatus:
        return self.stub.StopEnrollment(pb.StopEnrollmentRequest(stream_id=stream_id, discard=discard),
                                        metadata=self.metadata, timeout=timeout)

    def get_enrollment(self, stream_id: str, timeout: float = 10.0) -> pb.EnrollmentStatus:
        return self.stub.GetEnrollment(pb.GetEnrollmentRequest(stream_id=stream_id), metadata=self.metadata,
                                       timeout=timeout)
