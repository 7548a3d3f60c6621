"""Evidence attached to every event: what a person needs to judge it without the audio."""

from __future__ import annotations

import math

from edge_coat.messages import WindowResult

#: readings surfaced in evidence when present (others are kept too, these are guaranteed keys).
KEY_READINGS = ("pitch_hz", "loudness_dbfs", "speech_ratio")


def speech_ratio(result: WindowResult) -> float | None:
    """The window's speech ratio from the gate's VAD or the expert readings; None when unknown."""
    if result.window.speech_ratio is not None:
        return float(result.window.speech_ratio)
    value = result.readings.get("speech_ratio")
    return None if value is None else float(value)


def build_evidence(result: WindowResult, scores: dict[str, float], top_tags: int) -> dict:
    """JSON-serialisable evidence for one window.

    Keys: ``window`` (index, start_ts, end_ts), ``scores``, ``readings`` (pitch, loudness, speech
    ratio and any other expert reading), ``tags`` ([label, score] best first), ``gap_seconds``,
    ``model`` (name, version) and ``caption`` when the model gave one.
    """
    w = result.window
    readings = {k: float(v) for k, v in result.readings.items() if _finite(v)}
    readings.setdefault("loudness_dbfs", float(w.rms_dbfs))
    ratio = speech_ratio(result)
    if ratio is not None:
        readings["speech_ratio"] = ratio
    evidence = {
        "window": {"index": int(w.index), "start_ts": float(w.start_ts), "end_ts": float(w.end_ts)},
        "scores": {k: float(v) for k, v in scores.items()},
        "readings": readings,
        "tags": [[str(label), float(score)] for label, score in result.tags[:top_tags]],
        "gap_seconds": float(w.gap_seconds),
        "model": {"name": result.model_name, "version": result.model_version},
    }
    if result.caption:
        evidence["caption"] = result.caption
    return evidence


def describe_readings(evidence: dict) -> str:
    """A short clause like 'pitch 212 Hz, -23 dBFS, speech 80%, tags: Engine, Hiss; gap 0.5 s'."""
    r = evidence.get("readings", {})
    parts = []
    if r.get("pitch_hz", 0.0) > 0:  # 0 means no voiced frame: there is no pitch to report
        parts.append(f"pitch {r['pitch_hz']:.0f} Hz")
    elif "pitch_hz" in r:
        parts.append("unvoiced")
    if "loudness_dbfs" in r:
        parts.append(f"{r['loudness_dbfs']:.0f} dBFS")
    if "speech_ratio" in r:
        parts.append(f"speech {100 * r['speech_ratio']:.0f}%")
    tags = evidence.get("tags") or []
    if tags:
        parts.append("tags: " + ", ".join(t[0] for t in tags[:3]))
    text = ", ".join(parts)
    if evidence.get("gap_seconds", 0.0) > 0:
        text += f"; {evidence['gap_seconds']:.1f} s of audio missing"
    return text


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
