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
