"""Linear probes: what the hidden states at the thinking positions hold about each expert, vs the audio positions.

For every clip, the LLM's hidden states are read at every layer (``CoatModel.probe_states``) and
mean-pooled over the K thinking positions and, separately, over the real audio positions. For each
expert, its target for the clip is pooled per window (time-resolved outputs averaged over frames),
and a cross-validated ridge regression (``RidgeCV`` inside ``KFold``, features standardised)
predicts it from each pooled state; the score is the out-of-fold R^2 (variance-weighted over the
target's dimensions). The clip labels get a logistic-regression probe scored by out-of-fold accuracy.

Targets: dimensions that never vary are dropped; a target wider than ``max_target_dims`` (the 521
sound tags) is reduced to its leading principal components first. That PCA sees the targets of all
clips (not the features), a small, label-side shortcut documented here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_coat.data.folder import Clip
from edge_coat.train.data import load_wave

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeRow:
    target: str  # expert name or "label"
    metric: str  # "r2" or "accuracy"
    layer: int
    thinking: float
    audio: float


def pooled_states(model, waves: list[np.ndarray], prompt: str, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """-> (thinking (layers+1, N, D), audio (layers+1, N, D)): states mean-pooled over positions."""
    think, audio = [], []
    for i in range(0, len(waves), batch_size):
        st = model.probe_states(waves[i:i + batch_size], prompt)
        if st.thinking is None:
            raise ValueError("the model runs without the thinking block: there are no thinking positions to probe")
        think.append(st.thinking.mean(axis=2))  # (L+1, b, D)
        mask = st.audio_mask[None, :, :, None].astype(np.float32)  # (1, b, T, 1)
        audio.append((st.audio * mask).sum(axis=2) / np.maximum(mask.sum(axis=2), 1.0))  # (L+1, b, D)
    return np.concatenate(think, axis=1), np.concatenate(audio, axis=1)


def window_target(output: np.ndarray) -> np.ndarray:
    """An expert output (frames, dim) or (dim,) -> one (dim,) vector per window."""
    return output.mean(axis=0) if output.ndim == 2 else output


def prepare_targets(y: np.ndarray, max_dims: int = 16) -> np.ndarray | None:
    """(N, dim) -> (N, dim') without constant columns, PCA-reduced when wider than ``max_dims``; None if constant."""
    y = y[:, y.std(axis=0) > 1e-6]
    if y.shape[1] == 0:
        return None
    if y.shape[1] > max_dims:
        from sklearn.decomposition import PCA

        y = PCA(n_components=min(max_dims, y.shape[0] - 1), random_state=0).fit_transform(y)
    return y


def ridge_r2(x: np.ndarray, y: np.ndarray, folds: int, seed: int = 0) -> float:
    """Out-of-fold R^2 of a standardised ridge probe x (N, D) -> y (N, dim)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    pred = cross_val_predict(probe, x, y, cv=KFold(folds, shuffle=True, random_state=seed))
    return float(r2_score(y, pred, multioutput="variance_weighted"))


def logistic_accuracy(x: np.ndarray, labels: Sequence[str], folds: int, seed: int = 0) -> float:
    """Out-of-fold accuracy of a standardised logistic-regression probe."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    pred = cross_val_predict(probe, x, np.asarray(labels), cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return float(np.mean(pred == np.asarray(labels)))


def default_layers(num_layers: int, supervised: int) -> list[int]:
    """Input embeddings, the middle, the supervised layer and the last (hidden-state indices)."""
    return sorted({0, num_layers // 2, supervised, num_layers})


def run_probes(model, clips: Sequence[Clip], prompt: str, experts: Sequence, cache, *, layers: Sequence[int] | None = None,
               folds: int = 5, batch_size: int = 8, progress: bool = False) -> list[ProbeRow]:
    """Probe rows for every expert (and the clip labels) x layer."""
    from tqdm import tqdm

    if len(clips) < 2 * folds:
        raise ValueError(f"probes with {folds}-fold CV need at least {2 * folds} clips, got {len(clips)}")
    n_layers = model.adapter.num_layers
    layers = list(layers) if layers else default_layers(n_layers, model.supervised_layer)
    bad = [layer for layer in layers if not 0 <= layer <= n_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range: expected 0..{n_layers} (0 = input embeddings)")
    waves = [load_wave(c, model.clip_seconds) for c in tqdm(clips, disable=not progress, desc="audio")]
    think, audio = pooled_states(model, waves, prompt, batch_size)
    targets = {}
    for expert in experts:
        y = np.stack([window_target(cache.get(expert, w)) for w in tqdm(waves, disable=not progress, desc=expert.name)])
        prepared = prepare_targets(y)
        if prepared is None:
            log.warning("expert %s: target constant over these clips; not probed", expert.name)
            continue
        targets[expert.name] = prepared
    rows = []
    for layer in layers:
        for name, y in targets.items():
            rows.append(ProbeRow(name, "r2", layer, ridge_r2(think[layer], y, folds), ridge_r2(audio[layer], y, folds)))
        labels = [c.label for c in clips]
        counts = {lab: labels.count(lab) for lab in set(labels)}
        if len(counts) >= 2 and min(counts.values()) >= folds:
            rows.append(ProbeRow("label", "accuracy", layer, logistic_accuracy(think[layer], labels, folds),
                                 logistic_accuracy(audio[layer], labels, folds)))
    return rows
