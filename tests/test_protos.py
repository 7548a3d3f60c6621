"""The committed gRPC/protobuf stubs must be exactly what scripts/gen_protos.sh makes from protos/."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_generated_stubs_are_up_to_date(tmp_path):
    protos = sorted((REPO / "protos" / "edge_coat" / "v1").glob("*.proto"))
    if not protos:
        pytest.fail("no .proto files under protos/edge_coat/v1")
    pytest.importorskip("grpc_tools")
    work = tmp_path / "repo"
    shutil.copytree(REPO / "protos", work / "protos")
    shutil.copytree(REPO / "scripts", work / "scripts")
    (work / "edge_coat" / "v1").mkdir(parents=True)
    subprocess.run(["bash", "scripts/gen_protos.sh"], cwd=work, check=True, capture_output=True,
                   env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    generated = sorted(p.name for p in (work / "edge_coat" / "v1").glob("*_pb2*.py*"))
    committed = sorted(p.name for p in (REPO / "edge_coat" / "v1").glob("*_pb2*.py*"))
    assert generated == committed, "run scripts/gen_protos.sh: the stub files differ from protos/"
    for name in generated:
        new = (work / "edge_coat" / "v1" / name).read_text()
        old = (REPO / "edge_coat" / "v1" / name).read_text()
        assert new == old, f"{name} is stale: run scripts/gen_protos.sh"
