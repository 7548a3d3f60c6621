"""Any rate and channel layout -> 16 kHz mono float32, streaming and anti-aliased.

FFmpeg's libswresample (through PyAV's `av.AudioResampler`) does the rate conversion: it is
stateful, so consecutive chunks join without clicks, and it low-pass filters before decimating.
Channels are averaged here, not by swresample, because its stereo->mono matrix scales the
level (-3 dB centre mix); an average keeps a tone present on every channel at its level.
"""

from __future__ import annotations

import av
import numpy as np

from edge_coat.messages import SAMPLE_RATE


class Resampler:
    """Streaming converter of (N, C) float32 chunks at `rate` Hz to (M,) float32 at 16 kHz mono."""

    def __init__(self, rate: int, channels: int):
        if rate <= 0 or channels <= 0:
            raise ValueError(f"expected a positive rate and channel count, got {rate} Hz x {channels}")
        self.rate, self.channels = rate, channels
        self._swr = None if rate == SAMPLE_RATE else av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self._pts = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C) or (N,) float32 -> (M,) float32 (M ~ N * 16000 / rate; the filter delays a little)."""
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"expected (N, {self.channels}) samples, got shape {x.shape}")
        mono = np.ascontiguousarray(x.mean(axis=1, dtype=np.float32))  # (N,)
        if self._swr is None:
            return mono
        frame = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._pts
        self._pts += len(mono)
        return self._collect(self._swr.resample(frame))

    def flush(self) -> np.ndarray:
        """The samples still inside the filter, at end of stream: (M,) float32."""
        return np.zeros(0, np.float32) if self._swr is None else self._collect(self._swr.resample(None))

    @staticmethod
    def _collect(frames) -> np.ndarray:
        if not frames:
            return np.zeros(0, np.float32)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32, copy=False)


def frame_to_array(frame: av.AudioFrame) -> np.ndarray:
    """A decoded PyAV frame of any sample format -> (N, C) float32."""
    x = frame.to_ndarray()
    if frame.format.is_planar:
        x = x.T  # (C, N) -> (N, C)
    else:
        x = x.reshape(-1, len(frame.layout.channels))  # (1, N*C) interleaved -> (N, C)
    kind = x.dtype.kind
    if kind == "f":
        return x.astype(np.float32, copy=False)
    if kind == "i":
        return x.astype(np.float32) / float(2 ** (8 * x.dtype.itemsize - 1))
    if kind == "u":  # unsigned 8-bit
        return (x.astype(np.float32) - 128.0) / 128.0
    raise ValueError(f"unsupported sample format {frame.format.name}")
