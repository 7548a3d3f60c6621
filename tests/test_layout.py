"""The README's layout table matches the folders: every package of edge_coat/, every top-level module and
every top-level folder of the repository is listed, and everything listed exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _listed() -> set[str]:
    text = (REPO / "README.md").read_text()
    table = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    out = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            out |= {p.rstrip("/") for p in re.findall(r"`([^`]+)`", first)}
    return out


def test_readme_layout_table_matches_the_folders():
    listed = _listed()
    missing = sorted(p for p in listed if not (REPO / p).exists())
    assert not missing, f"README lists paths that do not exist: {missing}"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    top = {f.split("/")[0] for f in tracked if "/" in f and not f.startswith(".")}
    packages = {str(p.parent.relative_to(REPO)) for p in (REPO / "edge_coat").glob("*/__init__.py")}
    modules = {f"edge_coat/{p.name}" for p in (REPO / "edge_coat").glob("*.py")} - {"edge_coat/__init__.py",
                                                                                   "edge_coat/__main__.py"}
    expected = (top - {"edge_coat"}) | packages | modules
    unlisted = sorted(expected - listed)
    assert not unlisted, f"README's layout table does not list: {unlisted}"
