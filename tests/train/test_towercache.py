"""Training on a frozen pretrained tower: the per-clip, per-channel tower cache and its batches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_coat.cli import main
from edge_coat.train.augment import apply_channel, telephone
from tests.model.whisper_helpers import tiny_whisper_folder
from tests.train.conftest import SR, TEST_EXPERTS

# A small training run and two evaluations: about a minute on a quiet machine, several under load.
pytestmark = pytest.mark.timeout(900)

TOWER_TRAIN = ["train", "--init", "qwen2_audio", "--size", "test", "--max-seconds", "1", "--clip-seconds", "3",
               "--encoder-layers", "1", "--experts", TEST_EXPERTS, "--no-progress", "--warmup-steps", "5"]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A random Whisper-shaped encoder imported the way the real one is (edge-coat models import-whisper)."""
    root = tmp_path_factory.mktemp("whisper")
    src = tiny_whisper_folder(root / "ct2")
    assert main(["models", "import-whisper", "--source", str(src), "--out", str(root / "enc")]) == 0
    return root / "enc"


@pytest.fixture(scope="module")
def tower_run(separable, encoder_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tower-run")
    rc = main([*TOWER_TRAIN, "--init-encoder", str(encoder_dir), "--tower-variants", "clean,telephone",
               "--data", f"{separable['train']}:emotion", "--steps", "30", "--lr", "3e-3", "--batch-size", "4",
               "--log-every", "10", "--checkpoint-every", "10", "--out", str(out / "run"),
               "--teacher-cache", str(out / "teacher"), "--tower-cache", str(out / "tower"),
               "--thinking-summary", "--llm-audio-stride", "5"])  # as the coat-tiny recipe trains
    assert rc == 0
    return out


def test_the_pretrained_tower_stays_frozen_and_the_rest_learns(tower_run, encoder_dir, separable, tmp_path):
    from edge_coat.model.coat import CoatModel
    from edge_coat.model.whisper import load_encoder

    rows = [json.loads(line) for line in (tower_run / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["answer"] < 0.5 * rows[0]["answer"]
    model = CoatModel.from_pretrained(tower_run / "run" / "model")
    pretrained = load_encoder(encoder_dir).state_dict()
    tower = model.base.model.audio_tower.state_dict()
    assert model.base.model.audio_tower.config.encoder_layers == 1
    for name, value in tower.items():
        ref = pretrained[name][: value.shape[0]] if name == "embed_positions.weight" else pretrained[name]
        torch.testing.assert_close(value, ref.float(), atol=1e-3, rtol=0, msg=name)  # fp16 on disk
    assert model.clip_seconds == 3
    assert model.config.thinking_summary and model.config.llm_audio_stride == 5 and model.thinking.summary is not None
    # stored in float16 (half the bundle), computed in float32
    from safetensors import safe_open

    for name in ("model.safetensors", "coat.safetensors"):
        with safe_open(str(tower_run / "run" / "model" / name), "pt") as f:
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys() if not k.startswith("readout.")}
            assert dtypes == {"F16"}, name
            # the answer readout alone stays float32 (its folded bias cancels large products)
            assert {f.get_slice(k).get_dtype() for k in f.keys() if k.startswith("readout.")} <= {"F32"}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    # 16 clips x 2 variants encoded once and kept on disk
    assert len(list((tower_run / "tower").rglob("*.npy"))) == 32
    out = tmp_path / "e.json"
    assert main(["eval", "--model", str(tower_run / "run" / "model"), "--task", "emotion",
                 "--data", str(separable["test"]), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["metrics"]["accuracy"] >= 0.9
    assert doc["per_class"]["happy"]["auc_vs_rest"] >= 0.9
    out_tel = tmp_path / "t.json"
    assert main(["eval", "--model", str(tower_run / "run" / "model"), "--task", "emotion", "--channel", "telephone",
                 "--data", str(separable["test"]), "--json", str(out_tel)]) == 0
    assert json.loads(out_tel.read_text())["n"] == doc["n"]


def test_cached_tower_output_is_what_serving_computes(separable, encoder_dir, tmp_path):
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.towercache import TowerCache, variant_wave
    from edge_coat.train.trainer import new_model
    from edge_coat.train.pipeline import task_specs

    cfg = TrainConfig(data=[{"path": str(separable["train"]), "task": "emotion"}], init_family="qwen2_audio",
                      init_size="test", max_seconds=1, init_encoder=str(encoder_dir), encoder_layers=2)
    model = new_model(cfg, task_specs(["emotion"]), [])
    wave = (0.2 * np.sin(2 * np.pi * 300 * np.arange(int(2.5 * SR)) / SR)).astype(np.float32)  # 3 chunks of 1 s
    cache = TowerCache(model, tmp_path, ["clean", "room"])
    clean, room = cache.features(wave)
    with torch.inference_mode():
        h, m = model.encode_tower([wave])  # (1, T, Da)
        e, em = model.encode([wave])  # (1, T, D): the serving path, projector included
        projected = model.adapter.project(h)
    assert clean.dtype == np.float16 and clean.shape == (int(m.sum()), 64)
    np.testing.assert_allclose(clean, h[0][m[0]].numpy(), atol=2e-2 * float(h.abs().max()))
    torch.testing.assert_close(projected[0][m[0]], e[0][em[0]], atol=1e-4, rtol=1e-4)
    assert clean.shape[0] == 25 + 25 + 12  # 2 full chunks of 1 s (25 positions each) + 0.5 s (50 mel frames -> 12)
    assert not np.allclose(room, clean)
    # the room variant is reproducible from the clip alone, and a second cache reads from disk
    again = TowerCache(model, tmp_path, ["clean", "room"])
    np.testing.assert_array_equal(again.features(wave)[1], room)
    assert again.computed == 0
    v = variant_wave(wave, "room", 123, 6.0)
    np.testing.assert_array_equal(v, variant_wave(wave, "room", 123, 6.0))


def test_tower_batches_crop_at_chunk_boundaries():
    from edge_coat.train.data import Example
    from edge_coat.train.towercache import TowerBatchMaker

    class Frames:  # a time-resolved expert at 25 Hz whose value is the frame index
        name, dim, frame_rate, pooled = "idx", 1, 25.0, False

    n = 5 * SR
    ex = Example(wave=np.zeros(n, np.float32), task="emotion", answer="happy",
                 targets={"idx": np.arange(126, dtype=np.float32)[:, None]})
    feats = np.arange(125, dtype=np.float16)[:, None].repeat(4, 1)  # (T=125, Da=4): position index
    maker = TowerBatchMaker([[ex]], [[[feats]]], {"emotion": "p"}, [Frames()], chunk_seconds=1.0,
                            crop_seconds=2.0, rng=np.random.default_rng(0))
    starts = set()
    for _ in range(30):
        b = maker(2)
        hidden, mask = b.tower
        for row in range(2):
            valid = hidden[row][mask[row]][:, 0].numpy()
            assert valid[0] % 25 == 0 and len(valid) <= 50
            np.testing.assert_array_equal(valid, np.arange(valid[0], valid[0] + len(valid)))
            target = b.expert_targets["idx"][row][b.expert_masks["idx"][row]][:, 0].numpy()
            assert target[0] == valid[0]  # the expert frames of the same stretch of audio
            starts.add(int(valid[0]))
    assert starts == {0, 25, 50, 75}  # 75..125 reaches the end: every position can be drawn


def test_telephone_channel_is_narrow_band_and_deterministic():
    t = np.arange(SR) / SR
    low = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    high = (0.3 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    hum = (0.3 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)
    out = telephone(low)
    assert out.shape == low.shape and out.dtype == np.float32
    assert np.corrcoef(out[1000:-1000], low[1000:-1000])[0, 1] > 0.98
    assert np.abs(telephone(high)).max() < 0.05  # above 3.4 kHz: gone
    assert np.sqrt(np.mean(telephone(hum)[2000:] ** 2)) < 0.3 * np.sqrt(np.mean(hum ** 2))  # below 300 Hz: cut
    np.testing.assert_array_equal(telephone(low), out)
    np.testing.assert_array_equal(apply_channel(low, "clean"), low)
    with pytest.raises(ValueError, match="unknown channel"):
        apply_channel(low, "radio")


def test_tower_options_are_checked(separable, capsys):
    rc = main([*TOWER_TRAIN, "--init-encoder", "/nonexistent", "--tower-variants", "clean", "--train-encoder",
               "--data", f"{separable['train']}:emotion", "--out", "/tmp/never"])
    assert rc == 2
    assert "cannot be combined with --train-encoder" in capsys.readouterr().err


def test_a_chunk_encodes_alike_in_every_window(separable, encoder_dir):
    """coat-tiny 1.0 computes features per encoder chunk, so a stretch of audio encodes the same whichever
    window it sits in: what lets a stream encode each chunk once (issue 14)."""
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.pipeline import task_specs
    from edge_coat.train.trainer import new_model

    cfg = TrainConfig(data=[{"path": str(separable["train"]), "task": "emotion"}], init_family="qwen2_audio",
                      init_size="test", max_seconds=1, init_encoder=str(encoder_dir))
    model = new_model(cfg, task_specs(["emotion"]), [])
    assert model.config.chunk_features == "chunk" and model.frontend.per_chunk
    rng = np.random.default_rng(3)
    wave = (0.1 * rng.standard_normal(4 * SR)).astype(np.float32)
    wave[SR:2 * SR] *= 8  # a loud second: whole-window features would change the other chunks' log-mel range
    with torch.inference_mode():
        whole, wm = model.encode([wave])  # (1, 100, D): four chunks
        later, lm = model.encode([wave[SR:]])  # (1, 75, D): the same audio from the second chunk on
        alone, am = model.encode([wave[2 * SR:3 * SR]])  # (1, 25, D): the third chunk alone
    torch.testing.assert_close(whole[0, 25:], later[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(whole[0, 50:75], alone[0], atol=1e-5, rtol=1e-5)


def test_background_noise_is_added_at_the_asked_snr():
    from edge_coat.train.augment import add_noise

    t = np.arange(4 * SR) / SR
    clean = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for snr in (20.0, 5.0):
        noisy = add_noise(clean, snr, np.random.default_rng(0))
        measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))
        assert abs(measured - snr) < 0.2
    np.testing.assert_array_equal(add_noise(clean, 10.0, np.random.default_rng(1)), add_noise(clean, 10.0, np.random.default_rng(1)))


def test_waveform_batches_mask_a_missing_teacher_reading_instead_of_dropping_the_expert():
    """Both batch makers share ``expert_batch``: a clip without a reading (an expert with a stride, or
    no speech) is masked for that expert; the others in the batch still teach it."""
    from edge_coat.train.augment import AugmentConfig
    from edge_coat.train.data import BatchMaker, Example

    class Pooled:
        name, dim, frame_rate, pooled = "voice", 3, None, True

    wave = np.zeros(SR, np.float32)
    have = Example(wave=wave, task="emotion", answer="happy", targets={"voice": np.ones(3, np.float32)})
    lack = Example(wave=wave, task="emotion", answer="sad", targets={})
    maker = BatchMaker([[have, lack]], {"emotion": "p"}, [Pooled()], 1.0, AugmentConfig(), np.random.default_rng(0))
    seen = set()
    for _ in range(10):
        b = maker(4)
        expected = np.array([a == "happy" for a in b.answers])
        if not expected.any():  # no clip of the batch has a reading: the expert sits this batch out
            assert "voice" not in b.expert_targets
            continue
        mask = b.expert_masks["voice"].numpy()
        np.testing.assert_array_equal(mask, expected)
        seen |= set(mask.tolist())
    assert seen == {True, False}


def test_bad_strides_and_snr_are_refused(separable, capsys):
    rc = main(["train", "--init", "qwen2_audio", "--size", "test", "--experts", TEST_EXPERTS, "--expert-stride",
               "pitch_prosody=0", "--data", f"{separable['train']}:emotion", "--out", "/tmp/never"])
    assert rc == 2 and "strides must be whole numbers >= 1" in capsys.readouterr().err
    rc = main(["eval", "--model", "/nonexistent", "--task", "emotion", "--data", str(separable["test"]),
               "--snr-db", "nan"])
    assert rc == 2 and "--snr-db must be between" in capsys.readouterr().err


def test_feature_masks_replace_stretches_and_bands_with_the_clip_mean():
    from edge_coat.train.towercache import mask_features

    rng = np.random.default_rng(0)
    h = rng.normal(size=(100, 40)).astype(np.float16) + np.arange(40, dtype=np.float16)  # (T, Da)
    mean = h.astype(np.float32).mean(0)
    masked_rows, masked_cols = [], []
    for _ in range(50):
        out = mask_features(h, 0.2, 0.2, rng)
        assert out.dtype == np.float32 and out.shape == h.shape
        rows = np.all(np.isclose(out, mean[None, :]), axis=1)  # whole positions set to the mean
        cols = np.all(np.isclose(out, mean[None, :]), axis=0)  # whole channels flattened to their mean
        masked_rows.append(rows.sum())
        masked_cols.append(cols.sum())
        keep = ~rows[:, None] & ~cols[None, :]
        np.testing.assert_array_equal(out[keep], h.astype(np.float32)[keep])  # the rest is untouched
    assert max(masked_rows) <= 20 and max(masked_cols) <= 8  # two parts of at most share / 2 each
    assert np.mean(masked_rows) > 3 and np.mean(masked_cols) > 1
    np.testing.assert_array_equal(mask_features(h, 0.0, 0.0, rng), h.astype(np.float32))


def test_validation_keeps_the_best_checkpoint(separable, encoder_dir, tmp_path):
    """--val-every scores the validation split during training and the written model carries the weights
    of the best-scoring step (not the last), with label smoothing and SpecAugment on the tower output on."""
    from edge_coat.model.coat import CoatModel

    out = tmp_path / "run"
    rc = main([*TOWER_TRAIN, "--init-encoder", str(encoder_dir), "--tower-variants", "clean",
               "--data", f"{separable['train']}:emotion", "--steps", "24", "--lr", "3e-3", "--batch-size", "4",
               "--log-every", "8", "--checkpoint-every", "8", "--val-every", "8", "--val-fraction", "0.25",
               "--time-mask", "0.2", "--channel-mask", "0.2", "--label-smoothing", "0.1", "--out", str(out),
               "--teacher-cache", str(tmp_path / "teacher"), "--tower-cache", str(tmp_path / "tower")])
    assert rc == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = {r["step"]: r["val/score"] for r in rows if "val/score" in r}
    assert sorted(val) == [8, 16, 24]
    assert all(0.0 <= v <= 1.0 for v in val.values())
    best = json.loads((out / "checkpoints" / "best.json").read_text())
    assert best["score"] == max(val.values())
    assert best["step"] == min(s for s, v in val.items() if v == best["score"])  # the first of equals
    kept = torch.load(out / "checkpoints" / "best.pt", weights_only=True)["trainable"]
    model = CoatModel.from_pretrained(out / "model")
    state = dict(model.named_parameters())
    assert "thinking.queries" in kept and "base.model.multi_modal_projector.linear.weight" in kept
    for name, value in kept.items():  # the written model is the best step's (fp16 on disk)
        torch.testing.assert_close(state[name].detach(), value.float(), atol=2e-3, rtol=1e-3, msg=name)
    if best["step"] != 24:  # and not the last step's, when that one scored lower
        last = torch.load(out / "checkpoints" / "step-000024.pt", weights_only=True)["trainable"]
        assert any(not torch.allclose(last[n], kept[n]) for n in kept)


def test_masks_and_validation_options_are_checked(separable, capsys):
    rc = main(["train", "--init", "qwen2_audio", "--size", "test", "--experts", TEST_EXPERTS, "--time-mask", "0.2",
               "--data", f"{separable['train']}:emotion", "--out", "/tmp/never"])
    assert rc == 2 and "act on the cached tower output" in capsys.readouterr().err
    rc = main(["train", "--init", "qwen2_audio", "--size", "test", "--experts", TEST_EXPERTS, "--val-every", "5",
               "--data", f"{separable['train']}:emotion", "--out", "/tmp/never"])
    assert rc == 2 and "--val-every selects weights on the validation split" in capsys.readouterr().err


def test_speed_variants_move_pitch_and_keep_the_clip_length():
    from edge_coat.train.augment import SPEEDS, speed_perturb

    t = np.arange(2 * SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)

    def peak_hz(x):
        spec = np.abs(np.fft.rfft(x[: SR] * np.hanning(SR)))
        return float(np.argmax(spec))  # 1 s of audio: bins are 1 Hz apart

    for name, factor in SPEEDS.items():
        out = apply_channel(tone, name)
        assert out.shape == tone.shape and out.dtype == np.float32
        assert abs(peak_hz(out) - 200 * factor) <= 1.0  # 180 Hz slow, 220 Hz fast
        np.testing.assert_array_equal(out, apply_channel(tone, name))  # deterministic
    slow = speed_perturb(tone, 0.9)
    assert np.abs(slow[: int(1.7 * SR)]).max() > 0.4  # the slowed copy fills the clip (cut, not padded)
    fast = speed_perturb(tone, 1.1)
    assert np.abs(fast[-int(0.05 * SR):]).max() == 0.0  # the faster copy ends early: zero-padded


class _PooledExpert:  # the two target shapes expert_batch handles, without running a teacher
    name, dim, frame_rate, pooled = "voice", 2, 0.0, True


class _FrameExpert:
    name, dim, frame_rate, pooled = "idx", 1, 25.0, False


def _clip_with_slow_variant(**example):
    """A 2 s clip whose targets are all ones, and its two tower variants: clean (zeros) and slow (ones), so a
    batch row tells by its values which variant it drew. ``example``: further Example fields."""
    from edge_coat.train.data import Example

    ex = Example(wave=np.zeros(2 * SR, np.float32), task=example.pop("task", "emotion"), answer="happy",
                 targets={"voice": np.ones(2, np.float32), "idx": np.ones((51, 1), np.float32)}, **example)
    return ex, [np.zeros((50, 4), np.float16), np.ones((50, 4), np.float16)]


def test_perturbed_variants_carry_only_the_kept_expert_losses():
    from edge_coat.train.data import Example
    from edge_coat.train.towercache import TowerBatchMaker

    ex, (clean, slow) = _clip_with_slow_variant()
    maker = TowerBatchMaker([[ex]], [[[clean, slow]]], {"emotion": "p"}, [_PooledExpert(), _FrameExpert()], chunk_seconds=1.0,
                            crop_seconds=2.0, rng=np.random.default_rng(0), perturbed=[1])
    seen = set()
    for _ in range(10):
        b = maker(4)
        hidden, _ = b.tower
        for row in range(4):
            perturbed = bool(hidden[row, 0, 0] == 1)
            seen.add(perturbed)
            assert bool(b.expert_masks["voice"][row]) is not perturbed
            assert bool(b.expert_masks["idx"][row].any()) is not perturbed
        assert b.answers == ["happy"] * 4  # every row still trains the answer
    assert seen == {True, False}
    # by default a machine's clips never draw a speed-perturbed copy
    machine = Example(wave=ex.wave, task="anomaly", answer="normal", targets=ex.targets)
    maker = TowerBatchMaker([[machine]], [[[clean, slow]]], {"anomaly": "p"}, [_PooledExpert(), _FrameExpert()], chunk_seconds=1.0,
                            crop_seconds=2.0, rng=np.random.default_rng(0), perturbed=[1])
    for _ in range(10):
        b = maker(4)
        assert float(b.tower[0].max()) == 0.0 and bool(b.expert_masks["voice"].all())
    # asked for, they do; an expert whose target survives the perturbation keeps training on them
    maker = TowerBatchMaker([[machine]], [[[clean, slow]]], {"anomaly": "p"}, [_PooledExpert(), _FrameExpert()], chunk_seconds=1.0,
                            crop_seconds=2.0, rng=np.random.default_rng(0), perturbed=[1],
                            perturbed_tasks=["anomaly"], perturbed_experts=["idx"])
    b = maker(16)
    perturbed = b.tower[0][:, 0, 0] == 1
    assert bool(perturbed.any()) and not bool(perturbed.all())
    assert bool((b.expert_masks["voice"] == ~perturbed).all())
    assert bool(b.expert_masks["idx"].any(-1).all())


def test_perturbed_variants_heard_by_the_teachers_train_every_expert():
    from edge_coat.train.towercache import TowerBatchMaker

    # --speed-teachers: the slow variant (index 1) carries the targets its own audio gave the teachers
    ex, (clean, slow) = _clip_with_slow_variant(
        variant_targets={1: {"voice": np.full(2, 5.0, np.float32), "idx": np.full((51, 1), 5.0, np.float32)}})
    maker = TowerBatchMaker([[ex]], [[[clean, slow]]], {"emotion": "p"}, [_PooledExpert(), _FrameExpert()], chunk_seconds=1.0,
                            crop_seconds=2.0, rng=np.random.default_rng(0), perturbed=[1])
    b = maker(16)
    perturbed = b.tower[0][:, 0, 0] == 1
    assert bool(perturbed.any()) and not bool(perturbed.all())
    assert bool(b.expert_masks["voice"].all()) and bool(b.expert_masks["idx"].all())  # nothing masked
    # each row's targets are those of the audio the tower heard
    expected = torch.where(perturbed, 5.0, 1.0)
    assert torch.equal(b.expert_targets["voice"][:, 0], expected)
    assert torch.equal(b.expert_targets["idx"][:, 0, 0], expected)
    assert ex.targets["voice"][0] == 1.0  # the clip's own targets are left as they were


def test_speed_variants_are_accepted_tower_variants():
    import pydantic

    from edge_coat.train.config import DataSource, TrainConfig

    base = dict(data=[DataSource(path="x", task="emotion")], init_family="qwen2_audio")
    assert TrainConfig(**base, tower_variants=["clean", "slow", "fast"]).tower_variants == ["clean", "slow", "fast"]
    with pytest.raises(pydantic.ValidationError):
        TrainConfig(**base, tower_variants=["clean", "radio"])
    assert TrainConfig(**base).speed_tasks == ["emotion"]
    with pytest.raises(pydantic.ValidationError, match="not among the experts"):
        TrainConfig(**base, tower_variants=["clean", "slow"], speed_experts=["no_such_expert"])
    with pytest.raises(pydantic.ValidationError, match="add slow and/or fast"):
        TrainConfig(**base, tower_variants=["clean"], speed_experts=["sound_tags"])
    with pytest.raises(pydantic.ValidationError, match="add slow and/or fast"):
        TrainConfig(**base, tower_variants=["clean", "telephone"], speed_teachers=True)
    with pytest.raises(pydantic.ValidationError, match="drop --speed-experts"):
        TrainConfig(**base, tower_variants=["clean", "slow"], speed_teachers=True, speed_experts=["sound_tags"])


def test_a_run_trains_on_speed_variants_end_to_end(separable, encoder_dir, tmp_path):
    kept = TEST_EXPERTS.split(",")[0]
    rc = main([*TOWER_TRAIN, "--init-encoder", str(encoder_dir), "--tower-variants", "clean,slow,fast",
               "--speed-experts", kept, "--data", f"{separable['train']}:emotion", "--steps", "4",
               "--batch-size", "4", "--checkpoint-every", "4", "--out", str(tmp_path / "run"),
               "--teacher-cache", str(tmp_path / "teacher"), "--tower-cache", str(tmp_path / "tower")])
    assert rc == 0
    cfg = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert cfg["tower_variants"] == ["clean", "slow", "fast"] and cfg["speed_experts"] == [kept]
    cached = {p.name.rsplit("-", 1)[1] for p in (tmp_path / "tower").rglob("*.npy")}
    assert cached == {"clean.npy", "slow.npy", "fast.npy"}
    assert (tmp_path / "run" / "model" / "coat.safetensors").exists()


def test_speed_teachers_run_the_teachers_on_the_perturbed_audio(separable, encoder_dir, tmp_path):
    from edge_coat.data.folder import load_audio
    from edge_coat.experts.cache import TeacherCache, audio_sha256
    from edge_coat.train.augment import speed_perturb

    rc = main([*TOWER_TRAIN, "--init-encoder", str(encoder_dir), "--tower-variants", "clean,fast",
               "--speed-teachers", "--data", f"{separable['train']}:emotion", "--steps", "2",
               "--batch-size", "4", "--checkpoint-every", "2", "--out", str(tmp_path / "run"),
               "--teacher-cache", str(tmp_path / "teacher"), "--tower-cache", str(tmp_path / "tower")])
    assert rc == 0
    assert json.loads((tmp_path / "run" / "run_config.json").read_text())["speed_teachers"] is True
    (trained,) = [part["train"] for part in json.loads((tmp_path / "run" / "split.json").read_text()).values()]
    cache = TeacherCache(tmp_path / "teacher")
    for expert in TEST_EXPERTS.split(","):
        # every training clip was heard by the teacher as recorded and 1.1x as fast, and nothing else was
        stored = {p.stem for p in (tmp_path / "teacher" / expert).rglob("*.npz")}
        assert len(stored) == 2 * len(trained)
        for name in trained:
            wave = load_audio(Path(separable["train"]) / name)
            assert cache.path_for(expert, audio_sha256(wave)).stem in stored
            assert cache.path_for(expert, audio_sha256(speed_perturb(wave, 1.1))).stem in stored


def test_the_top_blocks_cached_input_gives_the_tower_output_serving_computes(separable, encoder_dir, tmp_path):
    """--tower-lora-rank caches the input of the tower's top block; that block, the pool and the final norm
    run on it must give exactly what ``encode_tower`` gives, for a clip of several chunks and a partial one."""
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.pipeline import task_specs
    from edge_coat.train.towercache import TopInputCache, top_fingerprint, top_output
    from edge_coat.train.trainer import add_tower_lora, new_model

    cfg = TrainConfig(data=[{"path": str(separable["train"]), "task": "emotion"}], init_family="qwen2_audio",
                      init_size="test", max_seconds=1, init_encoder=str(encoder_dir), encoder_layers=2)
    model = new_model(cfg, task_specs(["emotion"]), [])
    model.eval()
    for seconds in (0.3, 1.0, 2.5):
        wave = (0.2 * np.sin(2 * np.pi * 300 * np.arange(int(seconds * SR)) / SR)).astype(np.float32)
        with torch.inference_mode():
            h, m = model.encode_tower([wave])
            top, conv, valid = model.top_inputs(wave)
            out, om = model.tower_from_top(top, conv, valid, [top.shape[0]])
        assert top.shape[0] == -(-int(seconds * SR) // SR)  # one row per 1 s chunk
        torch.testing.assert_close(out[om], h[m], atol=1e-5, rtol=1e-5)
    cache = TopInputCache(model, tmp_path, ["clean", "telephone"])
    clean, tel = cache.features(wave)
    assert clean[0].dtype == np.float16 and clean[0].shape == (3, 50, 64) and clean[2].tolist() == [25, 25, 12]
    np.testing.assert_allclose(top_output(model, clean).astype(np.float32), h[m].numpy(),
                               atol=2e-2 * float(h.abs().max()))
    assert not np.allclose(tel[0], clean[0])
    again = TopInputCache(model, tmp_path, ["clean", "telephone"])
    np.testing.assert_array_equal(again.features(wave)[1][0], tel[0])
    assert again.computed == 0
    damaged = next(again.root.rglob("*-1-telephone.npz"))
    damaged.write_bytes(damaged.read_bytes()[:100])  # a truncated file is encoded again, not a crash
    np.testing.assert_array_equal(again.features(wave)[1][0], tel[0])
    assert again.computed == 1
    # the cache key ignores the top block (its LoRA trains) and the final norm (a folded standardisation)
    key = top_fingerprint(model)
    add_tower_lora(model, 4, 8.0)
    with torch.no_grad():
        model.base.model.audio_tower.layer_norm.weight.mul_(2.0)
    assert top_fingerprint(model) == key


def test_the_tower_anchor_measures_how_far_the_lora_moved_the_tower(separable, encoder_dir):
    """--tower-anchor-weight: the anchor is the mean squared difference between the tower output with and without
    the top block's LoRA. It is zero while the LoRA is untouched, grows as the LoRA moves, trains only the LoRA
    (through the adapted path), and leaves the adapters on and trainable."""
    from edge_coat.model.coat import CoatBatch, adapters_off
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.pipeline import task_specs
    from edge_coat.train.trainer import add_tower_lora, new_model

    cfg = TrainConfig(data=[{"path": str(separable["train"]), "task": "emotion"}], init_family="qwen2_audio",
                      init_size="test", max_seconds=1, init_encoder=str(encoder_dir), encoder_layers=2)
    model = new_model(cfg, task_specs(["emotion"]), [])
    add_tower_lora(model, 4, 8.0)
    block = model.base.model.audio_tower.layers[-1]
    lora = {n: p for n, p in block.named_parameters() if "lora_" in n}
    for p in model.parameters():
        p.requires_grad_(False)
    for p in lora.values():
        p.requires_grad_(True)
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(int(s * SR))).astype(np.float32) for s in (1.5, 0.7)]
    tops = [model.top_inputs(w) for w in waves]
    top = (torch.cat([t[0] for t in tops]), torch.cat([t[1] for t in tops]), torch.cat([t[2] for t in tops]),
           [t[0].shape[0] for t in tops])
    batch = CoatBatch(waves=[None, None], prompts=["p", "p"], answers=["happy", "sad"], tower_top=top)
    plain = model.training_losses(batch)
    assert "tower_anchor" not in plain
    at_start = model.training_losses(batch, tower_anchor=2.0)
    assert float(at_start["tower_anchor"].detach()) == 0.0  # B starts at zero: the LoRA changes nothing yet
    torch.testing.assert_close(at_start["total"], plain["total"])
    with torch.no_grad():
        for n, p in lora.items():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    moved = model.training_losses(batch, tower_anchor=2.0)
    anchor = float(moved["tower_anchor"].detach())
    with torch.no_grad():
        adapted, mask = model.tower_from_top(*top)
        with adapters_off(block):
            pretrained, _ = model.tower_from_top(*top)
    assert anchor > 0 and anchor == pytest.approx(float((adapted[mask] - pretrained[mask]).pow(2).mean()), rel=1e-5)
    unanchored = model.training_losses(batch)
    torch.testing.assert_close(moved["total"], unanchored["total"] + 2.0 * moved["tower_anchor"])
    moved["tower_anchor"].backward()
    assert all(p.requires_grad for p in lora.values())  # switched back on, and still training
    assert any(float(p.grad.abs().max()) > 0 for n, p in lora.items() if "lora_B" in n)
    for p in lora.values():  # a frozen LoRA stays frozen: switching it off and on again leaves it as it was
        p.requires_grad_(False)
    with adapters_off(block):
        pass
    assert not any(p.requires_grad for p in lora.values())
    assert not any(p.requires_grad for n, p in block.named_parameters() if "lora_" not in n)
    with pytest.raises(ValueError, match="must carry the top block's input"):
        model.training_losses(CoatBatch(waves=waves, prompts=["p", "p"], answers=["happy", "sad"]), tower_anchor=1.0)


def test_tower_batches_of_top_block_inputs_crop_whole_chunks():
    from edge_coat.train.data import Example
    from edge_coat.train.towercache import TowerBatchMaker

    class Frames:  # a time-resolved expert at 25 Hz whose value is the frame index
        name, dim, frame_rate, pooled = "idx", 1, 25.0, False

    ex = Example(wave=np.zeros(int(4.5 * SR), np.float32), task="emotion", answer="happy",
                 targets={"idx": np.arange(113, dtype=np.float32)[:, None]})
    hidden = np.arange(5, dtype=np.float16)[:, None, None].repeat(50, 1).repeat(4, 2)  # (5 chunks, 50, Da=4): chunk index
    item = (hidden, np.array([50, 50, 50, 50, 25], np.int16), np.array([25, 25, 25, 25, 12], np.int16))
    maker = TowerBatchMaker([[ex]], [[[item]]], {"emotion": "p"}, [Frames()], chunk_seconds=1.0,
                            crop_seconds=2.0, rng=np.random.default_rng(0))
    starts = set()
    for _ in range(20):
        b = maker(3)
        assert b.tower is None
        h, conv, valid, counts = b.tower_top
        assert counts == [2, 2, 2] and h.shape == (6, 50, 4)
        for row in range(3):
            first = int(h[2 * row, 0, 0])
            starts.add(first)
            np.testing.assert_array_equal(h[2 * row:2 * row + 2, 0, 0].numpy(), [first, first + 1])
            target = b.expert_targets["idx"][row][b.expert_masks["idx"][row]][:, 0].numpy()
            assert target[0] == 25 * first and abs(len(target) - int(valid[2 * row:2 * row + 2].sum())) <= 1
    assert starts == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="not on the top block's input"):
        TowerBatchMaker([[ex]], [[[item]]], {"emotion": "p"}, [Frames()], chunk_seconds=1.0, crop_seconds=2.0,
                        rng=np.random.default_rng(0), time_mask=0.1)


def test_a_tower_lora_trains_the_top_block_and_is_merged_into_it(separable, encoder_dir, tmp_path):
    """--tower-lora-rank: the top block moves, the blocks below it do not, the saved tower has plain weights
    (no LoRA left), and the saved model serves what training validated: the tower output is what the merged
    block computes, and a standardisation folded in keeps its map under a new cache key. The run is stopped
    and resumed (the LoRA's weights and optimizer state come back from the checkpoint) and validates on the
    waves through the adapted tower."""
    from edge_coat.model.coat import CoatModel
    from edge_coat.model.whisper import load_encoder
    from edge_coat.train.towercache import tower_fingerprint

    out = tmp_path / "run"
    args = [*TOWER_TRAIN, "--encoder-layers", "2", "--init-encoder", str(encoder_dir),
            "--tower-variants", "clean,telephone", "--standardize-tower", "--tower-lora-rank", "4",
            "--tower-lora-alpha", "8", "--tower-anchor-weight", "0.5", "--val-every", "10", "--val-fraction", "0.25",
            "--data", f"{separable['train']}:emotion", "--lr", "3e-3", "--batch-size", "4",
            "--log-every", "10", "--checkpoint-every", "10", "--out", str(out),
            "--teacher-cache", str(tmp_path / "teacher"), "--tower-cache", str(tmp_path / "tower"),
            "--thinking-summary", "--llm-audio-stride", "5"]
    assert main([*args, "--steps", "20"]) == 0
    first = torch.load(out / "checkpoints" / "step-000020.pt", weights_only=True)["trainable"]
    assert main([*args, "--steps", "30", "--resume"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in rows if "answer" in r]
    assert [r["step"] for r in losses] == [10, 20, 30]  # resumed at 20, not restarted
    assert sorted(r["step"] for r in rows if "val/score" in r) == [10, 20, 30]
    assert losses[-1]["answer"] < 0.5 * losses[0]["answer"]
    assert all(r["tower_anchor"] > 0 for r in losses)  # the anchor is logged, and the LoRA moved from the start
    recorded = json.loads((out / "run_config.json").read_text())
    assert (recorded["tower_lora_rank"], recorded["tower_lora_alpha"], recorded["tower_anchor_weight"]) == (4, 8.0, 0.5)
    ckpt = torch.load(out / "checkpoints" / "step-000030.pt", weights_only=True)["trainable"]
    lora = [n for n in ckpt if "lora_" in n]
    assert lora and all(".layers.1." in n for n in lora)  # the top block only
    assert any(float(ckpt[n].abs().max()) > 0 for n in lora if "lora_B" in n)  # B left zero: it moved
    assert set(first) == set(ckpt) and any(not torch.equal(first[n], ckpt[n]) for n in lora)  # trained on after resuming
    trained = json.loads((out / "split.json").read_text())[str(separable["train"])]["train"]
    assert 0 < len(trained) < 16  # a quarter of the 16 clips validates
    assert len(list((tmp_path / "tower").rglob("*.npz"))) == 2 * len(trained)  # training clips x 2 variants
    model = CoatModel.from_pretrained(out / "model")
    tower = model.base.model.audio_tower.state_dict()
    assert not any("lora" in n for n in tower)
    pretrained = load_encoder(encoder_dir).state_dict()
    for name, value in tower.items():
        if name.startswith("layers.0."):  # below the top block: the pretrained weights
            torch.testing.assert_close(value, pretrained[name].float(), atol=1e-3, rtol=0, msg=name)
    moved = max(float((tower[n] - pretrained[n].float()).abs().max()) for n in tower
                if n.startswith("layers.1.") and n.endswith("proj.weight"))
    assert moved > 1e-3
    st = model.config.tower_standardized
    assert st is not None and st.source_fingerprint.startswith("adapted-")
    init = CoatModel.from_pretrained(out / "init")  # the model before training: the frozen tower's cache key
    assert not init.config.tower_standardized.source_fingerprint.startswith("adapted-")
    assert st.source_fingerprint == "adapted-" + tower_fingerprint(model)  # the merged, saved tower
    assert init.config.tower_standardized.mean == st.mean  # the fold keeps its map: the projector trained through it
    res = tmp_path / "e.json"
    assert main(["eval", "--model", str(out / "model"), "--task", "emotion", "--data", str(separable["test"]),
                 "--json", str(res)]) == 0
    assert json.loads(res.read_text())["metrics"]["accuracy"] >= 0.9


def test_tower_lora_options_are_checked(separable, capsys):
    base = ["train", "--init", "qwen2_audio", "--size", "test", "--experts", TEST_EXPERTS,
            "--data", f"{separable['train']}:emotion", "--out", "/tmp/never", "--tower-lora-rank", "4"]
    assert main(base) == 2
    assert "--tower-lora-rank caches the top block's input" in capsys.readouterr().err
    assert main([*base, "--tower-variants", "clean", "--time-mask", "0.1"]) == 2
    assert "drop them with --tower-lora-rank" in capsys.readouterr().err
    assert main([*base[:-2], "--tower-variants", "clean", "--tower-anchor-weight", "1"]) == 2
    assert "--tower-anchor-weight keeps a tower LoRA near the pretrained tower" in capsys.readouterr().err


def test_an_excerpt_is_the_loudest_short_stretch_of_the_clip():
    from edge_coat.train.augment import EXCERPT_SECONDS, apply_channel, loudest_stretch

    rng = np.random.default_rng(0)
    wave = (0.01 * rng.standard_normal(4 * SR)).astype(np.float32)
    wave[int(2.5 * SR):int(3.0 * SR)] += 0.5 * np.sin(2 * np.pi * 220 * np.arange(SR // 2) / SR).astype(np.float32)
    assert abs(loudest_stretch(wave, SR // 2) - int(2.5 * SR)) <= SR // 100  # the burst, found to 10 ms
    for seed in range(20):
        out = apply_channel(wave, "excerpt", np.random.default_rng(seed))
        assert EXCERPT_SECONDS[0] * SR <= len(out) <= EXCERPT_SECONDS[1] * SR and out.dtype == np.float32
        start = int(np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(wave, len(out)) == out, axis=1))[0])
        assert start <= int(2.75 * SR) <= start + len(out)  # the burst's middle stays inside
        np.testing.assert_array_equal(out, apply_channel(wave, "excerpt", np.random.default_rng(seed)))
    short = wave[: SR // 2]
    np.testing.assert_array_equal(apply_channel(short, "excerpt", np.random.default_rng(0)), short)  # whole


def test_excerpt_variants_train_answers_only_and_only_for_their_tasks():
    from edge_coat.train.data import Example
    from edge_coat.train.towercache import TowerBatchMaker

    ex, (clean, _) = _clip_with_slow_variant()
    short = np.ones((30, 4), np.float16)  # 1.2 s: an excerpt is shorter than its clip
    experts = [_PooledExpert(), _FrameExpert()]
    maker = TowerBatchMaker([[ex]], [[[clean, short]]], {"emotion": "p"}, experts, chunk_seconds=1.0,
                            crop_seconds=2.0, rng=np.random.default_rng(0), blind=[1])
    b = maker(32)
    hidden, mask = b.tower
    drew = hidden[:, 0, 0] == 1
    assert bool(drew.any()) and not bool(drew.all())
    assert bool((mask.sum(1) == torch.where(drew, 30, 50)).all())  # the excerpt keeps its own length
    assert bool((b.expert_masks["voice"] == ~drew).all())
    assert bool((b.expert_masks["idx"].any(-1) == ~drew).all())
    assert b.answers == ["happy"] * 32
    # a speed copy's kept experts do not extend to excerpts
    maker = TowerBatchMaker([[ex]], [[[clean, short]]], {"emotion": "p"}, experts, chunk_seconds=1.0,
                            crop_seconds=2.0, rng=np.random.default_rng(0), blind=[1], perturbed_experts=["idx"])
    b = maker(32)
    drew = b.tower[0][:, 0, 0] == 1
    assert bool(drew.any()) and not bool(b.expert_masks["idx"][drew].any())
    # other tasks never draw it
    machine = Example(wave=ex.wave, task="anomaly", answer="normal", targets=ex.targets)
    maker = TowerBatchMaker([[machine]], [[[clean, short]]], {"anomaly": "p"}, experts, chunk_seconds=1.0,
                            crop_seconds=2.0, rng=np.random.default_rng(0), blind=[1])
    assert float(maker(32).tower[0].max()) == 0.0
    # and a task left with no variant at all is a clear error
    maker = TowerBatchMaker([[machine]], [[[short]]], {"anomaly": "p"}, experts, chunk_seconds=1.0,
                            crop_seconds=2.0, rng=np.random.default_rng(0), blind=[0])
    with pytest.raises(ValueError, match="no tower variant left for anomaly"):
        maker(1)


def test_a_run_trains_on_excerpts_end_to_end(separable, encoder_dir, tmp_path):
    rc = main([*TOWER_TRAIN, "--init-encoder", str(encoder_dir), "--tower-variants", "clean,excerpt",
               "--data", f"{separable['train']}:emotion", "--steps", "4",
               "--batch-size", "4", "--checkpoint-every", "4", "--out", str(tmp_path / "run"),
               "--teacher-cache", str(tmp_path / "teacher"), "--tower-cache", str(tmp_path / "tower")])
    assert rc == 0
    cfg = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert cfg["tower_variants"] == ["clean", "excerpt"] and cfg["excerpt_tasks"] == ["emotion"]
    cached = sorted((tmp_path / "tower").rglob("*-excerpt.npy"))
    clean = {p.name.split("-")[0]: p for p in (tmp_path / "tower").rglob("*-clean.npy")}
    assert cached and len(cached) == len(clean)
    longer = [np.load(clean[p.name.split("-")[0]]).shape[0] > np.load(p).shape[0] for p in cached]
    assert any(longer)  # clips longer than 1.6 s are cut
    assert (tmp_path / "run" / "model" / "coat.safetensors").exists()
