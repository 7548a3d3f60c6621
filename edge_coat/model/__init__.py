"""The CoAT model core: a base audio-language model plus Continuous Audio Thinking.

Families: ``qwen2_audio`` (Qwen2AudioForConditionalGeneration), ``qwen2_5_omni`` (the Qwen2.5-Omni
thinker) and ``audioflamingo3`` (AudioFlamingo3ForConditionalGeneration), all from transformers, all
loaded from local files only.

Sequence per window (left-padded in a batch, explicit positions)::

    [prefix text][audio T_i][think_open][K thinking vectors][think_close][task prompt] -> answer

Public API (import from ``edge_coat.model``)::

    model = CoatModel.from_pretrained(dir, quantization="fp32"|"int8"|"nf4", coat_dir=None, device=None)
    model = CoatModel.from_config(family, base_config, coat_config, tokenizer)     # tests / tiny
    model = tiny_coat_model(family, seed=0, max_seconds=5, **coat_overrides)       # random tiny model
    model.save_pretrained(dir, base=True)     # config.json + model.safetensors + tokenizer files,
                                              # coat.safetensors + coat_config.json
    model.quantization                        # "fp32" | "int8" | "nf4"
    model.max_seconds                         # the audio encoder's input length (coat-tiny: 5 s)
    model.max_window_seconds                  # longest window taken: max(max_seconds, 30); longer-than-
                                              # encoder windows are encoded in encoder-length chunks

    r = model.score_labels(waves, prompt, candidates)   # waves: list of (n,) float32 16 kHz mono
    r = model.score_task(waves, "emotion")              # prompt + labels from coat_config.tasks
    r.logprobs (B, C), r.probs (B, C), r.thinking (B, K, D), r.labels   (numpy, float32)
    r.readout (B, C) or None   # the answer readout's log-probabilities, fused into r.probs
    model.use_readout = False  # r.probs from the LLM's answers alone (edge_coat.model.readout)
    texts = model.generate(waves, prompt, max_new_tokens=16)            # greedy, cached
    states = model.probe_states(waves, prompt)   # ProbeStates: thinking (layers+1, B, K, D),
                                                 # audio (layers+1, B, T, D), audio_mask (B, T)
    losses = model.training_losses(CoatBatch(waves, prompts, answers, expert_targets, expert_masks))
    losses["total"].backward()    # keys: answer, expert/<name>, experts, total

Every inference call takes ``use_thinking=False`` for the no-thinking ablation (or set
``CoatConfig.use_thinking``). Bad audio (empty, NaN/inf, not mono, not 16 kHz, longer than
``max_window_seconds``) raises ``ValueError`` before any torch code runs.

Serving (a verified bundle, exported graphs in onnxruntime; ``edge_coat.export`` writes bundles)::

    model = load_model(site_config.model)      # the ``model:`` section (ModelSection): path, quantization,
                                               # thinking / encoder runtimes (ThinkingRuntimeConfig, ...)
    model = load_bundle(dir, coat_dir=None, quantization=..., runtime=..., encoder_runtime=...)
    verify(dir)                                # manifest.json: every file by sha256 (BundleError)
    runtime_status(model)                      # {"quantization", "thinking", "encoder", "family"}

Families: ``FAMILY_SPECS`` in ``edge_coat.model.config`` is the one registry (commands' ``--family``
choices, the ONNX-encoder families, config validation read it).

Lower-level parts: ``ThinkingBlock`` (ONNX-exportable: forward(audio_embeds (B, T, Da), audio_mask
(B, T) bool) -> (B, K, D)), ``ExpertHeads``, ``slot_pool``, ``assemble``, ``score_candidates``,
``greedy_generate``, adapters (``build_adapter``, ``load_adapter``), ``build_word_tokenizer``,
``tiny_base_config``.
"""

import os

# Nothing in the model core may reach a model hub; set before transformers is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Lazy exports: ``edge_coat.model.config`` (the site-config section) must import without torch.
_EXPORTS = {
    "edge_coat.model.adapters": ("FamilyAdapter", "build_adapter", "load_adapter"),
    "edge_coat.model.audio": ("MelFrontend", "validate_waves"),
    "edge_coat.model.coat": ("CoatBatch", "CoatModel", "ProbeStates", "ScoreResult"),
    "edge_coat.model.config": ("FAMILIES", "FAMILY_SPECS", "CoatConfig", "EncoderRuntimeConfig", "ExpertSpec",
                               "ModelSection", "TaskSpec", "ThinkingRuntimeConfig"),
    "edge_coat.model.decoding": ("greedy_generate", "prefill", "score_candidates"),
    "edge_coat.model.heads": ("ExpertHeads", "expert_loss", "slot_pool"),
    "edge_coat.model.loading": ("load_bundle", "load_model", "runtime_status"),
    "edge_coat.model.manifest": ("BundleError", "verify"),
    "edge_coat.model.runtime": ("OnnxAudioEncoder", "OnnxThinkingBlock"),
    "edge_coat.model.sequence": ("Assembled", "assemble"),
    "edge_coat.model.thinking": ("ThinkingBlock",),
    "edge_coat.model.tiny": ("tiny_base_config", "tiny_coat_config", "tiny_coat_model"),
    "edge_coat.model.tokenizer": ("build_word_tokenizer",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'edge_coat.model' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
