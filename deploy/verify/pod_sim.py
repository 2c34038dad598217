#!/usr/bin/env python3
"""Runs the Helm chart's pods offline, as a cluster would, and checks that they form a mesh.

No cluster, no Docker, no internet: the chart is rendered (deploy/verify/chart_check.render), and
every pod of the StatefulSet runs the real `peat-mesh-node` binary

- in its own network namespace, joined by a veth pair to a Linux bridge that lives in a dedicated
  "switch" namespace (nothing is added to the root namespace's network), address 203.0.113.10+ (TEST-NET-3);
- with the container's environment exactly as rendered (plain values, secretKeyRef resolved from
  the rendered Secret, fieldRef per pod, $(VAR) expansion), the image's ENV/USER from
  deploy/Dockerfile, HOSTNAME and the KUBERNETES_SERVICE_* variables a kubelet sets, nothing else;
- in a private mount namespace where the service-account folder (token, ca.crt, namespace) is
  bind-mounted at /var/run/secrets/kubernetes.io/serviceaccount, every volumeMount at its path
  (the data volume per pod; Secret volumes, the broker token's among them, laid out as the
  kubelet's atomic writer does: ..<timestamp>/ + ..data symlink + one symlink per item, group
  fsGroup, read-only), the binary at the image's path, /etc/hosts as the kubelet writes it and the
  /etc/resolv.conf of dnsPolicy ClusterFirst (search <namespace>.svc.cluster.local svc.cluster.local
  cluster.local, ndots:5), the simulator's own directory hidden, the root filesystem read-only when
  the container asks for it, as the rendered runAsUser/runAsGroup/fsGroup;

and a Kubernetes API double (HTTPS with a throwaway CA made by openssl, bearer tokens checked
against the rendered RBAC) serves list + watch of the EndpointSlices the EndpointSlice controller
would make for the rendered Services, and a cluster DNS stand-in (UDP, next to it) answers
<service>.<namespace>.svc.cluster.local with the pod IPs of the Service's endpoints (ready ones unless
publishNotReadyAddresses; a ClusterIP Service too, as there is no kube-proxy for a virtual IP) and
<pod>.<service>... for StatefulSet pods. A kubelet stand-in runs the rendered readiness/liveness
probes and publishes readiness into the slices.

Then the functional checks of deploy/k3d/functional-test.sh run against the pods, every protected
broker call with the bearer token read from the rendered Secret: readiness and health (the
kubelet's probes send no token), a full mesh of connected peers, a document written on pod 0 read
on every other pod; the token enforced (every route but health, ready and /metrics, the WebSocket
included, answers 401 + WWW-Authenticate: Bearer without it, with a wrong one or another scheme;
refused writes store nothing) and rotated (a new Secret value swapped into every pod's volume: the
new token accepted and the old refused within 10 s, no restart);
pod 0 deleted (SIGTERM, exit 0 within terminationGracePeriodSeconds, endpoint terminating then
removed) and recreated with its data volume and then with an empty one (same device_id, peers
reconnect, the document comes back), peers logging the loss and the reconnection; then the chart's
relay (check `relay`): rendered again with relay.enabled=true and the access key `peat-mesh-node
relay-key` derives, the relay pod of the Deployment <fullname>-relay (its own address, container,
resolved secretKeyRef, security context and read-only root, no service-account token) starts with a
new StatefulSet whose PEAT_RELAY_URLS name resolves to it through the cluster DNS: its probes answer
200 on its health port, its environment and files hold neither the formation secret nor a broker
token, every node logs Relay connected, /metrics counts them in peat_relay_clients, no client is
refused, and it exits 0 on SIGTERM; no ERROR or CRITICAL log line in any pod.

    sudo python3 deploy/verify/pod_sim.py [--binary PATH] [--keep-logs DIR]

Exit status: 0 every check passed, 1 a check failed, 2 cannot run here (not root, missing tools).
Everything it creates (namespaces, bridge, temporary files, empty mount points) is removed at exit,
also after a failure, a timeout or Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import copy
import ctypes
import http.client
import http.server
import json
import os
import random
import re
import secrets
import select
import shlex
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_BINARY = os.path.join(REPO, ".build", "release", "peat-mesh-node")
DOCKERFILE = os.path.join(REPO, "deploy", "Dockerfile")

RELEASE = "peat-mesh"
NAMESPACE = "peat"
REPLICAS = 3
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
DISCOVERY_SELECTOR = "app=peat-mesh"  # what the node watches (KubernetesDiscovery.Configuration)
API_PORT = 443  # the `kubernetes` Service's port, as KUBERNETES_SERVICE_PORT says in a cluster
BOOKMARK_INTERVAL = 5.0
OVERALL_TIMEOUT = 180
# containerd's default capability set (what a container keeps unless it drops it).
RUNTIME_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
                        "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")
DOC_COLLECTION = "functional"
# The broker routes that answer without the bearer token (every other route and the WebSocket need it).
OPEN_ROUTES = ("/api/v1/health", "/api/v1/ready", "/metrics")
BROKER_SOURCES = (os.path.join(REPO, "Sources", "PeatBroker", "Broker.swift"),
                  os.path.join(REPO, "Sources", "PeatBroker", "Broker+WebSocket.swift"))
ROTATION_TIMEOUT = 10.0  # seconds from the kubelet's ..data swap until the node must honour the new token
CLUSTER_DOMAIN = "cluster.local"  # the kubelet's --cluster-domain (search path, Service and pod DNS names)

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "NOTICE", "WARNING", "WARN", "ERROR", "CRITICAL")
TEXT_LOG = re.compile(r"^(\S+) (TRACE|DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|CRITICAL) (\S+): (.*)$")


class SimError(Exception):
    """The simulation cannot go on (reported as a FAIL line)."""


class Interrupted(BaseException):
    """Ctrl-C, SIGTERM or the overall timeout."""


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(argv: list[str], check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise SimError(f"{' '.join(argv)}: exit {result.returncode}: {(result.stderr or result.stdout).strip()}")
    return result


# --- reporting -----------------------------------------------------------------------------------

class Report:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []
        self.lock = threading.Lock()

    def ok(self, check: str, detail: str = "") -> None:
        with self.lock:
            self.results.append((check, True, detail))
            print(f"OK {check}" + (f"  ({detail})" if detail else ""), flush=True)

    def fail(self, check: str, reason: str) -> None:
        with self.lock:
            self.results.append((check, False, reason))
            print(f"FAIL {check}: {reason}", flush=True)

    def check(self, check: str, problems: list[str], detail: str = "") -> bool:
        if problems:
            self.fail(check, "; ".join(problems))
            return False
        self.ok(check, detail)
        return True

    @staticmethod
    def note(text: str) -> None:
        print(f"-- {text}", flush=True)

    @property
    def failed(self) -> list[str]:
        return [name for name, passed, _ in self.results if not passed]


# --- network namespaces --------------------------------------------------------------------------

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000


def in_netns(netns: str, fn: Callable[[], Any]) -> Any:
    """Runs `fn` on a fresh thread that has joined `netns` (setns affects only the calling thread);
    sockets it creates stay in that namespace for their whole life, whichever thread uses them."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as error:  # handed to the caller
            box["error"] = error

    thread = threading.Thread(target=target, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def netns_socket(netns: str) -> socket.socket:
    return in_netns(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))


class Network:
    """A bridge in a "switch" namespace and one namespace per host, each joined by a veth pair."""

    def __init__(self, prefix: str, report: Report) -> None:
        self.prefix = prefix
        self.tag = secrets.token_hex(2)
        self.subnet = "203.0.113"  # TEST-NET-3 (RFC 5737), never a private range; its namespaces see nothing else
        self.switch = f"{prefix}-switch"
        self.namespaces: list[str] = []
        self.veths = 0
        self.report = report

    def start(self) -> None:
        self._add_netns(self.switch)
        run(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.switch, "link", "set", "br0", "up"])
        run(["ip", "-n", self.switch, "link", "set", "lo", "up"])

    def _add_netns(self, name: str) -> None:
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)

    def add_host(self, name: str, address: str) -> None:
        """A namespace with eth0 = `address`/24 on the bridge and lo up; no default route."""
        self._add_netns(name)
        self.veths += 1
        port = f"ps{self.tag}{self.veths}"
        run(["ip", "-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name])
        run(["ip", "-n", self.switch, "link", "set", port, "master", "br0", "up"])
        run(["ip", "-n", name, "addr", "add", f"{address}/24", "dev", "eth0"])
        run(["ip", "-n", name, "link", "set", "eth0", "up"])
        run(["ip", "-n", name, "link", "set", "lo", "up"])

    def remove(self, name: str) -> None:
        if name in self.namespaces:
            run(["ip", "netns", "del", name], check=False)
            self.namespaces.remove(name)

    def cleanup(self) -> None:
        for name in reversed(list(self.namespaces)):
            self.remove(name)

    @staticmethod
    def remove_stale(report: Report) -> None:
        """Namespaces left by an earlier run that was killed (its pid is gone and nothing runs in them)."""
        listing = run(["ip", "netns", "list"], check=False).stdout
        for line in listing.splitlines():
            name = line.split()[0] if line.split() else ""
            match = re.match(r"psim-(\d+)-", name)
            if not match or os.path.exists(f"/proc/{match.group(1)}"):
                continue
            if run(["ip", "netns", "pids", name], check=False).stdout.strip():
                report.note(f"stale namespace {name} still has processes; left alone")
                continue
            run(["ip", "netns", "del", name], check=False)
            report.note(f"removed stale namespace {name} of an earlier run")


# --- HTTP to the pods ----------------------------------------------------------------------------

class _NetnsConnection(http.client.HTTPConnection):
    def __init__(self, netns: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.netns = netns

    def connect(self) -> None:
        sock = netns_socket(self.netns)
        sock.settimeout(self.timeout)
        try:
            sock.connect((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def http_request(netns: str, host: str, port: int, method: str, path: str, body: Any = None,
                 timeout: float = 3.0, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    """One HTTP request from inside `netns`: (status, response headers, body); raises
    OSError/HTTPException on transport failures."""
    connection = _NetnsConnection(netns, host, port, timeout)
    try:
        all_headers = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def http_call(netns: str, host: str, port: int, method: str, path: str, body: Any = None,
              timeout: float = 3.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One HTTP request from inside `netns`; raises OSError/HTTPException on transport failures."""
    status, _, payload = http_request(netns, host, port, method, path, body, timeout, headers)
    return status, payload


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def http_json(netns: str, host: str, port: int, method: str, path: str, body: Any = None,
              timeout: float = 3.0, token: str | None = None) -> tuple[int | None, Any, str]:
    """(status, parsed JSON or None, error text), with `token` as the bearer token when given;
    never raises for transport errors."""
    try:
        status, payload = http_call(netns, host, port, method, path, body, timeout,
                                    bearer(token) if token is not None else None)
    except (OSError, http.client.HTTPException) as error:
        return None, None, f"{type(error).__name__}: {error}"
    try:
        return status, json.loads(payload) if payload else None, ""
    except ValueError:
        return status, None, f"not JSON: {payload[:200]!r}"


def websocket_upgrade(netns: str, host: str, port: int, path: str, headers: dict[str, str] | None = None,
                      timeout: float = 3.0) -> tuple[int, dict[str, str], bytes]:
    """Sends a WebSocket upgrade request (RFC 6455) and returns (status, headers, start of the body);
    the connection is closed right after the response head (a 101 is not read any further)."""
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: Upgrade", "Upgrade: websocket",
             "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Key: {key}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    sock = netns_socket(netns)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise http.client.HTTPException(f"not an HTTP response: {status_line!r}")
        response_headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            response_headers[name.strip().lower()] = value.strip()
        if parts[1] != "101" and "content-length" in response_headers:
            wanted = min(int(response_headers["content-length"]), 4096)
            while len(rest) < wanted:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                rest += chunk
        return int(parts[1]), response_headers, rest
    finally:
        sock.close()


def broker_routes() -> list[tuple[str, str]]:
    """(method, path template) of every broker route: `Broker.routes` and the WebSocket route, read
    from the Swift sources, so that a route added there is checked here without editing this file."""
    routes: list[tuple[str, str]] = []
    try:
        text = open(BROKER_SOURCES[0], encoding="utf-8").read()
        block = text[text.index("public static let routes"):]
        block = block[:block.index("]\n")]
        routes += [(m.upper(), p) for m, p in re.findall(r'\(\.(get|put|patch|delete|post|head), "(/[^"]*)"\)', block)]
        routes += [("WS", p) for p in re.findall(r'router\.ws\("(/[^"]*)"', open(BROKER_SOURCES[1], encoding="utf-8").read())]
    except (OSError, ValueError) as error:
        raise SimError(f"cannot read the broker routes from {os.path.relpath(BROKER_SOURCES[0], REPO)}: {error}") from error
    return routes


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    """Polls until `predicate` returns a truthy value (returned) or `timeout` passes (returns the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --- the rendered chart --------------------------------------------------------------------------

def load_render() -> Callable[..., list[dict[str, Any]]]:
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import chart_check  # noqa: E402  (deploy/verify/chart_check.py)
    return chart_check.render


if HERE not in sys.path:
    sys.path.insert(0, HERE)
import secret_volume  # noqa: E402  (deploy/verify/secret_volume.py: the kubelet's Secret volume layout)


def parse_quantity(text: str) -> float:
    """A Kubernetes resource quantity ("256Mi", "500m", "1G") as a number (bytes or cores)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text).strip())
    if not match or (match.group(2) and match.group(2) not in units):
        raise SimError(f"cannot parse the quantity {text!r}")
    return float(match.group(1)) * units.get(match.group(2), 1)


@dataclass
class Probe:
    kind: str
    path: str
    port: int
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @staticmethod
    def parse(kind: str, spec: dict[str, Any] | None, ports: dict[str, int]) -> Probe | None:
        if not spec:
            return None
        get = spec.get("httpGet")
        if not get:
            raise SimError(f"{kind} probe is not httpGet (not emulated): {spec}")
        if get.get("scheme", "HTTP") != "HTTP":
            raise SimError(f"{kind} probe uses scheme {get['scheme']} (not emulated)")
        port = get.get("port")
        if isinstance(port, str) and not port.isdigit():
            if port not in ports:
                raise SimError(f"{kind} probe port {port!r} names no container port")
            port = ports[port]
        return Probe(kind, get.get("path", "/"), int(port), float(spec.get("initialDelaySeconds", 0)),
                     float(spec.get("periodSeconds", 10)), float(spec.get("timeoutSeconds", 1)),
                     int(spec.get("successThreshold", 1)), int(spec.get("failureThreshold", 3)))


class PodTemplate:
    """What a kubelet takes from a workload's pod template to run its pods: the first container
    (command, env, ports, probes), the security context, the volumes."""

    def __init__(self, objects: list[dict[str, Any]], namespace: str, workload: dict[str, Any]) -> None:
        self.objects = objects
        self.namespace = namespace
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.workload = workload
        self.kind = workload.get("kind", "workload")
        self.name = workload["metadata"]["name"]
        spec = workload["spec"]
        self.replicas = int(spec.get("replicas", 1))
        template = spec["template"]
        self.pod_labels: dict[str, str] = template.get("metadata", {}).get("labels", {}) or {}
        self.pod_annotations: dict[str, str] = template.get("metadata", {}).get("annotations", {}) or {}
        self.pod_spec: dict[str, Any] = template["spec"]
        self.grace = float(self.pod_spec.get("terminationGracePeriodSeconds", 30))
        self.secrets = {o["metadata"]["name"]: o for o in self.of("Secret")}
        self.configmaps = {o["metadata"]["name"]: o for o in self.of("ConfigMap")}
        self.service_account = self.pod_spec.get("serviceAccountName") or self.pod_spec.get("serviceAccount") or "default"
        self.dns_policy = self.pod_spec.get("dnsPolicy", "ClusterFirst")
        self.host_aliases = self.pod_spec.get("hostAliases") or []
        if self.dns_policy != "ClusterFirst" or self.pod_spec.get("dnsConfig"):
            self.notes.append(f"{self.kind} {self.name}: dnsPolicy {self.dns_policy} / dnsConfig is not emulated "
                              "(its pods get the ClusterFirst resolv.conf)")

        self.selector = spec.get("selector", {}).get("matchLabels", {}) or {}
        if not self.selector or any(self.pod_labels.get(k) != v for k, v in self.selector.items()):
            self.problems.append(f"{self.kind} {self.name} selector {self.selector} does not match its pod labels {self.pod_labels}")

        containers = self.pod_spec.get("containers", [])
        if not containers:
            raise SimError(f"the {self.kind} {self.name} has no container")
        if len(containers) > 1:
            self.notes.append(f"{self.kind} {self.name}: {len(containers)} containers; only the first "
                              f"({containers[0]['name']}) runs")
        if self.pod_spec.get("initContainers"):
            self.notes.append(f"{self.kind} {self.name}: initContainers are not emulated")
        self.container = containers[0]
        self.ports = {p["name"]: int(p["containerPort"]) for p in self.container.get("ports", []) if p.get("name")}
        probes = {"readiness": self.container.get("readinessProbe"), "liveness": self.container.get("livenessProbe"),
                  "startup": self.container.get("startupProbe")}
        self.probes: dict[str, Probe | None] = {}
        for kind, probe_spec in probes.items():
            try:
                self.probes[kind] = Probe.parse(kind, probe_spec, self.ports)
            except SimError as error:
                self.problems.append(f"{self.kind} {self.name}: {error}")
                self.probes[kind] = None
        if self.probes["readiness"] is None:
            self.problems.append(f"{self.kind} {self.name}: no usable readinessProbe")
        for kind, probe in self.probes.items():
            if probe is not None and probe.path.split("?")[0] not in OPEN_ROUTES:
                self.problems.append(f"{self.kind} {self.name}: {kind} probe {probe.path} is a route that needs the "
                                     "bearer token (a kubelet probe sends none)")
        if (self.container.get("lifecycle") or {}).get("preStop"):
            self.notes.append(f"{self.kind} {self.name}: the preStop hook is not emulated")

        # Service account token.
        accounts = {o["metadata"]["name"]: o for o in self.of("ServiceAccount")}
        automount = self.pod_spec.get("automountServiceAccountToken")
        if automount is None:
            automount = accounts.get(self.service_account, {}).get("automountServiceAccountToken", True)
        self.automount = bool(automount)
        if self.service_account != "default" and self.service_account not in accounts:
            self.notes.append(f"ServiceAccount {self.service_account} is not rendered (assumed to exist)")

        # Security context, user, volumes.
        pod_sc = self.pod_spec.get("securityContext", {}) or {}
        container_sc = self.container.get("securityContext", {}) or {}
        self.run_as_user = container_sc.get("runAsUser", pod_sc.get("runAsUser"))
        self.run_as_group = container_sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        self.run_as_non_root = container_sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot", False))
        self.fs_group = pod_sc.get("fsGroup")
        self.supplemental_groups = list(pod_sc.get("supplementalGroups", []) or [])
        self.read_only_root = bool(container_sc.get("readOnlyRootFilesystem", False))
        self.no_new_privs = container_sc.get("allowPrivilegeEscalation") is False
        capabilities = container_sc.get("capabilities") or {}
        drop = {c.upper().removeprefix("CAP_") for c in capabilities.get("drop") or []}
        add = {c.upper().removeprefix("CAP_") for c in capabilities.get("add") or []}
        # The container runtime's bounding set: its default set minus drop plus add.
        self.capabilities = sorted(((set() if "ALL" in drop else set(RUNTIME_CAPABILITIES) - drop) | add))
        if (container_sc.get("seccompProfile") or pod_sc.get("seccompProfile")):
            self.notes.append(f"{self.kind} {self.name}: seccompProfile is not emulated")
        self.volumes = {v["name"]: v for v in self.pod_spec.get("volumes", []) or []}
        self.claim_templates = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", []) or []}
        self.mounts = self.container.get("volumeMounts", []) or []
        for mount in self.mounts:
            if mount["name"] not in self.volumes and mount["name"] not in self.claim_templates:
                self.problems.append(f"{self.kind} {self.name}: volumeMount {mount['name']} names no volume")
            if mount.get("subPath") or mount.get("subPathExpr"):
                self.problems.append(f"{self.kind} {self.name}: volumeMount {mount['name']} uses subPath (not emulated)")
        limits = (self.container.get("resources") or {}).get("limits") or {}
        self.memory_limit = parse_quantity(limits["memory"]) if "memory" in limits else None

    def env_value(self, item: dict[str, Any], defined: dict[str, str], pod: Pod | None) -> str:
        name = item["name"]
        if "valueFrom" not in item:
            return expand_vars(str(item.get("value", "")), defined)
        source = item["valueFrom"]
        if "secretKeyRef" in source or "configMapKeyRef" in source:
            is_secret = "secretKeyRef" in source
            ref = source["secretKeyRef" if is_secret else "configMapKeyRef"]
            objects = self.secrets if is_secret else self.configmaps
            obj = objects.get(ref["name"])
            kind = "Secret" if is_secret else "ConfigMap"
            if obj is None:
                raise SimError(f"env {name}: {kind} {ref['name']} is not rendered (CreateContainerConfigError)")
            if is_secret and ref["key"] in (obj.get("data") or {}):
                return base64.b64decode(obj["data"][ref["key"]]).decode()
            if is_secret and ref["key"] in (obj.get("stringData") or {}):
                return str(obj["stringData"][ref["key"]])
            if not is_secret and ref["key"] in (obj.get("data") or {}):
                return str(obj["data"][ref["key"]])
            raise SimError(f"env {name}: {kind} {ref['name']} has no key {ref['key']!r}")
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if pod is None:
                return ""
            values = {
                "metadata.name": pod.name, "metadata.namespace": self.namespace, "metadata.uid": pod.uid,
                "spec.nodeName": pod.node_name, "spec.serviceAccountName": self.service_account,
                "status.podIP": pod.ip, "status.podIPs": pod.ip, "status.hostIP": pod.host_ip, "status.hostIPs": pod.host_ip,
            }
            if path in values:
                return values[path]
            match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
            if match:
                source_map = self.pod_labels if match.group(1) == "labels" else self.pod_annotations
                return str(source_map.get(match.group(2), ""))
            raise SimError(f"env {name}: fieldRef {path} is not emulated")
        if "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            section, _, resource = ref["resource"].partition(".")
            value = ((self.container.get("resources") or {}).get(section) or {}).get(resource)
            if value is None:
                raise SimError(f"env {name}: resourceFieldRef {ref['resource']} has no value")
            divisor = parse_quantity(ref.get("divisor", "1"))
            quantity = parse_quantity(value)
            return str(int(-(-quantity // divisor)))
        raise SimError(f"env {name}: valueFrom {list(source)} is not emulated")

    def container_env(self, pod: Pod, kubelet_env: dict[str, str], image_env: dict[str, str]) -> dict[str, str]:
        """The process environment: image ENV, then the kubelet's variables and the container's env."""
        defined: dict[str, str] = dict(kubelet_env)
        container_values: dict[str, str] = {}
        for source in self.container.get("envFrom", []) or []:
            prefix = source.get("prefix", "")
            ref = source.get("secretRef") or source.get("configMapRef")
            objects = self.secrets if "secretRef" in source else self.configmaps
            obj = objects.get(ref["name"]) if ref else None
            if obj is None:
                raise SimError(f"envFrom {ref}: not rendered")
            for key, value in (obj.get("data") or {}).items():
                decoded = base64.b64decode(value).decode() if "secretRef" in source else str(value)
                container_values[prefix + key] = decoded
                defined[prefix + key] = decoded
        for item in self.container.get("env", []) or []:
            value = self.env_value(item, defined, pod)
            container_values[item["name"]] = value
            defined[item["name"]] = value
        env = dict(image_env)
        env.update(kubelet_env)
        env.update(container_values)
        return env

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def selects(self, service: dict[str, Any]) -> bool:
        """Whether `service`'s selector selects this template's pods."""
        selector = service["spec"].get("selector") or {}
        return bool(selector) and all(self.pod_labels.get(k) == v for k, v in selector.items())

class ChartModel(PodTemplate):
    """What a cluster takes from the rendered objects to run the StatefulSet's pods."""

    def __init__(self, objects: list[dict[str, Any]], namespace: str, formation_secret: str) -> None:
        sets = [o for o in objects if o.get("kind") == "StatefulSet"]
        if len(sets) != 1:
            raise SimError(f"expected one StatefulSet, the chart rendered {len(sets)}")
        super().__init__(objects, namespace, sets[0])
        self.statefulset = sets[0]
        spec = self.statefulset["spec"]
        self.pod_management = spec.get("podManagementPolicy", "OrderedReady")
        self.service_name = spec.get("serviceName", "")
        self.services = self.of("Service")
        for required in ("broker", "sync"):
            if required not in self.ports:
                self.problems.append(f"the container has no port named {required!r} (ports: {self.ports})")

        # The governing headless Service.
        governing = [s for s in self.services if s["metadata"]["name"] == self.service_name]
        if not governing:
            raise SimError(f"serviceName {self.service_name!r} names no rendered Service")
        self.headless = governing[0]
        hspec = self.headless["spec"]
        if hspec.get("clusterIP") != "None":
            self.problems.append(f"Service {self.service_name} is not headless (clusterIP {hspec.get('clusterIP')!r})")
        self.publish_not_ready = bool(hspec.get("publishNotReadyAddresses", False))
        self.service_labels = self.headless["metadata"].get("labels", {}) or {}
        self.service_ports = {p.get("name", ""): p for p in hspec.get("ports", [])}
        if not self.selects_pods(self.headless):
            self.problems.append(f"Service {self.service_name} selector {hspec.get('selector')} "
                                 f"does not select the pods {self.pod_labels}")
        for name in ("broker", "sync"):
            port = self.service_ports.get(name)
            if port is None:
                self.problems.append(f"Service {self.service_name} has no port named {name!r}")
            elif self.target_port(port) != self.ports.get(name):
                self.problems.append(f"Service port {name} targets {port.get('targetPort')!r}, not the container's {name} port")
        if not selector_matches(parse_selector(DISCOVERY_SELECTOR), self.slice_labels(self.headless)):
            self.problems.append(f"the node's selector {DISCOVERY_SELECTOR} does not select the EndpointSlices of "
                                 f"Service {self.service_name} (labels {self.service_labels})")

        # RBAC as the API double enforces it.
        self.roles = {(o["metadata"].get("namespace", namespace), o["metadata"]["name"]): o for o in self.of("Role")}
        self.cluster_roles = {o["metadata"]["name"]: o for o in self.of("ClusterRole")}
        self.role_bindings = self.of("RoleBinding")
        self.cluster_role_bindings = self.of("ClusterRoleBinding")

        # The formation secret reaches the container unchanged.
        for item in self.container.get("env", []):
            if item.get("name") == "PEAT_FORMATION_SECRET":
                try:
                    value = self.env_value(item, {}, pod=None)
                except SimError as error:
                    self.problems.append(str(error))
                else:
                    if value != formation_secret:
                        self.problems.append("PEAT_FORMATION_SECRET in the container differs from the formationSecret value")
                break
        else:
            self.problems.append("the container sets no PEAT_FORMATION_SECRET")

        # The broker token: a file in a Secret volume (PEAT_BROKER_TOKEN_FILE), never a value.
        self.token_file: str | None = None
        self.token_secret: str | None = None
        self.token_key: str | None = None
        env_items = self.container.get("env", []) or []
        if any(i.get("name") == "PEAT_BROKER_TOKEN" for i in env_items) or self.container.get("envFrom"):
            self.problems.append("the container may set PEAT_BROKER_TOKEN (env or envFrom): the token must come only as a file")
        token_items = [i for i in env_items if i.get("name") == "PEAT_BROKER_TOKEN_FILE"]
        if not token_items:
            self.problems.append("the container sets no PEAT_BROKER_TOKEN_FILE: the broker would be open")
        elif "value" not in token_items[-1]:
            self.problems.append("PEAT_BROKER_TOKEN_FILE is not a plain path")
        else:
            self.resolve_token_file(token_items[-1]["value"])

    def resolve_token_file(self, path: str) -> None:
        """Finds the Secret and key whose content the kubelet puts at `path` (a Secret volume mount)."""
        mounts = sorted((m for m in self.mounts if path.startswith(m["mountPath"].rstrip("/") + "/")),
                        key=lambda m: len(m["mountPath"]), reverse=True)
        if not mounts:
            self.problems.append(f"PEAT_BROKER_TOKEN_FILE {path} is in no volumeMount")
            return
        mount = mounts[0]
        source = self.volumes.get(mount["name"], {}).get("secret")
        if source is None:
            self.problems.append(f"PEAT_BROKER_TOKEN_FILE {path} is in volume {mount['name']}, which is not a Secret volume")
            return
        relative = path[len(mount["mountPath"].rstrip("/")) + 1:]
        items = source.get("items")
        key = next((i["key"] for i in items if i["path"] == relative), None) if items else relative
        name = source.get("secretName", "")
        secret = self.secrets.get(name)
        if key is None:
            self.problems.append(f"no item of volume {mount['name']} is projected at {relative}")
        elif secret is None:
            self.problems.append(f"the token Secret {name} is not rendered (brokerToken.existingSecret is not emulated)")
        elif key not in (secret.get("data") or {}):
            self.problems.append(f"the token Secret {name} has no key {key}")
        else:
            self.token_file, self.token_secret, self.token_key = path, name, key
            if not self.broker_token():
                self.problems.append(f"the token in Secret {name} key {key} is empty")

    def broker_token(self) -> str:
        """The token as the node reads it: the Secret's current value, trimmed."""
        assert self.token_secret is not None and self.token_key is not None
        return base64.b64decode(self.secrets[self.token_secret]["data"][self.token_key]).decode().strip()

    def set_secret_value(self, name: str, key: str, value: str) -> None:
        """What `kubectl patch secret` does to the API object (the kubelet then updates the volumes)."""
        self.secrets[name].setdefault("data", {})[key] = base64.b64encode(value.encode()).decode()

    @staticmethod
    def slice_labels(service: dict[str, Any]) -> dict[str, str]:
        labels = dict(service["metadata"].get("labels", {}) or {})
        labels["kubernetes.io/service-name"] = service["metadata"]["name"]
        labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
        if service["spec"].get("clusterIP") == "None":
            labels["service.kubernetes.io/headless"] = ""
        return labels

    def selects_pods(self, service: dict[str, Any]) -> bool:
        return self.selects(service)

    def target_port(self, service_port: dict[str, Any]) -> int | None:
        target = service_port.get("targetPort", service_port.get("port"))
        if isinstance(target, str) and not target.isdigit():
            return self.ports.get(target)
        return int(target)

    def allowed(self, account: str, account_namespace: str, verb: str, namespace: str) -> bool:
        """Whether the rendered RBAC lets system:serviceaccount:<ns>:<account> <verb> endpointslices in `namespace`."""
        def grants(role: dict[str, Any] | None) -> bool:
            for rule in (role or {}).get("rules", []) or []:
                if (set(rule.get("apiGroups", [])) & {"discovery.k8s.io", "*"}
                        and set(rule.get("resources", [])) & {"endpointslices", "*"}
                        and set(rule.get("verbs", [])) & {verb, "*"}
                        and not rule.get("resourceNames")):
                    return True
            return False

        def bound(binding: dict[str, Any], binding_namespace: str | None) -> bool:
            for subject in binding.get("subjects", []) or []:
                if (subject.get("kind") == "ServiceAccount" and subject.get("name") == account
                        and subject.get("namespace", binding_namespace) == account_namespace):
                    return True
            return False

        for binding in self.role_bindings:
            binding_namespace = binding["metadata"].get("namespace", self.namespace)
            if binding_namespace != namespace or not bound(binding, binding_namespace):
                continue
            ref = binding["roleRef"]
            if ref["kind"] == "Role":
                role = self.roles.get((binding_namespace, ref["name"]))
            else:
                role = self.cluster_roles.get(ref["name"])
            if grants(role):
                return True
        for binding in self.cluster_role_bindings:
            if bound(binding, None) and grants(self.cluster_roles.get(binding["roleRef"]["name"])):
                return True
        return False


class RelayModel(PodTemplate):
    """The chart's relay (relay.enabled): the Deployment <fullname>-relay running `peat-mesh-node
    relay`, its access-key Secret and its Service, checked against the nodes of the same render."""

    def __init__(self, objects: list[dict[str, Any]], namespace: str, nodes: ChartModel, access_key: str) -> None:
        relay_name = f"{nodes.name}-relay"
        deployments = [o for o in objects if o.get("kind") == "Deployment" and o["metadata"]["name"] == relay_name]
        if len(deployments) != 1:
            names = [o["metadata"]["name"] for o in objects if o.get("kind") == "Deployment"]
            raise SimError(f"expected the Deployment {relay_name}, the chart rendered Deployments {names}")
        super().__init__(objects, namespace, deployments[0])
        self.nodes = nodes
        if self.replicas != 1:
            self.notes.append(f"Deployment {self.name}: {self.replicas} replicas; one relay pod runs")
        for required in ("relay", "http"):
            if required not in self.ports:
                self.problems.append(f"the relay container has no port named {required!r} (ports: {self.ports})")
        env_items = self.container.get("env", []) or []
        names = [i.get("name") for i in env_items]
        # What reaches the relay: its access key, never the formation secret or the broker token.
        for forbidden in ("PEAT_FORMATION_SECRET", "PEAT_BROKER_TOKEN", "PEAT_BROKER_TOKEN_FILE"):
            if forbidden in names:
                self.problems.append(f"the relay container sets {forbidden}")
        if self.container.get("envFrom"):
            self.problems.append("the relay container has envFrom (it could receive any key of that Secret/ConfigMap)")
        node_secrets = {nodes.token_secret} | {ref["name"] for ref in self.secret_refs(nodes)}
        used = {ref["name"] for ref in self.secret_refs(self)}
        for volume in self.volumes.values():
            if "secret" in volume:
                used.add(volume["secret"].get("secretName", ""))
            elif "projected" in volume or "configMap" in volume or "hostPath" in volume:
                self.problems.append(f"the relay has a volume {volume['name']} ({list(volume)[-1]}) not given by relay.tls")
        access_secret = f"{nodes.name}-relay-access-key"
        for name in sorted(used & node_secrets - {access_secret}):
            self.problems.append(f"the relay pod references the nodes' Secret {name}")
        key_items = [i for i in env_items if i.get("name") == "PEAT_RELAY_ACCESS_KEY"]
        if not key_items:
            self.problems.append("the relay container sets no PEAT_RELAY_ACCESS_KEY")
        else:
            ref = (key_items[-1].get("valueFrom") or {}).get("secretKeyRef") or {}
            if (ref.get("name"), ref.get("key")) != (access_secret, "relay-access-key"):
                self.problems.append(f"PEAT_RELAY_ACCESS_KEY comes from {ref or key_items[-1]}, not Secret {access_secret} "
                                     "key relay-access-key")
            try:
                if self.env_value(key_items[-1], {}, pod=None).strip() != access_key:
                    self.problems.append("PEAT_RELAY_ACCESS_KEY in the relay container differs from relay.accessKey")
            except SimError as error:
                self.problems.append(str(error))
        # The relay's listeners: its env against its container ports, the Service against both.
        self.relay_port = self.ports.get("relay")
        self.health_port = self.ports.get("http")
        for variable, port in (("PEAT_RELAY_PORT", self.relay_port), ("PEAT_BROKER_PORT", self.health_port)):
            items = [i for i in env_items if i.get("name") == variable]
            value = items[-1].get("value") if items else None
            if port is not None and str(value) != str(port):
                self.problems.append(f"the relay's {variable} is {value!r}, not its container port {port}")
        for kind, probe in self.probes.items():
            if probe is not None and probe.port != self.health_port:
                self.problems.append(f"the relay's {kind} probe is on port {probe.port}, not its health port {self.health_port}")
        if self.automount:
            self.problems.append("the relay pod mounts a service account token (it never talks to the API server)")
        services = {s["metadata"]["name"]: s for s in self.of("Service")}
        self.service = services.get(self.name)
        if self.service is None:
            self.problems.append(f"no Service {self.name} for the relay")
        else:
            port = next((p for p in self.service["spec"].get("ports", []) if p.get("name") == "relay"), None)
            target = port.get("targetPort", port.get("port")) if port else None
            if port is None:
                self.problems.append(f"Service {self.name} has no port named relay")
            elif (self.ports.get(target) if isinstance(target, str) else target) != self.relay_port:
                self.problems.append(f"Service {self.name} port relay targets {target!r}, not the relay's container port")
            if not self.selects(self.service):
                self.problems.append(f"Service {self.name} selector {self.service['spec'].get('selector')} does not "
                                     f"select the relay pods {self.pod_labels}")
            if selector_matches(parse_selector(DISCOVERY_SELECTOR), ChartModel.slice_labels(self.service)):
                self.problems.append(f"the node's discovery selector {DISCOVERY_SELECTOR} selects the EndpointSlices of "
                                     f"Service {self.name}: the nodes would take the relay for a peer")
        # Nothing of the nodes' selects the relay's pods, nothing of the relay's the nodes'.
        for obj in objects:
            kind, name = obj.get("kind"), obj["metadata"]["name"]
            spec = obj.get("spec") or {}
            selector = spec.get("selector")
            if kind in ("StatefulSet", "PodDisruptionBudget"):
                selector = (selector or {}).get("matchLabels")
            elif kind == "NetworkPolicy":
                selector = (spec.get("podSelector") or {}).get("matchLabels")
            elif kind != "Service":
                continue
            if not selector:
                continue
            own = name.startswith(self.name)
            other_labels = nodes.pod_labels if own else self.pod_labels
            if all(other_labels.get(k) == v for k, v in selector.items()):
                self.problems.append(f"{kind} {name} selects the {'node' if own else 'relay'} pods too ({selector})")
        self.url = f"https://{self.name}.{namespace}.svc:{self.relay_port}"

    @staticmethod
    def secret_refs(template: PodTemplate) -> list[dict[str, Any]]:
        """The secretKeyRefs of the template's container env."""
        return [(i.get("valueFrom") or {})["secretKeyRef"] for i in template.container.get("env", []) or []
                if "secretKeyRef" in (i.get("valueFrom") or {})]


def expand_vars(text: str, defined: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: defined variables are replaced, $$ is a literal $, others stay."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            if text[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if text[i + 1] == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(defined.get(name, text[i:end + 1]))
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


@dataclass
class ImageConfig:
    """The runtime stage of deploy/Dockerfile: what the container gets from the image."""
    env: dict[str, str]
    user: int | None
    group: int | None
    home: str
    entrypoint: list[str]
    cmd: list[str]
    workdir: str

    @staticmethod
    def load(path: str) -> ImageConfig:
        config = ImageConfig({"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, None, None, "/",
                             ["/usr/local/bin/peat-mesh-node"], [], "/")
        if not os.path.exists(path):
            return config
        text = open(path, encoding="utf-8").read().replace("\\\n", " ")
        stages = re.split(r"(?im)^\s*FROM\s", text)
        last = stages[-1]
        for line in last.splitlines():
            line = line.strip()
            keyword, _, rest = line.partition(" ")
            keyword = keyword.upper()
            if keyword == "ENV":
                for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', rest):
                    config.env[key] = value.strip('"')
            elif keyword == "USER":
                user, _, group = rest.strip().partition(":")
                config.user = int(user) if user.isdigit() else None
                config.group = int(group) if group.isdigit() else config.user
            elif keyword == "WORKDIR":
                config.workdir = rest.strip()
            elif keyword in ("ENTRYPOINT", "CMD"):
                try:
                    value = json.loads(rest)
                except ValueError:
                    value = ["/bin/sh", "-c", rest.strip()]
                if keyword == "ENTRYPOINT":
                    config.entrypoint = value
                else:
                    config.cmd = value
        if config.user is not None:
            match = re.search(rf"useradd[^\n&]*--uid {config.user}[^\n&]*--home-dir (\S+)", last)
            if match:
                config.home = match.group(1)
        return config


# --- label selectors -----------------------------------------------------------------------------

def parse_selector(text: str | None) -> list[tuple[str, str, set[str] | None]]:
    requirements: list[tuple[str, str, set[str] | None]] = []
    if not text:
        return requirements
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    key = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
    for part in (p.strip() for p in parts):
        match = re.fullmatch(rf"({key})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)", part)
        if match:
            requirements.append((match.group(1), "in" if match.group(2) != "!=" else "notin", {match.group(3)}))
            continue
        match = re.fullmatch(rf"({key})\s+(in|notin)\s+\(([^)]*)\)", part)
        if match:
            requirements.append((match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}))
            continue
        match = re.fullmatch(rf"(!?)\s*({key})", part)
        if match:
            requirements.append((match.group(2), "absent" if match.group(1) else "exists", None))
            continue
        raise ValueError(f"unable to parse requirement: {part!r}")
    return requirements


def selector_matches(requirements: list[tuple[str, str, set[str] | None]], labels: dict[str, str]) -> bool:
    for key, op, values in requirements:
        present = key in labels
        if op == "in" and not (present and labels[key] in (values or set())):
            return False
        if op == "notin" and present and labels[key] in (values or set()):
            return False
        if op == "exists" and not present:
            return False
        if op == "absent" and present:
            return False
    return True


# --- the Kubernetes API double -------------------------------------------------------------------

@dataclass
class PodState:
    """What the EndpointSlice controller sees of a pod."""
    name: str
    ordinal: int
    uid: str
    ip: str
    node_name: str
    ready: bool = False
    terminating: bool = False


@dataclass
class _Event:
    rv: int
    labels: dict[str, str]
    line: bytes


class APIDouble:
    """kube-apiserver for one resource: EndpointSlices (discovery.k8s.io/v1) in the release namespace,
    as the EndpointSlice controller keeps them for the rendered Services; HTTPS, bearer tokens, RBAC."""

    def __init__(self, model: ChartModel, netns: str, address: str, port: int, certificate: str, key: str,
                 log_path: str) -> None:
        self.model = model
        self.netns = netns
        self.address = address
        self.port = port
        self.cond = threading.Condition()
        self.rv = random.randint(1000, 9000)
        self.history: list[_Event] = []
        self.history_rvs: list[int] = []
        self.slices: dict[str, dict[str, Any]] = {}  # service name -> current slice
        self.pods: dict[str, PodState] = {}
        self.tokens: dict[str, tuple[str, str, str]] = {}  # token -> (namespace, service account, pod)
        self.stopping = False
        self.stats: dict[str, int] = {}
        self.watch_versions: list[tuple[str, str | None]] = []  # (pod, resourceVersion) of each watch
        self.list_versions: set[str] = set()
        self.problems: list[str] = []
        self.log_file = open(log_path, "a", encoding="utf-8", buffering=1)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certificate, key)
        context.set_alpn_protocols(["http/1.1"])
        self.context = context
        self.server: _APIServer | None = None
        self.thread: threading.Thread | None = None
        with self.cond:
            self._reconcile_all()

    # -- bookkeeping

    def log(self, text: str) -> None:
        self.log_file.write(f"{now_rfc3339()} {text}\n")

    def count(self, key: str, n: int = 1) -> None:
        with self.cond:
            self.stats[key] = self.stats.get(key, 0) + n

    def issue_token(self, account: str, pod: str) -> str:
        token = "pod-sim." + secrets.token_urlsafe(24)
        with self.cond:
            self.tokens[token] = (self.model.namespace, account, pod)
        return token

    def revoke_token(self, token: str) -> None:
        with self.cond:
            self.tokens.pop(token, None)

    # -- the EndpointSlice controller

    def set_pod(self, state: PodState) -> None:
        with self.cond:
            self.pods[state.name] = state
            self._reconcile_all()

    def update_pod(self, name: str, **changes: Any) -> None:
        with self.cond:
            state = self.pods.get(name)
            if state is None:
                return
            for key, value in changes.items():
                setattr(state, key, value)
            self._reconcile_all()

    def remove_pod(self, name: str) -> None:
        with self.cond:
            self.pods.pop(name, None)
            self._reconcile_all()

    def _reconcile_all(self) -> None:
        for service in self.model.services:
            if service["spec"].get("selector"):
                self._reconcile(service)

    def _reconcile(self, service: dict[str, Any]) -> None:
        name = service["metadata"]["name"]
        publish = bool(service["spec"].get("publishNotReadyAddresses", False))
        endpoints = []
        if self.model.selects_pods(service):
            for pod in sorted(self.pods.values(), key=lambda p: p.ordinal):
                ready = publish or pod.ready
                if pod.terminating and not publish:
                    ready = False
                endpoint: dict[str, Any] = {
                    "addresses": [pod.ip],
                    "conditions": {"ready": ready, "serving": pod.ready, "terminating": pod.terminating},
                }
                # StatefulSet pods have hostname = pod name and subdomain = serviceName.
                if name == self.model.service_name:
                    endpoint["hostname"] = pod.name
                endpoint["targetRef"] = {"kind": "Pod", "namespace": self.model.namespace, "name": pod.name, "uid": pod.uid}
                endpoint["nodeName"] = pod.node_name
                endpoints.append(endpoint)
        ports = []
        for port in service["spec"].get("ports", []):
            target = self.model.target_port(port)
            if target is None:
                continue  # a named targetPort the pod does not have: the controller leaves it out
            entry = {"name": port.get("name", ""), "protocol": port.get("protocol", "TCP"), "port": target}
            if port.get("appProtocol"):
                entry["appProtocol"] = port["appProtocol"]
            ports.append(entry)
        existing = self.slices.get(name)
        if existing is None:
            slice_name = f"{name}-{''.join(random.choices(string.ascii_lowercase + string.digits, k=5))}"
            service_uid = service["metadata"].setdefault("uid", str(uuid.uuid4()))
            existing = {
                "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                "metadata": {
                    "name": slice_name, "generateName": f"{name}-", "namespace": self.model.namespace,
                    "uid": str(uuid.uuid4()), "resourceVersion": "", "generation": 0,
                    "creationTimestamp": now_rfc3339(),
                    "labels": ChartModel.slice_labels(service),
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": service_uid,
                                         "controller": True, "blockOwnerDeletion": True}],
                },
                "addressType": "IPv4", "endpoints": None,
            }
        updated = copy.deepcopy(existing)
        if endpoints:
            updated["endpoints"] = endpoints
            updated["ports"] = ports
        else:  # the controller's placeholder slice
            updated["endpoints"] = None
            updated.pop("ports", None)
        if name in self.slices and (updated.get("endpoints"), updated.get("ports")) == (existing.get("endpoints"), existing.get("ports")):
            return
        updated["metadata"]["generation"] += 1
        updated["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": now_rfc3339()}
        self._emit("ADDED" if name not in self.slices else "MODIFIED", updated)
        self.slices[name] = updated

    def endpoint_timeline(self, uid: str) -> list[str]:
        """The states the governing Service's slice gave the pod with `uid`, in order, without repeats."""
        with self.cond:
            lines = [event.line for event in self.history
                     if event.labels.get("kubernetes.io/service-name") == self.model.service_name]
        states: list[str] = []
        for line in lines:
            endpoints = [e for e in json.loads(line)["object"].get("endpoints") or [] if e["targetRef"]["uid"] == uid]
            if not endpoints:
                state = "absent"
            else:
                conditions = endpoints[0]["conditions"]
                if conditions.get("terminating"):
                    state = "terminating"
                else:
                    state = "serving" if conditions.get("serving") else "not serving"
            if not states or states[-1] != state:
                states.append(state)
        return states

    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        line = json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"
        self.history.append(_Event(self.rv, dict(obj["metadata"]["labels"]), line))
        self.history_rvs.append(self.rv)
        summary = [(e["targetRef"]["name"], e["addresses"][0], "".join(k[0] for k, v in e["conditions"].items() if v))
                   for e in obj.get("endpoints") or []]
        self.log(f"event rv={self.rv} {kind} {obj['metadata']['name']} endpoints={summary}")
        self.cond.notify_all()

    # -- serving

    def start(self) -> None:
        self.server = _APIServer(self)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="api-double", daemon=True)
        self.thread.start()
        self.log(f"serving https://{self.address}:{self.port}")

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self.log(f"stopped; stats {self.stats}")
        self.log_file.close()

    def authenticate(self, header: str) -> tuple[str, str, str] | None:
        if not header.startswith("Bearer "):
            return None
        with self.cond:
            return self.tokens.get(header[len("Bearer "):].strip())

    def status(self, code: int, reason: str, message: str) -> bytes:
        return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "reason": reason, "code": code}).encode()

    def list_body(self, requirements: list, limit: int | None, cont: str | None) -> bytes:
        with self.cond:
            items = [copy.deepcopy(s) for s in self.slices.values()
                     if selector_matches(requirements, s["metadata"]["labels"])]
            version = str(self.rv)
            self.list_versions.add(version)
        for item in items:  # list items carry no kind/apiVersion
            item.pop("kind", None)
            item.pop("apiVersion", None)
        items.sort(key=lambda s: s["metadata"]["name"])
        start = int(cont) if cont and cont.isdigit() else 0
        metadata: dict[str, Any] = {"resourceVersion": version}
        if limit and start + limit < len(items):
            metadata["continue"] = str(start + limit)
            metadata["remainingItemCount"] = len(items) - start - limit
        items = items[start:start + limit] if limit else items[start:]
        return json.dumps({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                           "metadata": metadata, "items": items}).encode()


class _APIServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, api: APIDouble) -> None:
        self.api = api
        super().__init__((api.address, api.port), _APIHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = netns_socket(api.netns)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((api.address, api.port))
        self.server_name, self.server_port = api.address, api.port
        self.socket.listen(self.request_queue_size)
        self.socket = api.context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def server_bind(self) -> None:  # bound in __init__ (no reverse DNS lookup)
        pass

    def get_request(self) -> tuple[socket.socket, Any]:
        return self.socket.accept()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.api.log(f"error serving {client_address}: {traceback.format_exc(limit=2).strip()}")


class _APIHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pod-sim-kube-apiserver"
    sys_version = ""
    timeout = 120
    server: _APIServer

    def setup(self) -> None:
        self.request.settimeout(10)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError) as error:
            self.server.api.count("tls_handshake_failures")
            self.server.api.log(f"TLS handshake with {self.client_address[0]} failed: {error}")
            raise
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        self.server.api.log(f"{self.client_address[0]} {format % args}")

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        api = self.server.api
        api.count("requests")
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)

        def param(key: str) -> str | None:
            return query.get(key, [None])[-1]

        identity = api.authenticate(self.headers.get("Authorization", ""))
        if identity is None:
            api.count("unauthorized")
            self._send(401, api.status(401, "Unauthorized", "Unauthorized"))
            return
        account_namespace, account, pod = identity
        match = re.fullmatch(r"/apis/discovery\.k8s\.io/v1/namespaces/([^/]+)/endpointslices(?:/([^/]+))?", url.path)
        if not match:
            api.count("not_found")
            self._send(404, api.status(404, "NotFound", f"the server could not find the requested resource ({url.path})"))
            return
        namespace, name = match.group(1), match.group(2)
        watching = param("watch") in ("1", "true")
        verb = "watch" if watching else ("get" if name else "list")
        user = f"system:serviceaccount:{account_namespace}:{account}"
        if not api.model.allowed(account, account_namespace, verb, namespace):
            api.count("forbidden")
            message = (f'endpointslices.discovery.k8s.io is forbidden: User "{user}" cannot {verb} resource '
                       f'"endpointslices" in API group "discovery.k8s.io" in the namespace "{namespace}"')
            self._send(403, api.status(403, "Forbidden", message))
            return
        if param("fieldSelector"):
            self._send(400, api.status(400, "BadRequest", "pod-sim: fieldSelector is not emulated"))
            return
        try:
            requirements = parse_selector(param("labelSelector"))
        except ValueError as error:
            self._send(400, api.status(400, "BadRequest", str(error)))
            return
        if namespace != api.model.namespace:
            requirements = [("pod-sim/no-such-label", "exists", None)]  # other namespaces hold no slices
        if name:
            with api.cond:
                found = [s for s in api.slices.values() if s["metadata"]["name"] == name]
                body = json.dumps(found[0]).encode() if found else None
            if body is None:
                self._send(404, api.status(404, "NotFound", f'endpointslices.discovery.k8s.io "{name}" not found'))
            else:
                self._send(200, body)
            return
        if not watching:
            api.count("lists")
            limit = param("limit")
            limit_value = int(limit) if limit and limit.isdigit() else None
            self._send(200, api.list_body(requirements, limit_value, param("continue")))
            return
        api.count("watches")
        with api.cond:
            api.watch_versions.append((pod, param("resourceVersion")))
        self._watch(requirements, param("resourceVersion"), param("timeoutSeconds"),
                    param("allowWatchBookmarks") == "true", pod)

    def _watch(self, requirements: list, version: str | None, timeout: str | None, bookmarks: bool, pod: str) -> None:
        api = self.server.api
        if version not in (None, "", "0") and not version.isdigit():
            self._send(400, api.status(400, "BadRequest", f"resourceVersion: Invalid value: {version!r}"))
            return
        seconds = float(timeout) if timeout and timeout.isdigit() else random.uniform(1800, 3600)
        deadline = time.monotonic() + seconds
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        def chunk(data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        sent = 0
        try:
            with api.cond:
                if version in (None, "", "0"):  # "get state and start at most recent"
                    initial = [json.dumps({"type": "ADDED", "object": s}, separators=(",", ":")).encode() + b"\n"
                               for s in api.slices.values() if selector_matches(requirements, s["metadata"]["labels"])]
                    cursor = api.rv
                elif api.history_rvs and int(version) < api.history_rvs[0] - 1:
                    initial = [json.dumps({"type": "ERROR", "object": json.loads(api.status(
                        410, "Expired", f"too old resource version: {version} ({api.history_rvs[0] - 1})"))}).encode() + b"\n"]
                    cursor = -1
                else:
                    initial = []
                    cursor = int(version)
            for line in initial:
                chunk(line)
                sent += 1
            if cursor < 0:
                chunk(b"")
                return
            next_bookmark = time.monotonic() + BOOKMARK_INTERVAL
            client_gone = False
            while True:
                with api.cond:
                    while True:
                        at = bisect.bisect_right(api.history_rvs, cursor)
                        pending = api.history[at:]
                        now = time.monotonic()
                        due = min(deadline, next_bookmark) if bookmarks else deadline
                        if pending or api.stopping or now >= due or client_gone:
                            break
                        api.cond.wait(min(due - now, 0.25))
                        client_gone = self._client_closed()
                    current = api.rv
                    stopping = api.stopping
                if client_gone:
                    # Like Go's server (its background read sees the close): end the stream, close back.
                    self.close_connection = True
                    try:
                        self.request.settimeout(1)
                        self.request.unwrap()
                    except (OSError, ssl.SSLError, ValueError):
                        pass
                    api.log(f"watch of {pod} closed by the client after {sent} events")
                    return
                for event in pending:
                    if selector_matches(requirements, event.labels):
                        chunk(event.line)
                        sent += 1
                    cursor = event.rv
                if stopping or time.monotonic() >= deadline:
                    break
                if bookmarks and time.monotonic() >= next_bookmark:
                    cursor = max(cursor, current)
                    chunk(json.dumps({"type": "BOOKMARK", "object": {
                        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                        "metadata": {"resourceVersion": str(cursor), "creationTimestamp": None},
                        "addressType": "", "endpoints": None}}, separators=(",", ":")).encode() + b"\n")
                    api.count("bookmarks")
                    next_bookmark = time.monotonic() + BOOKMARK_INTERVAL
            chunk(b"")
            api.log(f"watch of {pod} ended by its timeout after {sent} events")
        except (OSError, ssl.SSLError) as error:
            self.close_connection = True
            api.log(f"watch of {pod} closed by the client after {sent} events ({type(error).__name__})")
        finally:
            api.count("watch_events", sent)

    def _client_closed(self) -> bool:
        """Whether the client closed its end (TLS close_notify or EOF) while the watch streams."""
        sock = self.request
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable and not sock.pending():
                return False
            timeout = sock.gettimeout()
            sock.settimeout(0)
            try:
                return sock.recv(4096) == b""
            finally:
                sock.settimeout(timeout)
        except ssl.SSLWantReadError:
            return False
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionError):
            return True
        except (OSError, ValueError):
            return True

    def do_POST(self) -> None:  # noqa: N802
        api = self.server.api
        self._send(405, api.status(405, "MethodNotAllowed", "the API double serves GET only"))

    do_PUT = do_PATCH = do_DELETE = do_POST  # noqa: N815


class ClusterDNS:
    """The cluster DNS (CoreDNS's kubernetes plugin) for the pods' resolv.conf: UDP, A records of
    `lookup(name)`, an empty answer for other types of a known name, NXDOMAIN for the rest (there
    is no upstream offline)."""

    def __init__(self, netns: str, address: str, lookup: Callable[[str], list[str] | None], log_path: str) -> None:
        self.lookup = lookup
        self.address = address
        self.sock = in_netns(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        self.sock.bind((address, 53))
        self.sock.settimeout(0.25)
        self.stopping = threading.Event()
        self.log_file = open(log_path, "a", encoding="utf-8", buffering=1)
        self.queries = 0
        self.thread = threading.Thread(target=self._serve, name="cluster-dns", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)
        self.sock.close()
        self.log_file.close()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                query, client = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                answer = self.answer(query, client[0])
            except (ValueError, IndexError) as error:
                self.log_file.write(f"{now_rfc3339()} {client[0]}: malformed query ({error})\n")
                continue
            if answer:
                try:
                    self.sock.sendto(answer, client)
                except OSError:
                    pass

    def answer(self, query: bytes, client: str) -> bytes:
        ident, flags, questions = int.from_bytes(query[0:2], "big"), int.from_bytes(query[2:4], "big"), \
            int.from_bytes(query[4:6], "big")
        if flags & 0x8000 or questions != 1:
            raise ValueError(f"flags {flags:#x}, {questions} questions")
        labels, at = [], 12
        while query[at]:
            length = query[at]
            if length & 0xC0:
                raise ValueError("a compressed question name")
            labels.append(query[at + 1:at + 1 + length].decode("ascii", "replace"))
            at += 1 + length
        question = query[12:at + 5]
        qtype = int.from_bytes(query[at + 1:at + 3], "big")
        name = ".".join(labels)
        addresses = self.lookup(name)
        self.queries += 1
        records = b""
        if addresses and qtype == 1:  # A
            for address in addresses:
                records += (b"\xc0\x0c" + (1).to_bytes(2, "big") + (1).to_bytes(2, "big") + (5).to_bytes(4, "big")
                            + (4).to_bytes(2, "big") + socket.inet_aton(address))
        count = len(addresses) if addresses and qtype == 1 else 0
        rcode = 3 if addresses is None else 0  # NXDOMAIN / NOERROR
        self.log_file.write(f"{now_rfc3339()} {client} {name} type {qtype}: "
                            f"{'NXDOMAIN' if rcode else (', '.join(addresses or []) or 'no records')}\n")
        # QR, opcode and RD copied, AA, RA.
        reply_flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode
        header = (ident.to_bytes(2, "big") + reply_flags.to_bytes(2, "big") + (1).to_bytes(2, "big")
                  + count.to_bytes(2, "big") + bytes(4))
        return header + question + records


def make_pki(directory: str, address: str) -> tuple[str, str, str]:
    """A throwaway cluster CA and an API server certificate for `address` (openssl CLI)."""
    def openssl(*argv: str) -> None:
        run(["openssl", *argv], cwd=directory)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=pod-sim-kubernetes-ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "apiserver.key", "-out", "apiserver.csr", "-subj", "/CN=kube-apiserver")
    with open(os.path.join(directory, "apiserver.ext"), "w", encoding="utf-8") as ext:
        ext.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                  f"subjectAltName=IP:{address},DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
                  "DNS:kubernetes.default.svc.cluster.local\n")
    openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "apiserver.crt", "-days", "2", "-extfile", "apiserver.ext")
    return (os.path.join(directory, "ca.crt"), os.path.join(directory, "apiserver.crt"),
            os.path.join(directory, "apiserver.key"))


# --- pods ----------------------------------------------------------------------------------------

@dataclass
class Pod:
    name: str
    ordinal: int
    incarnation: int
    uid: str
    ip: str
    host_ip: str
    node_name: str
    netns: str
    directory: str
    data_dir: str
    log_path: str
    token: str = ""
    proc: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    ready: bool = False
    ready_at: float | None = None
    deleting: bool = False
    prober_stop: threading.Event = field(default_factory=threading.Event)
    kubelet_events: list[str] = field(default_factory=list)
    peak_rss: int | None = None
    argv: list[str] = field(default_factory=list)
    restarts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Secret volumes: volume name -> (its `secret` source, the kubelet-style directory on the host).
    secret_volumes: dict[str, tuple[dict[str, Any], Any]] = field(default_factory=dict)
    # The pod template it runs (the StatefulSet's ChartModel, or the relay's Deployment).
    template: Any = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name}#{self.incarnation}"

    def log_text(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def sample_rss(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            with open(f"/proc/{self.proc.pid}/status", encoding="utf-8") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        self.peak_rss = int(line.split()[1]) * 1024
        except OSError:
            pass


class Cluster:
    """The pods of the StatefulSet, their kubelet (probes, signals) and the StatefulSet controller."""

    def __init__(self, model: ChartModel, image: ImageConfig, network: Network, api: APIDouble, run_dir: str,
                 image_root: str, ca_path: str, data_path: str, extra_capabilities: list[str], report: Report) -> None:
        self.model = model
        self.extra_capabilities = extra_capabilities
        self.data_path = data_path  # the container path of the data volume (PEAT_DATA_DIR)
        self.image = image
        self.network = network
        self.api = api
        self.run_dir = run_dir
        self.image_root = image_root
        self.ca_path = ca_path
        self.report = report
        self.pods: dict[str, Pod] = {}
        self.history: list[Pod] = []
        self.next_host = 10
        self.incarnations: dict[str, int] = {}
        self.kubelet_problems: list[str] = []
        self.api_netns = api.netns
        self.dns_address = api.address  # the cluster DNS stand-in (ClusterDNS) listens next to the API double
        # The Services the cluster DNS answers for: the rendered ones (more when another render joins).
        self.services: dict[str, dict[str, Any]] = {s["metadata"]["name"]: s for s in model.services}
        os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)

    def dns_lookup(self, name: str) -> list[str] | None:
        """What CoreDNS answers for `name` (A records), None for NXDOMAIN: <service>.<ns>.svc.<domain>
        gives the pod IPs of its endpoints (ready ones, all with publishNotReadyAddresses; a ClusterIP
        Service answers them too, as there is no kube-proxy here to give it a virtual IP), and
        <hostname>.<service>.<ns>.svc.<domain> a StatefulSet pod of its governing Service."""
        suffix = f".svc.{CLUSTER_DOMAIN}"
        name = name.lower().rstrip(".")
        if not name.endswith(suffix):
            return None
        parts = name[:-len(suffix)].split(".")
        if len(parts) == 2:
            hostname, (service_name, namespace) = None, parts
        elif len(parts) == 3:
            hostname, service_name, namespace = parts
        else:
            return None
        service = self.services.get(service_name)
        if namespace != self.model.namespace or service is None:
            return None
        selector = service["spec"].get("selector") or {}
        publish = bool(service["spec"].get("publishNotReadyAddresses", False))
        pods = [p for p in list(self.pods.values())
                if selector and all(p.labels.get(k) == v for k, v in selector.items())
                and (p.ready or publish) and not p.deleting]
        if hostname is not None:
            pods = [p for p in pods if p.name == hostname and getattr(p.template, "service_name", "") == service_name]
            return [p.ip for p in pods] or None
        return [p.ip for p in pods]

    def kubelet_env(self, pod: Pod) -> dict[str, str]:
        host, port = self.api.address, str(self.api.port)
        return {
            "HOSTNAME": pod.name,
            "HOME": self.image.home,
            "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port, "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{host}:{port}", f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}",
            f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp", f"KUBERNETES_PORT_{port}_TCP_PORT": port,
            f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
        }

    def new_pod(self, ordinal: int, data_dir: str | None, template: ChartModel | None = None) -> Pod:
        """A StatefulSet pod <name>-<ordinal> (of `template`, the chart's StatefulSet by default)."""
        template = template or self.model
        name = f"{template.name}-{ordinal}"
        incarnation = self.incarnations.get(name, -1) + 1
        self.incarnations[name] = incarnation
        if data_dir is None:
            data_dir = os.path.join(self.run_dir, "volumes", f"data-{name}.{incarnation}")
            self.make_volume_dir(data_dir, template.fs_group)
        return self._pod(template, name, ordinal, incarnation, data_dir)

    def new_deployment_pod(self, template: PodTemplate) -> Pod:
        """A pod of a Deployment: <deployment>-<pod-template-hash>-<5 characters>, no ordinal, no data volume."""
        alphabet = "bcdfghjklmnpqrstvwxz2456789"  # what the ReplicaSet controller's names are made of
        template_hash = "".join(random.choices(alphabet, k=10))
        name = f"{template.name}-{template_hash}-{''.join(random.choices(alphabet, k=5))}"
        pod = self._pod(template, name, 0, 0, "")
        pod.labels["pod-template-hash"] = template_hash
        return pod

    def _pod(self, template: PodTemplate, name: str, ordinal: int, incarnation: int, data_dir: str) -> Pod:
        ip = f"{self.network.subnet}.{self.next_host}"
        self.next_host += 1
        directory = os.path.join(self.run_dir, "pods", f"{name}.{incarnation}")
        os.makedirs(directory)
        return Pod(name=name, ordinal=ordinal, incarnation=incarnation, uid=str(uuid.uuid4()), ip=ip,
                   host_ip=self.api.address, node_name=f"pod-sim-node-{ordinal % 2}",
                   netns=f"{self.network.prefix}-{name}-{incarnation}", directory=directory, data_dir=data_dir,
                   log_path=os.path.join(self.run_dir, "logs", f"{name}.{incarnation}.log"),
                   template=template, labels=dict(template.pod_labels))

    @staticmethod
    def make_volume_dir(path: str, fs_group: int | None) -> None:
        """An empty volume as the kubelet prepares it: mode 0777, group fsGroup + setgid with fsGroup."""
        os.makedirs(path)
        os.chmod(path, 0o777)
        if fs_group is not None:
            os.chown(path, 0, int(fs_group))
            os.chmod(path, 0o2777)

    def user(self, template: PodTemplate) -> tuple[int, int]:
        uid = template.run_as_user if template.run_as_user is not None else self.image.user
        gid = template.run_as_group if template.run_as_group is not None else self.image.group
        return (int(uid) if uid is not None else 0, int(gid) if gid is not None else 0)

    def groups(self, template: PodTemplate) -> list[int]:
        return [int(g) for g in [template.fs_group, *template.supplemental_groups] if g is not None]

    def etc_hosts(self, pod: Pod) -> str:
        """/etc/hosts as the kubelet writes it (pod name, with subdomain for a StatefulSet pod; hostAliases)."""
        template = pod.template
        lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                 "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
        subdomain = getattr(template, "service_name", "")
        if subdomain:
            lines.append(f"{pod.ip}\t{pod.name}.{subdomain}.{template.namespace}.svc.{CLUSTER_DOMAIN}\t{pod.name}")
        else:
            lines.append(f"{pod.ip}\t{pod.name}")
        if template.host_aliases:
            lines.append("")
            lines.append("# Entries added by HostAliases.")
            lines += [f"{alias['ip']}\t" + "\t".join(alias.get("hostnames") or []) for alias in template.host_aliases]
        return "\n".join(lines) + "\n"

    def resolv_conf(self, pod: Pod) -> str:
        """/etc/resolv.conf of dnsPolicy ClusterFirst: the cluster DNS (the stand-in) and the search path."""
        namespace = pod.template.namespace
        return (f"search {namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n"
                f"nameserver {self.dns_address}\noptions ndots:5\n")

    def container_argv(self, template: PodTemplate) -> tuple[str, list[str]]:
        """The binary's path in the image and its arguments, as the runtime combines the image's
        ENTRYPOINT/CMD with the container's command/args (tini, when the entrypoint has it, is not run)."""
        entry = list(self.image.entrypoint)
        command = template.container.get("command")
        args = template.container.get("args")
        argv = (command if command else entry) + (args if args is not None else ([] if command else self.image.cmd))
        binary_index = next((i for i, a in enumerate(argv) if os.path.basename(a) == "peat-mesh-node"), None)
        if binary_index is None:
            raise SimError(f"the {template.kind} {template.name} container command {argv} does not run peat-mesh-node")
        return argv[binary_index], argv[binary_index + 1:]

    def start_pod(self, pod: Pod) -> None:
        model = pod.template
        uid, gid = self.user(model)
        if model.run_as_non_root and uid == 0:
            raise SimError(f"{pod.name}: runAsNonRoot but the container would run as root (CreateContainerConfigError)")
        # The sandbox: network namespace and pod IP, then the endpoint (not ready yet).
        self.network.add_host(pod.netns, pod.ip)
        mounts: list[tuple[str, str, bool]] = []
        groups = self.groups(model)
        if model.automount:
            sa_dir = os.path.join(pod.directory, "serviceaccount")
            os.makedirs(sa_dir)
            pod.token = self.api.issue_token(model.service_account, pod.name)
            for file_name, content in (("token", pod.token), ("namespace", model.namespace),
                                       ("ca.crt", open(self.ca_path, encoding="utf-8").read())):
                path = os.path.join(sa_dir, file_name)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(content)
                os.chmod(path, 0o644)
                if model.fs_group is not None:
                    os.chown(path, 0, int(model.fs_group))
            os.chmod(sa_dir, 0o755)
            mounts.append((sa_dir, SA_MOUNT, True))
        for mount in model.mounts:
            source = model.volumes.get(mount["name"], {})
            if mount["mountPath"] == self.data_path:
                host = pod.data_dir
            elif "emptyDir" in source:
                host = os.path.join(pod.directory, "volumes", mount["name"])
                os.makedirs(os.path.dirname(host), exist_ok=True)
                self.make_volume_dir(host, model.fs_group)
            elif mount["name"] in model.claim_templates:
                host = os.path.join(self.run_dir, "volumes", f"{mount['name']}-{pod.name}")
                if not os.path.exists(host):
                    self.make_volume_dir(host, model.fs_group)
            elif "secret" in source:
                host = os.path.join(pod.directory, "volumes", mount["name"])
                os.makedirs(os.path.dirname(host), exist_ok=True)
                volume = secret_volume.SecretVolume(host, int(model.fs_group) if model.fs_group is not None else None)
                self.project_secret(pod, mount["name"], source["secret"], volume)
                # The kubelet mounts Secret volumes read-only whatever the mount says.
                mounts.append((host, mount["mountPath"], True))
                continue
            else:
                raise SimError(f"volume {mount['name']} ({list(source)}) is not emulated")
            mounts.append((host, mount["mountPath"], bool(mount.get("readOnly", False))))
        # The files the kubelet gives every container (read-only with a read-only root, as containerd does).
        for file_name, target, content in (("hosts", "/etc/hosts", self.etc_hosts(pod)),
                                           ("resolv.conf", "/etc/resolv.conf", self.resolv_conf(pod))):
            path = os.path.join(pod.directory, file_name)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.chmod(path, 0o644)
            mounts.append((path, target, model.read_only_root))
        binary, node_args = self.container_argv(model)
        q = shlex.quote
        script = ["set -e", f"hostname {q(pod.name)}"]
        if model.read_only_root:
            script.append("awk '{print $5}' /proc/self/mountinfo | while read -r m; do case \"$m\" in "
                          "/proc|/proc/*|/sys|/sys/*|/dev|/dev/*) ;; *) mount -o remount,bind,ro \"$m\" 2>/dev/null || true ;; "
                          "esac; done")
            script.append("if touch /.pod-sim-rw 2>/dev/null; then rm -f /.pod-sim-rw; "
                          "echo 'pod-sim: / stayed writable' >&2; exit 97; fi")
        image_bin = os.path.dirname(binary)
        script.append(f"mount --bind {q(os.path.join(self.image_root, image_bin.lstrip('/')))} {q(image_bin)}")
        script.append(f"mount -o remount,bind,ro {q(image_bin)}")
        # A mount whose target hides another mount's host source (an emptyDir at /tmp over the
        # simulator's /tmp/pod-sim-... directories) goes after it.
        sources = [m[0] for m in mounts]
        mounts.sort(key=lambda m: any(s != m[0] and s.startswith(m[1].rstrip("/") + "/") for s in sources))
        for host, target, read_only in mounts:
            # A bind mount inherits the source mount's flags (read-only after the loop above): set them.
            script.append(f"mount --bind {q(host)} {q(target)}")
            script.append(f"mount -o remount,bind,{'ro' if read_only else 'rw'} {q(target)}")
        # The simulator's own directory (other pods' volumes and Secrets) is no part of a container:
        # hidden under an empty read-only tmpfs where the pod's mounts leave it visible.
        script.append(f"if [ -d {q(self.run_dir)} ]; then mount -t tmpfs -o ro,size=16k,mode=0755 pod-sim-hidden "
                      f"{q(self.run_dir)}; fi")
        workdir = model.container.get("workingDir") or self.image.workdir
        script.append(f"cd {q(workdir)}")
        priv = ["setpriv", f"--reuid={uid}", f"--regid={gid}"]
        priv.append(f"--groups={','.join(str(g) for g in groups)}" if groups else "--clear-groups")
        if model.no_new_privs:
            priv.append("--no-new-privs")
        # Capabilities as a runtime gives them: the bounding set is the container's; root has them
        # all, another user none (Kubernetes sets no ambient capabilities) unless --grant-net-admin.
        ambient = [c.lower() for c in self.extra_capabilities]
        bounding = sorted({c.lower() for c in model.capabilities} | set(ambient))
        priv.append("--bounding-set=" + ",".join(["-all", *(f"+{c}" for c in bounding)]))
        priv.append("--inh-caps=" + ",".join(["-all", *(f"+{c}" for c in ambient)]))
        if ambient:
            priv.append("--ambient-caps=" + ",".join(f"+{c}" for c in ambient))
        script.append("exec " + " ".join(q(p) for p in priv) + f" {q(binary)} \"$@\"")
        pod.env = model.container_env(pod, self.kubelet_env(pod), self.image.env)
        pod.argv = ["ip", "netns", "exec", pod.netns, "unshare", "--mount", "--uts", "--propagation", "private",
                    "sh", "-c", "\n".join(script), "pod-sim", *node_args]
        # The endpoint appears once the pod has an IP, before its container starts (not ready yet);
        # the API double's slices are those of the StatefulSet's Services.
        if isinstance(model, ChartModel):
            self.api.set_pod(PodState(pod.name, pod.ordinal, pod.uid, pod.ip, pod.node_name))
        self.launch(pod)
        self.pods[pod.name] = pod
        self.history.append(pod)
        threading.Thread(target=self._kubelet, args=(pod,), name=f"kubelet-{pod.label}", daemon=True).start()

    def project_secret(self, pod: Pod, name: str, source: dict[str, Any], volume: Any) -> None:
        """Writes the Secret's current content into the pod's volume (the kubelet's atomic ..data swap)."""
        secret = pod.template.secrets.get(source.get("secretName", ""))
        if secret is None:
            raise SimError(f"{pod.name}: volume {name}: Secret {source.get('secretName')} is not rendered "
                           "(the pod would stay in ContainerCreating)")
        try:
            volume.write(secret_volume.payload(secret, source))
        except secret_volume.VolumeError as error:
            raise SimError(f"{pod.name}: volume {name}: {error} (the pod would stay in ContainerCreating)") from error
        pod.secret_volumes[name] = (source, volume)

    def sync_secret(self, secret_name: str) -> list[str]:
        """The kubelet's periodic sync after a Secret changed: every running pod's volumes of it are
        rewritten (at once here; a real kubelet takes up to about a minute). Returns the pods updated."""
        updated = []
        for pod in list(self.pods.values()):
            for name, (source, volume) in list(pod.secret_volumes.items()):
                if source.get("secretName") == secret_name:
                    self.project_secret(pod, name, source, volume)
                    updated.append(pod.name)
        return updated

    def launch(self, pod: Pod) -> None:
        """Starts (or restarts) the pod's container; its output is appended to the pod's log."""
        with open(pod.log_path, "ab") as log:
            pod.started_at = time.monotonic()
            pod.proc = subprocess.Popen(pod.argv, env=pod.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                        cwd="/", start_new_session=True)

    # -- the kubelet's probes

    def probe(self, pod: Pod, probe: Probe) -> bool:
        try:
            status, _ = http_call(self.api_netns, pod.ip, probe.port, "GET", probe.path, timeout=probe.timeout,
                                  headers={"User-Agent": "kube-probe/1.30", "Accept": "*/*"})
            return 200 <= status < 400
        except (OSError, http.client.HTTPException):
            return False

    def _kubelet(self, pod: Pod) -> None:
        probes = pod.template.probes

        def fresh() -> dict[str, dict[str, float]]:
            return {kind: {"next": pod.started_at + p.initial_delay, "ok": 0, "bad": 0}
                    for kind, p in probes.items() if p is not None}

        state = fresh()
        started = probes.get("startup") is None
        while not pod.prober_stop.wait(0.2):
            if pod.proc is not None and pod.proc.poll() is not None and not pod.deleting:
                # restartPolicy Always: restart with the kubelet's back-off (10 s doubling to 5 min).
                pod.restarts += 1
                message = f"{pod.label}: container exited with {pod.proc.returncode}; restart {pod.restarts}"
                pod.kubelet_events.append(message)
                self.kubelet_problems.append(message)
                pod.ready = False
                self.api.update_pod(pod.name, ready=False)
                if pod.prober_stop.wait(min(10 * 2 ** (pod.restarts - 1), 300)):
                    return
                with pod.lock:
                    if pod.deleting:
                        return
                    self.launch(pod)
                state = fresh()
                started = probes.get("startup") is None
                continue
            pod.sample_rss()
            now = time.monotonic()
            for kind, probe in probes.items():
                if probe is None or now < state[kind]["next"] or (kind != "startup" and not started):
                    continue
                if kind == "startup" and started:
                    continue
                state[kind]["next"] = now + probe.period
                success = self.probe(pod, probe)
                if pod.prober_stop.is_set():
                    return
                counts = state[kind]
                counts["ok"], counts["bad"] = (counts["ok"] + 1, 0) if success else (0, counts["bad"] + 1)
                if kind == "startup" and counts["ok"] >= probe.success_threshold:
                    started = True
                elif kind == "readiness":
                    if not pod.ready and counts["ok"] >= probe.success_threshold:
                        pod.ready, pod.ready_at = True, time.monotonic()
                        pod.kubelet_events.append(f"ready after {pod.ready_at - pod.started_at:.1f}s")
                        self.api.update_pod(pod.name, ready=True)
                    elif pod.ready and counts["bad"] >= probe.failure_threshold:
                        pod.ready = False
                        pod.kubelet_events.append("readiness probe failing: not ready")
                        self.kubelet_problems.append(f"{pod.label}: readiness probe {probe.path} failed {counts['bad']} times")
                        self.api.update_pod(pod.name, ready=False)
                elif kind in ("liveness", "startup") and counts["bad"] >= probe.failure_threshold:
                    message = (f"{pod.label}: {kind} probe {probe.path} failed {counts['bad']} times "
                               "(the kubelet would restart it)")
                    if message not in self.kubelet_problems:
                        self.kubelet_problems.append(message)

    # -- deletion (kubectl delete pod) and shutdown

    def delete_pod(self, pod: Pod) -> tuple[int | None, float, bool]:
        """Deletion as the control plane and kubelet do it; returns (exit status, seconds to exit,
        whether the container had already exited before the deletion)."""
        with pod.lock:
            pod.deleting = True
        self.api.update_pod(pod.name, terminating=True)  # deletionTimestamp set: endpoint terminating
        pod.sample_rss()
        started = time.monotonic()
        status: int | None = None
        exited_before = pod.proc is not None and pod.proc.poll() is not None
        if pod.proc is not None:
            if pod.proc.poll() is None:
                os.kill(pod.proc.pid, signal.SIGTERM)
            try:
                status = pod.proc.wait(timeout=pod.template.grace)
            except subprocess.TimeoutExpired:
                os.kill(pod.proc.pid, signal.SIGKILL)
                pod.proc.wait()
                status = None  # killed after the grace period
        elapsed = time.monotonic() - started
        pod.prober_stop.set()
        self.api.remove_pod(pod.name)  # the pod object is gone: endpoint removed
        if pod.token:
            self.api.revoke_token(pod.token)
        self.network.remove(pod.netns)
        self.pods.pop(pod.name, None)
        return status, elapsed, exited_before

    def kill_all(self) -> None:
        for pod in self.history:
            with pod.lock:  # no restart from here on
                pod.deleting = True
            pod.prober_stop.set()
        for pod in self.history:
            if pod.proc is not None and pod.proc.poll() is None:
                try:
                    os.kill(pod.proc.pid, signal.SIGTERM)
                    pod.proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    try:
                        os.kill(pod.proc.pid, signal.SIGKILL)
                        pod.proc.wait(timeout=5)
                    except (OSError, subprocess.TimeoutExpired):
                        pass


# --- the simulation ------------------------------------------------------------------------------

def parse_log_line(line: str) -> tuple[str | None, str]:
    """(level, message) of a node log line, text or JSON format; (None, line) when it is neither."""
    match = TEXT_LOG.match(line)
    if match:
        return match.group(2), match.group(4)
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except ValueError:
            return None, line
        level = str(obj.get("level", "")).upper()
        fields = " ".join(f"{k}={v}" for k, v in obj.items() if k not in ("level", "message", "timestamp", "label", "ts"))
        return (level if level in LOG_LEVELS else None), f"{obj.get('message', '')} {fields}".strip()
    return None, line


class Simulation:
    def __init__(self, args: argparse.Namespace, render: Callable[..., list[dict[str, Any]]] | None) -> None:
        self.args = args
        self.render = render
        self.report = Report()
        self.prefix = f"psim-{os.getpid()}"
        self.network: Network | None = None
        self.api: APIDouble | None = None
        self.cluster: Cluster | None = None
        self.dns: ClusterDNS | None = None
        self.values: dict[str, Any] = {}
        self.formation_secret = ""
        self.broker_tokens: set[str] = set()  # every broker token value a node had (for the relay's check)
        self.image_binary = ""
        self.run_dir = ""
        self.created_dirs: list[str] = []
        self.started = time.monotonic()

    # -- setup

    def ensure_mount_point(self, path: str) -> None:
        real = os.path.realpath(path)
        missing = []
        probe = real
        while not os.path.exists(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        if missing:
            os.makedirs(real)
            self.created_dirs.extend(reversed(missing))
            self.report.note(f"created the empty mount point {path}" + (f" ({real})" if real != path else "")
                             + " on the host; removed at exit")

    def run(self) -> None:
        report = self.report
        args = self.args
        # 1. The chart.
        formation_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        values = {"formationSecret": formation_secret, "replicaCount": REPLICAS}
        render = self.render or load_render()
        self.values, self.formation_secret = values, formation_secret
        try:
            objects = render(values, name=RELEASE, namespace=NAMESPACE)
        except Exception as error:  # HelmRenderError and friends
            report.fail("chart", f"render failed: {type(error).__name__}: {error}")
            return
        try:
            model = ChartModel(objects, NAMESPACE, formation_secret)
        except SimError as error:
            report.fail("chart", str(error))
            return
        if model.token_secret:
            self.broker_tokens.add(model.broker_token())
        image = ImageConfig.load(DOCKERFILE)
        kinds = sorted({o["kind"] for o in objects})
        report.note(f"rendered {len(objects)} objects ({', '.join(kinds)}) with replicaCount={REPLICAS} and a random formationSecret")
        report.note(f"StatefulSet {model.name}: {model.replicas} pods, {model.pod_management}, serviceName {model.service_name}, "
                    f"grace {model.grace:g}s, ports {model.ports}, user {model.run_as_user}:{model.run_as_group} "
                    f"fsGroup {model.fs_group}, readOnlyRootFilesystem {model.read_only_root}")
        report.note(f"headless Service {model.service_name}: labels {model.service_labels}, "
                    f"publishNotReadyAddresses {model.publish_not_ready}, ports {sorted(model.service_ports)}")
        readiness = model.probes.get("readiness")
        if readiness:
            report.note(f"readiness probe GET {readiness.path} :{readiness.port} (delay {readiness.initial_delay:g}s, "
                        f"period {readiness.period:g}s)")
        for note in model.notes:
            report.note(note)
        env_items = [i for i in model.container.get("env", []) if i.get("name") == "PEAT_DATA_DIR"]
        data_path = model.env_value(env_items[-1], {}, None) if env_items else image.env.get("PEAT_DATA_DIR", "/data")
        data_mount = next((m for m in model.mounts if m["mountPath"] == data_path), None)
        if data_mount is None:
            model.problems.append(f"no volume is mounted at PEAT_DATA_DIR {data_path}")
        else:
            source = model.volumes.get(data_mount["name"], {})
            if "emptyDir" in source:
                kind = "emptyDir"
            else:
                kind = "PersistentVolumeClaim" if data_mount["name"] in model.claim_templates else str(list(source))
            report.note(f"data volume {data_mount['name']} at {data_path} is an {kind} in the chart; each pod gets its own "
                        "directory, kept when pod 0 is recreated with its volume, empty when recreated without")
        if not all(model.allowed(model.service_account, NAMESPACE, verb, NAMESPACE) for verb in ("list", "watch")):
            model.problems.append(f"RBAC does not let ServiceAccount {model.service_account} list and watch "
                                  f"endpointslices in {NAMESPACE}")
        if not model.automount:
            model.problems.append("automountServiceAccountToken is false: Kubernetes discovery has no token")
        if model.token_file:
            report.note(f"broker token: PEAT_BROKER_TOKEN_FILE={model.token_file}, key {model.token_key} of Secret "
                        f"{model.token_secret} (generated by the render: lookup finds nothing offline), in a Secret "
                        "volume laid out as the kubelet does (..data symlink swap)")
        if not report.check("chart", model.problems, "StatefulSet, headless Service, Secret, RBAC and probes fit together"):
            return

        # 2. Files, network, PKI, API double.
        self.run_dir = tempfile.mkdtemp(prefix="pod-sim-")
        os.chmod(self.run_dir, 0o755)
        image_root = os.path.join(self.run_dir, "image")
        binary_dir = os.path.join(image_root, "usr", "local", "bin")
        os.makedirs(binary_dir)
        image_binary = next((a for a in image.entrypoint if os.path.basename(a) == "peat-mesh-node"),
                            "/usr/local/bin/peat-mesh-node")
        if os.path.dirname(image_binary) != "/usr/local/bin":
            binary_dir = os.path.join(image_root, os.path.dirname(image_binary).lstrip("/"))
            os.makedirs(binary_dir, exist_ok=True)
        self.image_binary = os.path.join(binary_dir, "peat-mesh-node")
        shutil.copy2(args.binary, self.image_binary)
        build_dir = os.path.dirname(os.path.realpath(args.binary))
        for bundle in os.listdir(build_dir):
            if bundle.endswith(".resources"):  # looked up next to the executable, as the Dockerfile copies them
                shutil.copytree(os.path.join(build_dir, bundle), os.path.join(binary_dir, bundle))
        for root, dirs, _ in os.walk(self.run_dir):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        report.note(f"image: {args.binary} (+ resource bundles) at {image_binary}; ENV {sorted(image.env)}, "
                    f"USER {image.user}:{image.group} from {os.path.relpath(DOCKERFILE, REPO)}; tini is not run "
                    "(the node is the process)")
        Network.remove_stale(report)
        self.network = Network(self.prefix, report)
        self.network.start()
        api_netns = f"{self.prefix}-apiserver"
        api_address = f"{self.network.subnet}.1"
        self.network.add_host(api_netns, api_address)
        pki_dir = os.path.join(self.run_dir, "pki")
        os.makedirs(pki_dir)
        ca_path, cert_path, key_path = make_pki(pki_dir, api_address)
        self.ensure_mount_point(SA_MOUNT)
        for mount in model.mounts:
            self.ensure_mount_point(mount["mountPath"])
        os.makedirs(os.path.join(self.run_dir, "logs"))
        self.api = APIDouble(model, api_netns, api_address, API_PORT, cert_path, key_path,
                             os.path.join(self.run_dir, "logs", "apiserver.log"))
        self.api.start()
        report.note(f"network {self.network.subnet}.0/24: bridge in namespace {self.network.switch}, API double "
                    f"https://{api_address}:{API_PORT} (CA + server certificate by openssl, SAN IP:{api_address}), "
                    f"pods from {self.network.subnet}.10")
        extra = ["NET_ADMIN"] if args.grant_net_admin else []
        if extra:
            report.note("DEVIATION FROM THE CHART (--grant-net-admin): the node process keeps CAP_NET_ADMIN as an ambient "
                        "capability, which no unprivileged pod has")
        cluster = Cluster(model, image, self.network, self.api, self.run_dir, image_root, ca_path, data_path, extra, report)
        self.cluster = cluster
        self.dns = ClusterDNS(api_netns, api_address, cluster.dns_lookup, os.path.join(self.run_dir, "logs", "dns.log"))
        self.dns.start()
        report.note(f"cluster DNS stand-in {api_address}:53/udp (<service>.<namespace>.svc.{CLUSTER_DOMAIN} → the pod IPs "
                    f"of its endpoints, no ClusterIP); every pod gets the kubelet's /etc/hosts and a ClusterFirst "
                    f"/etc/resolv.conf (search {NAMESPACE}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}, "
                    "ndots:5); the simulator's directory is hidden in every pod")

        # Expected identities, as an operator predicts them with `peat-mesh-node identity`.
        def predict(pod: Pod) -> str:
            env = model.container_env(pod, cluster.kubelet_env(pod), image.env)
            out = run([os.path.join(binary_dir, "peat-mesh-node"), "identity"], env=env).stdout
            match = re.search(r"device_id=([0-9a-f]{32})", out)
            if not match:
                raise SimError(f"`peat-mesh-node identity` printed {out!r}")
            return match.group(1)

        self.scenario(model, cluster, predict)
        self.final_checks(model, cluster)

    def scenario(self, model: ChartModel, cluster: Cluster, predict: Callable[[Pod], str]) -> None:
        """The functional checks (a)-(d) and (f); returns early when the pods never become ready."""
        report = self.report
        assert self.api is not None
        readiness = model.probes["readiness"]
        assert readiness is not None
        expected: dict[str, str] = {}
        pods = [cluster.new_pod(i, None) for i in range(model.replicas)]
        for pod in pods:
            expected[pod.name] = predict(pod)
        for pod in pods:
            cluster.start_pod(pod)
            if model.pod_management == "OrderedReady":
                wait_until(lambda: pod.ready or (pod.proc and pod.proc.poll() is not None), 60)
        report.note("pods: " + ", ".join(f"{p.name} {p.ip} (netns {p.netns})" for p in pods))
        report.note(f"container environment: {', '.join(sorted(pods[0].env))} (nothing from the host; "
                    "PEAT_FORMATION_SECRET from the rendered Secret)")
        all_ready = wait_until(lambda: all(p.ready for p in pods) or any(p.proc.poll() is not None for p in pods), 60)
        if not all_ready or not all(p.ready for p in pods):
            report.fail("a-readiness", "not every pod became ready within 60 s: " + ", ".join(
                f"{p.name} ready={p.ready} exit={p.proc.poll()}" for p in pods))
            return
        report.note("ready after " + ", ".join(f"{p.name} {p.ready_at - p.started_at:.1f}s" for p in pods))

        # (a) readiness probe path, health, node identity.
        problems = []
        for pod in pods:
            problems += self.check_pod_api(pod, expected[pod.name])
        report.check("a-readiness", problems, f"{readiness.path} 200 ready=true, /api/v1/health healthy, on {len(pods)} pods")
        problems = []
        for pod in pods:
            problems += self.check_identity_log(pod, expected[pod.name])
        report.check("identity", problems,
                     "Mesh started node_id=<pod name> device_id = `peat-mesh-node identity` prediction, on every pod")

        # (b) a full mesh.
        problems = self.wait_full_mesh(pods, expected, 30)
        mesh_wait = 30 if not problems else 10  # once the mesh failed to form, later waits are shorter
        problems += self.hints() if problems else []
        report.check("b-peers", problems, f"every pod lists the {len(pods) - 1} others connected: true and logged Peer connected "
                     "with their device_id and pod IP")

        # (c) a document written on pod 0 is read everywhere.
        doc_id = f"pod-sim-{secrets.token_hex(4)}"
        document = {"written_by": pods[0].name, "n": 1}
        broker = model.ports["broker"]
        path = f"/api/v1/documents/{DOC_COLLECTION}/{doc_id}"
        status, body, error = http_json(self.api.netns, pods[0].ip, broker, "PUT", path, document,
                                        token=model.broker_token())
        if status not in (200, 201):
            report.fail("c-document-sync", f"PUT on {pods[0].name} answered {status} {body or error}")
        else:
            t0 = time.monotonic()
            problems = self.wait_document(pods[1:], doc_id, document, 10)
            problems += self.hints() if problems else []
            report.check("c-document-sync", problems, f"PUT {DOC_COLLECTION}/{doc_id} on {pods[0].name} ({status}), same document on "
                         f"{', '.join(p.name for p in pods[1:])} after {time.monotonic() - t0:.2f}s")

        # The broker's bearer token: refused without it, open routes open, then a rotation.
        self.check_broker_auth(pods)

        # The k3d functional test itself, in its plain-HTTP mode, from the API double's namespace:
        # its health, auth, peers, document and logs checks against these pods (its restart check
        # needs kubectl delete pod; (d) below does that here).
        self.run_functional_test_script(pods, model.ports["broker"])

        # Rotation before (d): the recreated pods then start with the rotated Secret.
        self.check_token_rotation(cluster, pods)

        # (d) pod 0 deleted and recreated, with its data volume then with an empty one.
        others = pods[1:]
        old = pods[0]
        lost_problems: list[str] = []
        for step, keep in (("d-recreate-same-volume", True), ("d-recreate-empty-volume", False)):
            offsets = {p.name: p.log_size() for p in others}
            status, elapsed, _ = cluster.delete_pod(old)
            delete_problems = []
            timeline = self.api.endpoint_timeline(old.uid)
            if timeline[-2:] != ["terminating", "absent"]:
                delete_problems.append(f"the endpoint of {old.label} went {' → '.join(timeline)}, not terminating → removed")
            if status != 0:
                how = status if status is not None else "SIGKILL after the grace period"
                delete_problems.append(f"{old.label} exited with {how}")
            if elapsed > model.grace:
                delete_problems.append(f"took {elapsed:.1f}s, over the {model.grace:g}s grace period")
            log = old.log_text()
            for needle in ("Received SIGTERM", "peat-mesh-node stopped"):
                if needle not in log:
                    delete_problems.append(f"{old.label} did not log {needle!r}")
            report.check(f"d-delete-{old.name}" + ("" if keep else "-again"), delete_problems,
                         f"SIGTERM: exit {status} after {elapsed:.2f}s (grace {model.grace:g}s); "
                         f"its endpoint went {' → '.join(timeline)}")
            # (f, part 1) the others notice.
            for other in others:
                pattern = rf"Peer (lost|disconnected) peer={re.escape(old.name)}\b"
                if not wait_until(lambda: re.search(pattern, other.log_text(offsets[other.name])), 10):
                    lost_problems.append(f"{other.name} logged no 'Peer lost/disconnected peer={old.name}' "
                                         f"within 10 s of deletion {old.incarnation + 1}")
            recreate_offsets = {p.name: p.log_size() for p in others}
            new = cluster.new_pod(0, old.data_dir if keep else None)
            cluster.start_pod(new)
            problems = []
            if not wait_until(lambda: new.ready or new.proc.poll() is not None, 60) or not new.ready:
                problems.append(f"{new.label} not ready within 60 s (exit {new.proc.poll()})")
            else:
                problems += self.check_pod_api(new, expected[new.name])
                problems += self.check_identity_log(new, expected[new.name])
                # The data volume: the same store (actor, documents) or a new, empty one.
                before, after = self.store_opened(old), self.store_opened(new)
                if before is None or after is None:
                    problems.append(f"no 'Document store opened' line in the logs of {old.label} / {new.label}")
                elif keep and (after[0] != before[0] or after[1] < 1):
                    problems.append(f"{new.label} opened store actor {after[0]} with {after[1]} documents; "
                                    f"expected {before[0]}'s store with the document")
                elif not keep and (after[0] == before[0] or after[1] != 0):
                    problems.append(f"{new.label} opened store actor {after[0]} with {after[1]} documents; expected a new, empty store")
                problems += self.wait_document([new], doc_id, document, 10)
                has_document = time.monotonic() - new.started_at
                problems += self.wait_full_mesh([new, *others], expected, mesh_wait)
                for other in others:
                    text = other.log_text(recreate_offsets[other.name])
                    if not re.search(rf"Peer connected peer={re.escape(new.name)} ", text):
                        lost_problems.append(f"{other.name} logged no reconnection to {new.label}")
                source = "in its own volume" if keep else "from its peers"
                store = f"store actor {after[0][:8]}… reopened" if keep else f"new store actor {after[0][:8]}…"
                detail = (f"{new.name} recreated ({'same' if keep else 'empty'} data volume, {store}, new uid, "
                          f"IP {new.ip}): device_id "
                          f"{expected[new.name]} as before, reconnected to {', '.join(o.name for o in others)}, "
                          f"document {source} {has_document:.1f}s after start")
            report.check(step, problems + (self.hints() if problems else []), detail if not problems else "")
            old = new
        report.check("f-peer-lost-and-reconnect", lost_problems,
                     f"{', '.join(o.name for o in others)} logged Peer lost/disconnected for {pods[0].name} "
                     "after each deletion and Peer connected after each recreation")

    def run_functional_test_script(self, pods: list[Pod], broker: int) -> None:
        script = os.path.join(REPO, "deploy", "k3d", "functional-test.sh")
        assert self.api is not None
        token_file = os.path.join(self.run_dir, "functional-test.token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
            handle.write(self.api.model.broker_token() + "\n")
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "BROKER_URLS": " ".join(f"http://{p.ip}:{broker}" for p in pods),
            "BROKER_TOKEN_FILE": token_file,
            "LOG_FILES": " ".join(p.log_path for p in pods),
            "CHECKS": "health auth peers document logs",
            "PEER_TIMEOUT": "30", "SYNC_TIMEOUT": "15", "HEALTH_TIMEOUT": "15",
        }
        try:
            done = subprocess.run(["ip", "netns", "exec", self.api.netns, "bash", script], env=env,
                                  capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            self.report.fail("k3d-functional-test", "deploy/k3d/functional-test.sh did not finish within 120 s")
            return
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        passed = sum(1 for line in lines if line.startswith("OK"))
        problems = [] if done.returncode == 0 else [f"exit {done.returncode}"] + \
            [line for line in lines if line.startswith("FAIL")][:8] + ([done.stderr.strip()[-400:]] if done.stderr.strip() else [])
        self.report.check("k3d-functional-test", problems,
                          f"deploy/k3d/functional-test.sh (CHECKS=health auth peers document logs, plain-HTTP mode with "
                          f"BROKER_TOKEN_FILE): {passed} OK")

    # -- the broker's bearer token

    @staticmethod
    def unauthorized_problem(status: int, headers: Any, body: bytes, token: str) -> str:
        """What is wrong with an answer that must be the contract's 401 ('' when nothing is)."""
        if status != 401:
            return f"{status}, not 401"
        challenge = (headers.get("www-authenticate") or headers.get("WWW-Authenticate") or "").strip()
        if not re.match(r"(?i)bearer(\s|$)", challenge):
            return f"401 with WWW-Authenticate {challenge!r}, not the Bearer scheme"
        if token and token.encode() in body:
            return "the 401 body contains the token"
        try:
            parsed = json.loads(body)
        except ValueError:
            return f"401 body is not JSON: {body[:120]!r}"
        if not (isinstance(parsed, dict) and isinstance(parsed.get("error"), str) and parsed["error"]
                and parsed.get("status") == 401):
            return f"401 body {parsed!r} is not {{\"error\": \"...\", \"status\": 401}}"
        return ""

    def broker_request(self, pod: Pod, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        """One request to the pod's broker ("WS": a WebSocket upgrade); PUT/PATCH carry a small JSON body."""
        assert self.api is not None
        broker = self.api.model.ports["broker"]
        if method == "WS":
            return websocket_upgrade(self.api.netns, pod.ip, broker, path, headers)
        body = {"written_by": "pod-sim without the token"} if method in ("PUT", "PATCH", "POST") else None
        status, response_headers, payload = http_request(self.api.netns, pod.ip, broker, method, path, body,
                                                         headers=headers)
        return status, {k.lower(): v for k, v in response_headers.items()}, payload

    def check_broker_auth(self, pods: list[Pod]) -> None:
        """Every route but health, ready and metrics (read from the broker's sources) refuses a request
        without the token, with a wrong one and with another scheme: 401, WWW-Authenticate: Bearer,
        {"error", "status": 401}; the refused writes store nothing; the open routes answer without a
        token; the WebSocket upgrades with the token."""
        assert self.api is not None
        model = self.api.model
        token = model.broker_token()
        problems: list[str] = []
        try:
            routes = broker_routes()
        except SimError as error:
            self.report.fail("broker-auth", str(error))
            return
        protected = [(m, p) for m, p in routes if p not in OPEN_ROUTES]
        missing_open = [p for p in OPEN_ROUTES if p not in {path for _, path in routes}]
        if missing_open:
            problems.append(f"the broker has no route {missing_open} (Broker.routes changed?)")
        attempts = (("without a token", {}), ("with a wrong token", bearer("pod-sim-wrong-" + secrets.token_hex(12))),
                    ("with the token under the Basic scheme", {"Authorization": "Basic " + base64.b64encode(
                        f"peat:{token}".encode()).decode()}),
                    ("with an empty bearer token", {"Authorization": "Bearer "}))
        requests = 0
        for pod in pods:
            doc_id = f"pod-sim-auth-{secrets.token_hex(4)}"
            for method, template in protected:
                path = (template.replace("{collection}", DOC_COLLECTION)
                        .replace("{id}", pods[-1].name if template.startswith("/api/v1/peers/") else doc_id))
                for label, headers in attempts:
                    requests += 1
                    try:
                        status, response_headers, body = self.broker_request(pod, method, path, headers)
                    except (OSError, http.client.HTTPException) as error:
                        problems.append(f"{pod.label} {method} {path} {label}: {type(error).__name__}: {error}")
                        continue
                    problem = self.unauthorized_problem(status, response_headers, body, token)
                    if problem:
                        problems.append(f"{pod.label} {method} {path} {label}: {problem}")
            for path in OPEN_ROUTES:
                requests += 1
                try:
                    status, _, body = self.broker_request(pod, "GET", path, {})
                except (OSError, http.client.HTTPException) as error:
                    problems.append(f"{pod.label} GET {path} without a token: {type(error).__name__}: {error}")
                    continue
                if status != 200:
                    problems.append(f"{pod.label} GET {path} without a token: {status} {body[:120]!r}, not 200")
            status, body, error = http_json(self.api.netns, pod.ip, model.ports["broker"], "GET",
                                            f"/api/v1/documents/{DOC_COLLECTION}/{doc_id}", token=token)
            if status != 404:
                problems.append(f"{pod.label}: after the refused PUT/PATCH, GET {DOC_COLLECTION}/{doc_id} with the token "
                                f"answered {status} {body or error}, not 404")
            for method, path in routes:
                if method == "WS":
                    try:
                        status, _, body = websocket_upgrade(self.api.netns, pod.ip, model.ports["broker"], path, bearer(token))
                    except (OSError, http.client.HTTPException) as error:
                        problems.append(f"{pod.label} WebSocket {path} with the token: {type(error).__name__}: {error}")
                        continue
                    if status != 101:
                        problems.append(f"{pod.label} WebSocket {path} with the token: {status} {body[:120]!r}, not 101")
        self.report.check("broker-auth", problems + (self.hints() if problems else []),
                          f"{len(protected)} protected routes (WebSocket included) x {len(attempts)} bad credentials "
                          f"answered 401 + WWW-Authenticate: Bearer + {{error, status: 401}} on {len(pods)} pods; "
                          f"refused writes stored nothing; {', '.join(OPEN_ROUTES)} 200 without a token; "
                          f"WebSocket 101 with it ({requests} requests)")

    def check_token_rotation(self, cluster: Cluster, pods: list[Pod]) -> None:
        """The Secret gets a new value and the kubelet swaps every pod's ..data: each node must accept
        the new token and refuse the old one within ROTATION_TIMEOUT, without restarting."""
        assert self.api is not None
        model = self.api.model
        assert model.token_secret is not None and model.token_key is not None
        broker = model.ports["broker"]
        old = model.broker_token()
        new = "rotated-" + secrets.token_urlsafe(24)
        before = {pod.name: (pod.proc.pid if pod.proc else None, pod.restarts) for pod in pods}
        # With a trailing newline, as `kubectl create secret --from-file` of `echo`'s output holds it:
        # the node trims it.
        model.set_secret_value(model.token_secret, model.token_key, f"{new}\n")
        self.broker_tokens.add(new)
        swapped_at = time.monotonic()
        updated = cluster.sync_secret(model.token_secret)
        problems = [f"{pod.name}: its volume was not updated" for pod in pods if pod.name not in updated]
        taken: dict[str, float] = {}
        last: dict[str, str] = {}

        def rotated(pod: Pod) -> bool:
            status_new, _, error_new = http_json(self.api.netns, pod.ip, broker, "GET", "/api/v1/node", token=new)
            status_old, _, error_old = http_json(self.api.netns, pod.ip, broker, "GET", "/api/v1/node", token=old)
            last[pod.name] = f"new token {status_new or error_new}, old token {status_old or error_old}"
            if status_new == 200 and status_old == 401:
                taken.setdefault(pod.name, time.monotonic() - swapped_at)
                return True
            return False

        for pod in pods:
            if not wait_until(lambda pod=pod: rotated(pod), max(0.5, ROTATION_TIMEOUT - (time.monotonic() - swapped_at)), 0.2):
                problems.append(f"{pod.label} {ROTATION_TIMEOUT:g}s after the ..data swap: {last.get(pod.name)} "
                                "(expected 200 and 401)")
        for pod in pods:
            pid, restarts = before[pod.name]
            if pod.proc is None or pod.proc.pid != pid or pod.proc.poll() is not None or pod.restarts != restarts:
                problems.append(f"{pod.label} restarted or exited during the rotation")
        slowest = max(taken.values()) if taken else 0.0
        self.report.check("broker-token-rotation", problems + (self.hints() if problems else []),
                          f"Secret {model.token_secret} given a new value, every pod's volume updated as the kubelet does "
                          f"(..data swapped); each node accepted the new token and refused the old one "
                          f"{slowest:.1f}s after the swap at the latest, without a restart")

    def final_checks(self, model: ChartModel, cluster: Cluster) -> None:
        """Checks that hold whatever happened before: shutdown, logs (e), the kubelet's and the API's view."""
        report = self.report
        # A TCP client that is not a peer (a tcpSocket probe, a load balancer's health check, a scanner).
        report.check("sync-port-stranger", self.check_sync_stranger(list(cluster.pods.values())),
                     "a plain TCP connection and an HTTP request to the sync port leave every node running and healthy")

        # Shutdown of the rest (helm uninstall / scale to 0).
        problems = []
        for pod in list(cluster.pods.values()):
            status, elapsed, exited_before = cluster.delete_pod(pod)
            if exited_before:
                continue  # reported by "probes"
            if status != 0 or elapsed > model.grace:
                problems.append(f"{pod.label}: exit {status} after {elapsed:.1f}s")
        report.check("shutdown", problems, f"every running pod exited 0 on SIGTERM within {model.grace:g}s")

        # The chart's relay, with a StatefulSet of its own (its pods are in the checks below).
        self.check_relay(cluster)

        # (e) logs.
        problems = []
        for pod in cluster.history:
            for number, line in enumerate(pod.log_text().splitlines(), 1):
                level, message = parse_log_line(line)
                if level in ("ERROR", "CRITICAL"):
                    problems.append(f"{pod.label} line {number}: {line.strip()[:300]}")
                elif level is None and line.strip():
                    problems.append(f"{pod.label} line {number} is not a log line: {line.strip()[:300]}")
        lines = sum(len(p.log_text().splitlines()) for p in cluster.history)
        report.check("e-logs-clean", problems, f"{lines} lines in {len(cluster.history)} pod logs, none at ERROR or CRITICAL")

        # The kubelet's view and the API usage.
        report.check("probes", cluster.kubelet_problems + (self.hints() if cluster.kubelet_problems else []),
                     "no liveness/readiness failure or unexpected exit while running")
        if model.memory_limit:
            problems = [f"{p.label}: peak RSS {p.peak_rss / 2**20:.0f} MiB over the {p.template.memory_limit / 2**20:.0f} MiB limit"
                        for p in cluster.history
                        if p.peak_rss and p.template.memory_limit and p.peak_rss > p.template.memory_limit]
            details = []
            for template in {(p.template.kind, p.template.name): p.template for p in cluster.history}.values():
                peaks = [p.peak_rss for p in cluster.history
                         if (p.template.kind, p.template.name) == (template.kind, template.name) and p.peak_rss]
                limit = f"limit {template.memory_limit / 2**20:.0f} MiB" if template.memory_limit else "no limit"
                details.append(f"{template.kind} {template.name}: " + (f"peak RSS {max(peaks) / 2**20:.0f} MiB, {limit}"
                                                                       if peaks else "no sample"))
            report.check("memory", problems, "; ".join(details) + " (not enforced)")
        self.check_api_usage()

    # -- the relay (relay.enabled)

    def check_relay(self, cluster: Cluster) -> None:
        """`helm install` with relay.enabled=true and the access key `peat-mesh-node relay-key`
        derives: the relay pod (the rendered Deployment, on its own address) and the StatefulSet's
        pods, whose PEAT_RELAY_URLS host the cluster DNS resolves to the relay pod. The relay's
        probes answer on its health port; nothing of the formation secret or a broker token is in its
        environment or files; every node's listen connection is admitted (Relay connected) and the
        relay counts them (peat_relay_clients); the relay exits 0 on SIGTERM."""
        report = self.report
        assert self.api is not None
        started = time.monotonic()
        problems: list[str] = []
        done = run([self.image_binary, "relay-key"], check=False,
                   env={"PATH": "/usr/bin:/bin", "PEAT_FORMATION_SECRET": self.formation_secret})
        access_key = done.stdout.strip()
        if done.returncode != 0 or not re.fullmatch(r"[A-Za-z0-9+/]{43}=", access_key):
            report.fail("relay", f"`peat-mesh-node relay-key` exited {done.returncode} and printed {done.stdout.strip()!r} "
                        f"{done.stderr.strip()[-300:]!r}")
            return
        values = {**self.values, "relay": {"enabled": True, "accessKey": access_key}}
        try:
            objects = (self.render or load_render())(values, name=RELEASE, namespace=NAMESPACE)
            nodes = ChartModel(objects, NAMESPACE, self.formation_secret)
            relay = RelayModel(objects, NAMESPACE, nodes, access_key)
        except SimError as error:
            report.fail("relay", f"relay.enabled=true: {error}")
            return
        except Exception as error:  # HelmRenderError and friends
            report.fail("relay", f"relay.enabled=true: render failed: {type(error).__name__}: {error}")
            return
        problems += nodes.problems + relay.problems
        # Enabling the relay changes the nodes' pod template by PEAT_RELAY_URLS and nothing else.
        urls = [i for i in nodes.container.get("env", []) if i.get("name") == "PEAT_RELAY_URLS"]
        if not urls or urls[-1].get("value") != relay.url:
            problems.append(f"the nodes' PEAT_RELAY_URLS is {urls[-1] if urls else None}, not {relay.url}")
        base = self.api.model

        def comparable(model: ChartModel) -> dict[str, Any]:
            template = copy.deepcopy(model.statefulset["spec"]["template"])
            annotations = template.get("metadata", {}).get("annotations") or {}
            for key in [k for k in annotations if k.startswith("checksum/")]:
                del annotations[key]
            for container in template["spec"]["containers"]:
                container["env"] = [i for i in container.get("env", []) if i.get("name") != "PEAT_RELAY_URLS"]
            return template

        if comparable(nodes) != comparable(base):
            problems.append("with relay.enabled the StatefulSet's pod template changes beyond PEAT_RELAY_URLS")
        for note in relay.notes:
            report.note(note)
        if problems:
            report.fail("relay", "; ".join(problems))
            return
        report.note(f"relay: Deployment {relay.name} (args {relay.container.get('args')}, ports {relay.ports}, user "
                    f"{relay.run_as_user}:{relay.run_as_group}, readOnlyRootFilesystem {relay.read_only_root}, "
                    f"{len(relay.mounts)} volume mounts), access key from `peat-mesh-node relay-key` in Secret "
                    f"{nodes.name}-relay-access-key; the nodes' PEAT_RELAY_URLS={relay.url}, resolved by the cluster DNS")

        # The pods, as `helm install` starts them: the relay and the StatefulSet at once.
        for service in relay.of("Service"):
            cluster.services.setdefault(service["metadata"]["name"], service)
        for mount in relay.mounts:
            self.ensure_mount_point(mount["mountPath"])
        relay_pod = cluster.new_deployment_pod(relay)
        cluster.start_pod(relay_pod)
        pods = [cluster.new_pod(i, None, nodes) for i in range(nodes.replicas)]
        for pod in pods:
            cluster.start_pod(pod)
        everyone = [relay_pod, *pods]
        if not wait_until(lambda: all(p.ready for p in everyone) or any(p.proc.poll() is not None for p in everyone), 60) \
                or not all(p.ready for p in everyone):
            report.fail("relay", "not ready within 60 s: " + ", ".join(
                f"{p.label} ready={p.ready} exit={p.proc.poll()}" for p in everyone) + self.relay_log_hint(relay_pod))
            self.stop_relay_pods(cluster, everyone)
            return

        # The probes as the kubelet sends them, on the health port.
        for kind in ("readiness", "liveness", "startup"):
            probe = relay.probes.get(kind)
            if probe is None:
                continue
            try:
                status, body = http_call(self.api.netns, relay_pod.ip, probe.port, "GET", probe.path,
                                         timeout=max(probe.timeout, 2.0),
                                         headers={"User-Agent": "kube-probe/1.30", "Accept": "*/*"})
            except (OSError, http.client.HTTPException) as error:
                problems.append(f"{relay_pod.label} {kind} probe GET {probe.path} :{probe.port}: {type(error).__name__}: {error}")
                continue
            if status != 200:
                problems.append(f"{relay_pod.label} {kind} probe GET {probe.path} :{probe.port}: {status} {body[:160]!r}")

        # Neither the formation secret nor a broker token reaches the relay.
        problems += self.relay_secrets_problems(relay_pod, nodes)

        # Every node's listen connection admitted, and counted by the relay.
        def connected() -> list[str]:
            return [p.label for p in pods
                    if not re.search(rf"Relay connected relay={re.escape(relay.url)}(\s|$)", p.log_text(), re.M)]

        wait_until(lambda: not connected(), 20, 0.25)
        missing = connected()
        for label in missing:
            pod = next(p for p in pods if p.label == label)
            tried = [parse_log_line(line)[1][:200] for line in pod.log_text().splitlines() if "Relay " in line][-2:]
            problems.append(f"{label} logged no 'Relay connected relay={relay.url}'" + (f" (last: {tried})" if tried else ""))
        # The StatefulSet and the relay start together; the relay's name resolves once it is ready.
        unreachable = sum(1 for p in pods if "Relay unreachable" in p.log_text())
        clients: list[float | None] = [None]

        def counted() -> bool:
            clients[0] = self.relay_metric(relay_pod, relay.health_port, "peat_relay_clients")
            return clients[0] == len(pods)

        if not missing and not wait_until(counted, 10, 0.25):
            problems.append(f"{relay_pod.label} /metrics: peat_relay_clients {clients[0]}, expected {len(pods)} (the node pods)")
        refused = [line for line in relay_pod.log_text().splitlines() if "Relay refused a client" in line]
        for pod in pods:
            text = pod.log_text()
            first = text.find("Relay connected")
            if first >= 0 and "Relay disconnected" in text[first:]:
                problems.append(f"{pod.label} logged Relay disconnected while the relay was running")
            if first >= 0 and "Relay unreachable" in text[first:]:
                problems.append(f"{pod.label} logged Relay unreachable after Relay connected while the relay was running")
        if refused:
            problems.append(f"{relay_pod.label} refused {len(refused)} client(s): {refused[0][:300]}")
            self.print_log(relay_pod)

        # SIGTERM with the nodes still attached, then the nodes.
        status, elapsed, exited_before = cluster.delete_pod(relay_pod)
        if exited_before or status != 0 or elapsed > relay.grace:
            how = "had already exited" if exited_before else (
                f"exited with {status}" if status is not None else "was killed after the grace period")
            problems.append(f"{relay_pod.label} {how} on SIGTERM ({elapsed:.1f}s, grace {relay.grace:g}s)")
        for needle in ("Received SIGTERM", "peat-mesh-node relay stopped"):
            if needle not in relay_pod.log_text():
                problems.append(f"{relay_pod.label} did not log {needle!r}")
        for pod in pods:
            pod_status, pod_elapsed, pod_exited = cluster.delete_pod(pod)
            if not pod_exited and (pod_status != 0 or pod_elapsed > nodes.grace):
                problems.append(f"{pod.label}: exit {pod_status} after {pod_elapsed:.1f}s on SIGTERM")
        if problems and not refused:
            problems += [f"relay log: {line}" for line in self.relay_log_hint(relay_pod, raw=True)]
        uid, gid = cluster.user(relay)
        report.check("relay", problems,
                     f"relay.enabled with the `relay-key` access key: {relay_pod.name} {relay_pod.ip} "
                     f"({uid}:{gid}, {'read-only' if relay.read_only_root else 'writable'} root, no service account token) "
                     f"probes {', '.join(p.path for p in relay.probes.values() if p)} 200 on :{relay.health_port}; "
                     "no formation secret or broker token in its environment or files; "
                     f"{len(pods)} nodes logged Relay connected relay={relay.url} (DNS → {relay_pod.ip}"
                     + (f"; {unreachable} first logged Relay unreachable, the relay not ready yet" if unreachable else "")
                     + f"), peat_relay_clients {len(pods)}; exit {status} on SIGTERM after {elapsed:.2f}s; "
                     f"{time.monotonic() - started:.1f}s")

    def relay_metric(self, pod: Pod, port: int | None, name: str) -> float | None:
        assert self.api is not None
        try:
            status, body = http_call(self.api.netns, pod.ip, int(port or 0), "GET", "/metrics",
                                     headers={"Accept": "text/plain"})
        except (OSError, http.client.HTTPException):
            return None
        if status != 200:
            return None
        match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.eE+-]+)$", body.decode("utf-8", "replace"), re.M)
        return float(match.group(1)) if match else None

    def relay_secrets_problems(self, pod: Pod, nodes: ChartModel) -> list[str]:
        """The relay's environment (as given and as the process holds it) and the files it can read
        where anything came from the simulator hold no formation secret and no broker token."""
        assert pod.proc is not None
        problems: list[str] = []
        tokens = self.broker_tokens | ({nodes.broker_token()} if nodes.token_secret else set())
        sensitive = [("the formation secret", self.formation_secret), *(("a broker token", t) for t in sorted(tokens))]
        try:
            with open(f"/proc/{pod.proc.pid}/environ", "rb") as handle:
                held = dict(item.split("=", 1) for item in handle.read().decode("utf-8", "replace").split("\0") if "=" in item)
        except OSError as error:
            problems.append(f"cannot read the relay process' environment: {error}")
            held = {}
        if held and "PEAT_RELAY_ACCESS_KEY" not in held:
            problems.append(f"/proc/{pod.proc.pid}/environ is not the relay's (no PEAT_RELAY_ACCESS_KEY)")
        for origin, env in (("its container environment", pod.env), ("its process environment", held)):
            for name, value in env.items():
                if name in ("PEAT_FORMATION_SECRET", "PEAT_BROKER_TOKEN", "PEAT_BROKER_TOKEN_FILE"):
                    problems.append(f"{pod.label}: {origin} has {name}")
                for what, secret in sensitive:
                    if secret and secret in value:
                        problems.append(f"{pod.label}: {origin} holds {what} (in {name})")
        # Its files: what the kubelet and its volumes give it, the service-account and the nodes'
        # mount points, and the simulator's directory (which must be hidden), read as its user.
        uid, gid = self.cluster.user(pod.template) if self.cluster else (0, 0)
        groups = self.cluster.groups(pod.template) if self.cluster else []
        paths = sorted({"/etc/hosts", "/etc/resolv.conf", SA_MOUNT, self.run_dir,
                        *(m["mountPath"] for m in pod.template.mounts),
                        *(m["mountPath"] for m in nodes.mounts if m["mountPath"] not in ("/tmp", "/"))})
        enter = ["nsenter", f"--target={pod.proc.pid}", "--mount", "--", "setpriv", f"--reuid={uid}", f"--regid={gid}",
                 f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"]
        patterns = "\n".join(s for _, s in sensitive if s) + "\n"
        try:
            found = subprocess.run([*enter, "grep", "-rlsF", "-f", "-", "--", *paths], input=patterns,
                                   capture_output=True, text=True, timeout=30)
            listing = subprocess.run([*enter, "ls", "-A", self.run_dir], capture_output=True, text=True, timeout=10)
            # The same reading finds what is there: its own name in its /etc/hosts.
            control = subprocess.run([*enter, "grep", "-rlsF", "-f", "-", "--", *paths], input=pod.name + "\n",
                                     capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return problems + [f"{pod.label}: reading its files timed out"]
        if control.returncode != 0 or control.stdout.split() != ["/etc/hosts"]:
            problems.append(f"{pod.label}: reading its files as its user in its mount namespace does not work: "
                            f"exit {control.returncode} {(control.stdout + control.stderr).strip()[:200]!r}")
        if found.returncode == 0:
            problems.append(f"{pod.label} can read a secret in {', '.join(found.stdout.split()[:5])}")
        elif found.returncode != 1 and not found.stdout and found.stderr.strip():
            problems.append(f"{pod.label}: grep in its mount namespace: {found.stderr.strip()[:200]}")
        if listing.returncode != 0 or listing.stdout.strip():
            problems.append(f"{pod.label} sees the simulator's directory {self.run_dir}: "
                            f"{(listing.stdout or listing.stderr).split()[:5]}")
        return problems

    def relay_log_hint(self, pod: Pod, raw: bool = False) -> Any:
        lines = [line for line in pod.log_text().splitlines()
                 if parse_log_line(line)[0] in ("WARNING", "WARN", "ERROR", "CRITICAL") or parse_log_line(line)[0] is None]
        lines = [line.strip()[:300] for line in lines][-3:]
        return lines if raw else (f"; relay log: {lines}" if lines else "")

    @staticmethod
    def print_log(pod: Pod) -> None:
        print(f"---- log of {pod.label}", file=sys.stderr)
        for line in pod.log_text().splitlines()[-40:]:
            print(f"   {line}", file=sys.stderr)

    @staticmethod
    def stop_relay_pods(cluster: Cluster, pods: list[Pod]) -> None:
        for pod in pods:
            if pod.name in cluster.pods:
                cluster.delete_pod(pod)

    # -- checks

    def check_pod_api(self, pod: Pod, device_id: str) -> list[str]:
        assert self.api is not None
        model = self.api.model
        problems = []
        readiness = model.probes["readiness"]
        status, body, error = http_json(self.api.netns, pod.ip, readiness.port, "GET", readiness.path)
        if status != 200 or not (body or {}).get("ready"):
            problems.append(f"{pod.label} {readiness.path}: {status} {body or error}")
        status, body, error = http_json(self.api.netns, pod.ip, model.ports["broker"], "GET", "/api/v1/health")
        if status != 200 or (body or {}).get("status") != "healthy" or (body or {}).get("node_id") != pod.name:
            problems.append(f"{pod.label} /api/v1/health: {status} {body or error}")
        status, body, error = http_json(self.api.netns, pod.ip, model.ports["broker"], "GET", "/api/v1/node",
                                        token=model.broker_token())
        if status != 200 or (body or {}).get("device_id") != device_id or (body or {}).get("node_id") != pod.name:
            problems.append(f"{pod.label} /api/v1/node: {status} {body or error} (expected node_id {pod.name} device_id {device_id})")
        return problems

    @staticmethod
    def store_opened(pod: Pod) -> tuple[str, int] | None:
        """(actor_id, documents) of the pod's 'Document store opened' log line."""
        match = re.search(r"Document store opened .*?actor_id=([0-9a-f]+) documents=(\d+)", pod.log_text())
        return (match.group(1), int(match.group(2))) if match else None

    def check_identity_log(self, pod: Pod, device_id: str) -> list[str]:
        match = re.search(r"Mesh started node_id=(\S+) device_id=([0-9a-f]+)", pod.log_text())
        if not match:
            return [f"{pod.label} logged no 'Mesh started'"]
        if match.groups() != (pod.name, device_id):
            return [f"{pod.label} logged Mesh started node_id={match.group(1)} device_id={match.group(2)}, "
                    f"expected {pod.name} {device_id}"]
        return []

    def wait_full_mesh(self, pods: list[Pod], expected: dict[str, str], timeout: float) -> list[str]:
        assert self.api is not None
        broker = self.api.model.ports["broker"]
        last: dict[str, str] = {}

        def connected() -> bool:
            done = True
            for pod in pods:
                status, body, error = http_json(self.api.netns, pod.ip, broker, "GET", "/api/v1/peers",
                                                token=self.api.model.broker_token())
                peers = {p.get("id"): p for p in (body or {}).get("peers", [])} if status == 200 else {}
                missing = [o.name for o in pods if o is not pod and not peers.get(o.name, {}).get("connected")]
                if missing:
                    done = False
                    seen = ", ".join(f"{name} {peers[name].get('state')}" if name in peers else f"{name} absent" for name in missing)
                    last[pod.name] = (f"{pod.label} /api/v1/peers: {seen}" if status == 200
                                      else f"{pod.label} /api/v1/peers: {status} {body or error}")
                else:
                    last.pop(pod.name, None)
            return done

        if not wait_until(connected, timeout, 0.5):
            return list(last.values())
        problems = []
        for pod in pods:
            text = pod.log_text()
            for other in pods:
                if other is pod:
                    continue
                pattern = rf"Peer connected peer={re.escape(other.name)} device_id=([0-9a-f]+) addresses=\[([^\]]*)\]"
                lines = re.findall(pattern, text)
                if not lines:
                    problems.append(f"{pod.label} logged no 'Peer connected peer={other.name}'")
                elif lines[-1][0] != expected[other.name]:
                    problems.append(f"{pod.label} logged Peer connected peer={other.name} device_id={lines[-1][0]}, "
                                    f"expected {expected[other.name]}")
                elif not any(a.strip().startswith(f"{other.ip}:") for a in lines[-1][1].split(",")):
                    problems.append(f"{pod.label} logged Peer connected peer={other.name} addresses=[{lines[-1][1]}], "
                                    f"not its pod IP {other.ip}")
        return problems

    def check_sync_stranger(self, pods: list[Pod]) -> list[str]:
        assert self.api is not None
        sync = self.api.model.ports["sync"]
        problems = []
        for pod in pods:
            for payload in (b"", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
                sock = netns_socket(self.api.netns)
                try:
                    sock.settimeout(2)
                    sock.connect((pod.ip, sync))
                    if payload:
                        sock.sendall(payload)
                        time.sleep(0.2)
                except OSError as error:
                    problems.append(f"{pod.label}: cannot reach the sync port: {error}")
                finally:
                    sock.close()
        time.sleep(1.0)
        for pod in pods:
            if pod.proc is not None and pod.proc.poll() is not None:
                problems.append(f"{pod.label} exited with {pod.proc.returncode} after a plain TCP connection to its sync port")
                continue
            status, body, error = http_json(self.api.netns, pod.ip, self.api.model.ports["broker"], "GET", "/api/v1/health")
            if status != 200:
                problems.append(f"{pod.label} /api/v1/health after a plain TCP connection to its sync port: {status} {body or error}")
        return problems + (self.hints() if problems else [])

    def wait_document(self, pods: list[Pod], doc_id: str, document: dict[str, Any], timeout: float) -> list[str]:
        assert self.api is not None
        broker = self.api.model.ports["broker"]
        last: dict[str, str] = {}

        def everywhere() -> bool:
            done = True
            for pod in pods:
                path = f"/api/v1/documents/{DOC_COLLECTION}/{doc_id}"
                status, body, error = http_json(self.api.netns, pod.ip, broker, "GET", path,
                                                token=self.api.model.broker_token())
                if status == 200 and body == {"collection": DOC_COLLECTION, "id": doc_id, "document": document}:
                    last.pop(pod.name, None)
                else:
                    done = False
                    last[pod.name] = f"{pod.label} GET {DOC_COLLECTION}/{doc_id}: {status} {body or error}"
            return done

        return [] if wait_until(everywhere, timeout, 0.2) else list(last.values())

    def check_api_usage(self) -> None:
        assert self.api is not None and self.cluster is not None
        api = self.api
        stats = api.stats
        problems = []
        for key in ("tls_handshake_failures", "unauthorized", "forbidden", "not_found"):
            if stats.get(key):
                problems.append(f"{stats[key]} {key.replace('_', ' ')}")
        incarnations = sum(1 for pod in self.cluster.history if pod.token)  # the pods with a service account token
        if stats.get("lists", 0) < incarnations:
            problems.append(f"{stats.get('lists', 0)} lists for {incarnations} pod incarnations")
        known = {str(e.rv) for e in api.history} | api.list_versions
        for pod, version in api.watch_versions:
            if version is None or version not in known:
                problems.append(f"{pod} watched from resourceVersion {version!r}, not one the API gave it")
        self.report.check("kubernetes-api", problems,
                          f"{stats.get('lists', 0)} lists, {stats.get('watches', 0)} watches from listed/bookmarked versions, "
                          f"{stats.get('watch_events', 0)} events + {stats.get('bookmarks', 0)} bookmarks streamed; "
                          "over TLS (cluster CA made by openssl), each pod with its own token, authorized by the rendered RBAC")

    def hints(self) -> list[str]:
        """The most frequent WARNING/ERROR/CRITICAL messages of the pod logs, to explain a failure."""
        if self.cluster is None:
            return []
        counts: dict[str, int] = {}
        for pod in self.cluster.history:
            for line in pod.log_text().splitlines():
                level, message = parse_log_line(line)
                if level in ("WARNING", "WARN", "ERROR", "CRITICAL"):
                    key = re.sub(r"\d+\.\d+\.\d+\.\d+(:\d+)?|peat-mesh-\d+", "…", f"{level} {message}")[:240]
                    counts[key] = counts.get(key, 0) + 1
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
        return [f"node logs: {message} (x{n})" for message, n in top]

    def dump_logs(self, pods: list[Pod]) -> None:
        for pod in pods:
            tail = pod.log_text().splitlines()[-15:]
            print(f"---- last lines of {pod.label}" + ("" if self.args.keep_logs else " (--keep-logs DIR keeps the logs)"),
                  file=sys.stderr)
            for line in tail:
                print(f"   {line}", file=sys.stderr)

    # -- cleanup

    def cleanup(self) -> None:
        if self.cluster is not None:
            self.cluster.kill_all()
        if self.api is not None:
            self.api.stop()
        if self.dns is not None:
            self.dns.stop()
        if self.network is not None:
            self.network.cleanup()
        if self.report.failed and self.cluster is not None and not self.args.keep_logs:
            self.dump_logs(list(self.cluster.history))
        if self.run_dir:
            if self.args.keep_logs:
                target = self.args.keep_logs
                os.makedirs(target, exist_ok=True)
                for name in os.listdir(os.path.join(self.run_dir, "logs")):
                    shutil.copy2(os.path.join(self.run_dir, "logs", name), os.path.join(target, name))
                self.report.note(f"logs kept in {target}")
            shutil.rmtree(self.run_dir, ignore_errors=True)
        for path in reversed(self.created_dirs):
            try:
                os.rmdir(path)
            except OSError as error:
                self.report.note(f"could not remove the mount point {path}: {error}")


def main(argv: list[str] | None = None, render: Callable[..., list[dict[str, Any]]] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=DEFAULT_BINARY, help=f"the peat-mesh-node binary (default {DEFAULT_BINARY})")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the pod and API double logs to DIR")
    parser.add_argument("--grant-net-admin", action="store_true",
                        help="diagnostic, not a cluster configuration: let the node keep CAP_NET_ADMIN (see the report)")
    parser.add_argument("--timeout", type=int, default=OVERALL_TIMEOUT,
                        help=f"overall limit in seconds (default {OVERALL_TIMEOUT})")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("pod_sim.py: needs root (network namespaces, bind mounts, setns); run it with sudo", file=sys.stderr)
        return 2
    tools = ("ip", "unshare", "nsenter", "openssl", "setpriv", "mount", "hostname", "awk", "sh", "grep")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        print(f"pod_sim.py: missing tools: {', '.join(missing)} (iproute2, util-linux, openssl)", file=sys.stderr)
        return 2
    args.binary = os.path.abspath(args.binary)
    if not os.access(args.binary, os.X_OK):
        print(f"pod_sim.py: {args.binary} is not an executable (build it, or pass --binary)", file=sys.stderr)
        return 2

    simulation = Simulation(args, render)

    def interrupt(signum: int, _frame: Any) -> None:
        raise Interrupted("overall timeout" if signum == signal.SIGALRM else signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(signum, interrupt)
    signal.alarm(args.timeout)
    started = time.monotonic()
    try:
        simulation.run()
    except Interrupted as reason:
        after = f" after {args.timeout}s" if str(reason) == "overall timeout" else ""
        simulation.report.fail("run", f"stopped: {reason}{after}")
    except SimError as error:
        simulation.report.fail("run", str(error))
    except Exception:  # a bug here, reported rather than hidden
        simulation.report.fail("run", traceback.format_exc().strip().replace("\n", " | "))
    finally:
        signal.alarm(0)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        simulation.cleanup()
    failed = simulation.report.failed
    total = len(simulation.report.results)
    print(f"pod_sim: {total - len(failed)}/{total} checks passed in {time.monotonic() - started:.1f}s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
