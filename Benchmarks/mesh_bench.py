#!/usr/bin/env python3
"""Mesh benchmarks: real `peat-mesh-node` processes on loopback, driven through the HTTP broker.

usage: python3 Benchmarks/mesh_bench.py [--binary PATH] {latency,idle,startup,all} [options]

  latency --nodes N --writes W   write on one node (round-robin), poll every other node until the
                                 document is visible; write-to-visible-everywhere p50/p90/p99/max
                                 (targets: 3 nodes p99 < 100 ms, 10 nodes < 250 ms; the original
                                 polled every 5000 ms)
  idle --docs D --seconds S      a peer pair holding D documents, after sync and 10 s of settling:
                                 mesh payload bytes/s sent by both nodes (target < 1024 B/s), and
                                 each node's RSS (target < 100 MB)
  startup --runs R [--docs D]    Popen to the first 200 from /api/v1/ready, empty data directory and,
                                 when one is available (`all`: the idle pair's; or --docs D > 0:
                                 populated here first), one holding documents (target < 1000 ms)
  flood --writes W               3 nodes; W writes (round-robin) before and W during a flood of node-0's
                                 sync port by 1,000 idle TCP connections (50 source addresses) and
                                 200 TLS clients without a device certificate, all reconnecting as
                                 soon as they are closed: write-to-visible p99 during / before, the
                                 refusals counted by node-0, and member disconnections (want 0)
  relay --writes W --clients C   a relay process (`peat-mesh-node relay`) on its own address: write-to-
                                 visible-everywhere p99 of 3 nodes whose peers are all `node@relay`
                                 against the same 3 nodes connected directly, in the same run (goal
                                 ratio <= 2); then C idle devices (`peat-bench relay-clients`) holding a
                                 listen connection each: the relay's RSS growth per client
  all                            latency 3x200, latency 10x100, idle 10000/30 s, startup 5

Every node binds its own loopback address 127.21.<k>.<i+1> (all of 127.0.0.0/8 is loopback on
Linux), broker port 8081, sync port 11204, static discovery, a fresh data directory and a fresh
formation secret. Prints one `RESULT {json}` line per measurement and a short summary. Exit status 1
when a node fails to start or a workload cannot complete; a missed target is only reported.
Python 3 standard library only.
"""
import argparse
import asyncio
import base64
import concurrent.futures as cf
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.client import HTTPException

BROKER_PORT = 8081
SYNC_PORT = 11204
HTTP_TIMEOUT = 5.0
BASELINE_POLL_MS = 5000
LATENCY_TARGET_MS = {3: 100, 10: 250}
IDLE_TARGET_BPS = 1024
RSS_TARGET_MB = 100
STARTUP_TARGET_MS = 1000
SENT_METRIC = "peat_mesh_sync_sent_bytes_total"
RECEIVED_METRIC = "peat_mesh_sync_received_bytes_total"
# Never go through an http_proxy from the environment: every request is to a loopback address.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BenchError(Exception):
    """A workload that cannot complete (a node did not start, died, or a write never arrived)."""


def emit(record):
    print("RESULT " + json.dumps(record), flush=True)


def rounded(x, digits=1):
    return None if x is None else round(x, digits)


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def http(method, url, body=None, timeout=HTTP_TIMEOUT, raw_body=None):
    """(status, body bytes) for one request on a fresh connection; status None if no HTTP answer.
    `body` is sent as JSON; `raw_body` (bytes) as it is."""
    data = raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers={"Connection": "close"})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, ValueError, HTTPException):  # refused, reset, timed out, cut short
        return None, b""


def get_json(url):
    status, raw = http("GET", url)
    if status != 200:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def document_field(raw, field):
    """`field` of a GET document answer: {"document": {...}} or the object itself (with "_id")."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    doc = body.get("document") if isinstance(body.get("document"), dict) else body
    return doc.get(field)


def metric_sum(text, name):
    """Sum of every series of metric `name` in Prometheus text, or None if there is none."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, rest = (line.split("{", 1)[0], line.rsplit("}", 1)[1]) if "{" in line else line.split(None, 1)
        if head.strip() == name and rest.split():
            total, found = total + float(rest.split()[0]), True
    return total if found else None


def address_free(host):
    """Whether both listeners could bind on `host` (also proves 127.x.y.z works without `ip addr`)."""
    for port in (BROKER_PORT, SYNC_PORT):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def cluster_hosts(count):
    for _ in range(20):
        k = random.randint(1, 254)
        hosts = [f"127.21.{k}.{i + 1}" for i in range(count)]
        if all(address_free(h) for h in hosts):
            return hosts
    raise BenchError("no free 127.21.x.y addresses for ports 8081/11204 (is 127.0.0.0/8 loopback here?)")


class Node:
    """One peat-mesh-node process: its environment, log file, HTTP endpoints and shutdown."""

    def __init__(self, ctx, name, host, peers=(), data_dir=None, extra_env=None):
        self.ctx, self.name, self.host = ctx, name, host
        self.data_dir = data_dir or tempfile.mkdtemp(prefix=f"{name}-", dir=ctx.root)
        self.log_path = os.path.join(ctx.root, f"{name}-{host}.log")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PEAT_")}
        self.env.update(
            PEAT_FORMATION_SECRET=ctx.secret, HOSTNAME=name, PEAT_DISCOVERY="static",
            PEAT_STATIC_PEERS=",".join(peers), PEAT_DATA_DIR=self.data_dir, PEAT_BIND_HOST=host,
            PEAT_BROKER_PORT=str(BROKER_PORT), PEAT_SYNC_PORT=str(SYNC_PORT), PEAT_LOG_LEVEL="warning")
        self.env.update(extra_env or {})
        self.process = None
        self.started = None
        self.terminated = False

    def start(self):
        with open(self.log_path, "ab") as log:
            self.started = time.perf_counter()
            self.process = subprocess.Popen(
                [self.ctx.binary], env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return self

    def url(self, path):
        return f"http://{self.host}:{BROKER_PORT}{path}"

    def tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self):
        if self.process.poll() is not None:
            sys.stderr.write(f"--- {self.name} ({self.host}) exited with {self.process.returncode}; log tail:\n{self.tail()}---\n")
            raise BenchError(f"{self.name} exited with status {self.process.returncode}")

    def wait_ready(self, timeout=30.0, interval=0.005):
        """Milliseconds from Popen to the first 200 from /api/v1/ready."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            status, _ = http("GET", self.url("/api/v1/ready"), timeout=1.0)
            if status == 200:
                return (time.perf_counter() - self.started) * 1000
            self.check_alive()
            time.sleep(interval)
        raise BenchError(f"{self.name} not ready after {timeout:.0f} s")

    def connected_peer_ids(self):
        body = get_json(self.url("/api/v1/peers")) or {}
        return {p.get("id") for p in body.get("peers", []) if p.get("connected")}

    def traffic(self):
        """(sent, received) mesh payload bytes from /metrics; None where the counter is absent."""
        status, raw = http("GET", self.url("/metrics"))
        if status != 200:
            raise BenchError(f"{self.name}: GET /metrics answered {status}")
        text = raw.decode(errors="replace")
        return metric_sum(text, SENT_METRIC), metric_sum(text, RECEIVED_METRIC)

    def rss_mb(self):
        try:
            with open(f"/proc/{self.process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def terminate(self):
        if self.process is not None and self.process.poll() is None and not self.terminated:
            self.process.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self):
        """SIGTERM (once), up to 10 s for a clean exit, then SIGKILL."""
        if self.process is None:
            return
        self.terminate()
        if not self.terminated:  # it had exited by itself (check_alive reports that)
            self.process.wait()
            return
        try:
            code = self.process.wait(timeout=10)
            if code != 0:
                sys.stderr.write(f"warning: {self.name} exited with {code} on SIGTERM\n")
        except subprocess.TimeoutExpired:
            sys.stderr.write(f"warning: {self.name} ignored SIGTERM for 10 s; killing it\n")
            self.process.kill()
            self.process.wait()


class Cluster:
    """N nodes, each with every other node as a static peer; stopped on exit from the `with`."""

    def __init__(self, ctx, count, names=None, relay=None):
        """With `relay` (a Relay), every peer is `name@relay`: reached only through it."""
        hosts = cluster_hosts(count)
        names = names or [f"node-{i}" for i in range(count)]
        extra = {"PEAT_RELAY_URLS": relay.url} if relay else {}
        self.nodes = [
            Node(ctx, names[i], hosts[i],
                 [f"{names[j]}@relay" if relay else f"{names[j]}@{hosts[j]}:{SYNC_PORT}" for j in range(count) if j != i],
                 extra_env=extra)
            for i in range(count)]
        self.one_sided = []

    def __enter__(self):
        try:
            for node in self.nodes:
                node.start()
            self.wait_mesh()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        for node in self.nodes:  # SIGTERM all first, then wait for each
            node.terminate()
        for node in self.nodes:
            node.stop()

    def wait_mesh(self, timeout=30.0, strict=10.0):
        """Waits until every node is ready and reports the N-1 others connected in /api/v1/peers.

        After `strict` seconds it settles for every pair being connected as seen from at least one
        side, and records the pairs where one side still says "not connected" (self.one_sided,
        [reporter, peer]), which are warned about and reported in the RESULT lines.
        """
        for node in self.nodes:
            node.wait_ready(timeout)
        start = time.perf_counter()
        names = [node.name for node in self.nodes]
        while True:
            connected = {node.name: node.connected_peer_ids() for node in self.nodes}
            one_sided = [[a, b] for a in names for b in names if a != b and b not in connected[a]]
            if not one_sided:
                return
            elapsed = time.perf_counter() - start
            if elapsed > strict and all(a in connected[b] for a, b in one_sided):
                self.one_sided = one_sided
                sys.stderr.write(f"warning: peers connected from one side only after {strict:.0f} s "
                                 f"([reporter, peer] whose /api/v1/peers says not connected): {one_sided}\n")
                return
            for node in self.nodes:
                node.check_alive()
            if elapsed > timeout:
                first = self.nodes[0]
                status, raw = http("GET", first.url("/api/v1/peers"))
                sys.stderr.write(f"--- {first.name} GET /api/v1/peers -> {status}: {raw[:600].decode(errors='replace')}\n")
                counts = [len(connected[n]) for n in names]
                raise BenchError(f"mesh not formed after {timeout:.0f} s: connected peers per node {counts}, want {len(names) - 1}")
            time.sleep(0.05)


def put(node, collection, doc_id, body):
    status, raw = http("PUT", node.url(f"/api/v1/documents/{collection}/{doc_id}"), body)
    if status not in (200, 201):
        node.check_alive()
        raise BenchError(f"{node.name}: PUT {collection}/{doc_id} answered {status}: {raw[:200]!r}")


def visible(node, collection, doc_id, field, value):
    status, raw = http("GET", node.url(f"/api/v1/documents/{collection}/{doc_id}"))
    return status == 200 and document_field(raw, field) == value


def poll_until_visible(node, collection, doc_id, field, value, t0, timeout):
    """Seconds from t0 until `node` serves the document with field == value; None on timeout."""
    deadline = t0 + timeout
    while True:
        if visible(node, collection, doc_id, field, value):
            return time.perf_counter() - t0
        if time.perf_counter() > deadline:
            return None
        time.sleep(0.001)


def latency_samples(cluster, pool, writes, visible_timeout):
    """(everywhere ms, per-node ms, put ms, timeouts) of `writes` round-robin writes."""
    nodes = len(cluster.nodes)
    everywhere, each, put_ms, timeouts = [], [], [], 0
    for i in range(writes):
        writer = cluster.nodes[i % nodes]
        readers = [n for n in cluster.nodes if n is not writer]
        t0 = time.perf_counter()
        put(writer, "tracks", f"lat-{i}", {"seq": i, "t": time.time()})
        put_ms.append((time.perf_counter() - t0) * 1000)
        seen = list(pool.map(lambda n: poll_until_visible(n, "tracks", f"lat-{i}", "seq", i, t0, visible_timeout), readers))
        if None in seen:
            for node in cluster.nodes:
                node.check_alive()
            timeouts += 1
            late = [n.name for n, s in zip(readers, seen) if s is None]
            sys.stderr.write(f"latency: lat-{i} from {writer.name} not visible on {late} after {visible_timeout:.0f} s\n")
            if timeouts >= 3:
                raise BenchError(f"{timeouts} writes never became visible everywhere (after {i + 1} writes)")
            continue
        everywhere.append(max(seen) * 1000)
        each.extend(s * 1000 for s in seen)
    return everywhere, each, put_ms, timeouts


def bench_latency(ctx, nodes, writes, visible_timeout=10.0):
    target = LATENCY_TARGET_MS.get(nodes)
    with Cluster(ctx, nodes) as cluster, cf.ThreadPoolExecutor(max_workers=nodes - 1) as pool:
        one_sided = cluster.one_sided
        everywhere, each, put_ms, timeouts = latency_samples(cluster, pool, writes, visible_timeout)
    if not everywhere:
        raise BenchError("no write became visible everywhere")
    p99 = percentile(everywhere, 0.99)
    emit({
        "bench": "mesh.latency", "nodes": nodes, "writes": writes, "visible_everywhere": len(everywhere),
        "timeouts": timeouts, "peers_one_sided": one_sided,
        "p50_ms": rounded(percentile(everywhere, 0.5)), "p90_ms": rounded(percentile(everywhere, 0.9)),
        "p99_ms": rounded(p99), "max_ms": rounded(max(everywhere)),
        "per_node_p50_ms": rounded(percentile(each, 0.5)), "per_node_p99_ms": rounded(percentile(each, 0.99)),
        "put_p50_ms": rounded(percentile(put_ms, 0.5)),
        "target_ms": target, "baseline_ms": BASELINE_POLL_MS, "ratio": round(p99 / BASELINE_POLL_MS, 4),
        "target_ratio": None if target is None else round(p99 / target, 3),
        "met": None if target is None else p99 < target})
    ctx.summary.append(
        f"latency  {nodes:>2} nodes x {writes}: p50 {percentile(everywhere, 0.5):.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(everywhere):.1f} ms (target {target} ms) {verdict(target is None or p99 < target)}"
        + (f"; one-sided peers {one_sided}" if one_sided else ""))
    if timeouts:
        raise BenchError(f"{timeouts} of {writes} writes never became visible everywhere")


def write_round(cluster, pool, writes, prefix, visible_timeout=30.0):
    """Write-to-visible-everywhere times (ms) of `writes` round-robin writes; raises if one never arrives."""
    times = []
    for i in range(writes):
        writer = cluster.nodes[i % len(cluster.nodes)]
        readers = [n for n in cluster.nodes if n is not writer]
        t0 = time.perf_counter()
        put(writer, "tracks", f"{prefix}-{i}", {"seq": i})
        seen = list(pool.map(lambda n: poll_until_visible(n, "tracks", f"{prefix}-{i}", "seq", i, t0, visible_timeout), readers))
        if None in seen:
            raise BenchError(f"{prefix}-{i} from {writer.name} not visible everywhere after {visible_timeout:.0f} s")
        times.append(max(seen) * 1000)
    return times


class Flood:
    """1,000 idle TCP connections and 200 certificate-less TLS clients against one sync port, each
    reconnecting as soon as it is closed, on an asyncio loop in a thread, until stop()."""

    def __init__(self, host, port, sources, idle=1000, tls=200):
        self.host, self.port, self.sources, self.idle, self.tls = host, port, sources, idle, tls
        self.opened = self.tls_attempts = 0
        self.loop = asyncio.new_event_loop()
        self.stopping = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(lambda: self.stopping.set())
            self.thread.join(30)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self):
        self.stopping = asyncio.Event()
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        tls.minimum_version = ssl.TLSVersion.TLSv1_3
        tls.set_alpn_protocols(["peat/sync/1"])
        tasks = [asyncio.ensure_future(self._idle(self.sources[i % len(self.sources)])) for i in range(self.idle)]
        tasks += [asyncio.ensure_future(self._tls(tls)) for _ in range(self.tls)]
        await self.stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _idle(self, source):
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, local_addr=(source, 0)), 5)
                self.opened += 1
                await reader.read(1)  # until the node closes it
                writer.close()
            except (OSError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.2)

    async def _tls(self, context):
        while True:
            self.tls_attempts += 1
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port, ssl=context), 5)
                await reader.read(1)
                writer.close()
            except (OSError, ssl.SSLError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.1)


def bench_flood(ctx, writes):
    with Cluster(ctx, 3) as cluster, cf.ThreadPoolExecutor(max_workers=2) as pool:
        target = cluster.nodes[0]
        before = write_round(cluster, pool, writes, "before")
        k = target.host.split(".")[2]
        sources = [f"127.31.{k}.{i}" for i in range(1, 51)]
        def disconnections_now():
            return sum(metric_sum(http("GET", n.url("/metrics"))[1].decode(errors="replace"),
                                  "peat_transport_disconnections_total") or 0 for n in cluster.nodes)
        # Counted from here: a simultaneous dial while the mesh formed closes one connection per pair.
        disconnections_before = disconnections_now()
        with Flood(target.host, SYNC_PORT, sources) as flood:
            deadline = time.perf_counter() + 30
            while flood.opened < 1000 or flood.tls_attempts < 200:
                if time.perf_counter() > deadline:
                    raise BenchError(f"the flood did not build up: {flood.opened} connections, {flood.tls_attempts} TLS attempts")
                time.sleep(0.1)
            during = write_round(cluster, pool, writes, "during")
            opened, attempts = flood.opened, flood.tls_attempts
        metrics = http("GET", target.url("/metrics"))[1].decode(errors="replace")
        refused = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                      if line.startswith("peat_transport_rejections_total{") and 'direction="inbound"' in line
                      and 'reason="tooManyHandshakes"' in line)
        rejected = metric_sum(metrics, "peat_transport_rejections_total") or 0
        disconnections = disconnections_now() - disconnections_before
        connected = [len(n.connected_peer_ids()) for n in cluster.nodes]
    p99_before, p99_during = percentile(before, 0.99), percentile(during, 0.99)
    emit({
        "bench": "mesh.flood", "nodes": 3, "writes": writes, "idle_connections_opened": opened, "tls_attempts": attempts,
        "refused_too_many_handshakes": int(refused), "rejections_total": int(rejected),
        "member_disconnections": int(disconnections), "connected_peers": connected,
        "before_p50_ms": rounded(percentile(before, 0.5)), "before_p99_ms": rounded(p99_before),
        "during_p50_ms": rounded(percentile(during, 0.5)), "during_p99_ms": rounded(p99_during),
        "ratio_p99": round(p99_during / p99_before, 3)})
    ctx.summary.append(
        f"flood    3 nodes x {writes}: p99 {p99_before:.1f} ms before, {p99_during:.1f} ms during "
        f"({p99_during / p99_before:.2f}x); {int(refused)} refused at accept, member disconnections {int(disconnections)} "
        f"{verdict(disconnections == 0 and connected == [2, 2, 2])}")
    if disconnections or connected != [2, 2, 2]:
        raise BenchError(f"members lost connections during the flood: disconnections {disconnections}, connected {connected}")


def doc_ref(i):
    return ("beacons" if i % 2 == 0 else "commands"), f"doc-{i}"


def write_docs(node, docs, workers=8):
    def one(i):
        collection, doc_id = doc_ref(i)
        put(node, collection, doc_id, {"n": i, "name": f"doc-{i}"})
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(one, range(docs)):
            pass


def wait_replicated(node, docs, timeout=60.0):
    """Waits until `node` serves the last 20 documents of each collection and 200 random others."""
    pending = {i for parity in (0, 1) for i in [j for j in range(docs - 1, -1, -1) if j % 2 == parity][:20]}
    pending |= set(random.sample(range(docs), min(200, docs)))
    checked, deadline = len(pending), time.perf_counter() + timeout
    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        while pending:
            ids = list(pending)
            pending -= {i for i, ok in zip(ids, pool.map(lambda i: visible(node, *doc_ref(i), "n", i), ids)) if ok}
            if not pending:
                return
            node.check_alive()
            if time.perf_counter() > deadline:
                break
            time.sleep(0.05)
    # Say how they differ: absent, or served with other content (one example).
    answers = [(i, http("GET", node.url("/api/v1/documents/{}/{}".format(*doc_ref(i))))) for i in sorted(pending)]
    absent = sum(1 for _, (status, _) in answers if status == 404)
    other = [(i, raw) for i, (status, raw) in answers if status == 200]
    example = f"; e.g. {'/'.join(doc_ref(other[0][0]))} is {other[0][1][:160].decode(errors='replace')}" if other else ""
    raise BenchError(
        f"{node.name}: {len(pending)} of {checked} checked documents not replicated after {timeout:.0f} s "
        f"({absent} absent, {len(other)} served with other content{example})")


def tcp_sent(hosts):
    """{(local, peer): bytes_sent} of established TCP connections to the sync listeners of `hosts` (via ss), or None.

    Both ends of each connection are on this machine, so the sum is what both nodes sent (TLS and TCP
    payload, no headers); a dialer's own address may be 127.0.0.1, hence matching either endpoint.
    """
    try:
        out = subprocess.run(["ss", "-tinH", "state", "established"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    listeners = {f"{h}:{SYNC_PORT}" for h in hosts}
    sockets, key = {}, None
    for line in out.splitlines():
        if line and not line[0].isspace():
            fields = line.split()
            key = (fields[2], fields[3]) if len(fields) >= 4 and listeners & {fields[2], fields[3]} else None
        elif key:
            sent = re.search(r"bytes_sent:(\d+)", line)
            acked = re.search(r"bytes_acked:(\d+)", line)
            sockets[key] = int(sent.group(1)) if sent else max(int(acked.group(1)) - 1, 0) if acked else 0
            key = None
    return sockets


def bench_idle(ctx, docs, seconds, settle=10.0):
    with Cluster(ctx, 2) as cluster:
        writer, reader = cluster.nodes
        t0 = time.perf_counter()
        write_docs(writer, docs)
        write_s = time.perf_counter() - t0
        ctx.populated = (writer.data_dir, writer.name, docs)  # for `startup`, once the node is stopped
        wait_replicated(reader, docs)
        replicated_s = time.perf_counter() - t0
        time.sleep(settle)
        hosts = {n.host for n in cluster.nodes}
        before, tcp_before = [n.traffic() for n in cluster.nodes], tcp_sent(hosts)
        time.sleep(seconds)
        after, tcp_after = [n.traffic() for n in cluster.nodes], tcp_sent(hosts)
        rss = [n.rss_mb() for n in cluster.nodes]
        for node in cluster.nodes:
            node.check_alive()
        one_sided = cluster.one_sided
    counters = all(x is not None for pair in before + after for x in pair)
    sent = sum(a[0] - b[0] for a, b in zip(after, before)) if counters else None
    received = sum(a[1] - b[1] for a, b in zip(after, before)) if counters else None
    bps = None if sent is None else sent / seconds
    tcp_bps = None
    if tcp_before is not None and tcp_after:  # no sync connection seen: no TCP figure
        tcp_bps = sum(v - tcp_before.get(k, 0) for k, v in tcp_after.items() if v >= tcp_before.get(k, 0)) / seconds
    max_rss = max((r for r in rss if r is not None), default=None)
    emit({
        "bench": "mesh.idle", "nodes": 2, "docs": docs, "seconds": seconds, "settle_s": settle, "peers_one_sided": one_sided,
        "write_docs_per_s": round(docs / write_s), "replicated_s": round(replicated_s, 2),
        "sync_sent_bytes_before_idle": None if sent is None else int(sum(b[0] for b in before)),
        "idle_bytes_per_s": rounded(bps), "idle_received_bytes_per_s": None if received is None else rounded(received / seconds),
        "idle_tcp_bytes_per_s": rounded(tcp_bps), "target_bytes_per_s": IDLE_TARGET_BPS,
        "target_ratio": None if bps is None else round(bps / IDLE_TARGET_BPS, 3),
        "met": None if bps is None else bps < IDLE_TARGET_BPS})
    emit({
        "bench": "mesh.rss", "nodes": 2, "docs": docs, "rss_mb": [rounded(r) for r in rss], "max_rss_mb": rounded(max_rss),
        "target_mb": RSS_TARGET_MB, "target_ratio": None if max_rss is None else round(max_rss / RSS_TARGET_MB, 3),
        "met": None if max_rss is None else max_rss < RSS_TARGET_MB})
    traffic = "no traffic counters in /metrics" if bps is None else f"{bps:.0f} B/s (target {IDLE_TARGET_BPS}) {verdict(bps < IDLE_TARGET_BPS)}"
    if tcp_bps is not None:
        traffic += f", TCP {tcp_bps:.0f} B/s"
    ctx.summary.append(f"idle     pair, {docs} docs, {seconds:.0f} s: {traffic}; replicated in {replicated_s:.1f} s")
    if max_rss is not None:
        ctx.summary.append(f"rss      {', '.join(f'{r:.1f}' for r in rss if r is not None)} MB (target {RSS_TARGET_MB}) {verdict(max_rss < RSS_TARGET_MB)}")


def startup_times(ctx, runs, data_dir=None, name="node-0"):
    times = []
    for _ in range(runs):
        node = Node(ctx, name, cluster_hosts(1)[0], data_dir=data_dir)
        try:
            times.append(node.start().wait_ready(timeout=30.0, interval=0.005))
        finally:
            node.stop()
    return times


def bench_startup(ctx, runs, docs=0):
    if ctx.populated is None and docs > 0:  # populate a data directory with a lone node first
        node = Node(ctx, "node-0", cluster_hosts(1)[0])
        try:
            node.start().wait_ready()
            write_docs(node, docs)
        finally:
            node.stop()
        ctx.populated = (node.data_dir, node.name, docs)
    variants = [(0, None, "node-0")]
    if ctx.populated:
        data_dir, name, count = ctx.populated
        variants.append((count, data_dir, name))
    for count, data_dir, name in variants:
        times = startup_times(ctx, runs, data_dir, name)
        median, worst = statistics.median(times), max(times)
        emit({
            "bench": "mesh.startup", "docs": count, "runs": runs, "median_ms": rounded(median), "max_ms": rounded(worst),
            "target_ms": STARTUP_TARGET_MS, "target_ratio": round(worst / STARTUP_TARGET_MS, 3), "met": worst < STARTUP_TARGET_MS})
        ctx.summary.append(
            f"startup  {count:>5} docs x {runs}: median {median:.0f} ms, max {worst:.0f} ms "
            f"(target {STARTUP_TARGET_MS}) {verdict(worst < STARTUP_TARGET_MS)}")


class Relay:
    """One `peat-mesh-node relay` process on its own loopback address (relay port 3340, health 8081)."""

    PORT = 3340

    def __init__(self, ctx):
        self.ctx = ctx
        self.host = cluster_hosts(1)[0]
        self.url = f"https://{self.host}:{self.PORT}"
        key = subprocess.run([ctx.binary, "relay-key"], env={"PEAT_FORMATION_SECRET": ctx.secret},
                             capture_output=True, text=True, check=True).stdout.strip()
        self.env = {"PEAT_RELAY_ACCESS_KEY": key, "PEAT_BIND_HOST": self.host, "PEAT_RELAY_PORT": str(self.PORT),
                    "PEAT_BROKER_PORT": str(BROKER_PORT), "PEAT_LOG_LEVEL": "warning", "HOSTNAME": "relay"}
        self.log_path = os.path.join(ctx.root, "relay.log")
        self.process = None

    def __enter__(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([self.ctx.binary, "relay"], env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.perf_counter() + 30
        while http("GET", f"http://{self.host}:{BROKER_PORT}/api/v1/ready", timeout=1.0)[0] != 200:
            if self.process.poll() is not None or time.perf_counter() > deadline:
                raise BenchError(f"the relay did not become ready (log: {self.log_path})")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rss_mb(self):
        return Node.rss_mb(self)


def bench_relay(ctx, writes, clients, visible_timeout=10.0):
    with Relay(ctx) as relay:
        results = {}
        for label, through in (("direct", None), ("relay", relay)):
            with Cluster(ctx, 3, relay=through) as cluster, cf.ThreadPoolExecutor(max_workers=2) as pool:
                if through:
                    paths = {p.get("path") for node in cluster.nodes
                             for p in (get_json(node.url("/api/v1/peers")) or {}).get("peers", []) if p.get("connected")}
                    if paths != {"relay"}:
                        raise BenchError(f"relayed cluster reports paths {paths}, want only relay")
                everywhere, _, _, timeouts = latency_samples(cluster, pool, writes, visible_timeout)
            if not everywhere or timeouts:
                raise BenchError(f"{label}: {timeouts} writes never became visible everywhere")
            results[label] = everywhere
        direct_p99 = percentile(results["direct"], 0.99)
        relay_p99 = percentile(results["relay"], 0.99)
        ratio = relay_p99 / direct_p99
        emit({"bench": "mesh.relay_latency", "nodes": 3, "writes": writes,
              "p50_ms": rounded(percentile(results["relay"], 0.5)), "p99_ms": rounded(relay_p99),
              "baseline": "the same 3 nodes connected directly", "baseline_p50_ms": rounded(percentile(results["direct"], 0.5)),
              "baseline_p99_ms": rounded(direct_p99), "ratio": round(ratio, 3), "goal_ratio": 2.0, "met": ratio <= 2.0})
        ctx.summary.append(f"relay    3 nodes x {writes}: p99 {relay_p99:.1f} ms relayed vs {direct_p99:.1f} ms direct "
                           f"= {ratio:.2f}x (goal <= 2x) {verdict(ratio <= 2.0)}")
        # Memory per idle client: the relay's RSS before and while `clients` devices hold a listen connection.
        bench_bin = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".build", "release", "peat-bench")
        bench_bin = os.environ.get("PEAT_BENCH_BINARY", bench_bin)
        if not os.access(bench_bin, os.X_OK):
            raise BenchError(f"no peat-bench at {bench_bin} (cd Benchmarks && swift build -c release, or PEAT_BENCH_BINARY)")
        time.sleep(2)
        before = relay.rss_mb()
        holder = subprocess.Popen([bench_bin, "relay-clients", relay.url, str(clients), "600"],
                                  env={**os.environ, "PEAT_FORMATION_SECRET": ctx.secret}, stdout=subprocess.PIPE, text=True)
        try:
            line = holder.stdout.readline().strip()
            if not line.startswith("READY "):
                raise BenchError(f"relay-clients printed {line!r}")
            admitted = int(line.split()[1])
            time.sleep(2)
            during = relay.rss_mb()
        finally:
            holder.terminate()
            holder.wait(timeout=30)
        per_client_kb = (during - before) * 1024 / max(admitted, 1)
        emit({"bench": "mesh.relay_idle_clients", "clients": admitted, "relay_rss_before_mb": rounded(before),
              "relay_rss_mb": rounded(during), "per_client_kb": rounded(per_client_kb)})
        ctx.summary.append(f"relay    {admitted} idle clients: {per_client_kb:.1f} KiB RSS each "
                           f"({before:.1f} -> {during:.1f} MB)")


def verdict(ok):
    return "ok" if ok else "MISSED"


class Context:
    def __init__(self, binary, root):
        self.binary, self.root = binary, root
        self.secret = base64.b64encode(os.urandom(32)).decode()
        self.populated = None  # (data dir, node name, documents) of a stopped node, for startup
        self.summary = []


def main():
    default_binary = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".build", "release", "peat-mesh-node")
    parser = argparse.ArgumentParser(description="peat-mesh-node benchmarks (RESULT lines)")
    parser.add_argument("--binary", default=default_binary, help="peat-mesh-node executable (default: %(default)s)")
    sub = parser.add_subparsers(dest="workload", required=True)
    # --binary also after the workload (`mesh_bench.py all --binary PATH`); SUPPRESS keeps the top-level value otherwise.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--binary", default=argparse.SUPPRESS, help="peat-mesh-node executable")
    p = sub.add_parser("latency", parents=[common], help="write-to-visible-everywhere latency")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--writes", type=int, default=200)
    p = sub.add_parser("idle", parents=[common], help="idle sync traffic and RSS of a peer pair holding documents")
    p.add_argument("--docs", type=int, default=10000)
    p.add_argument("--seconds", type=float, default=30.0)
    p = sub.add_parser("startup", parents=[common], help="Popen to ready")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--docs", type=int, default=0, help="also measure a data directory populated with this many documents")
    p = sub.add_parser("flood", parents=[common], help="write-to-visible p99 before and during a listener flood")
    p.add_argument("--writes", type=int, default=200)
    p = sub.add_parser("relay", parents=[common], help="relayed vs direct write-to-visible p99, relay memory per idle client")
    p.add_argument("--writes", type=int, default=200)
    p.add_argument("--clients", type=int, default=500)
    sub.add_parser("all", parents=[common], help="latency 3x200 and 10x100, idle 10000 docs / 30 s, startup 5 runs")
    args = parser.parse_args()

    if not (os.path.isfile(args.binary) and os.access(args.binary, os.X_OK)):
        sys.exit(f"mesh_bench: no executable {args.binary} (swift build -c release --product peat-mesh-node, or --binary)")
    if getattr(args, "nodes", 2) < 2 or getattr(args, "nodes", 2) > 254:
        sys.exit("mesh_bench: --nodes must be 2-254")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop nodes, remove temp dirs

    # (workload, fields identifying it in an error RESULT, run)
    if args.workload == "latency":
        jobs = [("latency", {"nodes": args.nodes}, lambda c: bench_latency(c, args.nodes, args.writes))]
    elif args.workload == "idle":
        jobs = [("idle", {"docs": args.docs}, lambda c: bench_idle(c, args.docs, args.seconds))]
    elif args.workload == "flood":
        jobs = [("flood", {}, lambda c: bench_flood(c, args.writes))]
    elif args.workload == "relay":
        jobs = [("relay", {}, lambda c: bench_relay(c, args.writes, args.clients))]
    elif args.workload == "startup":
        jobs = [("startup", {}, lambda c: bench_startup(c, args.runs, args.docs))]
    else:
        jobs = [("latency", {"nodes": 3}, lambda c: bench_latency(c, 3, 200)),
                ("latency", {"nodes": 10}, lambda c: bench_latency(c, 10, 100)),
                ("idle", {"docs": 10000}, lambda c: bench_idle(c, 10000, 30.0)),
                ("startup", {}, lambda c: bench_startup(c, 5)),
                ("relay", {}, lambda c: bench_relay(c, 200, 500))]
    root = tempfile.mkdtemp(prefix="peat-mesh-bench-")
    ctx, failed = Context(os.path.abspath(args.binary), root), 0
    try:
        for name, fields, job in jobs:
            try:
                job(ctx)
            except BenchError as error:
                failed += 1
                emit({"bench": f"mesh.{name}", **fields, "error": str(error)})
                ctx.summary.append(f"{name:<8} FAILED: {error}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\nmesh benchmarks (" + os.path.basename(args.binary) + "):\n  " + "\n  ".join(ctx.summary), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
