"""bench/tuning/anomaly_threshold.py's measurements on small generated audio: a clip's episode starts per threshold
rule, and the dev folder's clip-level counts."""

from __future__ import annotations


from bench.tuning import anomaly_threshold


def test_a_clip_with_a_fault_gives_delays_and_false_alarms_per_rule():
    from edge_coat.data.factory import render_clip

    wave = render_clip("fan", seed=3, duration_s=24.0, fault="squeal", onset_s=18.0, severity=0.8).wave
    out = anomaly_threshold.run_clip(wave, (1.0, 0.5, 12.0), 18.0, 0.8)
    assert out["normal_s"] == 6.0 and out["severity"] == 0.8 and len(out["ratio_median"]) > 0
    assert set(out["rules"]) == {f"p{p:g} z{z:g} r{r:g}" for p, z, r in anomaly_threshold.RULES}
    chosen = out["rules"]["p99 z0 r1.4"]
    assert chosen["false_alarms"] == 0 and 0.0 < chosen["delay_s"] <= 3.0  # a loud squeal, caught at once


def test_dev_folder_counts_each_test_clip_once_per_rule(tmp_path):
    from edge_coat.data.factory import write_dataset

    write_dataset(tmp_path, 24, seed=3, duration_s=1.0, machines=("pump",), faults=("squeal",),
                  severity_range=(0.9, 1.0), onset_range=(0.0, 0.1))
    counts = anomaly_threshold.dev_clips(tmp_path)
    assert len(counts) == len(anomaly_threshold.RULES)
    for rule, row in counts.items():
        assert set(row) == {"normal", "squeal"}, rule
        assert all(0 <= above <= n for above, n in row.values())
    assert counts["p99 z0 r1.4"]["squeal"][0] >= 1  # loud squeals from the start cross the raised threshold too
    sizes = {tuple(n for _, n in row.values()) for row in counts.values()}
    assert len(sizes) == 1  # the same test clips under every rule
