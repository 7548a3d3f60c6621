"""Real DEALER/ROUTER sockets on loopback: lossless path, worker restarts, outages beyond the
replay bound, and fuzzing while valid streams flow."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from edge_coat.transport import wire
from edge_coat.transport.config import ReceiverConfig
from edge_coat.transport.sender import Sender
from edge_coat.v1 import audio_pb2 as pb
from edge_coat.worker.config import StreamConfig, TaskGateConfig, WorkerConfig
from edge_coat.worker.service import Worker
from edge_coat.worker.stage import NoopStage
from tests.transport.helpers import (
    FAST_LINK, HOP, WINDOW, Collector, check_windows, expected_starts, make_worker, sender_config, signal, wait_for,
)

CHUNK = 1600


def _send(sender, sid, x, lo, hi, ts0=1_000.0, chunk=CHUNK, eos_at_end=False, pace=0.0):
    for i in range(lo, hi, chunk):
        last = eos_at_end and i + chunk >= hi
        sender.submit(sid, x[i:i + chunk], ts0 + i / 16000, end_of_stream=last)
        time.sleep(pace)


# ingest_slice 1: the windowing thread hands windows and acknowledgements on after every chunk
# of a drain (the sender's burst arrives in a few large drains), which must change nothing
@pytest.mark.parametrize("fmt,ingest_slice", [("s16le", 256), ("f32le", 256), ("f32le", 1)])
def test_lossless_path_sent_equals_windowed(fmt, ingest_slice):
    got = Collector()
    worker = make_worker(collector=got, ingest_slice=ingest_slice)
    streams = {f"mic-{k}": signal(16000 * 2 + 777 * k, seed=k) for k in range(3)}
    try:
        with Sender(sender_config(worker.endpoint, sample_format=fmt)) as sender:
            rng = np.random.default_rng(0)
            for sid, x in streams.items():  # ragged chunk sizes
                pos = 0
                while pos < len(x):
                    n = int(rng.integers(100, 3000))
                    sender.submit(sid, x[pos:pos + n], 5.0 + pos / 16000, end_of_stream=pos + n >= len(x))
                    pos += n
            assert sender.wait_acked(10)
            for sid, x in streams.items():
                assert wait_for(lambda: len(got.get(sid)) == len(expected_starts(len(x))))
                windows = got.get(sid)
                assert check_windows(windows, x) == expected_starts(len(x))
                assert all(w.gap_seconds == 0 and w.start_ts == pytest.approx(5.0 + w.start_sample / 16000)
                           for w in windows)
        stats = worker.stats()
        for sid, x in streams.items():
            assert stats["streams"][sid]["audio_s_in"] == len(x) / 16000
            assert stats["streams"][sid]["gap_s"] == 0
    finally:
        worker.close()


def _restart_run(buffer_s: float, down_chunks: int):
    """Worker A takes 1 s of audio, dies; `down_chunks` are captured while no worker runs;
    worker B starts on the same endpoint and takes the rest. Returns (x, A's, B's windows, B, sender)."""
    x = signal(16000 * 4, seed=7)
    a_got, b_got = Collector(), Collector()
    a = make_worker(collector=a_got)
    endpoint = a.endpoint
    sender = Sender(sender_config(endpoint, buffer_s=buffer_s)).start()
    assert sender.connected.wait(5)
    _send(sender, "s", x, 0, 16000, pace=0.01)  # 10x real time: a live source never bursts
    assert wait_for(lambda: len(a_got.get("s")) >= 5)
    a.close()  # abrupt: the socket goes away, no goodbye, unwindowed audio dies with it
    assert wait_for(lambda: not sender.connected.is_set())
    split = 16000 + down_chunks * CHUNK
    _send(sender, "s", x, 16000, split)
    b = make_worker(bind=endpoint, collector=b_got)
    assert sender.connected.wait(5)
    _send(sender, "s", x, split, len(x), eos_at_end=True, pace=0.01)
    assert sender.wait_acked(10)
    assert wait_for(lambda: any(w.start_sample == len(x) - 4000 for w in b_got.get("s")))
    return x, a_got.get("s"), b_got.get("s"), b, sender


def test_worker_restart_within_buffer_bound_loses_nothing():
    x, a_w, b_w, b, sender = _restart_run(buffer_s=10.0, down_chunks=10)
    try:
        starts = check_windows(a_w, x) | check_windows(b_w, x)
        assert starts == expected_starts(len(x))  # every window, exact; overlap allowed (at least once)
        assert b.stats()["streams"]["s"]["gap_s"] == 0
        assert all(w.gap_seconds == 0 for w in b_w)
        assert sender.stats()["worker_restarts"] == 1
    finally:
        sender.close()
        b.close()


def test_outage_beyond_buffer_bound_is_reported_as_exact_gap():
    x, a_w, b_w, b, sender = _restart_run(buffer_s=0.5, down_chunks=20)
    try:
        st = b.stats()["streams"]["s"]
        (g0, gap_s), = st["recent_gaps"]
        n_gap = round(gap_s * 16000)
        assert st["gap_s"] == gap_s and n_gap > 0
        # the sender dropped at least that much from its buffer (some of its drops had been delivered)
        assert n_gap <= sender.stats()["streams"]["s"]["dropped_samples"]
        gapped = [w for w in b_w if w.gap_seconds > 0]
        assert gapped and all(w.start_sample < g0 + n_gap and w.start_sample + 4000 > g0 for w in gapped)
        y = x.copy()
        y[g0:g0 + n_gap] = 0  # windows are exact, zero-filled where the gap is
        check_windows(b_w, y)
        # nothing missing silently: every sample is in a window (A or B) or in the reported gap
        covered = np.zeros(len(x), bool)
        for w in a_w + b_w:
            covered[w.start_sample:w.start_sample + 4000] = True
        covered[g0:g0 + n_gap] = True
        last_full = max(expected_starts(len(x))) + 4000
        assert covered[:last_full].all()
    finally:
        sender.close()
        b.close()


def test_fuzzing_is_counted_and_valid_streams_keep_flowing():
    got = Collector()
    worker = make_worker(collector=got)
    rng = np.random.default_rng(42)
    ctx = zmq.Context()
    fuzzer = ctx.socket(zmq.DEALER)
    fuzzer.linger = 0
    fuzzer.connect(worker.endpoint)
    valid = {f"good-{k}": signal(16000 * 3, seed=100 + k) for k in range(2)}
    template = wire.encode_audio("fz-1", 9, 0, 0, 1.0, np.zeros(160, np.float32))
    hello = wire.encode_control(hello=pb.Hello(client_id="fuzzer", sender_epoch=9))
    n_fuzz = 10_000
    try:
        with Sender(sender_config(worker.endpoint)) as sender:
            fuzzer.send_multipart(hello)
            for i in range(n_fuzz):
                kind = i % 5
                if kind == 0:  # random frames
                    msg = [rng.bytes(int(rng.integers(0, 300))) for _ in range(int(rng.integers(1, 4)))]
                elif kind == 1:  # bit flips in a valid header
                    h = bytearray(template[0])
                    for _ in range(int(rng.integers(1, 4))):
                        h[int(rng.integers(0, len(h)))] ^= 1 << int(rng.integers(0, 8))
                    msg = [bytes(h), template[1]]
                elif kind == 2:  # payload length lies
                    msg = [template[0], template[1][: int(rng.integers(0, len(template[1])))]]
                elif kind == 3:  # oversized chunk (3 s > max_chunk_s 2 s)
                    big = wire.encode_audio("fz-2", 9, i, 0, 1.0, np.zeros(48_000, np.float32))
                    msg = big
                else:  # forged positions / wrong versions / a worker-only message
                    choice = i % 3
                    if choice == 0:
                        msg = wire.encode_audio("fz-3", 9, i, 10**15, 1.0, np.zeros(16, np.float32))
                    elif choice == 1:
                        f = pb.Frame()
                        f.ParseFromString(template[0])
                        f.protocol_version = 99
                        msg = [f.SerializeToString(), template[1]]
                    else:
                        msg = wire.encode_control(ack=pb.Ack(worker_epoch=1))
                fuzzer.send_multipart(msg)
                if i % 500 == 0:  # valid audio interleaved with the fuzz
                    k = i // 500
                    for sid, x in valid.items():
                        if k * CHUNK < len(x):
                            sender.submit(sid, x[k * CHUNK:(k + 1) * CHUNK], 1.0 + k * 0.1)
            for sid, x in valid.items():
                _send(sender, sid, x, 20 * CHUNK, len(x), eos_at_end=True)
            assert sender.wait_acked(20)

            def counted():
                m = worker.stats()["receiver"]["messages"]
                return sum(m.values()) - m.get("heartbeat", 0) - m.get("hello", 0) - \
                    sender.stats()["streams"]["good-0"]["chunks_sent"] - \
                    sender.stats()["streams"]["good-1"]["chunks_sent"]

            assert wait_for(lambda: counted() == n_fuzz, 20), worker.stats()
            for sid, x in valid.items():
                assert wait_for(lambda: len(got.get(sid)) == len(expected_starts(len(x))))
                assert check_windows(got.get(sid), x) == expected_starts(len(x))
            stats = worker.stats()
            msgs = stats["receiver"]["messages"]
            assert msgs["oversized"] >= n_fuzz // 5 and msgs["malformed"] > n_fuzz // 5
            assert msgs["bad_version"] > 0 and msgs["unexpected_kind"] > 0
            assert stats["totals"]["inconsistent"] > 0  # forged positions reached the stream checks
    finally:
        fuzzer.close()
        ctx.term()
        worker.close()


def test_decode_rejects_with_reasons():
    ok = wire.encode_audio("a", 1, 0, 0, 1.0, np.zeros(10, np.float32))
    assert isinstance(wire.decode(ok, 100), wire.WireAudio)
    with pytest.raises(wire.WireError) as e:
        wire.decode(ok, 5)
    assert e.value.reason == "oversized"
    with pytest.raises(wire.WireError) as e:
        wire.decode([b"\xff\xff"], 100)
    assert e.value.reason == "malformed"


def test_a_replayed_chunk_is_acknowledged_again():
    """An acknowledgement can be lost (the client reconnects at that moment): the client then
    replays, and the worker, while dropping the replay, must acknowledge once more."""
    worker = make_worker()
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(worker.endpoint)
    acks: list[int] = []

    def receive(cond, timeout=5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not cond():
            if dealer.poll(50):
                msg = wire.decode(dealer.recv_multipart(), max_frames=0)
                if msg.WhichOneof("body") == "ack":
                    acks.extend(a.sequence for a in msg.ack.streams if a.stream_id == "r")
                elif msg.WhichOneof("body") == "welcome":
                    acks.append(-1)
        return cond()

    x = signal(5 * CHUNK, seed=5)
    chunks = [wire.encode_audio("r", 7, k, k * CHUNK, 1.0 + k * 0.1, x[k * CHUNK:(k + 1) * CHUNK], end_of_stream=k == 4)
              for k in range(5)]
    try:
        dealer.send_multipart(wire.encode_control(hello=pb.Hello(client_id="raw", sender_epoch=7)))
        assert receive(lambda: -1 in acks)
        for c in chunks:
            dealer.send_multipart(c)
        assert receive(lambda: 4 in acks)
        n = acks.count(4)
        dealer.send_multipart(chunks[4])  # the replay of a chunk the worker already has
        assert receive(lambda: acks.count(4) > n)
        assert worker.stats()["streams"]["r"]["dropped"] == 1  # and it was not windowed twice
    finally:
        dealer.close()
        ctx.term()
        worker.close()


class _GatedStage(NoopStage):
    """The no-op stage, held until the test opens it: windows wait in the model's queue."""

    def __init__(self):
        self.open = threading.Event()

    def process(self, windows):
        self.open.wait(10)
        return super().process(windows)


def test_audio_is_acknowledged_only_once_its_windows_went_through_the_model():
    stage = _GatedStage()
    cfg = WorkerConfig(
        receiver=ReceiverConfig(bind="tcp://127.0.0.1:0", link=FAST_LINK, ack_interval_s=0.02),
        default_stream=StreamConfig(window_s=WINDOW / 16000, hop_s=HOP / 16000,
                                    tasks={"anomaly": TaskGateConfig(min_rms_dbfs=-200)}),
        batch={"max_batch": 8, "max_wait_s": 0.01},
    )
    worker = Worker(cfg, stage).start()
    x = signal(4 * HOP, seed=2)  # windows at 0, HOP, 2 HOP
    try:
        with Sender(sender_config(worker.endpoint)) as sender:
            for i in range(0, len(x), 1000):
                sender.submit("g", x[i:i + 1000], 1.0 + i / 16000)
            assert wait_for(lambda: worker.stats()["streams"].get("g", {}).get("windows_processed") == 3)
            time.sleep(0.3)  # many acknowledgement rounds
            # the ring no longer needs chunks 0-5, but the windows cut from them are still queued:
            # a worker killed now must get them replayed
            assert sender.stats()["streams"]["g"]["acked_seq"] == -1
            stage.open.set()
            assert wait_for(lambda: sender.stats()["streams"]["g"]["acked_seq"] == 5)
    finally:
        stage.open.set()
        worker.close()


def test_sample_values_are_checked_at_both_ends():
    """Issue 15, defect 9: F32 samples beyond [-1, 1] (1e30), NaN or inf are refused by the worker with a
    counter (they would overflow the gate and give NaN probabilities); a capture source's NaN becomes 0
    and inf full scale, counted, with no numpy warning (S16 and F32)."""
    import warnings

    header = pb.Frame(protocol_version=wire.PROTOCOL_VERSION, audio=pb.AudioHeader(
        stream_id="a", sender_epoch=1, sequence=0, start_sample=0, capture_ts=1.0, sample_rate=16000, channels=1,
        sample_format=wire.F32, num_frames=4)).SerializeToString()
    for bad in (1e30, float("nan"), float("inf"), -1.5):
        with pytest.raises(wire.WireError) as e:
            wire.decode([header, np.array([0.0, bad, 0.0, 0.0], "<f4").tobytes()], 100)
        assert e.value.reason == "out_of_range"
    assert isinstance(wire.decode([header, np.array([0, 1, -1, 0.5], "<f4").tobytes()], 100), wire.WireAudio)

    for fmt in ("s16le", "f32le"):
        got = Collector()
        worker = make_worker(collector=got)
        sender = Sender(sender_config(worker.endpoint, sample_format=fmt)).start()
        try:
            x = signal(WINDOW, 3)
            x[10], x[20], x[30] = np.nan, np.inf, -np.inf
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a RuntimeWarning reaching the terminal fails the test
                _send(sender, "nan-source", x, 0, len(x), eos_at_end=True)
            assert sender.wait_acked(10.0)
            assert wait_for(lambda: got.get("nan-source"))
            assert sender.stats()["nonfinite_samples"] == 3
            w = got.get("nan-source")[0].samples
            assert np.isfinite(w).all() and w[10] == 0.0 and w[20] > 0.99 and w[30] < -0.99
            assert worker.receiver.stats()["messages"].get("out_of_range", 0) == 0
        finally:
            sender.close()
            worker.close()
