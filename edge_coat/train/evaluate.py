"""``edge-coat eval``: score a model on a labelled dataset folder (the contract in ARCHITECTURE.md).

Classification (emotion, events): each clip is scored against the candidate labels (all of the
task's labels, or those the ``--label-map`` leaves) and the most probable is the prediction.

Anomaly: the clips labelled ``normal`` are split in file order: the first ``enroll`` (default half)
enroll a normal profile, the rest are tested with the ``abnormal`` clips. When the folder has a
``machine`` column, each machine gets its own profile from its own normal clips (enrollment on the
same machine's normal sound, as on site), ``enroll`` applying per machine. Enrollment and scoring
are the service's own: each clip becomes a ``WindowResult`` that
``edge_coat.detectors.AnomalyDetector`` enrolls (``enroll_from_results``) or scores (``score``), with
the detector's ``AnomalyConfig`` (features, method, k, fusion weight with the model's P(abnormal));
only ``k`` is lowered where a machine has too few enrollment clips for it. The distance-only and
model-only AUCs are reported beside the fused one.

Clips longer than the model's encoder window are centre-cropped to it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_coat.data.folder import Clip
from edge_coat.train.data import load_wave
from edge_coat.train.metrics import anomaly_metrics, bootstrap_intervals, classification_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """What an evaluation produced: the contract's fields plus the per-clip predictions."""

    task: str
    model: str
    n: int
    metrics: dict
    per_class: dict[str, dict]
    predictions: list[tuple[str, str, float]]  # (file, predicted label or "", score)


def normalize_loudness(wave: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale a (N,) clip to ``target_dbfs`` RMS (clipped to [-1, 1]); silence is left alone."""
    rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))
    if rms < 1e-8:
        return wave
    return np.clip(wave * np.float32(10 ** (target_dbfs / 20) / rms), -1.0, 1.0).astype(np.float32)


def _waves(clips: Sequence[Clip], max_seconds: float, loudness_dbfs: float | None,
           channel: str = "clean", snr_db: float | None = None) -> list[np.ndarray]:
    """The clips' audio, centre-cropped, through ``channel`` (e.g. a telephone line), with pink background
    noise at ``snr_db`` (seeded by the clip's name, so every model hears the same noise), loudness-normalised."""
    import zlib

    from edge_coat.train.augment import add_noise, apply_channel

    out = []
    for c in clips:
        w = apply_channel(load_wave(c, max_seconds), channel)
        if snr_db is not None:
            w = add_noise(w, snr_db, np.random.default_rng(zlib.crc32(c.file.encode())))
        out.append(normalize_loudness(w, loudness_dbfs) if loudness_dbfs is not None else w)
    return out


#: what a relative readout's baseline is drawn from in an evaluation (``readout_contexts``)
BASELINE_CONTEXTS = ("speaker", "calm", "desk", "none")
#: the labels of a calm caller: the "calm" context draws only from a speaker's clips of these
CALM_LABELS = frozenset({"neutral", "calm"})


def readout_contexts(model, task: str, clips: Sequence[Clip], context: str | None = None, *, batch_size: int = 8,
                     loudness_dbfs: float | None = None, channel: str = "clean",
                     snr_db: float | None = None, desk_clips: Sequence[Clip] | None = None) -> list | None:
    """Per clip, the statistics of the earlier windows a stream of its speaker would have heard, for a task whose
    readout reads them relative to that baseline (``CoatModel.score_labels(readout_context=)``); None when the task's
    readout is absolute or ``context`` is "none" (each clip then scored as a stream's first window).

    "speaker": up to ``readout_baseline_windows`` other clips of the same speaker (``group_of``), drawn as the fit
    draws them (``edge_coat.train.readout.group_contexts``); "calm": only from the speaker's neutral and calm clips.
    A clip without a speaker column is its own group and gets no context. "desk": the mean of every other clip of
    ``desk_clips`` (default ``clips``; ``desk_contexts``): one desk on one line that has heard all of them, whatever
    their speaker or label. None: the model's own kind (``coat_config.readout_baseline``: "speaker" or "desk")."""
    from edge_coat.train.data import group_of
    from edge_coat.train.readout import clip_statistics, desk_contexts, group_contexts

    context = model.config.readout_baseline if context is None else context
    if context not in BASELINE_CONTEXTS:
        raise ValueError(f"baseline context must be one of {list(BASELINE_CONTEXTS)}, got {context!r}")
    if context == "none" or not (model.use_readout and model.readout.is_relative(task)):
        return None
    # a pass of its own over the audio (the tower only, not the LLM) before the scoring pass: every clip's context
    # must be known before it is scored, and holding a whole folder's waves would not bound memory
    def statistics(of: Sequence[Clip]) -> np.ndarray:
        return np.concatenate([clip_statistics(model, _waves(of[i:i + batch_size], model.clip_seconds, loudness_dbfs,
                                                             channel, snr_db), batch_size)
                               for i in range(0, len(of), batch_size)])

    if context == "desk":
        heard = list(clips if desk_clips is None else desk_clips)
        ctx = desk_contexts(statistics(heard), ["desk"] * len(heard))
        at = {c.file: i for i, c in enumerate(heard)}
        if all(c.file in at for c in clips):
            return [ctx[at[c.file]] for c in clips]
        raise ValueError("a desk context must come from a folder that holds the clips scored")
    stats = statistics(clips)
    eligible = [c.label in CALM_LABELS for c in clips] if context == "calm" else None
    return group_contexts(stats, [group_of(c) for c in clips], model.config.readout_baseline_windows, eligible)


def _heard(context) -> int:
    """How many windows a readout context holds (rows, or a ``HeardMean``'s count; None: none)."""
    from edge_coat.model.readout import HeardMean

    if context is None:
        return 0
    return int(context.count) if isinstance(context, HeardMean) else len(context)


def score_clips(model, clips: Sequence[Clip], prompt: str, candidates: Sequence[str], *, use_thinking: bool,
                batch_size: int = 8, loudness_dbfs: float | None = None, progress: bool = False,
                waves: Sequence[np.ndarray] | None = None, channel: str = "clean", snr_db: float | None = None,
                contexts: Sequence[np.ndarray] | None = None):
    """Score clips in batches -> (probs (N, C), thinking latents (N, K, D)).

    ``waves``: the clips' audio when the caller has loaded it already (else loaded here). ``contexts``: per clip,
    its stream's earlier statistics for a relative readout (``readout_contexts``)."""
    from tqdm import tqdm

    probs, latents = [], []
    for i in tqdm(range(0, len(clips), batch_size), disable=not progress, desc="eval"):
        if waves is None:
            batch = _waves(clips[i:i + batch_size], model.clip_seconds, loudness_dbfs, channel, snr_db)
        else:
            batch = list(waves[i:i + batch_size])
        res = model.score_labels(batch, prompt, list(candidates), use_thinking=use_thinking,
                                 readout_context=None if contexts is None else contexts[i:i + batch_size])
        probs.append(res.probs)  # (b, C)
        latents.append(res.thinking)  # (b, K, D)
    return np.concatenate(probs), np.concatenate(latents)


def evaluate_classification(model, task: str, clips: Sequence[Clip], candidates: Sequence[str], *,
                            use_thinking: bool = True, batch_size: int = 8, loudness_dbfs: float | None = None,
                            progress: bool = False, model_name: str = "", channel: str = "clean",
                            snr_db: float | None = None, bootstrap: int = 1000,
                            baseline_context: str | None = None,
                            desk_clips: Sequence[Clip] | None = None) -> EvalResult:
    """Score ``clips`` and compute the classification metrics; ``bootstrap`` > 0 adds ``metrics["ci95"]``, 95 %
    percentile intervals of accuracy and UA over that many clip resamples (``bootstrap_intervals``).
    ``baseline_context``: where a relative readout's baseline comes from (``readout_contexts``; None: the model's
    own kind), ``desk_clips`` what a "desk" context has heard (default ``clips``); recorded in
    ``metrics["readout_baseline"]`` when the task's readout is relative."""
    baseline_context = model.config.readout_baseline if baseline_context is None else baseline_context
    prompt = model.config.tasks[task].prompt
    contexts = readout_contexts(model, task, clips, baseline_context, batch_size=batch_size,
                                loudness_dbfs=loudness_dbfs, channel=channel, snr_db=snr_db, desk_clips=desk_clips)
    probs, _ = score_clips(model, clips, prompt, candidates, use_thinking=use_thinking, batch_size=batch_size,
                           loudness_dbfs=loudness_dbfs, progress=progress, channel=channel, snr_db=snr_db,
                           contexts=contexts)
    pred_idx = probs.argmax(-1)  # (N,)
    y_pred = [candidates[i] for i in pred_idx]
    metrics, per_class = classification_metrics([c.label for c in clips], y_pred, candidates)
    if model.use_readout and model.readout.is_relative(task):
        metrics["readout_baseline"] = {
            "context": baseline_context, "windows": model.config.readout_baseline_windows,
            "kind": model.config.readout_baseline,
            "clips_with_context": 0 if contexts is None else int(sum(_heard(c) > 0 for c in contexts))}
    if bootstrap > 0:
        metrics["ci95"] = bootstrap_intervals([c.label for c in clips], y_pred, resamples=bootstrap)
        metrics["ci95_resamples"] = bootstrap
    # One-vs-rest ranking of each class by its probability: what an alert on that class ("angry") rests on.
    truth = [c.label for c in clips]
    for j, label in enumerate(candidates):
        y = np.array([t == label for t in truth])
        if label in per_class and 0 < y.sum() < len(y):
            per_class[label]["auc_vs_rest"] = float(anomaly_metrics(y.astype(int), probs[:, j])["auc"])
    preds = [(c.file, p, float(probs[i, pred_idx[i]])) for i, (c, p) in enumerate(zip(clips, y_pred))]
    return EvalResult(task, model_name, len(clips), metrics, per_class, preds)


def split_enrollment(clips: Sequence[Clip], enroll: int | None) -> tuple[dict[str, list[int]], list[int]]:
    """Indices of enrollment normals per machine (``""`` without a machine column) and of test clips.

    Normals of each machine in file order: the first ``enroll`` (default: half, rounded down) enroll.
    """
    normals: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(clips):
        if c.label == "normal":
            normals[c.meta.get("machine", "")].append(i)
    enrolled: dict[str, list[int]] = {}
    for machine, idx in normals.items():
        n = len(idx) // 2 if enroll is None else enroll
        if n >= len(idx):
            raise ValueError(
                f"--enroll {n} leaves no normal test clip{f' for machine {machine!r}' if machine else ''} "
                f"({len(idx)} normal clips): lower --enroll"
            )
        enrolled[machine] = idx[:n]
    taken = {i for idx in enrolled.values() for i in idx}
    test = [i for i in range(len(clips)) if i not in taken]
    return enrolled, test


def evaluate_anomaly(model, clips: Sequence[Clip], *, enroll: int | None = None, use_thinking: bool = True,
                     batch_size: int = 8, loudness_dbfs: float | None = None, progress: bool = False,
                     model_name: str = "", config=None, max_fpr: float = 0.1, channel: str = "clean",
                     snr_db: float | None = None) -> EvalResult:
    """Anomaly AUC/pAUC with the service's detector; ``config`` is an ``AnomalyConfig`` (default: its defaults)."""
    from edge_coat.detectors.config import AnomalyConfig

    labels = {c.label for c in clips}
    if not labels <= {"normal", "abnormal"} or "normal" not in labels or "abnormal" not in labels:
        raise ValueError(
            f"anomaly evaluation needs clips labelled 'normal' and 'abnormal' (map others with --label-map), "
            f"got labels {sorted(labels)}"
        )
    spec = model.config.tasks["anomaly"]
    if "abnormal" not in spec.labels:
        raise ValueError(f"the model's anomaly task has labels {spec.labels}; expected one named 'abnormal'")
    enrolled, test = split_enrollment(clips, enroll)
    small = {m or "the folder": len(idx) for m, idx in enrolled.items() if len(idx) < 3}
    if small:
        raise ValueError(f"need at least 3 normal enrollment clips per machine, got {small}: add normal clips or raise --enroll")
    cfg = config or AnomalyConfig()
    waves = _waves(clips, model.clip_seconds, loudness_dbfs, channel, snr_db)
    probs, latents = score_clips(model, clips, spec.prompt, list(spec.labels), use_thinking=use_thinking,
                                 batch_size=batch_size, progress=progress, waves=waves)  # (N, C), (N, K, D)
    results = [_as_window_result(i, w, dict(zip(spec.labels, map(float, probs[i]))), latents[i], model_name)
               for i, w in enumerate(waves)]
    detectors = _enroll_per_machine(clips, enrolled, results, cfg)
    fused, dist_score = np.zeros(len(clips)), np.zeros(len(clips))  # (N,) each
    p_abn = probs[:, list(spec.labels).index("abnormal")]  # (N,)
    for i in test:
        machine = clips[i].meta.get("machine", "") if len(detectors) > 1 else next(iter(detectors))
        if machine not in detectors:
            raise ValueError(f"{clips[i].file}: machine {machine!r} has no normal clips to enroll")
        scores = detectors[machine].score(results[i])
        if scores is None or "profile_score" not in scores:
            raise ValueError(f"{clips[i].file}: the normal profile of machine {machine!r} could not score it")
        fused[i], dist_score[i] = scores["score"], scores["profile_score"]
    y = np.array([int(clips[i].label == "abnormal") for i in test])
    metrics = anomaly_metrics(y, fused[test], max_fpr)
    for name, s in (("distance", dist_score), ("model", p_abn)):
        m = anomaly_metrics(y, s[test], max_fpr)
        metrics[f"auc_{name}"], metrics[f"pauc_{name}"] = m["auc"], m["pauc"]
    metrics.update(n_enroll=sum(len(v) for v in enrolled.values()), n_test_normal=int((y == 0).sum()),
                   n_test_abnormal=int((y == 1).sum()), model_weight=cfg.model_weight, features=cfg.features,
                   method=cfg.method, k=cfg.k)
    per_class = {}
    for label, flag in (("normal", 0), ("abnormal", 1)):
        sel = [i for i, yy in zip(test, y) if yy == flag]
        per_class[label] = {"n": len(sel), "mean_score": float(np.mean(fused[sel])),
                            "above_0.5": float(np.mean(fused[sel] > 0.5))}
    faults = defaultdict(list)
    for i in test:
        if clips[i].label == "abnormal" and clips[i].meta.get("fault"):
            faults[clips[i].meta["fault"]].append(i)
    normal_test = [i for i in test if clips[i].label == "normal"]
    if len(faults) > 1:
        by_fault = {}
        for fault, idx in sorted(faults.items()):
            yy = np.array([0] * len(normal_test) + [1] * len(idx))
            m = anomaly_metrics(yy, fused[normal_test + idx], max_fpr)
            by_fault[fault] = {"n": len(idx), "auc": m["auc"], "pauc": m["pauc"]}
        per_class["abnormal"]["by_fault"] = by_fault
    preds = [(clips[i].file, "", float(fused[i])) for i in test]
    return EvalResult("anomaly", model_name, len(test), metrics, per_class, preds)


def _as_window_result(index: int, wave: np.ndarray, probs: dict[str, float], thinking: np.ndarray, model_name: str):
    """A clip as the service's detector sees a window (stream id filled in per machine later)."""
    from edge_coat.messages import SAMPLE_RATE, Window, WindowResult

    start = index * 3600.0  # clips are separate recordings: spans that never overlap
    window = Window(stream_id="eval", index=index, start_sample=0, start_ts=start, end_ts=start + wave.size / SAMPLE_RATE,
                    samples=wave, tasks=("anomaly",))
    return WindowResult(window=window, label_probs={"anomaly": probs}, thinking=thinking, model_name=model_name)


def _enroll_per_machine(clips: Sequence[Clip], enrolled: dict[str, list[int]], results: list, cfg) -> dict:
    """One enrolled ``AnomalyDetector`` per machine (profiles in a temporary folder, like a site's)."""
    import tempfile
    from pathlib import Path

    from edge_coat.detectors.anomaly import AnomalyDetector
    from edge_coat.detectors.config import AnomalyConfig

    detectors = {}
    with tempfile.TemporaryDirectory(prefix="edge-coat-eval-") as tmp:
        for j, (machine, idx) in enumerate(sorted(enrolled.items())):
            k = max(1, min(cfg.k, len(idx) - 2))  # the profile's leave-one-out calibration needs k + 2 clips
            mcfg = AnomalyConfig(**{**cfg.model_dump(), "k": k, "min_enroll_windows": max(3, k + 1),
                                    "profile_dir": Path(tmp) / f"m{j}"})
            det = AnomalyDetector(mcfg)
            det.enroll_from_results("eval", [results[i] for i in idx])
            detectors[machine] = det
    return detectors
