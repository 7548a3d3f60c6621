"""``edge-coat tune emotion``: a site's own labelled calls through its stream setup and the real model stage, the
detector replayed over the grid, a cross-validated estimate, and a ``detectors:`` snippet the site config accepts.
Broken recordings are skipped with a line each; the site's config and desk folder are never written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "coat-tiny"
DESK = REPO / "models" / "coat-tiny-desk"


def _edge_coat(*argv, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "edge_coat", *map(str, argv)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def _site(d: Path, gate: str, model: str = f"path: {MODEL}", detector: str = "{}", name: str = "site.yaml") -> Path:
    p = d / name
    p.write_text(f"worker:\n  receiver: {{bind: 'tcp://127.0.0.1:5555'}}\n  streams:\n    desk-1:\n"
                 f"      window_s: 2.0\n      hop_s: 1.0\n      tasks:\n        emotion: {gate}\n"
                 f"model: {{{model}, torch_threads: 1}}\n"
                 f"detectors:\n  emotion: {detector}\n")
    return p


def _voice(seconds: float, f0: float, level: float, seed: int) -> np.ndarray:
    """A voiced, syllable-paced harmonic signal (no emotion in it: the pipeline is what is tested here)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / 16000
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.55 + 0.45 * np.sin(2 * np.pi * 3.5 * t) ** 2)
    return (level * x / np.abs(x).max() + 0.002 * rng.standard_normal(t.size)).astype(np.float32)


def _recount(readings: dict, rows, base, setting) -> dict:
    from edge_coat.detectors import tuning

    calls = [tuning.LabelledCall(c.file, c.alert, c.onset_s, c.group) for c in rows if c.file in readings["calls"]]
    res = {c.call_id: tuning.results_of(c.call_id, readings["labels"], readings["calls"][c.call_id]) for c in calls}
    return tuning.tally(base if setting is None else tuning.config_of(setting, base), calls, res)


def test_tuning_on_generated_calls_writes_a_snippet_the_config_accepts_and_figures_that_recount(tmp_path):
    from edge_coat.config import load_config
    from edge_coat.data.calls import read_calls
    from edge_coat.detectors.config import DetectorsConfig

    calls = tmp_path / "calls"
    (calls / "day1").mkdir(parents=True)
    rows = ["file,alert,onset_s,group"]
    for i in range(8):
        alert = i % 2 == 0
        wave = _voice(9.0, 140 + 25 * i, 0.5 if alert else 0.15, seed=i)
        sr = 16000 if i < 4 else 44100  # a site's recorder may run at any rate, in stereo
        data = wave if sr == 16000 else np.stack([np.interp(np.arange(0, wave.size, 16000 / sr), np.arange(wave.size),
                                                            wave)] * 2, axis=1)
        sf.write(calls / "day1" / f"c{i}.wav", data, sr)
        rows.append(f"day1/c{i}.wav,{'yes' if alert else 'no'},{'3.0' if i == 2 else ''},caller-{i // 2}")
    (calls / "day1" / "broken.wav").write_bytes(b"RIFF\x00\x00junk" * 10)
    sf.write(calls / "day1" / "short.wav", _voice(1.0, 150, 0.3, seed=9), 16000)
    rows += ["day1/broken.wav,yes,,", "day1/short.wav,no,,", "day1/absent.wav,no,,"]
    (calls / "calls.csv").write_text("\n".join(rows) + "\n")
    desks = tmp_path / "desks"
    desks.mkdir()
    (desks / "desk-1.desk.json").write_text("{not json")  # the line's saved desk: read (here: refused), never written
    site = _site(tmp_path, "{min_rms_dbfs: -55}", model=f"path: {MODEL}, coat_path: {DESK}, desk_dir: {desks}",
                 detector="{episode: {on_threshold: 0.3, off_threshold: 0.1, on_windows: 3, cooldown_s: 45}}")
    before = site.read_text()

    out = _edge_coat("tune", "emotion", "-c", site, "--calls", calls, "--out", tmp_path / "tuned.yaml",
                     "--json", tmp_path / "report.json", "--readings", tmp_path / "readings.json", "--max-false", "0.5",
                     cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    for name, why in (("broken.wav", "unreadable audio"), ("short.wav", "shorter than one 2 s window"),
                      ("absent.wav", "no such file")):
        assert any(name in line and why in line for line in out.stderr.splitlines()), (name, out.stderr)
    assert "8 calls (4 should alert, 4 should not)" in out.stdout and "coat-tiny-desk" in out.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["calls"] == 8 and len(report["skipped"]) == 3 and report["model"]["readout_baseline"] == "desk"
    assert report["cross_validated"]["folds"] >= 2

    # the snippet is a detectors: section the site config takes, with the site's own cooldown kept
    snippet = yaml.safe_load((tmp_path / "tuned.yaml").read_text())
    tuned = DetectorsConfig.model_validate(snippet["detectors"])["emotion"]
    assert tuned.episode.cooldown_s == 45.0
    assert [tuned.episode.on_threshold, tuned.episode.on_windows] == [report["chosen"]["setting"]["on_threshold"],
                                                                      report["chosen"]["setting"]["on_windows"]]
    merged = yaml.safe_load(before) | snippet
    (tmp_path / "merged.yaml").write_text(yaml.safe_dump(merged))
    assert load_config(tmp_path / "merged.yaml").detectors["emotion"] == tuned

    # the printed figures are the detector's on the saved readings
    readings = json.loads((tmp_path / "readings.json").read_text())
    base = load_config(site).detectors["emotion"]
    got = _recount(readings, read_calls(calls), base, report["chosen"]["setting"])
    assert {k: got[k] for k in ("hits", "false", "early")} == {k: report["chosen"][k] for k in ("hits", "false",
                                                                                             "early")}
    now = _recount(readings, read_calls(calls), base, None)
    assert (now["hits"], now["false"]) == (report["current"]["hits"], report["current"]["false"])
    wrong = report["current"]["wrong"]  # named, to listen to
    assert len(wrong["missed"]) == 4 - now["hits"] and len(wrong["false alert"]) == now["false"]
    assert all(f in out.stdout for f in wrong["missed"][:10])

    # nothing of the site's was written; a second run reuses the readings; --check-only scores the current settings
    assert site.read_text() == before and (desks / "desk-1.desk.json").read_text() == "{not json"
    assert sorted(p.name for p in desks.iterdir()) == ["desk-1.desk.json"]
    again = _edge_coat("tune", "emotion", "-c", site, "--calls", calls, "--readings", tmp_path / "readings.json",
                       "--check-only", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "readings of 8 calls from" in again.stderr
    assert f"alert on {now['hits']}/4 calls that should alert" in again.stdout and "detectors:" not in again.stdout
    assert f"alert falsely on {now['false']}/4 calls that should not" in again.stdout
    # a site that alerts on anger alone keeps its label set
    kept = _edge_coat("tune", "emotion", "-c", site, "--calls", calls, "--readings", tmp_path / "readings.json",
                      "--keep-labels", "--max-false", "0.5", "--json", tmp_path / "kept.json", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert json.loads((tmp_path / "kept.json").read_text())["chosen"]["setting"]["negative_labels"] == ["angry"]


@pytest.mark.parametrize("case, argv, says", [
    ("no stream with the task", ["--stream", "press-9"], "worker.default_stream has no emotion task"),
    ("bad stream id", ["--stream", "a b"], "--stream: stream id must be"),
    ("no such detector", ["--detector", "angry-alerts"], "detectors.angry-alerts: no emotion detector"),
    ("bad bound", ["--max-false", "1.5"], "--max-false must be between 0 and 1"),
    ("one fold", ["--folds", "1"], "--folds must be at least 2"),
])
def test_a_wrong_choice_on_the_command_line_is_one_line_naming_the_fix(tmp_path, case, argv, says):
    (tmp_path / "calls").mkdir()
    (tmp_path / "calls" / "calls.csv").write_text("file,alert\na.wav,yes\n")
    site = _site(tmp_path, "{min_rms_dbfs: -55}")
    out = _edge_coat("tune", "emotion", "-c", site, "--calls", tmp_path / "calls", *argv, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and says in out.stderr, out.stderr


def test_calls_of_one_kind_only_cannot_be_tuned_on(tmp_path):
    (tmp_path / "calls").mkdir()
    sf.write(tmp_path / "calls" / "a.wav", _voice(5.0, 150, 0.3, seed=1), 16000)
    (tmp_path / "calls" / "calls.csv").write_text("file,alert\na.wav,yes\n")
    out = _edge_coat("tune", "emotion", "-c", _site(tmp_path, "{min_rms_dbfs: -55}"), "--calls", tmp_path / "calls",
                     cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "1 usable call(s) marked alert=yes and 0 marked no; tuning needs both" in out.stderr
    # checking the current settings takes calls of one kind
    check = _edge_coat("tune", "emotion", "-c", tmp_path / "site.yaml", "--calls", tmp_path / "calls", "--check-only",
                       cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "calls that should alert" in check.stdout and "should not" not in check.stdout.split("\n\n")[-1]
    # and no usable call at all is one line
    (tmp_path / "calls" / "a.wav").write_bytes(b"junk")
    broken = _edge_coat("tune", "emotion", "-c", tmp_path / "site.yaml", "--calls", tmp_path / "calls", "--check-only",
                        cwd=tmp_path)
    assert broken.returncode == 1 and "none of the 1 calls could be used" in broken.stderr


def test_real_calls_at_another_rate_are_tuned_on_through_the_speech_gate(shared_data, tmp_path):
    """Held-out RAVDESS speakers' angry and calm calls, written at 48 kHz stereo, through the desk stream's speech gate
    and coat-tiny: every call is scored (speech windows reach the model) and the chosen setting alerts on most angry
    calls with no false alert on these calls."""
    from bench.tuning import emotion_threshold as et

    calls = et.build_calls(shared_data, corpora=("ravdess",), speakers={"ravdess": {"14", "15", "16"}},
                           kinds=("angry", "calm"), call_s=et.MIN_CALL_S)
    folder = tmp_path / "calls"
    folder.mkdir()
    rows = ["file,alert,group"]
    for c in calls:
        wave = et.render(c, shared_data)
        up = np.interp(np.arange(0, wave.size, 1 / 3), np.arange(wave.size), wave)
        sf.write(folder / f"{c.speaker}-{c.kind}.flac", np.stack([up, up], axis=1), 48000)
        rows.append(f"{c.speaker}-{c.kind}.flac,{'yes' if c.kind == 'angry' else 'no'},{c.speaker}")
    (folder / "calls.csv").write_text("\n".join(rows) + "\n")
    site = _site(tmp_path, "{min_rms_dbfs: -55, min_speech_ratio: 0.3}")
    out = _edge_coat("tune", "emotion", "-c", site, "--calls", folder, "--json", tmp_path / "r.json",
                     "--readings", tmp_path / "readings.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["calls"] == 6 and not report["skipped"]
    readings = json.loads((tmp_path / "readings.json").read_text())
    for file, windows in readings["calls"].items():
        assert sum(w[4] is not None for w in windows) >= len(windows) // 2, file  # speech passes the gate
    assert report["chosen"]["hits"] >= 2 and report["chosen"]["false"] == 0


def test_the_verdict_advises_a_change_only_when_the_calls_show_it_beyond_chance():
    from edge_coat.commands.tune import _verdict
    from edge_coat.detectors.tuning import LabelledCall, paired

    def t(hits, false, early=0, better=0, worse=0):
        calls = [LabelledCall(str(i), True) for i in better * [0] + worse * [0]]
        new = [{"hit": True, "false": False, "early": False}] * better + [{"hit": False, "false": False,
                                                                            "early": False}] * worse
        old = [{"hit": False, "false": False, "early": False}] * better + [{"hit": True, "false": False,
                                                                             "early": False}] * worse
        return {"hits": hits, "alert_calls": 16, "false": false, "quiet_calls": 16, "early": early, "onset_calls": 8,
                "paired": paired(calls, new, old)}

    # two calls better and one worse is chance: keep; both miss the bound (3 and 5 wrong, over 10 % of 24)
    v = _verdict(t(12, 5), t(11, 3, better=2, worse=1), 0.10, 16, 16)
    assert v["advice"].startswith("Keep the current settings: the chosen ones did better on these calls, but by too "
                                  "few")
    assert "The chosen and the current settings alerted falsely (or early) on more than 10%" in v["advice"]
    assert "11/16 alerted" in v["estimate"] and "2 call(s) right" in v["estimate"] and "label more calls" in v["note"]
    # 6 calls better and none worse: p = 1/64, a change worth making
    v = _verdict(t(8, 6), t(10, 2, better=6), 0.10, 16, 16)
    assert v["advice"].startswith("Use the chosen settings below") and "p = 0.02" in v["estimate"]
    assert "The chosen and the current settings" not in v["advice"] and "The current settings alerted" in v["advice"]
    # no better
    assert _verdict(t(15, 4), t(13, 2, better=1, worse=2), 0.10, 16, 16)["advice"].startswith(
        "Keep the current settings: choosing on these calls did no better")
    assert _verdict(t(8, 0), t(9, 0), 0.10, 40, 40)["note"] == ""  # enough calls: no warning


def test_the_sign_test_of_paired_outcomes():
    from edge_coat.detectors.tuning import LabelledCall, paired, right

    hit, miss = {"hit": True, "false": False, "early": False}, {"hit": False, "false": False, "early": False}
    early_hit = {"hit": True, "false": False, "early": True}
    assert right(LabelledCall("a", True), hit) and not right(LabelledCall("a", True, onset_s=3.0), early_hit)
    assert right(LabelledCall("q", False), miss) and not right(LabelledCall("q", False), {**miss, "false": True})
    calls = [LabelledCall(str(i), True) for i in range(7)]
    got = paired(calls, [hit] * 5 + [miss] * 2, [miss] * 4 + [hit] * 3)
    # better on 0-3, worse on 5-6, call 4 right by both: 4 of 6 discordant, P(X >= 4 | 6, 1/2) = 22/64
    assert (got["better"], got["worse"]) == (4, 2) and abs(got["p"] - 22 / 64) < 1e-12
    assert paired(calls, [hit] * 7, [hit] * 7)["p"] == 1.0


def test_tune_desk_warms_a_new_lines_desk_from_its_past_recordings(tmp_path):
    """``tune desk`` plays a folder of recordings (no labels) on the line's stream with the site's desk folder: the
    saved desk is the model's, counts the windows it heard, grows on a second run, starts afresh with --replace, and a
    worker's model stage then scores the line's first window against it rather than a cold desk."""
    from edge_coat.config import load_config
    from edge_coat.service.service import speech_presence
    from edge_coat.worker.coat_stage import CoatStage
    from edge_coat.worker.replay import replay

    rec = tmp_path / "line-recordings" / "2026-11"
    rec.mkdir(parents=True)
    for i in range(3):
        sf.write(rec / f"call{i}.flac", _voice(6.0, 120 + 40 * i, 0.3, seed=20 + i), 16000)
    (rec / "notes.txt").write_text("not audio")
    desks = tmp_path / "desks"
    site = _site(tmp_path, "{min_rms_dbfs: -55}", model=f"path: {MODEL}, coat_path: {DESK}, desk_dir: {desks}")
    out = _edge_coat("tune", "desk", "-c", site, "--calls", rec.parent, "--json", tmp_path / "d.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    saved = json.loads((desks / "desk-1.desk.json").read_text())
    report = json.loads((tmp_path / "d.json").read_text())
    assert (saved["model"], saved["version"]) == ("coat-tiny-desk", json.loads((DESK / "manifest.json").read_text())
                                                  ["version"])
    assert saved["count"] == report["windows_after"] > 0 and report["recordings"] == 3
    assert f"has heard {saved['count']} speech windows" in out.stdout and "stop it for this line" in out.stderr

    again = _edge_coat("tune", "desk", "-c", site, "--calls", rec.parent, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((desks / "desk-1.desk.json").read_text())["count"] == 2 * saved["count"]
    assert json.loads((desks / "desk-1.desk.json.bak").read_text())["count"] == saved["count"]  # the one added to
    fresh = _edge_coat("tune", "desk", "-c", site, "--calls", rec.parent, "--replace", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads((desks / "desk-1.desk.json").read_text())["count"] == saved["count"]
    assert json.loads((desks / "desk-1.desk.json.bak").read_text())["count"] == 2 * saved["count"]

    # the worker's stage reads the warmed desk: the line's first window scores differently from a cold desk's
    cfg = load_config(site)
    stream = cfg.worker.stream("desk-1")
    wave = _voice(4.0, 170, 0.3, seed=40)
    probs = []
    for desk_dir in (desks, None):
        stage = CoatStage(cfg.model.model_copy(update={"desk_dir": desk_dir}), readings=[])
        labels = list(stage.tasks["emotion"].labels)
        rows = replay(stage, stream, speech_presence("voicing"), "desk-1", wave, "emotion", labels, epoch=1)
        probs.append(np.array(rows[0][4]))
    assert np.abs(probs[0] - probs[1]).max() > 1e-4


def test_tune_desk_needs_a_desk_readout_a_desk_folder_and_recordings(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (_site(tmp_path, "{min_rms_dbfs: -55}", model=f"path: {MODEL}, desk_dir: {tmp_path / 'd'}", name="a.yaml"),
         tmp_path, "does not read a line's desk baseline"),
        (_site(tmp_path, "{min_rms_dbfs: -55}", model=f"path: {MODEL}, coat_path: {DESK}", name="b.yaml"), tmp_path,
         "model.desk_dir is not set"),
        (_site(tmp_path, "{min_rms_dbfs: -55}", model=f"path: {MODEL}, coat_path: {DESK}, desk_dir: {tmp_path / 'd'}",
               name="c.yaml"), empty, "no recordings"),
    ]
    sf.write(tmp_path / "a.wav", _voice(3.0, 150, 0.3, seed=1), 16000)
    for site, calls, says in cases:
        out = _edge_coat("tune", "desk", "-c", site, "--calls", calls, cwd=tmp_path)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert says in out.stderr.strip().splitlines()[-1], out.stderr
    assert not (tmp_path / "d").exists()
