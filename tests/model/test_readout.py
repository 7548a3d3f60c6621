"""The answer readout beside the LLM's answer: statistics, fusion, storage (edge_coat.model.readout)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edge_coat.model import tiny_coat_model
from edge_coat.model.coat import COAT_WEIGHTS, CoatModel
from edge_coat.model.readout import AnswerReadout, window_statistics


def test_window_statistics_reads_only_the_real_positions():
    audio = torch.tensor([[[1.0, 10.0], [3.0, 10.0], [100.0, -100.0]]])  # (1, 3, 2); the last position is padding
    mask = torch.tensor([[True, True, False]])
    stats = window_statistics(audio, mask)
    assert stats.shape == (1, 4)
    np.testing.assert_allclose(stats[0].numpy(), [2.0, 10.0, 1.0, 0.0], atol=1e-6)


def test_log_probs_are_renormalised_over_the_candidates_in_their_order():
    ro = AnswerReadout({"emotion": ["angry", "calm", "sad"]}, feature_dim=2)
    ro.set_task("emotion", ["angry", "calm", "sad"], torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]),
                torch.zeros(3))
    x = torch.tensor([[2.0, 1.0]])
    full = torch.log_softmax(torch.tensor([[2.0, 1.0, -2.0]]), -1)
    np.testing.assert_allclose(ro.log_probs("emotion", x, ["angry", "calm", "sad"]), full, atol=1e-6)
    sub = ro.log_probs("emotion", x, ["sad", "angry"])  # a corpus that scores a subset, in its own order
    np.testing.assert_allclose(sub, torch.log_softmax(torch.tensor([[-2.0, 2.0]]), -1), atol=1e-6)
    assert ro.knows("emotion", ["sad", "angry"])
    assert not ro.knows("emotion", ["sad", "happy"]) and not ro.knows("events", ["sad", "angry"])
    with pytest.raises(ValueError, match="expected weight"):
        ro.set_task("events", ["a", "b"], torch.zeros(3, 2), torch.zeros(2))


def _with_readout(model: CoatModel, seed: int = 0) -> CoatModel:
    """Install a random readout for the model's first task (its labels in reverse order)."""
    task = sorted(model.config.tasks)[0]
    labels = list(reversed(model.config.tasks[task].labels))
    g = torch.Generator().manual_seed(seed)
    dim = model.readout.feature_dim
    model.readout.set_task(task, labels, torch.randn(len(labels), dim, generator=g) * 3,
                           torch.randn(len(labels), generator=g))
    model.config.readout = {task: labels}
    return model


def test_probs_fuse_the_llm_and_the_readout_and_the_ablation_drops_it():
    model = _with_readout(tiny_coat_model("qwen2_audio", seed=0))
    task = sorted(model.config.tasks)[0]
    spec = model.config.tasks[task]
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(16_000).astype(np.float32) * 0.1 for _ in range(3)]
    model.config.readout_temperature = 2.5
    fused = model.score_task(waves, task)
    assert fused.readout is not None and fused.readout.shape == (3, len(spec.labels))
    z = torch.tensor(fused.logprobs) / model.config.temperature + torch.tensor(fused.readout)
    np.testing.assert_allclose(fused.probs, torch.softmax(z / 2.5, -1).numpy(), atol=1e-5)
    # score_labels finds the task by its prompt; score_tasks fuses alike
    by_prompt = model.score_labels(waves, spec.prompt, list(spec.labels))
    np.testing.assert_allclose(by_prompt.probs, fused.probs, atol=1e-5)
    np.testing.assert_allclose(model.score_tasks(waves, [task])[task].probs, fused.probs, atol=1e-4)
    model.use_readout = False
    alone = model.score_task(waves, task)
    assert alone.readout is None
    np.testing.assert_allclose(alone.logprobs, fused.logprobs, atol=1e-5)
    np.testing.assert_allclose(
        alone.probs, torch.softmax(torch.tensor(alone.logprobs) / model.config.temperature, -1).numpy(), atol=1e-5)
    assert not np.allclose(alone.probs, fused.probs, atol=1e-3)


def test_a_task_without_readout_or_with_unknown_candidates_is_the_llm_alone():
    model = _with_readout(tiny_coat_model("qwen2_audio", seed=0))
    task = sorted(model.config.tasks)[0]
    spec = model.config.tasks[task]
    waves = [np.zeros(8_000, np.float32) + 0.01]
    res = model.score_labels(waves, spec.prompt, [*spec.labels[:1], "not-a-label"])
    assert res.readout is None
    others = [t for t in model.config.tasks if t != task]
    if others:
        assert model.score_task(waves, others[0]).readout is None


def test_the_readout_survives_save_and_load_in_float32(tmp_path):
    model = _with_readout(tiny_coat_model("qwen2_audio", seed=0), seed=3)
    model.config.storage_dtype = "float16"
    model.save_pretrained(tmp_path / "m")
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "m" / COAT_WEIGHTS))
    ro_keys = [k for k in stored if k.startswith("readout.")]
    assert ro_keys and all(stored[k].dtype == torch.float32 for k in ro_keys)
    assert any(v.dtype == torch.float16 for k, v in stored.items() if not k.startswith("readout."))
    config = json.loads((tmp_path / "m" / "coat_config.json").read_text())
    task = sorted(model.config.tasks)[0]
    assert config["readout"] == {task: list(reversed(model.config.tasks[task].labels))}
    loaded = CoatModel.from_pretrained(tmp_path / "m")
    for k in ro_keys:
        torch.testing.assert_close(loaded.state_dict()[k], model.state_dict()[k])
    waves = [np.random.default_rng(1).standard_normal(12_000).astype(np.float32) * 0.1]
    np.testing.assert_allclose(loaded.score_task(waves, task).readout, model.score_task(waves, task).readout,
                               atol=1e-3)


def test_score_tasks_computes_the_window_statistics_once_for_every_readout_task(monkeypatch):
    import edge_coat.model.coat as coat_mod

    model = tiny_coat_model("qwen2_audio", seed=0)
    tasks = sorted(model.config.tasks)[:2]
    g = torch.Generator().manual_seed(1)
    for task in tasks:
        labels = list(model.config.tasks[task].labels)
        model.readout.set_task(task, labels, torch.randn(len(labels), model.readout.feature_dim, generator=g),
                               torch.zeros(len(labels)))
        model.config.readout = {**model.config.readout, task: labels}
    calls = []
    real = coat_mod.window_statistics
    monkeypatch.setattr(coat_mod, "window_statistics", lambda a, m: calls.append(1) or real(a, m))
    waves = [np.random.default_rng(2).standard_normal(12_000).astype(np.float32) * 0.1]
    out = model.score_tasks(waves, tasks)
    assert len(calls) == 1 and all(out[t].readout is not None for t in tasks)
    model.use_readout = False
    model.score_tasks(waves, tasks)
    assert len(calls) == 1  # nothing fused: no statistics


def _tower_readout(model: CoatModel, seed: int = 0) -> CoatModel:
    """Switch the readout to the tower's output and install a random one for the model's first task."""
    model.set_readout_input("tower")
    assert model.readout.feature_dim == 2 * model.adapter.tower_dim != 2 * model.adapter.audio_dim
    return _with_readout(model, seed)


def test_a_tower_readout_reads_the_statistics_of_the_towers_output():
    model = _tower_readout(tiny_coat_model("qwen2_audio", seed=0, max_seconds=2))
    task = sorted(model.config.tasks)[0]
    labels = list(model.config.tasks[task].labels)
    rng = np.random.default_rng(4)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (12_000, 50_000)]  # one window chunked (2 s)
    res = model.score_task(waves, task)
    with torch.inference_mode():
        hidden, mask = model.encode_tower(waves)
        want = model.readout.log_probs(task, window_statistics(hidden, mask), labels)
        embeds, emask, tower = model.encode_full(waves)
        e2, m2 = model.encode(waves)
    np.testing.assert_allclose(res.readout, want.numpy(), atol=1e-5)
    assert torch.equal(emask, mask) and torch.equal(m2, mask)
    torch.testing.assert_close(embeds, e2)
    torch.testing.assert_close(tower[mask], hidden[mask])
    # computed before, as the model stage hands it over: the audio embeds need the tower's output beside them
    with pytest.raises(ValueError, match="reads the audio tower's output: pass readout_frames"):
        model.score_tasks(None, [task], audio=(embeds, emask))
    given = model.score_tasks(None, [task], audio=(embeds, emask), readout_frames=tower)[task]
    np.testing.assert_allclose(given.probs, res.probs, atol=1e-4)
    model.use_readout = False
    assert model.encode_full(waves)[2] is None  # no readout in use: nothing beside the embeds


def test_a_tower_readout_survives_save_and_load_and_switching_input_drops_it(tmp_path):
    model = _tower_readout(tiny_coat_model("qwen2_audio", seed=0), seed=5)
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "coat_config.json").read_text())["readout_input"] == "tower"
    loaded = CoatModel.from_pretrained(tmp_path / "m")
    assert loaded.config.readout_input == "tower" and loaded.readout.feature_dim == model.readout.feature_dim
    task = sorted(model.config.tasks)[0]
    waves = [np.random.default_rng(1).standard_normal(12_000).astype(np.float32) * 0.1]
    np.testing.assert_allclose(loaded.score_task(waves, task).readout, model.score_task(waves, task).readout,
                               atol=1e-4)
    loaded.set_readout_input("audio")
    assert loaded.config.readout == {} and loaded.readout.feature_dim == 2 * loaded.adapter.audio_dim
    assert loaded.score_task(waves, task).readout is None
    with pytest.raises(ValueError, match="must be 'audio' or 'tower'"):
        loaded.set_readout_input("mel")


def test_a_family_without_a_tower_output_refuses_a_tower_readout():
    model = tiny_coat_model("qwen2_5_omni", seed=0)
    assert not model.adapter.supports_tower
    with pytest.raises(ValueError, match="does not expose its tower's output"):
        model.set_readout_input("tower")


def test_a_stream_baseline_is_the_last_windows_mean_with_the_center_filling_what_was_not_heard():
    from edge_coat.model.readout import stream_baseline

    center = torch.tensor([10.0, -10.0])
    torch.testing.assert_close(stream_baseline(None, center, 4), center)
    torch.testing.assert_close(stream_baseline(torch.zeros(0, 2), center, 4), center)
    one = torch.tensor([[2.0, 2.0]])
    torch.testing.assert_close(stream_baseline(one, center, 4), (one[0] + 3 * center) / 4)
    many = torch.arange(12.0).reshape(6, 2)  # only the last 4 count
    torch.testing.assert_close(stream_baseline(many, center, 4), many[2:].mean(0))


def test_a_heard_mean_weighs_as_its_count_of_windows_up_to_the_baseline_size():
    from edge_coat.model.readout import HeardMean, stream_baseline

    center, mean = torch.tensor([10.0, -10.0]), np.array([1.0, 2.0], np.float32)
    torch.testing.assert_close(stream_baseline(HeardMean(mean, 0), center, 4), center)
    torch.testing.assert_close(stream_baseline(HeardMean(mean, 1), center, 4), (torch.tensor(mean) + 3 * center) / 4)
    torch.testing.assert_close(stream_baseline(HeardMean(mean, 500), center, 4), torch.tensor(mean))  # a warm desk
    readout = AnswerReadout({"emotion": ["a", "b"]}, 2, relative=["emotion"])
    readout.centers["emotion"].center.copy_(center)
    got = readout.baselines("emotion", [HeardMean(mean, 2), None, np.ones((1, 2), np.float32)], 4, 3)
    torch.testing.assert_close(got, torch.stack([(2 * torch.tensor(mean) + 2 * center) / 4, center,
                                                 (torch.ones(2) + 3 * center) / 4]))
    with pytest.raises(ValueError, match=r"expected a heard mean of \(2,\)"):
        readout.baselines("emotion", [HeardMean(np.zeros(3), 2)], 4, 1)


def _relative_readout(model: CoatModel, seed: int = 0) -> tuple[CoatModel, str]:
    model = _tower_readout(model, seed)
    task = sorted(model.config.tasks)[0]
    ro = model.readout.tasks[task]
    g = torch.Generator().manual_seed(seed + 1)
    model.readout.set_task(task, model.readout.labels[task], ro.weight, ro.bias,
                           center=torch.randn(model.readout.feature_dim, generator=g))
    model.config.readout_relative = model.readout.relative
    model.config.readout_baseline_windows = 3
    return model, task


def test_a_relative_readout_reads_the_statistics_less_the_streams_baseline(tmp_path):
    model, task = _relative_readout(tiny_coat_model("qwen2_audio", seed=0, max_seconds=2))
    labels = list(model.config.tasks[task].labels)
    assert model.readout.is_relative(task) and model.config.readout_relative == [task]
    rng = np.random.default_rng(6)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (12_000, 20_000)]
    earlier = rng.standard_normal((5, model.readout.feature_dim)).astype(np.float32)
    alone = model.score_tasks(waves, [task])[task]
    heard = model.score_tasks(waves, [task], readout_context=[earlier, earlier[:1]])[task]
    with torch.inference_mode():
        hidden, mask = model.encode_tower(waves)
    stats = window_statistics(hidden, mask)
    np.testing.assert_allclose(alone.features, stats.numpy(), atol=1e-5)  # absolute, what a stream keeps
    center = model.readout.centers[task].center
    base = torch.stack([torch.tensor(earlier[-3:]).mean(0), (torch.tensor(earlier[0]) + 2 * center) / 3])
    layer = model.readout.tasks[task]
    idx = [model.readout.labels[task].index(c) for c in labels]  # the readout's rows in the task's label order

    def want(x):
        return torch.log_softmax(layer(x)[:, idx], -1).numpy()

    np.testing.assert_allclose(heard.readout, want(stats - base), atol=1e-4)
    np.testing.assert_allclose(alone.readout, want(stats - center), atol=1e-4)
    assert not np.allclose(heard.readout, alone.readout, atol=1e-3)
    # score_task takes it too, and a context of the wrong width is refused in one line
    one = model.score_task(waves, task, readout_context=[earlier, earlier[:1]])
    np.testing.assert_allclose(one.probs, heard.probs, atol=1e-4)
    with pytest.raises(ValueError, match="one entry per window"):
        model.score_task(waves, task, readout_context=[earlier])
    with pytest.raises(ValueError, match=r"expected \(k, \d+\) statistics"):
        model.score_task(waves, task, readout_context=[earlier[:, :3], None])
    assert labels == list(heard.labels)
    # it survives save and load; refitting the task without a center makes it absolute again
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "coat_config.json").read_text())
    assert saved["readout_relative"] == [task] and saved["readout_baseline_windows"] == 3
    loaded = CoatModel.from_pretrained(tmp_path / "m")
    torch.testing.assert_close(loaded.readout.centers[task].center, center)
    np.testing.assert_allclose(loaded.score_tasks(waves, [task], readout_context=[earlier, earlier[:1]])[task].probs,
                               heard.probs, atol=1e-4)
    ro = loaded.readout.tasks[task]
    loaded.readout.set_task(task, loaded.readout.labels[task], ro.weight, ro.bias)
    assert not loaded.readout.is_relative(task) and loaded.readout.relative == []
    loaded.set_readout_input("audio")
    assert loaded.config.readout_relative == []


def test_a_relative_readout_with_the_absolute_reads_both_and_a_first_window_as_its_center_says(tmp_path):
    model = _tower_readout(tiny_coat_model("qwen2_audio", seed=0, max_seconds=2))
    task = sorted(model.config.tasks)[0]
    labels = list(model.config.tasks[task].labels)
    model.config.readout_with_absolute = model.readout.with_absolute = True
    dim = model.readout.feature_dim
    g = torch.Generator().manual_seed(3)
    weight, bias, center = torch.randn(len(labels), 2 * dim, generator=g), torch.randn(len(labels), generator=g), \
        torch.randn(dim, generator=g)
    with pytest.raises(ValueError, match=rf"expected weight \({len(labels)}, {2 * dim}\)"):
        model.readout.set_task(task, labels, weight[:, :dim], bias, center=center)
    model.readout.set_task(task, labels, weight, bias, center=center)
    model.config.readout, model.config.readout_relative = {task: labels}, [task]
    rng = np.random.default_rng(8)
    waves = [rng.standard_normal(12_000).astype(np.float32) * 0.1]
    earlier = rng.standard_normal((2, dim)).astype(np.float32)
    res = model.score_tasks(waves, [task], readout_context=[earlier])[task]
    first = model.score_tasks(waves, [task])[task]
    stats = torch.tensor(res.features)
    base = (torch.tensor(earlier).sum(0) + (model.config.readout_baseline_windows - 2) * center) / \
        model.config.readout_baseline_windows
    for got, b in ((res, base), (first, center)):
        want = torch.log_softmax(torch.cat([stats, stats - b], -1) @ weight.T + bias, -1).numpy()
        np.testing.assert_allclose(got.readout, want, atol=1e-4)
    model.save_pretrained(tmp_path / "m")
    loaded = CoatModel.from_pretrained(tmp_path / "m")
    assert loaded.readout.with_absolute and loaded.readout.tasks[task].weight.shape == (len(labels), 2 * dim)
    np.testing.assert_allclose(loaded.score_tasks(waves, [task], readout_context=[earlier])[task].readout, res.readout,
                               atol=1e-4)
    loaded.readout.drop(task)
    assert not loaded.readout.knows(task, labels) and loaded.readout.relative == []
