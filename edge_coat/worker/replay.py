"""Recorded audio played through the worker's gate and model stage as a live stream would be: the whole windows a
stream cuts (``window_s`` every ``hop_s``), the stream's gate (loudness, speech presence), the model stage in batches,
and the stream's end. Used to tune detectors on recordings (``edge-coat tune``, ``bench/tuning``) with the readings
the service itself would have produced."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edge_coat.messages import SAMPLE_RATE, EndOfStream, Window
from edge_coat.worker.config import StreamConfig
from edge_coat.worker.gate import Gate, SpeechFn


def files_digest(*folders) -> str:
    """A key of replayed readings' caches: changes when a model folder's files change (names, sizes, modification
    times). Folders that are None or absent count as empty."""
    h = hashlib.sha256()
    for folder in folders:
        if folder is not None and Path(folder).is_dir():
            for p in sorted(Path(folder).iterdir()):
                if p.is_file():
                    st = p.stat()
                    h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def window_spans(num_samples: int, window_s: float, hop_s: float) -> list[tuple[float, float]]:
    """(start, end) seconds of the whole windows a stream cuts from this many samples."""
    n, h = int(round(window_s * SAMPLE_RATE)), int(round(hop_s * SAMPLE_RATE))
    return [(s / SAMPLE_RATE, (s + n) / SAMPLE_RATE) for s in range(0, num_samples - n + 1, h)]


def replay(stage, stream: StreamConfig, speech_fn: SpeechFn | None, stream_id: str, wave: np.ndarray, task: str,
           labels: list[str], epoch: int = 0, max_batch: int = 8, end: bool = True) -> list[list]:
    """Per window of ``wave`` ((N,) float32 16 kHz): ``[start_s, end_s, rms_dbfs, speech_ratio, probs]``, probs the
    ``task`` distribution in ``labels`` order, or None when the gate kept the window from the model (or the model gave
    no distribution). ``epoch``: the capture run (a new one per recording on a stream that outlives recordings, as a
    line does); ``end``: end the stream afterwards (per-stream state such as a speaker baseline is dropped)."""
    gate = Gate(stream, speech_fn)
    n = int(round(stream.window_s * SAMPLE_RATE))
    rows, pending = [], []
    for i, (s, e) in enumerate(window_spans(wave.size, stream.window_s, stream.hop_s)):
        a = int(round(s * SAMPLE_RATE))
        samples = wave[a:a + n]
        tasks, level, speech = gate(samples)
        rows.append([s, e, level, speech, None])
        if task in tasks:
            pending.append((i, Window(stream_id=stream_id, index=i, start_sample=a, start_ts=s, end_ts=e,
                                      samples=samples, rms_dbfs=level, speech_ratio=speech, tasks=tasks,
                                      sender_epoch=epoch)))
    for b in range(0, len(pending), max_batch):
        batch = pending[b:b + max_batch]
        for (i, _), res in zip(batch, stage.process([w for _, w in batch])):
            probs = res.label_probs.get(task)
            rows[i][4] = [round(float(probs[k]), 5) for k in labels] if probs else None
    if end:
        stage.end_stream(EndOfStream(stream_id=stream_id, ts=0.0, reason="recording ended"))
    return rows
