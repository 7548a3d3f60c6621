"""The model card's seed table (scripts/coat_tiny_table.py --seeds): each seed's figure and their mean."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table():
    spec = importlib.util.spec_from_file_location("coat_tiny_table", ROOT / "scripts" / "coat_tiny_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(folder: Path, name: str, metrics: dict, angry_auc: float | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    per_class = {} if angry_auc is None else {"angry": {"auc_vs_rest": angry_auc}}
    (folder / f"{name}.json").write_text(json.dumps({"metrics": metrics, "per_class": per_class}))


def test_seed_table_gives_each_seed_and_the_mean_of_those_measured(table, tmp_path, capsys):
    a, b, c = tmp_path / "s1", tmp_path / "s2", tmp_path / "abl"
    _write(a, "emotion-coat", {"ua": 0.6, "accuracy": 0.61}, angry_auc=0.9)
    _write(b, "emotion-coat", {"ua": 0.7, "accuracy": 0.71}, angry_auc=1.0)
    _write(a, "events-coat", {"accuracy": 0.5, "ua": 0.4})  # seed 2 has no UrbanSound8K figure
    _write(c, "emotion-no-experts", {"ua": 0.55})
    rc = table.main([str(a), "--seeds", f"new=coat:{a},{b}", "--seeds", f"ablation=no-experts:{c}"])
    assert rc == 0
    rows = {line.split(" | ")[0].lstrip("| "): line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ")}
    assert rows["RAVDESS 8-class UA (spk 14-16)"].endswith("| 0.600 / 0.700 / **0.650** | 0.550 / **0.550** |")
    assert "0.900 / 1.000 / **0.950**" in rows["angry-vs-rest AUC (RAVDESS)"]
    assert "0.500 / - / **0.500**" in rows["UrbanSound8K accuracy"]
    assert rows["EMOVO UA (f3, m3)"].endswith("| - / - / not run | - / not run |")


def test_seed_spec_errors_name_the_expected_form(table):
    with pytest.raises(SystemExit, match="LABEL=coat:DIR"):
        table.parse_seeds("new=coat")
    with pytest.raises(SystemExit, match="LABEL=coat:DIR"):
        table.parse_seeds("new=other:dir")
