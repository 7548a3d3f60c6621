"""Plain-text tables and the evaluation JSON of the command-line contract.

The JSON shape is fixed by ARCHITECTURE.md::

    {"task": str, "model": str, "n": int, "metrics": {...}, "per_class": {label: {...}}}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

EVAL_KEYS = ("task", "model", "n", "metrics", "per_class")


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence], title: str | None = None) -> str:
    """A fixed-width text table (floats with 3 decimals); the first column left-aligned, the rest right."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))

    out = [title] if title else []
    out += [line([str(h) for h in headers]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)


def format_confusion(labels: Sequence[str], confusion: Sequence[Sequence[int]]) -> str:
    """Confusion matrix as a table: rows = true label, columns = predicted label."""
    rows = [[f"{lab}", *counts] for lab, counts in zip(labels, confusion)]
    return format_table(["true \\ pred", *labels], rows, title="confusion matrix (rows: true, columns: predicted)")


def eval_document(task: str, model: str, n: int, metrics: Mapping, per_class: Mapping[str, Mapping]) -> dict:
    """The contract's JSON document, checked for shape."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not all(isinstance(v, Mapping) for v in per_class.values()):
        raise ValueError("per_class must map each label to a dict of numbers")
    return {"task": str(task), "model": str(model), "n": n, "metrics": dict(metrics),
            "per_class": {str(k): dict(v) for k, v in per_class.items()}}


def write_json(path: str | os.PathLike, document: Mapping) -> Path:
    """Write JSON atomically (a temporary file renamed into place); creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
