"""deploy/airgap: build a bundle, then install it with the network cut off.

The bundle is built for a small stand-in project named ``edge-coat`` (one pure-Python dependency,
one optional dependency for the ``cpu`` extra, one model folder and an ``edge-coat models verify``
command), from a local folder of wheels: the real dependency set is gigabytes of torch. The
scripts, pip's resolution and the checks are the real ones. The full bundle is a documented
command (deploy/README.md), not a test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "deploy" / "airgap" / "build-bundle.sh"
INSTALL = REPO / "deploy" / "airgap" / "install-bundle.sh"

#: The stand-in's `edge-coat models verify DIR`: every file named in DIR/MANIFEST has its sha256.
STANDIN_CLI = '''
import hashlib, sys
from pathlib import Path

def main():
    args = sys.argv[1:]
    if args[:1] == ["models"] and args[1:2] == ["--help"]:
        print("usage: edge-coat models verify DIR")
        return 0
    if args[:2] == ["models", "verify"]:
        folder = Path(args[2])
        for line in (folder / "MANIFEST").read_text().splitlines():
            digest, name = line.split()
            if hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest:
                print(f"models verify: {folder / name}: sha256 mismatch")
                return 1
        print(f"models verify: {folder.name} verified")
        return 0
    import standin_dep, standin_cpu
    print("edge-coat stand-in", standin_dep.VALUE, standin_cpu.VALUE)
    return 0
'''


def _pyproject(name: str, deps: list[str], extra: str = "") -> str:
    return (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "0.0.1"\ndependencies = {deps!r}\n{extra}'
    ).replace("'", '"')


def _package(root: Path, name: str, module: str, deps: list[str], code: str, extra: str = "") -> Path:
    (root / module).mkdir(parents=True)
    (root / module / "__init__.py").write_text(code)
    (root / "pyproject.toml").write_text(
        _pyproject(name, deps, extra) + f'[tool.setuptools]\npackages = ["{module}"]\n')
    return root


def _clean_pip_env() -> dict:
    """pip sees only what the test gives it: no machine-wide config, index or find-links."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHON=sys.executable)
    return env


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=_clean_pip_env(),
                          timeout=300, **kw)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A bundle folder (and its .tar beside it) built from a local 'registry' folder of wheels."""
    tmp = tmp_path_factory.mktemp("airgap")
    registry = tmp / "registry"
    deps = [_package(tmp / "dep", "standin-dep", "standin_dep", [], "VALUE = 'dep'\n"),
            _package(tmp / "cpu", "standin-cpu", "standin_cpu", [], "VALUE = 'cpu'\n")]
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                  "--wheel-dir", registry, *deps])
    assert built.returncode == 0, built.stderr
    project = _package(tmp / "project", "edge-coat", "edge_coat_standin", ["standin-dep"], "",
                       '[project.optional-dependencies]\ncpu = ["standin-cpu"]\n'
                       '[project.scripts]\nedge-coat = "edge_coat_standin.cli:main"\n')
    (project / "edge_coat_standin" / "cli.py").write_text(STANDIN_CLI)
    model = project / "models" / "coat-standin"
    model.mkdir(parents=True)
    (model / "weights.bin").write_bytes(bytes(range(256)) * 16)
    (model / "MANIFEST").write_text(f"{hashlib.sha256((model / 'weights.bin').read_bytes()).hexdigest()} weights.bin\n")
    out = tmp / "edge-coat-bundle"
    result = _run(["bash", BUILD, "--project", project, "--out", out, "--no-index", "--find-links", registry, "--tar"])
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _copy(bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy, symlinks=True)
    return copy


def _rewrite_sums(folder: Path) -> None:
    """What a build from changed inputs would write (used to smuggle a bad model past SHA256SUMS)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    (folder / "SHA256SUMS").write_text("".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder)}\n" for p in files))


def test_bundle_holds_wheels_models_deploy_files_and_checksums(bundle):
    wheels = sorted(p.name for p in (bundle / "wheelhouse").iterdir())
    assert [w.split("-")[0] for w in wheels] == ["edge_coat", "standin_cpu", "standin_dep"]
    meta = dict(line.split("=", 1) for line in (bundle / "BUNDLE").read_text().splitlines())
    assert meta["name"] == "edge_coat" and meta["version"] == "0.0.1" and meta["extras"] == "cpu"
    assert meta["python"] == "%d.%d" % sys.version_info[:2] and meta["wheels"] == "3"
    assert (bundle / "models" / "coat-standin" / "weights.bin").is_file()
    assert (bundle / "deploy" / "systemd" / "edge-coat-worker.service").is_file()
    assert (bundle / "install.sh").read_bytes() == INSTALL.read_bytes()
    listed = {line.split(maxsplit=1)[1] for line in (bundle / "SHA256SUMS").read_text().splitlines()}
    files = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert listed == files
    check = subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"], cwd=bundle)
    assert check.returncode == 0
    with tarfile.open(f"{bundle}.tar") as tar:
        assert f"{bundle.name}/SHA256SUMS" in tar.getnames()


def test_build_refuses_a_non_empty_output_folder(bundle, tmp_path):
    result = _run(["bash", BUILD, "--out", bundle, "--no-index"])
    assert result.returncode != 0
    assert "is not empty" in result.stderr


def test_install_refuses_a_changed_file(bundle, tmp_path):
    copy = _copy(bundle, tmp_path)
    wheel = next((copy / "wheelhouse").glob("standin_dep-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    result = _run(["bash", copy / "install.sh", "--prefix", tmp_path / "prefix"])
    assert result.returncode != 0
    assert "checksum mismatch" in result.stderr and wheel.name in result.stderr
    assert not (tmp_path / "prefix").exists()


def test_install_refuses_a_file_added_after_the_build(bundle, tmp_path):
    copy = _copy(bundle, tmp_path)
    (copy / "wheelhouse" / "extra-1.0-py3-none-any.whl").write_bytes(b"PK")
    result = _run(["bash", copy / "install.sh", "--prefix", tmp_path / "prefix"])
    assert result.returncode != 0
    assert "not in SHA256SUMS" in result.stderr and "extra-1.0-py3-none-any.whl" in result.stderr


def test_install_refuses_wheels_for_another_python(bundle, tmp_path):
    copy = _copy(bundle, tmp_path)
    meta = copy / "BUNDLE"
    meta.write_text(meta.read_text().replace("python=3.", "python=2."))
    _rewrite_sums(copy)
    result = _run(["bash", copy / "install.sh", "--prefix", tmp_path / "prefix", "--python", sys.executable])
    assert result.returncode != 0 and "the wheels are for Python 2." in result.stderr


def _netns_or_skip() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) not installed: the offline install cannot be isolated")
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"network namespaces not allowed here (unshare -n: {probe.stderr.strip()})")
    return [unshare, "-n"]


@pytest.mark.slow
def test_offline_install_in_a_network_namespace(bundle, tmp_path):
    netns = _netns_or_skip()
    prefix, root = tmp_path / "opt" / "edge-coat", tmp_path / "root"
    links = _run([*netns, "ip", "-o", "link"])
    assert links.returncode == 0 and [line.split(":")[1].strip() for line in links.stdout.splitlines()] == ["lo"]
    assert "state DOWN" in links.stdout  # not even loopback: nothing can be reached
    # The .tar form, as carried to a site; --systemd into a scratch root.
    result = _run([*netns, "bash", INSTALL, f"{bundle}.tar", "--prefix", prefix, "--python", sys.executable,
                   "--systemd", "--root", root])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "models verify: coat-standin verified" in result.stdout
    ran = _run([prefix / "venv" / "bin" / "edge-coat"])
    assert ran.stdout.strip() == "edge-coat stand-in dep cpu"  # the cpu extra came in too
    assert (prefix / "models" / "coat-standin" / "weights.bin").read_bytes() == \
        (bundle / "models" / "coat-standin" / "weights.bin").read_bytes()
    unit = (root / "etc/systemd/system/edge-coat-worker.service").read_text()
    assert f"ExecStart={prefix}/venv/bin/edge-coat worker --config /etc/edge-coat/site.yaml" in unit
    assert (root / "etc/systemd/system/edge-coat-.service.d/10-hardening.conf").is_file()
    if shutil.which("systemd-sysusers"):
        assert any(line.startswith("edge-coat:") for line in (root / "etc/passwd").read_text().splitlines())
        assert oct((root / "etc/edge-coat").stat().st_mode & 0o777) == "0o750"

    # A bundle whose model is broken at build time passes SHA256SUMS but fails `models verify`,
    # and the install says so (reusing the venv made above: fast).
    broken = _copy(bundle, tmp_path / "broken")
    (broken / "models" / "coat-standin" / "weights.bin").write_bytes(b"truncated")
    _rewrite_sums(broken)
    result = _run([*netns, "bash", broken / "install.sh", "--prefix", prefix, "--python", sys.executable])
    assert result.returncode != 0
    assert "sha256 mismatch" in result.stdout and "failed verification" in result.stderr
