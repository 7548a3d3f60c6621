"""The synthetic factory-sound generator: its labels match its audio."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import welch

from edge_coat.data.factory import (
    LABEL_COLUMNS,
    MACHINES,
    faults_for,
    main,
    render_clip,
    render_scene,
    write_dataset,
)
from edge_coat.data.folder import DatasetFolder

SR = 16_000
ONSET_S = 1.2
DURATION_S = 3.0


def band_db(wave: np.ndarray, band: tuple[float, float]) -> float:
    f, p = welch(wave, fs=SR, nperseg=4096)
    keep = (f >= band[0]) & (f <= band[1])
    return float(10 * np.log10(p[keep].sum() + 1e-20))


def min_frame_db(wave: np.ndarray, frame: int = 800) -> float:
    frames = wave[: len(wave) // frame * frame].reshape(-1, frame)
    return float(10 * np.log10(np.mean(frames**2, axis=1).min() + 1e-20))


# One machine per additive fault, spread over the machine types (cavitation only fits pumps).
CASES = [("fan", "bearing"), ("motor", "imbalance"), ("compressor", "squeal"), ("pump", "rubbing"),
         ("pump", "cavitation"), ("conveyor", "bearing")]


@pytest.mark.parametrize("machine, fault", CASES)
def test_fault_energy_appears_at_onset_and_only_after(machine, fault):
    sick = render_clip(machine, seed=21, duration_s=DURATION_S, fault=fault, onset_s=ONSET_S, severity=1.0)
    well = render_clip(machine, seed=21, duration_s=DURATION_S)
    on = int(ONSET_S * SR)
    assert sick.label == "abnormal" and well.label == "normal"
    # Before the onset the two clips are the same samples: the label's onset is where audio changes.
    np.testing.assert_array_equal(sick.wave[:on], well.wave[:on])
    assert not np.array_equal(sick.wave[on:], well.wave[on:])
    band = sick.fault_band_hz
    after = slice(on + SR // 10, None)  # past the 0.1 s fade-in
    rise = band_db(sick.wave[after], band) - band_db(sick.wave[:on], band)
    drift = band_db(well.wave[after], band) - band_db(well.wave[:on], band)
    assert rise > 4.0, f"{fault} band {band} rose only {rise:.1f} dB"
    assert abs(drift) < 1.5, f"normal clip drifted {drift:.1f} dB in {band}"


@pytest.mark.parametrize("machine", ["motor", "conveyor"])
def test_dropout_stalls_only_after_onset(machine):
    sick = render_clip(machine, seed=5, duration_s=DURATION_S, fault="dropout", onset_s=ONSET_S, severity=1.0)
    well = render_clip(machine, seed=5, duration_s=DURATION_S)
    on = int(ONSET_S * SR)
    np.testing.assert_array_equal(sick.wave[:on], well.wave[:on])
    assert min_frame_db(sick.wave[on:]) < min_frame_db(sick.wave[:on]) - 12.0  # the machine stalls
    assert min_frame_db(well.wave[on:]) > min_frame_db(well.wave[:on]) - 3.0


def test_same_seed_same_audio_other_seed_other_audio():
    a = render_clip("pump", seed=7, duration_s=1.0, fault="cavitation", onset_s=0.3)
    b = render_clip("pump", seed=7, duration_s=1.0, fault="cavitation", onset_s=0.3)
    c = render_clip("pump", seed=8, duration_s=1.0, fault="cavitation", onset_s=0.3)
    np.testing.assert_array_equal(a.wave, b.wave)
    assert np.abs(a.wave - c.wave).max() > 0.01
    assert a.wave.dtype == np.float32 and np.abs(a.wave).max() <= 1.0


def test_machines_sound_different_and_sit_at_a_sane_level():
    levels, centroids = [], []
    for m in MACHINES:
        w = render_clip(m, seed=1, duration_s=1.5).wave
        levels.append(10 * np.log10(np.mean(w**2)))
        f, p = welch(w, fs=SR, nperseg=2048)
        centroids.append(float((f * p).sum() / p.sum()))
    assert all(-32.0 < lv < -20.0 for lv in levels), levels
    assert len({round(c, -1) for c in centroids}) == len(MACHINES)  # five distinct spectra


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown machine 'lathe'"):
        render_clip("lathe", seed=0)
    with pytest.raises(ValueError, match="cavitation.*does not fit a fan"):
        render_clip("fan", seed=0, fault="cavitation")
    with pytest.raises(ValueError, match="severity"):
        render_clip("fan", seed=0, fault="squeal", severity=2.0)
    with pytest.raises(ValueError, match="onset_s"):
        render_clip("fan", seed=0, duration_s=2.0, fault="squeal", onset_s=5.0)
    assert "cavitation" in faults_for("pump") and "cavitation" not in faults_for("motor")


def test_scene_fault_develops_after_onset():
    scene = render_scene("fan", duration_s=16.0, fault="squeal", onset_s=6.0, develop_s=6.0, severity=1.0, seed=2)
    band = scene.fault_band_hz

    def at(t0, t1):
        return band_db(scene.wave[int(t0 * SR) : int(t1 * SR)], band)

    before, early, late = at(1.0, 5.5), at(7.0, 8.5), at(13.0, 16.0)
    assert early > before + 3.0
    assert late > early + 3.0  # still growing while it develops
    assert len(scene.wave) == 16 * SR


def test_written_dataset_matches_its_labels(tmp_path):
    csv_path = write_dataset(tmp_path / "ds", 8, seed=4, duration_s=1.5, abnormal_fraction=0.6)
    rows = list(csv.DictReader(open(csv_path)))
    assert list(rows[0]) == list(LABEL_COLUMNS)
    assert len(rows) == 8
    assert {r["label"] for r in rows} <= {"normal", "abnormal"}
    for r in rows:
        assert (r["fault"] == "none") == (r["label"] == "normal")
        assert r["fault"] == "none" or r["fault"] in faults_for(r["machine"])
    ds = DatasetFolder(tmp_path / "ds", allowed_labels={"normal", "abnormal"})
    assert len(ds) == 8
    # each row's seed and parameters re-render its file (up to 16-bit quantisation)
    for r in rows[:3]:
        again = render_clip(
            r["machine"], seed=int(r["seed"]), duration_s=float(r["duration_s"]), instance=int(r["instance"]),
            fault=None if r["fault"] == "none" else r["fault"],
            onset_s=float(r["onset_s"]) if r["onset_s"] else None, severity=float(r["severity"] or 0.0),
        )
        stored, sr = sf.read(tmp_path / "ds" / r["file"], dtype="float32")
        assert sr == SR
        assert np.abs(stored - again.wave).max() < 2.0 / 32768
    # a second run with the same seed writes the same dataset
    write_dataset(tmp_path / "ds2", 8, seed=4, duration_s=1.5, abnormal_fraction=0.6)
    assert (tmp_path / "ds2" / "labels.csv").read_text() == csv_path.read_text()


def test_command_line_entry_point(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "cli"), "--n", "3", "--seed", "1", "--duration", "1",
                 "--machines", "pump", "--faults", "cavitation"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "cli" / "labels.csv")))
    assert [r["machine"] for r in rows] == ["pump"] * 3
    assert {r["fault"] for r in rows} <= {"none", "cavitation"}
    assert main(["--out", str(tmp_path / "scene"), "--scene", "4", "--machines", "motor", "--faults", "squeal"]) == 0
    written = list((tmp_path / "scene").glob("*.wav"))
    assert len(written) == 1 and sf.info(written[0]).duration == pytest.approx(4.0)
    assert main(["--out", str(tmp_path / "bad"), "--n", "0"]) == 2
    assert "n must be >= 1" in capsys.readouterr().err

