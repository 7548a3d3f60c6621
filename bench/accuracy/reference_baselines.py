"""Simple reference classifiers for the coat-tiny model card, on the model's own held-out split.

    python -m bench.accuracy.reference_baselines --data ../shared/data/ravdess --task emotion --holdout-speakers 14,15,16
    python -m bench.accuracy.reference_baselines --data ../shared/data/urbansound8k --task events --run runs/coat-tiny
    python -m bench.accuracy.reference_baselines --data runs/coat-tiny/data/factory-test --task anomaly [--loudness-norm -26]

Features (each standardised, then logistic regression whose C is chosen by group-wise CV on the
training part only; the held-out part is touched once, for the reported scores):

* ``mfcc_prosody``: mean and std over time of 20 MFCCs (librosa), of the project's pitch/prosody
  expert (F0, voicing, energy) and of its loudness/spectral-shape expert.
* ``voice``: the 256-d Resemblyzer voice embedding (the project's ``voice_embedding`` expert).
* ``yamnet``: the sound-event expert's 521 YAMNet scores, mean and max over its 0.96 s frames.
* ``whisper``: the frozen pretrained audio tower of ``--model DIR`` (coat-tiny 1.0: Whisper tiny.en's
  first blocks), mean and std over time of its output, computed exactly as the model computes it.
  This says what CoAT adds over the pretrained features alone.

Cross-corpus (leave-one-corpus-out): ``--train-data FOLDER`` (repeatable) adds folders used only for
training; ``--all-held-out`` tests on every clip of ``--data``. Predictions are restricted to the
labels the test folder has. ``--channel telephone`` passes the test clips through the telephone line
of ``edge_coat.train.augment`` (training clips stay clean).

``--speaker-baseline N``: every clip's features less the mean of up to N other clips of its speaker (training and
held-out clips alike; ``edge_coat.train.readout.relative_statistics``, the training mean filling a speaker with
fewer), the normalisation a relative readout gets from its stream (docs/coat-tiny-speaker-baseline): the
reference a model scored with ``edge-coat eval --baseline-context speaker`` is compared with.
``--desk-baseline``: every clip's features less the mean of the other clips of its folder on its side (the training
clips of each folder together, the test clips together: their channel; ``edge_coat.train.readout.desk_statistics``),
the normalisation a desk readout gets (docs/coat-tiny-corpus-norm). With ``--all-held-out`` (leave one corpus out) the
test clips' desk is the whole test folder, as ``edge-coat eval --baseline-context desk`` has it; on a held-out split of
one folder it is the held-out clips' own mean.

Anomaly (``--task anomaly``): the split of ``edge-coat eval --task anomaly`` (per machine, the first
half of its normal clips enroll, the rest are tested with the abnormal ones). Each feature set
(``logmel``: mean and std over time of 64 log-mel bands; ``mfcc_prosody`` and ``yamnet`` as above) is
standardised on the machine's enrollment clips and scored by kNN (k=3) and Mahalanobis distance
(the detectors' own ``NormalProfile``) and by the negative log-likelihood of a diagonal GMM. No
option is tuned: these say what simple features can do. AUC and pAUC (FPR <= 0.1), per fault too.

The classification split is the one the model was trained with: ``--run RUN`` reads the held-out speakers/sources
from the run's ``run_config.json``, or give them with ``--holdout-speakers`` / ``--holdout-sources``.
Every other clip of the folder trains the classifier (the model's calibration clips included).
Expert outputs come from the teacher cache, so a rerun is quick. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import REPO
from edge_coat.data.folder import DatasetFolder
from edge_coat.train.data import group_of, parse_list
from edge_coat.train.metrics import classification_metrics
from edge_coat.train.report import format_table, write_json

log = logging.getLogger("reference_baselines")

DEFAULT_FEATURES = {"emotion": ("mfcc_prosody", "voice"), "events": ("mfcc_prosody", "yamnet"),
                    "anomaly": ("logmel", "mfcc_prosody", "yamnet")}
ANOMALY_SCORERS = ("knn", "mahalanobis", "gmm")


def _stats(frames: np.ndarray) -> np.ndarray:
    """(T, D) -> (2D,): mean and std over time."""
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)])


def features(kind: str, wave: np.ndarray, cache) -> np.ndarray:
    from edge_coat.experts import get_expert

    if kind == "mfcc_prosody":
        import librosa

        mfcc = librosa.feature.mfcc(y=wave, sr=16_000, n_mfcc=20, n_fft=512, hop_length=160).T  # (T, 20)
        prosody = cache.get(get_expert("pitch_prosody"), wave)  # (T', 3)
        spectral = cache.get(get_expert("loudness_spectral"), wave)  # (T'', C)
        return np.concatenate([_stats(mfcc), _stats(prosody), _stats(spectral)])
    if kind == "logmel":
        import librosa

        mel = librosa.feature.melspectrogram(y=wave, sr=16_000, n_fft=1024, hop_length=160, n_mels=64)  # (64, T)
        return _stats(np.log(mel + 1e-10).T)
    if kind == "voice":
        return cache.get(get_expert("voice_embedding"), wave)  # (256,)
    if kind == "whisper":
        if _TOWER["model"] is None:
            raise ValueError("feature set 'whisper' needs --model DIR (a model with a pretrained tower)")
        import torch

        with torch.inference_mode():
            h, m = _TOWER["model"].encode_tower([wave])  # (1, T, Da), (1, T)
        return _stats(h[0][m[0]].float().numpy())
    if kind == "yamnet":
        tags = cache.get(get_expert("sound_tags"), wave)  # (T, 521)
        return np.concatenate([tags.mean(axis=0), tags.max(axis=0)])
    raise ValueError(f"unknown feature set {kind!r}; expected logmel, mfcc_prosody, voice or yamnet")


_TOWER: dict = {"model": None}


def _memo(root: str | None, kind: str, wave: np.ndarray, compute) -> np.ndarray:
    """A clip's feature vector, kept on disk under ``root`` by feature set and audio content (the
    leave-one-corpus-out references reuse the same clips three times)."""
    if not root:
        return compute()
    from edge_coat.experts.cache import audio_sha256

    tag = kind if kind != "whisper" else f"whisper-{_TOWER['fingerprint']}"
    path = Path(root) / tag / f"{audio_sha256(wave)}.npy"
    if path.is_file():
        return np.load(path)
    value = np.asarray(compute(), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, value)
    return value


def fit_and_score(x_train, y_train, groups, x_test, allowed=None):
    """Standardise + logistic regression, C by group-wise CV on the training part; returns test predictions
    (restricted to the labels in ``allowed`` when given)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    folds = min(5, len(set(groups)))
    search = GridSearchCV(pipe, {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}, cv=GroupKFold(folds))
    search.fit(x_train, y_train, groups=groups)
    c = search.best_params_["logisticregression__C"]
    if allowed is None:
        return search.predict(x_test), c
    classes = list(search.classes_)
    keep = [i for i, lab in enumerate(classes) if lab in set(allowed)]
    proba = search.predict_proba(x_test)[:, keep]
    return np.array([classes[keep[j]] for j in proba.argmax(axis=1)]), c


def anomaly_scores(x: np.ndarray, enroll_idx: list[int], test_idx: list[int], scorer: str) -> np.ndarray:
    """Anomaly scores (higher = more abnormal) of x[test_idx] against a model of x[enroll_idx]; x (N, F)."""
    from edge_coat.detectors.profile import NormalProfile

    if scorer in ("knn", "mahalanobis"):
        k = max(1, min(3, len(enroll_idx) - 2))
        prof = NormalProfile.fit(x[enroll_idx], method=scorer, k=k, features="reference")
        return np.array([prof.distance(x[i]) for i in test_idx])
    if scorer == "gmm":
        from sklearn.mixture import GaussianMixture

        mean, scale = x[enroll_idx].mean(0), np.maximum(x[enroll_idx].std(0), 1e-6)  # (F,)
        gmm = GaussianMixture(n_components=max(1, min(3, len(enroll_idx) // 4)), covariance_type="diag",
                              reg_covar=1e-2, random_state=0).fit((x[enroll_idx] - mean) / scale)
        return -gmm.score_samples((x[test_idx] - mean) / scale)
    raise ValueError(f"unknown anomaly scorer {scorer!r}; expected one of {ANOMALY_SCORERS}")


def anomaly_references(clips, feats: dict[str, np.ndarray], enroll: int | None = None) -> dict:
    """Per feature set and scorer: AUC, pAUC and per-fault AUC on the eval split.

    Machines are pooled on a common scale, the way ``NormalProfile`` calibrates: a machine's scores
    become (score - median) / (95th percentile - median) of its enrollment clips' leave-one-out scores.
    """
    from edge_coat.train.evaluate import split_enrollment
    from edge_coat.train.metrics import anomaly_metrics

    enrolled, test = split_enrollment(clips, enroll)
    y = np.array([int(clips[i].label == "abnormal") for i in test])
    normal_test = [j for j, i in enumerate(test) if y[j] == 0]
    out = {}
    for kind, x in feats.items():
        for scorer in ANOMALY_SCORERS:
            s = np.zeros(len(test))
            for machine, idx in enrolled.items():
                pos = [j for j, i in enumerate(test) if clips[i].meta.get("machine", "") == machine]
                raw = anomaly_scores(x, idx, [test[j] for j in pos], scorer)
                # the scale comes from enrollment clips only (test normals would leak labels)
                ref = np.array([anomaly_scores(x, [i for i in idx if i != e], [e], scorer)[0] for e in idx])
                s[pos] = (raw - np.median(ref)) / max(np.percentile(ref, 95) - np.median(ref), 1e-9)
            m = anomaly_metrics(y, s)
            by_fault = {}
            for fault in sorted({clips[i].meta.get("fault", "") for i in test} - {"", "none"}):
                sel = [j for j, i in enumerate(test) if clips[i].meta.get("fault") == fault]
                mf = anomaly_metrics(np.r_[np.zeros(len(normal_test)), np.ones(len(sel))], s[normal_test + sel])
                by_fault[fault] = {"n": len(sel), "auc": mf["auc"], "pauc": mf["pauc"]}
            out[f"{kind}/{scorer}"] = {"auc": m["auc"], "pauc": m["pauc"], "features": int(x.shape[1]),
                                       "by_fault": by_fault}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--task", required=True, choices=("emotion", "events", "anomaly"))
    p.add_argument("--run", help="training run directory: take the held-out split from its run_config.json")
    p.add_argument("--holdout-speakers", help="held-out speakers (comma list or file)")
    p.add_argument("--holdout-sources", help="held-out source recordings (comma list or file)")
    p.add_argument("--features", help="comma list of feature sets (default: per task)")
    p.add_argument("--max-seconds", type=float, default=0.0, help="centre-crop clips to this length (0 = whole clip)")
    p.add_argument("--loudness-norm", type=float, metavar="DBFS", help="anomaly: normalise every clip to this RMS first")
    p.add_argument("--enroll", type=int, help="anomaly: normal clips per machine that enroll (default: half)")
    p.add_argument("--teacher-cache", default=str(REPO / ".cache" / "teacher"))
    p.add_argument("--model", help="model directory whose frozen tower gives the 'whisper' features")
    p.add_argument("--feature-cache", help="keep feature vectors here by content (reruns and cross-corpus runs reuse them)")
    p.add_argument("--train-data", action="append", default=[], help="extra folder used only for training (repeat)")
    p.add_argument("--all-held-out", action="store_true", help="test on every clip of --data (cross-corpus)")
    p.add_argument("--channel", default="clean", choices=("clean", "telephone"), help="channel of the test clips")
    p.add_argument("--speaker-baseline", type=int, default=0, metavar="N",
                   help="features less the mean of up to N other clips of the clip's speaker (default 0: none)")
    p.add_argument("--desk-baseline", action="store_true",
                   help="features less the mean of the other clips of the clip's folder (test clips among themselves)")
    p.add_argument("--json", dest="json_out", help="JSON output (default bench/results/reference_baselines_<task>.json)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.task == "anomaly":
        return anomaly_main(args)

    speakers, sources = parse_list(args.holdout_speakers), parse_list(args.holdout_sources)
    if args.run:
        cfg = json.loads((Path(args.run) / "run_config.json").read_text())
        speakers, sources = cfg["holdout_speakers"], cfg["holdout_sources"]
    held = {f"speaker:{s}" for s in speakers} | {f"source:{s}" for s in sources}
    if not held and not args.all_held_out:
        p.error("give the held-out split: --run, --holdout-speakers, --holdout-sources or --all-held-out")
    from edge_coat.data.folder import load_audio
    from edge_coat.experts import TeacherCache
    from edge_coat.train.augment import apply_channel

    if args.model:
        import torch

        from edge_coat.model.coat import CoatModel

        torch.set_num_threads(1)  # one thread is as fast here and steadier under load (FACTS.md)
        from edge_coat.train.towercache import tower_fingerprint

        _TOWER["model"] = CoatModel.from_pretrained(args.model)
        _TOWER["fingerprint"] = tower_fingerprint(_TOWER["model"])
    test_clips = DatasetFolder(args.data).clips
    extra = [c for folder in args.train_data for c in DatasetFolder(folder).clips]
    clips = test_clips + extra
    test_mask = np.array([args.all_held_out or group_of(c) in held for c in test_clips] + [False] * len(extra))
    if not test_mask.any() or test_mask.all():
        p.error(f"the split {sorted(held)} leaves {int(test_mask.sum())} of {len(clips)} clips held out")
    cache = TeacherCache(args.teacher_cache)
    kinds = parse_list(args.features) or list(DEFAULT_FEATURES[args.task])
    labels = sorted({c.label for c, t in zip(clips, test_mask) if t})
    y = np.array([c.label for c in clips])
    groups = np.array([group_of(c) for c in clips])
    feats = {k: [] for k in kinds}
    t0 = time.time()
    for i, clip in enumerate(clips):
        wave = load_audio(clip.path)
        if args.max_seconds > 0 and wave.shape[0] > args.max_seconds * 16_000:
            n = int(args.max_seconds * 16_000)
            wave = wave[(wave.shape[0] - n) // 2:][:n]
        if test_mask[i] and args.channel != "clean":
            wave = apply_channel(wave, args.channel)
        for k in kinds:
            feats[k].append(_memo(args.feature_cache, k, wave, lambda: features(k, wave, cache)))
        if (i + 1) % 100 == 0:
            log.info("features of %d/%d clips (%.0f s)", i + 1, len(clips), time.time() - t0)
    results, rows = {}, []
    # a speaker's group within its own folder (speaker ids repeat across corpora), the test clips apart (their channel)
    speaker_groups = np.array([f"{Path(c.path).parent}/{g}/{'test' if t else 'train'}"
                               for c, g, t in zip(clips, groups, test_mask)])
    for k in kinds:
        x = np.stack(feats[k])  # (N, F)
        if args.speaker_baseline > 0 and args.desk_baseline:
            p.error("give --speaker-baseline or --desk-baseline, not both")
        if args.speaker_baseline > 0:
            from edge_coat.train.readout import relative_statistics

            center = x[~test_mask].mean(0)
            x = relative_statistics(x, speaker_groups, args.speaker_baseline, center)
        elif args.desk_baseline:
            from edge_coat.train.readout import desk_statistics

            desks = [f"{Path(c.path).parent}/{'test' if t else 'train'}" for c, t in zip(clips, test_mask)]
            x = desk_statistics(x, desks, 1, x[~test_mask].mean(0))
        pred, c = fit_and_score(x[~test_mask], y[~test_mask], groups[~test_mask], x[test_mask], allowed=labels)
        metrics, per_class = classification_metrics(y[test_mask].tolist(), pred.tolist(), labels)
        results[k] = {"metrics": metrics, "per_class": per_class, "C": c, "features": int(x.shape[1])}
        rows.append([k, x.shape[1], c, metrics["accuracy"], metrics["ua"], metrics["macro_f1"]])
    print(f"{args.task} references on {args.data}: {int((~test_mask).sum())} train, {int(test_mask.sum())} held-out "
          f"clips ({len(held)} held-out speakers/recordings); chance UA {1 / len(labels):.3f}")
    print(format_table(["features", "dims", "C", "accuracy", "UA", "macro F1"], rows))
    out = Path(args.json_out or REPO / "bench" / "results" / f"reference_baselines_{args.task}.json")
    write_json(out, {"task": args.task, "data": args.data, "train_data": args.train_data, "channel": args.channel,
                     "speaker_baseline": args.speaker_baseline, "desk_baseline": args.desk_baseline,
                     "held_out": "all" if args.all_held_out else sorted(held), "n_train": int((~test_mask).sum()),
                     "n_test": int(test_mask.sum()), "results": results})
    print(f"wrote {out}")
    return 0



def anomaly_main(args) -> int:
    from edge_coat.data.folder import load_audio
    from edge_coat.experts import TeacherCache
    from edge_coat.train.evaluate import normalize_loudness

    clips = DatasetFolder(args.data).clips
    cache = TeacherCache(args.teacher_cache)
    kinds = parse_list(args.features) or list(DEFAULT_FEATURES["anomaly"])
    feats = {k: [] for k in kinds}
    for clip in clips:
        wave = load_audio(clip.path)
        if args.loudness_norm is not None:
            wave = normalize_loudness(wave, args.loudness_norm)
        for k in kinds:
            feats[k].append(features(k, wave, cache))
    results = anomaly_references(clips, {k: np.stack(v) for k, v in feats.items()}, args.enroll)
    faults = sorted({f for r in results.values() for f in r["by_fault"]})
    norm = "" if args.loudness_norm is None else f", loudness-normalised to {args.loudness_norm:g} dBFS"
    print(f"anomaly references on {args.data} ({len(clips)} clips{norm}): per machine, enrolled on normal clips")
    print(format_table(["features/scorer", "dims", "AUC", "pAUC", *faults],
                       [[k, r["features"], r["auc"], r["pauc"], *(r["by_fault"].get(f, {}).get("auc", "") for f in faults)]
                        for k, r in results.items()]))
    suffix = "" if args.loudness_norm is None else "_loudnorm"
    out = Path(args.json_out or REPO / "bench" / "results" / f"reference_baselines_anomaly{suffix}.json")
    write_json(out, {"task": "anomaly", "data": args.data, "loudness_norm": args.loudness_norm, "results": results})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
