"""``edge-coat tune emotion``: choose the emotion detector's settings on a site's own labelled calls.

The defaults were chosen on acted calls in English, Italian and Turkish (``bench/tuning/emotion_threshold.py``); in a
language or on a line the model never heard they alert unreliably (docs/coat-tiny-corpus-norm, section 8). A site
that has labelled some of its own calls (``edge_coat/data/calls.py``: which calls should have alerted, and from when)
gets settings chosen on them:

1. every call is played, in the file's order, through the site's own stream setup (``worker.streams.<id>``: window,
   hop, gate) and model (``model:``, with ``coat_path``; a desk readout starts from the line's saved desk, a copy);
2. the site's emotion detector is replayed over those readings for every setting of the grid
   (``edge_coat/detectors/tuning.py``); the chosen one alerts on the most calls that should alert with false (and
   early) alerts on at most ``--max-false`` of the calls that can have them;
3. how choosing this way does on calls it was not chosen on is estimated by cross-validation (callers kept together
   with ``group``) and printed beside the site's current settings on the same calls;
4. the chosen setting is printed as a ``detectors:`` snippet (``--out`` writes it to a file).

Nothing in the site's config or desk folder is changed.

``edge-coat tune desk`` (a desk readout, ``model.coat_path``) plays a new line's past recordings on its stream with the
site's own ``model.desk_dir``, so the line's desk baseline is warm before it goes live: a cold desk on a telephone line
scores emotion poorly (docs/coat-tiny-corpus-norm). Labels are not needed; the saved desk is added to, or started
afresh with ``--replace``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import textwrap
import time
from pathlib import Path

HELP = ("choose the emotion detector's settings on the site's own labelled calls (calls.csv + recordings); "
        "warm a new line's desk baseline from its past calls")

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = ("calls.csv, one row per call in the order the line heard them:\n"
                     "  file,alert,onset_s,group\n  0931.wav,yes,41.5,caller-0193\n  1015.wav,no,,caller-0201\n"
                     "alert: should an emotion alert have fired (yes/no); onset_s (optional): when the caller turned; "
                     "group (optional): a caller or agent, kept on one side of the cross-validation")
    parser.add_argument("what", choices=("emotion", "desk"),
                        help="emotion: choose the emotion detector's settings on labelled calls; desk: warm a new "
                             "line's desk baseline (a desk readout, model.coat_path) from its past recordings, in "
                             "model.desk_dir")
    parser.add_argument("-c", "--config", type=Path, required=True, help="the site config (model, worker, detectors)")
    parser.add_argument("--calls", type=Path, required=True,
                        help="folder with calls.csv and the recordings (desk: calls.csv optional, labels unused)")
    parser.add_argument("--stream", help="the stream whose window, hop and gate the calls go through (default: the "
                                         "one stream of worker.streams with the detector's task)")
    parser.add_argument("--detector", help="the emotion detector of detectors: to tune (default: the only one)")
    parser.add_argument("--max-false", type=float, default=None,
                        help="the most calls that may alert falsely, as a fraction of the calls marked no (and of "
                             "early alerts on calls with an onset) (default 0.10)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5; fewer when the calls "
                                                             "are few)")
    parser.add_argument("--out", type=Path, help="write the chosen settings here (YAML, a detectors: snippet)")
    parser.add_argument("--json", dest="json_out", type=Path, help="write the whole report here (JSON)")
    parser.add_argument("--keep-labels", action="store_true",
                        help="keep the detector's negative_labels (what it alerts on) and tune only smoothing, "
                             "threshold and windows (default: the label set is tuned too, e.g. angry + disgust)")
    parser.add_argument("--check-only", action="store_true",
                        help="only score the config's current settings on these calls (no tuning): how the detector "
                             "does on the site's own calls")
    parser.add_argument("--replace", action="store_true",
                        help="desk: start the line's desk afresh from these recordings; by default they are added to "
                             "it (either way the saved one is kept as <stream>.desk.json.bak)")
    parser.add_argument("--readings", type=Path,
                        help="keep the per-window model readings in this file and reuse them while the model, the "
                             "stream setup and the calls are unchanged (a re-run with another --max-false is quick)")


def run(args) -> int:
    from edge_coat.commands._stage import CONFIG_ERROR, load_site_config
    from edge_coat.config import ConfigError, file_problems
    from edge_coat.data.calls import read_calls
    from edge_coat.detectors import tuning
    from edge_coat.errors import UserError

    max_false = tuning.MAX_FALSE if args.max_false is None else args.max_false
    if not 0.0 <= max_false <= 1.0 or math.isnan(max_false):
        raise UserError(f"--max-false must be between 0 and 1 (a fraction of calls); got {args.max_false}", 2)
    if args.folds < 2:
        raise UserError(f"--folds must be at least 2; got {args.folds}", 2)
    # the worker's sockets and keys are not used here: the tuner may run on another box with a copy of the site config
    cfg = load_site_config(args.config, "tune", "model", "worker", files=False)
    if cfg is None:
        return CONFIG_ERROR
    problems = file_problems(cfg, ("model",))
    if problems:
        raise ConfigError(problems, args.config)
    name, base = _detector(cfg, args.detector)
    stream_id, stream = _stream(cfg, args.stream, base.task)
    if args.what == "desk":
        return run_desk(args, cfg, stream_id, stream, base.task)
    rows_of = read_calls(args.calls)  # a malformed calls.csv stops here, before the model loads

    t0 = time.time()
    readings = _score_calls(cfg, args, stream_id, stream, base.task, rows_of)
    labels, per_call, problems = readings["labels"], readings["calls"], readings["problems"]
    calls = [tuning.LabelledCall(c.file, c.alert, c.onset_s, c.group) for c in rows_of if c.file in per_call]
    for p in problems:
        print(f"edge-coat tune: skipped {p}", file=sys.stderr)
    n_alert, n_quiet = sum(c.alert for c in calls), sum(not c.alert for c in calls)
    if not calls:
        raise UserError(f"{args.calls}: none of the {len(rows_of)} calls could be used (each is named above); fix or "
                        "replace their recordings")
    missing = sorted({lab for s in tuning.NEGATIVE_SETS for lab in s} - set(labels))
    if missing:
        log.info("the model has no %s label(s): label sets with them are left out of the grid", missing)
    results = {c.call_id: tuning.results_of(c.call_id, labels, per_call[c.call_id], base.task) for c in calls}

    current = [tuning.outcome(base, c, results[c.call_id]) for c in calls]
    now = tuning.summed(calls, current)
    report = {"calls_folder": str(args.calls), "stream": stream_id, "window_s": stream.window_s, "hop_s": stream.hop_s,
              "detector": name, "model": readings["model"], "max_false": max_false, "calls": len(calls),
              "skipped": problems, "current": {"setting": tuning.setting_of(base), **now},
              "chosen": None, "cross_validated": None}
    print(f"{len(calls)} calls ({n_alert} should alert, {n_quiet} should not) from {args.calls}, stream {stream_id} "
          f"({stream.window_s:g} s windows every {stream.hop_s:g} s), model {_model_name(readings['model'])}")
    print(_line("current settings, these calls", now))
    report["current"]["wrong"] = wrong = _wrong_calls(calls, current)
    for kind, files in wrong.items():
        if files:
            print(f"    {kind}: {', '.join(files[:10])}" + (f" and {len(files) - 10} more" if len(files) > 10 else ""))
    if args.check_only:
        parts = []
        if n_alert:
            lo, hi = _wilson(now["hits"], n_alert)
            parts.append(f"alert on {now['hits']}/{n_alert} calls that should alert (95 % {lo:.0%}-{hi:.0%})")
        if n_quiet:
            lo, hi = _wilson(now["false"], n_quiet)
            parts.append(f"alert falsely on {now['false']}/{n_quiet} calls that should not ({lo:.0%}-{hi:.0%})")
        print(f"\nThe current settings {' and '.join(parts)}.")
        report_out(args, report | {"wall_s": round(time.time() - t0, 1)})
        return 0
    if not n_alert or not n_quiet:
        raise UserError(f"{args.calls}: {n_alert} usable call(s) marked alert=yes and {n_quiet} marked no; tuning "
                        "needs both (calls that should alert, and calls that should not); --check-only takes either")

    sets = [base.negative_labels] if args.keep_labels else tuning.NEGATIVE_SETS
    settings = tuning.grid(labels, sets)
    if not settings:
        raise UserError(f"the model's {base.task} labels ({labels}) include none of the label sets the tuner tries "
                        f"({[list(x) for x in sets]}); this model cannot raise those alerts", 2)
    table = tuning.outcome_table(settings, calls, results, base)
    j, tallies = tuning.choose_for_calls(settings, calls, table, max_false=max_false)
    folds = min(args.folds, n_alert, n_quiet, len({c.group or c.call_id for c in calls}))
    cv = tuning.cross_validate(settings, calls, table, current, k=folds, max_false=max_false) if folds >= 2 else None
    if cv is not None:
        cv["paired"] = tuning.paired(calls, cv.pop("outcomes"), current)

    report.update(cross_validated=cv, wall_s=round(time.time() - t0, 1))
    if j is None:
        report_out(args, report)
        raise UserError(f"no setting keeps false alerts to {max_false:.0%} of these calls; keep the current settings, "
                        "add labelled calls, or allow more with --max-false")
    chosen = tuning.config_of(settings[j], base)
    report["chosen"] = {"setting": settings[j], **tallies[j]}
    print(_line("chosen, on the calls it was chosen on", tallies[j]) + "  (flatters: chosen on them)")
    if cv is not None:
        print(_line(f"chosen, on calls it was not chosen on ({cv['folds']}-fold)", cv))
    report["verdict"] = verdict = _verdict(now, cv, max_false, n_alert, n_quiet)
    snippet = _snippet(name, chosen, report)
    print("\n" + textwrap.fill(" ".join(v for v in verdict.values() if v), width=118) + f"\n\n{snippet}", end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(snippet)
        print(f"written to {args.out}")
    report_out(args, report)
    return 0


def report_out(args, report: dict) -> None:
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=1) + "\n")


# ---- what is tuned ---------------------------------------------------------------------------------------------
def _detector(cfg, name: str | None):
    from edge_coat.errors import UserError

    if name is not None:
        if name not in cfg.detectors.instances or cfg.detectors[name].type != "emotion":
            have = [n for n, c in cfg.detectors.instances.items() if c.type == "emotion"]
            raise UserError(f"detectors.{name}: no emotion detector of that name in the config (emotion detectors: "
                            f"{have or 'none'}); give one of them with --detector", 2)
        return name, cfg.detectors[name]
    names = [n for n, c in cfg.detectors.instances.items() if c.type == "emotion" and c.enabled]
    if len(names) != 1:
        raise UserError(f"the config has {len(names)} enabled emotion detectors ({names}); name one with --detector", 2)
    return names[0], cfg.detectors[names[0]]


def _stream(cfg, stream_id: str | None, task: str):
    from edge_coat.errors import UserError
    from edge_coat.messages import check_stream_id

    if stream_id is None:
        ids = [s for s, sc in cfg.worker.streams.items() if task in sc.tasks]
        if len(ids) != 1:
            raise UserError(f"worker.streams has {len(ids)} streams with the {task} task ({ids}); name the line the "
                            "calls were recorded on with --stream", 2)
        stream_id = ids[0]
    try:
        check_stream_id(stream_id)
    except ValueError as exc:
        raise UserError(f"--stream: {exc}", 2) from None
    stream = cfg.worker.stream(stream_id)
    if task not in stream.tasks:
        where = f"worker.streams.{stream_id}" if stream_id in cfg.worker.streams else "worker.default_stream"
        raise UserError(f"{where} has no {task} task (tasks: {sorted(stream.tasks)}), so the service never scores its "
                        f"windows for {task}; add `{task}: {{min_rms_dbfs: -55, min_speech_ratio: 0.3}}` to its tasks",
                        2)
    return stream_id, stream


# ---- the model's readings of every call ----------------------------------------------------------------------
def _fingerprint(cfg, stream, stream_id: str, calls_folder: Path, rows) -> str:
    """Changes with the model files, the model section, the stream's setup, the line's saved desk and the calls."""
    from edge_coat.worker.replay import files_digest

    h = hashlib.sha256(files_digest(cfg.model.path, cfg.model.coat_path).encode())
    h.update(cfg.model.model_dump_json().encode())
    h.update(stream.model_dump_json().encode())
    h.update(cfg.service.speech_presence.encode())
    desk = _desk_file(cfg, stream_id)
    if desk is not None:
        h.update(desk.read_bytes())
    for c in rows:
        p = calls_folder / c.file
        st = p.stat() if p.is_file() else None
        h.update(f"{c.file}:{st.st_size if st else -1}:{st.st_mtime_ns if st else -1}\n".encode())
    return h.hexdigest()


def _desk_file(cfg, stream_id: str) -> Path | None:
    if cfg.model.desk_dir is None:
        return None
    p = Path(cfg.model.desk_dir) / f"{stream_id}.desk.json"
    return p if p.is_file() else None


def _score_calls(cfg, args, stream_id: str, stream, task: str, rows) -> dict:
    """{"labels", "calls": file -> window rows, "problems": [one line per skipped call], "model": info}, from
    ``--readings`` when it matches."""
    key = _fingerprint(cfg, stream, stream_id, args.calls, rows)
    if args.readings is not None and args.readings.is_file():
        try:
            got = json.loads(args.readings.read_text())
            if got.get("fingerprint") == key:
                print(f"readings of {len(got['calls'])} calls from {args.readings}", file=sys.stderr)
                return got
            print(f"{args.readings}: made for another model, stream setup or set of calls; scoring again",
                  file=sys.stderr)
        except (OSError, ValueError, KeyError, AttributeError):
            print(f"{args.readings}: unreadable; scoring again", file=sys.stderr)
    got = _play(cfg, stream_id, stream, task, args.calls, rows)
    got["fingerprint"] = key
    if args.readings is not None:
        args.readings.parent.mkdir(parents=True, exist_ok=True)
        args.readings.write_text(json.dumps(got))
    return got


def _play(cfg, stream_id: str, stream, task: str, folder: Path, rows, desk_dir: Path | None = None,
          need_desk: bool = False) -> dict:
    """Every recording of ``rows`` through the stream's gate and the model stage, in order. The desk readout's
    baselines are kept in a temporary copy of the line's saved desk, or in ``desk_dir`` itself when given (``tune
    desk``: the line's desk is what is being made). ``need_desk``: a model without a desk readout is an error."""
    import shutil
    import tempfile

    from edge_coat.data.folder import AudioReadError, load_audio
    from edge_coat.errors import UserError
    from edge_coat.messages import SAMPLE_RATE
    from edge_coat.service.service import speech_presence
    from edge_coat.worker.coat_stage import CoatStage
    from edge_coat.worker.replay import replay

    with tempfile.TemporaryDirectory(prefix="edge-coat-tune-") as tmp:
        desk = _desk_file(cfg, stream_id)
        if desk_dir is None:
            # the line's saved desk, copied: the calls are heard on a desk that has heard the line, and the site's
            # file is never written
            if desk is not None:
                shutil.copy(desk, Path(tmp) / desk.name)
            desk_dir = Path(tmp) if cfg.model.desk_dir is not None else None
        stage = CoatStage(cfg.model.model_copy(update={"desk_dir": desk_dir}), readings=[])
        info = stage.info()
        if task not in stage.tasks:
            raise UserError(f"the model ({info['name']} {info['version']}) has no {task} task (it has "
                            f"{sorted(stage.tasks)}); tune a detector whose task the model answers", 2)
        labels = list(stage.tasks[task].labels)
        desk_line = stage.hears_desks
        if need_desk and not desk_line:
            raise UserError(f"the model ({info['name']} {info['version']}) does not read a line's desk baseline, so "
                            "there is no desk to warm; load a desk readout with model.coat_path (e.g. "
                            "models/coat-tiny-desk)", 2)
        needs_speech = any(g.min_speech_ratio is not None for g in stream.tasks.values())
        speech_fn = speech_presence(cfg.service.speech_presence) if needs_speech else None
        out, problems, t0 = {}, [], time.time()
        for n, c in enumerate(rows, start=1):
            try:
                wave = load_audio(folder / c.file)
            except AudioReadError as exc:  # it names the file
                problems.append(str(exc))
                continue
            if wave.size < stream.window_s * SAMPLE_RATE:
                problems.append(f"{c.file}: {wave.size / SAMPLE_RATE:.1f} s, shorter than one {stream.window_s:g} s "
                                "window of the stream")
                continue
            # a desk readout hears every call on the line's one stream, a capture run each; other readouts a stream
            # per call (a speaker baseline starts with each caller)
            sid = stream_id if desk_line else f"{stream_id}-call{n}"
            out[c.file] = replay(stage, stream, speech_fn, sid, wave, task, labels, epoch=n)
            if n % 10 == 0 or n == len(rows):
                print(f"  scored {n}/{len(rows)} calls ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    return {"labels": labels, "calls": out, "problems": problems,
            "model": {k: info[k] for k in ("name", "version", "family")} | {
                "path": str(cfg.model.path), "coat_path": str(cfg.model.coat_path) if cfg.model.coat_path else None,
                "readout_baseline": "desk" if desk_line else "speaker", "desk_from": str(desk) if desk else None}}


# ---- tune desk: a new line's desk heard before it goes live -------------------------------------------------------
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".aiff", ".aif", ".au", ".webm")


def _recordings(folder: Path):
    """The recordings of a folder: ``calls.csv``'s, in its order, when there is one, else every audio file under the
    folder in name order."""
    from edge_coat.data.calls import CALLS_CSV, CallFile, read_calls
    from edge_coat.errors import UserError

    if (folder / CALLS_CSV).is_file():
        return read_calls(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; give a folder of the line's recordings", 2)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                   and p.is_file())
    if not files:
        raise UserError(f"{folder}: no recordings ({', '.join(AUDIO_SUFFIXES)}); give a folder of the line's past "
                        "calls", 2)
    return [CallFile(f, alert=False) for f in files]


def _saved_count(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text())["count"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_desk(args, cfg, stream_id: str, stream, task: str) -> int:
    """``tune desk``: play the line's past recordings on its stream with the real ``model.desk_dir``, so the desk
    readout's baseline for the line is warm before the line goes live (a cold desk scores a telephone line poorly:
    docs/coat-tiny-corpus-norm). The saved desk is added to (a running mean), or started afresh with ``--replace``."""
    from edge_coat.errors import UserError
    from edge_coat.worker.coat_stage import BASELINE_MIN_SPEECH

    if cfg.model.desk_dir is None:
        raise UserError("model.desk_dir is not set, so a warmed desk would be lost; set it (e.g. "
                        "/var/lib/edge-coat/desks) in the site config the worker runs with", 2)
    desk_dir = Path(cfg.model.desk_dir)
    path = desk_dir / f"{stream_id}.desk.json"
    rows = _recordings(args.calls)
    before = _saved_count(path) if path.is_file() else None
    if path.is_file():
        # kept either way: a saved desk of another model (or an unreadable one) is not read, and would be overwritten
        import shutil

        backup = path.with_name(path.name + ".bak")
        if args.replace:
            path.replace(backup)
            print(f"{path}: moved to {backup.name}; the desk starts afresh", file=sys.stderr)
            before = None
        else:
            shutil.copy2(path, backup)
            print(f"{path}: copied to {backup.name} before it is added to", file=sys.stderr)
    print(f"the worker keeps its own copy of a line's desk and rewrites {path.name}: stop it for this line (or run "
          "this before the line goes live)", file=sys.stderr)
    got = _play(cfg, stream_id, stream, task, args.calls, rows, desk_dir=desk_dir, need_desk=True)
    for p in got["problems"]:
        print(f"edge-coat tune: skipped {p}", file=sys.stderr)
    after = _saved_count(path) if path.is_file() else None
    if not after:
        raise UserError(f"no window of the {len(got['calls'])} usable recording(s) passed the stream's gate into the "
                        f"desk (the gate of worker.streams.{stream_id}, then speech ratio >= {BASELINE_MIN_SPEECH}); "
                        "nothing was saved", 1)
    added = after - (before or 0)
    print(f"{stream_id}: the desk has heard {after} speech windows ({added} from {len(got['calls'])} recording(s) "
          f"here{'; ' + str(before) + ' before' if before else ''}); saved in {path}")
    report_out(args, {"stream": stream_id, "desk_file": str(path), "windows_before": before or 0,
                      "windows_after": after, "recordings": len(got["calls"]), "skipped": got["problems"],
                      "model": got["model"]})
    return 0


# ---- what is printed --------------------------------------------------------------------------------------------
def _model_name(m: dict) -> str:
    return f"{m['name']} {m['version']}" + (f" (readout over {m['coat_path']})" if m.get("coat_path") else "")


def _wrong_calls(calls, outcomes) -> dict[str, list[str]]:
    """The calls a setting got wrong, by how (to listen to): missed, alerted falsely, alerted before the onset."""
    return {"missed": [c.call_id for c, o in zip(calls, outcomes) if c.alert and not o["hit"]],
            "false alert": [c.call_id for c, o in zip(calls, outcomes) if o["false"]],
            "early alert": [c.call_id for c, o in zip(calls, outcomes) if o["early"]]}


def _wilson(k: int, n: int) -> tuple[float, float]:
    """95 % Wilson interval of a rate of k in n (written here: two lines, and no statistics package is a dependency)."""
    if n == 0:
        return 0.0, 1.0
    z, p = 1.96, k / n
    mid, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (
        1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def _line(label: str, t: dict) -> str:
    d = t.get("delay_median_s")
    early = f", early {t['early']}/{t['onset_calls']}" if t.get("onset_calls") else ""
    return (f"  {label:<48} alerted {t['hits']:>3}/{t['alert_calls']}, false {t['false']:>3}/{t['quiet_calls']}"
            f"{early}, median delay {'-' if d is None else f'{d:.0f} s'}")


def _verdict(now: dict, cv: dict | None, max_false: float, n_alert: int, n_quiet: int) -> dict:
    """{"estimate": the cross-validated figures beside the current settings', "advice", "note": on few calls}."""
    few = (f"Only {n_alert} alert and {n_quiet} quiet calls: the figures are rough; label more calls (the intervals "
           "narrow with the square root of the count)." if min(n_alert, n_quiet) < 30 else "")
    if cv is None:
        return {"estimate": "Too few calls to estimate how the chosen setting does on new calls (each kind needs 2 or "
                            "more).", "advice": "Treat the chosen settings as a guess.", "note": few}
    lo_h, hi_h = _wilson(cv["hits"], cv["alert_calls"])
    lo_f, hi_f = _wilson(cv["false"], cv["quiet_calls"])
    est = (f"On calls it was not chosen on: {cv['hits']}/{cv['alert_calls']} alerted (95 % {lo_h:.0%}-{hi_h:.0%}), "
           f"{cv['false']}/{cv['quiet_calls']} false ({lo_f:.0%}-{hi_f:.0%}); the current settings "
           f"{now['hits']}/{now['alert_calls']} and {now['false']}/{now['quiet_calls']}"
           + (f"; early alerts {cv['early']}/{cv['onset_calls']}, current {now['early']}/{now['onset_calls']}"
              if cv["onset_calls"] else "") + ".")
    # paired with the current settings on the same calls, call by call: a hard bound on an estimate from a few dozen
    # calls would reject a setting that halves the current false alerts because it misses the bound the current
    # settings miss too; and a difference of a call or two is chance, so a change is advised only when the sign test
    # says it is unlikely to be (5 %)
    wrong_now, wrong_cv = now["false"] + now["early"], cv["false"] + cv["early"]
    bound = max_false * cv["quiet_calls"] + max_false * cv["onset_calls"]
    pair = cv["paired"]
    est += (f" Call by call, the chosen settings got {pair['better']} call(s) right that the current ones got wrong, "
            f"and {pair['worse']} the reverse (sign test p = {pair['p']:.2f}).")
    if pair["better"] > pair["worse"] and pair["p"] <= 0.05:
        advice = ("Use the chosen settings below: on calls they were not chosen on they did better than the current "
                  "ones.")
    elif pair["better"] > pair["worse"]:
        advice = ("Keep the current settings: the chosen ones did better on these calls, but by too few to tell from "
                  "chance; label more calls and run this again.")
    else:
        advice = "Keep the current settings: choosing on these calls did no better than them."
    over = [who for who, wrong in (("the chosen", wrong_cv), ("the current", wrong_now)) if wrong > bound]
    if over:
        advice += (f" {' and '.join(over).capitalize()} settings alerted falsely (or early) on more than "
                   f"{max_false:.0%} of these calls.")
    return {"estimate": est, "advice": advice, "note": few}


def _snippet(name: str, config, report: dict) -> str:
    import yaml

    body = config.model_dump(mode="json", exclude={"type"} if name == "emotion" else set())
    cv = report["cross_validated"]
    head = [f"# edge-coat tune emotion: {report['calls']} labelled calls from {report['calls_folder']}, stream "
            f"{report['stream']} ({report['window_s']:g} s / {report['hop_s']:g} s), model "
            f"{_model_name(report['model'])}",
            f"# on these calls: {report['chosen']['hits']}/{report['chosen']['alert_calls']} alerted, "
            f"{report['chosen']['false']}/{report['chosen']['quiet_calls']} false"
            + (f"; on calls it was not chosen on ({cv['folds']}-fold): {cv['hits']}/{cv['alert_calls']} alerted, "
               f"{cv['false']}/{cv['quiet_calls']} false" if cv else ""),
            f"# {report['verdict']['advice']}",
            "# replace the detector's entry under the site config's detectors: with this one"]
    return "\n".join(head) + "\n" + yaml.safe_dump({"detectors": {name: body}}, sort_keys=False,
                                                   default_flow_style=None)
