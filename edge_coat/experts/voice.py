"""Voice identity: Resemblyzer's 256-d speaker embedding (Apache-2.0, weights in the wheel)."""

from __future__ import annotations

import logging
import warnings

import numpy as np

from edge_coat.experts.base import Expert, package_version, register_expert, require

log = logging.getLogger(__name__)


@register_expert
class VoiceEmbeddingExpert(Expert):
    """One L2-normalised 256-d voice embedding per clip (GE2E LSTM on 40 mel bands).

    Preprocessing follows Resemblyzer's ``preprocess_wav`` (volume to -30 dBFS, long non-speech
    stretches trimmed with WebRTC VAD) with two guards it lacks: a digitally silent clip is not
    volume-normalised (that divides by zero), and when trimming would leave under ``min_trimmed_s``
    of audio (non-speech clips: machines, tones), the untrimmed clip is embedded instead.
    A clip with no energy at all gets the zero vector (cosine targets should skip it).
    """

    name = "voice_embedding"
    dim = 256
    frame_rate = None
    loss = "cosine"
    license = "Apache-2.0 (Resemblyzer code and weights); needs webrtcvad-wheels (MIT), librosa (ISC)"
    min_samples = 1600
    min_trimmed_s = 0.5

    def _backend_version(self) -> str:
        return f"resemblyzer-{package_version('resemblyzer')}"

    def _load(self) -> None:
        with warnings.catch_warnings():  # resemblyzer imports scipy.ndimage.morphology (deprecated)
            warnings.simplefilter("ignore", DeprecationWarning)
            resemblyzer = require("resemblyzer", self.name)  # imports webrtcvad and librosa too
        self._audio = resemblyzer.audio
        self._encoder = resemblyzer.VoiceEncoder(device="cpu", verbose=False)
        self._encoder.eval()
        log.debug("loaded resemblyzer voice encoder")

    def _compute(self, wave: np.ndarray) -> np.ndarray:
        if float(np.max(np.abs(wave))) < 1e-6:
            return np.zeros(self.dim, np.float32)
        wav = self._audio.normalize_volume(wave, -30.0, increase_only=True)
        trimmed = self._audio.trim_long_silences(wav)
        if len(trimmed) >= self.min_trimmed_s * 16000:
            wav = trimmed
        emb = self._encoder.embed_utterance(wav.astype(np.float32))  # (256,)
        if not np.all(np.isfinite(emb)):
            return np.zeros(self.dim, np.float32)
        return emb
