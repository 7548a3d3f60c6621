"""deploy/kubernetes: the kustomize base passes the schema, reference, security and flow checks of
deploy/kubernetes/check_manifests.py, and each check fails on a manifest broken on purpose."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kubernetes" / "base"

_spec = importlib.util.spec_from_file_location("check_manifests", REPO / "deploy" / "kubernetes" / "check_manifests.py")
check = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = check  # dataclasses look their module up there
_spec.loader.exec_module(check)


@pytest.fixture
def docs() -> list[dict]:
    """The base's objects, freshly loaded (tests break them on purpose)."""
    return check.load(BASE)


def get(docs, kind, name) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def container(docs, kind, name) -> dict:
    return get(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def test_base_lists_every_manifest_in_its_folder():
    listed = set(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_base_has_the_objects_the_site_needs(docs):
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "StatefulSet", "Service", "NetworkPolicy", "Secret",
            "ConfigMap", "ServiceAccount"} <= kinds
    assert all(d["metadata"]["namespace"] == "edge-coat" for d in docs if d["kind"] != "Namespace")


def test_schema_is_valid(docs):
    pytest.importorskip("kubernetes_validate", reason="PyPI package kubernetes-validate (offline schemas) not installed")
    assert check.schema_problems(docs) == []


def test_schema_check_rejects_unknown_and_mistyped_fields(docs):
    pytest.importorskip("kubernetes_validate", reason="PyPI package kubernetes-validate (offline schemas) not installed")
    container(docs, "Deployment", "edge-coat-worker-0")["readOnlyRootFilesytem"] = True
    get(docs, "StatefulSet", "edge-coat-serve")["spec"]["replicas"] = "one"
    problems = check.schema_problems(docs)
    assert any("edge-coat-worker-0" in p and "readOnlyRootFilesytem" in p for p in problems)
    assert any("edge-coat-serve" in p and "replicas" in p for p in problems)


def test_references_resolve(docs):
    assert check.reference_problems(docs) == []


def test_reference_check_catches_dangling_references(docs):
    get(docs, "Service", "edge-coat-worker-0")["spec"]["selector"]["edge-coat.io/shard"] = "7"
    get(docs, "Service", "edge-coat-serve")["spec"]["ports"][0]["targetPort"] = "grcp"
    docs.remove(get(docs, "Secret", "edge-coat-capture-line1-curve"))
    volumes = get(docs, "StatefulSet", "edge-coat-serve")["spec"]["template"]["spec"]["volumes"]
    next(v for v in volumes if v["name"] == "ca")["configMap"]["items"][0]["key"] = "ca.pem"
    problems = "\n".join(check.reference_problems(docs))
    assert "Service/edge-coat-worker-0: selector" in problems
    assert "targetPort grcp" in problems
    assert "Secret/edge-coat-capture-line1-curve, which does not exist" in problems
    assert "has no key(s) ['ca.pem']" in problems


def test_pods_are_locked_down(docs):
    assert check.security_problems(docs) == []
    for workload in check.workloads(docs):
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_security_check_catches_a_weakened_pod(docs):
    ctx = container(docs, "Deployment", "edge-coat-capture-line1")["securityContext"]
    ctx["readOnlyRootFilesystem"] = False
    ctx["capabilities"] = {"add": ["NET_ADMIN"]}
    get(docs, "StatefulSet", "edge-coat-serve")["spec"]["template"]["spec"]["hostNetwork"] = True
    problems = "\n".join(check.security_problems(docs))
    assert "edge-coat-capture-line1 container capture: readOnlyRootFilesystem" in problems
    assert "capabilities must drop ALL" in problems
    assert "edge-coat-serve: hostNetwork" in problems


def test_deployment_contract_holds(docs):
    assert check.edge_coat_problems(docs) == []
    worker = container(docs, "Deployment", "edge-coat-worker-0")
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    serve = get(docs, "StatefulSet", "edge-coat-serve")
    assert serve["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "events"
    mounts = {m["name"]: m["mountPath"] for m in serve["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["events"] == "/var/lib/edge-coat"
    # The worker writes the same SQLite log: the claim the StatefulSet makes for pod 0, same path.
    volumes = get(docs, "Deployment", "edge-coat-worker-0")["spec"]["template"]["spec"]["volumes"]
    claim = next(v for v in volumes if v["name"] == "events")["persistentVolumeClaim"]["claimName"]
    assert check.claim_owner(docs, claim, "edge-coat") is serve
    assert {m["name"]: m["mountPath"] for m in worker["volumeMounts"]}["events"] == "/var/lib/edge-coat"


def test_contract_check_catches_a_cpu_worker_and_a_worker_off_the_log_node(docs):
    worker = get(docs, "Deployment", "edge-coat-worker-0")
    del worker["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    del worker["spec"]["template"]["spec"]["affinity"]
    docs.remove(get(docs, "NetworkPolicy", "edge-coat-default-deny"))
    problems = "\n".join(check.edge_coat_problems(docs))
    assert "must request nvidia.com/gpu" in problems
    assert "no required podAffinity to pod edge-coat-serve-0" in problems
    assert "no default-deny NetworkPolicy" in problems


def test_a_worker_on_a_claim_the_statefulset_does_not_make_is_caught(docs):
    volumes = get(docs, "Deployment", "edge-coat-worker-0")["spec"]["template"]["spec"]["volumes"]
    next(v for v in volumes if v["name"] == "events")["persistentVolumeClaim"]["claimName"] = "events-edge-coat-serve-1"
    assert any("PersistentVolumeClaim/events-edge-coat-serve-1, which does not exist" in p
               for p in check.reference_problems(docs))
    assert any("must mount exactly one event log claim" in p for p in check.edge_coat_problems(docs))


def test_network_allows_exactly_the_needed_flows(docs):
    assert check.network_flows(docs) == check.EXPECTED_FLOWS
    assert check.flow_problems(docs) == []


def test_flow_check_sees_an_open_door_and_a_blocked_path(docs):
    worker = get(docs, "NetworkPolicy", "edge-coat-worker")
    del worker["spec"]["ingress"][0]["from"]  # a rule with no peers admits every source
    capture = get(docs, "NetworkPolicy", "edge-coat-capture")
    capture["spec"]["egress"][0]["ports"][0]["port"] = 5556
    flows = check.network_flows(docs)
    assert {("stranger", "worker", 5555), ("subscriber", "worker", 5555)} <= flows
    # A pod in edge-coat's own namespace is still held back by the default-deny egress.
    assert ("intruder", "worker", 5555) not in flows
    assert ("capture", "worker", 5555) not in flows
    problems = "\n".join(check.flow_problems(docs))
    assert "stranger -> worker:5555 is allowed but not needed" in problems
    assert "capture -> worker:5555 is needed but blocked" in problems


def test_default_deny_isolates_pods_no_other_policy_selects(docs):
    new_pod = check.Pod("newcomer", "edge-coat", {"app": "newcomer"}, {"http": 8080})
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    stranger = check.outside_pods("edge-coat")[2]
    ns_labels = {"default": {"kubernetes.io/metadata.name": "default"}}
    assert not check._allowed(policies, "Ingress", new_pod, stranger, 8080, new_pod, ns_labels)
    without_deny = [p for p in policies if p["metadata"]["name"] != "edge-coat-default-deny"]
    assert check._allowed(without_deny, "Ingress", new_pod, stranger, 8080, new_pod, ns_labels)


def test_label_selector_semantics():
    labels = {"app": "edge-coat", "tier": "gpu"}
    assert check.selector_matches({}, labels)
    assert check.selector_matches({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu"]}]}, labels)
    assert not check.selector_matches({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gpu"]}]},
                                      labels)
    assert check.selector_matches({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, labels)
    assert not check.selector_matches({"matchLabels": {"app": "other"}}, labels)
    with pytest.raises(ValueError, match="unknown selector operator 'Near'"):
        check.selector_matches({"matchExpressions": [{"key": "a", "operator": "Near"}]}, labels)


def test_secrets_hold_placeholders_only(docs):
    assert check.placeholder_problems(docs) == []
    assert len(check.unreplaced_placeholders(docs)) == len(list(check.secret_values(docs))) >= 6


def test_placeholder_check_catches_a_real_curve_key(docs):
    zmq = pytest.importorskip("zmq")
    public, secret = zmq.curve_keypair()
    real = f'curve\n    public-key = "{public.decode()}"\n    secret-key = "{secret.decode()}"\n'
    get(docs, "Secret", "edge-coat-worker-0-curve")["stringData"]["worker-0.key_secret"] = real
    get(docs, "Secret", "edge-coat-serve-tls")["stringData"]["tls.key"] = "not marked"
    problems = "\n".join(check.placeholder_problems(docs))
    assert "worker-0.key_secret holds real key material" in problems
    assert "tls.key is not marked as a placeholder" in problems


def test_configmap_site_configs_are_yaml_mappings(docs):
    site = get(docs, "ConfigMap", "edge-coat-site")["data"]
    for key, text in site.items():
        assert isinstance(yaml.safe_load(text), dict), key
    # Every path the configs name under /etc/edge-coat is mounted into the pod that reads it.
    mounted = {m["mountPath"] for w in check.workloads(docs) for c in w["spec"]["template"]["spec"]["containers"]
               for m in c.get("volumeMounts", [])}
    for text in site.values():
        for path in (w for w in text.split() if w.startswith("/etc/edge-coat/")):
            assert any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounted), path


def test_command_line_reports_ok_and_problems(tmp_path, capsys, docs):
    assert check.main([str(BASE), "--repository", "--no-schema"]) == 0
    out = capsys.readouterr().out
    assert "capture -> worker   tcp/5555" in out and out.rstrip().endswith("ok")
    container(docs, "Deployment", "edge-coat-worker-0")["securityContext"]["privileged"] = True
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    assert check.main([str(rendered), "--no-schema"]) == 1
    assert "PROBLEM Deployment/edge-coat-worker-0 container worker: privileged" in capsys.readouterr().out


def test_loader_refuses_what_it_cannot_read(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("configMapGenerator: [{name: x, files: [a.yaml]}]\n")
    with pytest.raises(ValueError, match="render it first"):
        check.load(tmp_path)
    (tmp_path / "notk8s.yaml").write_text("just: a mapping\n")
    with pytest.raises(ValueError, match="expected Kubernetes objects"):
        check.load(tmp_path / "notk8s.yaml")


def test_kustomize_renders_the_base(tmp_path):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the kustomize render is not checked (plain resources were)")
    result = subprocess.run([kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rendered_file = tmp_path / "rendered.yaml"
    rendered_file.write_text(result.stdout)
    rendered = check.load(rendered_file)
    assert sorted(map(check.ident, rendered)) == sorted(map(check.ident, check.load(BASE)))
    images = {c["image"] for w in check.workloads(rendered) for c in w["spec"]["template"]["spec"]["containers"]}
    assert images == {"registry.site.internal/edge-coat:0.1.0"}
    schema = importlib.util.find_spec("kubernetes_validate") is not None
    assert check.all_problems(rendered, schema=schema) == []
