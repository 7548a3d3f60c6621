"""``edge-coat train`` and ``edge-coat eval`` end to end on tiny generated data (tiny model, CPU)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from edge_coat.cli import main
from tests.train.conftest import TEST_EXPERTS, SR, tone_or_noise, write_folder

TRAIN = ["train", "--init", "qwen2_audio", "--size", "test", "--max-seconds", "1", "--experts", TEST_EXPERTS,
         "--no-progress", "--warmup-steps", "5"]


@pytest.fixture(scope="module")
def trained(separable, tmp_path_factory):
    """30 steps on two trivially separable classes."""
    out = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    rc = main([*TRAIN, "--data", f"{separable['train']}:emotion", "--steps", "30", "--lr", "3e-3", "--batch-size", "4",
               "--log-every", "10", "--checkpoint-every", "10", "--out", str(out / "run"), "--teacher-cache", str(cache)])
    assert rc == 0
    return out / "run"


def test_training_lowers_the_total_loss_and_writes_the_run(trained):
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert rows[-1]["total"] < 0.5 * rows[0]["total"]
    assert {"answer", "expert/pitch_prosody", "expert/loudness_spectral", "total"} <= set(rows[0])
    config = json.loads((trained / "run_config.json").read_text())
    assert config["steps"] == 30 and config["experts"] == TEST_EXPERTS.split(",")
    assert (trained / "checkpoints" / "latest").read_text() == "step-000030.pt"
    assert (trained / "model" / "coat.safetensors").is_file()
    split = json.loads((trained / "split.json").read_text())
    assert len(next(iter(split.values()))["train"]) == 16


def test_eval_on_known_answers(trained, separable, tmp_path, capsys):
    out = tmp_path / "e.json"
    preds = tmp_path / "p.csv"
    rc = main(["eval", "--model", str(trained / "model"), "--task", "emotion", "--data", str(separable["test"]),
               "--label-map", '{"happy": "happy", "sad": "sad"}', "--json", str(out), "--predictions", str(preds),
               "--no-readout"])  # the LLM's answers alone: what the training learned
    assert rc == 0
    printed = capsys.readouterr().out
    assert "(no readout)" in printed
    assert "confusion matrix" in printed and "macro F1" in printed
    doc = json.loads(out.read_text())
    assert list(doc) == ["task", "model", "n", "metrics", "per_class"]
    assert doc["task"] == "emotion" and doc["n"] == 12 and set(doc["per_class"]) == {"happy", "sad"}
    assert {"accuracy", "ua", "macro_f1"} <= set(doc["metrics"])
    assert doc["metrics"]["accuracy"] >= 0.9 and doc["metrics"]["ua"] >= 0.9  # tone vs noise was learned
    # the 95 % interval over clip resamples holds the point value and is printed
    ci = doc["metrics"]["ci95"]
    assert doc["metrics"]["ci95_resamples"] == 1000
    assert ci["ua"][0] <= doc["metrics"]["ua"] <= ci["ua"][1] and ci["accuracy"][0] <= doc["metrics"]["accuracy"]
    assert "95% interval over 1000 clip resamples" in printed
    # the JSON's confusion is the one the per-clip predictions give
    truth = {r["file"]: r["label"] for r in csv.DictReader(open(separable["test"] / "labels.csv"))}
    pairs = [(truth[r["file"]], r["prediction"]) for r in csv.DictReader(open(preds))]
    labels = doc["metrics"]["labels"]
    assert labels == ["happy", "sad"]  # restricted by the label map, in the model's order
    hand = [[sum(1 for t, p in pairs if t == a and p == b) for b in labels] for a in labels]
    assert doc["metrics"]["confusion"] == hand


def test_training_fits_the_answer_readout_on_the_training_clips(trained, separable, tmp_path):
    from edge_coat.model.coat import CoatModel
    from edge_coat.train.data import load_wave

    report = json.loads((trained / "readout.json").read_text())
    # 16 training clips, each as recorded and through the telephone and room channels
    assert report["emotion"]["clips"] == 48 and report["emotion"]["labels"] == ["happy", "sad"]
    assert report["channels"] == ["clean", "telephone", "room"]
    model = CoatModel.from_pretrained(trained / "model")
    assert model.config.readout == {"emotion": ["happy", "sad"]}
    # by default it reads the tower's output before the projector (docs/coat-tiny-tower-readout)
    assert report["emotion"]["input"] == "tower" and model.config.readout_input == "tower"
    assert model.readout.feature_dim == 2 * model.adapter.tower_dim
    # the fused scores' temperature is fitted on the run's validation clips (none in this run: left at 1.0)
    split = json.loads((trained / "split.json").read_text())
    assert report["temperature"]["n"] == sum(len(v["val"]) for v in split.values())
    assert model.config.readout_temperature == pytest.approx(report["temperature"]["temperature"])
    # the readout alone tells the held-out tone from the noise
    from edge_coat.data.folder import DatasetFolder

    clips = list(DatasetFolder(separable["test"]))
    res = model.score_labels([load_wave(c, 1.0) for c in clips], model.config.tasks["emotion"].prompt,
                             ["happy", "sad"])
    predicted = [["happy", "sad"][i] for i in res.readout.argmax(1)]
    assert np.mean([p == c.label for p, c in zip(predicted, clips)]) >= 0.9
    out = tmp_path / "r.json"
    assert main(["eval", "--model", str(trained / "model"), "--task", "emotion", "--data", str(separable["test"]),
                 "--label-map", '{"happy": "happy", "sad": "sad"}', "--json", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"]["ua"] >= 0.9


def test_the_readout_refits_on_a_finished_run_from_its_own_split(trained, tmp_path, capsys):
    from edge_coat.model.coat import CoatModel
    from edge_coat.train.readout import main as readout_main

    assert readout_main([str(trained), "--out", str(tmp_path / "copy" / "model"), "--c", "1.0"]) == 0
    assert "readout on the tower statistics fitted for emotion" in capsys.readouterr().out
    assert json.loads((tmp_path / "copy" / "readout.json").read_text())["emotion"]["c"] == 1.0
    refit = CoatModel.from_pretrained(tmp_path / "copy" / "model")
    first = CoatModel.from_pretrained(trained / "model")
    w1, w2 = first.readout.tasks["emotion"].weight, refit.readout.tasks["emotion"].weight
    assert w1.shape == w2.shape and not torch.allclose(w1, w2)  # weaker regularisation, other weights
    # 1.4's input, the projected audio embeds, on request
    assert readout_main([str(trained), "--out", str(tmp_path / "audio" / "model"), "--input", "audio"]) == 0
    assert "readout on the audio statistics fitted" in capsys.readouterr().out
    audio = CoatModel.from_pretrained(tmp_path / "audio" / "model")
    assert audio.config.readout_input == "audio" and audio.readout.feature_dim == 2 * audio.adapter.audio_dim
    # another draw of the telephone and room copies: other weights; the same draw again: the same weights
    for name, seed in (("again", "0"), ("other", "7")):
        assert readout_main([str(trained), "--out", str(tmp_path / name / "model"), "--c", "1.0", "--seed", seed]) == 0
    assert json.loads((tmp_path / "other" / "readout.json").read_text())["seed"] == 7
    # the report says which copies of the training clips the readout was fitted on
    assert json.loads((tmp_path / "other" / "readout.json").read_text())["channels"] == ["clean", "telephone", "room"]
    again = CoatModel.from_pretrained(tmp_path / "again" / "model").readout.tasks["emotion"].weight
    other = CoatModel.from_pretrained(tmp_path / "other" / "model").readout.tasks["emotion"].weight
    torch.testing.assert_close(again, w2)
    assert not torch.allclose(other, w2)
    # two draws fitted together: twice the rows, other weights than either draw alone
    assert readout_main([str(trained), "--out", str(tmp_path / "pooled" / "model"), "--c", "1.0", "--draws", "2"]) == 0
    pooled_report = json.loads((tmp_path / "pooled" / "readout.json").read_text())
    assert pooled_report["draws"] == 2 and pooled_report["seed"] == 0
    assert pooled_report["emotion"]["clips"] == 2 * json.loads((tmp_path / "again" / "readout.json").read_text())[
        "emotion"]["clips"]
    pooled = CoatModel.from_pretrained(tmp_path / "pooled" / "model").readout.tasks["emotion"].weight
    assert not torch.allclose(pooled, w2) and not torch.allclose(pooled, other)
    # not a run folder: one line naming the problem
    capsys.readouterr()
    assert readout_main([str(tmp_path / "nowhere"), "--model", str(trained / "model")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run_config.json not found" in err


def test_training_can_fit_the_readout_on_the_projected_embeds(separable, tmp_path):
    from edge_coat.model.coat import CoatModel

    out = tmp_path / "run"
    assert main([*TRAIN, "--data", f"{separable['train']}:emotion", "--steps", "4", "--batch-size", "4",
                 "--out", str(out), "--teacher-cache", str(tmp_path / "cache"), "--readout-input", "audio"]) == 0
    model = CoatModel.from_pretrained(out / "model")
    assert model.config.readout_input == "audio" and model.config.readout == {"emotion": ["happy", "sad"]}
    assert model.readout.feature_dim == 2 * model.adapter.audio_dim
    assert json.loads((out / "readout.json").read_text())["emotion"]["input"] == "audio"


@pytest.mark.parametrize("baseline", ["speaker", "desk"])
def test_training_can_fit_the_emotion_readout_relative_to_a_baseline(separable, tmp_path, baseline):
    from edge_coat.model.coat import CoatModel
    from edge_coat.train.readout import DESK_WINDOWS

    out = tmp_path / "run"
    assert main([*TRAIN, "--data", f"{separable['train']}:emotion", "--steps", "4", "--batch-size", "4",
                 "--out", str(out), "--teacher-cache", str(tmp_path / "cache"), "--readout-relative", "emotion",
                 "--val-speakers", "04", "--readout-baseline", baseline]) == 0
    model = CoatModel.from_pretrained(out / "model")
    assert model.config.readout_relative == ["emotion"] and model.readout.is_relative("emotion")
    assert model.config.readout_baseline == baseline
    assert model.config.readout_baseline_windows == (DESK_WINDOWS if baseline == "desk" else 8)
    assert json.loads((out / "run_config.json").read_text())["readout_baseline"] == baseline
    assert json.loads((out / "readout.json").read_text())["emotion"]["relative"] is True
    assert json.loads((out / "run_config.json").read_text())["readout_relative"] == ["emotion"]
    assert json.loads((out / "readout.json").read_text())["temperature"]["n"] == 4  # speaker 04's clips


def test_channel_copies_are_reproducible_and_checked():
    from edge_coat.train.readout import with_channels

    rng = np.random.default_rng(0)
    items = {"emotion": [(rng.standard_normal(8000).astype(np.float32) * 0.1, a) for a in ("happy", "sad")]}
    a, b = with_channels(items), with_channels(items)
    assert [x for _, x in a["emotion"]] == ["happy"] * 3 + ["sad"] * 3
    np.testing.assert_array_equal(a["emotion"][0][0], items["emotion"][0][0])  # clean: as recorded
    for (w1, _), (w2, _) in zip(a["emotion"], b["emotion"]):
        np.testing.assert_array_equal(w1, w2)
    assert not np.allclose(a["emotion"][1][0], a["emotion"][0][0])  # the telephone copy differs
    with pytest.raises(ValueError, match="expected a non-empty list"):
        with_channels(items, ["radio"])
    # short excerpts (docs/coat-tiny-short-windows): a reproducible loudest stretch of 0.6-1.6 s of a 3 s clip
    long = {"emotion": [(rng.standard_normal(48000).astype(np.float32) * 0.1, "happy")]}
    ex = with_channels(long, ["clean", "excerpt"])["emotion"]
    assert 0.6 * 16000 <= len(ex[1][0]) <= 1.6 * 16000 and len(ex[0][0]) == 48000
    np.testing.assert_array_equal(ex[1][0], with_channels(long, ["clean", "excerpt"])["emotion"][1][0])


def test_several_draws_of_the_channel_copies_are_the_single_draws_in_turn():
    from edge_coat.train.readout import with_channels

    rng = np.random.default_rng(0)
    items = {"emotion": [(rng.standard_normal(8000).astype(np.float32) * 0.1, a) for a in ("happy", "sad")]}
    pooled = with_channels(items, seed=3, draws=2)["emotion"]
    one, two = with_channels(items, seed=3)["emotion"], with_channels(items, seed=4)["emotion"]
    assert len(pooled) == len(one) + len(two) == 12
    for (w1, a1), (w2, a2) in zip(pooled, one + two):
        assert a1 == a2
        np.testing.assert_array_equal(w1, w2)
    # the clean copy of a clip is its own array in every draw: encoded once (clip_statistics)
    assert pooled[0][0] is pooled[6][0] is items["emotion"][0][0]
    assert not np.allclose(pooled[1][0], pooled[7][0])  # the telephone copies of two draws differ
    with pytest.raises(ValueError, match="draws must be >= 1"):
        with_channels(items, draws=0)


def test_clip_statistics_encodes_an_array_passed_twice_once(trained, monkeypatch):
    from edge_coat.model.coat import CoatModel
    from edge_coat.train.readout import clip_statistics

    model = CoatModel.from_pretrained(trained / "model")
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(16000).astype(np.float32) * 0.1 for _ in range(2))
    seen = []
    encode = model.encode_tower
    monkeypatch.setattr(model, "encode_tower", lambda waves: (seen.extend(waves), encode(waves))[1])
    stats = clip_statistics(model, [a, b, a, a], batch_size=3)
    assert len(seen) == 2 and seen[0] is a and seen[1] is b
    np.testing.assert_array_equal(stats[0], stats[2])
    np.testing.assert_array_equal(stats[2], stats[3])
    np.testing.assert_allclose(stats[:2], clip_statistics(model, [a, b]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(stats[0], stats[1])


def test_the_readout_temperature_minimises_the_fused_nll_on_validation_clips(trained, separable):
    """calibrate_readout_temperature's T: the fused NLL on the clips it was fitted on is no worse than at T = 1 or
    at T moved either way."""
    from edge_coat.data.folder import DatasetFolder
    from edge_coat.model.coat import CoatModel
    from edge_coat.train.data import load_wave
    from edge_coat.train.readout import calibrate_readout_temperature

    model = CoatModel.from_pretrained(trained / "model")
    val = {"emotion": [(load_wave(c, 1.0), c.label) for c in DatasetFolder(separable["test"])]}
    report = calibrate_readout_temperature(model, val)
    t = model.config.readout_temperature
    assert t == report["temperature"] and report["n"] == 12 and report["nll_after"] <= report["nll_before"] + 1e-9

    def nll(temp: float) -> float:
        model.config.readout_temperature = temp
        res = model.score_task([w for w, _ in val["emotion"]], "emotion")
        y = [list(res.labels).index(a) for _, a in val["emotion"]]
        return float(-np.mean(np.log(res.probs[np.arange(len(y)), y])))

    assert nll(t) <= min(nll(t * 1.5), nll(t / 1.5), nll(1.0)) + 1e-6
    model.use_readout = False  # nothing fused: the temperature is left at 1.0
    assert calibrate_readout_temperature(model, val)["n"] == 0 and model.config.readout_temperature == 1.0


def test_fit_readout_refuses_one_label_and_unknown_answers(trained):
    from edge_coat.model.coat import CoatModel
    from edge_coat.train.readout import fit_readout

    model = CoatModel.from_pretrained(trained / "model")
    wave = np.zeros(8000, np.float32) + 0.01
    with pytest.raises(ValueError, match="at least two labels"):
        fit_readout(model, {"emotion": [(wave, "happy"), (wave, "happy")]})
    with pytest.raises(ValueError, match="not among its labels"):
        fit_readout(model, {"emotion": [(wave, "happy"), (wave, "bored")]})
    with pytest.raises(ValueError, match="no task"):
        fit_readout(model, {"weather": [(wave, "a"), (wave, "b")]})


def test_eval_no_thinking_and_holdout_speakers(trained, separable, tmp_path):
    out = tmp_path / "n.json"
    rc = main(["eval", "--model", str(trained / "model"), "--task", "emotion", "--data", str(separable["test"]),
               "--label-map", '{"happy": "happy", "sad": "sad"}', "--json", str(out), "--no-thinking",
               "--holdout-speakers", "01,02"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["n"] == 6  # speakers 01 and 02 only
    assert sum(v["support"] for v in doc["per_class"].values()) == 6


def test_eval_with_int8_llm_and_encoder_still_knows_the_answers(trained, separable, tmp_path):
    """The site config's int8 switches, as eval loads them (the score change on dev is in BENCHMARKS.md)."""
    out = tmp_path / "q.json"
    rc = main(["eval", "--model", str(trained / "model"), "--task", "emotion", "--data", str(separable["test"]),
               "--label-map", '{"happy": "happy", "sad": "sad"}', "--json", str(out), "--quantization", "int8",
               "--encoder-quantization", "int8"])
    assert rc == 0
    assert json.loads(out.read_text())["metrics"]["ua"] >= 0.9


def test_eval_refuses_labels_the_model_lacks(trained, separable, capsys):
    rc = main(["eval", "--model", str(trained / "model"), "--task", "emotion", "--data", str(separable["test"]),
               "--label-map", '{"happy": "glad"}'])
    assert rc == 2
    assert "'happy' (mapped to 'glad')" in capsys.readouterr().err


def test_dataset_errors_list_every_problem(tmp_path, capsys):
    good = np.zeros(SR // 2, np.float32)
    a = write_folder(tmp_path / "a", [("ok.wav", "happy", {}), ("gone.wav", "sad", {}), ("bad.wav", "sad", {}),
                                      ("odd.wav", "bored", {})], {"ok.wav": good, "odd.wav": good})
    (a / "bad.wav").write_bytes(b"not audio at all")
    b = tmp_path / "b"
    b.mkdir()
    rc = main([*TRAIN, "--data", f"{a}:emotion", "--data", f"{b}:events", "--steps", "2",
               "--out", str(tmp_path / "run")])
    assert rc == 2
    err = capsys.readouterr().err
    for problem in ("missing file gone.wav", "bad.wav unreadable", "unknown label 'bored'", "missing labels.csv"):
        assert problem in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_resume_continues_from_the_checkpoint(separable, tmp_path):
    # warm-up (5 steps) spans the whole run, so the 2-step and 4-step runs share one learning-rate schedule
    common = [*TRAIN, "--data", f"{separable['train']}:emotion", "--batch-size", "2", "--log-every", "1",
              "--checkpoint-every", "2", "--teacher-cache", str(tmp_path / "cache")]
    assert main([*common, "--steps", "4", "--out", str(tmp_path / "straight")]) == 0
    assert main([*common, "--steps", "2", "--out", str(tmp_path / "cut")]) == 0
    assert main([*common, "--steps", "4", "--out", str(tmp_path / "cut")]) == 2  # an existing run needs --resume
    assert main([*common, "--steps", "4", "--out", str(tmp_path / "cut"), "--resume"]) == 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # continued at 3, did not restart at 1
    a = torch.load(tmp_path / "straight" / "checkpoints" / "step-000004.pt", weights_only=True)["trainable"]
    b = torch.load(tmp_path / "cut" / "checkpoints" / "step-000004.pt", weights_only=True)["trainable"]
    assert a.keys() == b.keys()
    for name in a:  # same weights as the uninterrupted run: model, optimizer, schedule and RNGs were restored
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_expert_scale_schedule_is_linear_from_one_to_the_end_value():
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.data import parse_data_spec
    from edge_coat.train.trainer import expert_scale

    def config(end, steps=5):
        return TrainConfig(init_model="m", data=[parse_data_spec("d:emotion")], steps=steps, expert_scale_end=end)

    assert [expert_scale(s, config(0.0)) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert [expert_scale(s, config(0.5)) for s in (0, 2, 4)] == [1.0, 0.75, 0.5]
    assert {expert_scale(s, config(1.0)) for s in range(5)} == {1.0}  # the default: constant
    assert expert_scale(0, config(0.0, steps=1)) == 1.0


def test_expert_losses_fade_out_over_the_run(separable, tmp_path):
    common = [*TRAIN, "--data", f"{separable['train']}:emotion", "--batch-size", "2", "--log-every", "1",
              "--teacher-cache", str(tmp_path / "cache"), "--steps", "3"]
    assert main([*common, "--out", str(tmp_path / "fade"), "--expert-scale-end", "0"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "fade" / "metrics.jsonl").read_text().splitlines()]
    assert [r["expert_scale"] for r in rows] == [1.0, 0.5, 0.0]
    assert rows[0]["experts"] > 0 and rows[-1]["experts"] == 0.0  # the last step trains the answers alone
    assert rows[-1]["expert/pitch_prosody"] > 0  # still measured, for the log
    assert rows[-1]["total"] == pytest.approx(rows[-1]["answer"])
    assert json.loads((tmp_path / "fade" / "run_config.json").read_text())["expert_scale_end"] == 0.0


def test_expert_fade_with_the_no_expert_ablation_is_refused(separable, tmp_path, capsys):
    rc = main([*TRAIN, "--data", f"{separable['train']}:emotion", "--steps", "2", "--out", str(tmp_path / "run"),
               "--no-expert-losses", "--expert-scale-end", "0"])
    assert rc == 2
    assert "--expert-scale-end" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_anomaly_eval_auc_matches_the_per_clip_scores(tmp_path):
    from sklearn.metrics import roc_auc_score

    from edge_coat.model.tiny import tiny_coat_model

    model_dir = tiny_coat_model("qwen2_audio", max_seconds=1).save_pretrained(tmp_path / "m")
    rng = np.random.default_rng(3)
    t = np.arange(SR) / SR
    rows, waves = [], {}
    for i in range(14):
        wave = 0.2 * np.sin(2 * np.pi * 120 * t) + 0.01 * rng.standard_normal(SR)
        label = "abnormal" if i >= 10 else "normal"
        if label == "abnormal":
            wave = wave + 0.3 * rng.standard_normal(SR) * (t > 0.3)
        rows.append((f"{i:02d}.wav", label, {"machine": "motor"}))
        waves[f"{i:02d}.wav"] = wave.astype(np.float32)
    data = write_folder(tmp_path / "d", rows, waves)
    out, preds = tmp_path / "a.json", tmp_path / "a.csv"
    assert main(["eval", "--model", str(model_dir), "--task", "anomaly", "--data", str(data), "--json", str(out),
                 "--predictions", str(preds), "--enroll", "6"]) == 0
    doc = json.loads(out.read_text())
    assert list(doc) == ["task", "model", "n", "metrics", "per_class"]
    assert doc["n"] == 8 and doc["metrics"]["n_enroll"] == 6  # 10 normals: 6 enroll, 4 test + 4 abnormal
    scored = list(csv.DictReader(open(preds)))
    assert [r["file"] for r in scored] == [f"{i:02d}.wav" for i in range(6, 14)]
    y = [int(r["file"] >= "10") for r in scored]
    assert doc["metrics"]["auc"] == pytest.approx(roc_auc_score(y, [float(r["score"]) for r in scored]))
    assert 0.0 <= doc["metrics"]["pauc"] <= 1.0


def test_probe_table_for_each_expert_and_layer(trained, separable, tmp_path, capsys):
    out = tmp_path / "probe.json"
    rc = main(["probe", "--model", str(trained / "model"), "--task", "emotion", "--data", str(separable["test"]),
               "--folds", "3", "--layers", "0,3", "--json", str(out), "--teacher-cache", str(tmp_path / "c")])
    assert rc == 0
    assert "thinking - audio" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    got = {(r["target"], r["layer"]) for r in doc["results"]}
    assert got == {(t, layer) for t in ("pitch_prosody", "loudness_spectral", "label") for layer in (0, 3)}
    for r in doc["results"]:
        assert np.isfinite(r["thinking"]) and np.isfinite(r["audio"]) and r["audio"] <= 1.0
    label = {r["layer"]: r for r in doc["results"] if r["target"] == "label"}
    assert label[0]["audio"] >= 0.9  # tone vs noise is linearly readable from the audio embeddings
    assert label[3]["thinking"] >= 0.9  # and, after training, from the thinking positions


def test_eval_refuses_a_negative_bootstrap_in_one_line(separable, tmp_path, capsys):
    rc = main(["eval", "--model", str(tmp_path / "none"), "--task", "emotion", "--data", str(separable["test"]),
               "--bootstrap", "-1"])
    err = capsys.readouterr().err
    assert rc == 2 and "--bootstrap must be >= 0" in err and len(err.strip().splitlines()) == 1


def test_group_contexts_are_other_rows_of_the_same_group_at_most_n_and_reproducible():
    from edge_coat.train.readout import group_contexts, relative_statistics

    stats = np.arange(20, dtype=np.float64).reshape(10, 2)  # row r = [2r, 2r + 1]
    groups = ["a"] * 6 + ["b"] * 3 + ["c"]
    ctx = group_contexts(stats, groups, windows=3)
    assert [len(c) for c in ctx] == [3] * 6 + [2] * 3 + [0]
    for r, c in enumerate(ctx):
        rows = set((c[:, 0] // 2).astype(int))
        assert r not in rows and all(groups[i] == groups[r] for i in rows)
    for a, b in zip(ctx, group_contexts(stats, groups, windows=3)):
        np.testing.assert_array_equal(a, b)
    center = np.array([100.0, 100.0])
    rel = relative_statistics(stats, groups, 3, center)
    np.testing.assert_allclose(rel[0], stats[0] - ctx[0].mean(0))
    np.testing.assert_allclose(rel[6], stats[6] - (ctx[6].sum(0) + center) / 3)  # two others and the center
    np.testing.assert_allclose(rel[9], stats[9] - center)  # alone in its group
    with pytest.raises(ValueError, match="one group per row"):
        group_contexts(stats, groups[:-1], 3)


def test_a_relative_readout_refits_with_the_speakers_of_the_split(trained, tmp_path, capsys):
    from edge_coat.model.coat import CoatModel
    from edge_coat.train.readout import clip_statistics, main as readout_main, training_items, with_channels

    out = tmp_path / "rel" / "model"
    assert readout_main([str(trained), "--out", str(out), "--relative", "emotion", "--baseline-windows", "2"]) == 0
    assert "emotion relative to the speaker's baseline" in capsys.readouterr().out
    report = json.loads((tmp_path / "rel" / "readout.json").read_text())
    assert report["emotion"]["relative"] is True
    model = CoatModel.from_pretrained(out)
    assert model.config.readout_relative == ["emotion"] and model.config.readout_baseline_windows == 2
    # its center is the training copies' mean statistics: the baseline of a stream not heard yet
    items = with_channels(training_items(trained, ["emotion"], model.max_window_seconds))["emotion"]
    want = clip_statistics(model, [w for w, _ in items]).mean(0)
    np.testing.assert_allclose(model.readout.centers["emotion"].center.numpy(), want, rtol=1e-4, atol=1e-5)
    absolute = CoatModel.from_pretrained(trained / "model")
    assert not absolute.readout.is_relative("emotion")
    assert not torch.allclose(model.readout.tasks["emotion"].weight, absolute.readout.tasks["emotion"].weight)
    # a task the model does not have: one line naming it
    capsys.readouterr()
    assert readout_main([str(trained), "--out", str(tmp_path / "x" / "model"), "--relative", "pitch"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "relative readout tasks ['pitch']" in err


def test_eval_scores_a_relative_readout_after_other_clips_of_the_speaker(trained, separable, tmp_path, capsys):
    from edge_coat.data.folder import DatasetFolder
    from edge_coat.model.coat import CoatModel
    from edge_coat.train.evaluate import readout_contexts, _waves
    from edge_coat.train.readout import clip_statistics, main as readout_main

    rel = tmp_path / "rel" / "model"
    assert readout_main([str(trained), "--out", str(rel), "--relative", "emotion", "--baseline-windows", "2"]) == 0
    docs = {}
    for ctx in ("speaker", "none", "calm"):
        out = tmp_path / f"{ctx}.json"
        assert main(["eval", "--model", str(rel), "--task", "emotion", "--data", str(separable["test"]),
                     "--label-map", '{"happy": "happy", "sad": "sad"}', "--json", str(out), "--bootstrap", "0",
                     "--predictions", str(tmp_path / f"{ctx}.csv"), "--baseline-context", ctx]) == 0
        docs[ctx] = json.loads(out.read_text())
        scores = [float(r["score"]) for r in csv.DictReader(open(tmp_path / f"{ctx}.csv"))]
        docs[ctx]["scores"] = scores
    printed = capsys.readouterr().out
    assert "readout relative to the caller's baseline: context speaker, up to 2 earlier windows; 12 of 12" in printed
    # 12 clips of 4 speakers: each has 2 others of its speaker; the test folder has no calm clip
    assert docs["speaker"]["metrics"]["readout_baseline"] == {"context": "speaker", "windows": 2, "kind": "speaker",
                                                              "clips_with_context": 12}
    assert docs["none"]["metrics"]["readout_baseline"]["clips_with_context"] == 0
    assert docs["calm"]["metrics"]["readout_baseline"]["clips_with_context"] == 0
    assert not np.allclose(docs["speaker"]["scores"], docs["none"]["scores"], atol=1e-4)
    assert docs["speaker"]["metrics"]["ua"] >= 0.9  # tone vs noise still told apart relative to the speaker
    # the context of a clip is the statistics of other clips of its own speaker
    model = CoatModel.from_pretrained(rel)
    clips = DatasetFolder(separable["test"]).clips
    ctx = readout_contexts(model, "emotion", clips, "speaker")
    stats = clip_statistics(model, _waves(clips, model.clip_seconds, None))
    for i, c in enumerate(clips):
        same = [j for j, o in enumerate(clips) if o.meta["speaker"] == c.meta["speaker"] and j != i]
        assert len(ctx[i]) == 2
        for row in ctx[i]:
            assert any(np.allclose(row, stats[j], atol=1e-5) for j in same)
    assert readout_contexts(CoatModel.from_pretrained(trained / "model"), "emotion", clips) is None  # absolute
    with pytest.raises(ValueError, match="baseline context must be one of"):
        readout_contexts(model, "emotion", clips, "loud")


def test_desk_contexts_are_the_mean_of_the_other_rows_of_the_folder_and_center_each_folder():
    from edge_coat.train.readout import desk_contexts, desk_statistics

    rng = np.random.default_rng(3)
    stats = rng.standard_normal((9, 4)) + np.array([[5.0, 0, 0, 0]] * 5 + [[-5.0, 2, 0, 0]] * 3 + [[0, 0, 9, 9]])
    groups = ["ravdess|clean"] * 5 + ["turev|telephone"] * 3 + ["emovo|room"]
    ctx = desk_contexts(stats, groups)
    assert [c.count for c in ctx] == [4] * 5 + [2] * 3 + [0]
    np.testing.assert_allclose(ctx[0].mean, stats[1:5].mean(0), rtol=1e-6)
    np.testing.assert_allclose(ctx[6].mean, stats[[5, 7]].mean(0), rtol=1e-6)
    center = np.full(4, 100.0)
    rel = desk_statistics(stats, groups, 2, center)  # every desk of two or more others is warm (2 windows)
    # each folder's rows less their desk: the folder's offset is gone (mean zero), the row's own spread stays
    np.testing.assert_allclose(rel[:5].mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(rel[5:8].mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(rel[8], stats[8] - center)  # a desk that heard nothing: the training mean
    # warming up: a desk that heard one window weighs it as one of two against the center
    warm = desk_statistics(stats, groups, 2, center, sizes=[1] + [9] * 8)
    np.testing.assert_allclose(warm[0], stats[0] - (ctx[0].mean + center) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="one group per row"):
        desk_contexts(stats, groups[:-1])


def test_a_desk_readout_refits_on_the_folders_of_the_split_and_eval_scores_it_after_the_folder(trained, separable,
                                                                                               tmp_path, capsys):
    from edge_coat.data.folder import DatasetFolder
    from edge_coat.model.coat import CoatModel
    from edge_coat.model.readout import HeardMean
    from edge_coat.train.evaluate import _waves, readout_contexts
    from edge_coat.train.readout import DESK_WINDOWS, clip_statistics, main as readout_main

    out = tmp_path / "desk" / "model"
    assert readout_main([str(trained), "--out", str(out), "--relative", "emotion", "--baseline", "desk"]) == 0
    assert "emotion relative to the desk's long-run baseline" in capsys.readouterr().out
    report = json.loads((tmp_path / "desk" / "readout.json").read_text())
    assert report["emotion"]["relative"] and report["emotion"]["baseline"] == "desk"
    model = CoatModel.from_pretrained(out)
    assert model.config.readout_baseline == "desk" and model.config.readout_baseline_windows == DESK_WINDOWS
    speaker = tmp_path / "spk" / "model"
    assert readout_main([str(trained), "--out", str(speaker), "--relative", "emotion"]) == 0
    assert not torch.allclose(model.readout.tasks["emotion"].weight,
                              CoatModel.from_pretrained(speaker).readout.tasks["emotion"].weight)
    # eval: by default each clip after every other clip of the folder (the desk has heard them all)
    clips = DatasetFolder(separable["test"]).clips
    ctx = readout_contexts(model, "emotion", clips)
    stats = clip_statistics(model, _waves(clips, model.clip_seconds, None))
    assert all(isinstance(c, HeardMean) and c.count == len(clips) - 1 for c in ctx)
    np.testing.assert_allclose(ctx[0].mean, stats[1:].mean(0), rtol=1e-4, atol=1e-5)
    # scoring some clips on a desk that heard the whole folder: each after every other clip of the folder
    some = readout_contexts(model, "emotion", clips[:3], "desk", desk_clips=clips)
    assert [c.count for c in some] == [len(clips) - 1] * 3
    np.testing.assert_allclose(some[2].mean, np.delete(stats, 2, 0).mean(0), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="a desk context must come from a folder that holds the clips scored"):
        readout_contexts(model, "emotion", clips, "desk", desk_clips=clips[1:])
    capsys.readouterr()
    docs = {}
    for ctx_name in (None, "none"):
        j = tmp_path / f"{ctx_name}.json"
        assert main(["eval", "--model", str(out), "--task", "emotion", "--data", str(separable["test"]),
                     "--label-map", '{"happy": "happy", "sad": "sad"}', "--json", str(j), "--bootstrap", "0",
                     *(["--baseline-context", ctx_name] if ctx_name else [])]) == 0
        docs[ctx_name] = json.loads(j.read_text())["metrics"]["readout_baseline"]
    printed = capsys.readouterr().out
    assert f"readout relative to the desk's long-run baseline: context desk, up to {DESK_WINDOWS}" in printed
    assert docs[None] == {"context": "desk", "windows": DESK_WINDOWS, "kind": "desk", "clips_with_context": 12}
    assert docs["none"]["clips_with_context"] == 0
    # a desk baseline needs a relative task: one line
    assert readout_main([str(trained), "--out", str(tmp_path / "x" / "model"), "--baseline", "desk"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--baseline desk needs --relative TASKS" in err


def test_baselines_of_every_size_for_a_readout_with_the_absolute(trained, tmp_path, capsys):
    from edge_coat.model.coat import CoatModel
    from edge_coat.train.readout import baseline_sizes, group_contexts, main as readout_main

    sizes = baseline_sizes(400, 8)
    assert sizes.min() == 0 and sizes.max() == 8 and len(set(sizes.tolist())) == 9
    np.testing.assert_array_equal(sizes, baseline_sizes(400, 8))
    stats = np.arange(40, dtype=np.float64).reshape(20, 2)
    ctx = group_contexts(stats, ["a"] * 20, 8, sizes=[0, 3] + [8] * 18)
    assert [len(c) for c in ctx[:3]] == [0, 3, 8]
    out = tmp_path / "both" / "model"
    assert readout_main([str(trained), "--out", str(out), "--relative", "emotion", "--with-absolute"]) == 0
    assert "emotion beside its difference from the speaker's baseline" in capsys.readouterr().out
    report = json.loads((tmp_path / "both" / "readout.json").read_text())
    assert report["emotion"]["relative"] and report["emotion"]["with_absolute"]
    model = CoatModel.from_pretrained(out)
    assert model.config.readout_with_absolute and model.readout.is_relative("emotion")
    assert model.readout.tasks["emotion"].weight.shape[1] == 2 * model.readout.feature_dim
    # and through edge-coat train
    run = tmp_path / "run"
    data = json.loads((trained / "run_config.json").read_text())["data"][0]["path"]
    assert main([*TRAIN, "--data", f"{data}:emotion",
                 "--steps", "2", "--batch-size", "4", "--out", str(run), "--teacher-cache", str(tmp_path / "cache"),
                 "--readout-relative", "emotion", "--readout-with-absolute"]) == 0
    trained_model = CoatModel.from_pretrained(run / "model")
    assert trained_model.config.readout_with_absolute and trained_model.config.readout_relative == ["emotion"]
