#!/usr/bin/env python3
"""Check edge-coat's Kubernetes manifests offline: schema, references, security, network flows.

    python deploy/kubernetes/check_manifests.py deploy/kubernetes/base
    kubectl kustomize deploy/kubernetes/overlays/mysite > site.yaml
    python deploy/kubernetes/check_manifests.py site.yaml          # a site's rendered overlay

It reads a kustomize folder of plain resources (its ``resources:`` list) or rendered multi-document
YAML, and reports:

- schema: each object against the Kubernetes OpenAPI schemas shipped in the PyPI package
  ``kubernetes-validate`` (strict: unknown fields are errors), when that package is installed;
- references: Service selectors that match no workload, target ports no container has, Secrets,
  ConfigMaps, keys, claims and accounts that do not exist;
- security: pods that may run as root, write their root filesystem, escalate or keep capabilities;
- edge-coat's deployment contract: a GPU worker that shares its event service's log volume on the
  same node (the log is one SQLite file), capture pinned to its source host;
- network flows: which pod may reach which port, computed from the NetworkPolicies, compared
  with the flows the service needs and nothing more.

No cluster is needed and nothing is fetched. Exit status 1 when anything is wrong.
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

#: Kubernetes version whose schemas the objects are checked against (the oldest one supported).
KUBE_VERSION = "1.32"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
COMPONENT = "app.kubernetes.io/component"
#: (from, to, port) the service needs, by component or outside-pod role; all other flows denied.
EXPECTED_FLOWS = {
    ("capture", "worker", 5555),
    ("subscriber", "serve", 50051),
    ("prometheus", "capture", 9109),
    ("prometheus", "worker", 9110),
    ("prometheus", "serve", 9111),
}
SUBCOMMANDS = {"capture": "capture", "worker": "worker", "serve": "serve"}
PLACEHOLDER = "REPLACE"
#: What real key material looks like: a PEM block, or a CurveZMQ (Z85) key in a key file.
REAL_KEY = re.compile(r"-----BEGIN [A-Z ]+-----\s*\n\s*[A-Za-z0-9+/=]{16}|-key\s*=\s*\"[\x21-\x7e]{40}\"")


# --- loading ------------------------------------------------------------------------------------

def load(path: Path) -> list[dict]:
    """Objects of a kustomize folder (plain ``resources`` only) or of one YAML file."""
    path = Path(path)
    if path.is_dir():
        kustomization = path / "kustomization.yaml"
        if not kustomization.is_file():
            raise ValueError(f"expected a kustomize folder with kustomization.yaml, got {path}")
        spec = yaml.safe_load(kustomization.read_text()) or {}
        generators = sorted(k for k in spec if k.endswith("Generator") or k in ("patches", "components"))
        if generators:
            raise ValueError(
                f"{kustomization} uses {generators}: render it first "
                "(kubectl kustomize DIR > rendered.yaml) and check the rendered file"
            )
        docs: list[dict] = []
        for resource in spec.get("resources", []):
            docs.extend(load(path / resource))
        namespace = spec.get("namespace")
        for doc in docs:
            if namespace and doc.get("kind") != "Namespace":
                doc.setdefault("metadata", {})["namespace"] = namespace
        return docs
    if not path.is_file():
        raise ValueError(f"expected a YAML file or a kustomize folder, {path} does not exist")
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise ValueError(f"{path}: expected Kubernetes objects (apiVersion, kind), got {str(doc)[:80]!r}")
    return docs


def ident(doc: dict) -> str:
    return f"{doc['kind']}/{doc.get('metadata', {}).get('name', '?')}"


def namespace_of(doc: dict) -> str:
    return doc.get("metadata", {}).get("namespace", "default")


def find(docs: list[dict], kind: str, name: str, namespace: str) -> dict | None:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"].get("name") == name and namespace_of(doc) == namespace:
            return doc
    if kind == "PersistentVolumeClaim":
        return claim_owner(docs, name, namespace)
    return None


def claim_owner(docs: list[dict], claim: str, namespace: str) -> dict | None:
    """The StatefulSet whose volumeClaimTemplate creates ``claim`` (TEMPLATE-STATEFULSET-ORDINAL)."""
    for doc in docs:
        if doc["kind"] != "StatefulSet" or namespace_of(doc) != namespace:
            continue
        for template in doc["spec"].get("volumeClaimTemplates", []):
            for ordinal in range(doc["spec"].get("replicas", 1)):
                if claim == f"{template['metadata']['name']}-{doc['metadata']['name']}-{ordinal}":
                    return doc
    return None


def workloads(docs: list[dict]) -> list[dict]:
    return [doc for doc in docs if doc["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: dict) -> dict:
    template = workload["spec"]["template"]
    return template.get("spec", {})


def containers(spec: dict) -> list[dict]:
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def container_ports(spec: dict) -> dict[str, int]:
    """Port name (or the number as text) -> number, over the pod's containers."""
    ports: dict[str, int] = {}
    for container in spec.get("containers", []):
        for port in container.get("ports", []):
            ports[str(port["containerPort"])] = port["containerPort"]
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A Kubernetes LabelSelector (matchLabels, matchExpressions) against a label set."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != str(value):
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], [str(v) for v in expr.get("values", [])]
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(op)
        if ok is None:
            raise ValueError(f"unknown selector operator {op!r} (expected In, NotIn, Exists, DoesNotExist)")
        if not ok:
            return False
    return True


# --- schema -------------------------------------------------------------------------------------

def schema_problems(docs: list[dict], kube_version: str = KUBE_VERSION) -> list[str]:
    """Strict OpenAPI schema check with the ``kubernetes-validate`` package (offline schemas)."""
    try:
        import kubernetes_validate
    except ImportError as exc:
        raise ImportError(
            "the schema check needs the PyPI package kubernetes-validate (pip install kubernetes-validate)"
        ) from exc
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{ident(doc)}: schema {kube_version}: {where}: {exc.message}")
    return problems


# --- references ---------------------------------------------------------------------------------

def _volume_refs(spec: dict) -> Iterable[tuple[str, str, list[str]]]:
    """(kind, name, keys) for every ConfigMap, Secret and claim a pod spec's volumes name."""
    for volume in spec.get("volumes", []):
        sources = [volume] + [s for s in volume.get("projected", {}).get("sources", [])]
        for source in sources:
            if "configMap" in source:
                ref = source["configMap"]
                yield "ConfigMap", ref["name"], [i["key"] for i in ref.get("items", [])]
            if "secret" in source:
                ref = source["secret"]
                yield "Secret", ref.get("secretName") or ref.get("name"), [i["key"] for i in ref.get("items", [])]
        if "persistentVolumeClaim" in volume:
            yield "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], []


def _env_refs(spec: dict) -> Iterable[tuple[str, str, list[str]]]:
    for container in containers(spec):
        for env in container.get("env", []):
            source = env.get("valueFrom", {})
            if "configMapKeyRef" in source:
                yield "ConfigMap", source["configMapKeyRef"]["name"], [source["configMapKeyRef"]["key"]]
            if "secretKeyRef" in source:
                yield "Secret", source["secretKeyRef"]["name"], [source["secretKeyRef"]["key"]]
        for env_from in container.get("envFrom", []):
            if "configMapRef" in env_from:
                yield "ConfigMap", env_from["configMapRef"]["name"], []
            if "secretRef" in env_from:
                yield "Secret", env_from["secretRef"]["name"], []


def _data_keys(doc: dict) -> set[str]:
    return set(doc.get("data") or {}) | set(doc.get("stringData") or {}) | set(doc.get("binaryData") or {})


def reference_problems(docs: list[dict]) -> list[str]:
    problems = []
    for workload in workloads(docs):
        ns, name, spec = namespace_of(workload), ident(workload), pod_spec(workload)
        template_labels = workload["spec"]["template"].get("metadata", {}).get("labels", {})
        if workload["kind"] != "Job" and not selector_matches(workload["spec"].get("selector"), template_labels):
            problems.append(f"{name}: spec.selector does not match its pod template's labels")
        refs = list(_volume_refs(spec)) + list(_env_refs(spec))
        for kind, ref_name, keys in refs:
            target = find(docs, kind, ref_name, ns)
            if target is None:
                problems.append(f"{name}: refers to {kind}/{ref_name}, which does not exist in namespace {ns}")
                continue
            missing = [k for k in keys if k not in _data_keys(target)]
            if missing:
                problems.append(f"{name}: {kind}/{ref_name} has no key(s) {missing}")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        for container in containers(spec):
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes and mount["name"] not in claims:
                    problems.append(f"{name}: container {container['name']} mounts unknown volume {mount['name']!r}")
                    continue
                items = (volumes.get(mount["name"], {}).get("configMap") or volumes.get(mount["name"], {}).get("secret")
                         or {}).get("items")
                if "subPath" in mount and items is not None and mount["subPath"] not in [i["path"] for i in items]:
                    problems.append(f"{name}: subPath {mount['subPath']!r} is not among the items of {mount['name']!r}")
        account = spec.get("serviceAccountName")
        if account and account != "default" and find(docs, "ServiceAccount", account, ns) is None:
            problems.append(f"{name}: service account {account!r} does not exist")
        if workload["kind"] == "StatefulSet":
            governing = find(docs, "Service", workload["spec"].get("serviceName", ""), ns)
            if governing is None or governing["spec"].get("clusterIP") != "None":
                problems.append(f"{name}: serviceName must name a headless Service (clusterIP: None)")
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"].get("selector") or {}
        if not selector:
            problems.append(f"{ident(service)}: no selector (it would need hand-made Endpoints)")
            continue
        matched = [w for w in workloads(docs) if namespace_of(w) == namespace_of(service)
                   and selector_matches({"matchLabels": selector}, w["spec"]["template"]["metadata"].get("labels", {}))]
        if not matched:
            problems.append(f"{ident(service)}: selector {selector} matches no workload's pods")
        for port in service["spec"].get("ports", []):
            target = str(port.get("targetPort", port["port"]))
            for workload in matched:
                if target not in container_ports(pod_spec(workload)):
                    problems.append(f"{ident(service)}: targetPort {target} is not a container port of {ident(workload)}")
    for secret in (d for d in docs if d["kind"] == "Secret" and d.get("type") == "kubernetes.io/tls"):
        if not {"tls.crt", "tls.key"} <= _data_keys(secret):
            problems.append(f"{ident(secret)}: a kubernetes.io/tls Secret needs tls.crt and tls.key")
    return problems


# --- security -----------------------------------------------------------------------------------

def security_problems(docs: list[dict]) -> list[str]:
    """The Kubernetes 'restricted' Pod Security level, plus a read-only root and memory limits."""
    problems = []
    for workload in workloads(docs):
        name, spec = ident(workload), pod_spec(workload)
        pod_ctx = spec.get("securityContext", {})
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(flag):
                problems.append(f"{name}: {flag} is on")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: automountServiceAccountToken should be false (no API access needed)")
        if any("hostPath" in v for v in spec.get("volumes", [])):
            problems.append(f"{name}: hostPath volume")
        for container in containers(spec):
            where = f"{name} container {container['name']}"
            ctx = container.get("securityContext", {})
            if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
                problems.append(f"{where}: runAsNonRoot is not true")
            if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
                problems.append(f"{where}: runAsUser is 0")
            seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {})).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{where}: seccompProfile should be RuntimeDefault")
            if ctx.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if ctx.get("privileged"):
                problems.append(f"{where}: privileged")
            if "ALL" not in ctx.get("capabilities", {}).get("drop", []) or ctx.get("capabilities", {}).get("add"):
                problems.append(f"{where}: capabilities must drop ALL and add none")
            if "memory" not in container.get("resources", {}).get("limits", {}):
                problems.append(f"{where}: no memory limit")
            image = container.get("image", "")
            if not image or image.endswith(":latest"):
                problems.append(f"{where}: image {image!r} is not pinned")
    return problems


# --- secrets ------------------------------------------------------------------------------------

def secret_values(docs: list[dict]) -> Iterable[tuple[str, str, str]]:
    """(object, key, text) for every Secret value and every key/cert held in a ConfigMap."""
    for doc in docs:
        if doc["kind"] == "Secret":
            for key, value in (doc.get("stringData") or {}).items():
                yield ident(doc), key, str(value)
            for key, value in (doc.get("data") or {}).items():
                yield ident(doc), key, base64.b64decode(value).decode("utf-8", "replace")
        elif doc["kind"] == "ConfigMap":
            for key, value in (doc.get("data") or {}).items():
                if key.endswith((".key", ".crt", ".key_secret", ".pem")):
                    yield ident(doc), key, str(value)


def placeholder_problems(docs: list[dict]) -> list[str]:
    """For manifests kept in a repository: every key is a placeholder, none is real."""
    problems = []
    for obj, key, text in secret_values(docs):
        if REAL_KEY.search(text):
            problems.append(f"{obj}: {key} holds real key material; manifests keep placeholders only")
        elif PLACEHOLDER not in text:
            problems.append(f"{obj}: {key} is not marked as a placeholder ({PLACEHOLDER})")
    return problems


def unreplaced_placeholders(docs: list[dict]) -> list[str]:
    """For a site's rendered manifests: the keys still to be replaced."""
    return [f"{obj}: {key}" for obj, key, text in secret_values(docs) if PLACEHOLDER in text]


# --- network flows ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pod:
    """A pod for the flow computation: a workload's template, or a hypothetical outside pod."""

    role: str
    namespace: str
    labels: dict = field(hash=False)
    ports: dict = field(hash=False)  # name or number (as text) -> port number


def outside_pods(namespace: str) -> list[Pod]:
    """The clients the policies must admit or refuse, including an intruder in our namespace."""
    return [
        Pod("subscriber", "clients", {"edge-coat.io/subscriber": "true"}, {}),
        Pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, {}),
        Pod("stranger", "default", {"app": "stranger"}, {}),
        Pod("intruder", namespace, {"app": "intruder"}, {}),
    ]


def _peer_matches(peer: dict, policy_ns: str, pod: Pod, ns_labels: dict[str, dict]) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], ns_labels.get(pod.namespace, {})):
            return False
    elif pod.namespace != policy_ns:
        return False
    return selector_matches(peer.get("podSelector", {}), pod.labels) if "podSelector" in peer else True


def _port_matches(rule: dict, port: int, target: Pod) -> bool:
    entries = rule.get("ports") or []
    if not entries:
        return True
    for entry in entries:
        if entry.get("protocol", "TCP") != "TCP":
            continue
        if "port" not in entry:
            return True
        want = entry["port"]
        number = want if isinstance(want, int) else target.ports.get(str(want))
        if number is not None and number <= port <= entry.get("endPort", number):
            return True
    return False


def _allowed(policies: list[dict], direction: str, subject: Pod, peer: Pod, port: int, target: Pod,
             ns_labels: dict[str, dict]) -> bool:
    """Whether ``subject``'s policies let traffic through in ``direction`` (Ingress or Egress)."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [p for p in policies if namespace_of(p) == subject.namespace
                 and selector_matches(p["spec"].get("podSelector", {}), subject.labels)
                 and direction in p["spec"].get("policyTypes", ["Ingress"])]
    if not selecting:
        return True  # not isolated in this direction
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key) or []
            if (not peers or any(_peer_matches(x, namespace_of(policy), peer, ns_labels) for x in peers)) \
                    and _port_matches(rule, port, target):
                return True
    return False


def network_flows(docs: list[dict]) -> set[tuple[str, str, int]]:
    """(from role, to role, port) over every pair of pods and every port a pod listens on."""
    ours = [Pod(w["spec"]["template"]["metadata"]["labels"].get(COMPONENT, w["metadata"]["name"]),
                namespace_of(w), w["spec"]["template"]["metadata"]["labels"], container_ports(pod_spec(w)))
            for w in workloads(docs)]
    namespaces = {p.namespace for p in ours} or {"default"}
    pods = ours + [p for ns in sorted(namespaces) for p in outside_pods(ns)]
    ns_labels = {ns: {"kubernetes.io/metadata.name": ns} for ns in {p.namespace for p in pods}}
    for doc in docs:
        if doc["kind"] == "Namespace":
            ns_labels.setdefault(doc["metadata"]["name"], {}).update(doc["metadata"].get("labels", {}))
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    flows = set()
    for src in pods:
        for dst in ours:
            if src is dst:
                continue
            for port in sorted(set(dst.ports.values())):
                if _allowed(policies, "Ingress", dst, src, port, dst, ns_labels) and \
                        _allowed(policies, "Egress", src, dst, port, dst, ns_labels):
                    flows.add((src.role, dst.role, port))
    return flows


def flow_problems(docs: list[dict], expected: set[tuple[str, str, int]] = EXPECTED_FLOWS) -> list[str]:
    flows = network_flows(docs)
    roles = {r for f in flows for r in f[:2]} | {w["spec"]["template"]["metadata"]["labels"].get(COMPONENT)
                                                  for w in workloads(docs)}
    wanted = {f for f in expected if f[0] in roles or f[1] in roles}
    return [f"network: {a} -> {b}:{p} is allowed but not needed" for a, b, p in sorted(flows - wanted)] + \
           [f"network: {a} -> {b}:{p} is needed but blocked" for a, b, p in sorted(wanted - flows)]


# --- edge-coat's deployment contract ------------------------------------------------------------

def edge_coat_problems(docs: list[dict]) -> list[str]:
    problems = []
    by_component: dict[str, list[dict]] = {}
    for workload in workloads(docs):
        component = workload["spec"]["template"]["metadata"]["labels"].get(COMPONENT)
        by_component.setdefault(component, []).append(workload)
        command = SUBCOMMANDS.get(component)
        for container in pod_spec(workload).get("containers", []):
            args = container.get("args", [])
            if command is None or args[:1] != [command] or not {"-c", "--config"} & set(args):
                problems.append(f"{ident(workload)}: expected args [{command}, --config, CONFIG], got {args}")
    for component in SUBCOMMANDS:
        if component not in by_component:
            problems.append(f"no workload with label {COMPONENT}={component}")
    for worker in by_component.get("worker", []):
        for container in pod_spec(worker)["containers"]:
            if int(container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)) < 1:
                problems.append(f"{ident(worker)}: the worker must request nvidia.com/gpu in its limits")
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    problems.append(f"{ident(worker)}: {probe} missing")
    for serve in by_component.get("serve", []):
        if serve["kind"] != "StatefulSet":
            problems.append(f"{ident(serve)}: the event service must be a StatefulSet (stable volume for its log)")
            continue
        claims = {t["metadata"]["name"] for t in serve["spec"].get("volumeClaimTemplates", [])}
        mounts = {m["name"] for c in pod_spec(serve)["containers"] for m in c.get("volumeMounts", [])}
        if not claims & mounts:
            problems.append(f"{ident(serve)}: no volumeClaimTemplate mounted for the event log")
    for worker in by_component.get("worker", []):
        problems.extend(_shared_log_problems(docs, worker))
    for capture in by_component.get("capture", []):
        spec = pod_spec(capture)
        if not spec.get("nodeSelector") and "nodeAffinity" not in spec.get("affinity", {}):
            problems.append(f"{ident(capture)}: capture should be pinned to its source host (nodeSelector/affinity)")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    if not any(p["spec"].get("podSelector") == {} and not p["spec"].get("ingress") and not p["spec"].get("egress")
               and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"} for p in policies):
        problems.append("no default-deny NetworkPolicy (podSelector: {}, Ingress and Egress, no rules)")
    return problems


def _shared_log_problems(docs: list[dict], worker: dict) -> list[str]:
    """The worker writes the SQLite log the event service reads: same volume, same node."""
    spec, name = pod_spec(worker), ident(worker)
    claims = [v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", []) if "persistentVolumeClaim" in v]
    owners = {c: claim_owner(docs, c, namespace_of(worker)) for c in claims}
    shared = [(c, o) for c, o in owners.items()
              if o is not None and o["spec"]["template"]["metadata"]["labels"].get(COMPONENT) == "serve"]
    if len(shared) != 1:
        return [f"{name}: must mount exactly one event log claim of the event service StatefulSet, got {claims}"]
    claim, serve = shared[0]
    pod_name = f"{serve['metadata']['name']}-{claim.rsplit('-', 1)[1]}"
    terms = spec.get("affinity", {}).get("podAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", [])
    if not any(t.get("topologyKey") == "kubernetes.io/hostname"
               and selector_matches(t.get("labelSelector"), {"statefulset.kubernetes.io/pod-name": pod_name})
               for t in terms):
        return [f"{name}: shares {claim} but has no required podAffinity to pod {pod_name} on the same "
                "hostname (SQLite in WAL mode needs one node's local filesystem)"]
    return []


def all_problems(docs: list[dict], schema: bool = True) -> list[str]:
    problems = schema_problems(docs) if schema else []
    return problems + reference_problems(docs) + security_problems(docs) + edge_coat_problems(docs) \
        + flow_problems(docs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="kustomize folder of plain resources, or rendered YAML")
    parser.add_argument("--no-schema", action="store_true", help="skip the schema check (no kubernetes-validate)")
    parser.add_argument("--repository", action="store_true",
                        help="manifests kept in a repository: every key must be a placeholder")
    args = parser.parse_args(argv)
    docs = load(args.path)
    problems = all_problems(docs, schema=not args.no_schema)
    if args.repository:
        problems += placeholder_problems(docs)
    print(f"{len(docs)} objects from {args.path}")
    print("allowed network flows:")
    for src, dst, port in sorted(network_flows(docs)):
        print(f"  {src:>12} -> {dst:<8} tcp/{port}")
    for item in unreplaced_placeholders(docs):
        print(f"placeholder still to replace: {item}")
    for problem in problems:
        print(f"PROBLEM {problem}")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
