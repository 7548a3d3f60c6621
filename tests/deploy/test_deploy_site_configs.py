"""Every site config the deployment ships validates against edge-coat's own schema, and gives each
process the sections its command needs.

Sources: the ConfigMap(s) of deploy/kubernetes/base (each key a site config, mounted into the pods
that read it) and deploy/site.example.yaml (the template the systemd units' /etc/edge-coat/site.yaml
is written from). The key, certificate and model paths they name exist only on an installed site:
the schema holds them as paths and does not open them, so nothing here needs them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from edge_coat.config import ConfigError, SiteConfig, load_config, validate_config

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kubernetes" / "base"
EXAMPLE = REPO / "deploy" / "site.example.yaml"
#: The sections each stage command asks its config for (its `cfg.require(...)`).
NEEDS = {"capture": ("capture",), "worker": ("worker", "model", "events"), "serve": ("events",),
         "run": ("worker", "model", "events")}

_spec = importlib.util.spec_from_file_location("check_manifests", REPO / "deploy" / "kubernetes" / "check_manifests.py")
check = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = check
_spec.loader.exec_module(check)


def embedded_configs(docs: list[dict]) -> dict[str, str]:
    """'ConfigMap/NAME:KEY' -> text of every ConfigMap entry that is a site config (a mapping with at
    least one site-config section; public keys and certificates are not)."""
    out = {}
    for doc in docs:
        if doc["kind"] != "ConfigMap":
            continue
        for key, text in (doc.get("data") or {}).items():
            data = yaml.safe_load(text)
            if isinstance(data, dict) and set(data) & set(SiteConfig.model_fields):
                out[f"ConfigMap/{doc['metadata']['name']}:{key}"] = text
    return out


def mounted_configs(docs: list[dict]) -> list[tuple[str, str, str]]:
    """(workload, command, 'ConfigMap/NAME:KEY') for each container started as `edge-coat CMD --config PATH`,
    PATH resolved through the container's volume mount to the ConfigMap key behind it."""
    out = []
    for workload in check.workloads(docs):
        spec = check.pod_spec(workload)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in check.containers(spec):
            args = container.get("args", [])
            assert len(args) == 3 and args[1] in ("-c", "--config"), \
                f"{check.ident(workload)}: expected args [COMMAND, --config, FILE], got {args}"
            command, path = args[0], args[2]
            mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"] == path), None)
            assert mount is not None, f"{check.ident(workload)}: {path} is not mounted"
            source = volumes[mount["name"]].get("configMap")
            assert source is not None, f"{check.ident(workload)}: {path} does not come from a ConfigMap"
            items = {i["path"]: i["key"] for i in source.get("items", [])}
            key = items.get(mount.get("subPath"), mount.get("subPath"))
            out.append((check.ident(workload), command, f"ConfigMap/{source['name']}:{key}"))
    return out


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return check.load(BASE)


def test_the_base_ships_site_configs(docs):
    assert set(embedded_configs(docs)) == {"ConfigMap/edge-coat-site:site.yaml",
                                           "ConfigMap/edge-coat-site:capture-line1.yaml"}


def test_every_embedded_site_config_validates(docs):
    problems = {}
    for name, text in embedded_configs(docs).items():
        try:
            validate_config(yaml.safe_load(text))
        except ConfigError as exc:
            problems[name] = exc.problems
    assert problems == {}


def test_each_pod_gets_a_config_with_the_sections_its_command_needs(docs):
    configs = embedded_configs(docs)
    started = mounted_configs(docs)
    assert {command for _, command, _ in started} == {"capture", "worker", "serve"}
    grace = {check.ident(w): check.pod_spec(w).get("terminationGracePeriodSeconds", 30) for w in check.workloads(docs)}
    for workload, command, name in started:
        assert name in configs, f"{workload} runs `{command}` on {name}, which is not a site config"
        cfg = validate_config(yaml.safe_load(configs[name]))
        cfg.require(*NEEDS[command], command=f"edge-coat {command} ({workload})")
        if command in ("capture", "worker"):  # their SIGTERM drain must end before the kubelet's SIGKILL
            assert cfg.service.drain_timeout_s + cfg.service.grace_s < grace[workload], (workload, cfg.service)


def test_each_pod_serves_metrics_on_its_declared_port(docs):
    """The /metrics address each pod's command takes from its config (metrics.roles.<command>) is the
    container port named `metrics` (the probes and the NetworkPolicy use the name), the port Prometheus
    is told about, on all interfaces (the kubelet and Prometheus come from outside the pod)."""
    configs = embedded_configs(docs)
    by_name = {check.ident(w): w for w in check.workloads(docs)}
    for workload, command, name in mounted_configs(docs):
        cfg = validate_config(yaml.safe_load(configs[name]))
        assert cfg.metrics.enabled, f"{workload}: its probes and Prometheus need /metrics"
        host, _, port = cfg.metrics.listen_for((command,)).rpartition(":")
        assert host in ("0.0.0.0", "::", "[::]", "*"), f"{workload}: /metrics on {host} is unreachable from outside"
        template = by_name[workload]["spec"]["template"]
        declared = {p["name"]: p["containerPort"] for c in check.containers(template["spec"]) for p in c.get("ports", [])}
        assert declared.get("metrics") == int(port), (workload, declared, port)
        assert template["metadata"]["annotations"]["prometheus.io/port"] == port, workload


def test_capture_configs_reach_a_worker_service_with_matching_security(docs):
    """What the schema cannot check across files: each capture's endpoint names a worker Service port
    that forwards to the worker's bind port, and CurveZMQ is set on both ends of the link."""
    configs = {name: validate_config(yaml.safe_load(text)) for name, text in embedded_configs(docs).items()}
    workers = [c.worker for c in configs.values() if c.worker is not None]
    captures = [c.capture for c in configs.values() if c.capture is not None]
    assert workers and captures
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for cap in captures:
        url = urlparse(cap.sender.endpoint)
        assert url.scheme == "tcp" and url.hostname in services, cap.sender.endpoint
        ports = {p["port"] for p in services[url.hostname]["spec"]["ports"]}
        assert url.port in ports, f"{cap.sender.endpoint}: Service {url.hostname} has ports {ports}"
        assert any(urlparse(w.receiver.bind).port == url.port for w in workers)
        assert cap.sender.curve is not None and all(w.receiver.curve is not None for w in workers)
        assert cap.sender.curve.server_public_key_file is not None


def test_the_check_catches_the_old_field_names(docs):
    """The mistakes this file once shipped (model.dir, sources[].kind/url) are refused, by name."""
    site = yaml.safe_load(embedded_configs(docs)["ConfigMap/edge-coat-site:site.yaml"])
    site["model"]["dir"] = site["model"].pop("path")
    capture = yaml.safe_load(embedded_configs(docs)["ConfigMap/edge-coat-site:capture-line1.yaml"])
    source = capture["capture"]["sources"][0]
    source["kind"], source["url"] = "rtsp", source.pop("uri")
    with pytest.raises(ConfigError) as info:
        validate_config(site)
    assert any(p.startswith("model.dir: unknown field") for p in info.value.problems)
    assert any(p.startswith("model.path: required field is missing") for p in info.value.problems)
    with pytest.raises(ConfigError) as info:
        validate_config(capture)
    text = "\n".join(info.value.problems)
    assert "capture.sources[0].kind: unknown field" in text and "capture.sources[0].uri: required" in text


@pytest.mark.parametrize("command", sorted(NEEDS))
def test_example_config_serves_every_command_the_units_run(command):
    """The systemd units run capture, worker, serve (split) or run (all-in-one) on
    /etc/edge-coat/site.yaml, written from deploy/site.example.yaml (deploy/README.md)."""
    load_config(EXAMPLE).require(*NEEDS[command], command=f"edge-coat {command}")
