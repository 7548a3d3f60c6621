"""A site's own labelled calls: a folder of recordings and ``calls.csv``, read by ``edge-coat tune emotion``.

``calls.csv`` (a header row, then one row per call, in the order the line heard them)::

    file,alert,onset_s,group
    2026-11-02/0931.wav,yes,41.5,caller-0193
    2026-11-02/1015.wav,no,,caller-0201

* ``file``: the recording, relative to the folder (any format the service reads; any sample rate, mono or not);
* ``alert``: should the emotion detector have alerted on this call (yes/no, true/false, 1/0);
* ``onset_s`` (optional): when the caller turned (an alert before it counts as early, not as a hit); empty: 0;
* ``group`` (optional): a caller or an agent; the calls of one group stay together when the tuner estimates how a
  setting does on calls it was not chosen on.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

CALLS_CSV = "calls.csv"
YES, NO = ("yes", "true", "1", "y"), ("no", "false", "0", "n")


class CallsError(ValueError):
    """A calls folder that cannot be used (the message names the file, the row and the fix)."""


@dataclass(frozen=True)
class CallFile:
    file: str
    alert: bool
    onset_s: float = 0.0
    group: str = ""


def read_calls(folder: str | Path) -> list[CallFile]:
    """The calls of ``folder/calls.csv`` in file order. CallsError naming the row on a malformed file; the
    recordings themselves are not opened here (a missing or broken one is the caller's to skip and report)."""
    folder = Path(folder)
    path = folder / CALLS_CSV
    if not folder.is_dir():
        raise CallsError(f"{folder}: no such folder; give the folder holding {CALLS_CSV} and the recordings")
    if not path.is_file():
        raise CallsError(f"{path}: missing; write one row per call: file,alert[,onset_s][,group] "
                         "(see edge-coat tune --help)")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in ("file", "alert") if c not in columns]
            if missing:
                raise CallsError(f"{path}: no {' or '.join(missing)} column (header: {','.join(columns) or 'empty'}); "
                                 "the first row must name the columns: file,alert[,onset_s][,group]")
            unknown = sorted(set(columns) - {"file", "alert", "onset_s", "group"})
            if unknown:
                raise CallsError(f"{path}: unknown column(s) {unknown}; the columns are file,alert[,onset_s][,group]")
            calls, seen = [], {}
            for n, raw in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
                if not any(row.values()):
                    continue
                calls.append(_call(row, path, n, seen))
    except UnicodeDecodeError as exc:
        raise CallsError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8 CSV") from exc
    except csv.Error as exc:
        raise CallsError(f"{path}: not a readable CSV ({exc})") from exc
    if not calls:
        raise CallsError(f"{path}: no calls; add one row per call under the header")
    return calls


def _call(row: dict, path: Path, n: int, seen: dict) -> CallFile:
    file = row.get("file", "")
    if not file:
        raise CallsError(f"{path}, row {n}: empty file")
    if Path(file).is_absolute() or ".." in Path(file).parts:
        raise CallsError(f"{path}, row {n}: {file!r} must be a path inside the folder (relative, no '..')")
    if file in seen:
        raise CallsError(f"{path}, row {n}: {file} is listed twice (first on row {seen[file]}); list each call once")
    seen[file] = n
    alert = row.get("alert", "").lower()
    if alert not in YES + NO:
        raise CallsError(f"{path}, row {n}: alert must be yes or no (true/false, 1/0); got {row.get('alert')!r}")
    onset = row.get("onset_s", "")
    try:
        onset_s = float(onset) if onset else 0.0
    except ValueError:
        raise CallsError(f"{path}, row {n}: onset_s must be seconds from the call's start; got {onset!r}") from None
    if not math.isfinite(onset_s) or onset_s < 0:
        raise CallsError(f"{path}, row {n}: onset_s must be >= 0 seconds; got {onset!r}")
    if onset_s > 0 and alert in NO:
        raise CallsError(f"{path}, row {n}: onset_s is set on a call marked alert=no; leave it empty or mark the "
                         "call yes")
    return CallFile(file=file, alert=alert in YES, onset_s=onset_s, group=row.get("group", ""))
