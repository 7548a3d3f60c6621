"""Audio, models and configs for the service tests (all made here; nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from edge_coat.messages import SAMPLE_RATE

WINDOW_S = 1.0
HOP_S = 0.5


def machine_wave(normal_s: float, abnormal_s: float, seed: int = 0) -> np.ndarray:
    """A steady hum (440 Hz + harmonics, slight noise and level wobble), then from ``normal_s`` a
    clearly different sound (loud broadband noise and a 3 kHz whine). (N,) float32, 16 kHz."""
    rng = np.random.default_rng(seed)
    n1, n2 = int(normal_s * SAMPLE_RATE), int(abnormal_s * SAMPLE_RATE)
    t = np.arange(n1 + n2) / SAMPLE_RATE
    wobble = 1.0 + 0.1 * np.sin(2 * np.pi * 0.3 * t)
    hum = 0.2 * wobble * (np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 880 * t))
    hum += 0.01 * rng.standard_normal(len(t))
    fault = 0.4 * rng.standard_normal(n2) + 0.3 * np.sin(2 * np.pi * 3000 * t[n1:])
    wave = hum.copy()
    wave[n1:] = 0.3 * hum[n1:] + fault
    return np.clip(wave, -1, 1).astype(np.float32)


def write_wav(path: Path, wave: np.ndarray) -> Path:
    sf.write(str(path), wave, SAMPLE_RATE, subtype="PCM_16")
    return path


def save_tiny_model(directory: Path, seed: int = 0) -> Path:
    """A random tiny CoAT model (tasks anomaly + emotion) saved as a model folder."""
    from edge_coat.model import tiny_coat_model

    tiny_coat_model("qwen2_audio", seed=seed, max_seconds=5).save_pretrained(directory)
    return directory


def site_dict(tmp: Path, model_dir: Path, sources: dict[str, Path], *, enroll: dict | None = None,
              realtime: bool = False, metrics: bool = True) -> dict:
    """An all-in-one config on loopback with ephemeral ports; the anomaly score is the profile
    distance alone (model_weight 0), since a random model's own judgement means nothing."""
    return {
        "capture": {
            "sources": [{"uri": str(p), "stream_id": sid, "chunk_ms": 100, "realtime": realtime}
                        for sid, p in sources.items()],
            "sender": {"endpoint": "tcp://127.0.0.1:0", "buffer_s": 30.0},
            "state_dir": str(tmp / "capture-state"),
        },
        "worker": {
            "receiver": {"bind": "tcp://127.0.0.1:0"},
            "default_stream": {"window_s": WINDOW_S, "hop_s": HOP_S, "tasks": {"anomaly": {"min_rms_dbfs": -60.0}}},
            "batch": {"max_batch": 8, "max_wait_s": 0.02},
        },
        "model": {"path": str(model_dir), "thinking": {"backend": "torch", "verify_bundle": False},
                  "torch_threads": 1},
        # a threshold at the 99th percentile of the enrollment distances and three windows in a row to
        # start an episode: an isolated normal window beyond the threshold (24 enrollment windows give a
        # rough percentile) raises nothing; a changed sound, far beyond it window after window, does.
        # The default (log-mel) features: on this tight enrollment (12 s of a near-stationary hum) the
        # threshold's floor relative to the median normal distance is what keeps the control stream quiet
        "detectors": {"anomaly": {"model_weight": 0.0, "min_enroll_windows": 8, "k": 3,
                                  "percentile": 99.0,
                                  "profile_dir": str(tmp / "profiles"),
                                  "episode": {"on_windows": 3, "off_windows": 2, "cooldown_s": 0.0}}},
        "events": {"db_path": str(tmp / "events.db"), "listen": "127.0.0.1:0", "insecure": True,
                   "heartbeat_s": 0.5},
        "metrics": {"enabled": metrics, "listen": "127.0.0.1:0"},
        "service": {"enroll_at_start": {sid: {"windows": n} for sid, n in (enroll or {}).items()},
                    "drain_timeout_s": 60.0, "grace_s": 1.0},
    }
