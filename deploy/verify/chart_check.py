#!/usr/bin/env python3
"""Offline checks of the peat-mesh Helm chart (no cluster, no helm binary).

For several value sets: strict `helm lint`, render, validation of every rendered object
against the Kubernetes 1.30 OpenAPI schemas (strict: unknown fields fail), and concrete
facts about the objects (RBAC, discovery labels, ports, environment, security context).
It also checks that bad values fail with a clear message.

    python3 deploy/verify/chart_check.py          # exit 0: all passed, 1: a check failed, 2: missing tools

Other scripts import `render(values, name=..., namespace=...)` to get the rendered objects.
"""

from __future__ import annotations

import base64
import http.server
import ipaddress
import json
import re
import sys
import threading
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

try:
    import helm_python
    import kubernetes_validate
    import yaml
except ImportError as missing:  # pragma: no cover - depends on the machine
    helm_python = None
    _IMPORT_ERROR: ImportError | None = missing
else:
    _IMPORT_ERROR = None

CHART = Path(__file__).resolve().parents[1] / "helm" / "peat-mesh"
KUBE_VERSION = "1.30.0"
INSTALL_HINT = "python3 -m pip install helm-python-sdk kubernetes-validate"

# 32 random-looking bytes, standard padded base64 (what `openssl rand -base64 32` prints).
SECRET = base64.b64encode(bytes(range(7, 7 + 32 * 5, 5))).decode()
OTHER_SECRET = base64.b64encode(b"sixteen-bytes-ok").decode()  # exactly 16 bytes: the minimum


def _require_tools() -> None:
    if _IMPORT_ERROR is not None:
        raise ImportError(f"{_IMPORT_ERROR}; install the chart tools with: {INSTALL_HINT}")


_chart_cache: dict[Path, Any] = {}


def _chart() -> Any:
    _require_tools()
    if CHART not in _chart_cache:
        _chart_cache[CHART] = helm_python.Chart.load(CHART)
    return _chart_cache[CHART]


def render_manifests(values: dict[str, Any], name: str = "peat-mesh", namespace: str = "peat") -> dict[str, str]:
    """The chart's templates rendered as for `helm install`: {template path: manifest text}.

    Raises helm_python.HelmValuesError (schema) or helm_python.HelmRenderError (template `fail`).
    """
    return _chart().render(values, name=name, namespace=namespace, is_install=True)


def render(values: dict[str, Any], name: str = "peat-mesh", namespace: str = "peat") -> list[dict[str, Any]]:
    """The Kubernetes objects the chart renders for `values` (NOTES.txt left out), in template order."""
    objects: list[dict[str, Any]] = []
    for path, text in sorted(render_manifests(values, name, namespace).items()):
        if path.endswith(".txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """The objects of `kind` (and `name`, when given)."""
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


# --- reporting ---------------------------------------------------------------------------------

class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failures: list[str] = []
        self.scope = ""

    def check(self, label: str, ok: bool, detail: Any = "") -> bool:
        line = f"[{self.scope}] {label}" if self.scope else label
        if ok:
            self.passed += 1
            print(f"PASS {line}")
        else:
            self.failures.append(line)
            print(f"FAIL {line}" + (f": {detail}" if detail != "" else ""))
        return ok

    def equal(self, label: str, actual: Any, expected: Any) -> bool:
        return self.check(label, actual == expected, f"got {actual!r}, expected {expected!r}")


# --- facts every successful render must satisfy --------------------------------------------------

STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                   "app.kubernetes.io/managed-by", "helm.sh/chart")

# Where the pod reads the broker token: a Secret volume's directory and the file in it.
TOKEN_DIR = "/var/run/secrets/peat-mesh"
TOKEN_KEY = "broker-token"
TOKEN_FILE = f"{TOKEN_DIR}/{TOKEN_KEY}"
GENERATED_TOKEN = re.compile(r"^[A-Za-z0-9]{40}$")

# What `peat-mesh-node relay-key` prints: standard padded base64 of 32 bytes.
RELAY_KEY = base64.b64encode(bytes(range(100, 132))).decode()
RELAY_KEY_KEY = "relay-access-key"
RELAY_TLS_DIR = "/var/run/secrets/peat-relay/tls"
RELAY_RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
# Environment variables the relay pod must never hold (the relay refuses to start with the first).
RELAY_FORBIDDEN_ENV = ("PEAT_FORMATION_SECRET", "PEAT_BROKER_TOKEN", "PEAT_BROKER_TOKEN_FILE")

BASE_ENV = {
    "PEAT_BROKER_TOKEN_FILE": TOKEN_FILE,
    "PEAT_DISCOVERY": "kubernetes",
    "PEAT_BROKER_PORT": "8081",
    "PEAT_SYNC_PORT": "11204",
    "PEAT_DATA_DIR": "/data",
    "PEAT_BIND_HOST": "0.0.0.0",
    "PEAT_LOG_LEVEL": "info",
    "PEAT_LOG_FORMAT": "text",
    "PEAT_ANTI_ENTROPY_INTERVAL_SECS": "5",
    "PEAT_COMPACTION_ENABLED": "false",
    "PEAT_COMPACTION_INTERVAL_SECS": "300",
    "PEAT_COMPACTION_THRESHOLD_BYTES": "65536",
}


class RelayExpect:
    """What relay.enabled must render: the relay's Deployment, Service(s), access-key Secret and policy."""

    def __init__(self, *, key: str | None = RELAY_KEY, key_secret: str | None = None, replicas: int = 1,
                 port: int = 3340, health_port: int = 8081, service_type: str = "ClusterIP",
                 node_port: int | None = None, annotations: dict[str, str] | None = None,
                 tls_secret: str | None = None, resources: dict[str, Any] | None = None,
                 scheduling: dict[str, Any] | None = None,
                 policy: list[tuple[str, str, bool]] | None = None) -> None:
        # key: the access key the chart's Secret holds; None: relay.existingSecret (no Secret rendered).
        self.key, self.key_secret_name = key, key_secret
        self.replicas, self.port, self.health_port = replicas, port, health_port
        self.service_type, self.node_port, self.annotations = service_type, node_port, annotations
        self.tls_secret = tls_secret
        self.resources = RELAY_RESOURCES if resources is None else resources
        # nodeSelector / tolerations / affinity of the relay pod (absent: not in the pod spec).
        self.scheduling = scheduling or {}
        # policy: (source, "relay" | "health", admitted) facts of the relay's NetworkPolicy; None: none.
        self.policy = policy
        self.name = self.health_name = self.key_secret = ""

    def bind(self, fullname: str) -> "RelayExpect":
        self.name = f"{fullname[:57].removesuffix('-')}-relay"
        self.health_name = f"{fullname[:50].removesuffix('-')}-relay-health"
        self.key_secret = self.key_secret_name or f"{fullname}-relay-access-key"
        return self

    def objects(self) -> set[tuple[str, str]]:
        """(kind, name) of every object the relay adds."""
        names = {("Deployment", self.name), ("Service", self.name)}
        if self.service_type != "ClusterIP":
            names.add(("Service", self.health_name))
        if self.key is not None:
            names.add(("Secret", self.key_secret))
        if self.policy is not None:
            names.add(("NetworkPolicy", self.name))
        return names


class Expect:
    """What one value set must render."""

    def __init__(self, *, name: str = "peat-mesh", namespace: str = "peat", fullname: str = "peat-mesh",
                 env: dict[str, str] | None = None, replicas: int = 3, secret: str | None = SECRET,
                 secret_name: str | None = None, rbac: bool = True, automount: bool = True,
                 service_account: str | None = None, create_service_account: bool = True,
                 pdb: bool = True, persistence: dict[str, Any] | None = None,
                 node_ports: dict[str, Any] | None = None, sync_port: int = 11204,
                 broker_port: int = 8081, image: str = "peat-mesh-node:latest", max_unavailable: int | str = 1,
                 token_secret: str | None = None, token_mode: int = 0o440,
                 policy: list[tuple[str, str, str, bool]] | None = None,
                 relay: RelayExpect | None = None,
                 extra: Callable[[Report, list[dict[str, Any]]], None] | None = None) -> None:
        self.name, self.namespace, self.fullname = name, namespace, fullname
        self.env = {**BASE_ENV, **(env or {})}
        self.replicas, self.secret = replicas, secret
        self.secret_name = secret_name or fullname
        self.rbac, self.automount, self.pdb = rbac, automount, pdb
        self.service_account = service_account or fullname
        self.create_service_account = create_service_account
        self.persistence, self.node_ports = persistence, node_ports
        self.sync_port, self.broker_port = sync_port, broker_port
        self.image, self.max_unavailable, self.extra = image, max_unavailable, extra
        # token_secret: brokerToken.existingSecret (the chart renders no token Secret); None: the
        # chart's own <fullname>-broker-token.
        self.token_managed = token_secret is None
        self.token_secret = token_secret or f"{fullname}-broker-token"
        self.token_mode = token_mode
        # policy: (what, source, port, admitted) facts the NetworkPolicy must satisfy; None: no policy.
        self.policy = policy
        # relay: relay.enabled; None: nothing relay-related may render.
        self.relay = relay.bind(fullname) if relay is not None else None


def validate_objects(r: Report, objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        label = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')} valid against Kubernetes {KUBE_VERSION} (strict)"
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            r.check(label, False, f"{path}: {error.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as error:
            r.check(label, False, error.message)
        else:
            r.check(label, True)


def check_common(r: Report, objects: list[dict[str, Any]], e: Expect) -> None:
    validate_objects(r, objects)

    relay_objects = e.relay.objects() if e.relay is not None else set()
    for obj in objects:
        meta = obj["metadata"]
        labels = meta.get("labels", {})
        missing = [k for k in STANDARD_LABELS if k not in labels]
        if (obj["kind"], meta["name"]) in relay_objects:
            # The relay's objects: component relay, and never app=peat-mesh (discovery's label).
            r.check(f"{obj['kind']}/{meta['name']} has the standard labels, component relay and no app label",
                    not missing and labels.get("app.kubernetes.io/component") == "relay" and "app" not in labels
                    and labels.get("app.kubernetes.io/instance") == e.name
                    and labels.get("app.kubernetes.io/managed-by") == "Helm", f"labels {labels}")
        else:
            r.check(f"{obj['kind']}/{meta['name']} has the standard labels and component mesh-node",
                    not missing and labels.get("app.kubernetes.io/component") == "mesh-node"
                    and labels.get("app.kubernetes.io/instance") == e.name
                    and labels.get("app.kubernetes.io/managed-by") == "Helm", f"labels {labels}")
        r.equal(f"{obj['kind']}/{meta['name']} namespace", meta.get("namespace"), e.namespace)

    expected_kinds = {"Service", "StatefulSet"}
    if e.secret is not None or e.token_managed:
        expected_kinds.add("Secret")
    if e.create_service_account:
        expected_kinds.add("ServiceAccount")
    if e.rbac:
        expected_kinds |= {"Role", "RoleBinding"}
    if e.pdb:
        expected_kinds.add("PodDisruptionBudget")
    if e.policy is not None:
        expected_kinds.add("NetworkPolicy")
    if e.relay is not None:
        expected_kinds.add("Deployment")
    r.equal("rendered kinds", sorted({o["kind"] for o in objects}), sorted(expected_kinds))

    # StatefulSet
    sets = find(objects, "StatefulSet")
    if not r.equal("one StatefulSet", len(sets), 1):
        return
    sts = sets[0]
    spec, pod = sts["spec"], sts["spec"]["template"]
    pod_spec = pod["spec"]
    selector = spec["selector"]["matchLabels"]
    r.equal("StatefulSet name", sts["metadata"]["name"], e.fullname)
    r.equal("replicas", spec["replicas"], e.replicas)
    r.equal("podManagementPolicy", spec.get("podManagementPolicy"), "Parallel")
    r.equal("selector has app=peat-mesh", selector.get("app"), "peat-mesh")
    r.equal("selector instance label", selector.get("app.kubernetes.io/instance"), e.name)
    pod_labels = pod["metadata"]["labels"]
    r.check("pod labels include the selector", all(pod_labels.get(k) == v for k, v in selector.items()),
            f"{pod_labels} vs {selector}")
    r.equal("terminationGracePeriodSeconds", pod_spec.get("terminationGracePeriodSeconds"), 30)
    r.equal("serviceAccountName", pod_spec.get("serviceAccountName"), e.service_account)
    r.equal("automountServiceAccountToken", pod_spec.get("automountServiceAccountToken"), e.automount)
    r.equal("enableServiceLinks off", pod_spec.get("enableServiceLinks"), False)

    psc = pod_spec.get("securityContext", {})
    r.equal("pod securityContext", {k: psc.get(k) for k in ("runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup")},
            {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001})
    r.equal("pod seccompProfile", psc.get("seccompProfile"), {"type": "RuntimeDefault"})

    containers = pod_spec["containers"]
    r.equal("one container named peat-mesh-node", [c["name"] for c in containers], ["peat-mesh-node"])
    c = containers[0]
    r.equal("image", c["image"], e.image)
    r.equal("container ports", [(p["name"], p["containerPort"], p.get("protocol")) for p in c["ports"]],
            [("broker", e.broker_port, "TCP"), ("sync", e.sync_port, "TCP")])
    csc = c.get("securityContext", {})
    r.check("container securityContext hardened",
            csc.get("allowPrivilegeEscalation") is False and csc.get("readOnlyRootFilesystem") is True
            and csc.get("runAsNonRoot") is True and csc.get("capabilities") == {"drop": ["ALL"]}, csc)
    r.equal("resources", c.get("resources"),
            {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}})
    for probe, path in (("livenessProbe", "/api/v1/health"), ("readinessProbe", "/api/v1/ready")):
        r.equal(f"{probe} httpGet", c.get(probe, {}).get("httpGet"), {"path": path, "port": "broker"})

    env = c["env"]
    names = [v["name"] for v in env]
    r.check("no HOSTNAME in env (the kubelet sets the pod name)", "HOSTNAME" not in names, names)
    r.check("env names unique", len(names) == len(set(names)), names)
    r.check("every env value is a string",
            all(isinstance(v["value"], str) for v in env if "value" in v), env)
    secret_ref = next((v for v in env if v["name"] == "PEAT_FORMATION_SECRET"), {})
    r.equal("PEAT_FORMATION_SECRET from the Secret", secret_ref.get("valueFrom"),
            {"secretKeyRef": {"name": e.secret_name, "key": "formation-secret"}})
    plain = {v["name"]: v["value"] for v in env if v["name"].startswith("PEAT_") and "value" in v}
    r.equal("PEAT_* environment", plain, e.env)
    r.check("no PEAT_BROKER_TOKEN in env (the token is only ever a file)", "PEAT_BROKER_TOKEN" not in names, names)
    r.check("PEAT_BROKER_TOKEN_FILE is a plain path, not valueFrom",
            [v for v in env if v["name"] == "PEAT_BROKER_TOKEN_FILE"] == [{"name": "PEAT_BROKER_TOKEN_FILE",
                                                                           "value": TOKEN_FILE}], env)
    r.equal("no envFrom (every variable is listed)", c.get("envFrom"), None)
    if "PEAT_IDENTITY_CONTEXT" in e.env:
        pod_name = next((v for v in env if v["name"] == "POD_NAME"), {})
        r.equal("POD_NAME from the downward API", pod_name.get("valueFrom"),
                {"fieldRef": {"fieldPath": "metadata.name"}})
        r.check("POD_NAME defined before PEAT_IDENTITY_CONTEXT (for $(POD_NAME) expansion)",
                "POD_NAME" in names and names.index("POD_NAME") < names.index("PEAT_IDENTITY_CONTEXT"), names)

    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    r.equal("volume mounts", mounts, {"data": "/data", "tmp": "/tmp", "broker-token": TOKEN_DIR})
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    r.equal("tmp is an emptyDir", volumes.get("tmp"), {"name": "tmp", "emptyDir": {}})
    check_token_volume(r, c, volumes, e)
    claims = spec.get("volumeClaimTemplates", [])
    if e.persistence is None:
        r.equal("data is an emptyDir", volumes.get("data"), {"name": "data", "emptyDir": {}})
        r.equal("no volumeClaimTemplates", claims, [])
    else:
        r.check("no data volume in the pod (it comes from the claim)", "data" not in volumes, volumes)
        r.equal("one volumeClaimTemplate named data", [t["metadata"]["name"] for t in claims], ["data"])
        if claims:
            claim = claims[0]["spec"]
            r.equal("claim size", claim["resources"]["requests"]["storage"], e.persistence["size"])
            r.equal("claim accessModes", claim["accessModes"], ["ReadWriteOnce"])
            r.equal("claim storageClassName", claim.get("storageClassName"), e.persistence.get("storageClass"))
    annotations = pod["metadata"].get("annotations", {})
    r.check("checksum/secret annotation iff the chart renders the formation Secret",
            ("checksum/secret" in annotations) == (e.secret is not None), annotations)

    # Headless Service: the discovery source.
    headless = find(objects, "Service", e.fullname)
    if r.equal("headless Service exists", len(headless), 1):
        svc = headless[0]
        r.equal("headless Service labelled app=peat-mesh", svc["metadata"]["labels"].get("app"), "peat-mesh")
        r.equal("headless Service clusterIP", svc["spec"].get("clusterIP"), "None")
        r.equal("headless Service publishNotReadyAddresses", svc["spec"].get("publishNotReadyAddresses"), True)
        r.equal("headless Service ports", [(p["name"], p["port"], p.get("protocol"), p.get("targetPort"))
                                           for p in svc["spec"]["ports"]],
                [("broker", e.broker_port, "TCP", "broker"), ("sync", e.sync_port, "TCP", "sync")])
        r.equal("headless Service selects the StatefulSet's pods", svc["spec"]["selector"], selector)
        r.equal("StatefulSet serviceName is the headless Service", spec["serviceName"], svc["metadata"]["name"])
    discovered = [o["metadata"]["name"] for o in objects
                  if o["kind"] == "Service" and o["metadata"]["labels"].get("app") == "peat-mesh"]
    r.equal("only the headless Service carries app=peat-mesh", discovered, [e.fullname])

    # RBAC
    roles, bindings = find(objects, "Role"), find(objects, "RoleBinding")
    if e.rbac:
        if r.equal("one Role", len(roles), 1):
            r.equal("Role rules: get/list/watch endpointslices in discovery.k8s.io, nothing else",
                    roles[0]["rules"],
                    [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                      "verbs": ["get", "list", "watch"]}])
        if r.equal("one RoleBinding", len(bindings), 1):
            rb = bindings[0]
            r.equal("RoleBinding roleRef", rb["roleRef"],
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": roles[0]["metadata"]["name"]
                     if roles else None})
            r.equal("RoleBinding subject", rb["subjects"],
                    [{"kind": "ServiceAccount", "name": e.service_account, "namespace": e.namespace}])
    else:
        r.check("no Role or RoleBinding", not roles and not bindings)
    accounts = find(objects, "ServiceAccount")
    r.equal("ServiceAccount", [a["metadata"]["name"] for a in accounts],
            [e.service_account] if e.create_service_account else [])
    r.check("no ClusterRole/ClusterRoleBinding", not find(objects, "ClusterRole") and not find(objects, "ClusterRoleBinding"))

    # Secrets: the formation secret and the broker token, each in its own.
    secrets = find(objects, "Secret")
    r.equal("Secrets rendered", sorted(s["metadata"]["name"] for s in secrets),
            sorted(([e.secret_name] if e.secret is not None else []) + ([e.token_secret] if e.token_managed else [])
                   + ([e.relay.key_secret] if e.relay is not None and e.relay.key is not None else [])))
    formation = find(objects, "Secret", e.secret_name)
    if e.secret is None:
        r.equal("no formation Secret (existingSecret)", formation, [])
    elif r.equal("one formation Secret", len(formation), 1):
        s = formation[0]
        r.equal("Secret type", s.get("type"), "Opaque")
        r.equal("formation Secret data is only formation-secret", sorted(s.get("data", {})), ["formation-secret"])
        r.equal("Secret formation-secret is base64 of the given secret",
                s.get("data", {}).get("formation-secret"), base64.b64encode(e.secret.encode()).decode())
    tokens = find(objects, "Secret", e.token_secret) if e.token_managed else []
    if e.token_managed and r.equal("one broker token Secret", len(tokens), 1):
        s = tokens[0]
        r.equal("token Secret type", s.get("type"), "Opaque")
        r.equal("token Secret data is only broker-token", sorted(s.get("data", {})), [TOKEN_KEY])
        token = base64.b64decode(s.get("data", {}).get(TOKEN_KEY, "")).decode()
        r.check("generated token: 40 random letters and digits (lookup finds nothing offline)",
                bool(GENERATED_TOKEN.match(token)), token)
        text = json.dumps(sts)
        r.check("the token appears nowhere in the StatefulSet (not as a value, not in an annotation)",
                token not in text and s["data"][TOKEN_KEY] not in text)

    # PodDisruptionBudget
    pdbs = find(objects, "PodDisruptionBudget")
    if e.pdb:
        if r.equal("one PodDisruptionBudget", len(pdbs), 1):
            r.equal("PDB apiVersion", pdbs[0]["apiVersion"], "policy/v1")
            r.equal("PDB maxUnavailable", pdbs[0]["spec"].get("maxUnavailable"), e.max_unavailable)
            r.equal("PDB selector", pdbs[0]["spec"]["selector"]["matchLabels"], selector)
    else:
        r.equal("no PodDisruptionBudget", pdbs, [])

    # NodePort Service (federation)
    node_port_services = [o for o in objects if o["kind"] == "Service" and o["spec"].get("type") == "NodePort"
                          and ("Service", o["metadata"]["name"]) not in relay_objects]
    if e.node_ports is None:
        r.equal("no NodePort Service", node_port_services, [])
    elif r.equal("one NodePort Service", len(node_port_services), 1):
        np = node_port_services[0]
        r.equal("NodePort Service name", np["metadata"]["name"], f"{e.fullname}-nodeport")
        r.check("NodePort Service not labelled app=peat-mesh", "app" not in np["metadata"]["labels"],
                np["metadata"]["labels"])
        r.equal("NodePort Service selects the StatefulSet's pods", np["spec"]["selector"], selector)
        r.equal("NodePort Service exposes the sync port only (never the broker)",
                [(p["name"], p["port"], p.get("targetPort"), p.get("protocol"), p.get("nodePort"))
                 for p in np["spec"]["ports"]],
                [("sync", e.sync_port, "sync", "TCP", e.node_ports["sync"])])
        r.equal("NodePort Service externalTrafficPolicy", np["spec"].get("externalTrafficPolicy"),
                e.node_ports.get("externalTrafficPolicy", "Cluster"))
    broker_exposed = [(o["metadata"]["name"], o["spec"].get("type", "ClusterIP"), p.get("name"))
                      for o in objects if o["kind"] == "Service"
                      for p in o["spec"].get("ports", [])
                      if o["spec"].get("type") in ("NodePort", "LoadBalancer")
                      and (p.get("targetPort") in ("broker", e.broker_port) or p.get("port") == e.broker_port)]
    r.equal("no NodePort or LoadBalancer Service reaches the broker port", broker_exposed, [])

    # NetworkPolicy
    policies = [p for p in find(objects, "NetworkPolicy") if ("NetworkPolicy", p["metadata"]["name"]) not in relay_objects]
    r.equal("a NetworkPolicy iff networkPolicy.enabled", len(policies), 0 if e.policy is None else 1)
    if e.policy is not None and policies:
        check_network_policy(r, policies[0], selector, e)

    if e.relay is None:
        relayish = [(o["kind"], o["metadata"]["name"]) for o in objects
                    if o["kind"] == "Deployment" or "relay" in o["metadata"]["name"]
                    or o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "relay"]
        r.equal("relay disabled: nothing relay-related renders", relayish, [])
    else:
        check_relay(r, objects, e, sts)

    if e.extra is not None:
        e.extra(r, objects)


# --- NetworkPolicy semantics --------------------------------------------------------------------

def labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector against labels; {} selects everything."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values") or []
        if ((op == "In" and labels.get(key) not in values) or (op == "NotIn" and key in labels and labels[key] in values)
                or (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels)):
            return False
    return True


@dataclass
class Source:
    """Who opens a connection: a pod (namespace, its labels) or an address outside the pod network."""
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    ip: str | None = None

    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace or ""}


def peer_admits(peer: dict[str, Any], source: Source, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        if source.ip is None:
            return False  # ipBlock on pod addresses is left to the CNI: never count on it
        address = ipaddress.ip_address(source.ip)
        block = peer["ipBlock"]
        return (address in ipaddress.ip_network(block["cidr"])
                and not any(address in ipaddress.ip_network(x) for x in block.get("except") or []))
    if source.namespace is None:
        return False  # selectors select pods only
    if "namespaceSelector" in peer:
        namespace_ok = labels_match(peer["namespaceSelector"], source.namespace_labels())
    else:
        namespace_ok = source.namespace == policy_namespace
    return namespace_ok and labels_match(peer.get("podSelector") or {}, source.labels)


def policy_admits(policy: dict[str, Any], source: Source, port: int, protocol: str, port_name: str) -> bool:
    """Whether the policy lets `source` open `protocol`/`port` to a pod it selects (ingress)."""
    namespace = policy["metadata"]["namespace"]
    for rule in policy["spec"].get("ingress") or []:
        ports = rule.get("ports")
        if ports and not any(p.get("protocol", "TCP") == protocol and p.get("port") in (port, port_name) for p in ports):
            continue
        peers = rule.get("from")
        if not peers or any(peer_admits(peer, source, namespace) for peer in peers):
            return True
    return False


def policy_sources(e: Expect) -> dict[str, Source]:
    ns = e.namespace
    return {
        "this release's pod": Source(ns, {"app": "peat-mesh", "app.kubernetes.io/name": "peat-mesh",
                                          "app.kubernetes.io/instance": e.name}),
        "another peat-mesh release in the namespace (a gateway)": Source(ns, {"app": "peat-mesh",
                                                                              "app.kubernetes.io/instance": "peat-gateway"}),
        "another pod of the namespace": Source(ns, {"app": "web"}),
        "a peat-mesh pod of another namespace": Source("elsewhere", {"app": "peat-mesh",
                                                                     "app.kubernetes.io/instance": e.name}),
        "the relay (namespace relay)": Source("relay", {"app.kubernetes.io/component": "relay"}),
        "Prometheus (namespace monitoring)": Source("monitoring", {"app": "prometheus"}),
        "the other cluster's node 172.18.0.3": Source(ip="172.18.0.3"),
        "10.2.3.4 (syncFrom ipBlock)": Source(ip="10.2.3.4"),
        "10.1.2.3 (in the ipBlock's except)": Source(ip="10.1.2.3"),
        "an outside address 198.51.100.7": Source(ip="198.51.100.7"),
    }


def check_network_policy(r: Report, policy: dict[str, Any], selector: dict[str, str], e: Expect) -> None:
    spec = policy["spec"]
    r.equal("NetworkPolicy selects the StatefulSet's pods", spec.get("podSelector"), {"matchLabels": selector})
    r.equal("NetworkPolicy restricts ingress only (egress is not restricted)", spec.get("policyTypes"), ["Ingress"])
    r.check("every ingress rule names its ports and sources (no rule opens a port to everyone)",
            all(rule.get("ports") and rule.get("from") for rule in spec.get("ingress") or []), spec.get("ingress"))
    allowed_ports = {("TCP", e.sync_port), ("TCP", e.broker_port), ("UDP", 5353)}
    opened = {(p.get("protocol", "TCP"), p.get("port")) for rule in spec.get("ingress") or [] for p in rule.get("ports") or []}
    r.check("the policy opens only the sync and broker ports (and mDNS)", opened <= allowed_ports, opened)
    sources = policy_sources(e)
    ports = {"sync": ("TCP", e.sync_port), "broker": ("TCP", e.broker_port), "mdns": ("UDP", 5353)}
    for source_name, port_name, expected in e.policy:
        protocol, port = ports[port_name]
        admitted = policy_admits(policy, sources[source_name], port, protocol, port_name)
        r.equal(f"{port_name} port {'admits' if expected else 'refuses'} {source_name}", admitted, expected)


def default_policy(*, sync_extra: tuple[str, ...] = (), broker: tuple[str, ...] = (
        "this release's pod", "another pod of the namespace", "another peat-mesh release in the namespace (a gateway)"),
        mdns: bool = False) -> list[tuple[str, str, str, bool]]:
    """Every source against every port: admitted where listed, refused elsewhere."""
    mesh = ("this release's pod", "another peat-mesh release in the namespace (a gateway)")
    facts = []
    for name in policy_sources(Expect()):
        facts.append((name, "sync", name in mesh or name in sync_extra))
        facts.append((name, "broker", name in broker))
        facts.append((name, "mdns", mdns and name in mesh))
    return facts


def check_token_volume(r: Report, container: dict[str, Any], volumes: dict[str, Any], e: Expect) -> None:
    """The token file PEAT_BROKER_TOKEN_FILE names is the key broker-token of the Secret, in a whole-directory,
    read-only Secret volume mount (a subPath mount would never see the kubelet's updates)."""
    mount = next((m for m in container.get("volumeMounts", []) if m["name"] == "broker-token"), {})
    r.equal("broker-token mount: read-only, whole directory (no subPath)", mount,
            {"name": "broker-token", "mountPath": TOKEN_DIR, "readOnly": True})
    r.equal("broker-token volume: the Secret's key broker-token as the file broker-token", volumes.get("broker-token"),
            {"name": "broker-token", "secret": {"secretName": e.token_secret, "defaultMode": e.token_mode,
                                                "items": [{"key": TOKEN_KEY, "path": TOKEN_KEY}]}})
    # Resolve the path as the kubelet lays it out: <mountPath>/<items[].path> is the key's content.
    env_path = next((v.get("value") for v in container.get("env", []) if v["name"] == "PEAT_BROKER_TOKEN_FILE"), "")
    resolved = None
    for m in container.get("volumeMounts", []):
        prefix = m["mountPath"].rstrip("/") + "/"
        source = volumes.get(m["name"], {}).get("secret")
        if source and env_path.startswith(prefix):
            relative = env_path[len(prefix):]
            resolved = next(((source["secretName"], i["key"]) for i in source.get("items", []) if i["path"] == relative),
                            None)
    r.equal("PEAT_BROKER_TOKEN_FILE resolves to the token Secret's key", resolved, (e.token_secret, TOKEN_KEY))


def secret_refs(pod_spec: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (Secret name, key) a pod spec reads: env secretKeyRef, envFrom (key "*"), secret volumes
    (their items' keys, or "*"), projected volumes' secrets."""
    refs: set[tuple[str, str]] = set()
    containers = pod_spec.get("containers", []) + pod_spec.get("initContainers", [])
    for c in containers:
        for v in c.get("env", []):
            ref = (v.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                refs.add((ref.get("name"), ref.get("key")))
        for source in c.get("envFrom", []):
            if "secretRef" in source:
                refs.add((source["secretRef"].get("name"), "*"))
    for volume in pod_spec.get("volumes", []):
        secrets = [volume["secret"]] if "secret" in volume else []
        secrets += [s["secret"] for s in (volume.get("projected") or {}).get("sources", []) if "secret" in s]
        for s in secrets:
            name = s.get("secretName", s.get("name"))
            refs |= {(name, i["key"]) for i in s.get("items", [])} or {(name, "*")}
    return refs


def resolve_file(container: dict[str, Any], volumes: dict[str, Any], path: str) -> tuple[str, str] | None:
    """The (Secret, key) a file path in the container is, through its secret volume mounts."""
    for m in container.get("volumeMounts", []):
        prefix = m["mountPath"].rstrip("/") + "/"
        source = volumes.get(m["name"], {}).get("secret")
        if source and path.startswith(prefix) and not m.get("subPath"):
            relative = path[len(prefix):]
            return next(((source["secretName"], i["key"]) for i in source.get("items", []) if i["path"] == relative),
                        None)
    return None


def check_relay(r: Report, objects: list[dict[str, Any]], e: Expect, sts: dict[str, Any]) -> None:
    """relay.enabled: the relay's Deployment, Service(s), Secret and NetworkPolicy, and what keeps the relay
    pod apart from the nodes: no formation secret, no broker token, no selector of either side picking
    the other's pods."""
    rx = e.relay
    assert rx is not None
    deployments = find(objects, "Deployment")
    if not r.equal("relay: one Deployment, <fullname>-relay", [d["metadata"]["name"] for d in deployments], [rx.name]):
        return
    deployment = deployments[0]
    spec, pod = deployment["spec"], deployment["spec"]["template"]
    pod_spec = pod["spec"]
    selector = spec["selector"]["matchLabels"]
    pod_labels = pod["metadata"]["labels"]
    node_pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    r.equal("relay: replicas", spec["replicas"], rx.replicas)
    r.equal("relay: selector (name, instance, component relay)", selector,
            {"app.kubernetes.io/name": "peat-mesh", "app.kubernetes.io/instance": e.name,
             "app.kubernetes.io/component": "relay"})
    r.check("relay: pod labels include the selector", all(pod_labels.get(k) == v for k, v in selector.items()),
            pod_labels)
    r.check("relay: pod not labelled app (the nodes' selectors and discovery key on app=peat-mesh)",
            "app" not in pod_labels, pod_labels)

    # No selector of the node side picks the relay's pods, and the relay's picks no node.
    node_side = [("the StatefulSet", {"matchLabels": sts["spec"]["selector"]["matchLabels"]})]
    node_side += [(f"Service {s['metadata']['name']}", {"matchLabels": s["spec"].get("selector") or {}})
                  for s in find(objects, "Service") if ("Service", s["metadata"]["name"]) not in rx.objects()]
    node_side += [(f"PodDisruptionBudget {p['metadata']['name']}", p["spec"]["selector"])
                  for p in find(objects, "PodDisruptionBudget")]
    node_side += [(f"NetworkPolicy {p['metadata']['name']}", p["spec"]["podSelector"])
                  for p in find(objects, "NetworkPolicy") if ("NetworkPolicy", p["metadata"]["name"]) not in rx.objects()]
    for what, node_selector in node_side:
        r.check(f"relay: {what} does not select the relay's pods", not labels_match(node_selector, pod_labels),
                (node_selector, pod_labels))
    r.check("relay: the Deployment's selector does not select the nodes' pods",
            not labels_match({"matchLabels": selector}, node_pod_labels), node_pod_labels)

    r.equal("relay: automountServiceAccountToken off (no API access)", pod_spec.get("automountServiceAccountToken"), False)
    r.equal("relay: enableServiceLinks off (no <service>_PORT variables)", pod_spec.get("enableServiceLinks"), False)
    node_pod_spec = sts["spec"]["template"]["spec"]
    r.equal("relay: pod securityContext is the node's", pod_spec.get("securityContext"), node_pod_spec.get("securityContext"))
    r.equal("relay: terminationGracePeriodSeconds is the node's", pod_spec.get("terminationGracePeriodSeconds"),
            node_pod_spec.get("terminationGracePeriodSeconds"))
    for key in ("nodeSelector", "tolerations", "affinity"):
        r.equal(f"relay: {key}", pod_spec.get(key), rx.scheduling.get(key))
    r.equal("relay: imagePullSecrets are the node's", pod_spec.get("imagePullSecrets"), node_pod_spec.get("imagePullSecrets"))

    containers = pod_spec["containers"]
    if not r.equal("relay: one container named relay, no init containers",
                   ([c["name"] for c in containers], pod_spec.get("initContainers")), (["relay"], None)):
        return
    c, node_container = containers[0], node_pod_spec["containers"][0]
    r.equal("relay: image is the node's", c["image"], node_container["image"])
    r.equal("relay: args [relay], the image's entrypoint kept", (c.get("args"), c.get("command")), (["relay"], None))
    r.equal("relay: container ports", [(p["name"], p["containerPort"], p.get("protocol")) for p in c["ports"]],
            [("relay", rx.port, "TCP"), ("http", rx.health_port, "TCP")])
    r.equal("relay: container securityContext is the node's (read-only root, non-root, no capabilities)",
            c.get("securityContext"), node_container.get("securityContext"))
    r.equal("relay: resources", c.get("resources"), rx.resources)

    env = c.get("env", [])
    names = [v["name"] for v in env]
    r.check("relay: env names unique", len(names) == len(set(names)), names)
    expected_env: dict[str, Any] = {
        "PEAT_BIND_HOST": "0.0.0.0", "PEAT_RELAY_PORT": str(rx.port), "PEAT_BROKER_PORT": str(rx.health_port),
        "PEAT_RELAY_ACCESS_KEY": {"secretKeyRef": {"name": rx.key_secret, "key": RELAY_KEY_KEY}},
        "PEAT_LOG_LEVEL": e.env["PEAT_LOG_LEVEL"], "PEAT_LOG_FORMAT": e.env["PEAT_LOG_FORMAT"]}
    if rx.tls_secret:
        expected_env |= {"PEAT_RELAY_TLS_CERT": f"{RELAY_TLS_DIR}/tls.crt", "PEAT_RELAY_TLS_KEY": f"{RELAY_TLS_DIR}/tls.key"}
    r.equal("relay: environment (exactly the relay's variables)",
            {v["name"]: v.get("value", v.get("valueFrom")) for v in env}, expected_env)
    r.check("relay: every env value is a string", all(isinstance(v["value"], str) for v in env if "value" in v), env)
    r.check("relay: no PEAT_FORMATION_SECRET, PEAT_BROKER_TOKEN or PEAT_BROKER_TOKEN_FILE",
            not set(names) & set(RELAY_FORBIDDEN_ENV), names)
    r.equal("relay: no envFrom", c.get("envFrom"), None)

    # The Secrets the pod reads: its access key (and the TLS certificate), nothing else.
    expected_refs = {(rx.key_secret, RELAY_KEY_KEY)}
    if rx.tls_secret:
        expected_refs |= {(rx.tls_secret, "tls.crt"), (rx.tls_secret, "tls.key")}
    r.equal("relay: reads only its access key (and TLS) Secret: not the formation secret, not the broker token",
            secret_refs(pod_spec), expected_refs)
    text = json.dumps(deployment)
    leaks = [s for s in ("formation-secret", "PEAT_FORMATION_SECRET", TOKEN_KEY, TOKEN_DIR, "PEAT_BROKER_TOKEN")
             if s in text]
    if e.secret is not None:
        leaks += [s for s in (e.secret.strip(), base64.b64encode(e.secret.strip().encode()).decode()) if s in text]
    if rx.key is not None:
        leaks += [s for s in (rx.key.strip(), base64.b64encode(rx.key.strip().encode()).decode()) if s in text]
    r.equal("relay: the Deployment names no formation secret or broker token and holds no key value", leaks, [])

    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    mounts = c.get("volumeMounts", [])
    if rx.tls_secret:
        r.equal("relay: the only volume is the TLS Secret (tls.crt, tls.key)", volumes,
                {"relay-tls": {"name": "relay-tls", "secret": {
                    "secretName": rx.tls_secret, "defaultMode": e.token_mode,
                    "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}]}}})
        r.equal("relay: TLS mounted read-only as a whole directory (no subPath)", mounts,
                [{"name": "relay-tls", "mountPath": RELAY_TLS_DIR, "readOnly": True}])
        values = {v["name"]: v.get("value") for v in env}
        r.equal("relay: PEAT_RELAY_TLS_CERT / KEY resolve to the Secret's tls.crt / tls.key",
                (resolve_file(c, volumes, values.get("PEAT_RELAY_TLS_CERT") or ""),
                 resolve_file(c, volumes, values.get("PEAT_RELAY_TLS_KEY") or "")),
                ((rx.tls_secret, "tls.crt"), (rx.tls_secret, "tls.key")))
    else:
        r.equal("relay: no volumes, no mounts (stateless; it writes nothing)", (volumes, mounts), ({}, []))

    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe, path in (("livenessProbe", "/api/v1/health"), ("readinessProbe", "/api/v1/ready")):
        relay_probe = c.get(probe, {})
        r.equal(f"relay: {probe} httpGet on the health port", relay_probe.get("httpGet"), {"path": path, "port": "http"})
        r.equal(f"relay: {probe} port http is the health port, not the relay port",
                ports.get((relay_probe.get("httpGet") or {}).get("port")), rx.health_port)
        r.equal(f"relay: {probe} timings are the node's",
                {k: v for k, v in relay_probe.items() if k != "httpGet"},
                {k: v for k, v in node_container.get(probe, {}).items() if k != "httpGet"})
    annotations = pod["metadata"].get("annotations", {})
    r.check("relay: checksum/relay-access-key annotation iff the chart renders the key Secret",
            ("checksum/relay-access-key" in annotations) == (rx.key is not None), annotations)

    # The key Secret.
    if rx.key is None:
        r.equal("relay: no access-key Secret (relay.existingSecret)", find(objects, "Secret", rx.key_secret), [])
    else:
        keys = find(objects, "Secret", rx.key_secret)
        if r.equal("relay: one access-key Secret", len(keys), 1):
            s = keys[0]
            r.equal("relay: access-key Secret type", s.get("type"), "Opaque")
            r.equal("relay: access-key Secret data is only relay-access-key", sorted(s.get("data", {})), [RELAY_KEY_KEY])
            r.equal("relay: relay-access-key is base64 of the trimmed relay.accessKey",
                    s.get("data", {}).get(RELAY_KEY_KEY), base64.b64encode(rx.key.strip().encode()).decode())

    # The nodes: the relay's URL, no access key.
    node_text = json.dumps(sts)
    r.check("relay: the StatefulSet holds no access key and no reference to its Secret",
            "PEAT_RELAY_ACCESS_KEY" not in node_text and rx.key_secret not in node_text
            and (rx.key is None or rx.key.strip() not in node_text))

    # Services.
    services = {s["metadata"]["name"]: s for s in find(objects, "Service")}
    main = services.get(rx.name)
    if r.check("relay: Service <fullname>-relay", main is not None, sorted(services)):
        r.equal("relay: Service type", main["spec"].get("type"), rx.service_type)
        r.equal("relay: Service selects the relay's pods", main["spec"].get("selector"), selector)
        r.equal("relay: Service annotations", main["metadata"].get("annotations"), rx.annotations)
        expected_ports = [("relay", rx.port, "relay", "TCP", rx.node_port)]
        if rx.service_type == "ClusterIP":
            expected_ports.append(("http", rx.health_port, "http", "TCP", None))
        r.equal("relay: Service ports", [(p["name"], p["port"], p.get("targetPort"), p.get("protocol"), p.get("nodePort"))
                                         for p in main["spec"]["ports"]], expected_ports)
    if rx.service_type == "ClusterIP":
        r.check("relay: no health Service (the relay Service carries the health port)", rx.health_name not in services)
    else:
        health = services.get(rx.health_name)
        if r.check("relay: ClusterIP Service <fullname>-relay-health for the health port", health is not None,
                   sorted(services)):
            r.equal("relay: health Service is a ClusterIP with the health port only",
                    (health["spec"].get("type"), [(p["name"], p["port"], p.get("targetPort"), p.get("nodePort"))
                                                  for p in health["spec"]["ports"]]),
                    ("ClusterIP", [("http", rx.health_port, "http", None)]))
            r.equal("relay: health Service selects the relay's pods", health["spec"].get("selector"), selector)
    exposed = [(s["metadata"]["name"], p.get("name")) for s in services.values()
               if s["spec"].get("type") in ("NodePort", "LoadBalancer") for p in s["spec"]["ports"]
               if s["spec"].get("selector") == selector and (p.get("targetPort") in ("http", rx.health_port)
                                                              or p.get("port") == rx.health_port)]
    r.equal("relay: no NodePort or LoadBalancer Service reaches the relay's health port", exposed, [])

    # NetworkPolicy.
    relay_policies = find(objects, "NetworkPolicy", rx.name)
    if rx.policy is None:
        r.equal("relay: no relay NetworkPolicy", relay_policies, [])
        return
    if not r.equal("relay: one NetworkPolicy <fullname>-relay", len(relay_policies), 1):
        return
    policy = relay_policies[0]
    r.equal("relay: NetworkPolicy selects the relay's pods", policy["spec"].get("podSelector"), {"matchLabels": selector})
    r.equal("relay: NetworkPolicy restricts ingress only", policy["spec"].get("policyTypes"), ["Ingress"])
    opened = {(p.get("protocol", "TCP"), p.get("port")) for rule in policy["spec"].get("ingress") or []
              for p in rule.get("ports") or []}
    r.check("relay: the policy opens only the relay and health ports", opened <= {("TCP", rx.port), ("TCP", rx.health_port)},
            opened)
    r.check("relay: every rule names its ports", all(rule.get("ports") for rule in policy["spec"].get("ingress") or []))
    sources = policy_sources(e)
    for source_name, port_name, expected in rx.policy:
        port = rx.port if port_name == "relay" else rx.health_port
        admitted = policy_admits(policy, sources[source_name], port, "TCP", "relay" if port_name == "relay" else "http")
        r.equal(f"relay: {port_name} port {'admits' if expected else 'refuses'} {source_name}", admitted, expected)


def relay_policy(*, relay_from: tuple[str, ...] | None = None, health: tuple[str, ...] = (
        "this release's pod", "another pod of the namespace", "another peat-mesh release in the namespace (a gateway)"),
        ) -> list[tuple[str, str, bool]]:
    """Every source against the relay's two ports; relay_from None: the relay port admits everyone."""
    facts = []
    for name in policy_sources(Expect()):
        facts.append((name, "relay", relay_from is None or name in relay_from))
        facts.append((name, "health", name in health))
    return facts


EXTRA_ENV = [{"name": "EXTRA_FLAG", "value": "1"},
             {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}]
TOLERATIONS = [{"key": "edge", "operator": "Exists", "effect": "NoSchedule"}]
AFFINITY = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
    "weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                       "labelSelector": {"matchLabels": {"app": "peat-mesh"}}}}]}}


def check_extras(r: Report, objects: list[dict[str, Any]]) -> None:
    sts = find(objects, "StatefulSet")[0]
    pod = sts["spec"]["template"]
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    r.equal("extraEnv appended last, in order", container["env"][-len(EXTRA_ENV):], EXTRA_ENV)
    r.equal("podAnnotations kept next to the checksum", pod["metadata"]["annotations"].get("prometheus.io/scrape"),
            "true")
    r.equal("podLabels on the pod", pod["metadata"]["labels"].get("team"), "edge")
    r.check("podLabels not in the selector", "team" not in sts["spec"]["selector"]["matchLabels"])
    r.equal("nodeSelector", spec.get("nodeSelector"), {"kubernetes.io/os": "linux"})
    r.equal("tolerations", spec.get("tolerations"), TOLERATIONS)
    r.equal("affinity", spec.get("affinity"), AFFINITY)
    r.equal("imagePullSecrets", spec.get("imagePullSecrets"), [{"name": "regcred"}])
    r.equal("imagePullPolicy", container.get("imagePullPolicy"), "Always")
    r.equal("ServiceAccount annotations", find(objects, "ServiceAccount")[0]["metadata"].get("annotations"),
            {"example.com/role": "mesh"})


# --- value sets --------------------------------------------------------------------------------

ValueSet = tuple[str, dict[str, Any], Expect, dict[str, str]]

VALUE_SETS: list[ValueSet] = [
    ("defaults + secret", {"formationSecret": SECRET}, Expect(), {}),
    ("persistence, compaction, identity, static peers, json logs", {
        # A trailing newline, as --set-file from `openssl rand -base64 32 > file` gives: trimmed.
        "formationSecret": SECRET + "\n",
        "persistence": {"enabled": True, "size": "2Gi", "storageClass": "fast-ssd"},
        "compaction": {"enabled": True, "intervalSecs": 60, "thresholdBytes": 1024, "collections": "beacons,tracks"},
        "identityContext": "cluster-a",
        "staticPeers": "peat-mesh-0@10.20.0.5:11204,10.20.0.6:11204",
        "syncModeOverrides": "positions=latest_only,logs=windowed:3600",
        "syncPriorityOverrides": "contact_reports=high,beacons=low",
        "peerRateLimit": 16000,
        "tcpCongestion": "bbr",
        "logFormat": "json",
        "logLevel": "debug",
        "antiEntropyIntervalSecs": 10,
        "relayUrls": "https://relay.example.net:443",
    }, Expect(
        persistence={"size": "2Gi", "storageClass": "fast-ssd"},
        env={"PEAT_COMPACTION_ENABLED": "true", "PEAT_COMPACTION_INTERVAL_SECS": "60",
             "PEAT_COMPACTION_THRESHOLD_BYTES": "1024", "PEAT_COMPACTION_COLLECTIONS": "beacons,tracks",
             "PEAT_IDENTITY_CONTEXT": "cluster-a-$(POD_NAME)",
             "PEAT_STATIC_PEERS": "peat-mesh-0@10.20.0.5:11204,10.20.0.6:11204",
             "PEAT_SYNC_MODE_OVERRIDES": "positions=latest_only,logs=windowed:3600",
             "PEAT_SYNC_PRIORITY_OVERRIDES": "contact_reports=high,beacons=low", "PEAT_PEER_RATE_LIMIT": "16000",
             "PEAT_TCP_CONGESTION": "bbr",
             "PEAT_LOG_FORMAT": "json", "PEAT_LOG_LEVEL": "debug", "PEAT_ANTI_ENTROPY_INTERVAL_SECS": "10",
             "PEAT_RELAY_URLS": "https://relay.example.net:443"}), {}),
    ("federation gateway (NodePort + static peers)", {
        "formationSecret": SECRET,
        "discoveryMode": "kubernetes",
        "staticPeers": "172.18.0.3:31204",
        "identityContext": "cluster-b-",
        "nodePort": {"enabled": True, "syncNodePort": 31204, "externalTrafficPolicy": "Local"},
    }, Expect(env={"PEAT_STATIC_PEERS": "172.18.0.3:31204", "PEAT_IDENTITY_CONTEXT": "cluster-b-$(POD_NAME)"},
              node_ports={"sync": 31204, "externalTrafficPolicy": "Local"}), {}),
    ("NodePort with a cluster-allocated port; brokerNodePort null (an old values file) is ignored", {
        "formationSecret": SECRET, "nodePort": {"enabled": True, "brokerNodePort": None},
    }, Expect(node_ports={"sync": None}), {}),
    ("networkPolicy defaults", {"formationSecret": SECRET, "networkPolicy": {"enabled": True}},
     Expect(policy=default_policy()), {}),
    ("networkPolicy: relay, federation over a Local NodePort, syncFrom, broker closed", {
        "formationSecret": SECRET,
        "nodePort": {"enabled": True, "syncNodePort": 31204, "externalTrafficPolicy": "Local"},
        "networkPolicy": {
            "enabled": True,
            "relayPodSelector": {"matchLabels": {"app.kubernetes.io/component": "relay"}},
            "relayNamespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                                             "values": ["relay"]}]},
            "federationCIDRs": ["172.18.0.3/32"],
            "syncFrom": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                         {"ipBlock": {"cidr": "fd00:10::/64"}}],
            "brokerFrom": [],
        },
    }, Expect(node_ports={"sync": 31204, "externalTrafficPolicy": "Local"}, policy=default_policy(
        sync_extra=("the relay (namespace relay)", "the other cluster's node 172.18.0.3", "10.2.3.4 (syncFrom ipBlock)"),
        broker=())), {}),
    ("networkPolicy with mdns discovery and Prometheus on the broker port", {
        "formationSecret": SECRET, "discoveryMode": "mdns",
        "networkPolicy": {"enabled": True, "brokerFrom": [
            {"podSelector": {}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
             "podSelector": {"matchLabels": {"app": "prometheus"}}}]},
    }, Expect(env={"PEAT_DISCOVERY": "mdns"}, rbac=False, automount=False, policy=default_policy(
        mdns=True, broker=("this release's pod", "another pod of the namespace",
                           "another peat-mesh release in the namespace (a gateway)", "Prometheus (namespace monitoring)"))),
     {}),
    ("networkPolicy follows custom ports (release edge in namespace mesh)", {
        "formationSecret": SECRET, "brokerPort": 9000, "syncPort": 12000, "networkPolicy": {"enabled": True},
    }, Expect(name="edge", namespace="mesh", fullname="edge-peat-mesh", sync_port=12000, broker_port=9000,
              env={"PEAT_BROKER_PORT": "9000", "PEAT_SYNC_PORT": "12000"}, policy=default_policy()),
     {"name": "edge", "namespace": "mesh"}),
    ("existingSecret", {"existingSecret": "peat-formation"},
     Expect(secret=None, secret_name="peat-formation"), {}),
    ("existingSecret and brokerToken.existingSecret (the chart renders no Secret)", {
        "existingSecret": "peat-formation", "brokerToken": {"existingSecret": "peat-broker-token"},
    }, Expect(secret=None, secret_name="peat-formation", token_secret="peat-broker-token"), {}),
    ("brokerToken.existingSecret with a chart-managed formation Secret", {
        "formationSecret": SECRET, "brokerToken": {"existingSecret": "vault.peat-token"},
    }, Expect(token_secret="vault.peat-token"), {}),
    ("replicaCount 1, no PDB", {
        "formationSecret": OTHER_SECRET, "replicaCount": 1, "podDisruptionBudget": {"enabled": False},
    }, Expect(secret=OTHER_SECRET, replicas=1, pdb=False), {}),
    ("mdns discovery (no API access)", {"formationSecret": SECRET, "discoveryMode": "mdns"},
     Expect(env={"PEAT_DISCOVERY": "mdns"}, rbac=False, automount=False), {}),
    ("static discovery", {"formationSecret": SECRET, "discoveryMode": "static",
                          "staticPeers": "edge-1@edge-1.example:11204,[fd00::7]:11204"},
     Expect(env={"PEAT_DISCOVERY": "static", "PEAT_STATIC_PEERS": "edge-1@edge-1.example:11204,[fd00::7]:11204"},
            rbac=False, automount=False), {}),
    ("deprecated irohBindPort / irohRelayUrls aliases", {
        "formationSecret": SECRET, "syncPort": 11204, "irohBindPort": 11300,
        "relayUrls": "https://ignored.example", "irohRelayUrls": "https://relay.example",
    }, Expect(sync_port=11300, env={"PEAT_SYNC_PORT": "11300", "PEAT_RELAY_URLS": "https://relay.example"}), {}),
    ("release edge in namespace mesh, external ServiceAccount, custom ports", {
        "formationSecret": SECRET, "serviceAccount": {"create": False, "name": "mesh-runner"},
        "brokerPort": 9000, "syncPort": 12000,
    }, Expect(name="edge", namespace="mesh", fullname="edge-peat-mesh", service_account="mesh-runner",
              create_service_account=False, sync_port=12000, broker_port=9000,
              env={"PEAT_BROKER_PORT": "9000", "PEAT_SYNC_PORT": "12000"}),
     {"name": "edge", "namespace": "mesh"}),
    ("rbac disabled", {"formationSecret": SECRET, "rbac": {"create": False}}, Expect(rbac=False), {}),
    ("relay with accessKey (ClusterIP); static peers reached through the relay", {
        # A trailing newline, as `relay-key > file` + --set-file gives: trimmed.
        "formationSecret": SECRET, "relay": {"enabled": True, "accessKey": RELAY_KEY + "\n"},
        "staticPeers": "peat-mesh-b-0@relay,peat-mesh-b-1@relay",
    }, Expect(env={"PEAT_RELAY_URLS": "https://peat-mesh-relay.peat.svc:3340",
                   "PEAT_STATIC_PEERS": "peat-mesh-b-0@relay,peat-mesh-b-1@relay"},
              relay=RelayExpect(key=RELAY_KEY + "\n")), {}),
    ("relay.existingSecret, own ports, replicas, resources and scheduling; relayUrls win (release edge in mesh)", {
        "existingSecret": "peat-formation",
        "relayUrls": "https://relay.example.net,https://relay-2.example.net:8443",
        "nodeSelector": {"kubernetes.io/os": "linux"}, "tolerations": TOLERATIONS,
        "relay": {"enabled": True, "existingSecret": "peat-relay-key", "port": 4443, "healthPort": 9091,
                  "replicas": 2, "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
                  "nodeSelector": {"node-role.example/edge": "true"},
                  "tolerations": [{"key": "public", "operator": "Exists", "effect": "NoSchedule"}],
                  "affinity": AFFINITY},
    }, Expect(name="edge", namespace="mesh", fullname="edge-peat-mesh", secret=None, secret_name="peat-formation",
              env={"PEAT_RELAY_URLS": "https://relay.example.net,https://relay-2.example.net:8443"},
              relay=RelayExpect(key=None, key_secret="peat-relay-key", port=4443, health_port=9091, replicas=2,
                                resources={"requests": {"cpu": "50m", "memory": "32Mi"},
                                           "limits": {"cpu": "500m", "memory": "64Mi"}}, scheduling={
                                    "nodeSelector": {"node-role.example/edge": "true"},
                                    "tolerations": [{"key": "public", "operator": "Exists", "effect": "NoSchedule"}],
                                    "affinity": AFFINITY})),
     {"name": "edge", "namespace": "mesh"}),
    ("relay with a CA-signed certificate (relay.tls.existingSecret) on port 443; the URL follows the port", {
        "formationSecret": SECRET, "logLevel": "debug", "logFormat": "json",
        "relay": {"enabled": True, "accessKey": RELAY_KEY, "port": 443, "tls": {"existingSecret": "relay-tls"}},
    }, Expect(env={"PEAT_RELAY_URLS": "https://peat-mesh-relay.peat.svc:443", "PEAT_LOG_LEVEL": "debug",
                   "PEAT_LOG_FORMAT": "json"},
              relay=RelayExpect(port=443, tls_secret="relay-tls")), {}),
    ("relay on NodePort 31340 next to the sync NodePort (health port on its own ClusterIP Service)", {
        "formationSecret": SECRET,
        "nodePort": {"enabled": True, "syncNodePort": 31204},
        "relay": {"enabled": True, "accessKey": RELAY_KEY, "service": {"type": "NodePort", "nodePort": 31340}},
    }, Expect(env={"PEAT_RELAY_URLS": "https://peat-mesh-relay.peat.svc:3340"}, node_ports={"sync": 31204},
              relay=RelayExpect(service_type="NodePort", node_port=31340)), {}),
    ("relay on a LoadBalancer with annotations; deprecated irohRelayUrls win", {
        "formationSecret": SECRET, "irohRelayUrls": "https://relay.example.org",
        "relay": {"enabled": True, "accessKey": RELAY_KEY, "service": {
            "type": "LoadBalancer", "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}}},
    }, Expect(env={"PEAT_RELAY_URLS": "https://relay.example.org"},
              relay=RelayExpect(service_type="LoadBalancer",
                                annotations={"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"})), {}),
    ("relay with networkPolicy defaults: the relay port open to everyone, health as the broker", {
        "formationSecret": SECRET, "networkPolicy": {"enabled": True},
        "relay": {"enabled": True, "accessKey": RELAY_KEY},
    }, Expect(env={"PEAT_RELAY_URLS": "https://peat-mesh-relay.peat.svc:3340"}, policy=default_policy(),
              relay=RelayExpect(policy=relay_policy())), {}),
    ("relay with relay.networkPolicy.from (a CIDR, a namespace) and the broker closed", {
        "formationSecret": SECRET,
        "networkPolicy": {"enabled": True, "brokerFrom": []},
        "relay": {"enabled": True, "accessKey": RELAY_KEY, "networkPolicy": {"from": [
            {"ipBlock": {"cidr": "172.18.0.0/16"}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "elsewhere"}}}]}},
    }, Expect(env={"PEAT_RELAY_URLS": "https://peat-mesh-relay.peat.svc:3340"}, policy=default_policy(broker=()),
              relay=RelayExpect(policy=relay_policy(relay_from=(
                  "this release's pod", "the other cluster's node 172.18.0.3", "a peat-mesh pod of another namespace"),
                  health=()))), {}),
    ("extras: extraEnv, pod metadata, scheduling, pull secrets, storageClass -", {
        "formationSecret": SECRET,
        "image": {"repository": "registry.example/peat-mesh-node", "tag": "0.1.0", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "extraEnv": EXTRA_ENV,
        "podAnnotations": {"prometheus.io/scrape": "true"},
        "podLabels": {"team": "edge"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": TOLERATIONS,
        "affinity": AFFINITY,
        "serviceAccount": {"annotations": {"example.com/role": "mesh"}},
        "persistence": {"enabled": True, "storageClass": "-"},
        "podDisruptionBudget": {"maxUnavailable": "50%"},
    }, Expect(image="registry.example/peat-mesh-node:0.1.0", persistence={"size": "1Gi", "storageClass": ""},
              max_unavailable="50%", extra=check_extras), {}),
]

# values, expected exception class name, text the message must contain
FAILURES: list[tuple[str, dict[str, Any], str, str]] = [
    ("empty formationSecret and existingSecret", {}, "HelmRenderError", "formationSecret is required"),
    ("whitespace-only formationSecret", {"formationSecret": "  \n"}, "HelmRenderError",
     "formationSecret is required"),
    ("peerRateLimit below 128 bytes/s", {"formationSecret": SECRET, "peerRateLimit": 64}, "HelmValuesError", "/peerRateLimit"),
    ("tcpCongestion not a kernel name", {"formationSecret": SECRET, "tcpCongestion": "BBR; rm"}, "HelmValuesError", "/tcpCongestion"),
    ("syncPriorityOverrides with an unknown priority", {"formationSecret": SECRET, "syncPriorityOverrides": "alerts=urgent"},
     "HelmValuesError", "/syncPriorityOverrides"),
    ("discoveryMode consul", {"formationSecret": SECRET, "discoveryMode": "consul"}, "HelmValuesError",
     "/discoveryMode"),
    ("static discovery without staticPeers", {"formationSecret": SECRET, "discoveryMode": "static"},
     "HelmRenderError", "discoveryMode static needs staticPeers"),
    ("formationSecret not base64", {"formationSecret": "not base64 at all!"}, "HelmValuesError",
     "/formationSecret"),
    ("formationSecret of 15 bytes", {"formationSecret": base64.b64encode(b"fifteen-bytes!!").decode()},
     "HelmValuesError", "/formationSecret"),
    ("formationSecret URL-safe base64", {"formationSecret": base64.urlsafe_b64encode(b"\xfb\xff" * 12).decode()},
     "HelmValuesError", "/formationSecret"),
    ("formationSecret with non-canonical padding bits", {"formationSecret": OTHER_SECRET[:-3] + "B=="},
     "HelmValuesError", "/formationSecret"),
    ("syncPort 70000", {"formationSecret": SECRET, "syncPort": 70000}, "HelmValuesError", "/syncPort"),
    ("replicaCount 0", {"formationSecret": SECRET, "replicaCount": 0}, "HelmValuesError", "/replicaCount"),
    ("logLevel verbose", {"formationSecret": SECRET, "logLevel": "verbose"}, "HelmValuesError", "/logLevel"),
    ("logFormat xml", {"formationSecret": SECRET, "logFormat": "xml"}, "HelmValuesError", "/logFormat"),
    ("unknown top-level key", {"formationSecret": SECRET, "rustLog": "debug"}, "HelmValuesError",
     "additional properties 'rustLog'"),
    ("compaction.enabled as a string", {"formationSecret": SECRET, "compaction": {"enabled": "yes"}},
     "HelmValuesError", "/compaction/enabled"),
    ("irohBindPort 0", {"formationSecret": SECRET, "irohBindPort": 0}, "HelmValuesError", "/irohBindPort"),
    ("extraEnv PEAT_BROKER_TOKEN (a token as a plain value)",
     {"formationSecret": SECRET, "extraEnv": [{"name": "PEAT_BROKER_TOKEN", "value": "plain"}]},
     "HelmRenderError", "extraEnv must not set PEAT_BROKER_TOKEN: the chart gives the node its broker token as the file "
     "/var/run/secrets/peat-mesh/broker-token"),
    ("extraEnv PEAT_BROKER_TOKEN_FILE",
     {"formationSecret": SECRET, "extraEnv": [{"name": "PEAT_BROKER_TOKEN_FILE", "value": "/tmp/t"}]},
     "HelmRenderError", "extraEnv must not set PEAT_BROKER_TOKEN_FILE"),
    ("brokerToken.existingSecret not a Secret name", {"formationSecret": SECRET, "brokerToken": {"existingSecret": "My_Token"}},
     "HelmValuesError", "/brokerToken/existingSecret"),
    ("nodePort.brokerNodePort set (removed)",
     {"formationSecret": SECRET, "nodePort": {"enabled": True, "syncNodePort": 31204, "brokerNodePort": 30081}},
     "HelmRenderError", "nodePort.brokerNodePort is no longer supported: the NodePort Service exposes only the sync "
     "port"),
    ("nodePort.brokerNodePort set with the NodePort disabled",
     {"formationSecret": SECRET, "nodePort": {"brokerNodePort": 30081}},
     "HelmRenderError", "nodePort.brokerNodePort is no longer supported"),
    ("nodePort.externalTrafficPolicy local", {"formationSecret": SECRET, "nodePort": {"externalTrafficPolicy": "local"}},
     "HelmValuesError", "/nodePort/externalTrafficPolicy"),
    ("networkPolicy.federationCIDRs entry without a prefix length",
     {"formationSecret": SECRET, "networkPolicy": {"enabled": True, "federationCIDRs": ["172.18.0.3"]}},
     "HelmValuesError", "/networkPolicy/federationCIDRs/0"),
    ("networkPolicy.federationCIDRs entry 300.1.1.1/8",
     {"formationSecret": SECRET, "networkPolicy": {"federationCIDRs": ["300.1.1.1/8"]}},
     "HelmValuesError", "/networkPolicy/federationCIDRs/0"),
    ("networkPolicy.syncFrom ipBlock with a podSelector",
     {"formationSecret": SECRET, "networkPolicy": {"enabled": True, "syncFrom": [
         {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}},
     "HelmRenderError", "networkPolicy.syncFrom[0]: ipBlock cannot be combined with podSelector or namespaceSelector"),
    ("networkPolicy.brokerFrom empty peer (would admit everyone)",
     {"formationSecret": SECRET, "networkPolicy": {"enabled": True, "brokerFrom": [{}]}},
     "HelmValuesError", "/networkPolicy/brokerFrom/0"),
    ("networkPolicy.relayPodSelector given labels instead of a selector",
     {"formationSecret": SECRET, "networkPolicy": {"enabled": True, "relayPodSelector": {"app": "relay"}}},
     "HelmValuesError", "/networkPolicy/relayPodSelector"),
    ("networkPolicy.egress (egress is not restricted)",
     {"formationSecret": SECRET, "networkPolicy": {"enabled": True, "egress": []}},
     "HelmValuesError", "additional properties 'egress'"),
    ("brokerToken.value (a token in values)", {"formationSecret": SECRET, "brokerToken": {"value": "abc"}},
     "HelmValuesError", "additional properties 'value'"),
    ("relay.enabled without an access key", {"formationSecret": SECRET, "relay": {"enabled": True}},
     "HelmRenderError", "relay.enabled needs the relay access key, which Helm cannot derive: run `peat-mesh-node "
     "relay-key` with PEAT_FORMATION_SECRET set"),
    ("relay.accessKey an empty string (null is 'not given')", {"formationSecret": SECRET, "relay": {
        "enabled": True, "accessKey": ""}}, "HelmValuesError", "/relay/accessKey"),
    ("relay.accessKey of 16 bytes (relay-key prints 32)", {"formationSecret": SECRET, "relay": {
        "enabled": True, "accessKey": OTHER_SECRET}}, "HelmValuesError", "/relay/accessKey"),
    ("relay.accessKey URL-safe base64", {"formationSecret": SECRET, "relay": {
        "enabled": True, "accessKey": base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode()}},
     "HelmValuesError", "/relay/accessKey"),
    ("relay.accessKey and relay.existingSecret", {"formationSecret": SECRET, "relay": {
        "enabled": True, "accessKey": RELAY_KEY, "existingSecret": "peat-relay-key"}},
     "HelmRenderError", "relay.accessKey and relay.existingSecret are both set"),
    ("relay.formationSecret (the relay never takes the formation secret)", {"formationSecret": SECRET, "relay": {
        "enabled": True, "accessKey": RELAY_KEY, "formationSecret": SECRET}},
     "HelmValuesError", "additional properties 'formationSecret'"),
    ("relay.extraEnv (the relay's environment is the chart's alone)", {"formationSecret": SECRET, "relay": {
        "enabled": True, "accessKey": RELAY_KEY, "extraEnv": [{"name": "PEAT_FORMATION_SECRET", "value": "x"}]}},
     "HelmValuesError", "additional properties 'extraEnv'"),
    ("relay.enabled as a string", {"formationSecret": SECRET, "relay": {"enabled": "true"}},
     "HelmValuesError", "/relay/enabled"),
    ("relay.port 70000", {"formationSecret": SECRET, "relay": {"port": 70000}}, "HelmValuesError", "/relay/port"),
    ("relay.healthPort 0", {"formationSecret": SECRET, "relay": {"healthPort": 0}}, "HelmValuesError",
     "/relay/healthPort"),
    ("relay.healthPort equal to relay.port", {"formationSecret": SECRET, "relay": {
        "enabled": True, "accessKey": RELAY_KEY, "healthPort": 3340}},
     "HelmRenderError", "relay.port and relay.healthPort are both 3340"),
    ("relay.replicas 0", {"formationSecret": SECRET, "relay": {"replicas": 0}}, "HelmValuesError", "/relay/replicas"),
    ("relay.service.type ExternalName", {"formationSecret": SECRET, "relay": {"service": {"type": "ExternalName"}}},
     "HelmValuesError", "/relay/service/type"),
    ("relay.service.nodePort on a ClusterIP Service", {"formationSecret": SECRET, "relay": {
        "enabled": True, "accessKey": RELAY_KEY, "service": {"nodePort": 31340}}},
     "HelmRenderError", "relay.service.nodePort needs relay.service.type NodePort or LoadBalancer"),
    ("relay.service.nodePort 70000", {"formationSecret": SECRET, "relay": {"service": {
        "type": "NodePort", "nodePort": 70000}}}, "HelmValuesError", "/relay/service/nodePort"),
    ("relay.tls.existingSecret not a Secret name", {"formationSecret": SECRET, "relay": {"tls": {
        "existingSecret": "Relay_TLS"}}}, "HelmValuesError", "/relay/tls/existingSecret"),
    ("relay.networkPolicy.from ipBlock with a namespaceSelector", {"formationSecret": SECRET, "relay": {
        "enabled": True, "accessKey": RELAY_KEY, "networkPolicy": {"from": [
            {"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}]}}},
     "HelmRenderError", "relay.networkPolicy.from[0]: ipBlock cannot be combined with podSelector or namespaceSelector"),
    ("relay.networkPolicy.from empty peer (would admit everyone)", {"formationSecret": SECRET, "relay": {
        "networkPolicy": {"from": [{}]}}}, "HelmValuesError", "/relay/networkPolicy/from/0"),
]


def check_chart(r: Report) -> None:
    r.scope = "chart"
    chart = _chart()
    meta = chart.metadata
    r.equal("Chart.yaml", {k: meta.get(k) for k in ("apiVersion", "name", "version", "appVersion")},
            {"apiVersion": "v2", "name": "peat-mesh", "version": "0.1.0", "appVersion": "0.1.0"})
    schema = chart.schema or {}
    r.equal("schema is draft-07", schema.get("$schema"), "http://json-schema.org/draft-07/schema#")
    r.equal("schema rejects unknown top-level keys", schema.get("additionalProperties"), False)
    defaults = chart.values
    listed = set(schema.get("properties", {}))
    r.check("schema lists every values.yaml key (aliases included)", set(defaults) <= listed,
            sorted(set(defaults) - listed))
    r.check("schema lists no key values.yaml lacks (besides global)", listed - set(defaults) <= {"global"},
            sorted(listed - set(defaults) - {"global"}))
    r.equal("aliases default to null", (defaults.get("irohBindPort", 0), defaults.get("irohRelayUrls", 0)),
            (None, None))
    relay = defaults.get("relay", {})
    r.equal("relay defaults: off, no key, port 3340, health 8081, one ClusterIP replica",
            (relay.get("enabled"), relay.get("accessKey", 0), relay.get("existingSecret"), relay.get("port"),
             relay.get("healthPort"), relay.get("replicas"), relay.get("service", {}).get("type"),
             relay.get("service", {}).get("nodePort", 0)),
            (False, None, "", 3340, 8081, 1, "ClusterIP", None))
    relay_schema = schema.get("properties", {}).get("relay", {})
    r.check("schema lists every relay value", relay_schema.get("additionalProperties") is False
            and set(relay) <= set(relay_schema.get("properties", {})),
            sorted(set(relay) - set(relay_schema.get("properties", {}))))
    templates = sorted(t["name"] for t in chart.templates)
    r.check("templates present", {f"templates/{n}" for n in (
        "_helpers.tpl", "statefulset.yaml", "service-headless.yaml", "serviceaccount.yaml", "role.yaml",
        "rolebinding.yaml", "secret.yaml", "secret-broker-token.yaml", "pdb.yaml", "service-nodeport.yaml",
        "networkpolicy.yaml", "relay-deployment.yaml", "relay-service.yaml", "relay-secret.yaml",
        "relay-networkpolicy.yaml", "NOTES.txt")} <= set(templates),
        templates)


def check_value_set(r: Report, label: str, values: dict[str, Any], expect: Expect, release: dict[str, str]) -> None:
    r.scope = label
    name, namespace = release.get("name", "peat-mesh"), release.get("namespace", "peat")
    report = helm_python.lint(CHART, values, strict=True, namespace=namespace, kube_version="v" + KUBE_VERSION)
    problems = report.get("errors", []) + [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    r.check("helm lint --strict", not problems, problems)
    try:
        manifests = render_manifests(values, name, namespace)
    except helm_python.HelmError as error:
        r.check("renders", False, f"{type(error).__name__}: {error}")
        return
    r.check("renders", True)
    notes = manifests.get("peat-mesh/templates/NOTES.txt", "")
    r.check("NOTES.txt explains port-forward, health, peers and the device_id check",
            all(s in notes for s in ("port-forward", "/api/v1/health", "/api/v1/peers", "peat-mesh-node identity",
                                     "device_id")), notes)
    read_token = (f"kubectl -n {namespace} get secret {expect.token_secret} -o jsonpath='{{.data.broker-token}}' "
                  "| base64 -d")
    r.check("NOTES.txt says how to read the token and sends it to protected routes",
            read_token in notes and 'curl -s -H "Authorization: Bearer $TOKEN"' in notes
            and "/api/v1/peers" in notes.split("Authorization: Bearer", 1)[-1], notes)
    r.check("NOTES.txt summarises the NetworkPolicy iff enabled",
            ("NetworkPolicy" in notes and "(ingress only)" in notes) == (expect.policy is not None), notes)
    r.check("NOTES.txt describes the relay iff enabled (its rollout, its health port, the relay-key origin)",
            ("Relay: Deployment" in notes and "deployment/" in notes and "access key" in notes)
            == (expect.relay is not None), notes)
    objects = render(values, name, namespace)
    check_common(r, objects, expect)


# --- the broker token across installs and upgrades ----------------------------------------------

class SecretsAPI:
    """Just enough of an API server for Helm's `lookup "v1" "Secret"`: discovery of v1 and GET of one
    Secret (404 for any other), over plain HTTP on loopback. Records the paths it was asked for."""

    def __init__(self, namespace: str, secrets: dict[str, dict[str, str]]) -> None:
        self.namespace, self.secrets, self.requests = namespace, secrets, []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                api.requests.append(path)
                code, body = 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                   "code": 404, "message": f"{path} not found"}
                secret = re.fullmatch(rf"/api/v1/namespaces/{re.escape(api.namespace)}/secrets/([^/]+)", path)
                if path == "/api":
                    code, body = 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
                elif path == "/apis":
                    code, body = 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
                elif path == "/api/v1":
                    code, body = 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                        {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret",
                         "verbs": ["get", "list"]}]}
                elif path == "/version":
                    code, body = 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"}
                elif secret and secret.group(1) in api.secrets:
                    code, body = 200, {"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
                                       "metadata": {"name": secret.group(1), "namespace": api.namespace},
                                       "data": api.secrets[secret.group(1)]}
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "SecretsAPI":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def render(self, values: dict[str, Any], name: str = "peat-mesh") -> list[dict[str, Any]]:
        """`helm upgrade`'s render against this server: lookup returns what it holds."""
        config = helm_python.Config(kube_apiserver=f"http://127.0.0.1:{self.server.server_port}",
                                    kube_token="chart-check", namespace=self.namespace)
        try:
            manifests = config.render(_chart(), values, name=name, namespace=self.namespace, is_upgrade=True)
        finally:
            config.close()
        return [d for p, t in sorted(manifests.items()) if not p.endswith(".txt") for d in yaml.safe_load_all(t) if d]


def token_of(objects: list[dict[str, Any]], secret: str = "peat-mesh-broker-token") -> str | None:
    found = find(objects, "Secret", secret)
    return base64.b64decode(found[0]["data"][TOKEN_KEY]).decode() if found else None


def check_token_lifecycle(r: Report) -> None:
    r.scope = "broker token: offline renders"
    values = {"formationSecret": SECRET}
    first, second = render(values), render(values)
    t1, t2 = token_of(first), token_of(second)
    r.check("two offline renders (helm template: lookup finds nothing) generate two different tokens",
            t1 is not None and t2 is not None and t1 != t2 and all(GENERATED_TOKEN.match(t) for t in (t1, t2)), (t1, t2))
    r.equal("the StatefulSet is the same whatever the token (a new token restarts no pod)",
            find(first, "StatefulSet"), find(second, "StatefulSet"))
    # Maps merge with the defaults: only null removes the default fsGroup.
    no_fs_group = render({**values, "podSecurityContext": {"fsGroup": None}})
    sts = find(no_fs_group, "StatefulSet")[0]
    r.check("podSecurityContext.fsGroup null removes it", "fsGroup" not in sts["spec"]["template"]["spec"]["securityContext"],
            sts["spec"]["template"]["spec"]["securityContext"])
    volume = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "broker-token")
    r.equal("without fsGroup the token file is world-readable (0444), else a non-root user could not read it",
            volume["secret"].get("defaultMode"), 0o444)
    validate_objects(r, find(no_fs_group, "StatefulSet"))

    kept = "rotated-by-an-operator.7Hk2\n"  # what `kubectl create secret --from-file` of an echo would hold
    kept_b64 = base64.b64encode(kept.encode()).decode()
    cases = [
        ("no token Secret in the cluster (install)", {}, "generated"),
        ("token Secret present (upgrade)", {"peat-mesh-broker-token": {TOKEN_KEY: kept_b64}}, "kept"),
        ("token Secret with a blank value", {"peat-mesh-broker-token": {TOKEN_KEY: base64.b64encode(b" \n").decode()}},
         "generated"),
        ("token Secret without the key", {"peat-mesh-broker-token": {"other": kept_b64}}, "generated"),
    ]
    for label, held, outcome in cases:
        r.scope = f"broker token: lookup, {label}"
        with SecretsAPI("peat", held) as api:
            try:
                objects = api.render(values)
            except helm_python.HelmError as error:
                r.check("renders against the API double", False, f"{type(error).__name__}: {error}")
                continue
        r.check("lookup asked the API server for the token Secret",
                "/api/v1/namespaces/peat/secrets/peat-mesh-broker-token" in api.requests, api.requests)
        secret = find(objects, "Secret", "peat-mesh-broker-token")
        data = secret[0]["data"][TOKEN_KEY] if secret else None
        if outcome == "kept":
            r.equal("the Secret keeps the cluster's value byte for byte", data, kept_b64)
        else:
            token = token_of(objects)
            r.check("a new 40-character token is generated", bool(token and GENERATED_TOKEN.match(token)), token)
        validate_objects(r, secret)

    r.scope = "broker token: lookup, brokerToken.existingSecret"
    with SecretsAPI("peat", {"mine": {TOKEN_KEY: kept_b64}}) as api:
        objects = api.render({**values, "brokerToken": {"existingSecret": "mine"}})
    r.check("no token Secret rendered and none looked up (the chart never touches an existing Secret)",
            not find(objects, "Secret", "mine") and not find(objects, "Secret", "peat-mesh-broker-token")
            and not any("/secrets/" in p for p in api.requests), api.requests)


def check_failures(r: Report) -> None:
    for label, values, error_class, text in FAILURES:
        r.scope = f"rejects: {label}"
        try:
            render_manifests(values)
        except helm_python.HelmError as error:
            message = str(error)
            r.check(f"{error_class} mentioning {text!r}",
                    type(error).__name__ == error_class and text in message, f"{type(error).__name__}: {message}")
        else:
            r.check(f"{error_class} mentioning {text!r}", False, "rendered without error")


def main() -> int:
    if _IMPORT_ERROR is not None:
        print(f"chart_check: cannot import {_IMPORT_ERROR.name}: install the chart tools with:\n  {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    r = Report()
    check_chart(r)
    for label, values, expect, release in VALUE_SETS:
        check_value_set(r, label, values, expect, release)
    check_token_lifecycle(r)
    check_failures(r)
    r.scope = ""
    total = r.passed + len(r.failures)
    print(f"\nchart_check: {total} checks, {r.passed} passed, {len(r.failures)} failed "
          f"({len(VALUE_SETS)} value sets, {len(FAILURES)} rejected value sets, Kubernetes {KUBE_VERSION})")
    for failure in r.failures:
        print(f"  failed: {failure}")
    return 1 if r.failures else 0


if __name__ == "__main__":
    sys.exit(main())
