"""Teacher cache: hits, misses, stale versions and corrupt files, on a real disk folder."""

from __future__ import annotations

import numpy as np
import pytest

from edge_coat.experts import Expert, TeacherCache, get_expert
from edge_coat.experts.cache import audio_sha256

from .signals import tone, white_noise


class FrameRms(Expert):
    """A small real expert (RMS per 10 ms frame) that counts how often it computes."""

    name = "frame_rms"
    dim = 1
    frame_rate = 100.0
    loss = "mse"
    license = "test"

    def __init__(self, revision: int = 1) -> None:
        super().__init__()
        self.revision = revision
        self.calls = 0

    def _compute(self, wave: np.ndarray) -> np.ndarray:
        self.calls += 1
        frames = wave[: len(wave) // 160 * 160].reshape(-1, 160)  # (T, 160)
        return np.sqrt(np.mean(frames**2, axis=1, keepdims=True))  # (T, 1)


def test_miss_then_hit_and_one_entry_per_clip(tmp_path):
    cache = TeacherCache(tmp_path / "cache")
    expert = FrameRms()
    a, b = tone(220.0, 1.0), tone(330.0, 1.0)
    first = cache.get(expert, a)
    again = cache.get(expert, a.copy())  # same content, another array: a hit
    other = cache.get(expert, b)
    assert expert.calls == 2
    assert (cache.stats.hits, cache.stats.misses) == (1, 2)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (100, 1) and not np.array_equal(first, other)
    files = sorted((tmp_path / "cache" / "frame_rms").rglob("*.npz"))
    assert [f.stem for f in files] == sorted([audio_sha256(a), audio_sha256(b)])
    # a new cache object over the same folder (a rerun) reuses the stored targets
    rerun = TeacherCache(tmp_path / "cache")
    np.testing.assert_array_equal(rerun.get(expert, a), first)
    assert expert.calls == 2 and rerun.stats.hits == 1


def test_stale_version_is_recomputed(tmp_path):
    cache = TeacherCache(tmp_path)
    wave = tone(220.0, 1.0)
    cache.get(FrameRms(revision=1), wave)
    newer = FrameRms(revision=2)
    cache.get(newer, wave)
    assert newer.calls == 1 and cache.stats.stale == 1
    cache.get(newer, wave)  # the entry now carries the new version
    assert newer.calls == 1 and cache.stats.hits == 1


@pytest.mark.parametrize("damage", [b"not a zip at all", b""])
def test_corrupt_entry_is_recomputed(tmp_path, damage):
    cache = TeacherCache(tmp_path)
    expert = FrameRms()
    wave = white_noise(1.0)
    good = cache.get(expert, wave)
    path = cache.path_for(expert.name, audio_sha256(wave))
    path.write_bytes(damage)
    again = cache.get(expert, wave)
    assert expert.calls == 2 and cache.stats.corrupt == 1
    np.testing.assert_array_equal(good, again)
    assert cache.get(expert, wave) is not None and expert.calls == 2  # repaired on disk


def test_truncated_entry_is_recomputed(tmp_path):
    cache = TeacherCache(tmp_path)
    expert = FrameRms()
    wave = white_noise(1.0, seed=4)
    cache.get(expert, wave)
    path = cache.path_for(expert.name, audio_sha256(wave))
    path.write_bytes(path.read_bytes()[:-40])
    cache.get(expert, wave)
    assert expert.calls == 2 and cache.stats.corrupt == 1


def test_get_all_with_real_experts(tmp_path):
    cache = TeacherCache(tmp_path)
    experts = [get_expert("pitch_prosody"), get_expert("loudness_spectral"), FrameRms()]
    wave = tone(220.0, 1.5)
    first = cache.get_all(experts, wave)
    second = cache.get_all(experts, wave)
    assert set(first) == {"pitch_prosody", "loudness_spectral", "frame_rms"}
    assert cache.stats.misses == 3 and cache.stats.hits == 3
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    np.testing.assert_array_equal(first["pitch_prosody"], get_expert("pitch_prosody")(wave))


def test_bad_audio_is_refused_before_hashing(tmp_path):
    with pytest.raises(ValueError, match="mono"):
        TeacherCache(tmp_path).get(FrameRms(), np.zeros((2, 1600), np.float32))
