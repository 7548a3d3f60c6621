"""The site config: errors name the field and how to fix it; the example config validates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_coat.config import ConfigError, SiteConfig, endpoint_reaches, load_config, validate_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "deploy" / "site.example.yaml"


def minimal() -> dict:
    return {
        "capture": {"sources": [{"uri": "gen:sine", "stream_id": "s1"}],
                    "sender": {"endpoint": "tcp://127.0.0.1:5555", "buffer_s": 30}},
        "worker": {"receiver": {"bind": "tcp://127.0.0.1:5555"}},
        "model": {"path": "models/coat-tiny"},
        "events": {"db_path": "events.db", "insecure": True},
    }


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config(data)
    return info.value.problems


def test_minimal_config_is_valid_and_filled_with_defaults():
    cfg = validate_config(minimal())
    assert cfg.worker.default_stream.window_s == 2.0
    assert cfg.model.thinking.backend == "onnx"
    assert cfg.metrics.listen == "127.0.0.1:9108"
    assert cfg.logging.format == "text"


def test_example_config_validates():
    cfg = load_config(EXAMPLE)
    assert {s.stream_id for s in cfg.capture.sources} == {"press-3", "desk-1"}
    assert cfg.worker.streams["desk-1"].tasks["emotion"].min_speech_ratio == 0.3
    assert cfg.logging.format == "json"
    assert cfg.service.enroll_at_start["press-3"].seconds == 600
    cfg.require("capture", "worker", "model", "events")


def test_example_config_check_from_the_command_line():
    out = subprocess.run([sys.executable, "-m", "edge_coat", "run", "-c", str(EXAMPLE), "--check", "--syntax-only"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "valid" in out.stdout


def test_check_names_the_files_missing_on_this_host():
    """Issue 15, defect 5: --check also looks for the model folder, TLS files, keys and tokens."""
    out = subprocess.run([sys.executable, "-m", "edge_coat", "run", "-c", str(EXAMPLE), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "model.path: /opt/edge-coat/models" in out.stderr or "model.path:" in out.stderr
    assert "events.tls.cert_file:" in out.stderr and "does not exist on this host" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_field_names_its_path_and_the_allowed_fields():
    data = minimal()
    data["capture"]["sources"][0]["urii"] = "x"
    data["worker"]["default_stream"] = {"windw_s": 3}
    data["bogus"] = 1
    got = problems(data)
    assert any(p.startswith("capture.sources[0].urii: unknown field") and "uri, stream_id" in p for p in got)
    assert any(p.startswith("worker.default_stream.windw_s: unknown field") and "window_s" in p for p in got)
    assert any(p.startswith("bogus: unknown field") and "capture, worker, model" in p for p in got)


def test_out_of_bounds_value_names_field_value_and_meaning():
    data = minimal()
    data["worker"]["batch"] = {"max_batch": 0}
    data["model"]["quantization"] = "int4"
    got = problems(data)
    assert any(p.startswith("worker.batch.max_batch:") and "greater than or equal to 1" in p and "got 0" in p
               and "windows per model call" in p for p in got)
    assert any(p.startswith("model.quantization:") and "'int4'" in p for p in got)


def test_missing_required_field_says_to_add_it():
    data = minimal()
    del data["model"]["path"]
    assert any(p.startswith("model.path: required field is missing; add it") for p in problems(data))


def test_cross_field_problems_are_all_listed_with_a_fix():
    data = minimal()
    data["worker"]["default_stream"] = {"window_s": 2.0, "hop_s": 3.0}
    data["worker"]["streams"] = {"long": {"window_s": 40.0, "hop_s": 1.0}}
    data["capture"]["sender"] = {"endpoint": "tcp://127.0.0.1:5556", "buffer_s": 10}
    data["events"]["listen"] = "127.0.0.1:5555"
    data["service"] = {"enroll_at_start": {"s1": {"windows": 4}}}
    got = problems(data)
    text = "\n".join(got)
    assert len(got) == 5, text
    assert "worker.default_stream.hop_s: the hop (3.0 s) exceeds window_s (2.0 s)" in text
    assert "lower hop_s or raise window_s" in text
    assert "capture.sender.endpoint: tcp://127.0.0.1:5556 does not reach" in text
    assert "the capture endpoint must match the worker bind" in text
    assert "capture.sender.buffer_s: the replay buffer (10.0 s) must exceed the window length (40.0 s)" in text
    assert "service.enroll_at_start.s1.windows: 4 windows is below detectors.anomaly.min_enroll_windows (8)" in text
    assert "events.listen: port 5555 is also used by worker.receiver.bind" in text


def test_curve_on_one_end_only_is_refused():
    data = minimal()
    data["worker"]["receiver"]["curve"] = {"secret_key_file": "w.key_secret", "allowed_clients_dir": "clients"}
    got = problems(data)
    assert any(p.startswith("capture.sender.curve: CurveZMQ is set on one end") for p in got)


def test_stage_owned_checks_surface_with_their_path():
    data = minimal()
    data["worker"]["receiver"]["link"] = {"backoff_initial_s": 5, "backoff_max_s": 1}
    data["events"] = {"db_path": "e.db"}  # neither TLS nor insecure
    got = problems(data)
    assert any(p.startswith("worker.receiver.link:") and "raise backoff_max_s" in p for p in got)
    assert any(p.startswith("events:") and "events.insecure" in p for p in got)


@pytest.mark.parametrize("endpoint,bind,ok", [
    ("tcp://127.0.0.1:5555", "tcp://0.0.0.0:5555", True),
    ("tcp://10.0.0.5:5555", "tcp://*:5555", True),
    ("tcp://localhost:5555", "tcp://127.0.0.1:5555", True),
    ("tcp://10.0.0.5:5555", "tcp://127.0.0.1:5555", False),
    ("tcp://127.0.0.1:5556", "tcp://0.0.0.0:5555", False),
    ("ipc:///run/w.sock", "ipc:///run/w.sock", True),
])
def test_endpoint_reaches_bind(endpoint, bind, ok):
    assert endpoint_reaches(endpoint, bind) is ok


def test_file_formats_and_file_errors(tmp_path):
    toml = tmp_path / "site.toml"
    toml.write_text('[worker.receiver]\nbind = "tcp://127.0.0.1:5555"\n[metrics]\nenabled = false\n')
    assert load_config(toml).metrics.enabled is False
    js = tmp_path / "site.json"
    js.write_text(json.dumps(minimal()))
    assert load_config(js).capture.sources[0].stream_id == "s1"
    bad = tmp_path / "bad.yaml"
    bad.write_text("worker: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(empty)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_require_names_missing_sections():
    cfg = SiteConfig.model_validate({"metrics": {"enabled": False}})
    with pytest.raises(ConfigError) as info:
        cfg.require("worker", "model", "events", command="edge-coat run")
    assert [p.split(":")[0] for p in info.value.problems] == ["worker", "model", "events"]
    assert "`edge-coat run` needs it" in str(info.value)


def test_run_command_exits_2_listing_every_problem(tmp_path):
    data = minimal()
    data["worker"]["default_stream"] = {"window_s": 1.0, "hop_s": 2.0}
    data["model"]["quantisation"] = "fp32"
    path = tmp_path / "site.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data))
    out = subprocess.run([sys.executable, "-m", "edge_coat", "run", "-c", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "model.quantisation: unknown field" in out.stderr


# ---- metrics: one address per process, so the split processes of one box never share a port ----------------


def test_each_split_process_gets_its_own_metrics_port_by_default():
    cfg = validate_config(minimal()).metrics
    assert cfg.listen_for(("capture", "worker", "serve")) == "127.0.0.1:9108"  # the all-in-one `run`
    assert [cfg.listen_for((r,)) for r in ("capture", "worker", "serve")] == \
        ["127.0.0.1:9109", "127.0.0.1:9110", "127.0.0.1:9111"]
    data = minimal()
    data["metrics"] = {"listen": "0.0.0.0:9200", "roles": {"worker": "10.0.0.5:9300"}}
    cfg = validate_config(data).metrics
    assert [cfg.listen_for((r,)) for r in ("capture", "worker", "serve")] == \
        ["0.0.0.0:9201", "10.0.0.5:9300", "0.0.0.0:9203"]
    data["metrics"] = {"listen": "127.0.0.1:0"}  # any free port, for every process (tests)
    cfg = validate_config(data).metrics
    assert {cfg.listen_for((r,)) for r in ("capture", "worker", "serve")} == {"127.0.0.1:0"}
    with pytest.raises(ValueError, match="expected a role among"):
        cfg.listen_for(("gateway",))


def test_metrics_ports_that_collide_on_one_box_are_refused_by_name():
    data = minimal()
    data["metrics"] = {"roles": {"serve": "0.0.0.0:9109"}}  # the capture's default (9108 + 1)
    got = problems(data)
    assert got == ["metrics.roles.serve: port 9109 is also used by metrics.roles.capture (by default "
                   "metrics.listen's port + 1); give each listener its own port"]
    data["metrics"] = {"roles": {"worker": "0.0.0.0:50051"}}
    assert any(p.startswith("metrics.roles.worker: port 50051 is also used by events.listen") for p in problems(data))
    data["metrics"] = {"listen": "127.0.0.1:65534"}
    assert any(p.startswith("metrics.roles.worker (by default metrics.listen's port + 2): port 65536 is beyond")
               for p in problems(data))


def test_metrics_ports_of_processes_that_never_run_together_may_repeat():
    data = minimal()
    # `run` (metrics.listen) excludes the split units, so a split process may reuse its port
    data["metrics"] = {"listen": "0.0.0.0:9108", "roles": {"worker": "0.0.0.0:9108"}}
    validate_config(data)
    # a capture-only host: no worker or serve process reads this file, so only capture's port counts
    validate_config({"capture": minimal()["capture"], "metrics": {"roles": {"capture": "0.0.0.0:5555"}}})
    # metrics off: no listener at all
    data["metrics"] = {"enabled": False, "roles": {"worker": "0.0.0.0:50051"}}
    validate_config(data)


def test_read_config_returns_the_raw_mapping_and_names_the_file_on_errors(tmp_path):
    from edge_coat.config import read_config

    path = tmp_path / "site.json"
    path.write_text(json.dumps({"events": {"listn": 1}}))
    assert read_config(path) == {"events": {"listn": 1}}  # not validated: overrides go in first
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a mapping of sections at the top level, got list") as info:
        read_config(str(path))
    assert info.value.source == path


@pytest.mark.parametrize("bind, ok", [
    ("tcp://127.0.0.1:5555", True), ("tcp://[::1]:5555", True), ("tcp://localhost:5555", True),
    ("ipc:///run/edge-coat/worker", True), ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False),
    ("tcp://10.0.0.5:5555", False), ("tcp://eth0:5555", False),
])
def test_worker_binds_beyond_loopback_only_with_curve_or_insecure(bind, ok):
    """Issue 15, defect 12: no default left open."""
    data = minimal()
    data.pop("capture")
    data["worker"]["receiver"]["bind"] = bind
    if ok:
        validate_config(data)
        return
    (problem,) = problems(data)
    assert problem.startswith("worker.receiver") and "curve" in problem and "insecure: true" in problem
    data["worker"]["receiver"]["insecure"] = True
    assert validate_config(data).worker.receiver.open_to_network


def test_worker_command_defaults_to_loopback(capsys):
    from edge_coat.cli import build_parser

    args = build_parser().parse_args(["worker"])
    assert args.bind.startswith("tcp://127.0.0.1:") and not args.insecure
