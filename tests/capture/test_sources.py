"""File, generated and microphone sources; capture -> ZeroMQ -> worker end to end."""

from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile as sf

from edge_coat.capture.runner import CaptureThread
from edge_coat.capture.sources import FileSource, GeneratedSource, open_source
from edge_coat.cli import main
from edge_coat.transport.sender import Sender
from tests.transport.helpers import Collector, make_worker, sender_config, wait_for


def _peak_hz(y):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.argmax(spec) * 16000 / len(y)


def _write_tone(path, rate, channels, secs=1.0, freq=1000.0):
    t = np.arange(int(rate * secs)) / rate
    x = np.repeat((0.5 * np.sin(2 * np.pi * freq * t))[:, None], channels, axis=1).astype(np.float32)
    if path.suffix == ".mp3":  # encode with PyAV (FFmpeg's MP3 encoder)
        with av.open(str(path), "w") as out:
            st = out.add_stream("mp3", rate=rate, layout="stereo" if channels == 2 else "mono")
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.T), format="fltp",
                                               layout=st.layout.name)
            frame.sample_rate = rate
            for p in st.encode(frame):
                out.mux(p)
            for p in st.encode(None):
                out.mux(p)
    else:
        sf.write(path, x, rate)


@pytest.mark.parametrize("name,rate,channels", [
    ("a.wav", 44100, 2), ("a.flac", 48000, 1), ("a.ogg", 22050, 2), ("a.mp3", 44100, 2),
])
def test_file_formats_decode_to_16k_mono(tmp_path, name, rate, channels):
    path = tmp_path / name
    _write_tone(path, rate, channels)
    blocks = list(FileSource(path, chunk_ms=100).blocks())
    y = np.concatenate([b.samples for b in blocks])
    assert all(len(b.samples) == 1600 for b in blocks[:-1])
    assert abs(len(y) - 16000) < 16000 * 0.08  # mp3 adds encoder padding
    assert _peak_hz(y[2000:14000]) == pytest.approx(1000, abs=3)
    assert np.sqrt(np.mean(y[2000:14000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    ts = [b.capture_ts for b in blocks]
    assert np.allclose(np.diff(ts), 0.1)


def test_file_loop_and_bad_files(tmp_path):
    path = tmp_path / "short.wav"
    _write_tone(path, 16000, 1, secs=0.3)
    src = FileSource(path, loop=True)
    got = 0
    for b in src.blocks():
        got += len(b.samples)
        if got >= 16000:
            src.stop()
    assert got >= 16000  # more than three passes over a 0.3 s file
    with pytest.raises(ValueError, match="does not exist"):
        FileSource(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all" * 10)
    with pytest.raises(ValueError, match="cannot decode"):
        list(FileSource(junk).blocks())


def test_generated_source_and_uri_errors():
    src = open_source("gen:sine?freq=440&rate=48000&channels=2&duration=1&realtime=0")
    y = np.concatenate([b.samples for b in src.blocks()])
    assert len(y) == 16000 and _peak_hz(y[1000:15000]) == pytest.approx(440, abs=2)
    with pytest.raises(ValueError, match="gen kind"):
        GeneratedSource(kind="square")
    with pytest.raises(ValueError, match="source URI"):
        open_source("ftp://x/y")


def test_missing_microphone_lists_devices():
    with pytest.raises(ValueError, match="input devices found"):
        open_source("mic:nonexistent-card")


def test_capture_thread_streams_a_file_to_the_worker(tmp_path):
    path = tmp_path / "tone.flac"
    _write_tone(path, 44100, 2, secs=1.0, freq=1500.0)
    got = Collector()
    worker = make_worker(collector=got)
    try:
        with Sender(sender_config(worker.endpoint)) as sender:
            t = CaptureThread("file-1", FileSource(path), sender).start()
            assert wait_for(t.ended.is_set)
            assert sender.wait_acked(10)
            assert t.status()["audio_s"] == pytest.approx(1.0, abs=0.01) and t.errors == 0
        assert wait_for(lambda: len(got.get("file-1")) == 7)  # 4000-sample windows, hop 2000, in 16000
        windows = got.get("file-1")
        assert all(_peak_hz(w.samples) == pytest.approx(1500, abs=4) for w in windows)
    finally:
        worker.close()


def test_capture_command_streams_generated_audio(capsys):
    got = Collector()
    worker = make_worker(collector=got)
    try:
        rc = main(["capture", "--source", "gen:noise?amp=0.1&duration=0.8&realtime=0", "--stream-id", "gen-1",
                   "--source", "gen:sine?duration=0.5&realtime=0", "--stream-id", "gen-2",
                   "--connect", worker.endpoint, "--status-every", "0"])
        assert rc == 0
        assert wait_for(lambda: len(got.get("gen-1")) == 5 and len(got.get("gen-2")) == 3)
        assert main(["capture", "--source", "gen:sine", "--stream-id", "a", "--stream-id", "b",
                     "--connect", worker.endpoint]) == 2
    finally:
        worker.close()
