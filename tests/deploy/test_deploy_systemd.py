"""deploy/systemd: the units are valid for systemd itself and hardened as the deployment needs.

systemd's own tools check what they can offline (``systemd-analyze verify`` and ``security
--offline``, ``systemd-sysusers --root``); they skip with the reason when the Debian package
``systemd`` is missing. The structural checks below run everywhere.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "deploy" / "systemd"
DROPIN = SYSTEMD / "edge-coat-.service.d" / "10-hardening.conf"
SPLIT = {"capture": "edge-coat-capture.service", "worker": "edge-coat-worker.service",
         "serve": "edge-coat-serve.service"}
UNITS = {**SPLIT, "run": "edge-coat-run.service"}
EXEC = "/opt/edge-coat/venv/bin/edge-coat"
SITE = "/etc/edge-coat/site.yaml"
#: Keys a drop-in must not set: drop-ins override the unit file, and these differ per unit.
PER_UNIT_KEYS = {"ExecStart", "PrivateDevices", "DeviceAllow", "MemoryDenyWriteExecute",
                 "TimeoutStopSec", "SupplementaryGroups", "Conflicts"}
#: The most exposure `systemd-analyze security` may give a unit (0 safe .. 10 unsafe; < 4 is "OK").
MAX_EXPOSURE = 2.5


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values, in order (systemd keys may repeat, so not configparser).

    Hand-written because configparser rejects or merges repeated keys, which systemd accumulates.
    """
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            current.setdefault(key.strip(), []).append(value.strip())
        else:
            raise ValueError(f"unit line outside a section or without '=': {raw!r}")
    return sections


def merged_unit(name: str, dropin_text: str | None = None) -> dict[str, dict[str, list[str]]]:
    """The unit file with the shared drop-in applied after it (the order systemd uses)."""
    unit = parse_unit((SYSTEMD / name).read_text())
    dropin = parse_unit(DROPIN.read_text() if dropin_text is None else dropin_text)
    for section, keys in dropin.items():
        for key, values in keys.items():
            unit.setdefault(section, {}).setdefault(key, []).extend(values)
    return unit


def last(unit: dict, section: str, key: str) -> str | None:
    values = unit.get(section, {}).get(key)
    return values[-1] if values else None


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min|m)?", value)
    if not match:
        raise ValueError(f"expected a systemd time span like '30s' or '2min', got {value!r}")
    return float(match[1]) * (60 if match[2] in ("min", "m") else 1)


def hardening_problems(unit: dict) -> list[str]:
    """What a merged edge-coat unit lacks of the hardening the deployment promises."""
    problems = []
    want = {"User": "edge-coat", "Group": "edge-coat", "ProtectSystem": "strict",
            "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
            "CapabilityBoundingSet": "", "AmbientCapabilities": "", "Restart": "on-failure",
            "RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
            "KillSignal": "SIGTERM", "Environment": None}
    for key, value in want.items():
        got = last(unit, "Service", key)
        if got is None:
            problems.append(f"[Service] {key}= missing")
        elif value is not None and got != value:
            problems.append(f"[Service] {key}={got!r}, expected {value!r}")
    families = set((last(unit, "Service", "RestrictAddressFamilies") or "").split())
    if not families or not families <= {"AF_UNIX", "AF_INET", "AF_INET6"}:
        problems.append(f"RestrictAddressFamilies should be a subset of unix/inet/inet6, got {families}")
    if "edge-coat" not in (last(unit, "Service", "StateDirectory") or "").split():
        problems.append("StateDirectory=edge-coat missing (the event log and enrollment state)")
    if seconds(last(unit, "Service", "RestartSec") or "0") < 1:
        problems.append("RestartSec= should back off at least 1 s")
    for key in ("StartLimitIntervalSec", "StartLimitBurst"):
        if last(unit, "Unit", key) is None:
            problems.append(f"[Unit] {key}= missing (restart loops must stop)")
    stop = last(unit, "Service", "TimeoutStopSec")
    if stop is None or seconds(stop) < 30:
        problems.append(f"TimeoutStopSec={stop} leaves no time for the SIGTERM drain (>= 30s)")
    if last(unit, "Service", "DeviceAllow") and last(unit, "Service", "DevicePolicy") != "closed":
        problems.append("DeviceAllow= without DevicePolicy=closed opens all devices")
    env = " ".join(unit["Service"].get("Environment", []))
    if "HF_HUB_OFFLINE=1" not in env:
        problems.append("Environment= lacks HF_HUB_OFFLINE=1 (nothing may reach a model hub)")
    return problems


@pytest.mark.parametrize("name", sorted(UNITS.values()))
def test_units_are_hardened(name):
    assert hardening_problems(merged_unit(name)) == []


def test_hardening_check_catches_a_weakened_unit():
    dropin = DROPIN.read_text()
    weakened = dropin.replace("ProtectSystem=strict", "ProtectSystem=full").replace(
        "CapabilityBoundingSet=\n", "CapabilityBoundingSet=CAP_NET_ADMIN\n")
    assert weakened != dropin
    problems = hardening_problems(merged_unit(UNITS["worker"], weakened))
    assert any("ProtectSystem" in p for p in problems)
    assert any("CapabilityBoundingSet" in p for p in problems)
    no_backoff = dropin.replace("StartLimitBurst=5\n", "")
    assert any("StartLimitBurst" in p for p in hardening_problems(merged_unit(UNITS["serve"], no_backoff)))


def test_dropin_leaves_per_unit_settings_to_the_units():
    dropin = parse_unit(DROPIN.read_text())
    set_there = {key for keys in dropin.values() for key in keys}
    assert set_there & PER_UNIT_KEYS == set()


@pytest.mark.parametrize("command,name", sorted(UNITS.items()))
def test_execstart_runs_the_matching_subcommand(command, name):
    from edge_coat import cli

    exec_start = last(merged_unit(name), "Service", "ExecStart")
    argv = exec_start.split()
    assert argv == [EXEC, command, "--config", SITE]
    assert command in cli.COMMANDS
    args = cli.build_parser().parse_args(argv[1:])
    assert args.command == command and str(args.config) == SITE


@pytest.mark.parametrize("command,name", sorted(UNITS.items()))
def test_execstart_with_a_broken_config_exits_2_which_the_units_do_not_restart(command, name, tmp_path, capsys):
    """The unit's own command line, on a config with a misspelt field: exit status 2, which the shared
    drop-in lists in RestartPreventExitStatus, so systemd does not restart into the same error."""
    from edge_coat import cli

    assert "2" in (last(merged_unit(name), "Service", "RestartPreventExitStatus") or "").split()
    broken = tmp_path / "site.yaml"
    broken.write_text("events:\n  db_path: events.db\n  insecure: true\n  listn: 127.0.0.1:0\n")
    argv = last(merged_unit(name), "Service", "ExecStart").replace(SITE, str(broken)).split()
    assert cli.main(argv[1:]) == 2
    assert "events.listn: unknown field" in capsys.readouterr().err


def test_all_in_one_and_split_units_exclude_each_other():
    run = merged_unit(UNITS["run"])
    assert set(" ".join(run["Unit"]["Conflicts"]).split()) == set(SPLIT.values())
    for name in SPLIT.values():
        assert UNITS["run"] in " ".join(merged_unit(name)["Unit"]["Conflicts"]).split()


def test_only_the_units_that_need_devices_get_them():
    serve = merged_unit(UNITS["serve"])
    assert last(serve, "Service", "PrivateDevices") == "yes"
    assert last(serve, "Service", "MemoryDenyWriteExecute") == "yes"
    worker = " ".join(merged_unit(UNITS["worker"])["Service"]["DeviceAllow"])
    capture = " ".join(merged_unit(UNITS["capture"])["Service"]["DeviceAllow"])
    assert "nvidia" in worker and "alsa" not in worker
    assert "alsa" in capture and "nvidia" not in capture
    assert last(merged_unit(UNITS["capture"]), "Service", "SupplementaryGroups") == "audio"
    assert last(merged_unit(UNITS["worker"]), "Service", "SupplementaryGroups") is None


# --- one box: the units against the config they read (deploy/site.example.yaml) ----------------

EXAMPLE = REPO / "deploy" / "site.example.yaml"
#: Seconds a unit needs beyond its configured drain and grace: closing sockets, files and threads.
STOP_MARGIN_S = 10.0
#: The roles each command runs in one process.
ROLES = {"capture": ("capture",), "worker": ("worker",), "serve": ("serve",), "run": ("capture", "worker", "serve")}


def unit_command(name: str) -> str:
    return last(merged_unit(name), "Service", "ExecStart").split()[1]


def listeners(command: str, cfg) -> dict[str, int]:
    """'what (command)' -> TCP port for every listener the command's process opens with this config."""
    def port(address: str) -> int:  # host:port or tcp://host:port
        return int(address.rpartition(":")[2])

    out = {}
    if cfg.metrics.enabled:
        out[f"/metrics ({command})"] = port(cfg.metrics.listen_for(ROLES[command]))
    if command in ("worker", "run"):
        out[f"worker.receiver.bind ({command})"] = port(cfg.worker.receiver.bind)
    if command in ("serve", "run"):
        out[f"events.listen ({command})"] = port(cfg.events.listen)
    return out


def collisions(units: list[str], cfg) -> list[str]:
    """Ports two listeners of the given units (running at once on one box) both want."""
    seen: dict[int, str] = {}
    out = []
    for name in units:
        for what, port in listeners(unit_command(name), cfg).items():
            if port and port in seen:
                out.append(f"port {port}: {what} and {seen[port]}")
            seen.setdefault(port, what)
    return out


def stop_problems(name: str, cfg) -> list[str]:
    """The unit's TimeoutStopSec against the longest graceful stop its command's roles wait by ``cfg``."""
    from edge_coat.service import stop_time_s

    command = unit_command(name)
    needed = stop_time_s(cfg, ROLES[command]) + STOP_MARGIN_S
    timeout = seconds(last(merged_unit(name), "Service", "TimeoutStopSec"))
    if timeout > needed:
        return []
    return [f"{name}: TimeoutStopSec={timeout:g}s does not exceed the {command} drain and grace of the config "
            f"({needed - STOP_MARGIN_S:g} s) plus {STOP_MARGIN_S:g} s to close: systemd would SIGKILL mid-drain"]


def test_split_units_on_one_box_listen_on_distinct_ports():
    from edge_coat.config import load_config

    cfg = load_config(EXAMPLE)
    assert collisions(sorted(SPLIT.values()), cfg) == []
    assert {unit_command(n) for n in SPLIT.values()} == {"capture", "worker", "serve"}
    ports = {what: port for n in SPLIT.values() for what, port in listeners(unit_command(n), cfg).items()}
    assert len(ports) == 5 and len(set(ports.values())) == 5, ports  # three /metrics, ZeroMQ, gRPC


def test_port_check_catches_units_sharing_one_metrics_port():
    """Before metrics.roles every split unit served /metrics on metrics.listen: the second one failed to bind.
    (model_copy skips validation, which refuses this config, so the unit-level check is seen on its own.)"""
    from edge_coat.config import RoleMetricsConfig, load_config

    cfg = load_config(EXAMPLE)
    same = RoleMetricsConfig.model_construct(capture=cfg.metrics.listen, worker=cfg.metrics.listen,
                                             serve=cfg.metrics.listen)
    shared = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"roles": same})})
    found = collisions(sorted(SPLIT.values()), shared)
    assert len(found) == 2 and all(f.startswith("port 9108: /metrics") for f in found), found


@pytest.mark.parametrize("name", sorted(UNITS.values()))
def test_stop_timeout_exceeds_the_drain_the_example_config_gives(name):
    from edge_coat.config import load_config

    assert stop_problems(name, load_config(EXAMPLE)) == []


def test_stop_timeout_check_catches_a_drain_longer_than_the_unit_waits():
    from edge_coat.config import load_config

    cfg = load_config(EXAMPLE)
    longer = cfg.model_copy(update={"service": cfg.service.model_copy(update={"drain_timeout_s": 600.0})})
    assert [p.split(":")[0] for p in stop_problems(UNITS["capture"], longer)] == [UNITS["capture"]]
    assert stop_problems(UNITS["worker"], longer) and stop_problems(UNITS["run"], longer)
    assert stop_problems(UNITS["serve"], longer) == []  # serve does not drain audio or windows


# --- systemd's own checks ---------------------------------------------------------------------

def _systemd_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package 'systemd'); structural checks still ran")
    return path


@pytest.fixture
def unit_dir(tmp_path) -> Path:
    """deploy/systemd copied, with ExecStart pointing at an executable that exists here.

    `systemd-analyze verify` fails a unit whose ExecStart binary is missing; the venv it names
    exists only on an installed site.
    """
    exe = tmp_path / "bin" / "edge-coat"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    units = tmp_path / "units"
    shutil.copytree(SYSTEMD, units)
    for name in UNITS.values():
        path = units / name
        path.write_text(path.read_text().replace(EXEC, str(exe)))
    return units


def _verify(analyze: str, paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([analyze, "verify", "--man=no", *map(str, paths)],
                          capture_output=True, text=True, timeout=60)


def test_systemd_analyze_verify_is_clean(unit_dir):
    analyze = _systemd_tool("systemd-analyze")
    result = _verify(analyze, [unit_dir / name for name in UNITS.values()])
    assert result.returncode == 0, result.stderr
    # systemd only warns (exit 0) about unknown keys and bad values: any output is a defect.
    assert (result.stdout + result.stderr).strip() == ""


def test_systemd_analyze_verify_sees_the_dropin(unit_dir):
    analyze = _systemd_tool("systemd-analyze")
    dropin = unit_dir / DROPIN.relative_to(SYSTEMD)
    dropin.write_text(dropin.read_text() + "ProtectSystm=strict\n")
    result = _verify(analyze, [unit_dir / UNITS["worker"]])
    assert "ProtectSystm" in result.stderr


@pytest.mark.parametrize("name", sorted(UNITS.values()))
def test_security_exposure_is_low(unit_dir, name):
    analyze = _systemd_tool("systemd-analyze")
    result = subprocess.run([analyze, "security", "--offline=yes", "--man=no", str(unit_dir / name)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    assert float(match[1]) <= MAX_EXPOSURE, result.stdout


def test_sysusers_creates_the_service_account(tmp_path):
    sysusers = _systemd_tool("systemd-sysusers")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    result = subprocess.run([sysusers, f"--root={root}", str(SYSTEMD / "edge-coat.sysusers")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    user = passwd["edge-coat"]
    assert int(user[2]) < 1000, "a system account (uid below 1000)"
    assert user[5] == "/var/lib/edge-coat" and user[6] == "/usr/sbin/nologin"
    groups = {line.split(":")[0] for line in (root / "etc/group").read_text().splitlines()}
    assert {"edge-coat", "audio"} <= groups
