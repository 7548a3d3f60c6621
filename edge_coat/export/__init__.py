"""ONNX export of the thinking block, its onnxruntime runtime, and verifiable model bundles.

Public API::

    from edge_coat.export.manifest import verify, build_manifest, write_manifest, read_manifest, list_bundles
    verify(dir, check_hashes=True) -> Manifest            # BundleError(ValueError) names every bad file
    build_manifest(dir, name=..., role="model"|"base"|"coat", family=..., license=..., ...) -> Manifest
    write_manifest(dir, manifest) -> Path;  read_manifest(dir) -> Manifest
    list_bundles(root, check_hashes=False) -> list[BundleListing]

    from edge_coat.export.bundle import export_bundle, load_bundle, attach_onnx_thinking, runtime_status
    export_bundle(model_dir, out_dir, *, coat_dir=None, coat_only=False, name=None, license="",
                  data_provenance=None, base_model="", real_waves=None, tolerance=1e-4, force=False) -> Manifest
        # exports thinking.onnx, checks parity (random 1 s / 30 s at batch 1 and 7, generated and optional
        # real windows through the encoder), records it in manifest.json; ParityError -> nothing written
    load_bundle(model_dir, *, coat_dir=None, quantization="fp32", device=None,
                runtime=ThinkingRuntimeConfig()) -> CoatModel   # verifies manifests first; ONNX block swapped in
    attach_onnx_thinking(model, onnx_path, runtime=None) -> OnnxThinkingBlock
    runtime_status(model) -> {"quantization", "thinking", "family"}

    from edge_coat.export.runtime import OnnxThinkingBlock
    OnnxThinkingBlock(path, ThinkingRuntimeConfig(...))(audio_embeds (B, T, Da), audio_mask (B, T)) -> (B, K, D)

    from edge_coat.export.config import ThinkingRuntimeConfig   # site-config section model.thinking

Command line: ``edge-coat export`` and ``edge-coat models {verify,list,manifest}``. Site procedure:
deploy/MODELS.md.
"""
