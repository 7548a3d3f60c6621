"""Speech presence: Silero VAD 6 (ONNX, MIT), one probability every 32 ms."""

from __future__ import annotations

import logging

import numpy as np

from edge_coat.experts.base import Expert, package_version, register_expert, require
from edge_coat.messages import SAMPLE_RATE

log = logging.getLogger(__name__)


@register_expert
class SileroVadExpert(Expert):
    """Speech probability per 512-sample (32 ms) chunk from the ONNX model in ``silero-vad``.

    Output (T, 1), T = ceil(N / 512): probability in [0, 1] that the chunk holds speech.
    The recurrent state is reset for every call, so a clip's targets never depend on the clip
    computed before it.
    """

    name = "speech_vad"
    dim = 1
    frame_rate = SAMPLE_RATE / 512
    loss = "bce"
    license = "MIT (silero-vad code and weights)"
    channels = ("speech_prob",)
    min_samples = 512
    chunk = 512
    speech_threshold = 0.5

    def _backend_version(self) -> str:
        return f"silero-vad-{package_version('silero-vad')}-onnx"

    def _load(self) -> None:
        require("onnxruntime", self.name)
        self._model = require("silero_vad", self.name).load_silero_vad(onnx=True)  # OnnxWrapper: CPU session, 1 thread
        log.debug("loaded silero-vad ONNX model")

    def _compute(self, wave: np.ndarray) -> np.ndarray:
        import torch

        probs = self._model.audio_forward(torch.from_numpy(wave), SAMPLE_RATE)  # (1, T)
        return probs.numpy().reshape(-1, 1)  # (T, 1)

    def num_frames(self, num_samples: int) -> int:
        return -(-num_samples // self.chunk)

    def readings(self, out: np.ndarray) -> dict[str, float]:
        return {"speech_ratio": float(np.mean(out[:, 0] >= self.speech_threshold))}
