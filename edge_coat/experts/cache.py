"""Teacher cache: each expert's targets computed once per clip and kept on disk.

Layout: ``ROOT/<expert name>/<sha[:2]>/<sha>.npz`` where ``sha`` is the sha256 of the clip's
16 kHz float32 samples (little-endian bytes). Each file stores the target and the expert's name
and version. A file whose version differs from the expert's (the expert changed) or that cannot
be read is recomputed and overwritten; writes go to a temporary file renamed into place, so a
reader never sees half a file and concurrent writers of the same entry are harmless.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_coat.experts.base import Expert, as_wave16k

log = logging.getLogger(__name__)


def audio_sha256(wave16k: np.ndarray) -> str:
    """Hex sha256 of the audio content as contiguous little-endian float32."""
    wave = as_wave16k(wave16k)
    return hashlib.sha256(wave.astype("<f4", copy=False).tobytes()).hexdigest()


def reads_clip(sha: str, stride: int) -> bool:
    """Whether an expert with ``stride`` N reads the clip with content hash ``sha`` (one clip in N)."""
    return stride <= 1 or int(sha[:8], 16) % stride == 0


@dataclass
class CacheStats:
    """Counters since the cache object was made (``computed`` = hits missing + stale + corrupt)."""

    hits: int = 0
    misses: int = 0
    stale: int = 0
    corrupt: int = 0

    @property
    def computed(self) -> int:
        return self.misses + self.stale + self.corrupt


class TeacherCache:
    """Disk cache of expert targets keyed by audio content, expert name and expert version."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.stats = CacheStats()
        self._stats_lock = threading.Lock()

    def path_for(self, expert_name: str, sha: str) -> Path:
        return self.root / expert_name / sha[:2] / f"{sha}.npz"

    def get(self, expert: Expert, wave16k: np.ndarray, *, sha: str | None = None) -> np.ndarray:
        """The expert's target for this clip: read from disk, or computed and stored."""
        wave = as_wave16k(wave16k, min_samples=expert.min_samples)
        sha = sha or audio_sha256(wave)
        path = self.path_for(expert.name, sha)
        version = expert.version
        outcome = "misses"
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    stored_version = str(data["version"])
                    target = data["target"]
                if stored_version == version:
                    self._count("hits")
                    return target
                outcome = "stale"
                log.info("teacher cache: %s %s... stale (%s != %s), recomputing",
                         expert.name, sha[:12], stored_version, version)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                outcome = "corrupt"
                log.warning("teacher cache: unreadable entry %s (%s), recomputing", path, exc)
        self._count(outcome)
        target = expert(wave)
        self._write(path, target, expert.name, version)
        return target

    def get_all(self, experts: Iterable[Expert], wave16k: np.ndarray,
                strides: dict[str, int] | None = None) -> dict[str, np.ndarray]:
        """All experts' targets for one clip (the audio is hashed once).

        ``strides``: expert name -> N: that (expensive) expert reads only one clip in N, picked by the
        clip's content hash (``reads_clip``), so the same clips are covered in every run and split;
        the others get no entry, which training masks out."""
        wave = as_wave16k(wave16k)
        sha = audio_sha256(wave)
        strides = strides or {}
        return {e.name: self.get(e, wave, sha=sha) for e in experts if reads_clip(sha, strides.get(e.name, 1))}

    def _write(self, path: Path, target: np.ndarray, name: str, version: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, target=np.asarray(target, np.float32), version=np.str_(version), expert=np.str_(name))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _count(self, field: str) -> None:
        with self._stats_lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)
