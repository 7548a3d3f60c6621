"""Manifests: building, verifying (flipped byte, truncation, missing, unlisted files) and the CLI."""

from __future__ import annotations

import json

import pytest

from edge_coat.cli import main
from edge_coat.model.manifest import (
    MANIFEST_NAME,
    BundleError,
    build_manifest,
    hash_file,
    list_bundles,
    read_manifest,
    verify,
    write_manifest,
)


@pytest.fixture()
def bundle(tmp_path):
    root = tmp_path / "coat-test"
    (root / "sub").mkdir(parents=True)
    (root / "weights.bin").write_bytes(bytes(range(256)) * 40)
    (root / "config.json").write_text('{"a": 1}\n')
    (root / "sub" / "tokenizer.json").write_text('{"vocab": {}}\n')
    m = build_manifest(root, name="coat-test", role="coat", family="qwen2_audio", license="Apache-2.0",
                       data_provenance=["generated tones (no license needed)"])
    write_manifest(root, m)
    return root


def test_manifest_lists_every_file_with_hash_and_size(bundle):
    m = read_manifest(bundle)
    assert [f.path for f in m.files] == ["config.json", "sub/tokenizer.json", "weights.bin"]
    for f in m.files:
        assert (f.sha256, f.size) == hash_file(bundle / f.path)
    assert m.files[2].size == 256 * 40
    assert m.family == "qwen2_audio" and m.role == "coat" and m.license == "Apache-2.0"
    assert verify(bundle).name == "coat-test"


def test_flipped_byte_is_caught_and_named(bundle):
    path = bundle / "weights.bin"
    data = bytearray(path.read_bytes())
    data[1234] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError) as err:
        verify(bundle)
    assert err.value.problems == [err.value.problems[0]]
    assert "weights.bin: modified" in str(err.value)
    verify(bundle, check_hashes=False)  # same size: only the hash sees it


def test_truncated_file_is_caught_and_named(bundle):
    path = bundle / "weights.bin"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BundleError, match=r"weights\.bin: truncated: 10230 bytes, manifest says 10240"):
        verify(bundle, check_hashes=False)


def test_missing_and_unlisted_files_are_all_named(bundle):
    (bundle / "sub" / "tokenizer.json").unlink()
    (bundle / "extra.onnx").write_bytes(b"x")
    with pytest.raises(BundleError) as err:
        verify(bundle)
    text = str(err.value)
    assert "sub/tokenizer.json: missing" in text
    assert "extra.onnx: not listed" in text
    assert len(err.value.problems) == 2


def test_missing_or_malformed_manifest(tmp_path):
    with pytest.raises(BundleError, match="manifest.json: missing"):
        verify(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"name": "x", "files": []}))
    with pytest.raises(BundleError, match="not a valid manifest"):
        verify(tmp_path)


def test_manifest_paths_must_stay_inside_the_bundle(bundle):
    raw = json.loads((bundle / MANIFEST_NAME).read_text())
    raw["files"][0]["path"] = "../outside.bin"
    (bundle / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="stay inside"):
        verify(bundle)


def test_list_bundles_reports_ok_and_broken(bundle, tmp_path):
    other = tmp_path / "nested" / "second"
    other.mkdir(parents=True)
    (other / "w.bin").write_bytes(b"abc")
    write_manifest(other, build_manifest(other, name="second", role="base", family="audioflamingo3", license="x"))
    (other / "w.bin").write_bytes(b"ab")
    rows = {r.name: r for r in list_bundles(tmp_path)}
    assert rows["coat-test"].ok and rows["coat-test"].files == 3
    assert not rows["second"].ok and "w.bin: truncated" in rows["second"].problem


def test_models_cli_verify_list_and_manifest(bundle, tmp_path, capsys):
    assert main(["models", "verify", str(bundle)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["models", "list", str(tmp_path)]) == 0
    assert "coat-test" in capsys.readouterr().out

    base = tmp_path / "base-copy"
    base.mkdir()
    (base / "config.json").write_text("{}")
    args = ["models", "manifest", str(base), "--name", "qwen2-audio-7b", "--family", "qwen2_audio",
            "--license", "Apache-2.0", "--base-model", "Qwen/Qwen2-Audio-7B-Instruct"]
    assert main(args) == 0
    assert main(args) == 1  # refuses to overwrite without --force
    assert "--force" in capsys.readouterr().err
    assert read_manifest(base).base_model == "Qwen/Qwen2-Audio-7B-Instruct"

    (bundle / "config.json").write_text('{"a": 2}\n')
    assert main(["models", "verify", str(bundle)]) == 1
    assert "config.json: modified" in capsys.readouterr().err
    assert main(["models", "list", str(tmp_path), "--verify"]) == 1
    assert "BROKEN" in capsys.readouterr().out
