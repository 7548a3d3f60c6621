"""The model stage's per-stream baseline for relative readout tasks: each window of a stream is scored against the
statistics of its stream's last N distinct speech windows that ended before it began (``readout_context``), kept per
stream, the same however the windows are batched, dropped at the stream's end or a new capture run, and not kept at
all for a model without relative tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_coat.config import ModelSection
from edge_coat.messages import SAMPLE_RATE, EndOfStream, Window
from edge_coat.worker import coat_stage
from edge_coat.worker.coat_stage import CoatStage

from .streams import stream_windows

SR = SAMPLE_RATE
N = 3  # readout_baseline_windows


def tiny_relative(*, relative: bool = True, **overrides):
    """The tiny model with a random tower readout on its first task, relative to a stream baseline of N windows
    (absolute with ``relative=False``), scaled so its probabilities are far from saturated. Returns (model, task)."""
    from edge_coat.model import tiny_coat_model

    torch.set_num_threads(1)
    model = tiny_coat_model("qwen2_audio", seed=0, max_seconds=2, **overrides)
    model.set_readout_input("tower")
    task = sorted(model.config.tasks)[0]
    labels = list(reversed(model.config.tasks[task].labels))
    g = torch.Generator().manual_seed(0)
    dim = model.readout.feature_dim
    weight, bias = torch.randn(len(labels), dim, generator=g) * 0.5, torch.randn(len(labels), generator=g)
    center = torch.randn(dim, generator=g)
    model.readout.set_task(task, labels, weight, bias, center=center if relative else None)
    model.config.readout = {task: labels}
    model.config.readout_relative = model.readout.relative
    model.config.readout_baseline_windows = N
    assert model.readout.is_relative(task) == relative
    return model, task


def waves(n: int, seed: int) -> list[np.ndarray]:
    """n one-second waves of different loudness (so their statistics, and a baseline of them, differ)."""
    rng = np.random.default_rng(seed)
    return [(0.02 * (1 + (k % 4)) * rng.standard_normal(SR)).astype(np.float32) for k in range(n)]


def window(stream: str, k: int, wave: np.ndarray, task: str, speech_ratio: float | None = None) -> Window:
    """Window k of a stream (consecutive one-second windows, no overlap)."""
    return Window(stream_id=stream, index=k, start_sample=k * wave.size, start_ts=k * wave.size / SR,
                  end_ts=(k + 1) * wave.size / SR, samples=wave, speech_ratio=speech_ratio, tasks=(task,))


def stage_for(model, **section) -> CoatStage:
    return CoatStage(ModelSection(path="unused", readings=[], **section), model=model)


def got(stage: CoatStage, windows: list[Window], task: str, labels) -> np.ndarray:
    """The stage's probabilities (B, C), columns in ``labels`` order."""
    return np.array([[r.label_probs[task][label] for label in labels] for r in stage.process(windows)])


def features(model, task: str, wave: np.ndarray) -> np.ndarray:
    """The statistics (2F,) the readout reads of one wave (what its stream keeps)."""
    return model.score_tasks([wave], [task])[task].features[0]


def direct(model, task: str, wave: np.ndarray, context: list[np.ndarray]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The model's probabilities (C,) for one wave scored against the statistics of its stream's earlier windows."""
    ctx = np.stack(context[-N:]) if context else None
    res = model.score_tasks([wave], [task], readout_context=[ctx])[task]
    return res.probs[0], res.labels


@pytest.mark.parametrize("overrides", [{}, {"chunk_features": "chunk"}], ids=["whole_windows", "encoder_cache"])
def test_each_window_is_scored_against_its_streams_last_n_windows(overrides):
    model, task = tiny_relative(**overrides)
    stage = stage_for(model, encoder_cache={"thinking_frames": True})
    assert stage.info()["encoder_cache_on"] == bool(overrides)
    chunk = model.chunk_samples
    # overlapping windows of one stream, two encoder chunks long, one chunk apart; the loudness changes per chunk
    audio = np.concatenate(waves(7, seed=1)).reshape(7, SR)
    audio = np.concatenate([np.resize(a, chunk) for a in audio])
    ws = stream_windows(audio, length=2 * chunk, hop=chunk, tasks=(task,))
    assert len(ws) == 6
    feats = [features(model, task, w.samples) for w in ws]
    assert stage.stats()["baseline_streams"] == 0
    # windows 0, 2, 4 are kept (1, 3, 5 overlap the last one kept); a window's context is what ended before it began
    heard_before = [[], [], [0], [0], [0, 2], [0, 2]]
    for t, w in enumerate(ws):
        want, labels = direct(model, task, w.samples, [feats[k] for k in heard_before[t]])
        out = got(stage, [w], task, labels)[0]
        np.testing.assert_allclose(out, want, atol=1e-4)
        alone, _ = direct(model, task, w.samples, [])  # nothing heard: the training mean as the baseline
        if heard_before[t]:
            assert np.abs(out - alone).max() > 1e-3  # the baseline changed the answer
        else:
            np.testing.assert_allclose(out, alone, atol=1e-4)
    if overrides:
        assert stage.stats()["encoder_cache"]["hits"] > 0  # the tower's output came from cached chunks
    # the same stream again (a new run), all its windows in one batch: the same answers as one window per batch
    again = [Window(stream_id="s9", index=w.index, start_sample=w.start_sample, start_ts=w.start_ts, end_ts=w.end_ts,
                    samples=w.samples, tasks=w.tasks) for w in ws]
    batched = got(stage, again, task, labels)
    for t, w in enumerate(ws):
        want, _ = direct(model, task, w.samples, [feats[k] for k in heard_before[t]])
        np.testing.assert_allclose(batched[t], want, atol=1e-4)
    stage.end_stream(EndOfStream("s9", ts=0.0, reason="ended"))
    assert stage.stats()["baseline_streams"] == 1
    epoch, kept = stage._baselines["s1"]
    assert [(a, b) for a, b, _ in kept] == [(0, 2 * chunk), (2 * chunk, 4 * chunk), (4 * chunk, 6 * chunk)]
    np.testing.assert_allclose(np.stack([f for _, _, f in kept]), np.stack([feats[0], feats[2], feats[4]]), atol=1e-5)
    # more than N distinct windows: the last N only
    more = [window("s2", k, w, task) for k, w in enumerate(waves(N + 2, seed=11))]
    for w in more:
        stage.process([w])
    assert len(stage._baselines["s2"][1]) == N and stage._baselines["s2"][1][0][0] == 2 * SR


def test_interleaved_streams_keep_separate_baselines_and_a_batch_holds_the_earlier_windows_of_its_stream():
    model, task = tiny_relative()
    stage = stage_for(model)
    wa, wb = waves(5, seed=2), waves(5, seed=3)
    fa, fb = [features(model, task, w) for w in wa], [features(model, task, w) for w in wb]
    for t in range(5):  # a's and b's window t in one batch (b first), then b's alone half the time
        want_a, labels = direct(model, task, wa[t], fa[:t])
        want_b, _ = direct(model, task, wb[t], fb[:t])
        out = got(stage, [window("b", t, wb[t], task), window("a", t, wa[t], task)], task, labels)
        np.testing.assert_allclose(out, np.stack([want_b, want_a]), atol=1e-4)
    assert stage.stats()["baseline_streams"] == 2
    # two windows of one stream in one batch: the later one's baseline holds the earlier one, as across batches
    w2 = waves(3, seed=4)
    f2 = [features(model, task, w) for w in w2]
    want, labels = direct(model, task, w2[0], [])
    out = got(stage, [window("c", 0, w2[0], task), window("c", 1, w2[1], task)], task, labels)
    np.testing.assert_allclose(out, np.stack([want, direct(model, task, w2[1], f2[:1])[0]]), atol=1e-4)
    out = got(stage, [window("c", 2, w2[2], task)], task, labels)[0]
    np.testing.assert_allclose(out, direct(model, task, w2[2], f2[:2])[0], atol=1e-4)
    assert stage.stats()["baseline_streams"] == 3


def test_the_end_of_a_stream_drops_its_baseline():
    model, task = tiny_relative()
    stage = stage_for(model)
    ws = waves(4, seed=5)
    other = waves(1, seed=6)[0]
    for t in range(3):
        stage.process([window("s1", t, ws[t], task)])
    stage.process([window("s2", 0, other, task)])
    assert stage.stats()["baseline_streams"] == 2
    stage.end_stream(EndOfStream("s1", ts=3.0, reason="ended"))
    assert stage.stats()["baseline_streams"] == 1  # s2 keeps its own
    want, labels = direct(model, task, ws[3], [])  # as if nothing was heard
    np.testing.assert_allclose(got(stage, [window("s1", 3, ws[3], task)], task, labels)[0], want, atol=1e-4)
    heard, _ = direct(model, task, ws[3], [features(model, task, w) for w in ws[:3]])
    assert np.abs(want - heard).max() > 1e-3  # the dropped baseline would have changed it
    stage.end_stream(EndOfStream("s2", ts=1.0, reason="idle"))
    stage.end_stream(EndOfStream("never-seen", ts=0.0))
    assert stage.stats()["baseline_streams"] == 1  # s1's window 3 began a new baseline


def test_a_mostly_silent_window_is_scored_against_the_baseline_but_does_not_enter_it():
    model, task = tiny_relative()
    stage = stage_for(model)
    ws = waves(4, seed=7)
    feats = [features(model, task, w) for w in ws]
    ratios = [None, 0.1, 0.9, None]  # window 1: the VAD heard speech in a tenth of it
    _, labels = direct(model, task, ws[0], [])
    for t, w in enumerate(ws):
        heard = [f for k, f in enumerate(feats[:t]) if k != 1]
        out = got(stage, [window("s1", t, w, task, speech_ratio=ratios[t])], task, labels)[0]
        np.testing.assert_allclose(out, direct(model, task, w, heard)[0], atol=1e-4)
    kept = [f for _, _, f in stage._baselines["s1"][1]]
    np.testing.assert_allclose(np.stack(kept), np.stack([feats[0], feats[2], feats[3]]), atol=1e-5)
    # a stream whose only window is silence keeps no baseline
    stage.process([window("quiet", 0, ws[0], task, speech_ratio=0.0)])
    assert stage.stats()["baseline_streams"] == 1


def test_at_most_a_fixed_number_of_streams_keep_a_baseline(monkeypatch):
    monkeypatch.setattr(coat_stage, "BASELINE_MAX_STREAMS", 2)
    model, task = tiny_relative()
    stage = stage_for(model)
    ws = waves(4, seed=8)
    stage.process([window("a", 0, ws[0], task)])
    stage.process([window("b", 0, ws[1], task)])
    stage.process([window("a", 1, ws[2], task)])  # a used more recently than b
    stage.process([window("c", 0, ws[3], task)])  # b dropped
    assert stage.stats()["baseline_streams"] == 2
    assert list(stage._baselines) == ["a", "c"]
    # the count reaches the Prometheus scrape
    from prometheus_client import CollectorRegistry, generate_latest

    from edge_coat.service.metrics import ServiceCollector

    registry = CollectorRegistry()
    registry.register(ServiceCollector(lambda: {"stage": stage.stats()}))
    assert "edge_coat_model_baseline_streams 2.0" in generate_latest(registry).decode()


def test_without_relative_tasks_the_stage_keeps_no_baseline_and_scores_as_the_model_does():
    model, task = tiny_relative(relative=False)
    stage = stage_for(model)
    ws = waves(4, seed=9)
    ref = model.score_tasks(ws, [task])[task]
    out = np.concatenate([got(stage, [window("s1", t, w, task)], task, ref.labels) for t, w in enumerate(ws)])
    np.testing.assert_allclose(out, ref.probs, atol=1e-4)
    assert stage.stats()["baseline_streams"] == 0
    # a relative model with its readout switched off (model.readout: false): the LLM alone, no baseline either
    model, task = tiny_relative()
    off = stage_for(model, readout=False)
    ref = model.score_tasks(ws, [task])[task]  # use_readout is off: the LLM's answer
    assert ref.readout is None
    out = np.concatenate([got(off, [window("s1", t, w, task)], task, ref.labels) for t, w in enumerate(ws)])
    np.testing.assert_allclose(out, ref.probs, atol=1e-4)
    assert off.stats()["baseline_streams"] == 0


def test_a_new_capture_run_on_a_stream_starts_a_new_baseline():
    model, task = tiny_relative()
    stage = stage_for(model)
    ws = waves(4, seed=12)
    feats = [features(model, task, w) for w in ws]
    run = [Window(stream_id="s1", index=k, start_sample=k * SR, start_ts=float(k), end_ts=k + 1.0, samples=w,
                  tasks=(task,), sender_epoch=7) for k, w in enumerate(ws[:3])]
    for w in run:
        stage.process([w])
    # the capture restarted (another call on the same desk): its first window is scored as if nothing was heard
    again = Window(stream_id="s1", index=0, start_sample=0, start_ts=10.0, end_ts=11.0, samples=ws[3], tasks=(task,),
                   sender_epoch=8)
    want, labels = direct(model, task, ws[3], [])
    np.testing.assert_allclose(got(stage, [again], task, labels)[0], want, atol=1e-4)
    heard, _ = direct(model, task, ws[3], feats[:3])
    assert np.abs(want - heard).max() > 1e-3
    epoch, kept = stage._baselines["s1"]
    assert epoch == 8 and len(kept) == 1


def test_a_desk_baseline_is_the_running_mean_of_the_streams_speech_windows_and_outlives_its_calls(monkeypatch):
    from edge_coat.model.readout import HeardMean

    monkeypatch.setattr(coat_stage, "DESK_MEMORY_WINDOWS", 3)
    model, task = tiny_relative()
    model.config.readout_baseline = "desk"
    stage = stage_for(model)
    ws = waves(7, seed=21)
    feats = [features(model, task, w).astype(np.float64) for w in ws]
    silent = {2}  # the gate's VAD: mostly not speech, scored but not taken in
    run = [Window(stream_id="desk", index=k, start_sample=k * SR, start_ts=float(k), end_ts=k + 1.0, samples=w,
                  tasks=(task,), sender_epoch=1, speech_ratio=0.1 if k in silent else 0.9)
           for k, w in enumerate(ws[:5])]
    probs = np.concatenate([got(stage, run[:2], task, model.readout.labels[task]),
                            got(stage, run[2:], task, model.readout.labels[task])])
    # the mean of all it heard until DESK_MEMORY_WINDOWS, an exponential one after
    mean, count, want = None, 0, []
    for k, w in enumerate(ws[:5]):
        ctx = None if mean is None else HeardMean(mean.astype(np.float32), count)
        res = model.score_tasks([w], [task], readout_context=[ctx])[task]
        want.append([res.probs[0][list(res.labels).index(c)] for c in model.readout.labels[task]])
        if k in silent:
            continue
        count += 1
        mean = feats[k].copy() if mean is None else mean + (feats[k] - mean) / min(count, 3)
    np.testing.assert_allclose(probs, np.array(want), atol=1e-4)
    # windows 0 and 1, 3 and 4 entered (4 > memory 3: the last one weighs 1/3); the silent one did not
    desk = stage._desks["desk"]
    assert desk.count == 4 and stage.stats()["baseline_streams"] == 1
    assert stage.stats()["desk_windows"] == {"desk": 4}
    # the line's desk count reaches the Prometheus scrape (an operator sees a line still warming)
    from prometheus_client import CollectorRegistry, generate_latest

    from edge_coat.service.metrics import ServiceCollector

    registry = CollectorRegistry()
    registry.register(ServiceCollector(lambda: {"stage": stage.stats()}))
    assert 'edge_coat_model_desk_windows{stream="desk"} 4.0' in generate_latest(registry).decode()
    np.testing.assert_allclose(desk.mean, mean, rtol=1e-5, atol=1e-6)
    # the call ends and another capture run starts on the same desk: its first window is scored against the desk
    stage.end_stream(EndOfStream(stream_id="desk", ts=5.0, reason="ended"))
    again = Window(stream_id="desk", index=0, start_sample=0, start_ts=20.0, end_ts=21.0, samples=ws[5],
                   tasks=(task,), sender_epoch=2, speech_ratio=0.9)
    first = got(stage, [again], task, model.readout.labels[task])[0]
    res = model.score_tasks([ws[5]], [task], readout_context=[HeardMean(mean.astype(np.float32), 4)])[task]
    np.testing.assert_allclose(first, [res.probs[0][list(res.labels).index(c)] for c in model.readout.labels[task]],
                               atol=1e-4)
    cold = model.score_tasks([ws[5]], [task])[task]  # what a desk that heard nothing would say: the center
    assert np.abs(res.probs - cold.probs).max() > 1e-3
    assert stage._desks["desk"].count == 5 and not stage._baselines


def test_a_desk_baseline_is_saved_and_read_back_by_a_restarted_stage(tmp_path, monkeypatch, caplog):
    import json

    from edge_coat.model.readout import HeardMean

    monkeypatch.setattr(coat_stage, "DESK_SAVE_EVERY", 2)
    model, task = tiny_relative()
    model.config.readout_baseline = "desk"
    labels = model.readout.labels[task]
    ws = waves(4, seed=31)
    run = [Window(stream_id="line-7", index=k, start_sample=k * SR, start_ts=float(k), end_ts=k + 1.0, samples=w,
                  tasks=(task,), sender_epoch=1, speech_ratio=0.9) for k, w in enumerate(ws[:3])]
    first = stage_for(model, desk_dir=tmp_path / "desks")
    first.process(run)
    saved = json.loads((tmp_path / "desks" / "line-7.desk.json").read_text())
    assert saved["count"] == 2  # written at the 2nd window taken in; the 3rd is written at the stream's end
    first.end_stream(EndOfStream("line-7", ts=3.0, reason="ended"))
    saved = json.loads((tmp_path / "desks" / "line-7.desk.json").read_text())
    desk = first._desks["line-7"]
    assert saved["count"] == 3 and (saved["model"], saved["version"]) == (first.model_name, first.model_version)
    # a restarted worker: its first window on the line is scored against the saved desk, not a cold one
    again = Window(stream_id="line-7", index=0, start_sample=0, start_ts=0.0, end_ts=1.0, samples=ws[3],
                   tasks=(task,), sender_epoch=2, speech_ratio=0.9)
    restarted = stage_for(model, desk_dir=tmp_path / "desks")
    got_p = got(restarted, [again], task, labels)[0]
    res = model.score_tasks([ws[3]], [task], readout_context=[HeardMean(desk.mean.astype(np.float32), 3)])[task]
    np.testing.assert_allclose(got_p, [res.probs[0][list(res.labels).index(c)] for c in labels], atol=1e-4)
    cold = model.score_tasks([ws[3]], [task])[task]
    assert np.abs(res.probs - cold.probs).max() > 1e-3
    # another model's desk, or a broken file: a warning, and the desk starts cold; the stage goes on
    for text in (json.dumps({**saved, "version": "0.0.1"}), "{not json"):
        (tmp_path / "desks" / "line-7.desk.json").write_text(text)
        caplog.clear()
        fresh = stage_for(model, desk_dir=tmp_path / "desks")
        want_cold = [cold.probs[0][list(cold.labels).index(c)] for c in labels]
        np.testing.assert_allclose(got(fresh, [again], task, labels)[0], want_cold, atol=1e-4)
        assert "the desk starts cold" in caplog.text


def test_a_window_with_non_finite_statistics_never_enters_a_desk(caplog):
    model, task = tiny_relative()
    model.config.readout_baseline = "desk"
    stage = stage_for(model)
    ws = waves(2, seed=41)
    good, bad = (Window(stream_id="line-9", index=k, start_sample=k * SR, start_ts=float(k), end_ts=k + 1.0,
                        samples=w, tasks=(task,), sender_epoch=1, speech_ratio=0.9) for k, w in enumerate(ws))
    f = features(model, task, ws[0])
    stage._desk_contexts([good], f[None])
    before = stage._desks["line-9"].mean.copy()
    ctx = stage._desk_contexts([bad], np.full((1, f.size), np.nan, np.float32))
    assert ctx[0].count == 1 and stage._desks["line-9"].count == 1  # scored against the desk, not taken in
    np.testing.assert_array_equal(stage._desks["line-9"].mean, before)
    assert "non-finite readout statistics" in caplog.text
