"""Writing model bundles: ONNX export of the thinking block (and the Qwen2-Audio encoder), parity
checks against torch, and verified bundle folders with their manifest.

Loading a bundle, the onnxruntime sessions and the manifest format live next to the model
(``edge_coat.model.loading``, ``edge_coat.model.runtime``, ``edge_coat.model.manifest``): this package
only writes, and checks what it wrote.

Public API::

    from edge_coat.export.bundle import export_bundle
    export_bundle(model_dir, out_dir, *, coat_dir=None, coat_only=False, name=None, license="",
                  data_provenance=None, base_model="", real_waves=None, tolerance=1e-4, force=False) -> Manifest
        # exports thinking.onnx, checks parity (random 1 s / 30 s at batch 1 and 7, generated and optional
        # real windows through the encoder), records it in manifest.json; ParityError -> nothing written

    from edge_coat.export.onnx_export import export_thinking, save_onnx
    from edge_coat.export.encoder import export_encoder, encoder_parity
    from edge_coat.export.parity import check_parity, ParityError

Command line: ``edge-coat export`` and ``edge-coat models {verify,list,manifest}``. Site procedure:
deploy/MODELS.md.
"""
