"""ONNX export, parity, dynamic shapes, bundle loading and the export command, on tiny models."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from edge_coat.export.bundle import export_bundle
from edge_coat.export.parity import ParityError, audio_inputs, check_parity, load_real_waves, synthetic_waves
from edge_coat.model.config import FAMILIES, ThinkingRuntimeConfig
from edge_coat.model.loading import attach_onnx_thinking, load_bundle, runtime_status
from edge_coat.model.manifest import BundleError, verify
from edge_coat.model.runtime import OnnxThinkingBlock, session_count

CPU = ThinkingRuntimeConfig(provider="cpu")


def _waves(seed: int, seconds=(1.5, 3.0, 4.7)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = [np.arange(int(s * 16000)) / 16000 for s in seconds]
    return [(0.2 * np.sin(2 * np.pi * (200 + 100 * i) * x) + 0.05 * rng.standard_normal(x.size)).astype(np.float32)
            for i, x in enumerate(t)]


@pytest.mark.parametrize("family", FAMILIES)
def test_export_records_parity_over_shapes_and_sources(bundles, family):
    manifest, folder = bundles[family]
    assert verify(folder).name == f"coat-tiny-{family}"
    assert manifest.role == "model" and manifest.family == family
    assert "thinking.onnx" in {f.path for f in manifest.files}
    # the audio encoder is exported for the Qwen2-Audio family only (tests/export/test_encoder_onnx.py)
    assert [r.component for r in manifest.parity] == (["thinking", "thinking_split", "encoder"]
                                                      if family == "qwen2_audio" else ["thinking", "thinking_split"])
    record = manifest.parity[0]
    assert record.component == "thinking" and record.tolerance == 1e-4
    assert 0 < record.max_abs_diff <= 1e-4
    shapes = {(c.source, c.batch, c.frames) for c in record.cases}
    # 1 s and 30 s of encoder frames at batch 1 and 7, plus generated audio through the encoder.
    assert {("random", b, t) for b in (1, 7) for t in (25, 750)} <= shapes
    assert any(s == "synthetic" for s, _, _ in shapes)
    assert all(c.max_abs_diff <= 1e-4 for c in record.cases)


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_and_torch_give_the_same_label_probabilities(saved_models, bundles, family):
    torch_model, _ = saved_models[family]
    onnx_model = load_bundle(bundles[family][1], runtime=CPU)
    assert isinstance(onnx_model.thinking, OnnxThinkingBlock)
    assert runtime_status(onnx_model)["thinking"] == "onnxruntime CPU"
    waves = _waves(3)
    want = torch_model.score_task(waves, "emotion")
    got = onnx_model.score_task(waves, "emotion")
    np.testing.assert_allclose(got.probs, want.probs, atol=1e-5)
    np.testing.assert_allclose(got.logprobs, want.logprobs, atol=1e-4)
    np.testing.assert_allclose(got.thinking, want.thinking, atol=1e-4)
    assert got.probs.shape == (3, 4)


def test_dynamic_batch_and_time_axes(saved_models, bundles):
    torch_model, _ = saved_models["qwen2_audio"]
    block = OnnxThinkingBlock(bundles["qwen2_audio"][1] / "thinking.onnx", CPU)
    rng = np.random.default_rng(7)
    for b, t in [(1, 1), (7, 25), (1, 173), (7, 750), (2, 751)]:
        x = rng.standard_normal((b, t, block.audio_dim), dtype=np.float32)  # (B, T, Da)
        mask = np.ones((b, t), bool)
        mask[1:, t // 2 + 1 :] = False
        with torch.no_grad():
            want = torch_model.thinking(torch.from_numpy(x), torch.from_numpy(mask))
        got = block(torch.from_numpy(x), torch.from_numpy(mask))  # torch in, torch out
        assert isinstance(got, torch.Tensor) and got.shape == (b, block.num_queries, block.out_dim)
        assert float((got - want).abs().max()) <= 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_bundle_carries_the_two_parts_with_shared_weights(saved_models, bundles, family, tmp_path):
    """thinking_frames.onnx + thinking_window.onnx beside thinking.onnx, all three reading their weights from the
    bundle's coat.safetensors (no copy of them; before: a 9.5 MB thinking.weights in coat-tiny), their parity
    recorded, and the parts matching torch's two parts and its forward at any batch and length."""
    import onnx

    from edge_coat.export.onnx_export import export_thinking

    torch_model, _ = saved_models[family]
    manifest, folder = bundles[family]
    files = {f.path: f.size for f in manifest.files}
    parts = ("thinking.onnx", "thinking_frames.onnx", "thinking_window.onnx")
    assert set(parts) <= set(files) and "thinking.weights" not in files  # nothing left for it to hold
    alone = export_thinking(torch_model.thinking, tmp_path / "thinking.onnx").stat().st_size
    assert files["thinking.onnx"] < alone  # the same graph without its weights
    for part in parts:
        graph = onnx.load(str(folder / part), load_external_data=False).graph
        external = {e.value for t in graph.initializer for e in t.external_data if e.key == "location"}
        assert external == {"coat.safetensors"}, part
        assert not [t.name for t in graph.initializer  # no float weight stored inline
                    if t.data_type == onnx.TensorProto.FLOAT and len(t.raw_data) >= 1024], part
    record = next(r for r in manifest.parity if r.component == "thinking_split")
    assert record.file == "thinking_window.onnx" and 0 <= record.max_abs_diff <= 1e-4
    assert {c.source for c in record.cases} == {"random", "synthetic"}
    block = OnnxThinkingBlock(folder / "thinking.onnx", CPU)
    assert block.can_split and block.frame_dim == torch_model.thinking.frame_dim
    rng = np.random.default_rng(8)
    for b, t in [(1, 1), (7, 25), (3, 250)]:
        x = torch.from_numpy(rng.standard_normal((b, t, block.audio_dim), dtype=np.float32))  # (B, T, Da)
        mask = torch.ones(b, t, dtype=torch.bool)
        mask[1:, t // 3 + 1:] = False
        with torch.no_grad():
            frames = torch_model.thinking.frame_features(x)
            want = torch_model.thinking(x, mask)
        got_frames = block.frame_features(x)
        assert got_frames.shape == (b, t, block.frame_dim)
        assert float((got_frames - frames).abs().max()) <= 1e-4
        assert float((block.from_frames(got_frames, mask) - want).abs().max()) <= 1e-4
    with pytest.raises(ValueError, match=rf"frames: expected shape \(B, T, {block.frame_dim}\), got \(1, 5, 3\)"):
        block.from_frames(np.zeros((1, 5, 3), np.float32), np.ones((1, 5), bool))
    with pytest.raises(ValueError, match=r"windows \[0\] have no valid frame"):
        block.from_frames(np.zeros((1, 5, block.frame_dim), np.float32), np.zeros((1, 5), bool))


@pytest.mark.parametrize("name", ["coat.safetensors", "model.safetensors"])
def test_a_modified_weights_file_the_graphs_read_is_refused(bundles, tmp_path, name):
    flipped = shutil.copytree(bundles["qwen2_audio"][1], tmp_path / "flipped")
    data = bytearray((flipped / name).read_bytes())
    data[len(data) // 3] ^= 0x40
    (flipped / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{name.replace('.', '[.]')}: modified"):
        load_bundle(flipped, runtime=CPU)


def test_sessions_are_shared_and_bad_input_is_refused(bundles):
    path = bundles["qwen2_audio"][1] / "thinking.onnx"
    first = OnnxThinkingBlock(path, CPU)
    n = session_count()
    second = OnnxThinkingBlock(path, CPU)
    assert session_count() == n and second._session is first._session
    with pytest.raises(ValueError, match=r"audio_embeds: expected shape \(B, T, 64\), got \(1, 5, 3\)"):
        first(np.zeros((1, 5, 3), np.float32), np.ones((1, 5), bool))
    with pytest.raises(ValueError, match=r"audio_mask: expected shape \(1, 5\)"):
        first(np.zeros((1, 5, 64), np.float32), np.ones((1, 4), bool))
    mask = np.ones((2, 5), bool)
    mask[1] = False
    with pytest.raises(ValueError, match=r"windows \[1\] have no valid frame"):
        first(np.zeros((2, 5, 64), np.float32), mask)


def test_cuda_provider_on_a_cpu_only_machine_is_a_clear_error(bundles):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(RuntimeError, match="provider 'cuda' requested"):
        OnnxThinkingBlock(bundles["qwen2_audio"][1] / "thinking.onnx", ThinkingRuntimeConfig(provider="cuda"))


def test_missing_onnxruntime_says_how_to_install(bundles, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(RuntimeError, match=r"needs onnxruntime.*edge-coat\[cpu\]"):
        OnnxThinkingBlock(bundles["qwen2_audio"][1] / "thinking.onnx", CPU)


def test_loading_refuses_a_flipped_byte_and_a_truncated_file(bundles, tmp_path):
    src = bundles["audioflamingo3"][1]
    flipped = shutil.copytree(src, tmp_path / "flipped")
    data = bytearray((flipped / "thinking.onnx").read_bytes())
    data[len(data) // 2] ^= 0x40
    (flipped / "thinking.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"thinking\.onnx: modified"):
        load_bundle(flipped, runtime=CPU)

    cut = shutil.copytree(src, tmp_path / "cut")
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(BundleError, match=r"model\.safetensors: truncated"):
        load_bundle(cut, runtime=CPU)


def test_loading_works_with_networking_disabled(bundles, no_network):
    import socket

    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 9))  # the guard is in place
    model = load_bundle(bundles["qwen2_5_omni"][1], runtime=CPU)
    result = model.score_task(_waves(5, seconds=(2.0,)), "anomaly")
    assert result.probs.shape == (1, 2) and abs(float(result.probs.sum()) - 1) < 1e-5


def test_torch_backend_switch_keeps_the_torch_block(bundles):
    model = load_bundle(bundles["qwen2_audio"][1], runtime=ThinkingRuntimeConfig(backend="torch"))
    assert not isinstance(model.thinking, OnnxThinkingBlock)
    assert runtime_status(model) == {"quantization": "fp32", "thinking": "torch cpu", "encoder": "onnxruntime CPU",
                                     "family": "qwen2_audio"}


def test_graph_from_another_model_is_refused(saved_models, bundles):
    from edge_coat.model.tiny import tiny_coat_model

    other = tiny_coat_model("qwen2_audio", num_thinking=6)
    with pytest.raises(ValueError, match=r"graph has \(Da, K, D\) = \(64, 4, 64\).*\(64, 6, 64\)"):
        attach_onnx_thinking(other, bundles["qwen2_audio"][1] / "thinking.onnx", CPU)


@pytest.mark.slow
def test_failed_parity_writes_nothing(saved_models, tmp_path):
    _, src = saved_models["qwen2_audio"]
    out = tmp_path / "never"
    with pytest.raises(ParityError, match="differs from torch"):
        export_bundle(src, out, license="Apache-2.0", tolerance=1e-12)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left behind


def test_parity_on_real_recorded_windows(saved_models, bundles, shared_data):
    torch_model, _ = saved_models["qwen2_audio"]
    block = OnnxThinkingBlock(bundles["qwen2_audio"][1] / "thinking.onnx", CPU)
    waves = load_real_waves(shared_data / "ravdess", 3, torch_model.max_seconds)
    waves += load_real_waves(shared_data / "urbansound8k", 2, torch_model.max_seconds)
    inputs = [audio_inputs(torch_model, waves, "real"), audio_inputs(torch_model, synthetic_waves(), "synthetic")]
    record = check_parity(torch_model.thinking, block, inputs)
    assert [c.batch for c in record.cases] == [5, 3]
    assert record.max_abs_diff <= 1e-4


@pytest.mark.parametrize("slot_time", [False, True])
def test_a_thinking_block_with_the_statistics_summary_exports_with_dynamic_axes(tmp_path, slot_time):
    """The summary (masked mean and std over time) and the slots' time bias (computed from the valid length)
    keep batch and time dynamic in the graph."""
    from edge_coat.export.onnx_export import export_thinking
    from edge_coat.model import ThinkingBlock

    torch.manual_seed(3)
    block = ThinkingBlock(audio_dim=24, out_dim=32, num_queries=4, dim=16, layers=2, heads=4, summary=True,
                          slot_time=slot_time).eval()
    onnx_block = OnnxThinkingBlock(export_thinking(block, tmp_path / "thinking.onnx"), CPU)
    rng = np.random.default_rng(5)
    for b, t in [(1, 1), (3, 50), (2, 251)]:
        x = rng.standard_normal((b, t, 24), dtype=np.float32)
        mask = np.ones((b, t), bool)
        mask[1:, t // 2 + 1:] = False
        with torch.no_grad():
            want = block(torch.from_numpy(x), torch.from_numpy(mask))
        got = onnx_block(torch.from_numpy(x), torch.from_numpy(mask))
        assert float((got - want).abs().max()) <= 1e-4


def test_a_slot_time_block_exports_its_two_parts_with_parity(tmp_path):
    """The per-frame graph (cached per chunk by the model stage) and the per-window graph, which computes the slots'
    time bias from the window's valid length, compose to the torch block's output."""
    from edge_coat.export.onnx_export import export_thinking, export_thinking_parts
    from edge_coat.model import ThinkingBlock

    torch.manual_seed(4)
    block = ThinkingBlock(audio_dim=24, out_dim=32, num_queries=4, dim=16, layers=2, heads=4, summary=True,
                          summary_frame_mlp=False, slot_time=True).eval()
    export_thinking(block, tmp_path / "thinking.onnx")
    export_thinking_parts(block, tmp_path)
    onnx_block = OnnxThinkingBlock(tmp_path / "thinking.onnx", CPU)
    assert onnx_block.can_split
    rng = np.random.default_rng(6)
    for b, t in [(1, 3), (3, 50), (2, 251)]:
        x = torch.from_numpy(rng.standard_normal((b, t, 24), dtype=np.float32))
        mask = torch.ones((b, t), dtype=torch.bool)
        mask[1:, t // 3 + 1:] = False
        with torch.no_grad():
            want = block(x, mask)
        got = onnx_block.from_frames(onnx_block.frame_features(x), mask)
        assert float((got - want).abs().max()) <= 1e-4


def test_a_missing_license_is_refused_before_any_export_work(saved_models, tmp_path, monkeypatch):
    """An unlicensed source without --license fails at once (the export and parity checks take minutes on a real
    model), and writes nothing."""
    from edge_coat.model.coat import CoatModel

    def never(*a, **k):
        raise AssertionError("the model was loaded before the license was checked")

    monkeypatch.setattr(CoatModel, "from_pretrained", never)
    _, src = saved_models["qwen2_audio"]
    with pytest.raises(ValueError, match="a bundle needs a license"):
        export_bundle(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
