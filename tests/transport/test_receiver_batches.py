"""The socket thread's batched reads (real ROUTER/DEALER on loopback): arrival order, every
message counted once, drop-oldest at the ingest bound, paced and unpaced reads alike."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from edge_coat.transport import wire
from edge_coat.transport.config import ReceiverConfig
from edge_coat.transport.receiver import Receiver
from edge_coat.v1 import audio_pb2 as pb
from tests.transport.helpers import FAST_LINK, signal, wait_for

CHUNK = 160


def _dealer(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    d = ctx.socket(zmq.DEALER)
    d.linger = 0
    d.connect(endpoint)
    return d


def _audio(sid: str, k: int, x: np.ndarray) -> list[bytes]:
    return wire.encode_audio(sid, 3, k, k * CHUNK, 10.0 + k * CHUNK / 16000, x[k * CHUNK:(k + 1) * CHUNK])


def _drain_all(rx: Receiver, n: int, timeout: float = 10.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += rx.drain(0.05)
    return got


@pytest.mark.parametrize("read_interval_s,read_batch", [(0.0, 7), (0.02, 7), (0.02, 5000)])
def test_batched_reads_keep_arrival_order_and_count_every_message(read_interval_s, read_batch):
    cfg = ReceiverConfig(bind="tcp://127.0.0.1:0", link=FAST_LINK, read_interval_s=read_interval_s,
                         read_batch=read_batch)
    rx = Receiver(cfg).start()
    ctx = zmq.Context()
    known, stranger = _dealer(ctx, rx.endpoint), _dealer(ctx, rx.endpoint)
    streams = {sid: signal(40 * CHUNK, seed=i) for i, sid in enumerate(("a", "b", "c"))}
    try:
        resume = pb.StreamResume(stream_id="a", sender_epoch=3, next_sequence=0, next_sample=0)
        known.send_multipart(wire.encode_control(hello=pb.Hello(client_id="t", sender_epoch=3, streams=[resume])))
        assert wait_for(lambda: rx.stats()["messages"].get("hello") == 1)
        for k in range(40):
            for sid, x in streams.items():
                known.send_multipart(_audio(sid, k, x))
            if k == 10:
                known.send_multipart([b"\x08\x01", b"pcm", b"a third frame"])  # malformed: 3 frames
                known.send_multipart([b"\xff\xfe\xfd"])  # malformed: not a header
                stranger.send_multipart(_audio("z", 0, streams["a"]))  # audio before hello
        got = _drain_all(rx, 1 + 3 * 40)
        assert isinstance(got[0], pb.StreamResume) and got[0].stream_id == "a"  # before its audio
        audio = got[1:]
        assert len(audio) == 3 * 40
        for sid, x in streams.items():
            mine = [a for a in audio if a.stream_id == sid]
            assert [a.seq for a in mine] == list(range(40))  # per stream, in the order sent
            np.testing.assert_array_equal(np.concatenate([wire.as_float(a.samples) for a in mine]), x)
        assert wait_for(lambda: rx.stats()["messages"].get("unannounced") == 1)
        messages = rx.stats()["messages"]
        assert messages["audio"] == 3 * 40 and messages["malformed"] == 2
        assert "queue_dropped" not in messages and rx.queue_depth() == 0
        # the socket thread still serves: a later chunk arrives after all that
        known.send_multipart(_audio("a", 40, signal(41 * CHUNK, seed=0)))
        later = _drain_all(rx, 1)
        assert [(a.stream_id, a.seq) for a in later] == [("a", 40)]
    finally:
        known.close()
        stranger.close()
        ctx.term()
        rx.close()


def test_a_full_ingest_queue_drops_the_oldest_chunks_and_counts_them():
    """Nobody drains: past ``queue_chunks`` the oldest go, counted, batch or not."""
    cfg = ReceiverConfig(bind="tcp://127.0.0.1:0", link=FAST_LINK, queue_chunks=10, read_batch=4)
    rx = Receiver(cfg).start()
    ctx = zmq.Context()
    d = _dealer(ctx, rx.endpoint)
    x = signal(25 * CHUNK, seed=9)
    try:
        d.send_multipart(wire.encode_control(hello=pb.Hello(client_id="t", sender_epoch=3)))
        assert wait_for(lambda: rx.stats()["messages"].get("hello") == 1)
        for k in range(25):
            d.send_multipart(_audio("q", k, x))
        assert wait_for(lambda: rx.stats()["messages"].get("audio") == 25)
        assert rx.stats()["messages"]["queue_dropped"] == 15
        assert [a.seq for a in rx.drain(0.0)] == list(range(15, 25))  # the newest ten
    finally:
        d.close()
        ctx.term()
        rx.close()


def test_read_pacing_is_validated():
    with pytest.raises(ValueError, match="read_interval_s"):
        ReceiverConfig(bind="tcp://127.0.0.1:0", read_interval_s=-0.1)
    with pytest.raises(ValueError, match="read_batch"):
        ReceiverConfig(bind="tcp://127.0.0.1:0", read_batch=0)
