"""Every command's errors take one path (``edge_coat.errors``): a one-line message naming the problem
and the fix, a non-zero exit, a traceback only with ``--debug``.

The table runs each command of the CLI as a real process with bad input, the way a hostile new user
would, and fails on any ``Traceback`` in its output. Regression cases of issue 15 are marked by number.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edge_coat.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "coat-tiny"


def _edge_coat(*argv: str, cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    run_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               **(env or {})}
    return subprocess.run([sys.executable, "-m", "edge_coat", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=run_env)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad-input")
    (d / "folder.db").mkdir()
    (d / "junk.db").write_bytes(os.urandom(4096))
    (d / "notyaml.yaml").write_text("worker: [unclosed\n")
    (d / "no-capture.yaml").write_text(
        "worker: {receiver: {bind: 'tcp://127.0.0.1:0'}}\n"
        f"model: {{path: {MODEL}}}\n"
        f"events: {{db_path: {d / 'ev.db'}, listen: '127.0.0.1:0', insecure: true}}\n"
        "metrics: {enabled: false}\n"
    )
    (d / "no-model.yaml").write_text(
        "worker: {receiver: {bind: 'tcp://127.0.0.1:0'}}\n"
        "model: {path: /nonexistent}\n"
        f"events: {{db_path: {d / 'ev.db'}, listen: '127.0.0.1:0', insecure: true}}\n"
        "metrics: {enabled: false}\n"
    )
    (d / "desk-file.yaml").write_text(
        "worker: {receiver: {bind: 'tcp://127.0.0.1:0'}}\n"
        f"model: {{path: {MODEL}, desk_dir: {d / 'junk.db'}}}\n"
        f"events: {{db_path: {d / 'ev.db'}, listen: '127.0.0.1:0', insecure: true}}\n"
        "metrics: {enabled: false}\n"
    )
    (d / "tokens.yaml").write_text("clients: []\n")
    (d / "model-only.yaml").write_text(f"model: {{path: {MODEL}}}\n")
    (d / "desk-site.yaml").write_text(
        "worker: {receiver: {bind: 'tcp://127.0.0.1:0'}, streams: {desk-1: {tasks: {emotion: {min_rms_dbfs: -55}}}}}\n"
        f"model: {{path: {MODEL}}}\n"
    )
    (d / "calls-no-alert").mkdir()
    (d / "calls-no-alert" / "calls.csv").write_text("file,label\na.wav,angry\n")
    return d


@pytest.fixture(scope="module")
def taken_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


@pytest.fixture(scope="module")
def mismatched_tls(site) -> tuple[Path, Path]:
    """A server certificate and the key of another site's certificate (issue 15, defect 15)."""
    for name in ("a", "b"):
        out = _edge_coat("certs", "--out", str(site / name), cwd=site)
        assert out.returncode == 0, out.stderr
    return site / "a" / "server.pem", site / "b" / "server-key.pem"


# (name, argv) with {d} the scratch folder, {port} a taken TCP port; every case must fail cleanly
CASES = [
    ("run: no such config", ["run", "-c", "{d}/absent.yaml"]),
    ("run: not YAML", ["run", "-c", "{d}/notyaml.yaml", "--check"]),
    ("run --check: model folder missing (defect 5)", ["run", "-c", "{d}/no-model.yaml", "--check"]),
    ("run --check: model.desk_dir is a file", ["run", "-c", "{d}/desk-file.yaml", "--check"]),
    ("capture: unknown source", ["capture", "--source", "ftp://x", "--stream-id", "a", "--connect", "tcp://127.0.0.1:1"]),
    ("capture: missing file", ["capture", "--source", "{d}/absent.wav", "--stream-id", "a",
                               "--connect", "tcp://127.0.0.1:1"]),
    ("capture: bad stream id", ["capture", "--source", "gen:sine", "--stream-id", "a b", "--connect", "tcp://x:1"]),
    ("worker: port taken (defect 2)", ["worker", "--stage", "noop", "--bind", "tcp://127.0.0.1:{port}",
                                       "--duration-s", "1"]),
    ("worker: bad endpoint", ["worker", "--bind", "nonsense", "--duration-s", "1"]),
    ("worker: open bind without CurveZMQ (defect 12)", ["worker", "--bind", "tcp://0.0.0.0:{port}", "--duration-s",
                                                        "1"]),
    ("worker: key file missing", ["worker", "--bind", "tcp://127.0.0.1:0", "--secret-key", "{d}/absent.key_secret",
                                  "--duration-s", "1"]),
    ("serve: db is a folder (defect 4)", ["serve", "--db", "{d}/folder.db", "--insecure", "--listen", "127.0.0.1:0"]),
    ("serve: db is junk (defect 4)", ["serve", "--db", "{d}/junk.db", "--insecure", "--listen", "127.0.0.1:0"]),
    ("serve: port taken", ["serve", "--db", "{d}/ok.db", "--insecure", "--listen", "127.0.0.1:{port}"]),
    ("serve: bad listen", ["serve", "--db", "{d}/ok.db", "--insecure", "--listen", "nowhere"]),
    ("serve: tokens file missing", ["serve", "--db", "{d}/ok.db", "--insecure", "--tokens", "{d}/absent.yaml"]),
    ("events: negative cursor (defect 3)", ["events", "--server", "127.0.0.1:1", "--insecure", "--from", "-5"]),
    ("events: NaN score", ["events", "--server", "127.0.0.1:1", "--insecure", "--min-score", "nan"]),
    ("events: nobody listening", ["events", "--server", "127.0.0.1:1", "--insecure"]),
    ("events: bad server address", ["events", "--server", "::::", "--insecure"]),
    ("status: nobody listening", ["status", "--server", "127.0.0.1:1", "--insecure"]),
    ("status: no TLS CA file", ["status", "--server", "127.0.0.1:1", "--ca", "{d}/absent.pem"]),
    ("status: negative enrollment windows", ["status", "--server", "127.0.0.1:1", "--insecure", "--enroll", "s1",
                                             "--windows", "-5"]),
    ("status: NaN enrollment seconds", ["status", "--server", "127.0.0.1:1", "--insecure", "--enroll", "s1",
                                        "--seconds", "nan"]),
    ("serve: bad console listen", ["serve", "--db", "{d}/ok.db", "--insecure", "--console-listen", "nowhere"]),
    ("demo: no model", ["demo", "--model", "{d}"]),
    ("demo: scene too short", ["demo", "--scene-s", "5"]),
    ("train: no data", ["train", "--data", "{d}/absent:emotion", "--init", "qwen2_audio", "--size", "test",
                        "--out", "{d}/train-out"]),
    ("export: no model", ["export", "--model", "{d}/absent", "--out", "{d}/bundle"]),
    ("eval: no model", ["eval", "--model", "{d}/absent", "--task", "anomaly", "--data", "{d}"]),
    ("tune: no calls folder", ["tune", "emotion", "-c", "{d}/desk-site.yaml", "--calls", "{d}/absent"]),
    ("tune: calls.csv without an alert column", ["tune", "emotion", "-c", "{d}/desk-site.yaml", "--calls",
                                                 "{d}/calls-no-alert"]),
    ("tune: no worker section", ["tune", "emotion", "-c", "{d}/model-only.yaml", "--calls", "{d}/calls-no-alert"]),
    ("probe: no model", ["probe", "--model", "{d}/absent", "--task", "emotion", "--data", "{d}"]),
    ("models: not a bundle", ["models", "verify", "{d}"]),
    ("keys: unwritable folder", ["keys", "w", "--dir", "/proc/edge-coat-keys"]),
    ("certs: unwritable folder", ["certs", "--out", "/proc/edge-coat-certs"]),
]


def test_the_table_covers_every_command():
    assert {argv[0] for _, argv in CASES} == set(COMMANDS)


@pytest.mark.parametrize("name, argv", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_in_one_line_without_traceback(name, argv, site, taken_port):
    argv = [a.format(d=site, port=taken_port) for a in argv]
    out = _edge_coat(*argv, cwd=site)
    text = out.stdout + out.stderr
    assert out.returncode != 0, f"{name}: exit 0 on bad input\n{text}"
    assert "Traceback" not in text, f"{name}:\n{text}"
    assert out.stderr.strip(), f"{name}: no message on stderr\n{text}"
    assert len([line for line in out.stderr.splitlines() if "WARNING" not in line]) <= 12, text


def test_run_without_capture_section_starts(site):
    """Defect 1: the capture: section is optional for run (remote captures connect instead)."""
    proc = subprocess.Popen([sys.executable, "-m", "edge_coat", "run", "-c", str(site / "no-capture.yaml")],
                            cwd=site, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        line = proc.stdout.readline()
        assert '"ready": true' in line, proc.stderr.read() if proc.poll() is not None else line
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in out + err


def test_tls_key_that_does_not_match_says_so(site, mismatched_tls):
    """Defect 15: not 'Failed to bind to address'."""
    cert, key = mismatched_tls
    out = _edge_coat("serve", "--db", str(site / "tls.db"), "--listen", "127.0.0.1:0", "--tls-cert", str(cert),
                     "--tls-key", str(key), "--tokens", str(site / "tokens.yaml"), cwd=site)
    assert out.returncode == 2
    assert "does not belong to the certificate" in out.stderr
    assert "Failed to bind" not in out.stderr and "Traceback" not in out.stderr


def test_debug_shows_the_traceback(site):
    out = _edge_coat("--debug", "serve", "--db", str(site / "junk.db"), "--insecure", "--listen", "127.0.0.1:0",
                     cwd=site)
    assert out.returncode != 0
    assert "Traceback" in out.stderr
    after = _edge_coat("serve", "--db", str(site / "junk.db"), "--insecure", "--listen", "127.0.0.1:0", "--debug",
                       cwd=site)
    assert after.returncode == out.returncode and "Traceback" in after.stderr


def test_demo_without_loopback_names_the_real_error(site):
    """Defect 16: in a network namespace whose loopback is down, the real error, no second traceback."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare -n is not allowed here")
    out = subprocess.run(["unshare", "-n", sys.executable, "-m", "edge_coat", "demo", "--scene-s", "20",
                          "--no-speech", "--workdir", str(site / "demo")], cwd=site, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode != 0
    assert "Traceback" not in out.stdout + out.stderr
    assert "loopback" in out.stderr
    assert "cannot join thread" not in out.stderr


def test_explain_maps_library_errors_to_one_line_and_an_exit_code():
    import errno
    import sqlite3

    import zmq

    from edge_coat.config import ConfigError
    from edge_coat.errors import UserError, explain

    assert explain(ConfigError(["x: bad"]))[1] == 2
    assert explain(UserError("fix it", 2)) == ("fix it", 2)
    message, code = explain(zmq.ZMQError(errno.EADDRINUSE))
    assert "address already in use" in message and code == 1
    assert "not a usable SQLite database" in explain(sqlite3.DatabaseError("file is not a database"))[0]
    assert explain(FileNotFoundError(2, "No such file", "/x"))[1] == 2
    message, code = explain(TypeError("unsupported operand"))  # a bug, not bad input
    assert code == 1 and "--debug" in message and "report it" in message
