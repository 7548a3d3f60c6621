"""bench_readings end to end on short windows: both paths run, agree on the generated windows, JSON written."""

from __future__ import annotations

import json

from bench.speed import bench_readings


def test_bench_readings_writes_both_paths_and_their_agreement(tmp_path):
    out = tmp_path / "readings.json"
    assert bench_readings.main(["--seconds", "1.5", "--batches", "1", "4", "--rounds", "1", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [(r["window_s"], r["batch"]) for r in data["rows"]] == [(1.5, 1), (1.5, 4)]
    for row in data["rows"]:
        assert row["old_ms_per_window"]["n"] == 1 and row["new_ms_per_window"]["median"] > 0
        assert row["ratio_old_over_new"]["median"] > 0
        assert row["voiced_ratio_diff_max"] < 0.1
    assert data["rows"][1]["pitch_rel_diff_max"] < 0.02  # 4 voiced windows, 90-210 Hz


def test_bench_readings_stream_times_the_pitch_cache_on_and_off(tmp_path):
    """``--stream``: the per-stream pitch cache against whole windows on the same batches, with the same readings
    (no timing is asserted: the ratio depends on the machine)."""
    out = tmp_path / "stream.json"
    args = ["--stream", "--window", "3", "--hop", "1", "--hops", "2", "--batches", "2", "--rounds", "1",
            "--out", str(out)]
    assert bench_readings.main(args) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["streams"] == 2 and row["on_ms_per_window"]["n"] == 1 and row["ratio_off_over_on"]["median"] > 0
    assert row["reused_share"] > 0.3  # 3 s windows, 1 s hop: 2/3 of each window's inner frames
    assert row["pitch_diff_max_hz"] < 1e-3 and row["voiced_ratio_diff_max"] < 1e-9
