"""CoatStage on a real (tiny, random) CoAT model: batching per task, latents, readings, bad windows."""

from __future__ import annotations

import numpy as np
import pytest

from edge_coat.config import ModelSection
from edge_coat.messages import SAMPLE_RATE, Window
from edge_coat.worker.coat_stage import STAGES, CoatStage, LatencyHistogram
from edge_coat.worker.gate import rms_dbfs


def window(samples: np.ndarray, tasks: tuple[str, ...], index: int = 0, stream: str = "s1") -> Window:
    return Window(stream_id=stream, index=index, start_sample=index * 8000, start_ts=100.0 + index,
                  end_ts=100.0 + index + len(samples) / SAMPLE_RATE, samples=samples, rms_dbfs=rms_dbfs(samples),
                  tasks=tasks)


def tone(seconds: float, freq: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def stage(tiny_model_dir):
    cfg = ModelSection(path=tiny_model_dir, thinking={"backend": "torch", "verify_bundle": False}, torch_threads=1)
    return CoatStage(cfg)


def test_results_per_window_and_task(stage):
    rng = np.random.default_rng(0)
    noise = (0.2 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
    windows = [
        window(tone(1.0, 440.0), ("anomaly",), 0),
        window(noise, ("anomaly", "emotion"), 1),
        window(tone(1.5, 220.0), ("emotion",), 2),
        window(tone(1.0, 330.0), ("no-such-task",), 3),
        window(tone(31.0, 440.0), ("anomaly",), 4),  # longer than the 30 s the model takes in 5 s chunks
        window(np.full(SAMPLE_RATE, np.nan, np.float32), ("anomaly",), 5),
    ]
    results = stage.process(windows)
    assert [r.window.index for r in results] == [0, 1, 2, 3, 4, 5]
    assert [sorted(r.label_probs) for r in results] == [["anomaly"], ["anomaly", "emotion"], ["emotion"], [], [], []]
    for r in results[:3]:
        for task, probs in r.label_probs.items():
            assert list(probs) == list(stage.tasks[task].labels)
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert r.thinking.shape == (4, 64) and r.thinking.dtype == np.float32  # (K, D) of the tiny model
        assert r.model_name == tiny_model_dir_name(stage) and r.model_version == "unversioned"
        assert set(r.latency_ms) == set(STAGES) and r.latency_ms["total"] >= r.latency_ms["llm"] >= 0
    assert all(r.thinking is None and r.label_probs == {} for r in results[3:])
    # loudness always; YIN pitch finds the tone
    assert results[0].readings["loudness_dbfs"] == pytest.approx(rms_dbfs(windows[0].samples))
    assert results[0].readings["pitch_hz"] == pytest.approx(440.0, rel=0.03)
    assert results[2].readings["pitch_hz"] == pytest.approx(220.0, rel=0.03)
    stats = stage.stats()
    assert stats["windows_invalid"] == 2 and stats["unknown_task_windows"] == 1
    assert stats["latency_s"]["total"]["count"] >= 1


def test_pitch_readings_per_window_in_a_batch(stage):
    """The stage reads pitch for the whole batch at once; each window still gets its own reading, a
    silent window reads as unvoiced, and a window the model refuses still gets its loudness."""
    silent = np.zeros(SAMPLE_RATE, np.float32)
    windows = [window(tone(1.0, 165.0), ("anomaly",), 0), window(silent, ("anomaly",), 1),
               window(tone(2.0, 330.0), ("anomaly",), 2), window(np.zeros(100, np.float32), ("anomaly",), 3)]
    results = stage.process(windows)
    assert results[0].readings["pitch_hz"] == pytest.approx(165.0, rel=0.02)
    assert results[2].readings["pitch_hz"] == pytest.approx(330.0, rel=0.02)
    assert results[0].readings["voiced_ratio"] > 0.9
    assert results[1].readings["pitch_hz"] == 0.0 and results[1].readings["voiced_ratio"] == 0.0
    assert "pitch_hz" not in results[3].readings and "loudness_dbfs" in results[3].readings


def tiny_model_dir_name(stage) -> str:
    return stage.cfg.path.name


def test_thinking_latents_do_not_depend_on_the_task_or_the_batch(stage):
    """The thinking positions precede the prompt, so the latents of a window analysed for two tasks are
    the ones a single-task call gives, and a window's latents do not change with its batch-mates."""
    rng = np.random.default_rng(1)
    a = (0.2 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
    b = tone(1.0, 523.0)
    both = stage.process([window(a, ("anomaly", "emotion"), 0), window(b, ("anomaly",), 1)])
    alone = stage.process([window(a, ("emotion",), 0)])
    np.testing.assert_allclose(both[0].thinking, alone[0].thinking, atol=1e-4)
    assert not np.allclose(both[0].thinking, both[1].thinking, atol=1e-3)  # different audio, different latents


def test_info_reports_quantization_and_thinking_runtime(stage):
    info = stage.info()
    assert info["quantization"] == "fp32"
    assert info["thinking_runtime"] == "torch" and info["thinking"] == "torch cpu"
    assert info["family"] == "qwen2_audio" and info["max_seconds"] == 5.0
    assert sorted(info["tasks"]) == ["anomaly", "emotion"]


def test_check_window_names_problems(stage):
    assert stage.check_window(2.0, ["anomaly"], "worker.default_stream") == []
    assert stage.check_window(10.0, ["anomaly"], "worker.default_stream") == []  # two 5 s encoder chunks
    got = stage.check_window(40.0, ["anomaly", "speech"], "worker.streams.x")
    assert got[0].startswith("worker.streams.x.window_s: 40.0 s is longer than the model takes (30 s, in 5 s "
                             "encoder chunks)")
    assert got[1].startswith("worker.streams.x.tasks.speech: the model has no task 'speech'")


def test_int8_quantization_mode_is_reported(tiny_model_dir):
    cfg = ModelSection(path=tiny_model_dir, quantization="int8", readings=[],
                       thinking={"backend": "torch", "verify_bundle": False})
    stage = CoatStage(cfg)
    assert stage.info()["quantization"] == "int8"
    r = stage.process([window(tone(1.0, 440.0), ("anomaly",))])[0]
    assert sum(r.label_probs["anomaly"].values()) == pytest.approx(1.0, abs=1e-5)
    assert "pitch_hz" not in r.readings  # readings: [] turns the pitch expert off


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="model.path: expected a model folder"):
        CoatStage(ModelSection(path=tmp_path / "nope"))


def test_latency_histogram_is_cumulative():
    h = LatencyHistogram((0.01, 0.1, 1.0))
    for v in (0.005, 0.05, 0.05, 5.0):
        h.observe(v)
    snap = h.snapshot()
    assert snap["cumulative"] == [1, 3, 3, 4] and snap["count"] == 4
    assert snap["sum"] == pytest.approx(5.105)


@pytest.mark.slow  # the ONNX export and its parity check take ~20 s here
def test_verified_bundle_runs_the_thinking_block_in_onnxruntime(tiny_model_dir, stage, tmp_path):
    """The production path: an exported bundle (manifest + thinking.onnx) loads verified, the stage
    reports onnxruntime and its provider, and scores like the torch block."""
    from edge_coat.export.bundle import export_bundle

    bundle = tmp_path / "bundle"
    export_bundle(tiny_model_dir, bundle, name="coat-test", version="0.1.0", license="Apache-2.0")
    onnx_stage = CoatStage(ModelSection(path=bundle, readings=[]))  # defaults: onnx backend, verified
    info = onnx_stage.info()
    assert (info["name"], info["version"]) == ("coat-test", "0.1.0")
    assert info["thinking_runtime"] == "onnx" and info["thinking"] == "onnxruntime CPU"
    assert info["providers"] == ["CPUExecutionProvider"]
    w = [window(tone(1.0, 440.0), ("anomaly", "emotion"))]
    a, b = onnx_stage.process(w)[0], stage.process(w)[0]
    np.testing.assert_allclose(a.thinking, b.thinking, atol=1e-3)
    for task in ("anomaly", "emotion"):
        for label, p in a.label_probs[task].items():
            assert p == pytest.approx(b.label_probs[task][label], abs=1e-3)
    assert a.model_name == "coat-test" and a.model_version == "0.1.0"
