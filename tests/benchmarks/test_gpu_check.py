"""bench/speed/gpu_check.py: the tiny CPU run end to end, and that one failing step keeps the others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tiny_run_on_cpu_writes_every_stage(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, "-m", "bench.speed.gpu_check", "--tiny", "--out", str(out), "--batches", "2",
                           "--repeats", "1", "--decode-tokens", "2"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["errors"] == [] and report["tiny"] is True and report["quantization"] == "fp32"
    assert all(s["ok"] for s in report["steps"].values())
    assert report["steps"]["thinking_session"]["parity_max_abs_diff"] <= 1e-4
    site = report["steps"]["site_path"]
    assert site["thinking"] == "onnxruntime CPU" and site["max_prob_diff_vs_fp32_torch"] <= 1e-5
    assert [r["batch"] for r in report["results"]] == [2]
    for row in report["results"]:
        for stage in ("encoder", "thinking_onnx", "thinking_torch"):
            assert row[stage]["median_ms"] > 0
        w, wo = row["with_thinking"], row["without_thinking"]
        assert w["sequence_length"] - wo["sequence_length"] == 4 + 2  # K thinking vectors + open/close
        assert w["prefill"]["median_ms"] > 0 and wo["decode_per_token"]["tokens"] == 2
    assert "prefill +T" in proc.stdout


def test_a_failing_step_is_recorded_and_the_rest_still_runs(tmp_path):
    from bench.speed import gpu_check

    path = tmp_path / "r.json"
    report = gpu_check.Report(path, budget_s=60.0)

    def out_of_memory():
        raise MemoryError("CUDA out of memory (stand-in raised by this test)")

    assert report.step("batch_32", out_of_memory) is None
    assert report.step("batch_1", lambda: {"encoder_ms": 1.5}) == {"encoder_ms": 1.5}
    saved = json.loads(path.read_text())  # written after each step
    assert saved["steps"]["batch_32"]["ok"] is False and "out of memory" in saved["steps"]["batch_32"]["error"]
    assert saved["steps"]["batch_1"] == {"ok": True, "seconds": saved["steps"]["batch_1"]["seconds"], "encoder_ms": 1.5}
    assert saved["errors"][0]["step"] == "batch_32"

    spent = gpu_check.Report(tmp_path / "s.json", budget_s=0.0)
    assert spent.step("batch_8", lambda: {"x": 1}) is None
    assert "budget" in json.loads((tmp_path / "s.json").read_text())["steps"]["batch_8"]["skipped"]
