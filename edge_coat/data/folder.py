"""Dataset folders: ``labels.csv`` (columns ``file,label`` + any extra) beside the audio files.

Any sample rate, channel count or container soundfile or FFmpeg (PyAV) can read is loaded as
16 kHz mono float32. ``validate_folder`` checks a whole folder and raises one ``DatasetError``
that lists every problem found (not just the first), so a user fixes a dataset in one pass.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_coat.messages import SAMPLE_RATE

log = logging.getLogger(__name__)

LABELS_CSV = "labels.csv"
REQUIRED_COLUMNS: tuple[str, ...] = ("file", "label")


class AudioReadError(ValueError):
    """An audio file could not be read or decoded."""


class DatasetError(ValueError):
    """A dataset folder has problems; ``problems`` lists every one of them."""

    def __init__(self, root: Path, problems: Sequence[str]) -> None:
        self.root = Path(root)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"dataset folder {self.root} has {len(self.problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class Clip:
    """One row of ``labels.csv``.

    Attributes:
        file: the ``file`` column as written (relative to the folder).
        path: absolute path of the audio file.
        label: the ``label`` column.
        meta: every other column (``speaker``, ``machine``, ``onset_s``, ...), as strings.
    """

    file: str
    path: Path
    label: str
    meta: Mapping[str, str] = field(default_factory=dict, compare=False)


# ---------------------------------------------------------------------------------------------
# Audio


def to_mono16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(N,) or (N, C) float audio at ``sample_rate`` -> (M,) float32 mono at 16 kHz.

    Channels are averaged; resampling is polyphase (scipy's ``resample_poly``, Kaiser window).
    """
    from scipy.signal import resample_poly

    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)  # (N, C) -> (N,)
    elif x.ndim != 1:
        raise ValueError(f"expected audio of shape (N,) or (N, channels), got {x.shape}")
    if sample_rate <= 0:
        raise ValueError(f"expected a positive sample rate, got {sample_rate}")
    if sample_rate != SAMPLE_RATE:
        g = math.gcd(int(sample_rate), SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, int(sample_rate) // g).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def _read_with_pyav(path: Path) -> np.ndarray:
    """Decode any FFmpeg-readable audio (mp3, m4a, ogg, ...) straight to 16 kHz mono float32."""
    import av

    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioReadError(f"{path}: no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def load_audio(path: str | os.PathLike) -> np.ndarray:
    """Read an audio file as (N,) float32 16 kHz mono. Raises AudioReadError when it cannot."""
    import av
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioReadError(f"{path}: no such file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (N, C)
        wave = to_mono16k(data, sr)
    except sf.LibsndfileError as sf_exc:
        try:
            wave = _read_with_pyav(path)
        except (av.FFmpegError, OSError) as av_exc:
            raise AudioReadError(f"{path}: unreadable audio ({sf_exc}; FFmpeg: {av_exc})") from av_exc
    if wave.size == 0:
        raise AudioReadError(f"{path}: no audio samples")
    return wave


def probe_audio(path: Path) -> str | None:
    """Cheap readability check (headers / first packets). Returns a problem or None."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        return None if info.frames > 0 else "contains no audio samples"
    except sf.LibsndfileError:
        pass
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return "has no audio stream"
            for _frame in container.decode(audio=0):
                return None
            return "contains no audio samples"
    except (av.FFmpegError, OSError) as exc:
        return f"unreadable audio ({type(exc).__name__}: {exc})"


# ---------------------------------------------------------------------------------------------
# labels.csv


def validate_folder(
    root: str | os.PathLike,
    *,
    allowed_labels: Collection[str] | None = None,
    check_audio: bool = True,
) -> list[Clip]:
    """Read and check a dataset folder; return its clips or raise one DatasetError listing all problems.

    Checked: the folder and ``labels.csv`` exist; the csv has a header with ``file`` and ``label``
    and at least one row; each row has a file and a label; no file is listed twice or points
    outside the folder; every file exists and (``check_audio``) is readable audio; every label is
    in ``allowed_labels`` when given.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, [f"not a directory: {root}"])
    csv_path = root / LABELS_CSV
    if not csv_path.is_file():
        raise DatasetError(root, [f"missing {LABELS_CSV} (expected columns: file,label[,...])"])
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(root, [f"{LABELS_CSV} is not a readable UTF-8 csv: {exc}"]) from exc
    if not header:
        raise DatasetError(root, [f"{LABELS_CSV} is empty (expected a header with columns file,label)"])
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing_cols:
        raise DatasetError(root, [f"{LABELS_CSV} lacks column(s) {', '.join(missing_cols)} (header: {','.join(header)})"])
    if not rows:
        raise DatasetError(root, [f"{LABELS_CSV} has a header but no rows"])

    allowed = set(allowed_labels) if allowed_labels is not None else None
    problems: list[str] = []
    clips: list[Clip] = []
    seen: dict[str, int] = {}
    root_resolved = root.resolve()
    for line, raw in enumerate(rows, start=2):  # line 1 is the header
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        file, label = row.get("file", ""), row.get("label", "")
        where = f"{LABELS_CSV} line {line}"
        if not file:
            problems.append(f"{where}: empty 'file'")
            continue
        if not label:
            problems.append(f"{where} ({file}): empty 'label'")
        elif allowed is not None and label not in allowed:
            problems.append(f"{where} ({file}): unknown label {label!r}; expected one of {sorted(allowed)}")
        if file in seen:
            problems.append(f"{where}: {file} already listed on line {seen[file]}")
            continue
        seen[file] = line
        path = (root / file).resolve()
        if not path.is_relative_to(root_resolved):
            problems.append(f"{where}: {file} points outside the folder")
            continue
        if not path.is_file():
            problems.append(f"{where}: missing file {file}")
            continue
        if check_audio:
            issue = probe_audio(path)
            if issue:
                problems.append(f"{where}: {file} {issue}")
                continue
        meta = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS}
        clips.append(Clip(file=file, path=path, label=label, meta=meta))
    if problems:
        raise DatasetError(root, problems)
    return clips


class DatasetFolder:
    """A validated dataset folder: its clips, labels, and 16 kHz mono audio on demand."""

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        allowed_labels: Collection[str] | None = None,
        check_audio: bool = True,
    ) -> None:
        self.root = Path(root)
        self.clips: list[Clip] = validate_folder(self.root, allowed_labels=allowed_labels, check_audio=check_audio)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> Clip:
        return self.clips[i]

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    @property
    def labels(self) -> list[str]:
        """Distinct labels, sorted."""
        return sorted({c.label for c in self.clips})

    def load(self, clip: Clip | int) -> np.ndarray:
        """(N,) float32 16 kHz mono audio of a clip (or of the clip at an index)."""
        return load_audio((self.clips[clip] if isinstance(clip, int) else clip).path)

    def iter_audio(self) -> Iterator[tuple[Clip, np.ndarray]]:
        for clip in self.clips:
            yield clip, self.load(clip)


# ---------------------------------------------------------------------------------------------
# Speaker / source-aware splits


def speaker_of(clip: Clip) -> str:
    """The ``speaker`` column (RAVDESS folders carry it)."""
    speaker = clip.meta.get("speaker", "")
    if not speaker:
        raise ValueError(f"{clip.file}: expected a 'speaker' column value to split by speaker, found none")
    return speaker


def urbansound_source_of(clip: Clip) -> str:
    """UrbanSound8K's source recording: the fsID in ``fsID-classID-occurrenceID-sliceID.wav``."""
    parts = Path(clip.file).stem.split("-")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{clip.file}: expected an UrbanSound8K name fsID-classID-occurrenceID-sliceID.wav")
    return parts[0]


def split_by_group(
    clips: Sequence[Clip],
    group_of: Callable[[Clip], str],
    *,
    held_out: float | Collection[str] = 0.25,
    seed: int = 0,
) -> tuple[list[Clip], list[Clip]]:
    """Split clips into (train, held_out) so that no group (speaker, recording) is on both sides.

    ``held_out`` is either the fraction of groups to hold out (drawn with ``seed``; sklearn's
    ``GroupShuffleSplit``) or the explicit group names to hold out.
    """
    groups = [group_of(c) for c in clips]
    distinct = sorted(set(groups))
    if isinstance(held_out, float):
        if not 0.0 < held_out < 1.0:
            raise ValueError(f"held_out fraction must be in (0, 1), got {held_out}")
        if len(distinct) < 2:
            raise ValueError(f"need at least 2 groups to split, found {len(distinct)}: {distinct}")
        from sklearn.model_selection import GroupShuffleSplit

        n_test = min(max(1, round(held_out * len(distinct))), len(distinct) - 1)
        splitter = GroupShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
        train_idx, test_idx = next(splitter.split(np.zeros(len(clips)), groups=groups))
        return [clips[i] for i in sorted(train_idx)], [clips[i] for i in sorted(test_idx)]
    wanted = {str(g) for g in held_out}
    unknown = sorted(wanted - set(distinct))
    if unknown:
        raise ValueError(f"held-out groups {unknown} not in the data; groups present: {distinct}")
    train = [c for c, g in zip(clips, groups) if g not in wanted]
    test = [c for c, g in zip(clips, groups) if g in wanted]
    return train, test
