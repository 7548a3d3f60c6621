"""A real RTSP server (GStreamer, run by the system python3) read by `RtspSource`: audio arrives,
a server restart is survived and reported as an outage with its gap, a frozen server times out."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_coat.capture.sources import RtspSource

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PY = "/usr/bin/python3"


def _have_gst_rtsp() -> bool:
    if not os.path.exists(SYSTEM_PY):
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PY, "-c", probe], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _have_gst_rtsp(), reason="GStreamer RTSP server (python3-gi, "
                                "gir1.2-gst-rtsp-server-1.0) not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int) -> subprocess.Popen:
    p = subprocess.Popen([SYSTEM_PY, str(SERVER), str(port), "440"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGCONT)
        p.kill()
    p.wait(5)


class _Reader:
    def __init__(self, src: RtspSource):
        self.src, self.blocks, self.lock = src, [], threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for b in self.src.blocks():
            with self.lock:
                self.blocks.append(b)

    def samples(self) -> int:
        with self.lock:
            return sum(len(b.samples) for b in self.blocks)

    def close(self):
        self.src.stop()
        self.thread.join(10)


def _wait(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_rtsp_read_restart_and_outage():
    port = _free_port()
    server = _serve(port)
    reader = _Reader(RtspSource(f"rtsp://127.0.0.1:{port}/audio", open_timeout_s=2, read_timeout_s=1,
                                backoff_initial_s=0.2, backoff_max_s=0.5))
    try:
        assert _wait(lambda: reader.samples() >= 16000, 15)
        assert reader.src.online.is_set()
        y = np.concatenate([b.samples for b in reader.blocks])[-16000:]
        assert np.argmax(np.abs(np.fft.rfft(y * np.hanning(len(y))))) == pytest.approx(440, abs=2)
        server.kill()  # the server dies: a normal end of stream over TCP, or a read error
        server.wait(5)
        assert _wait(lambda: not reader.src.online.is_set(), 10)
        time.sleep(1.0)
        before = reader.samples()
        server = _serve(port)
        assert _wait(lambda: reader.samples() > before + 8000, 15)
        assert reader.src.online.is_set() and reader.src.outages == 1
        gaps = [b.gap_samples for b in reader.blocks if b.gap_samples]
        assert len(gaps) == 1 and gaps[0] >= 16000 * 0.9  # at least the second we waited
    finally:
        reader.close()
        _stop(server)


def test_rtsp_frozen_server_is_detected_by_timeout():
    port = _free_port()
    server = _serve(port)
    reader = _Reader(RtspSource(f"rtsp://127.0.0.1:{port}/audio", open_timeout_s=1, read_timeout_s=1,
                                backoff_initial_s=0.2, backoff_max_s=0.5))
    try:
        assert _wait(lambda: reader.samples() >= 8000, 15)
        server.send_signal(signal.SIGSTOP)  # alive but silent: only a timeout can tell
        assert _wait(lambda: not reader.src.online.is_set(), 10)
        assert reader.src.outages == 1 and reader.src.last_error
    finally:
        reader.close()
        _stop(server)
