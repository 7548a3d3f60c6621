"""link_to_safetensors: graphs read their weights from the bundle's safetensors files, with the same outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import save_file

from edge_coat.export.onnx_export import link_to_safetensors, safetensors_layout, save_onnx, share_weights
from edge_coat.model.runtime import save_materialized


def _graph(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.GELU(), torch.nn.Linear(48, 16)).eval()
    with torch.no_grad():  # float16 values, as coat-tiny stores them and computes them in float32
        for p in net.parameters():
            p.copy_(p.half().float())
    x = torch.randn(3, 64)
    path = save_onnx(net, (x,), tmp_path / "net.onnx", input_names=["x"], output_names=["y"],
                     dynamic_shapes={"input": {0: torch.export.Dim("batch", min=1)}})
    return net, path


def _run(path, x):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_linked_graph_reads_the_stored_float16_weights_and_gives_the_same_outputs(tmp_path):
    net, path = _graph(tmp_path)
    x = np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32)
    want = _run(path, x)
    size = path.stat().st_size
    # the first layer's weight and bias are stored (float16); the second layer's are not
    save_file({"a.weight": net[0].weight.detach().half(), "a.bias": net[0].bias.detach().half(),
               "other": torch.randn(48, 16).half()}, str(tmp_path / "model.safetensors"))
    assert link_to_safetensors([path], [tmp_path / "model.safetensors"], min_bytes=64) == 2
    np.testing.assert_array_equal(_run(path, x), want)  # bit-identical: the same float32 numbers
    graph = onnx.load(str(path), load_external_data=False).graph
    stored = {t.name: t for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
    assert len(stored) == 2 and all(t.data_type == onnx.TensorProto.FLOAT16 for t in stored.values())
    layout = safetensors_layout(tmp_path / "model.safetensors")
    offsets = {int(e.value) for t in stored.values() for e in t.external_data if e.key == "offset"}
    assert offsets == {layout["a.weight"][2], layout["a.bias"][2]}
    assert path.stat().st_size < size - 64 * 48 * 4 + 1024  # the first layer's float32 weight is gone
    # the second layer's weight stays in the graph; share_weights moves it out, and the output stays
    assert share_weights([path], "rest.weights", min_bytes=64).stat().st_size == (48 * 16 + 16) * 4
    np.testing.assert_array_equal(_run(path, x), want)
    # and a self-contained copy (what int8 quantization reads) gives the same output again
    np.testing.assert_array_equal(_run(save_materialized(path, tmp_path / "alone.onnx"), x), want)


def test_values_that_differ_are_not_linked(tmp_path):
    net, path = _graph(tmp_path)
    w = net[0].weight.detach().half().clone()
    w[0, 0] += 1
    save_file({"a.weight": w}, str(tmp_path / "model.safetensors"))
    assert link_to_safetensors([path], [tmp_path / "model.safetensors"], min_bytes=64) == 0
    assert share_weights([path], "none.weights", min_bytes=1 << 30) is None
    assert not (tmp_path / "none.weights").exists()


def test_a_broken_safetensors_header_is_an_error(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError):
        safetensors_layout(tmp_path / "bad.safetensors")
