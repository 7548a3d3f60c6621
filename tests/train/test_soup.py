"""``python -m edge_coat.train.soup``: seeds of one recipe averaged into one recalibrated model (tiny model, CPU)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from edge_coat.cli import main as cli
from edge_coat.train.soup import main as soup
from tests.train.conftest import TEST_EXPERTS
from tests.train.test_train_eval import TRAIN


@pytest.fixture(scope="module")
def runs(separable, tmp_path_factory):
    """A start model, then three short continuations of it: seeds 1 and 2, and seed 3 with another learning rate."""
    root = tmp_path_factory.mktemp("soup")
    common = [*TRAIN, "--data", f"{separable['train']}:emotion", "--batch-size", "4", "--val-speakers", "04",
              "--teacher-cache", str(root / "cache")]
    assert cli([*common, "--steps", "6", "--out", str(root / "start")]) == 0
    tail = ["--model", str(root / "start" / "model"), "--steps", "4", "--lr", "2e-3"]
    cont = ["train", "--experts", TEST_EXPERTS, "--no-progress", "--warmup-steps", "5", *common[len(TRAIN):]]
    for seed in (1, 2):
        assert cli([*cont, *tail, "--seed", str(seed), "--out", str(root / f"seed{seed}")]) == 0
    assert cli([*cont, *tail[:-2], "--lr", "1e-3", "--seed", "3", "--out", str(root / "other-lr")]) == 0
    return root


def test_soup_is_the_mean_of_its_ingredients_and_recalibrated(runs, separable, tmp_path):
    out = tmp_path / "soup"
    assert soup([str(runs / "seed1"), str(runs / "seed2"), "--out", str(out)]) == 0
    for name in ("coat.safetensors", "model.safetensors"):
        a, b, s = (load_file(str(d / name)) for d in (runs / "seed1" / "model", runs / "seed2" / "model", out))
        assert a.keys() == s.keys()
        moved = [k for k in a if a[k].is_floating_point() and not (a[k] == b[k]).all()]
        assert moved, f"{name}: the two seeds trained to identical weights, so the test shows nothing"
        for k in moved:
            mean = ((a[k].float() + b[k].float()) / 2).to(a[k].dtype)
            assert (s[k].float() - mean.float()).abs().max() <= 1e-3 * (1 + mean.float().abs().max()), k
    record = json.loads((out / "soup.json").read_text())
    assert [i["seed"] for i in record["ingredients"]] == [1, 2]
    # speaker 04 is every seed's validation speaker: its 4 clips calibrate the soup, no clip a seed trained on
    assert record["validation_clips"] == {"emotion": 4} and record["calibration"]["n"] == 4
    temperature = json.loads((out / "coat_config.json").read_text())["temperature"]
    assert temperature == pytest.approx(record["calibration"]["temperature"])
    # the soup is a model like any other: it evaluates
    assert cli(["eval", "--model", str(out), "--task", "emotion", "--data", str(separable["test"]),
                "--json", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["n"] == 12


@pytest.mark.parametrize("which, problem", [
    (["seed1", "other-lr"], "other settings"),
    (["seed1", "seed1"], "repeat a seed"),
    (["seed1"], "at least two runs"),
    (["seed1", "start"], "other settings"),  # the start is a new model, not a continuation of one
])
def test_runs_that_cannot_be_averaged_are_refused(runs, tmp_path, capsys, which, problem):
    out = tmp_path / "soup"
    assert soup([*(str(runs / w) for w in which), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("soup: ") and problem in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_runs_from_different_starts_are_refused(runs, tmp_path, capsys):
    import shutil

    # the same recipe from a copy of the start whose weights were changed: not one shared start
    other = tmp_path / "start-copy"
    shutil.copytree(runs / "start" / "model", other)
    run2 = tmp_path / "seed2"
    shutil.copytree(runs / "seed2", run2)
    config = json.loads((run2 / "run_config.json").read_text())
    config["init_model"] = str(other)
    (run2 / "run_config.json").write_text(json.dumps(config))
    assert soup([str(runs / "seed1"), str(run2), "--out", str(tmp_path / "same")]) == 0  # a copy is the same start

    from safetensors.torch import save_file
    weights = load_file(str(other / "coat.safetensors"))
    key = next(k for k, v in weights.items() if v.is_floating_point())
    weights[key] = weights[key] + 1
    save_file(weights, str(other / "coat.safetensors"))
    assert soup([str(runs / "seed1"), str(run2), "--out", str(tmp_path / "soup")]) == 2
    assert "different weights" in capsys.readouterr().err


def test_a_run_whose_data_moved_gets_one_line_and_no_model(runs, tmp_path, capsys):
    import shutil

    moved = []
    for seed in ("seed1", "seed2"):
        shutil.copytree(runs / seed, tmp_path / seed)
        config = json.loads((tmp_path / seed / "run_config.json").read_text())
        config["data"] = [{**d, "path": str(tmp_path / "gone")} for d in config["data"]]
        (tmp_path / seed / "run_config.json").write_text(json.dumps(config))
        moved.append(str(tmp_path / seed))
    assert soup([*moved, "--out", str(tmp_path / "soup")]) == 2
    err = capsys.readouterr().err  # after the model loaders' progress lines: the dataset's problems, no traceback
    message = err[err.index("soup: "):]
    assert "gone: not a directory" in message and "Traceback" not in err
    assert not (tmp_path / "soup").exists()


def test_the_soup_split_unions_training_clips_and_keeps_only_shared_validation(tmp_path):
    from edge_coat.train.soup import soup_split

    data = [{"path": str(tmp_path / "corpus"), "task": "emotion"}]
    parts = [{"train": ["a", "b"], "val": ["c", "d"], "held_out": ["z"]},
             {"train": ["a", "c"], "val": ["b", "d"], "held_out": ["z"]}]
    runs = []
    for i, part in enumerate(parts):
        run = tmp_path / f"run{i}"
        run.mkdir()
        (run / "split.json").write_text(json.dumps({str(tmp_path / "corpus"): part}))
        runs.append(run)
    got = soup_split(runs, [{"data": data}] * 2)[str(tmp_path / "corpus")]
    # d is the one clip no ingredient trained on; b and c were trained on by one of them each
    assert got == {"train": ["a", "b", "c"], "val": ["d"], "held_out": ["z"]}


def test_a_soup_with_a_readout_fits_it_on_its_ingredients_clips(runs, separable, tmp_path):
    from edge_coat.model.coat import CoatModel

    out = tmp_path / "soup"
    assert soup([str(runs / "seed1"), str(runs / "seed2"), "--out", str(out), "--readout-c", "0.1",
                 "--readout-channels", "clean,telephone"]) == 0
    record = json.loads((out / "soup.json").read_text())
    split = json.loads((out / "split.json").read_text())
    (train,) = [v["train"] for v in split.values()]
    seed1 = json.loads((runs / "seed1" / "split.json").read_text())
    assert set(train) == set().union(*(v["train"] for v in seed1.values()))  # same val speaker: same training clips
    # two channel copies of each training clip, the fused temperature on the 4 shared validation clips
    assert record["readout"]["emotion"]["clips"] == 2 * len(train)
    assert record["readout"]["temperature"]["n"] == 4
    model = CoatModel.from_pretrained(out)
    assert model.config.readout["emotion"] and model.readout.tasks["emotion"].weight.abs().sum() > 0
    assert model.config.readout_temperature == pytest.approx(record["readout"]["temperature"]["temperature"])
    # the soup folder doubles as a run folder: the readout refit reads its split
    from edge_coat.train.readout import main as refit
    assert refit([str(out), "--model", str(out), "--out", str(tmp_path / "refit" / "model")]) == 0
    assert json.loads((tmp_path / "refit" / "readout.json").read_text())["emotion"]["clips"] == 3 * len(train)


def test_a_negative_readout_c_is_refused_in_one_line(runs, tmp_path, capsys):
    assert soup([str(runs / "seed1"), str(runs / "seed2"), "--out", str(tmp_path / "soup"), "--readout-c", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("soup: ") and "--readout-c" in err and len(err.strip().splitlines()) == 1
