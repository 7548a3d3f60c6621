"""Writing verified model bundles (loading them is ``edge_coat.model.loading``).

Two layouts:

* a whole model (``role="model"``): base weights + tokenizer + ``coat_config.json`` +
  ``coat.safetensors`` + the thinking graphs + ``manifest.json`` (the embedded ``coat-tiny``), and for
  the Qwen2-Audio family ``encoder.onnx`` (audio encoder + projector, ``edge_coat.export.encoder``);
* a site with a real checkpoint: the base checkpoint copied as-is into its own folder with a
  ``role="base"`` manifest (``edge-coat models manifest``), and a small ``role="coat"`` folder with
  ``coat_config.json``, ``coat.safetensors``, the thinking graphs and, when trained with one, a LoRA
  adapter in ``lora/`` (see ``edge_coat.model.lora``), written by ``edge-coat export --coat-only``.

The thinking graphs: ``thinking.onnx`` (the whole block), its per-frame and per-window parts
``thinking_frames.onnx`` + ``thinking_window.onnx`` (``export_thinking_parts``: the model stage keeps each
frame's part per stream). The graphs read their weights from the bundle's own safetensors files
(``link_to_safetensors``), so no weight is stored twice; what no safetensors file holds is kept once in
``thinking.weights`` (``share_weights``; bundles exported before 2026-12-06 keep all of the thinking weights
there, and a self-contained ``encoder.onnx``, and load as before). Parity of the parts
is checked as ``thinking_window(thinking_frames(x))`` against the torch block's ``forward`` (component
``thinking_split``). Bundles exported before the parts hold a self-contained ``thinking.onnx`` only; they
load and serve as before, whole windows through ``thinking.onnx``.

``export_bundle`` refuses to write a bundle whose ONNX graphs fail parity: it builds the bundle in a
temporary folder beside the target and renames it into place only when every check passed.
The folder it writes is read back with ``edge_coat.model.manifest.verify`` before it is renamed in.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edge_coat.export.encoder import encoder_parity, export_encoder
from edge_coat.export.onnx_export import export_thinking, export_thinking_parts, link_to_safetensors, share_weights
from edge_coat.export.parity import (
    DEFAULT_TOLERANCE,
    ParityInput,
    audio_inputs,
    check_parity,
    random_inputs,
    split_runner,
    synthetic_waves,
)
from edge_coat.model.config import EncoderRuntimeConfig, ThinkingRuntimeConfig
from edge_coat.model.loading import verify_if_bundle
from edge_coat.model.lora import LORA_DIR, attach_lora
from edge_coat.model.manifest import MANIFEST_NAME, Manifest, build_manifest, verify, write_manifest
from edge_coat.model.runtime import (
    ENCODER_ONNX,
    THINKING_FRAMES_ONNX,
    THINKING_ONNX,
    THINKING_WEIGHTS,
    THINKING_WINDOW_ONNX,
    OnnxThinkingBlock,
    attach_onnx_encoder,
    supports_onnx_encoder,
)

log = logging.getLogger(__name__)

#: Files of a CoAT weights folder (everything else in a model folder belongs to the base).
THINKING_FILES = (THINKING_ONNX, THINKING_FRAMES_ONNX, THINKING_WINDOW_ONNX, THINKING_WEIGHTS)
COAT_FILES = ("coat_config.json", "coat.safetensors", *THINKING_FILES)


def _copy_tree(src: Path, dst: Path, *, only: tuple[str, ...] | None = None) -> None:
    """Copy ``src`` into ``dst``, without its manifest or exported graphs (all are rebuilt)."""
    skip = {MANIFEST_NAME, ENCODER_ONNX, *THINKING_FILES}
    for item in sorted(src.iterdir()):
        if item.name in skip or (only is not None and item.name not in only):
            continue
        if item.is_dir():
            shutil.copytree(item, dst / item.name)
        else:
            shutil.copy2(item, dst / item.name)


def export_bundle(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    coat_dir: str | Path | None = None,
    coat_only: bool = False,
    name: str | None = None,
    version: str = "",
    license: str = "",
    data_provenance: list[str] | None = None,
    base_model: str = "",
    notes: str = "",
    real_waves: list[np.ndarray] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    force: bool = False,
    runtime: ThinkingRuntimeConfig | None = None,
    encoder: bool | None = None,
) -> Manifest:
    """Export the thinking block of the model in ``model_dir`` (+ ``coat_dir``), check parity and write
    a verified bundle to ``out_dir``. Raises ParityError (and writes nothing) when parity fails.

    ``encoder``: also export the audio encoder + projector (``encoder.onnx``) and check its parity on
    random mels and on the synthetic and real windows (a 2-chunk window among them). Default: for a
    whole Qwen2-Audio model; never for other families (their encoders stay in torch); a ``coat_only``
    folder does not hold the base model's encoder unless asked."""
    from edge_coat.model.coat import CoatModel

    model_dir = Path(model_dir)
    coat_src = Path(coat_dir) if coat_dir is not None else model_dir
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose another --out or pass --force")
    if out_dir.resolve() in (model_dir.resolve(), coat_src.resolve()):
        raise ValueError(f"--out {out_dir} must differ from the source folders")
    sources = {model_dir.resolve(): verify_if_bundle(model_dir, required=False)}
    if coat_src.resolve() not in sources:
        sources[coat_src.resolve()] = verify_if_bundle(coat_src, required=False)
    prior = next((m for m in sources.values() if m is not None), None)
    if not (license or (prior.license if prior else "")):  # before the minutes of export and parity work
        raise ValueError("a bundle needs a license: pass license=... (--license), or export from a bundle that has one")

    model = CoatModel.from_pretrained(model_dir, coat_dir=coat_dir, quantization="fp32", device="cpu")
    family = model.config.family
    if encoder is None:
        encoder = supports_onnx_encoder(family) and not coat_only
    if encoder and not supports_onnx_encoder(family):
        raise ValueError(f"the ONNX audio encoder is exported for the Qwen2-Audio family only; this model is "
                         f"{family!r}: export without --encoder")
    if (coat_src / LORA_DIR).is_dir():
        attach_lora(model, coat_src)  # fails here, not at the site, when the adapters do not fit the base
    block = model.thinking
    audio_dim = int(block.in_proj.in_features)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        if coat_only:  # a separate CoAT folder is copied whole; from a whole model only its CoAT files
            _copy_tree(coat_src, tmp, only=None if coat_dir is not None else COAT_FILES + (LORA_DIR,))
        else:
            _copy_tree(model_dir, tmp)
            if coat_dir is not None:
                _copy_tree(coat_src, tmp)
        onnx_path = export_thinking(block, tmp / THINKING_ONNX)
        graphs = [onnx_path, *export_thinking_parts(block, tmp)]
        stores = sorted(tmp.glob("*.safetensors"))  # the weights the bundle holds already
        link_to_safetensors(graphs, stores)
        share_weights(graphs, THINKING_WEIGHTS)  # the rest, each tensor once (none for coat-tiny)
        cpu = (runtime or ThinkingRuntimeConfig()).model_copy(update={"provider": "cpu", "verify_bundle": False})
        onnx_block = OnnxThinkingBlock(onnx_path, cpu)
        inputs: list[ParityInput] = random_inputs(audio_dim)
        inputs.append(audio_inputs(model, synthetic_waves(_durations(model.max_seconds)), "synthetic"))
        if real_waves:
            inputs.append(audio_inputs(model, real_waves, "real"))
        records = [check_parity(block, onnx_block, inputs, tolerance=tolerance, file=THINKING_ONNX),
                   check_parity(block, split_runner(onnx_block), inputs, tolerance=tolerance,
                                file=THINKING_WINDOW_ONNX, component="thinking_split")]
        if encoder:
            enc_path = export_encoder(model, tmp / ENCODER_ONNX)
            link_to_safetensors([enc_path], stores)
            enc_rt = EncoderRuntimeConfig(provider="cpu", intra_op_threads=cpu.intra_op_threads)
            onnx_encoder = attach_onnx_encoder(model, enc_path, enc_rt)
            long = synthetic_waves((2 * model.max_seconds,), seed=1)  # two encoder chunks
            sources = {"synthetic": synthetic_waves(_durations(model.max_seconds)) + long, "real": real_waves or []}
            records.append(encoder_parity(model, onnx_encoder, sources, tolerance=tolerance))
        else:
            log.info("audio encoder not exported (%s): it runs in torch", family)
        fields = dict(
            name=name or (prior.name if prior else out_dir.name),
            version=version or (prior.version if prior else ""),
            role="coat" if coat_only else "model",
            family=model.config.family,
            base_model=base_model or (prior.base_model if prior else ""),
            license=license or (prior.license if prior else ""),
            data_provenance=data_provenance if data_provenance is not None else (prior.data_provenance if prior else []),
            notes=notes or (prior.notes if prior else ""),
            parity=records,
        )
        manifest = build_manifest(tmp, **fields)
        write_manifest(tmp, manifest)
        verify(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is read by the service user
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %s bundle %s to %s (parity max abs diff %s)", manifest.role, manifest.name, out_dir,
             ", ".join(f"{r.component} {r.max_abs_diff:.3g}" for r in records))
    return manifest


def _durations(max_seconds: float) -> tuple[float, ...]:
    """Window lengths for the generated-audio parity batch: 1 s up to the encoder's maximum."""
    return tuple(sorted({min(1.0, max_seconds), max_seconds / 2, max_seconds}))


