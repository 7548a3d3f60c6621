"""How the emotion detector's settings behave on whole calls of real emotional speech: alerts on angry
callers, false alerts on calm ones, time to alert.

A "call" is one speaker's clips from ``../shared/data`` (RAVDESS, EMOVO, TurEV; labels.csv, speaker
column) put end to end with short pauses, about ``CALL_S`` seconds, of one kind:

* ``angry``: angry clips only; ``calm>angry``: the corpus's neutral/calm clips for about half the call,
  then angry ones (the onset is the first angry sample);
* ``sad``, ``fearful``, ``disgust``: the other labels the detector can treat as negative;
* ``calm`` (neutral and calm clips) and ``happy``: calls on which an alert is a false alert.

Each call is cut into windows as a site cuts a stream (whole windows, ``window`` s long every ``hop`` s),
gated as the worker gates the desk stream (loudness >= -55 dBFS, speech ratio from the service's own
speech-presence function >= 0.3) and scored by the real model stage (``CoatStage``, encoder cache on).
The per-window outputs (emotion probabilities, speech ratio, loudness) are cached per model, scenario and
call set (``--cache``), so a sweep replays only the real ``EmotionDetector`` (cheap) over a grid of
settings: negative label set x EMA alpha x on-threshold (off-threshold 0.2 below) x on-windows (2 to 4:
the detector's alerts are for sustained emotion, and one 2 s window is a moment).

Splits (by speaker; the model card's split): settings are chosen on the development speakers only
(RAVDESS 01-13, EMOVO f1,f2,m1,m2, TurEV all but 1984; the model trained on all of these but RAVDESS 13,
so dev figures may flatter it); the held-out speakers (RAVDESS 14-16, EMOVO f3,m3, TurEV
1984), clean and through a telephone channel (``edge_coat.train.augment.telephone``), are only reported,
for the chosen setting, the current defaults (``EmotionConfig()`` as the code has it: the setting a re-tuning
would replace) and the first defaults (``PREVIOUS``).

Criterion (``choose``): the most dev angry calls (``angry`` + ``calm>angry``) alerted, subject to false
alerts on at most ``MAX_FALSE`` of the dev calm/happy calls and of the dev ``calm>angry`` calls before the
onset, in every scenario (worst case over the scenarios: the defaults serve every stream); ties: fewer
false alerts, then a shorter median time to alert.

    python -m bench.tuning.emotion_threshold                          # models/coat-tiny (~13 min first, ~1 min cached)
    python -m bench.tuning.emotion_threshold --model runs/X/bundle --json /tmp/emotion.json
    python -m bench.tuning.emotion_threshold --scenario 10:2          # one scenario (window:hop seconds)

Prints the best settings per scenario and the held-out table; writes JSON (``--json``, default
bench/results/emotion_threshold.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import REPO, RESULTS, finish, machine
from edge_coat.data.folder import DatasetFolder, speaker_of
from edge_coat.detectors.config import EmotionConfig
# the grid and the detector replay are the product's (edge-coat tune uses them on a site's own calls)
from edge_coat.detectors.tuning import (MAX_FALSE, alert_times, config_of, current_setting, grid, name_of,
                                        results_of)
from edge_coat.messages import SAMPLE_RATE, WindowResult
from edge_coat.worker.replay import files_digest, window_spans

log = logging.getLogger(__name__)

DATA = REPO.parent / "shared" / "data"
CORPORA = ("ravdess", "emovo", "turev")
HELD_OUT = {"ravdess": {"14", "15", "16"}, "emovo": {"f3", "m3"}, "turev": {"1984"}}
CALM = ("neutral", "calm")
#: call kind -> (labels of the lead-in half, labels of the rest); an empty lead-in: one kind throughout
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "angry": ((), ("angry",)),
    "calm>angry": (CALM, ("angry",)),
    "sad": ((), ("sad",)),
    "fearful": ((), ("fearful",)),
    "disgust": ((), ("disgust",)),
    "calm": ((), CALM),
    "happy": ((), ("happy",)),
}
ANGRY_KINDS = ("angry", "calm>angry")
OTHER_NEGATIVE_KINDS = ("sad", "fearful", "disgust")
CALM_KINDS = ("calm", "happy")
CALL_S = 24.0
MIN_CALL_S = 12.0
PAUSE_S = 0.3
SCENARIOS = ((10.0, 2.0), (3.0, 1.5), (2.0, 1.0))  # (window s, hop s): long windows; deploy/site.example.yaml's
#: desk stream; the demo's desk stream (edge_coat/service/demo.py)
GATE = {"min_rms_dbfs": -55.0, "min_speech_ratio": 0.3}  # the desk stream's gate (deploy/site.example.yaml)
PREVIOUS = {"negative_labels": ("angry", "fearful", "sad", "disgust"), "ema_alpha": 0.5, "on_threshold": 0.6,
            "on_windows": 3}


@dataclass(frozen=True)
class Call:
    """One synthetic call: which clips, in order, and where the angry part starts."""

    call_id: str  # corpus/speaker/kind
    corpus: str
    speaker: str
    kind: str
    split: str  # dev | heldout
    files: tuple[str, ...]  # relative to the corpus folder
    onset_s: float  # 0 unless the call turns angry


# ---- calls --------------------------------------------------------------------------------------------
def clip_seconds(folder: Path, file: str) -> float:
    import soundfile as sf

    return sf.info(str(folder / file)).duration


def build_calls(data: Path = DATA, corpora=CORPORA, kinds=tuple(KINDS), speakers: dict | None = None,
                call_s: float = CALL_S, seed: int = 0) -> list[Call]:
    """The calls of every speaker and kind the corpora allow (a kind needs ``MIN_CALL_S`` of its clips).
    ``speakers``: corpus -> the speakers to use (default: all). Deterministic for a seed."""
    calls = []
    for corpus in corpora:
        folder = data / corpus
        by_speaker: dict[str, dict[str, list[str]]] = {}
        for clip in DatasetFolder(folder, check_audio=False):  # labels.csv read and checked; audio on use
            by_speaker.setdefault(speaker_of(clip), {}).setdefault(clip.label, []).append(clip.file)
        for speaker in sorted(by_speaker):
            if speakers is not None and speaker not in speakers.get(corpus, ()):
                continue
            for kind in kinds:
                lead, main = KINDS[kind]
                digest = int(hashlib.sha256(f"{seed}/{corpus}/{speaker}/{kind}".encode()).hexdigest()[:8], 16)
                rng = np.random.default_rng(digest)
                parts, onset, total = [], 0.0, 0.0
                for labels, until in ((lead, call_s / 2), (main, call_s)) if lead else ((main, call_s),):
                    pool = sorted(f for lab in labels for f in by_speaker[speaker].get(lab, []))
                    rng.shuffle(pool)
                    for f in pool:
                        if total >= until:
                            break
                        parts.append(f)
                        total += clip_seconds(folder, f) + PAUSE_S
                    if labels is lead:
                        onset = total
                need = MIN_CALL_S / 2 if lead else MIN_CALL_S
                if total - onset < need or (lead and onset < need):
                    continue
                split = "heldout" if speaker in HELD_OUT[corpus] else "dev"
                calls.append(Call(f"{corpus}/{speaker}/{kind}", corpus, speaker, kind, split, tuple(parts), onset))
    return calls


def render(call: Call, data: Path = DATA) -> np.ndarray:
    """(N,) float32 16 kHz: the call's clips with ``PAUSE_S`` of silence after each."""
    from edge_coat.data.folder import load_audio

    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32)
    return np.concatenate([x for f in call.files for x in (load_audio(data / call.corpus / f), pause)])


# ---- model readings (cached) ----------------------------------------------------------------------------
def model_key(model: Path) -> str:
    """Changes when the model folder's files change (names, sizes, modification times)."""
    return files_digest(model)[:16]


def call_windows(wave: np.ndarray, window_s: float, hop_s: float) -> list[tuple[float, float]]:
    """(start, end) seconds of the whole windows a site cuts from a stream of this audio."""
    return window_spans(wave.size, window_s, hop_s)


class Scorer:
    """The gate and the real model stage, one call (stream) at a time."""

    def __init__(self, model: Path, threads: int = 1, max_batch: int = 8):
        from bench.common import model_section
        from edge_coat.service.service import speech_presence
        from edge_coat.worker.coat_stage import CoatStage

        self.stage = CoatStage(model_section(model, threads=threads, readings=[]))
        if "emotion" not in self.stage.tasks:
            raise ValueError(f"{model}: the model has no emotion task (it knows {sorted(self.stage.tasks)})")
        self.labels = list(self.stage.tasks["emotion"].labels)
        self.speech_fn = speech_presence("auto")
        self.max_batch = max_batch
        #: a desk readout (``readout_baseline`` "desk") hears every call of a corpus on one desk stream, one capture
        #: run per call, as a site's line does; other models get a stream per call
        self.desk = self.stage.hears_desks
        self.calls = 0

    def __call__(self, stream_id: str, wave: np.ndarray, window_s: float, hop_s: float,
                 desk: str | None = None) -> list[list]:
        """Per window: [start_s, end_s, rms_dbfs, speech_ratio, probs (in ``self.labels`` order) or None
        when the gate kept it from the model]. ``desk``: the stream the call is heard on with a desk readout."""
        from edge_coat.worker.config import StreamConfig
        from edge_coat.worker.replay import replay

        self.calls += 1
        if self.desk and desk is not None:
            stream_id = desk
        stream = StreamConfig(window_s=window_s, hop_s=hop_s, tasks={"emotion": GATE})
        return replay(self.stage, stream, self.speech_fn, stream_id, wave, "emotion", self.labels, epoch=self.calls,
                      max_batch=self.max_batch)


def readings(calls: list[Call], model: Path, scenario: tuple[float, float], channel: str, cache: Path,
             data: Path = DATA, threads: int = 1) -> tuple[list[str], dict[str, list[list]]]:
    """(emotion labels, call id -> window rows) for a scenario and channel, from the cache when this
    model, scenario, channel and call set were scored before."""
    spec = json.dumps([[c.call_id, c.files] for c in calls]).encode()
    key = f"{model_key(model)}-w{scenario[0]:g}h{scenario[1]:g}-{channel}-{hashlib.sha256(spec).hexdigest()[:12]}"
    path = cache / f"{key}.json"
    if path.is_file():
        got = json.loads(path.read_text())
        return got["labels"], got["calls"]
    scorer = _scorer(model, threads)
    out, t0 = {}, time.time()
    for n, call in enumerate(calls):
        wave = render(call, data)
        if channel == "telephone":
            from edge_coat.train.augment import telephone

            wave = telephone(wave)
        desk = f"desk-{call.corpus}-{channel}-{scenario[0]:g}:{scenario[1]:g}"  # one line per corpus and setup
        out[call.call_id] = scorer(call.call_id, wave, *scenario, desk=desk)
        if n % 20 == 19:
            print(f"  {channel} {scenario[0]:g}/{scenario[1]:g} s: {n + 1}/{len(calls)} calls, "
                  f"{time.time() - t0:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": str(model), "scenario": list(scenario), "channel": channel,
                                "labels": scorer.labels, "calls": out}))
    return scorer.labels, out


_SCORERS: dict = {}


def _scorer(model: Path, threads: int) -> Scorer:
    key = (str(model), threads)
    if key not in _SCORERS:
        _SCORERS.clear()
        _SCORERS[key] = Scorer(model, threads)
    return _SCORERS[key]


# ---- the detector replayed -------------------------------------------------------------------------------
def score_setting(config: EmotionConfig, calls: list[Call], results: dict[str, list[WindowResult]]) -> dict:
    """Per kind: calls, alerted (after the onset), early (before it), delays (s from the onset)."""
    out: dict[str, dict] = {}
    for call in calls:
        starts = alert_times(config, results[call.call_id])
        row = out.setdefault(call.kind, {"calls": 0, "alerted": 0, "early": 0, "delays": []})
        row["calls"] += 1
        early = [t for t in starts if t <= call.onset_s]
        late = [t for t in starts if t > call.onset_s]
        row["early"] += bool(early)
        if late:
            row["alerted"] += 1
            row["delays"].append(round(late[0] - call.onset_s, 2))
    return out


def summarise(per_kind: dict) -> dict:
    """Rates from ``score_setting``: angry (both angry kinds), angry_only, negative (angry + sad/fearful/
    disgust), false (calm/happy calls with an alert), early (calm>angry alerted before the onset), delays."""
    def rate(kinds, key="alerted"):
        n = sum(per_kind.get(k, {}).get("calls", 0) for k in kinds)
        return (sum(per_kind.get(k, {}).get(key, 0) for k in kinds) / n if n else None), n

    delays = [d for k in ANGRY_KINDS for d in per_kind.get(k, {}).get("delays", [])]
    angry, n_angry = rate(ANGRY_KINDS)
    angry_only, n_only = rate(("angry",))
    negative, n_neg = rate(ANGRY_KINDS + OTHER_NEGATIVE_KINDS)
    false, n_calm = rate(CALM_KINDS, "alerted")
    early, n_turn = rate(("calm>angry",), "early")
    return {"angry": angry, "angry_only": angry_only, "negative": negative, "false": false, "early": early,
            "other_negative": {k: rate((k,))[0] for k in OTHER_NEGATIVE_KINDS},
            "n": {"angry": n_angry, "angry_only": n_only, "negative": n_neg, "calm": n_calm, "calm>angry": n_turn},
            "delay_median_s": float(np.median(delays)) if delays else None,
            "delay_p90_s": float(np.percentile(delays, 90)) if delays else None}


def by_corpus(config: EmotionConfig, calls: list[Call], results: dict[str, list[WindowResult]]) -> dict:
    """corpus -> [angry calls alerted, angry calls, calm/happy calls alerted, calm/happy calls]."""
    out = {}
    for corpus in sorted({c.corpus for c in calls}):
        k = score_setting(config, [c for c in calls if c.corpus == corpus], results)
        out[corpus] = [sum(k.get(x, {}).get(f, 0) for x in kinds)
                       for kinds in (ANGRY_KINDS, CALM_KINDS) for f in ("alerted", "calls")]
    return out


def fmt_corpora(counts: dict) -> str:
    return ", ".join(f"{c} angry {a}/{n} false {f}/{m}" for c, (a, n, f, m) in counts.items())


def sweep(settings: list[dict], calls: list[Call], results: dict[str, list[WindowResult]]) -> dict[str, dict]:
    """name -> summary for every setting on these calls."""
    return {name_of(s): {"setting": s, **summarise(score_setting(config_of(s), calls, results))} for s in settings}


def choose(sweeps: list[dict[str, dict]], max_false: float = MAX_FALSE) -> str | None:
    """The setting name meeting the false-alert bound (calm/happy calls and before the onset) in every
    sweep (scenario) with the highest worst-case angry detection; ties: lower worst false-alert rate,
    then shorter worst median delay. None when no setting meets the bound."""
    best, best_key = None, None
    for name in sweeps[0]:
        rows = [s[name] for s in sweeps]
        if any((r["false"] or 0.0) > max_false or (r["early"] or 0.0) > max_false for r in rows):
            continue
        key = (min(r["angry"] or 0.0 for r in rows), -max(r["false"] or 0.0 for r in rows),
               -max(r["delay_median_s"] if r["delay_median_s"] is not None else 1e9 for r in rows))
        if best_key is None or key > best_key:
            best, best_key = name, key
    return best


# ---- the run --------------------------------------------------------------------------------------------
def fmt_row(name: str, r: dict) -> str:
    def pct(x):
        return "  -  " if x is None else f"{100 * x:4.0f}%"

    d = r["delay_median_s"]
    return (f"{name:<58} angry {pct(r['angry'])} (only {pct(r['angry_only'])}) negative {pct(r['negative'])} "
            f"false {pct(r['false'])} early {pct(r['early'])} delay {'-' if d is None else f'{d:.0f} s'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "coat-tiny",
                    help="model folder (default: %(default)s)")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder (default: %(default)s)")
    ap.add_argument("--scenario", action="append", metavar="WINDOW:HOP",
                    help="window and hop seconds; repeatable (default: 10:2, 3:1.5 and 2:1)")
    ap.add_argument("--cache", type=Path, default=RESULTS / "emotion_threshold_cache",
                    help="per-window model outputs, per model and scenario (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    ap.add_argument("--max-false", type=float, default=MAX_FALSE, help="false-alert bound of the criterion")
    ap.add_argument("--json", type=Path, default=RESULTS / "emotion_threshold.json", help="where the report goes")
    args = ap.parse_args(argv)
    if not (args.data / "ravdess" / "labels.csv").is_file():
        ap.error(f"no real audio at {args.data} (expected ravdess/, emovo/, turev/ with labels.csv)")
    scenarios = [tuple(float(x) for x in s.split(":")) for s in args.scenario] if args.scenario else list(SCENARIOS)
    start_machine, t0 = machine(), time.time()
    calls = build_calls(args.data)
    dev = [c for c in calls if c.split == "dev"]
    held = [c for c in calls if c.split == "heldout"]
    print(f"{len(calls)} calls ({len(dev)} dev, {len(held)} held out, + {len(held)} telephone copies), "
          f"{sum(c.kind in ANGRY_KINDS for c in dev)} dev angry", flush=True)
    report = {"model": str(args.model), "model_key": model_key(args.model), "criterion": (
        f"max worst-scenario dev angry-call detection s.t. dev false alerts (calm/happy calls, and calm>angry "
        f"calls before the onset) <= {args.max_false:g} in every scenario"),
        "calls": [vars(c) | {"files": list(c.files)} for c in calls], "scenarios": {}}
    settings = grid()
    dev_sweeps, replays = [], {}
    for scenario in scenarios:
        key = f"window {scenario[0]:g} s hop {scenario[1]:g} s"
        replays[key] = {}
        for channel, subset in (("clean", calls), ("telephone", held)):
            labels, rows = readings(subset, args.model, scenario, channel, args.cache, args.data, args.threads)
            replays[key][channel] = {c: results_of(c, labels, r) for c, r in rows.items()}
        print(f"{key}: readings ready at {time.time() - t0:.0f} s; sweeping {len(settings)} settings", flush=True)
        dev_sweeps.append(sweep(settings, dev, replays[key]["clean"]))
    chosen = choose(dev_sweeps, args.max_false)
    previous = name_of({**PREVIOUS, "negative_labels": list(PREVIOUS["negative_labels"])})
    current = name_of(current_setting())
    report["chosen"] = dev_sweeps[0][chosen]["setting"] if chosen else None
    for scenario, dev_sweep in zip(scenarios, dev_sweeps):
        key = f"window {scenario[0]:g} s hop {scenario[1]:g} s"
        ok = [n for n, r in dev_sweep.items()
              if (r["false"] or 0) <= args.max_false and (r["early"] or 0) <= args.max_false]
        top = sorted(ok, key=lambda n: (-(dev_sweep[n]["angry"] or 0), dev_sweep[n]["false"] or 0))[:8]
        print(f"\n{key}, dev: best within the false-alert bound (of {len(ok)} meeting it)")
        for n in top:
            print(fmt_row(n, dev_sweep[n]))
        shown = {"previous": previous, "current": current, **({"chosen": chosen} if chosen else {})}
        for label, n in shown.items():
            print(fmt_row(f"[{label}] {n}", dev_sweep[n]))
        held_rows = {}
        for label, n in shown.items():
            cfg = config_of(dev_sweep[n]["setting"])
            for channel in ("clean", "telephone"):
                r = summarise(score_setting(cfg, held, replays[key][channel]))
                held_rows[f"{label} {channel}"] = {"setting": dev_sweep[n]["setting"], **r,
                                                   "by_corpus": by_corpus(cfg, held, replays[key][channel])}
            dev_sweep[n]["by_corpus"] = by_corpus(cfg, dev, replays[key]["clean"])
        for label, n in shown.items():
            print(f"  [{label}] dev by corpus: {fmt_corpora(dev_sweep[n]['by_corpus'])}")
        print(f"{key}, held out (RAVDESS 14-16, EMOVO f3/m3, TurEV 1984):")
        for label, r in held_rows.items():
            print(fmt_row(f"[{label}]", r))
            print(f"  by corpus: {fmt_corpora(r['by_corpus'])}")
        report["scenarios"][key] = {"dev": {"sweep": dev_sweep, "chosen": dev_sweep.get(chosen),
                                            "previous": dev_sweep[previous], "current": dev_sweep[current]},
                                    "heldout": held_rows}
    if chosen:
        print(f"\nchosen: {chosen}")
    else:
        print(f"\nno setting keeps dev false alerts <= {args.max_false:g} in every scenario")
    report.update(wall_s=time.time() - t0, machine_start=start_machine, machine_end=machine())
    return finish(args.json, report)


if __name__ == "__main__":
    raise SystemExit(main())
