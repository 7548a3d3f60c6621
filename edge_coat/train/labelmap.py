"""``--label-map``: map a dataset's labels onto a model's labels.

The map is a JSON object (given inline or as a path to a JSON file) from dataset label to model
label. A label mapped to ``null`` is dropped from the evaluation. A dataset label the map does not
mention keeps its name, and must then be one of the model's labels. When a map is given, the
model's predictions are restricted to the set of labels the mapped dataset uses, so a model with
eight emotions evaluated on a four-emotion dataset only chooses among those four.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from edge_coat.data.folder import Clip


def parse_label_map(value: str | None) -> dict[str, str | None] | None:
    """Inline JSON or a path to a JSON file -> {dataset label: model label or None}; None stays None."""
    if value is None:
        return None
    text = value
    source = "inline --label-map"
    stripped = value.strip()
    if not stripped.startswith("{"):
        path = Path(value)
        if not path.is_file():
            raise ValueError(
                f"--label-map: expected a JSON object or the path of a JSON file, got {value!r} "
                "(not JSON and no such file)"
            )
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--label-map ({source}): invalid JSON: {exc}") from exc
    if not isinstance(mapping, dict):
        raise ValueError(f"--label-map ({source}): expected a JSON object, got {type(mapping).__name__}")
    bad = [f"{k!r}: {v!r}" for k, v in mapping.items() if not (v is None or (isinstance(v, str) and v))]
    if bad:
        raise ValueError(
            f"--label-map ({source}): values must be a model label (non-empty string) or null, got {', '.join(bad)}"
        )
    return mapping


def apply_label_map(
    clips: Sequence[Clip], mapping: dict[str, str | None] | None, model_labels: Sequence[str]
) -> tuple[list[Clip], list[str]]:
    """Relabel clips and choose the candidate labels the model may predict.

    Returns ``(clips, candidates)``: clips whose label maps to None are dropped; ``candidates`` are
    the model's labels in the model's order, restricted to the labels the mapped clips use when a
    map is given (all model labels otherwise). Raises ValueError listing every dataset label that
    ends up outside the model's labels.
    """
    model_labels = list(model_labels)
    mapping = mapping or {}
    out: list[Clip] = []
    problems: dict[str, str] = {}
    for clip in clips:
        target = mapping.get(clip.label, clip.label)
        if target is None:
            continue
        if target not in model_labels:
            how = f"mapped to {target!r}" if clip.label in mapping else "not in the label map"
            problems[clip.label] = f"{clip.label!r} ({how})"
            continue
        out.append(replace(clip, label=target) if target != clip.label else clip)
    if problems:
        raise ValueError(
            f"dataset labels outside the model's labels {model_labels}: {', '.join(problems.values())}; "
            "map them with --label-map (to a model label, or to null to drop them)"
        )
    if not out:
        raise ValueError("no clips left to evaluate after applying the label map (every label mapped to null?)")
    if not mapping:
        return out, model_labels
    used = {c.label for c in out}
    candidates = [lab for lab in model_labels if lab in used]
    if len(candidates) < 2:
        raise ValueError(
            f"the label map leaves {candidates} as the only candidate; at least two labels are needed to choose from"
        )
    return out, candidates
