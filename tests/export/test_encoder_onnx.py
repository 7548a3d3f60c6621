"""The audio encoder + projector in ONNX (Qwen2-Audio family), on the tiny bundles of conftest.py."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from edge_coat.config import ModelSection
from edge_coat.model.loading import load_bundle, runtime_status
from edge_coat.model.config import EncoderRuntimeConfig, ThinkingRuntimeConfig
from edge_coat.export.encoder import encoder_parity, random_mels
from edge_coat.export.parity import ParityError, load_real_waves
from edge_coat.model.runtime import ENCODER_ONNX, OnnxAudioEncoder, attach_onnx_encoder

CPU = ThinkingRuntimeConfig(provider="cpu")
ENC_CPU = EncoderRuntimeConfig(provider="cpu")


def _waves(seed: int, seconds) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i, s in enumerate(seconds):
        t = np.arange(int(s * 16000)) / 16000
        out.append((0.2 * np.sin(2 * np.pi * (180 + 90 * i + 20 * t) * t)
                    + 0.05 * rng.standard_normal(t.size)).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def onnx_model(bundles):
    return load_bundle(bundles["qwen2_audio"][1], runtime=CPU, encoder_runtime=ENC_CPU)


def test_bundle_carries_the_encoder_and_its_parity(bundles):
    manifest, folder = bundles["qwen2_audio"]
    assert (folder / ENCODER_ONNX).is_file() and ENCODER_ONNX in {f.path for f in manifest.files}
    record = next(r for r in manifest.parity if r.component == "encoder")
    assert record.file == ENCODER_ONNX and record.tolerance == 1e-4 and record.max_abs_diff <= 1e-4
    cases = [(c.source, c.batch, c.frames) for c in record.cases]
    # random mels at batch 1 and 3; generated 1, 2.5 and 5 s windows plus a 10 s one (2 chunks) = 5 chunks
    assert cases == [("random", 1, 125), ("random", 3, 125), ("synthetic", 5, 125)]


@pytest.mark.parametrize("family", ["qwen2_5_omni", "audioflamingo3"])
def test_other_families_keep_the_torch_encoder_and_say_so(bundles, family, caplog):
    manifest, folder = bundles[family]
    assert not (folder / ENCODER_ONNX).exists() and [r.component for r in manifest.parity] == ["thinking", "thinking_split"]
    with caplog.at_level(logging.INFO, logger="edge_coat.model.loading"):
        model = load_bundle(folder, runtime=CPU)
    assert runtime_status(model)["encoder"] == "torch cpu" and model.audio_encoder is None
    assert f"audio encoder: torch (the ONNX encoder is exported for the Qwen2-Audio family only; {family}" in caplog.text
    with pytest.raises(ValueError, match=f"qwen2_audio.*only, got family '{family}'"):
        attach_onnx_encoder(model, bundles["qwen2_audio"][1] / ENCODER_ONNX, ENC_CPU)


def test_onnx_encoder_scores_like_torch_on_short_and_chunked_windows(saved_models, onnx_model):
    torch_model, _ = saved_models["qwen2_audio"]
    assert isinstance(onnx_model.audio_encoder, OnnxAudioEncoder)
    assert runtime_status(onnx_model)["encoder"] == "onnxruntime CPU"
    waves = _waves(7, (1.2, 4.9, 10.0, 7.5))  # two windows <= the 5 s encoder input, two chunked
    want = torch_model.score_task(waves, "emotion")
    got = onnx_model.score_task(waves, "emotion")
    np.testing.assert_allclose(got.logprobs, want.logprobs, atol=1e-5)
    np.testing.assert_allclose(got.thinking, want.thinking, atol=1e-4)
    with torch.inference_mode():
        e_t, m_t = torch_model.encode(waves)  # (4, 250, D)
        e_o, m_o = onnx_model.encode(waves)
    assert torch.equal(m_t, m_o) and e_o.shape == e_t.shape == (4, 250, 64)
    assert float((e_o - e_t)[m_t].abs().max()) <= 1e-5


def test_torch_backend_switch_and_stage_status(bundles):
    folder = bundles["qwen2_audio"][1]
    model = load_bundle(folder, runtime=CPU, encoder_runtime=EncoderRuntimeConfig(backend="torch"))
    assert model.audio_encoder is None and runtime_status(model)["encoder"] == "torch cpu"
    from edge_coat.worker.coat_stage import CoatStage

    stage = CoatStage(ModelSection(path=folder, thinking={"provider": "cpu"}, encoder={"provider": "cpu"},
                                   readings=[]))
    info = stage.info()
    assert info["encoder"] == "onnxruntime CPU" and info["encoder_runtime"] == "onnx"
    assert info["thinking_runtime"] == "onnx" and info["max_window_seconds"] == 30.0


def test_bad_input_and_a_graph_from_another_model_are_refused(bundles, onnx_model):
    enc = onnx_model.audio_encoder
    with pytest.raises(ValueError, match=r"mel: expected shape \(B, 32, 500\), got \(1, 32, 400\)"):
        enc(torch.zeros(1, 32, 400), torch.ones(1, 400, dtype=torch.long))
    with pytest.raises(ValueError, match=r"mel_mask: expected shape \(2, 500\), got \(1, 500\)"):
        enc(torch.zeros(2, 32, 500), torch.ones(1, 500, dtype=torch.long))
    from edge_coat.model.tiny import tiny_coat_model

    other = tiny_coat_model("qwen2_audio", max_seconds=2)
    with pytest.raises(ValueError, match=r"graph has \(n_mels, frames, D\) = \(32, 500, 64\).*\(32, 200, 64\)"):
        attach_onnx_encoder(other, bundles["qwen2_audio"][1] / ENCODER_ONNX, ENC_CPU)


def test_parity_beyond_tolerance_is_refused(saved_models, onnx_model):
    torch_model, _ = saved_models["qwen2_audio"]
    torch_model.audio_encoder = None
    record = encoder_parity(torch_model, onnx_model.audio_encoder, {"synthetic": _waves(2, (3.0,))}, tolerance=1e-4)
    assert [c.source for c in record.cases] == ["random", "random", "synthetic"]
    assert 0 < record.max_abs_diff <= 1e-4
    with pytest.raises(ParityError, match="ONNX audio encoder differs from torch"):
        encoder_parity(torch_model, onnx_model.audio_encoder, {}, tolerance=1e-12)


def test_random_mels_are_ragged():
    (m1, k1), (m3, k3) = random_mels(8, 100)
    assert m1.shape == (1, 8, 100) and m3.shape == (3, 8, 100)
    assert k1.sum() == 100 and k3[0].sum() == 100 and (k3[1:].sum(1) < 100).any()


def test_encoder_parity_on_real_recorded_windows(saved_models, onnx_model, shared_data):
    torch_model, _ = saved_models["qwen2_audio"]
    waves = load_real_waves(shared_data / "ravdess", 2, 2 * torch_model.max_seconds)
    waves += load_real_waves(shared_data / "urbansound8k", 2, 2 * torch_model.max_seconds)
    record = encoder_parity(torch_model, onnx_model.audio_encoder, {"real": waves}, tolerance=1e-4)
    assert record.cases[-1].source == "real" and record.cases[-1].batch >= 4
    assert record.max_abs_diff <= 1e-4


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_int8_encoder_switch(bundles, saved_models, backend):
    """model.encoder.quantization int8: onnxruntime's dynamic int8 copy of encoder.onnx (the bundle stays as
    verified) or torch dynamic int8 of the torch encoder; audio positions close to fp32, status says int8."""
    folder = bundles["qwen2_audio"][1]
    files = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    model = load_bundle(folder, runtime=CPU,
                        encoder_runtime=EncoderRuntimeConfig(provider="cpu", backend=backend, quantization="int8"))
    assert runtime_status(model)["encoder"] == ("onnxruntime CPU int8" if backend == "onnx" else "torch cpu int8")
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == files
    torch_model, _ = saved_models["qwen2_audio"]
    waves = _waves(3, (4.0, 9.0))
    with torch.inference_mode():
        e_t, m_t = torch_model.encode(waves)
        e_q, m_q = model.encode(waves)
    assert torch.equal(m_t, m_q)
    cos = torch.nn.functional.cosine_similarity(e_q[m_q], e_t[m_t], dim=-1)  # (positions,)
    assert float(cos.mean()) > 0.95 and float((e_q - e_t)[m_t].abs().max()) > 0  # close, not the fp32 graph


def test_int8_copy_quantizes_the_weights_the_graph_reads_from_safetensors(bundles):
    """encoder.onnx reads its weights from model.safetensors (Cast/Transpose of stored float16 tensors); the
    int8 copy must still quantize every one of them, as it did when the graph held them inline."""
    import onnx

    from edge_coat.model.runtime import int8_copy

    folder = bundles["qwen2_audio"][1]
    graph = onnx.load(str(folder / "encoder.onnx"), load_external_data=False).graph
    stored = [t for t in graph.initializer if any(e.value == "model.safetensors" for e in t.external_data)]
    inline = [t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.raw_data) >= 1024]
    assert len(stored) >= 8 and not inline  # no float weight stored inline (positions index constants may be)
    names = {t.name for t in stored}
    weights = {n.output[0] for n in graph.node if n.op_type == "Cast" and n.input[0] in names}  # stored, as float32
    weights |= {n.output[0] for n in graph.node if n.op_type == "Transpose" and n.input[0] in weights}
    matmuls = sum(n.op_type == "MatMul" and n.input[1] in weights for n in graph.node)
    assert matmuls >= 6
    q = onnx.load(str(int8_copy(folder / "encoder.onnx"))).graph
    assert sum(n.op_type == "MatMulInteger" for n in q.node) == matmuls  # every weight MatMul quantized


def test_the_graph_also_outputs_the_tower_for_a_tower_readout(saved_models, onnx_model):
    torch_model, _ = saved_models["qwen2_audio"]
    enc = onnx_model.audio_encoder
    assert enc.has_tower
    mel, mask = random_mels(enc.n_mels, enc.frames, batches=(2,), seed=3)[0]
    with torch.inference_mode():
        hidden, valid = torch_model.adapter.encode_tower(mel, mask)  # (2, T, Da)
    embeds, got_mask, tower = enc.encode_with_tower(mel, mask)
    assert torch.equal(got_mask, valid) and tower.shape == hidden.shape and tower.shape[-1] != embeds.shape[-1]
    assert float((tower - hidden)[valid].abs().max()) <= 1e-5
    torch.testing.assert_close(embeds, enc(mel, mask)[0])


def test_a_tower_readout_refuses_an_encoder_graph_without_the_tower(bundles, tmp_path):
    import onnx

    from edge_coat.model.loading import _pick_encoder
    from edge_coat.model.runtime import OUTPUT_TOWER

    folder = bundles["qwen2_audio"][1]
    old = onnx.load(str(folder / ENCODER_ONNX))  # as bundles before coat-tiny 1.5 have it: the embeds only
    kept = [o for o in old.graph.output if o.name != OUTPUT_TOWER]
    del old.graph.output[:]
    old.graph.output.extend(kept)
    onnx.save(old, str(tmp_path / ENCODER_ONNX))
    enc = OnnxAudioEncoder(tmp_path / ENCODER_ONNX, load_bundle(folder, runtime=CPU).adapter, ENC_CPU)
    assert not enc.has_tower
    with pytest.raises(ValueError, match="no audio_tower output .* re-export"):
        enc.encode_with_tower(torch.zeros(1, enc.n_mels, enc.frames), torch.ones(1, enc.frames, dtype=torch.long))
    model = load_bundle(folder, runtime=CPU, encoder_runtime=EncoderRuntimeConfig(backend="torch"))
    _pick_encoder(model, tmp_path, tmp_path, ENC_CPU)  # an audio readout (or none) runs on it
    model.set_readout_input("tower")
    labels = list(model.config.tasks["emotion"].labels)
    model.readout.set_task("emotion", labels, torch.zeros(len(labels), model.readout.feature_dim),
                           torch.zeros(len(labels)))
    model.config.readout = {"emotion": labels}
    with pytest.raises(ValueError, match="outputs no tower.*re-export it with edge-coat export"):
        _pick_encoder(model, tmp_path, tmp_path, ENC_CPU)
