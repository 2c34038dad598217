#!/usr/bin/env python3
"""DDIL benchmarks: three `peat-mesh-node` processes in network namespaces joined by a slow, lossy link.

usage: python3 Benchmarks/ddil_bench.py --binary PATH [--baseline-binary PATH] [--profiles 256k,64k]
           [--scenarios idle,beacons,backlog,outage,flap] [--seconds 30] [--extra-env K=V ...] [--keep-logs]

Needs root, iproute2 (ip, tc) and iptables. Each node runs in its own network namespace with two links:

  mesh   eth0, 198.51.100.<i+1>/24 (TEST-NET-2), a veth pair whose other end is a port of a Linux bridge in
         a "hub" namespace (never the root namespace). Each direction is rate-limited by a token bucket
         (`tbf rate R burst 4kb latency 400ms`: on eth0 for the uplink, on the hub-side veth for the
         downlink) and loses packets at random with probability p: `iptables -A INPUT -i eth0 -m statistic
         --mode random --probability p -j DROP` in every node namespace, so a packet from A to B is dropped
         at B's INPUT with p and one from B to A at A's INPUT with p - p each way, exactly once. (A drop at
         the sender's OUTPUT is not loss: the sending TCP gets EPERM and simply tries again later.) netem is
         not in this kernel, so there is no added delay: latency is NOT emulated. GSO is off on the mesh
         veths (gso_max_segs 1), so every counted packet is one wire frame.
  probe  eth1, an unshaped veth pair to the root namespace, one /30 per node in 203.0.113.0/24 (TEST-NET-3;
         TEST-NET-1 is this machine's own uplink network). This process talks HTTP to each broker over it,
         so measuring costs the mesh link nothing. Nodes bind 0.0.0.0 (PEAT_BIND_HOST: broker and sync)
         and their static peers are `node-j@198.51.100.<j+1>:11204`, so sync runs over eth0 only.

Wire bytes are read from the mesh veths' counters (`ip -s -j link`: stats64) and reported as IP bytes =
Ethernet bytes - 14 x packets. Packets dropped by the INPUT rule were on the wire and are counted in rx.

Profiles: 256k = 256 kbit/s + 10 % loss each way; 64k = 64 kbit/s + 30 % loss each way. For each profile
(and each binary: --baseline-binary runs every scenario with a second binary too, in the same run) a fresh
topology and mesh (fresh data directories and formation secret) runs, in order:

  idle     after the mesh forms (every node sees 2 connected peers, up to 90 s) and 5 s of settling:
           node-0's mesh IP bytes (tx+rx) over --seconds, per minute, per node and per peer link. Also run
           (first) whenever beacons or backlog is, whose byte figures subtract this idle rate.
  beacons  node-0 PUTs a 5-field document beacons/<id> (LatestOnly by default) at 5 Hz for --seconds; a
           thread polls node-1 (and one node-2) every 10 ms and records when each seq is first seen; a seq
           overtaken by a newer one counts as delivered when any seq >= it is seen (superseded). Lag =
           first seen - start of its PUT: p50/p95/max at node-1. Wire bytes per update per peer =
           (delta node-0 eth0 tx+rx IP bytes - idle rate x window) / (updates x 2 peers), packets likewise,
           against the beacon's JSON size (the theoretical minimum).
  backlog  the same beacons while another thread PUTs 256 KiB of FullHistory reports (reports/<id>,
           ~1 KiB each) into node-0 as fast as the broker takes them, from the start; the same lag figures,
           then the time until node-1 and node-2 hold every report (drained; deadline 300 s).
  outage   node-2's eth0 down for 20 s while node-1 writes one ~1 KiB FullHistory report a second
           (outage_reports/<id>); then eth0 up: catch-up = link up until node-2 lists every one of them
           (deadline 120 s), and node-2's eth0 IP bytes (tx+rx) over the catch-up against their size.
  flap     node-0 PUTs one large document (attachments/<id>: a ~1 MiB string, just under the broker's
           1 MiB body limit; 256 KiB on the 64k profile, where 1 MiB would need >= 131 s of a perfect
           link) while node-1's eth0 flaps (2 s down, 3 s up) until node-1 serves it with the right
           SHA-256 (deadline 600 s): time to arrive, and the IP bytes the hub sent toward node-1 (its
           hub-side veth's tx: everything that reached node-1's link, from node-0 or node-2) against the
           document's size.

Goals (256k profile): beacon lag p95 < 1 s (under backlog too), <= 120 wire bytes per update per peer,
catch-up < 10 s. Prints one `RESULT {json}` line per measurement and a summary table. A missed goal or a
deadline that passes is reported, not a failure; the exit status is 1 only when a node exits, the mesh
does not form, the broker refuses a request or a phase cannot run at all. Every namespace and node is
removed on exit, SIGINT and SIGTERM; namespaces `ddil-<pid>-*` left by an earlier run whose process is
gone are removed at start. Python 3 standard library only.
"""
import argparse
import atexit
import base64
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The HTTP and reporting helpers of the loopback benchmarks (every request there and here goes to an
# address this run created, never through an http_proxy from the environment).
import mesh_bench  # noqa: E402
from mesh_bench import BenchError, emit, http, metric_sum, percentile, rounded  # noqa: E402

BROKER_PORT = 8081
SYNC_PORT = 11204
HTTP_TIMEOUT = 5.0
NODES = 3
PREFIX = "ddil-"
MESH_NET = "198.51.100."  # TEST-NET-2: the shaped mesh link
PROBE_NET = "203.0.113."  # TEST-NET-3: the unshaped probe link, a /30 per node
ETH_HEADER = 14
MESH_TIMEOUT_S = 90.0
SETTLE_S = 5.0
BEACON_HZ = 5
BACKLOG_BYTES = 256 * 1024
REPORT_BYTES = 1024
OUTAGE_S = 20.0
CATCHUP_DEADLINE_S = 120.0
DRAIN_DEADLINE_S = 300.0
FLAP_DEADLINE_S = 600.0
FLAP_DOWN_S, FLAP_UP_S = 2.0, 3.0
MAX_BODY = 1024 * 1024  # the broker's request body limit (Broker.Configuration.maximumBodySize)
PROFILES = {
    "256k": {"rate": "256kbit", "bps": 256_000, "loss": 0.10, "flap_doc": MAX_BODY - 1024, "goals": True},
    "64k": {"rate": "64kbit", "bps": 64_000, "loss": 0.30, "flap_doc": 256 * 1024, "goals": False},
}
GOAL_LAG_P95_S = 1.0
GOAL_BYTES_PER_UPDATE = 120
GOAL_CATCHUP_S = 10.0
SCENARIOS = ["idle", "beacons", "backlog", "outage", "flap"]
def note(text):
    sys.stderr.write(f"[ddil {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def document_of(raw):
    """The document object of a GET answer ({"document": {...}} or the object itself), or None."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    return body.get("document") if isinstance(body.get("document"), dict) else body


def sh(*cmd, check=True, timeout=30):
    """Runs a command (no shell); raises BenchError when `check` and it fails."""
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{' '.join(cmd)}` did not finish in {timeout} s")
    if check and done.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` failed: {(done.stderr or done.stdout).strip()}")
    return done


def sleep_until(t):
    delay = t - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


# --- the network: namespaces, veths, bridge, shaping ------------------------------------------------------


def netns_names():
    out = sh("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def is_ddil_run(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"ddil_bench" in f.read()
    except OSError:
        return False


def kill_namespace_processes(ns):
    for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def remove_stale():
    """Removes ddil-<pid>-* namespaces (and root-side probe veths) of runs whose process is gone."""
    for ns in netns_names():
        m = re.match(r"^ddil-(\d+)-", ns)
        if not m:
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and is_ddil_run(pid):
            sys.exit(f"ddil_bench: another run (pid {pid}) is in progress (namespace {ns}); wait for it or stop it")
        note(f"removing stale namespace {ns}")
        kill_namespace_processes(ns)
        sh("ip", "netns", "del", ns, check=False)
    links = sh("ip", "-o", "link", "show", check=False).stdout
    for dev in re.findall(r"^\d+: (ddil\d+p\d+)[@:]", links, re.M):
        note(f"removing stale veth {dev}")
        sh("ip", "link", "del", dev, check=False)


def stats(ns, dev):
    """(tx IP bytes, rx IP bytes, tx packets, rx packets) of `dev` in `ns`."""
    out = sh("ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev).stdout
    s = json.loads(out)[0]["stats64"]
    tx, rx = s["tx"], s["rx"]
    return (tx["bytes"] - ETH_HEADER * tx["packets"], rx["bytes"] - ETH_HEADER * rx["packets"],
            tx["packets"], rx["packets"])


def delta(after, before):
    return tuple(a - b for a, b in zip(after, before))


class Topology:
    """Hub namespace with a bridge, NODES node namespaces with a shaped eth0 (mesh) and a plain eth1 (probe)."""

    def __init__(self, profile):
        self.profile = profile
        tag = f"ddil-{os.getpid()}"
        self.hub = f"{tag}-hub"
        self.ns = [f"{tag}-n{i}" for i in range(NODES)]
        self.mesh_ip = [f"{MESH_NET}{i + 1}" for i in range(NODES)]
        self.host_ip = [f"{PROBE_NET}{4 * i + 1}" for i in range(NODES)]
        self.probe_ip = [f"{PROBE_NET}{4 * i + 2}" for i in range(NODES)]
        self.host_dev = [f"ddil{os.getpid()}p{i}" for i in range(NODES)]
        self.hub_dev = [f"h{i}" for i in range(NODES)]
        self.created = []

    def create(self):
        p = PROFILES[self.profile]
        tbf = ["tbf", "rate", p["rate"], "burst", "4kb", "latency", "400ms"]
        for ns in [self.hub] + self.ns:
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            # No IPv6 (router solicitations, MLD) on the measured links.
            sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        for i, ns in enumerate(self.ns):
            sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", self.hub_dev[i], "netns", self.hub)
            sh("ip", "-n", ns, "link", "set", "eth0", "gso_max_segs", "1", "gso_max_size", "1500")
            sh("ip", "-n", self.hub, "link", "set", self.hub_dev[i], "gso_max_segs", "1", "gso_max_size", "1500")
            sh("ip", "-n", ns, "addr", "add", f"{self.mesh_ip[i]}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", self.hub, "link", "set", self.hub_dev[i], "master", "br0")
            sh("ip", "-n", self.hub, "link", "set", self.hub_dev[i], "up")
            sh("tc", "-n", ns, "qdisc", "add", "dev", "eth0", "root", *tbf)
            sh("tc", "-n", self.hub, "qdisc", "add", "dev", self.hub_dev[i], "root", *tbf)
            sh("ip", "netns", "exec", ns, "iptables", "-w", "5", "-A", "INPUT", "-i", "eth0", "-m", "statistic",
               "--mode", "random", "--probability", str(p["loss"]), "-j", "DROP")
            sh("ip", "link", "add", self.host_dev[i], "type", "veth", "peer", "name", "eth1", "netns", ns)
            sh("ip", "addr", "add", f"{self.host_ip[i]}/30", "dev", self.host_dev[i])
            sh("ip", "link", "set", self.host_dev[i], "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.probe_ip[i]}/30", "dev", "eth1")
            sh("ip", "-n", ns, "link", "set", "eth1", "up")

    def link(self, i, up):
        sh("ip", "-n", self.ns[i], "link", "set", "eth0", "up" if up else "down")

    def mesh_stats(self, i):
        return stats(self.ns[i], "eth0")

    def downlink_stats(self, i):
        """The hub-side veth of node i: its tx is what was sent toward node i."""
        return stats(self.hub, self.hub_dev[i])

    def destroy(self):
        for ns in reversed(self.created):
            kill_namespace_processes(ns)  # only our nodes live there; they were stopped before
            sh("ip", "netns", "del", ns, check=False)
        self.created = []
        for dev in self.host_dev:  # gone with their peers; make sure
            if os.path.exists(f"/sys/class/net/{dev}"):
                sh("ip", "link", "del", dev, check=False)


# --- nodes ---------------------------------------------------------------------------------------------


class Node(mesh_bench.Node):
    """One peat-mesh-node in its namespace, reached over the probe link (url, tail and check_alive
    are mesh_bench's)."""

    def __init__(self, ctx, topo, index, binary, secret):
        self.ctx, self.topo, self.index = ctx, topo, index
        self.name = f"node-{index}"
        self.ns = topo.ns[index]
        self.host = topo.probe_ip[index]
        self.binary = binary
        self.data_dir = tempfile.mkdtemp(prefix=f"{self.name}-", dir=ctx.root)
        self.log_path = os.path.join(ctx.root, f"{ctx.run_label}-{self.name}.log")
        peers = [f"node-{j}@{topo.mesh_ip[j]}:{SYNC_PORT}" for j in range(NODES) if j != index]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PEAT_")}
        self.env.update(
            PEAT_FORMATION_SECRET=secret, HOSTNAME=self.name, PEAT_DISCOVERY="static",
            PEAT_STATIC_PEERS=",".join(peers), PEAT_DATA_DIR=self.data_dir, PEAT_BIND_HOST="0.0.0.0",
            PEAT_BROKER_PORT=str(BROKER_PORT), PEAT_SYNC_PORT=str(SYNC_PORT), PEAT_LOG_LEVEL="warning")
        self.env.update(ctx.extra_env)
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, self.binary], env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout=30.0):
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if http("GET", self.url("/api/v1/ready"), timeout=1.0)[0] == 200:
                return
            self.check_alive()
            time.sleep(0.05)
        raise BenchError(f"{self.name} not ready after {timeout:.0f} s")

    def connected_peers(self):
        status, raw = http("GET", self.url("/api/v1/peers"))
        if status != 200:
            return set()
        try:
            body = json.loads(raw)
        except ValueError:
            return set()
        return {p.get("id") for p in body.get("peers", []) if p.get("connected")}

    def metrics(self):
        status, raw = http("GET", self.url("/metrics"))
        return raw.decode(errors="replace") if status == 200 else ""

    def put(self, collection, doc_id, body=None, raw_body=None, timeout=HTTP_TIMEOUT):
        status, raw = http("PUT", self.url(f"/api/v1/documents/{collection}/{doc_id}"), body, timeout=timeout, raw_body=raw_body)
        if status not in (200, 201):
            self.check_alive()
            raise BenchError(f"{self.name}: PUT {collection}/{doc_id} answered {status}: {raw[:200]!r}")

    def get(self, collection, doc_id, timeout=HTTP_TIMEOUT):
        return http("GET", self.url(f"/api/v1/documents/{collection}/{doc_id}"), timeout=timeout)

    def ids(self, collection):
        """Every live document ID in `collection` (listing pages of 1000), or None if the broker did not answer."""
        ids, cursor = set(), None
        for _ in range(100):
            path = f"/api/v1/documents/{collection}?limit=1000" + (f"&cursor={urllib.parse.quote(cursor, safe='')}" if cursor else "")
            status, raw = http("GET", self.url(path), timeout=10.0)
            if status != 200:
                return None
            try:
                body = json.loads(raw)
            except ValueError:
                return None
            ids |= {d.get("_id") for d in body.get("documents", [])}
            cursor = body.get("next_cursor")
            if not cursor:
                return ids
        return ids

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=10)
            if code != 0:
                note(f"warning: {self.name} exited with {code} on SIGTERM")
        except subprocess.TimeoutExpired:
            note(f"warning: {self.name} ignored SIGTERM for 10 s; killing it")
            self.process.kill()
            self.process.wait()

    def log_summary(self):
        """(count of WARNING/ERROR/CRITICAL lines, the most frequent messages) of this node's log."""
        counts, messages = {}, {}
        try:
            with open(self.log_path, errors="replace") as log:
                for line in log:
                    m = re.match(r"^\S+ (WARNING|WARN|ERROR|CRITICAL) (\S+): (.*)$", line.strip())
                    if not m:
                        continue
                    counts[m.group(1)] = counts.get(m.group(1), 0) + 1
                    text = re.sub(r" \S+=\S+", "", m.group(3))[:120]
                    messages[text] = messages.get(text, 0) + 1
        except OSError:
            pass
        top = sorted(messages.items(), key=lambda kv: -kv[1])[:5]
        return counts, top


class Cluster:
    """A topology and NODES nodes of one binary; everything removed on exit from the `with`."""

    def __init__(self, ctx, profile, binary):
        self.ctx, self.profile = ctx, profile
        self.topo = Topology(profile)
        secret = base64.b64encode(os.urandom(32)).decode()
        self.nodes = [Node(ctx, self.topo, i, binary, secret) for i in range(NODES)]
        self.idle_rate = None  # (IP bytes/s, packets/s, sync payload bytes/s) on node-0's eth0
        ctx.live.append(self)

    def __enter__(self):
        try:
            self.topo.create()
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()
        self.topo.destroy()
        if self in self.ctx.live:
            self.ctx.live.remove(self)

    def check_alive(self):
        for node in self.nodes:
            node.check_alive()

    def wait_mesh(self, timeout=MESH_TIMEOUT_S):
        """Seconds until every node reports the other NODES-1 connected; BenchError after `timeout`."""
        start = time.perf_counter()
        while True:
            connected = [len(n.connected_peers()) for n in self.nodes]
            if all(c == NODES - 1 for c in connected):
                return time.perf_counter() - start
            self.check_alive()
            if time.perf_counter() - start > timeout:
                raise BenchError(f"mesh not formed after {timeout:.0f} s: connected peers per node {connected}, want {NODES - 1}")
            time.sleep(0.25)

    def disconnections(self):
        return [int(metric_sum(n.metrics(), "peat_transport_disconnections_total") or 0) for n in self.nodes]


# --- scenarios -----------------------------------------------------------------------------------------


def sync_sent(node):
    return metric_sum(node.metrics(), "peat_mesh_sync_sent_bytes_total")


def scenario_idle(cluster, seconds):
    time.sleep(SETTLE_S)
    before, sent0, t0 = [cluster.topo.mesh_stats(i) for i in range(NODES)], [sync_sent(n) for n in cluster.nodes], time.perf_counter()
    time.sleep(seconds)
    after, sent1, t1 = [cluster.topo.mesh_stats(i) for i in range(NODES)], [sync_sent(n) for n in cluster.nodes], time.perf_counter()
    cluster.check_alive()
    dur = t1 - t0
    d = [delta(a, b) for a, b in zip(after, before)]
    node0_bytes, node0_pkts = d[0][0] + d[0][1], d[0][2] + d[0][3]
    payloads = [None if a is None or b is None else a - b for a, b in zip(sent1, sent0)]
    payload = payloads[0]
    cluster.idle_rate = (node0_bytes / dur, node0_pkts / dur, None if payload is None else payload / dur)
    per_min = node0_bytes / dur * 60
    return {
        "seconds": round(dur, 1), "node0_ip_bytes_per_min": round(per_min), "per_peer_link_ip_bytes_per_min": round(per_min / 2),
        "node0_packets_per_min": round(node0_pkts / dur * 60, 1),
        "node0_sync_payload_sent_bytes_per_min": None if payload is None else round(payload / dur * 60),
        "all_nodes_ip_bytes_per_min": [round((x[0] + x[1]) / dur * 60) for x in d],
        "all_nodes_sync_payload_sent_bytes_per_min": [None if x is None else round(x / dur * 60) for x in payloads]}


class Poller(threading.Thread):
    """Polls one node's beacon document every `interval` and records when each seq is first seen."""

    def __init__(self, node, collection, doc_id, interval=0.01):
        super().__init__(daemon=True)
        self.node, self.collection, self.doc_id, self.interval = node, collection, doc_id, interval
        self.first_seen = {}
        self.highest = -1
        self.polls = 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            status, raw = self.node.get(self.collection, self.doc_id, timeout=2.0)
            now = time.perf_counter()
            self.polls += 1
            if status == 200:
                doc = document_of(raw)
                seq = doc.get("seq") if doc else None
                if isinstance(seq, int) and seq not in self.first_seen:
                    self.first_seen[seq] = now
                    self.highest = max(self.highest, seq)
            self.stopping.wait(self.interval)

    def stop(self):
        self.stopping.set()
        self.join(10)


class DrainWatcher(threading.Thread):
    """Records, per node, when it first holds every one of `ids` (polls the last ID, then lists the collection)."""

    def __init__(self, nodes, collection, ids, t0):
        super().__init__(daemon=True)
        self.nodes, self.collection, self.ids, self.t0 = nodes, collection, ids, t0
        self.done = {}
        self.stopping = threading.Event()

    def run(self):
        want = set(self.ids)
        while not self.stopping.is_set() and len(self.done) < len(self.nodes):
            for node in self.nodes:
                if node.name in self.done:
                    continue
                if node.get(self.collection, self.ids[-1], timeout=5.0)[0] != 200:
                    continue
                have = node.ids(self.collection)
                if have is not None and want <= have:
                    self.done[node.name] = time.perf_counter() - self.t0
            self.stopping.wait(0.25)

    def stop(self):
        self.stopping.set()
        self.join(30)


def lag_figures(put_times, first_seen):
    """Lags (s) of every sent seq: delivered when any seq >= it is first seen; plus counts."""
    best, lags, superseded, lost = math.inf, [], 0, 0
    for seq in sorted(put_times, reverse=True):
        if seq in first_seen:
            best = min(best, first_seen[seq])
        elif best < math.inf:
            superseded += 1
        if best == math.inf:
            lost += 1
        else:
            lags.append(best - put_times[seq])
    if not lags:
        return {"delivered": 0, "superseded": superseded, "undelivered": lost,
                "lag_p50_s": None, "lag_p95_s": None, "lag_max_s": None}
    return {"delivered": len(lags), "superseded": superseded, "undelivered": lost,
            "lag_p50_s": round(percentile(lags, 0.5), 3), "lag_p95_s": round(percentile(lags, 0.95), 3),
            "lag_max_s": round(max(lags), 3)}


def beacon_body(seq):
    return {"lat": round(48.137154 + seq * 1e-5, 6), "lon": round(11.576124 + seq * 1e-5, 6),
            "alt": round(519.0 + (seq % 50) * 0.1, 1), "heading": round((seq * 7.5) % 360, 1), "seq": seq}


def report_body(i, prefix):
    filler = base64.b64encode(os.urandom(REPORT_BYTES)).decode()
    body = {"n": i, "kind": prefix, "text": ""}
    overhead = len(json.dumps(body, separators=(",", ":")))
    body["text"] = filler[:REPORT_BYTES - overhead]
    return body


def compact(body):
    return json.dumps(body, separators=(",", ":")).encode()


def scenario_beacons(cluster, seconds, backlog=False):
    n0, n1, n2 = cluster.nodes
    doc_id = "beacon-backlog" if backlog else "beacon-plain"
    readers = [Poller(n1, "beacons", doc_id), Poller(n2, "beacons", doc_id, interval=0.02)]
    for r in readers:
        r.start()
    backlog_state = {"accepted": 0, "done_s": None, "error": None, "ids": set(), "bytes": 0}
    updates = int(round(seconds * BEACON_HZ))

    def push_backlog(t_start):
        try:
            for i in range(BACKLOG_BYTES // REPORT_BYTES):
                raw = compact(report_body(i, "backlog"))
                n0.put("reports", f"bl-{i}", raw_body=raw, timeout=30.0)
                backlog_state["accepted"] += 1
                backlog_state["ids"].add(f"bl-{i}")
                backlog_state["bytes"] += len(raw)
            backlog_state["done_s"] = time.perf_counter() - t_start
        except BenchError as error:
            backlog_state["error"] = str(error)

    before, sent0, disc0 = cluster.topo.mesh_stats(0), sync_sent(n0), cluster.disconnections()
    t_start = time.perf_counter()
    pusher, drain = None, None
    if backlog:
        pusher = threading.Thread(target=push_backlog, args=(t_start,), daemon=True)
        pusher.start()
        drain = DrainWatcher([n1, n2], "reports", [f"bl-{i}" for i in range(BACKLOG_BYTES // REPORT_BYTES)], t_start)
        drain.start()
    put_times, put_ms, sizes = {}, [], []
    for seq in range(updates):
        sleep_until(t_start + seq / BEACON_HZ)
        raw = compact(beacon_body(seq))
        t = time.perf_counter()
        n0.put("beacons", doc_id, raw_body=raw)
        put_ms.append((time.perf_counter() - t) * 1000)
        put_times[seq] = t
        sizes.append(len(raw))
    t_last = time.perf_counter()
    last = updates - 1
    deadline = t_last + 30.0
    while time.perf_counter() < deadline and not all(r.highest >= last for r in readers):
        time.sleep(0.05)
    time.sleep(0.5)  # the last acknowledgements
    after, sent1, t_end = cluster.topo.mesh_stats(0), sync_sent(n0), time.perf_counter()
    for r in readers:
        r.stop()
    cluster.check_alive()
    window = t_end - t_start
    result = {"updates": updates, "hz": BEACON_HZ, "put_p50_ms": round(percentile(put_ms, 0.5), 1),
              "put_max_ms": round(max(put_ms), 1), "window_s": round(window, 1),
              "node1_polls": readers[0].polls}
    result.update({f"node1_{k}": v for k, v in lag_figures(put_times, readers[0].first_seen).items()})
    node2 = lag_figures(put_times, readers[1].first_seen)
    result.update({"node2_lag_p50_s": node2["lag_p50_s"], "node2_lag_p95_s": node2["lag_p95_s"],
                   "node2_lag_max_s": node2["lag_max_s"], "node2_undelivered": node2["undelivered"]})
    d = delta(after, before)
    minimum = sum(sizes) / len(sizes)
    result["beacon_json_bytes"] = round(minimum, 1)
    if not backlog:
        idle_bps, idle_pps, idle_payload = cluster.idle_rate or (0.0, 0.0, 0.0)
        extra_bytes = d[0] + d[1] - idle_bps * window
        extra_pkts = d[2] + d[3] - idle_pps * window
        per_update = extra_bytes / (updates * (NODES - 1))
        result.update({
            "node0_ip_bytes": d[0] + d[1], "idle_subtracted_bytes": round(idle_bps * window),
            "wire_bytes_per_update_per_peer": round(per_update, 1),
            "packets_per_update_per_peer": round(extra_pkts / (updates * (NODES - 1)), 2),
            "ratio_to_minimum": round(per_update / minimum, 2)})
        if sent0 is not None and sent1 is not None:
            payload = sent1 - sent0 - (idle_payload or 0.0) * window
            result["sync_payload_sent_bytes_per_update_per_peer"] = round(payload / (updates * (NODES - 1)), 1)
    else:
        result["node0_ip_bytes_incl_backlog"] = d[0] + d[1]
        pusher.join(max(1.0, DRAIN_DEADLINE_S - (time.perf_counter() - t_start)))
        if backlog_state["error"]:
            raise BenchError(f"backlog: {backlog_state['error']}")
        if pusher.is_alive():
            raise BenchError(f"backlog: only {backlog_state['accepted']} reports accepted in {DRAIN_DEADLINE_S:.0f} s")
        result["backlog_reports"] = backlog_state["accepted"]
        result["backlog_bytes"] = backlog_state["bytes"]
        result["backlog_accepted_s"] = round(backlog_state["done_s"], 2)
        # Until node-1 and node-2 hold every report: the next phase starts on a quiet link.
        while len(drain.done) < 2 and time.perf_counter() - t_start < DRAIN_DEADLINE_S:
            cluster.check_alive()
            time.sleep(0.5)
        drain.stop()
        result["backlog_drained_node1_s"] = rounded(drain.done.get(n1.name), 1)
        result["backlog_drained_node2_s"] = rounded(drain.done.get(n2.name), 1)
        result["backlog_drained"] = len(drain.done) == 2
        if len(drain.done) < 2:
            result["backlog_missing"] = {n.name: len(set(drain.ids) - (n.ids("reports") or set())) for n in (n1, n2)}
        else:
            # Wire bytes per report byte per peer, beacons included (they are ~1 % of it), until drained.
            end = max(drain.done.values())
            if end <= window:
                idle_bps = (cluster.idle_rate or (0.0,))[0]
                result["backlog_wire_ratio_incl_beacons"] = round(
                    (d[0] + d[1] - idle_bps * window) / ((NODES - 1) * backlog_state["bytes"]), 2)
    result["disconnections"] = [a - b for a, b in zip(cluster.disconnections(), disc0)]
    return result


def scenario_outage(cluster):
    n0, n1, n2 = cluster.nodes
    collection, ids, total = "outage_reports", [], 0
    disc0 = cluster.disconnections()
    cluster.topo.link(2, up=False)
    try:
        t_down = time.perf_counter()
        for i in range(int(OUTAGE_S)):
            sleep_until(t_down + i)
            raw = compact(report_body(i, "outage"))
            n1.put(collection, f"o-{i}", raw_body=raw)
            ids.append(f"o-{i}")
            total += len(raw)
        sleep_until(t_down + OUTAGE_S)
        before = cluster.topo.mesh_stats(2)
    finally:
        cluster.topo.link(2, up=True)
    t_up = time.perf_counter()
    want, caught_up, reconnected, have = set(ids), None, None, set()
    while time.perf_counter() - t_up < CATCHUP_DEADLINE_S:
        if reconnected is None and len(n2.connected_peers()) == NODES - 1:
            reconnected = time.perf_counter() - t_up
        have = n2.ids(collection) or set()
        if want <= have:
            caught_up = time.perf_counter() - t_up
            break
        cluster.check_alive()
        time.sleep(0.1)
    after = cluster.topo.mesh_stats(2)
    cluster.check_alive()
    d = delta(after, before)
    moved = d[0] + d[1]
    return {"outage_s": OUTAGE_S, "reports": len(ids), "reports_bytes": total,
            "caught_up": caught_up is not None, "catchup_s": rounded(caught_up, 2),
            "reconnected_s": rounded(reconnected, 2), "missing": len(want - have),
            "node2_ip_bytes_during_catchup": moved, "node2_packets_during_catchup": d[2] + d[3],
            "bytes_ratio_to_reports": round(moved / total, 2),
            "disconnections": [a - b for a, b in zip(cluster.disconnections(), disc0)]}


class Flapper(threading.Thread):
    """Takes node i's eth0 down for FLAP_DOWN_S and up for FLAP_UP_S, repeatedly, until stop(); leaves it up."""

    def __init__(self, topo, index):
        super().__init__(daemon=True)
        self.topo, self.index = topo, index
        self.stopping = threading.Event()
        self.cycles = 0
        self.error = None

    def run(self):
        try:
            while not self.stopping.is_set():
                self.topo.link(self.index, up=False)
                self.stopping.wait(FLAP_DOWN_S)
                self.topo.link(self.index, up=True)
                self.cycles += 1
                self.stopping.wait(FLAP_UP_S)
        except BenchError as error:
            self.error = str(error)
        finally:
            try:
                self.topo.link(self.index, up=True)
            except BenchError:
                pass

    def stop(self):
        self.stopping.set()
        self.join(30)


def scenario_flap(cluster):
    n0, n1, _ = cluster.nodes
    size = PROFILES[cluster.profile]["flap_doc"]
    shell = {"sha256": "0" * 64, "size": 0, "blob": ""}
    blob_len = size - len(compact(shell)) - 8
    blob = base64.b64encode(os.urandom(blob_len)).decode()[:blob_len]
    digest = hashlib.sha256(blob.encode()).hexdigest()
    raw = compact({"sha256": digest, "size": blob_len, "blob": blob})
    if len(raw) > MAX_BODY:
        raise BenchError(f"flap document of {len(raw)} bytes is over the broker's limit")
    doc_id = f"big-{cluster.profile}"
    disc0 = cluster.disconnections()
    down0, up0, n0_0 = cluster.topo.downlink_stats(1), cluster.topo.mesh_stats(1), cluster.topo.mesh_stats(0)
    flapper = Flapper(cluster.topo, 1)
    flapper.start()
    arrived, polls = None, 0
    try:
        t0 = time.perf_counter()
        n0.put("attachments", doc_id, raw_body=raw, timeout=60.0)
        put_s = time.perf_counter() - t0
        while time.perf_counter() - t0 < FLAP_DEADLINE_S:
            status, body = n1.get("attachments", doc_id, timeout=30.0)
            polls += 1
            if status == 200:
                doc = document_of(body)
                if doc and doc.get("sha256") == digest and hashlib.sha256(str(doc.get("blob", "")).encode()).hexdigest() == digest:
                    arrived = time.perf_counter() - t0
                    break
            cluster.check_alive()
            time.sleep(0.5)
    finally:
        flapper.stop()
    if flapper.error:
        raise BenchError(f"flap: {flapper.error}")
    down1, up1, n0_1 = cluster.topo.downlink_stats(1), cluster.topo.mesh_stats(1), cluster.topo.mesh_stats(0)
    cluster.check_alive()
    toward = delta(down1, down0)
    node1 = delta(up1, up0)
    node0 = delta(n0_1, n0_0)
    return {"document_bytes": len(raw), "arrived": arrived is not None, "arrive_s": rounded(arrived, 1),
            "deadline_s": FLAP_DEADLINE_S, "put_s": round(put_s, 2), "flap_cycles": flapper.cycles,
            "ip_bytes_toward_node1": toward[0], "packets_toward_node1": toward[2],
            "ratio_toward_node1_to_document": round(toward[0] / len(raw), 2),
            "node1_ip_bytes_sent": node1[0], "node0_ip_bytes_sent": node0[0],
            "ratio_node0_sent_to_document": round(node0[0] / len(raw), 2),
            "disconnections": [a - b for a, b in zip(cluster.disconnections(), disc0)]}


# --- driver --------------------------------------------------------------------------------------------


class Context:
    def __init__(self, root, extra_env):
        self.root, self.extra_env = root, extra_env
        self.live = []  # clusters to close on exit
        self.run_label = ""
        self.results = {}  # (profile, label) -> {scenario: result dict or {"error": ...}}
        self.failed = 0
        self.interrupted = False

    def cleanup(self):
        for cluster in list(self.live):
            try:
                cluster.close()
            except Exception as error:  # keep removing the rest
                note(f"cleanup: {error}")


def run_cluster(ctx, profile, label, binary, scenarios, seconds):
    """Every selected scenario on one fresh cluster; results in ctx.results[(profile, label)]."""
    p = PROFILES[profile]
    ctx.run_label = f"{profile}-{label}"
    results = ctx.results.setdefault((profile, label), {})
    base = {"bench": "ddil", "profile": profile, "binary": label, "rate": p["rate"], "loss_each_way": p["loss"],
            "latency": "not emulated (no netem)"}
    note(f"{profile} / {label} ({binary}): creating namespaces and starting 3 nodes")
    cluster = None
    try:
        with Cluster(ctx, profile, binary) as cluster:
            formed = cluster.wait_mesh()
            results["mesh"] = {"formed_s": round(formed, 1)}
            emit({**base, "scenario": "mesh", "formed_s": round(formed, 1)})
            note(f"mesh formed in {formed:.1f} s")
            for name in scenarios:
                note(f"{profile} / {label}: {name}")
                try:
                    if name != "idle":
                        cluster.wait_mesh()
                        time.sleep(2.0)
                    if name == "idle":
                        result = scenario_idle(cluster, seconds)
                    elif name == "beacons":
                        result = scenario_beacons(cluster, seconds)
                    elif name == "backlog":
                        result = scenario_beacons(cluster, seconds, backlog=True)
                    elif name == "outage":
                        result = scenario_outage(cluster)
                    else:
                        result = scenario_flap(cluster)
                except BenchError as error:
                    ctx.failed += 1
                    results[name] = {"error": str(error)}
                    emit({**base, "scenario": name, "error": str(error)})
                    note(f"{name} FAILED: {error}")
                    if any(n.process.poll() is not None for n in cluster.nodes):
                        break
                    continue
                results[name] = result
                emit({**base, "scenario": name, **result})
            logs = {}
            for node in cluster.nodes:
                counts, top = node.log_summary()
                logs[node.name] = {"counts": counts, "top": [f"{n}x {t}" for t, n in top]}
            emit({**base, "scenario": "logs", "logs": logs})
            results["logs"] = logs
    except BenchError as error:
        ctx.failed += 1
        results["mesh"] = results.get("mesh") or {"error": str(error)}
        emit({**base, "scenario": "cluster", "error": str(error)})
        note(f"{profile} / {label} FAILED: {error}")


def fmt(value, unit="", digits=None):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if digits is not None:
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


ROWS = [
    # (label, scenario, key, digits, goal (predicate, text) for the 256k profile or None, lower is better)
    ("mesh formed (s)", "mesh", "formed_s", 1, None),
    ("idle B/min node-0 (tx+rx)", "idle", "node0_ip_bytes_per_min", 0, None),
    ("idle B/min per peer link", "idle", "per_peer_link_ip_bytes_per_min", 0, None),
    ("beacons lag p50 (s)", "beacons", "node1_lag_p50_s", 3, None),
    ("beacons lag p95 (s)", "beacons", "node1_lag_p95_s", 3, (lambda v: v < GOAL_LAG_P95_S, f"< {GOAL_LAG_P95_S:g}")),
    ("beacons lag max (s)", "beacons", "node1_lag_max_s", 3, None),
    ("beacons undelivered at node-1", "beacons", "node1_undelivered", 0, None),
    ("beacons wire B/update/peer", "beacons", "wire_bytes_per_update_per_peer", 1, (lambda v: v <= GOAL_BYTES_PER_UPDATE, f"<= {GOAL_BYTES_PER_UPDATE}")),
    ("beacons packets/update/peer", "beacons", "packets_per_update_per_peer", 2, None),
    ("beacons ratio to JSON size", "beacons", "ratio_to_minimum", 2, None),
    ("beacons sync payload B/upd/peer", "beacons", "sync_payload_sent_bytes_per_update_per_peer", 1, None),
    ("backlog lag p50 (s)", "backlog", "node1_lag_p50_s", 3, None),
    ("backlog lag p95 (s)", "backlog", "node1_lag_p95_s", 3, (lambda v: v < GOAL_LAG_P95_S, f"< {GOAL_LAG_P95_S:g}")),
    ("backlog lag max (s)", "backlog", "node1_lag_max_s", 3, None),
    ("backlog undelivered at node-1", "backlog", "node1_undelivered", 0, None),
    ("backlog 256 KiB drained node-1 (s)", "backlog", "backlog_drained_node1_s", 1, None),
    ("backlog wire B / report B / peer", "backlog", "backlog_wire_ratio_incl_beacons", 2, None),
    ("outage catch-up (s)", "outage", "catchup_s", 2, (lambda v: v < GOAL_CATCHUP_S, f"< {GOAL_CATCHUP_S:g}")),
    ("outage reconnected (s)", "outage", "reconnected_s", 2, None),
    ("outage node-2 bytes / reports size", "outage", "bytes_ratio_to_reports", 2, None),
    ("flap arrive (s)", "flap", "arrive_s", 1, None),
    ("flap document (bytes)", "flap", "document_bytes", 0, None),
    ("flap bytes toward node-1 / doc", "flap", "ratio_toward_node1_to_document", 2, None),
]


def summary(ctx, profiles, labels, binaries):
    cols = [(p, l) for p in profiles for l in labels]
    head = ["metric"] + [f"{p}/{l}" for p, l in cols]
    if "baseline" in labels:
        head += [f"{p} new/base" for p in profiles]
    head += ["goal (256k)"]
    rows, missed, timeouts = [], [], []
    for label, scenario, key, digits, goal in ROWS:
        if not any(scenario in ctx.results.get(c, {}) for c in cols):
            continue
        line = [label]
        for c in cols:
            r = ctx.results.get(c, {}).get(scenario)
            if r is None:
                line.append("-")
            elif "error" in r:
                line.append("FAILED")
            else:
                v = r.get(key)
                cell = fmt(v, digits=digits)
                if key == "catchup_s" and not r.get("caught_up"):
                    cell = f"TIMEOUT>{CATCHUP_DEADLINE_S:g}"
                    timeouts.append(f"{c[0]}/{c[1]} outage: node-2 missing {r.get('missing')} reports after {CATCHUP_DEADLINE_S:g} s")
                if key == "backlog_drained_node1_s" and not r.get("backlog_drained"):
                    missing = (r.get("backlog_missing") or {}).get("node-1")
                    cell = f"NOT in {DRAIN_DEADLINE_S:g}" + (f" ({missing} missing)" if missing else "")
                    timeouts.append(f"{c[0]}/{c[1]} backlog: not drained after {DRAIN_DEADLINE_S:g} s, missing {r.get('backlog_missing')}")
                if key == "arrive_s" and not r.get("arrived"):
                    cell = f"TIMEOUT>{FLAP_DEADLINE_S:g}"
                    timeouts.append(f"{c[0]}/{c[1]} flap: document not at node-1 after {FLAP_DEADLINE_S:g} s")
                if goal and PROFILES[c[0]]["goals"] and v is not None and cell[:7] != "TIMEOUT":
                    ok = goal[0](v)
                    cell += "" if ok else " MISSED"
                    if not ok:
                        missed.append(f"{c[0]}/{c[1]} {label} = {v} (goal {goal[1]})")
                elif goal and PROFILES[c[0]]["goals"] and (v is None or cell[:7] == "TIMEOUT"):
                    missed.append(f"{c[0]}/{c[1]} {label}: no value (goal {goal[1]})")
                line.append(cell)
        if "baseline" in labels:
            for p in profiles:
                a = (ctx.results.get((p, "new"), {}).get(scenario) or {}).get(key)
                b = (ctx.results.get((p, "baseline"), {}).get(scenario) or {}).get(key)
                ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and b
                line.append(f"{a / b:.2f}x" if ok else "-")
        line.append(goal[1] if goal else "")
        rows.append(line)
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    out = ["", "ddil benchmarks: 3 nodes, mesh links shaped by tbf, random loss each way by iptables; "
           "latency NOT emulated (no netem in this kernel)"]
    for p in profiles:
        out.append(f"  {p}: {PROFILES[p]['rate']}, {PROFILES[p]['loss'] * 100:g}% loss each way")
    for l in labels:
        out.append(f"  {l}: {binaries[l]}")
    out.append("")
    out.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for r in rows:
        out.append("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    failures = [f"{c[0]}/{c[1]} {s}: {r['error']}" for c in cols for s, r in ctx.results.get(c, {}).items()
                if isinstance(r, dict) and "error" in r]
    out.append("")
    if not any(PROFILES[p]["goals"] for p in profiles):
        out.append("goals (256k): not measured (256k profile not run)")
    else:
        out.append("goals (256k): " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    if timeouts:
        out.append("deadlines passed: " + "; ".join(timeouts))
    if failures:
        out.append("FAILED: " + "; ".join(failures))
    if ctx.interrupted:
        out.append("INTERRUPTED: the results above are incomplete")
    print("\n".join(out), flush=True)


def main():
    parser = argparse.ArgumentParser(description="peat-mesh-node over shaped, lossy links between network namespaces (RESULT lines)")
    parser.add_argument("--binary", required=True, help="peat-mesh-node executable")
    parser.add_argument("--baseline-binary", help="a second peat-mesh-node run through every scenario in the same run (ratios new/baseline)")
    parser.add_argument("--profiles", default="256k,64k", help="comma-separated, of " + ",".join(PROFILES) + " (default %(default)s)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, of " + ",".join(SCENARIOS) + " (default all)")
    parser.add_argument("--seconds", type=float, default=30.0, help="idle window and length of each beacon phase (default %(default)s)")
    parser.add_argument("--extra-env", action="append", default=[], metavar="K=V", help="extra environment for every node (repeatable)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the node logs and data directories (path printed)")
    args = parser.parse_args()

    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [p for p in profiles if p not in PROFILES] + [s for s in scenarios if s not in SCENARIOS]
    if bad or not profiles or not scenarios:
        sys.exit(f"ddil_bench: unknown profile or scenario {bad}; profiles {list(PROFILES)}, scenarios {SCENARIOS}")
    if ("beacons" in scenarios or "backlog" in scenarios) and "idle" not in scenarios:
        scenarios.insert(0, "idle")  # the beacon byte figures subtract the idle rate
    scenarios = [s for s in SCENARIOS if s in scenarios]
    if args.seconds < 2:
        sys.exit("ddil_bench: --seconds must be at least 2")
    extra_env = {}
    for item in args.extra_env:
        if "=" not in item:
            sys.exit(f"ddil_bench: --extra-env wants K=V, got {item!r}")
        k, v = item.split("=", 1)
        extra_env[k] = v
    binaries = {"new": os.path.abspath(args.binary)}
    if args.baseline_binary:
        binaries["baseline"] = os.path.abspath(args.baseline_binary)
    for path in binaries.values():
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            sys.exit(f"ddil_bench: no executable {path}")
    if os.geteuid() != 0:
        sys.exit("ddil_bench: needs root (network namespaces, tc, iptables)")
    for tool in ("ip", "tc", "iptables", "sysctl"):
        if shutil.which(tool) is None:
            sys.exit(f"ddil_bench: `{tool}` not found (apt-get install iproute2 iptables procps)")
    remove_stale()
    in_use = sh("ip", "-o", "addr", "show", check=False).stdout + sh("ip", "route", "show", "table", "all", check=False).stdout
    if PROBE_NET in in_use:
        sys.exit(f"ddil_bench: the root namespace already uses {PROBE_NET}0/24, the probe links' range")

    root = tempfile.mkdtemp(prefix="peat-ddil-bench-")
    ctx = Context(root, extra_env)
    done = threading.Event()

    def cleanup():
        if done.is_set():
            return
        done.set()
        ctx.cleanup()
        if args.keep_logs or ctx.failed:
            note(f"node logs and data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    atexit.register(cleanup)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (a background job)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _: sys.exit(128 + signum))  # runs the finally and atexit cleanup
    status = 0
    try:
        for profile in profiles:
            for label, binary in binaries.items():
                run_cluster(ctx, profile, label, binary, scenarios, args.seconds)
    except (KeyboardInterrupt, SystemExit) as stop:
        status = 130 if isinstance(stop, KeyboardInterrupt) else (stop.code if isinstance(stop.code, int) else 1)
        note(f"interrupted; removing the nodes and namespaces (exit {status})")
        ctx.interrupted = True
    finally:
        ctx.cleanup()
    summary(ctx, profiles, list(binaries), binaries)
    cleanup()
    sys.exit(status or (1 if ctx.failed else 0))


if __name__ == "__main__":
    main()
