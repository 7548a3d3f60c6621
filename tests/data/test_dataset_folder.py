"""Dataset folders: loading any rate/channels to 16 kHz mono, validation listing every problem, splits."""

from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from edge_coat.data.folder import (
    AudioReadError,
    Clip,
    DatasetError,
    DatasetFolder,
    load_audio,
    speaker_of,
    split_by_group,
    urbansound_source_of,
    validate_folder,
)


def stereo_tone(sr: int, seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    left = 0.4 * np.sin(2 * np.pi * freq * t)
    return np.stack([left, 0.5 * left], axis=1).astype(np.float32)  # (N, 2): mono mix = 0.75 * left


def peak_hz(wave: np.ndarray, sr: int = 16_000) -> float:
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spec)])


def write_labels(folder: Path, rows: list[dict], header: list[str] | None = None) -> None:
    header = header or list(rows[0])
    with open(folder / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)


@pytest.mark.parametrize("sr", [8000, 44100])
def test_stereo_at_any_rate_loads_as_16k_mono(tmp_path, sr):
    path = tmp_path / f"tone_{sr}.wav"
    sf.write(path, stereo_tone(sr, 1.5, 440.0), sr, subtype="PCM_16")
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == pytest.approx(24000, abs=2)
    assert peak_hz(wave) == pytest.approx(440.0, abs=2.0)
    rms = np.sqrt(np.mean(wave[2000:-2000] ** 2))
    assert rms == pytest.approx(0.75 * 0.4 / np.sqrt(2), rel=0.02)  # channels averaged


def test_compressed_audio_soundfile_cannot_read_goes_through_ffmpeg(tmp_path):
    path = tmp_path / "tone.m4a"
    sr = 48000
    data = stereo_tone(sr, 1.0, 1000.0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=sr, layout="stereo")
        frame_len = 1024
        for i in range(0, len(data) - frame_len + 1, frame_len):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[i : i + frame_len].T), format="fltp", layout="stereo")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 16000) < 1600  # codec priming/padding adds a little
    assert peak_hz(wave) == pytest.approx(1000.0, abs=5.0)


def test_unreadable_and_missing_audio_raise_audio_read_error(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioReadError, match="bad.wav"):
        load_audio(bad)
    with pytest.raises(AudioReadError, match="no such file"):
        load_audio(tmp_path / "absent.wav")


def test_folder_loads_clips_with_extra_columns(tmp_path):
    for name, sr in (("a.wav", 8000), ("b.flac", 44100)):
        sf.write(tmp_path / name, stereo_tone(sr, 0.5, 300.0), sr)
    write_labels(tmp_path, [
        {"file": "a.wav", "label": "happy", "speaker": "03"},
        {"file": "b.flac", "label": "sad", "speaker": "04"},
    ])
    ds = DatasetFolder(tmp_path, allowed_labels={"happy", "sad", "angry"})
    assert len(ds) == 2 and ds.labels == ["happy", "sad"]
    assert ds[0].meta == {"speaker": "03"} and ds[0].path == (tmp_path / "a.wav").resolve()
    waves = [w for _, w in ds.iter_audio()]
    assert [len(w) for w in waves] == [8000, 8000]
    np.testing.assert_array_equal(ds.load(1), waves[1])


def test_every_problem_is_listed_in_one_error(tmp_path):
    sf.write(tmp_path / "ok.wav", stereo_tone(16000, 0.3, 200.0), 16000)
    sf.write(tmp_path / "ok2.wav", stereo_tone(16000, 0.3, 200.0), 16000)
    (tmp_path / "broken.wav").write_bytes(b"this is not audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    write_labels(tmp_path, [
        {"file": "ok.wav", "label": "normal"},
        {"file": "missing.wav", "label": "normal"},
        {"file": "broken.wav", "label": "abnormal"},
        {"file": "ok2.wav", "label": "weird"},
        {"file": "empty.wav", "label": "normal"},
        {"file": "ok.wav", "label": "normal"},
        {"file": "", "label": "normal"},
        {"file": "../outside.wav", "label": "normal"},
    ])
    with pytest.raises(DatasetError) as err:
        validate_folder(tmp_path, allowed_labels={"normal", "abnormal"})
    problems = err.value.problems
    assert len(problems) == 7, problems
    text = str(err.value)
    for needle in ("missing file missing.wav", "broken.wav", "unknown label 'weird'", "empty.wav",
                   "ok.wav already listed on line 2", "empty 'file'", "outside the folder"):
        assert needle in text, needle
    assert "7 problem(s)" in text
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "content, needle",
    [
        ("", "is empty"),
        ("file,speaker\na.wav,01\n", "lacks column(s) label"),
        ("path,class\n", "lacks column(s) file, label"),
        ("file,label\n", "no rows"),
    ],
)
def test_broken_labels_csv(tmp_path, content, needle):
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(DatasetError, match=None) as err:
        validate_folder(tmp_path)
    assert needle in str(err.value)


def test_missing_folder_and_missing_csv(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        validate_folder(tmp_path / "nope")
    with pytest.raises(DatasetError, match="missing labels.csv"):
        validate_folder(tmp_path)


def _clips(files_and_meta):
    return [Clip(file=f, path=Path(f), label="x", meta=m) for f, m in files_and_meta]


def test_speaker_split_never_shares_a_speaker():
    clips = _clips([(f"{s:02d}-{i}.wav", {"speaker": f"{s:02d}"}) for s in range(1, 9) for i in range(5)])
    train, held = split_by_group(clips, speaker_of, held_out=0.25, seed=3)
    assert len(train) + len(held) == len(clips)
    assert {speaker_of(c) for c in train}.isdisjoint({speaker_of(c) for c in held})
    assert len({speaker_of(c) for c in held}) == 2
    again = split_by_group(clips, speaker_of, held_out=0.25, seed=3)
    assert again == (train, held)  # reproducible from the seed
    train, held = split_by_group(clips, speaker_of, held_out=["07", "08"])
    assert {speaker_of(c) for c in held} == {"07", "08"}
    with pytest.raises(ValueError, match="'99'"):
        split_by_group(clips, speaker_of, held_out=["99"])


def test_urbansound_split_by_source_recording():
    names = ["100032-3-0-0.wav", "100032-3-0-1.wav", "7061-6-0-0.wav", "7061-6-0-3.wav",
             "17592-5-0-0.wav", "17592-5-1-2.wav", "31323-3-0-1.wav"]
    clips = _clips([(n, {}) for n in names])
    assert urbansound_source_of(clips[0]) == "100032"
    train, held = split_by_group(clips, urbansound_source_of, held_out=0.5, seed=0)
    assert {urbansound_source_of(c) for c in train}.isdisjoint({urbansound_source_of(c) for c in held})
    assert train and held
    with pytest.raises(ValueError, match="fsID-classID-occurrenceID-sliceID"):
        urbansound_source_of(_clips([("dog.wav", {})])[0])
    with pytest.raises(ValueError, match="speaker"):
        speaker_of(clips[0])
