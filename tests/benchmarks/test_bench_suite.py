"""The benchmark suite's own machinery: run_all (real subprocesses: a bench that works, one that fails,
one that hangs, one that leaves a stale file), the streams search, the summaries, and one real-time
level of bench_streams through the real batch queue and model stage on a tiny model."""

from __future__ import annotations

import json
import math
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bench import common, run_all
from bench.speed import bench_streams


def _script(path: Path, body: str) -> str:
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_run_all_records_each_bench_and_goes_on_past_failures(tmp_path):
    ok = _script(tmp_path / "ok.py", """
        import json, sys
        out = sys.argv[sys.argv.index("--out") + 1]
        json.dump({"figure": 42, "quick": "--small" in sys.argv}, open(out, "w"))
    """)
    bad = _script(tmp_path / "bad.py", """
        import sys
        print("model folder missing", file=sys.stderr)
        sys.exit(3)
    """)
    hang = _script(tmp_path / "hang.py", "import time\ntime.sleep(3600)\n")
    silent = _script(tmp_path / "silent.py", "print('forgot to write my JSON')\n")
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    (out_dir / "silent.json").write_text('{"stale": true}')  # from an earlier run: must not count
    benches = (
        run_all.Bench("bad", bad, what="fails"),
        run_all.Bench("ok", ok, full=("--big",), quick=("--small",), what="works"),
        run_all.Bench("hang", hang, what="hangs"),
        run_all.Bench("silent", silent, what="exits 0 without JSON"),
        run_all.Bench("gpu", ok, needs_gpu=True, what="needs a GPU"),
    )
    t = time.monotonic()
    rc = run_all.main(["--quick", "--timeout", "2", "--out-dir", str(out_dir)], benches=benches)
    # not a speed claim: the hung bench sleeps an hour, so finishing at all proves --timeout killed it
    # (the bound is loose enough for a loaded machine)
    assert time.monotonic() - t < 600
    assert rc == 1  # something failed

    data = json.loads((out_dir / "all.json").read_text())
    recs = {r["name"]: r for r in data["benches"]}
    assert [r["name"] for r in data["benches"]] == ["bad", "ok", "hang", "silent", "gpu"]
    assert recs["bad"]["status"] == "failed"
    assert "exit 3" in recs["bad"]["reason"] and "model folder missing" in recs["bad"]["reason"]
    assert recs["ok"]["status"] == "ok" and recs["ok"]["result"] == {"figure": 42, "quick": True}
    assert "--small" in recs["ok"]["command"] and "--big" not in recs["ok"]["command"]
    assert recs["hang"]["status"] == "failed" and "timed out" in recs["hang"]["reason"]
    assert recs["silent"]["status"] == "failed" and "no readable JSON" in recs["silent"]["reason"]
    if not run_all.has_cuda():
        assert recs["gpu"]["status"] == "skipped" and "CUDA" in recs["gpu"]["reason"]
    for r in data["benches"]:
        assert len(r["load_before"]) == 3 and len(r["load_after"]) == 3
    assert data["machine_start"]["nproc"] >= 1 and data["machine_start"]["cpu"]

    table = (out_dir / "all.md").read_text()
    for name in recs:
        assert f"| {name} |" in table
    assert "timed out" in table


def test_headline_of_a_changed_json_is_a_pointer_not_a_crash():
    assert run_all.headline("streams", {"streams": "not what it expects"}) == "(figures: see its JSON)"
    assert run_all.headline("streams", None) == ""
    assert run_all.headline("no-such-bench", {"x": 1}) == ""


@pytest.mark.parametrize("cap,start", [(0, 4), (1, 1), (5, 64), (37, 4), (100, 3)])
def test_search_finds_the_highest_passing_level(cap, start):
    res = bench_streams.search(lambda n: n <= cap, start, budget_s=60, max_streams=10_000, resolution=0.0)
    assert res["streams"] == cap
    assert res["first_failing"] == cap + 1
    assert res["resolution_reached"] and not res["lower_bound_only"]
    assert all(passed == (n <= cap) for n, passed in res["tried"])


def test_search_with_a_resolution_stays_below_the_capacity_and_within_it():
    res = bench_streams.search(lambda n: n <= 37, 4, budget_s=60, max_streams=10_000, resolution=0.1)
    assert 37 - max(1, int(37 * 0.1)) <= res["streams"] <= 37
    assert len(res["tried"]) < 12


def test_search_is_bounded_by_max_streams_and_budget():
    res = bench_streams.search(lambda n: True, 1, budget_s=60, max_streams=50, resolution=0.1)
    assert res["lower_bound_only"] and res["streams"] == 32 and res["first_failing"] is None

    def slow(n):
        time.sleep(0.05)
        return n <= 1000

    res = bench_streams.search(slow, 1, budget_s=0.12, max_streams=10_000, resolution=0.0)
    assert not res["resolution_reached"]
    assert len(res["tried"]) <= 4


def test_summary_median_spread_and_format():
    s = common.summary([3.0, 1.0, 2.0, None, float("nan")])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 3.0, 3)
    assert s["iqr"] == pytest.approx(1.0)
    assert common.fmt(s, 1) == "2.0 [1.0..3.0]"
    assert common.summary([])["median"] is None and common.fmt(common.summary([])) == "-"


@pytest.mark.slow  # ~10-17 s on the shared VM: transformers import and a tiny model build
def test_a_level_with_a_growing_backlog_is_not_real_time():
    """Every window within a hop is not enough: a lag that grows every hop is a stage over its capacity."""
    steady = {1: [0.20, 0.31], 2: [0.25, 0.33], 3: [0.22, 0.30], 4: [0.21, 0.32]}
    building = {1: [0.20, 0.30], 2: [0.30, 0.55], 3: [0.40, 0.80], 4: [0.60, 1.05]}
    assert abs(bench_streams.backlog_growth(steady)) < 0.01
    assert bench_streams.backlog_growth(building) == pytest.approx(0.25)  # (1.05 - 0.30) / 3 hops
    assert bench_streams.backlog_growth({1: [0.5]}) == 0.0
    hop = 2.0  # both are "on time" (every lag < 1 hop); only the steady one is sustained
    assert bench_streams.backlog_growth(steady) <= bench_streams.MAX_GROWTH * hop
    assert bench_streams.backlog_growth(building) > bench_streams.MAX_GROWTH * hop


def test_one_real_time_level_through_the_batch_queue_and_model_stage(tmp_path):
    from edge_coat.config import ModelSection
    from edge_coat.model import tiny_coat_model
    from edge_coat.worker.coat_stage import CoatStage

    model_dir = tiny_coat_model("qwen2_audio", seed=0, max_seconds=2).save_pretrained(tmp_path / "m")
    stage = CoatStage(ModelSection(path=model_dir, readings=[], torch_threads=1,
                                   thinking={"backend": "torch", "verify_bundle": False}))
    pool = bench_streams.audio_pool(4.0, n=2)
    streams = bench_streams.Streams(pool, 2 * 16000, 8000, ("anomaly",), hops=2)
    before = stage.stats()
    r = bench_streams.run_level(stage, 3, 4, hop_s=0.5, hops=2, max_wait_s=0.02, streams=streams, seed=0)
    assert r["expected"] == 6
    assert r["windows"] + r["unfinished"] == 6 and not r["errors"]
    assert r["on_time"] == (r["late"] == 0 and r["unfinished"] == 0 and r["sustained"])
    assert r["sustained"] == (r["backlog_growth_s_per_hop"] <= bench_streams.MAX_GROWTH * 0.5)
    assert r["latency_p50_s"] > 0 and 1.0 <= r["mean_batch"] <= 4.0
    assert stage.stats()["windows"] - before["windows"] == r["windows"] + r["warmup_windows"]
    assert r["warmup_windows"] == 3  # the streams were running when the clock started
    shares = bench_streams.stage_shares(before, stage.stats())
    assert math.isclose(sum(shares.values()), 1.0, abs_tol=0.01) and all(0 <= v <= 1 for v in shares.values())
    assert np.all([w.dtype == np.float32 for w in pool])


def test_cache_parity_streams_and_window_labels():
    """bench/accuracy/cache_parity: clips concatenated into streams, windows labelled by the clip covering
    most of them, the streams' k-th windows batched together."""
    from types import SimpleNamespace

    from bench.accuracy import cache_parity

    clips = [SimpleNamespace(label=lab) for lab in ("a", "b", "c", "d")]
    audio = [np.full(n * 16000, i, np.float32) for i, n in enumerate((3, 4, 3, 2))]
    streams = cache_parity.build_streams(clips, audio, stream_seconds=6.0)
    assert [s.size for s, _ in streams] == [7 * 16000, 5 * 16000]
    assert streams[0][1] == [(0, 48000, "a"), (48000, 112000, "b")]
    windows, labels = cache_parity.windows_of(streams, 4 * 16000, 16000, "emotion")
    assert [(w.stream_id, w.index) for w in windows] == [("dev0", 0), ("dev1", 0), ("dev0", 1), ("dev1", 1),
                                                         ("dev0", 2), ("dev0", 3)]
    # dev0 window 1 (1-5 s) holds 2 s of a and 2 s of b: a tie goes to the earlier clip; window 2 is all b
    assert labels == ["a", "c", "a", "c", "b", "b"]
    assert all(w.samples.size == 64000 and w.start_sample == w.index * 16000 for w in windows)


def test_bench_thinking_cache_runs_both_stages_on_the_shipped_bundle(tmp_path):
    """The per-part profile with the thinking cache on and off (issue 14) on the shipped coat-tiny, whose
    bundle carries the thinking block's two part graphs: both stages score the same windows alike."""
    from bench.speed import bench_thinking_cache

    if not (common.EMBEDDED / "thinking_window.onnx").is_file():
        pytest.skip("models/coat-tiny has no thinking_window.onnx")
    out = tmp_path / "btc.json"
    rc = bench_thinking_cache.main(["--model", str(common.EMBEDDED), "--window", "4", "--hop", "2", "--streams", "2",
                                    "--rounds", "2", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["stage"]["thinking_cache_on"] and res["max_abs_diff"]["thinking"] <= 1e-4
    assert res["max_abs_diff"]["label_probs"] <= 1e-4
    assert res["per_window_ms"]["split"]["thinking"]["n"] == 2 and res["ratio_whole_over_split"]["total"]["n"] == 2
    assert res["encoder_cache"]["hits"] > 0 and res["frames_graph_ms"]["chunks"]["n"] == 20
