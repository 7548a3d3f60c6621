"""Loading a verified model bundle for serving (the worker, ``edge-coat status``, benches).

``load_bundle`` verifies every manifest (``edge_coat.model.manifest``) before a byte of weights is read,
loads the base model and the CoAT weights (``CoatModel.from_pretrained``), attaches a LoRA adapter kept
beside the CoAT weights (``edge_coat.model.lora``), and swaps in the exported graphs
(``edge_coat.model.runtime``): the thinking block in onnxruntime unless ``model.thinking.backend`` is
torch, the audio encoder when the bundle has ``encoder.onnx``. ``load_model(section)`` does the same
from the site config's ``model:`` section. Writing bundles is ``edge_coat.export``'s job.

Public API::

    load_model(ModelSection) -> CoatModel
    load_bundle(model_dir, *, coat_dir=None, quantization="fp32", device=None,
                runtime=ThinkingRuntimeConfig(), encoder_runtime=EncoderRuntimeConfig()) -> CoatModel
    attach_onnx_thinking(model, onnx_path, runtime=None) -> OnnxThinkingBlock
    runtime_status(model) -> {"quantization", "thinking", "encoder", "family"}
    bundle_identity(path, fallback_name="") -> (name, version)
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge_coat.model.config import EncoderRuntimeConfig, ModelSection, ThinkingRuntimeConfig
from edge_coat.model.lora import LORA_DIR, attach_lora, check_lora_mode
from edge_coat.model.manifest import MANIFEST_NAME, BundleError, Manifest, read_manifest, verify
from edge_coat.model.runtime import (
    ENCODER_ONNX,
    THINKING_ONNX,
    OnnxThinkingBlock,
    attach_onnx_encoder,
    describe_encoder,
    supports_onnx_encoder,
)

log = logging.getLogger(__name__)


def load_model(cfg: ModelSection):
    """Load the model a ``model:`` section names (a verified bundle; runtimes per ``cfg.thinking`` and
    ``cfg.encoder``)."""
    if not Path(cfg.path).is_dir():
        raise ValueError(f"model.path: expected a model folder, but {cfg.path} does not exist or is not a folder")
    return load_bundle(cfg.path, coat_dir=cfg.coat_path, quantization=cfg.quantization, device=cfg.device,
                       runtime=cfg.thinking, encoder_runtime=cfg.encoder)


def bundle_identity(path: Path, fallback_name: str = "") -> tuple[str, str]:
    """(name, version) from a bundle's manifest.json, else the folder name and 'unversioned'."""
    if (Path(path) / MANIFEST_NAME).is_file():
        try:
            m = read_manifest(path)
            return fallback_name or m.name or Path(path).name, m.version or "unversioned"
        except BundleError as exc:
            log.warning("cannot read %s (%s)", Path(path) / MANIFEST_NAME, exc)
    return fallback_name or Path(path).name, "unversioned"


def verify_if_bundle(directory: Path, required: bool) -> Manifest | None:
    if (directory / MANIFEST_NAME).is_file():
        return verify(directory)
    if required:
        verify(directory)  # raises: manifest missing
    log.warning("%s has no %s: loading it unverified", directory, MANIFEST_NAME)
    return None


def find_onnx(*directories: Path) -> Path | None:
    for d in directories:
        if (d / THINKING_ONNX).is_file():
            return d / THINKING_ONNX
    return None


def load_bundle(
    model_dir: str | Path,
    *,
    coat_dir: str | Path | None = None,
    quantization: str = "fp32",
    device: str | None = None,
    runtime: ThinkingRuntimeConfig | None = None,
    encoder_runtime: EncoderRuntimeConfig | None = None,
):
    """Verify and load a model (and its separate CoAT folder), with the thinking block in onnxruntime
    unless ``runtime.backend == "torch"``, and the audio encoder in onnxruntime when the bundle has an
    ``encoder.onnx`` and ``encoder_runtime.backend == "onnx"`` (the default). Local files only."""
    from edge_coat.model.coat import CoatModel

    runtime = runtime or ThinkingRuntimeConfig()
    model_dir = Path(model_dir)
    coat_path = Path(coat_dir) if coat_dir is not None else model_dir
    if runtime.verify_bundle:
        verify_if_bundle(model_dir, required=True)
        if coat_path.resolve() != model_dir.resolve():
            verify_if_bundle(coat_path, required=True)
    has_lora = (coat_path / LORA_DIR).is_dir()
    if has_lora:
        check_lora_mode(quantization, coat_path)
    model = CoatModel.from_pretrained(model_dir, quantization=quantization, coat_dir=coat_dir, device=device)
    if has_lora:
        attach_lora(model, coat_path)
    if runtime.backend == "onnx":
        onnx_path = find_onnx(coat_path, model_dir)
        if onnx_path is None:
            raise FileNotFoundError(
                f"no {THINKING_ONNX} in {coat_path} or {model_dir}: run edge-coat export, "
                "or set model.thinking.backend: torch"
            )
        attach_onnx_thinking(model, onnx_path, runtime)
    _attach_encoder(model, coat_path, model_dir, encoder_runtime or EncoderRuntimeConfig())
    log.info("model %s loaded: quantization %s, audio encoder on %s, thinking block on %s", model_dir,
             model.quantization, describe_encoder(model), describe_thinking(model))
    return model


def _attach_encoder(model, coat_path: Path, model_dir: Path, runtime: EncoderRuntimeConfig) -> None:
    """The ONNX encoder when configured and present; otherwise say why the encoder stays in torch (and
    quantize the torch encoder to int8 when ``runtime.quantization`` says so)."""
    _pick_encoder(model, coat_path, model_dir, runtime)
    if runtime.quantization == "int8" and model.audio_encoder is None:
        model.quantize_encoder_int8()


def _pick_encoder(model, coat_path: Path, model_dir: Path, runtime: EncoderRuntimeConfig) -> None:
    family = model.config.family
    path = next((d / ENCODER_ONNX for d in (coat_path, model_dir) if (d / ENCODER_ONNX).is_file()), None)
    if runtime.backend == "torch":
        log.info("audio encoder: torch (model.encoder.backend: torch)")
    elif not supports_onnx_encoder(family):
        log.info("audio encoder: torch (the ONNX encoder is exported for the Qwen2-Audio family only; %s masks "
                 "padded frames its own way)", family)
    elif path is None:
        log.info("audio encoder: torch (no %s in %s; edge-coat export writes one)", ENCODER_ONNX, model_dir)
    elif model.device.type != "cpu":
        log.info("audio encoder: torch (the model is on %s: the encoder stays with the base model there)", model.device)
    else:
        encoder = attach_onnx_encoder(model, path, runtime)
        if model.config.readout and model.config.readout_input == "tower" and not encoder.has_tower:
            raise ValueError(f"{path} outputs no tower, which this model's answer readout reads (readout_input "
                             "'tower'): the bundle's encoder was exported by an older edge-coat; re-export it with "
                             "edge-coat export, or set model.encoder.backend: torch")


def attach_onnx_thinking(model, onnx_path: str | Path, runtime: ThinkingRuntimeConfig | None = None):
    """Swap ``model.thinking`` for the ONNX graph at ``onnx_path``; returns the new block."""
    onnx_block = OnnxThinkingBlock(onnx_path, runtime)
    torch_block = model.thinking
    expected = (int(torch_block.in_proj.in_features), int(torch_block.num_queries),
                int(torch_block.out_proj.out_features))
    got = (onnx_block.audio_dim, onnx_block.num_queries, onnx_block.out_dim)
    if expected != got:
        raise ValueError(
            f"{onnx_path}: graph has (Da, K, D) = {got} but the model's thinking block is {expected}; "
            "re-export it from this model"
        )
    model.thinking = onnx_block
    return onnx_block


def describe_thinking(model) -> str:
    """Where the thinking block runs, for logs and the service's status ("onnxruntime CPU", "torch cpu")."""
    block = model.thinking
    if isinstance(block, OnnxThinkingBlock):
        return f"onnxruntime {block.provider.removesuffix('ExecutionProvider')}"
    return f"torch {next(block.parameters()).device}"


def runtime_status(model) -> dict[str, str]:
    """The active modes, for ``edge-coat status`` and the worker's status message."""
    return {"quantization": str(model.quantization), "thinking": describe_thinking(model),
            "encoder": describe_encoder(model), "family": model.config.family}

