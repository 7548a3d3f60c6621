"""Nothing downloads: every expert imports, loads and runs in a fresh process with sockets cut off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, socket, sys

attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network disabled in this test")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

import numpy as np
from edge_coat.experts import DEFAULT_EXPERTS, create_expert

wave = (0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000)).astype(np.float32)
shapes = {}
for name in DEFAULT_EXPERTS:
    expert = create_expert(name)
    shapes[name] = list(expert(wave).shape)
print(json.dumps({"shapes": shapes, "attempts": attempts}))
"""


@pytest.mark.slow  # a fresh interpreter imports torch, onnxruntime and librosa: ~15 s here
def test_experts_run_with_the_network_cut_off():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["attempts"] == []
    assert set(result["shapes"]) == {
        "speech_vad", "pitch_prosody", "loudness_spectral", "voice_embedding", "sound_tags",
    }
    assert result["shapes"]["voice_embedding"] == [256]
    assert result["shapes"]["sound_tags"][1] == 521
