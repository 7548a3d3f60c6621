"""A stream's normal profile: what its thinking latents look like when the machine sounds normal.

Scoring follows the DCASE task-2 baselines: an anomaly score is a distance to normal training
data, and the decision threshold is a percentile of the scores of *normal* clips. To keep those
normal scores honest (not optimistic), each enrollment vector is scored against a profile that does
not contain it: leave-one-out for kNN, 5-fold held-out for Mahalanobis. When the enrollment windows'
time spans are known, windows that overlap the one being scored are left out too: a window shares
audio with its overlapping neighbours (hop < window length), so they would make normal distances
look smaller than those of new audio and put the threshold too low.

The threshold is that percentile, raised where a short, tight enrollment would put it too close to
normal (:func:`calibrated_threshold`: at least ``median + robust_z * 1.4826 * MAD`` and ``min_ratio *
median``). The distance becomes a score in [0, 1] through a logistic curve fitted to the enrollment:
the median held-out distance maps to 0.05 and the threshold to 0.5, so ``on_threshold=0.5`` means
"beyond the threshold of normal".
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_coat.messages import check_stream_id

logger = logging.getLogger(__name__)

_LOGIT_05 = math.log(19.0)  # logit(0.95): median -> 0.05, threshold -> 0.5


def calibrated_threshold(calib: np.ndarray, percentile: float, robust_z: float = 0.0,
                         min_ratio: float = 1.0) -> float:
    """The alarm distance from held-out normal distances (N,): the ``percentile`` of them, raised to at
    least ``median + robust_z * 1.4826 * MAD`` and ``min_ratio * median``.

    A percentile alone is too tight when the enrollment is short and the machine stationary: a few
    dozen overlapping windows of seconds of audio barely vary, so their 99th percentile sits a few
    per cent above their median while later audio of the same machine (slow drift of speed, level and
    room) wanders further. The robust spread guards small N (a percentile of 24 values is rough); the
    floor relative to the median guards the tight case, where even the spread is tiny.
    """
    c = np.asarray(calib, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or not np.all(np.isfinite(c)):
        raise ValueError(f"calibration distances must be a non-empty finite (N,) array; got shape {c.shape}")
    median = float(np.median(c))
    mad = float(np.median(np.abs(c - median)))
    return max(float(np.percentile(c, percentile)), median + robust_z * 1.4826 * mad, min_ratio * median)


def pool_latents(thinking: np.ndarray, pooling: str) -> np.ndarray:
    """(K, D) thinking latents -> one float64 vector: (D,) for "mean", (K*D,) for "flatten"."""
    arr = np.asarray(thinking)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"thinking latents must have shape (K, D) with K, D > 0; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("thinking latents contain NaN or inf")
    if pooling == "mean":
        return arr.astype(np.float64).mean(axis=0)  # (D,)
    if pooling == "flatten":
        return arr.astype(np.float64).reshape(-1)  # (K*D,)
    raise ValueError(f"pooling must be 'mean' or 'flatten'; got {pooling!r}")


@dataclass
class NormalProfile:
    """A fitted profile. Build with :meth:`fit`, persist with :meth:`save` / :meth:`load`."""

    method: str  # "knn" | "mahalanobis"
    pooling: str  # how thinking latents were pooled (features "thinking")
    k: int
    percentile: float
    mean: np.ndarray  # (F,) standardisation mean
    scale: np.ndarray  # (F,) standardisation std (floored)
    data: np.ndarray  # (N, F) standardised enrollment vectors
    calib: np.ndarray  # (N,) held-out distances of the enrollment vectors
    threshold: float  # calibrated_threshold(calib, percentile, robust_z, min_ratio)
    median: float
    precision: np.ndarray | None = None  # (F, F) shrunk inverse covariance (mahalanobis)
    model_name: str = ""
    model_version: str = ""
    created_ts: float = 0.0
    latent_shape: tuple[int, int] = (0, 0)
    features: str = "thinking"  # what the vectors are: "thinking" (pooled latents) or "mel" (detectors.features)
    robust_z: float = 0.0  # threshold >= median + robust_z * 1.4826 * MAD of calib
    min_ratio: float = 1.0  # threshold >= min_ratio * median of calib
    degenerate: str = ""  # why the enrollment was degenerate and its threshold floored ("" when it was not)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, vectors: np.ndarray, *, method: str = "knn", pooling: str = "mean", k: int = 5,
            percentile: float = 95.0, latent_shape: tuple[int, int] = (0, 0), model_name: str = "",
            model_version: str = "", features: str = "thinking", spans: np.ndarray | None = None,
            robust_z: float = 0.0, min_ratio: float = 1.0) -> "NormalProfile":
        """Fit from enrollment vectors of shape (N, F); ``spans`` (N, 2): each window's start/end seconds;
        ``robust_z`` / ``min_ratio``: the threshold's floors (see :func:`calibrated_threshold`)."""
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"enrollment vectors must have shape (N, F); got {x.shape}")
        n = x.shape[0]
        if method == "knn" and n < k + 2:
            raise ValueError(f"kNN profile with k={k} needs at least {k + 2} enrollment windows; got {n}")
        if method == "mahalanobis" and n < 5:
            raise ValueError(f"Mahalanobis profile needs at least 5 enrollment windows; got {n}")
        if method not in ("knn", "mahalanobis"):
            raise ValueError(f"method must be 'knn' or 'mahalanobis'; got {method!r}")
        if not np.all(np.isfinite(x)):
            raise ValueError("enrollment vectors contain NaN or inf")
        excluded = _overlaps(spans, n)  # (N, N) bool, the diagonal included
        mean = x.mean(axis=0)  # (F,)
        scale = np.maximum(x.std(axis=0), 1e-6)  # (F,)
        distinct = int(np.unique(x.astype(np.float32), axis=0).shape[0])
        degenerate = ""
        if distinct < max(3, min(k + 1, n)):
            degenerate = f"only {distinct} distinct window(s) of {n}"
        elif float(np.median(x.std(axis=0))) <= 1e-9 * (float(np.sqrt(np.mean(mean**2))) + 1e-12):
            degenerate = "no variance across the windows"
        if degenerate:
            # A steady tone (or silence) gives the same vector every window: every held-out distance is 0,
            # so is the percentile, and any new window would sit "at the threshold". Floor the scale at 1 %
            # of the vectors' magnitude and the threshold at sqrt(F), i.e. an RMS deviation of one floored
            # unit per feature: the same steady sound scores ~0.05, a different one far beyond.
            scale = np.maximum(scale, 0.01 * float(np.sqrt(np.mean(mean**2))) + 1e-6)
        z = (x - mean) / scale  # (N, F)
        precision = None
        if method == "knn":
            calib = _loo_knn_distances(z, k, excluded)
        else:
            calib = _heldout_mahalanobis(z, excluded)
            precision = _shrunk_precision(z)
        threshold = calibrated_threshold(calib, percentile, robust_z, min_ratio)
        if not degenerate and threshold <= 1e-9:
            degenerate = "zero held-out distances"
            scale = np.maximum(scale, 0.01 * float(np.sqrt(np.mean(mean**2))) + 1e-6)
            z = (x - mean) / scale
            calib = _loo_knn_distances(z, k, excluded) if method == "knn" else _heldout_mahalanobis(z, excluded)
            threshold = calibrated_threshold(calib, percentile, robust_z, min_ratio)
        if degenerate:
            threshold = max(threshold, math.sqrt(x.shape[1]))
            logger.warning("degenerate enrollment (%s): threshold floored at %.3f", degenerate, threshold)
        median = float(np.median(calib))
        return cls(method=method, pooling=pooling, k=k, percentile=percentile, mean=mean, scale=scale, data=z,
                   calib=calib, threshold=threshold, median=median, precision=precision, model_name=model_name,
                   model_version=model_version, created_ts=time.time(), latent_shape=tuple(latent_shape),
                   features=features, robust_z=robust_z, min_ratio=min_ratio, degenerate=degenerate)

    @property
    def raised(self) -> bool:
        """Whether a floor, not the percentile, set the threshold (a tight enrollment)."""
        return self.threshold > float(np.percentile(self.calib, self.percentile)) + 1e-12

    # ------------------------------------------------------------------ scoring
    def distance(self, vector: np.ndarray) -> float:
        """Raw distance of one pooled vector (F,) to the profile."""
        v = np.asarray(vector, dtype=np.float64)
        if v.shape != self.mean.shape:
            raise ValueError(f"window vector has {v.shape} features; the {self.features!r} profile expects "
                             f"{self.mean.shape}")
        z = ((v - self.mean) / self.scale)[None, :]  # (1, F)
        if self.method == "knn":
            return float(_knn_distances(z, self.data, self.k, leave_one_out=False)[0])
        d = z[0] - self.data.mean(axis=0)
        return float(math.sqrt(max(d @ self.precision @ d, 0.0)))

    def score(self, distance: float) -> float:
        """Map a raw distance to [0, 1]: median of normal -> 0.05, threshold -> 0.5."""
        spread = max(self.threshold - self.median, 1e-9)
        x = (distance - self.threshold) * _LOGIT_05 / spread
        return float(1.0 / (1.0 + math.exp(-min(max(x, -60.0), 60.0))))

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path, stream_id: str) -> Path:
        """Write ``<stream>.npz`` (arrays) and ``<stream>.json`` (readable metadata); return the npz path."""
        check_stream_id(stream_id)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        npz = directory / f"{stream_id}.npz"
        arrays = {"mean": self.mean, "scale": self.scale, "data": self.data, "calib": self.calib}
        if self.precision is not None:
            arrays["precision"] = self.precision
        tmp = npz.with_suffix(".tmp.npz")
        with _private(tmp) as f:
            np.savez(f, **arrays)
        tmp.replace(npz)  # atomic: a crash never leaves half a profile
        meta = {
            "stream_id": stream_id, "method": self.method, "pooling": self.pooling, "k": self.k,
            "percentile": self.percentile, "threshold": self.threshold, "median": self.median,
            "n": int(self.data.shape[0]), "dim": int(self.data.shape[1]),
            "latent_shape": list(self.latent_shape), "model_name": self.model_name,
            "model_version": self.model_version, "created_ts": self.created_ts, "features": self.features,
            "robust_z": self.robust_z, "min_ratio": self.min_ratio, "degenerate": self.degenerate,
        }
        meta_path = directory / f"{stream_id}.json"
        tmp_meta = meta_path.with_suffix(".tmp.json")
        with _private(tmp_meta) as f:
            f.write(json.dumps(meta, indent=2).encode())
        tmp_meta.replace(meta_path)
        return npz

    @classmethod
    def load(cls, directory: Path, stream_id: str) -> "NormalProfile | None":
        """Load a stream's profile, or None when it has none."""
        check_stream_id(stream_id)
        npz = Path(directory) / f"{stream_id}.npz"
        meta_path = Path(directory) / f"{stream_id}.json"
        if not npz.exists() or not meta_path.exists():
            return None
        meta = json.loads(meta_path.read_text())
        with np.load(npz) as arrays:
            return cls(method=meta["method"], pooling=meta["pooling"], k=int(meta["k"]),
                       percentile=float(meta["percentile"]), mean=arrays["mean"], scale=arrays["scale"],
                       data=arrays["data"], calib=arrays["calib"], threshold=float(meta["threshold"]),
                       median=float(meta["median"]),
                       precision=arrays["precision"] if "precision" in arrays.files else None,
                       model_name=meta.get("model_name", ""), model_version=meta.get("model_version", ""),
                       created_ts=float(meta.get("created_ts", 0.0)),
                       latent_shape=tuple(meta.get("latent_shape", (0, 0))),
                       features=_feature_set(meta.get("features")),
                       robust_z=float(meta.get("robust_z", 0.0)), min_ratio=float(meta.get("min_ratio", 1.0)),
                       degenerate=str(meta.get("degenerate", "")))

    def summary(self) -> dict:
        return {"method": self.method, "features": self.features, "pooling": self.pooling, "n": int(self.data.shape[0]),
                "threshold": self.threshold, "percentile": self.percentile, "robust_z": self.robust_z,
                "min_ratio": self.min_ratio, "median": self.median, "model_name": self.model_name,
                "model_version": self.model_version, "created_ts": self.created_ts, "degenerate": self.degenerate}


def _knn_distances(queries: np.ndarray, data: np.ndarray, k: int, *, leave_one_out: bool) -> np.ndarray:
    """Mean Euclidean distance of each query (Q, F) to its k nearest rows of data (N, F) -> (Q,).

    Small problems (every window in the service: Q = 1) are brute force in numpy: building a
    scikit-learn index per query costs more than the distances themselves. Large ones use the index.
    """
    n_neighbors = min(k + 1 if leave_one_out else k, data.shape[0])
    if queries.shape[0] * data.shape[0] <= 4_000_000:
        sq = (queries**2).sum(1)[:, None] + (data**2).sum(1)[None, :] - 2.0 * queries @ data.T  # (Q, N)
        dist = np.sort(np.sqrt(np.maximum(sq, 0.0)), axis=1)[:, :n_neighbors]  # (Q, n_neighbors), ascending
    else:
        from sklearn.neighbors import NearestNeighbors

        dist, _ = NearestNeighbors(n_neighbors=n_neighbors).fit(data).kneighbors(queries)  # (Q, n_neighbors)
    if leave_one_out:
        dist = dist[:, 1:]  # the first neighbour of an enrollment vector is itself
    return dist.mean(axis=1)


def _overlaps(spans: np.ndarray | None, n: int) -> np.ndarray:
    """(N, N) bool: True where window i's time span overlaps window j's (always on the diagonal)."""
    if spans is None:
        return np.eye(n, dtype=bool)
    s = np.asarray(spans, dtype=np.float64)
    if s.shape != (n, 2):
        raise ValueError(f"enrollment spans must have shape ({n}, 2) (start, end seconds); got {s.shape}")
    out = (s[:, None, 0] < s[None, :, 1]) & (s[None, :, 0] < s[:, None, 1])  # (N, N)
    np.fill_diagonal(out, True)
    return out


def _loo_knn_distances(z: np.ndarray, k: int, excluded: np.ndarray) -> np.ndarray:
    """Each enrollment row's mean distance to its k nearest rows that it does not overlap -> (N,).

    Rows that overlap all others fall back to plain leave-one-out (only themselves left out). Large
    enrollments (over 2,000 windows) use the index with plain leave-one-out."""
    n = z.shape[0]
    if n > 2000:
        logger.info("profile calibration over %d windows: plain leave-one-out (overlaps not excluded)", n)
        return _knn_distances(z, z, k, leave_one_out=True)
    sq = (z**2).sum(1)[:, None] + (z**2).sum(1)[None, :] - 2.0 * z @ z.T  # (N, N)
    dist = np.sqrt(np.maximum(sq, 0.0))
    plain = np.where(np.eye(n, dtype=bool), np.inf, dist)
    dist = np.where(excluded, np.inf, dist)
    lonely = np.isinf(dist).all(axis=1)
    dist[lonely] = plain[lonely]
    near = np.sort(dist, axis=1)[:, :k]  # (N, k), inf where fewer than k rows are left
    valid = np.isfinite(near)
    return np.where(valid, near, 0.0).sum(1) / np.maximum(valid.sum(1), 1)


def _shrunk_precision(z: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf shrunk inverse covariance of (N, F) -> (F, F); stable when N < F."""
    from sklearn.covariance import LedoitWolf

    return LedoitWolf().fit(z).precision_


def _heldout_mahalanobis(z: np.ndarray, excluded: np.ndarray | None = None, folds: int = 5) -> np.ndarray:
    """Mahalanobis distance of each row to a model fitted on the other folds (less the rows that
    overlap the fold, when ``excluded`` (N, N) says so, as long as 3 rows remain) -> (N,)."""
    n = z.shape[0]
    out = np.empty(n)
    for idx in np.array_split(np.arange(n), min(folds, n)):
        drop = idx if excluded is None else np.flatnonzero(excluded[idx].any(axis=0))
        if n - drop.size < 3:
            drop = idx
        train = np.delete(z, drop, axis=0)  # (N - dropped, F)
        prec = _shrunk_precision(train)
        d = z[idx] - train.mean(axis=0)  # (n_fold, F)
        out[idx] = np.sqrt(np.maximum(np.einsum("nf,fg,ng->n", d, prec, d), 0.0))
    return out


def _private(path: Path):
    """A new file opened for binary writing with mode 0600 (a profile describes a site's machines)."""
    path.unlink(missing_ok=True)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _feature_set(saved: object) -> str:
    """The feature set of a saved profile. Profiles written before feature sets existed stored the
    vector width (an int) under "features", and were all fitted on the thinking latents."""
    return saved if isinstance(saved, str) else "thinking"
