"""The explicit end of a stream (messages.EndOfStream) through the worker's real queues: it follows
the stream's last window, survives drop-oldest overload, marks idle streams, and `wait_idle` sees the
pipeline empty only when it is (real DEALER/ROUTER sockets on loopback)."""

from __future__ import annotations

import threading
import time

from edge_coat.messages import EndOfStream, Window
from edge_coat.transport.config import ReceiverConfig
from edge_coat.transport.sender import Sender
from edge_coat.worker.config import StreamConfig, TaskGateConfig, WorkerConfig
from edge_coat.worker.service import BatchQueue, Worker
from edge_coat.worker.stage import NoopStage
from tests.transport.helpers import FAST_LINK, HOP, WINDOW, sender_config, signal, wait_for


class Journal:
    """Every result and end the worker hands on, in order, from its model thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items: list[tuple[str, str, int]] = []  # ("window" | "end:<reason>", stream, window index)

    def result(self, r) -> None:
        with self.lock:
            self.items.append(("window", r.window.stream_id, r.window.index))

    def end(self, e: EndOfStream) -> None:
        with self.lock:
            self.items.append((f"end:{e.reason}", e.stream_id, -1))

    def of(self, sid: str) -> list[str]:
        with self.lock:
            return [kind for kind, s, _ in self.items if s == sid]


class SlowStage(NoopStage):
    def __init__(self, delay_s: float):
        self.delay_s = delay_s

    def process(self, windows):
        time.sleep(self.delay_s)
        return super().process(windows)


def worker(journal: Journal, stage=None, **kw) -> Worker:
    cfg = WorkerConfig(
        receiver=ReceiverConfig(bind="tcp://127.0.0.1:0", link=FAST_LINK, ack_interval_s=0.02),
        default_stream=StreamConfig(window_s=WINDOW / 16000, hop_s=HOP / 16000,
                                    tasks={"anomaly": TaskGateConfig(min_rms_dbfs=-200)}),
        **kw,
    )
    return Worker(cfg, stage or NoopStage(), on_result=journal.result, on_end=journal.end).start()


def send(sender: Sender, sid: str, x, chunk: int = 1600, eos: bool = True) -> None:
    for i in range(0, len(x), chunk):
        sender.submit(sid, x[i:i + chunk], 100.0 + i / 16000, end_of_stream=eos and i + chunk >= len(x))


def test_the_end_follows_the_last_window_of_its_stream():
    journal = Journal()
    w = worker(journal, stage=SlowStage(0.01), batch={"max_batch": 4, "max_wait_s": 0.01})
    streams = {f"s{k}": signal(16000 + 3000 * k, seed=k) for k in range(3)}
    try:
        with Sender(sender_config(w.endpoint)) as sender:
            for sid, x in streams.items():
                send(sender, sid, x)
            assert sender.wait_acked(10)
            assert wait_for(lambda: all("end:ended" in journal.of(s) for s in streams))
            assert w.wait_idle(10) and w.unfinished() == 0
        for sid, x in streams.items():
            kinds = journal.of(sid)
            n_windows = (len(x) - WINDOW) // HOP + 1
            assert kinds == ["window"] * n_windows + ["end:ended"], (sid, kinds)
        assert w.stats()["totals"]["streams_ended"] == 3
    finally:
        w.close()


def test_the_end_is_never_dropped_when_the_batch_queue_overflows():
    """A slow model and a 3-window queue: windows are dropped (oldest first, counted), the end is not."""
    journal = Journal()
    w = worker(journal, stage=SlowStage(0.05), batch={"max_batch": 1, "max_wait_s": 0.0, "queue_windows": 3})
    try:
        with Sender(sender_config(w.endpoint)) as sender:
            send(sender, "burst", signal(16000 * 3, seed=9))
            assert wait_for(lambda: "end:ended" in journal.of("burst"), 20)
            assert sender.wait_acked(10)
        assert w.stats()["batch_dropped"] > 0
        assert journal.of("burst")[-1] == "end:ended" and journal.of("burst").count("end:ended") == 1
        assert w.wait_idle(10)
    finally:
        w.close()


def test_an_idle_stream_is_ended_with_reason_idle():
    journal = Journal()
    w = worker(journal, stream_idle_s=0.3)
    try:
        with Sender(sender_config(w.endpoint)) as sender:
            send(sender, "quiet", signal(16000, seed=3), eos=False)  # the source never says it ended
            assert wait_for(lambda: "end:idle" in journal.of("quiet"), 10)
        kinds = journal.of("quiet")
        assert kinds[-1] == "end:idle" and kinds.count("window") == (16000 - WINDOW) // HOP + 1
    finally:
        w.close()


def test_wait_idle_waits_for_the_batch_in_the_model():
    journal = Journal()
    w = worker(journal, stage=SlowStage(0.3), batch={"max_batch": 64, "max_wait_s": 0.0})
    try:
        with Sender(sender_config(w.endpoint)) as sender:
            send(sender, "slow", signal(16000, seed=4))
            assert wait_for(lambda: w.unfinished() > 0)
            assert w.wait_idle(20)
            assert journal.of("slow")[-1] == "end:ended"  # everything went through before it said idle
    finally:
        w.close()


def test_batch_queue_drops_windows_not_ends_and_counts_taken_items_until_done():
    q = BatchQueue(max_batch=8, max_wait_s=0.0, capacity=2)

    def win(i):
        return Window(stream_id="a", index=i, start_sample=i, start_ts=0.0, end_ts=0.0, samples=None)

    end = EndOfStream("a", 1.0)
    assert q.put_many([win(0), end]) == []
    dropped = q.put_many([win(1), win(2)])
    assert [w.index for w in dropped] == [0, 1]  # the end stayed where it was
    items = q.take(0.1)
    assert items == [end, win(2)] and q.unfinished() == 2 and len(q) == 0
    q.task_done(len(items))
    assert q.unfinished() == 0


class EndingStage(SlowStage):
    """Records the stream ends the worker tells the stage (the encoder cache drops its chunks there)."""

    def __init__(self, journal: Journal):
        super().__init__(0.0)
        self.journal = journal

    def end_stream(self, end: EndOfStream) -> None:
        with self.journal.lock:
            self.journal.items.append((f"stage_end:{end.reason}", end.stream_id, -1))


def test_the_stage_is_told_the_end_after_the_last_window_before_the_detectors():
    journal = Journal()
    w = worker(journal, stage=EndingStage(journal), batch={"max_batch": 4, "max_wait_s": 0.01})
    x = signal(16000 + 3000, seed=5)
    try:
        with Sender(sender_config(w.endpoint)) as sender:
            send(sender, "s0", x)
            assert sender.wait_acked(10)
            assert wait_for(lambda: "end:ended" in journal.of("s0"))
        n_windows = (len(x) - WINDOW) // HOP + 1
        assert journal.of("s0") == ["window"] * n_windows + ["stage_end:ended", "end:ended"]
    finally:
        w.close()
