"""Small generated dataset folders for the training and evaluation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SR = 16_000


def write_folder(root: Path, rows: list[tuple[str, str, dict]], waves: dict[str, np.ndarray]) -> Path:
    """labels.csv (file,label + extra columns of the first row) and the given waves as 16-bit WAV."""
    import soundfile as sf

    root.mkdir(parents=True, exist_ok=True)
    extra = list(rows[0][2]) if rows else []
    lines = [",".join(["file", "label", *extra])]
    for file, label, meta in rows:
        lines.append(",".join([file, label, *(str(meta[k]) for k in extra)]))
        if file in waves:
            sf.write(root / file, waves[file], SR, subtype="PCM_16")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def tone_or_noise(root: Path, n: int, seed: int, seconds: float = 1.0) -> Path:
    """A two-class emotion folder that is trivially separable: 'happy' = a steady tone, 'sad' = noise.

    Four speakers (01-04) so speaker splits have something to split.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    rows, waves = [], {}
    for i in range(n):
        if i % 2 == 0:
            wave, label = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 400) * t), "happy"
        else:
            wave, label = 0.1 * rng.standard_normal(t.size).clip(-3, 3), "sad"
        file = f"{i:03d}.wav"
        waves[file] = wave.astype(np.float32)
        rows.append((file, label, {"speaker": f"{i % 4 + 1:02d}"}))
    return write_folder(root, rows, waves)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models train several times faster on one thread on this shared 2-core machine (FACTS.md)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def separable(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("separable")
    return {"train": tone_or_noise(root / "train", 16, seed=0), "test": tone_or_noise(root / "test", 12, seed=1)}


#: cheap DSP experts only, so the tests spend their time on training, not on teachers.
TEST_EXPERTS = "pitch_prosody,loudness_spectral"
