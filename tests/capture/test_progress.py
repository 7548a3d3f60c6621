"""A file capture's state file (issue 15, defect 7): resume as the same epoch after a kill, as a new
run after a graceful stop, not at all for a finished file, from 0 for a changed file; the resumed
source yields exactly the samples the first run would have from there."""

from __future__ import annotations

import os
import stat

import numpy as np
import soundfile as sf

from edge_coat.capture.progress import CaptureProgress, FileStream
from edge_coat.capture.sources import FileSource


class FakeSender:
    epoch = 222

    def __init__(self, progress=None):
        self.resumed = []
        self._progress = progress

    def resume_stream(self, stream_id, sender_epoch, next_seq, next_sample):
        self.resumed.append((stream_id, sender_epoch, next_seq, next_sample))

    def progress(self, stream_id):
        return self._progress


def _wav(path, seconds=2.0):
    x = (np.random.default_rng(0).integers(-8000, 8000, int(seconds * 16000)) / 32768).astype(np.float32)
    sf.write(str(path), x, 16000, subtype="PCM_16")
    return path


def _all(source) -> np.ndarray:
    return np.concatenate([b.samples for b in source.blocks()])


def test_resumed_file_source_yields_the_rest_exactly(tmp_path):
    wav = _wav(tmp_path / "a.wav")
    whole = _all(FileSource(wav, chunk_ms=100))
    rest = _all(FileSource(wav, chunk_ms=100, start_sample=4800))
    np.testing.assert_array_equal(rest, whole[4800:])


def test_state_decides_how_a_restart_goes_on(tmp_path):
    wav = _wav(tmp_path / "a.wav")
    store = CaptureProgress(tmp_path / "state")
    first = FileStream(store, "s1", wav, 100, FakeSender({"sender_epoch": 111, "acked_seq": 9, "acked_sample": 16000,
                                                           "next_seq": 14}))
    assert isinstance(first.open(False), FileSource)  # no state: from 0, nothing resumed
    assert first.sender.resumed == []
    first.record(force=True)  # then SIGKILL
    assert stat.S_IMODE((tmp_path / "state" / "s1.json").stat().st_mode) == 0o600

    killed = FileStream(store, "s1", wav, 100, FakeSender())
    source = killed.open(False)
    assert killed.sender.resumed == [("s1", 111, 10, 16000)] and source.start_sample == 16000

    killed.sender._progress = {"sender_epoch": 111, "acked_seq": 12, "acked_sample": 20800, "next_seq": 13}
    killed.ended = True  # a graceful stop sent end-of-stream: the epoch is over at the worker
    killed.record(force=True)
    stopped = FileStream(store, "s1", wav, 100, FakeSender())
    assert stopped.open(False).start_sample == 20800
    assert stopped.sender.resumed == [("s1", FakeSender.epoch, 0, 20800)]  # a new run from there

    stopped.sender._progress = {"sender_epoch": 222, "acked_seq": 4, "acked_sample": 32000, "next_seq": 5}
    stopped.ended = stopped.finished = True
    stopped.record(force=True)
    assert FileStream(store, "s1", wav, 100, FakeSender()).open(False) is None  # sent completely

    os.utime(wav, ns=(1, 1))  # the file changed: a new run from 0
    changed = FileStream(store, "s1", wav, 100, FakeSender())
    assert changed.open(False).start_sample == 0 and changed.sender.resumed == []
    assert FileStream(store, "s1", wav, 200, FakeSender()).open(False).start_sample == 0  # other chunking
