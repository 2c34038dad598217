#!/usr/bin/env python3
"""Proves that the runtime stage of deploy/Dockerfile installs every library a peat-mesh-node
binary needs, without Docker.

    python3 deploy/verify/runtime_libs.py /work/main/.build-static/release/peat-mesh-node

The binary should be a stripped `--static-swift-stdlib` release build (the Dockerfile's builder
command). Steps, each printed as OK / FAIL:

  packages  the runtime stage's single `apt-get install` line is parsed from the Dockerfile.
  (a) ldd   every library the binary loads (ldd, transitively) belongs to a Debian package
            (`dpkg -S`, following symlinks and the /lib <-> /usr/lib merged-usr aliases) that is in
            that list. A library from the Swift toolchain (/opt/swift/...) means the Swift
            runtime was not linked statically.
  (b) run   a root filesystem holding ONLY the files of those packages (`dpkg -L` on this host,
            which must be Debian bookworm like the runtime image; missing packages are installed
            with apt-get), the binary (with its resource bundle, as the Dockerfile copies it),
            /etc/passwd and /etc/group with the peat user (10001), /tmp and /data (owned by
            10001); /proc, /sys and a few /dev nodes are mounted as a container runtime would.
            In it, as uid/gid 10001 through the image's ENTRYPOINT (tini):
              - `peat-mesh-node identity` prints node_id=peat-mesh-1 device_id=<32 hex>;
              - the node starts (static discovery, 127.0.0.1, free ports, PEAT_DATA_DIR=/data),
                GET /api/v1/health answers 200 "healthy", the OpenAPI document (a bundled
                resource) and a document write/read work, SIGTERM stops it with exit status 0 and
                no ERROR/CRITICAL log line.
  size      estimated image size: debian:bookworm-slim (--base-mb, default 74.8 MB uncompressed)
            + Installed-Size of the listed packages (and their dependencies) that bookworm-slim
            does not already contain + the binary and its resources. Flagged (not failed, unless
            --strict-size) when the part added to the base exceeds --limit-mb (default 60 MB);
            --limit-applies-to total compares the whole estimate instead.

Exit status: 0 when the list is sufficient, 1 when a step fails, 2 on bad usage.

`--allow-dir DIR` (debug, repeatable) accepts libraries under DIR that belong to no listed package
and copies them into the root filesystem, so that step (b) can be exercised with a dynamically
linked development binary (e.g. --allow-dir /opt/swift/usr/lib/swift/linux). The result is then
still a failure: such a binary would not run in the image.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"

PEAT_UID = 10001
PEAT_GID = 10001
TEST_SECRET = "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4"
TEST_HOSTNAME = "peat-mesh-1"
# The identity of (TEST_SECRET, peat-mesh-1): README.md and the shared reference vectors.
EXPECTED_DEVICE_ID = "6249fce8bedd0145bde16f39d326a57c"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BINARY_IN_IMAGE = "/usr/local/bin/peat-mesh-node"
# debian:bookworm-slim excludes these from every package (/etc/dpkg/dpkg.cfg.d/docker); they are
# not needed to run anything either.
SKIPPED_PREFIXES = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/lintian/",
                    "/usr/share/locale/", "/usr/share/doc-base/")
MERGED_USR_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
BAD_LOG_LEVEL = re.compile(r' (ERROR|CRITICAL) |"level" *: *"(error|critical)"', re.IGNORECASE)


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def ok(self, message: str) -> None:
        print(f"OK    {message}", flush=True)

    def fail(self, message: str) -> None:
        print(f"FAIL  {message}", flush=True)
        self.failures.append(message)

    def info(self, message: str) -> None:
        print(f"      {message}", flush=True)

    def flag(self, message: str) -> None:
        print(f"FLAG  {message}", flush=True)


def run(cmd: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kwargs)


# --- Dockerfile -----------------------------------------------------------------------------------

@dataclass
class RuntimeStage:
    packages: list[str]
    entrypoint: list[str]
    install_line: int
    base_image: str


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Dockerfile instructions with their continuation lines joined (first physical line number)."""
    out: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored by Docker
        if not current:
            start = number
        if stripped.endswith("\\"):
            current.append(stripped[:-1])
            continue
        current.append(stripped)
        out.append((start, " ".join(current)))
        current = []
    if current:
        out.append((start, " ".join(current)))
    return out


def parse_runtime_stage(dockerfile: Path) -> RuntimeStage:
    text = dockerfile.read_text()
    physical = text.splitlines()
    instructions = logical_lines(text)
    stages: list[list[tuple[int, str]]] = []
    for number, line in instructions:
        if line.split(None, 1)[0].upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((number, line))
    if not stages:
        raise ValueError(f"{dockerfile}: no FROM instruction")
    # The runtime stage: the one named "runtime", else the last one.
    stage = next((s for s in stages if re.search(r"\bAS\s+runtime\s*$", s[0][1], re.IGNORECASE)), stages[-1])
    base_image = stage[0][1].split()[1]
    args = {m.group(1): m.group(2) for _, l in instructions
            for m in [re.match(r"ARG\s+(\w+)=(\S+)", l)] if m}
    base_image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), base_image)

    installs = [(n, l) for n, l in stage if l.split(None, 1)[0].upper() == "RUN" and "apt-get install" in l]
    if len(installs) != 1:
        raise ValueError(f"{dockerfile}: the runtime stage must have exactly one RUN with `apt-get install`, found {len(installs)}")
    number, line = installs[0]
    tokens = shlex.split(line.split(None, 1)[1])
    try:
        index = next(i for i in range(len(tokens) - 1) if tokens[i] == "apt-get" and "install" in tokens[i + 1:i + 6])
    except StopIteration:
        raise ValueError(f"{dockerfile}:{number}: cannot find `apt-get install`") from None
    index = tokens.index("install", index) + 1
    packages: list[str] = []
    for token in tokens[index:]:
        if token in ("&&", "||", ";", "|") or token.endswith(";"):
            if token.endswith(";") and token != ";":
                packages.append(token[:-1])
            break
        if token.startswith("-"):
            continue
        packages.append(token)
    if not packages:
        raise ValueError(f"{dockerfile}:{number}: `apt-get install` lists no package")
    # Every package must be on the one physical line that says `apt-get install`.
    install_physical = next(i for i in range(number - 1, len(physical)) if "apt-get install" in physical[i])
    words = set(re.split(r"[\s\\]+", physical[install_physical]))
    spread = [p for p in packages if p not in words]
    if spread:
        raise ValueError(f"{dockerfile}:{install_physical + 1}: keep the runtime packages on the `apt-get install` line; elsewhere: {spread}")

    entrypoint: list[str] = []
    for _, l in stage:
        if l.split(None, 1)[0].upper() == "ENTRYPOINT":
            entrypoint = json.loads(l.split(None, 1)[1])
    if not entrypoint:
        raise ValueError(f"{dockerfile}: the runtime stage has no exec-form ENTRYPOINT")
    return RuntimeStage(packages, entrypoint, install_physical + 1, base_image)


# --- dpkg -----------------------------------------------------------------------------------------

def path_aliases(path: str) -> list[str]:
    """The path, its resolved target, and their merged-usr twins (/lib/x <-> /usr/lib/x)."""
    seen: list[str] = []
    for p in (path, os.path.realpath(path)):
        for q in (p, os.path.normpath(p)):
            parts = q.split("/")
            variants = [q]
            if len(parts) > 2 and parts[1] == "usr" and parts[2] in MERGED_USR_DIRS:
                variants.append("/" + "/".join(parts[2:]))
            elif len(parts) > 1 and parts[1] in MERGED_USR_DIRS:
                variants.append("/usr" + q)
            for v in variants:
                if v not in seen:
                    seen.append(v)
    return seen


def owning_packages(path: str) -> set[str]:
    for candidate in path_aliases(path):
        result = run(["dpkg-query", "-S", candidate], check=False)
        if result.returncode != 0:
            continue
        owners: set[str] = set()
        for line in result.stdout.splitlines():
            if line.startswith("diversion ") or ": " not in line:
                continue
            names, _, listed = line.partition(": ")
            if listed.strip() != candidate:
                continue
            owners.update(n.strip().split(":")[0] for n in names.split(","))
        if owners:
            return owners
    return set()


def installed(package: str) -> bool:
    result = run(["dpkg-query", "-W", "-f=${Status}", package], check=False)
    return result.returncode == 0 and "install ok installed" in result.stdout


def ensure_installed(packages: list[str], report: Report, allow_install: bool) -> bool:
    missing = [p for p in packages if not installed(p)]
    if not missing:
        return True
    if not allow_install:
        report.fail(f"packages not installed on this host: {' '.join(missing)} (apt-get install them, or drop --no-install)")
        return False
    report.info(f"installing on this host: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    update = run(sudo + ["apt-get", "update", "-qq"], check=False, env=env)
    result = run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing, check=False, env=env)
    if result.returncode != 0:
        report.fail(f"apt-get install {' '.join(missing)} failed: {(result.stderr or update.stderr).strip()[-500:]}")
        return False
    return True


def package_files(package: str) -> list[str]:
    return run(["dpkg-query", "-L", package]).stdout.splitlines()


def installed_size_kib(package: str) -> int:
    out = run(["dpkg-query", "-W", "-f=${Installed-Size}", package], check=False).stdout.strip()
    return int(out) if out.isdigit() else 0


# --- (a) ldd --------------------------------------------------------------------------------------

@dataclass
class Library:
    name: str
    path: str | None
    packages: set[str] = field(default_factory=set)
    allowed_by: str | None = None


def ldd_libraries(binary: Path) -> tuple[list[Library], str]:
    result = run(["ldd", str(binary)], check=False)
    text = result.stdout + result.stderr
    if "not a dynamic executable" in text or "statically linked" in text:
        return [], text
    if result.returncode != 0:
        raise RuntimeError(f"ldd {binary} failed: {text.strip()}")
    libraries: list[Library] = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith("linux-vdso") or line.startswith("linux-gate"):
            continue
        m = re.match(r"(\S+) => (not found|(\S+)) ?(\(0x[0-9a-f]+\))?$", line)
        if m:
            libraries.append(Library(m.group(1), None if m.group(2) == "not found" else m.group(3)))
            continue
        m = re.match(r"(/\S+) \(0x[0-9a-f]+\)$", line)
        if m:
            libraries.append(Library(os.path.basename(m.group(1)), m.group(1)))
    return libraries, text


def check_libraries(binary: Path, stage: RuntimeStage, allow_dirs: list[str], report: Report) -> tuple[bool, list[Library]]:
    libraries, raw = ldd_libraries(binary)
    if not libraries:
        report.ok(f"(a) ldd: {binary.name} loads no shared library ({raw.strip()})")
        return True, []
    listed = set(stage.packages)
    good = True
    for lib in libraries:
        if lib.path is None:
            report.fail(f"(a) {lib.name}: not found on this host")
            good = False
            continue
        real = os.path.realpath(lib.path)
        for d in allow_dirs:
            if real.startswith(d.rstrip("/") + "/") or lib.path.startswith(d.rstrip("/") + "/"):
                lib.allowed_by = d
        lib.packages = owning_packages(lib.path)
        if lib.allowed_by:
            report.fail(f"(a) {lib.name} => {lib.path}: outside every runtime package; copied from --allow-dir {lib.allowed_by} (debug only)")
            good = False
        elif real.startswith("/opt/") or "/swift/" in real:
            report.fail(f"(a) {lib.name} => {lib.path}: a Swift toolchain library: the Swift runtime is not linked statically (build with --static-swift-stdlib)")
            good = False
        elif not lib.packages:
            report.fail(f"(a) {lib.name} => {lib.path}: no Debian package owns it")
            good = False
        elif not (lib.packages & listed):
            report.fail(f"(a) {lib.name} => {lib.path}: from {', '.join(sorted(lib.packages))}, which the runtime stage does not install")
            good = False
        else:
            report.ok(f"(a) {lib.name} => {lib.path} ({', '.join(sorted(lib.packages & listed))})")
    return good, libraries


# --- (b) root filesystem --------------------------------------------------------------------------

def copy_entry(source: str, root: Path) -> None:
    """Copies one path of a package into root (symlinks as symlinks, directories created)."""
    dest = root / source.lstrip("/")
    st = os.lstat(source)
    if stat.S_ISDIR(st.st_mode):
        if not os.path.lexists(dest):
            os.makedirs(dest, exist_ok=True)
            os.chmod(dest, stat.S_IMODE(st.st_mode))
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(dest):
        return
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(source), dest)
    else:
        shutil.copy2(source, dest, follow_symlinks=False)


def build_root(root: Path, stage: RuntimeStage, binary: Path, libraries: list[Library], report: Report) -> bool:
    # debian:bookworm-slim is merged-usr: /bin, /lib, ... are links into /usr.
    for d in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for d in ("bin", "sbin", "lib", "lib64"):
        os.symlink(f"usr/{d}", root / d)
    copied = 0
    for package in stage.packages:
        for path in package_files(package):
            if path in ("/.", "/") or path.startswith(SKIPPED_PREFIXES):
                continue
            if not os.path.lexists(path):
                continue  # a conffile removed by the admin, or a path excluded on this host
            if any(path == f"/{d}" for d in MERGED_USR_DIRS):
                continue
            copy_entry(path, root)
            copied += 1
    for lib in libraries:
        if lib.allowed_by and lib.path:
            for p in {lib.path, os.path.realpath(lib.path)}:
                dest = root / p.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not os.path.lexists(dest):
                    shutil.copy2(p, dest)
    # The binary and its SwiftPM resource bundles, where the Dockerfile puts them.
    target = root / BINARY_IN_IMAGE.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, target)
    os.chmod(target, 0o755)
    for bundle in binary.parent.glob("*.resources"):
        shutil.copytree(bundle, target.parent / bundle.name)
    # Users, temporary and data directories, name resolution.
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text(f"root:x:0:0:root:/root:/bin/sh\npeat:x:{PEAT_UID}:{PEAT_GID}::/nonexistent:/usr/sbin/nologin\n")
    (etc / "group").write_text(f"root:x:0:\npeat:x:{PEAT_GID}:\n")
    (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{TEST_HOSTNAME}\n")
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    os.chmod(tmp, 0o1777)
    data = root / "data"
    data.mkdir(exist_ok=True)
    os.chown(data, PEAT_UID, PEAT_GID)
    os.chmod(data, 0o700)
    for d in ("proc", "sys", "dev"):
        (root / d).mkdir(exist_ok=True)
    # The dynamic loader cache, as libc-bin's trigger builds it in the image.
    if shutil.which("ldconfig"):
        run(["ldconfig", "-r", str(root)], check=False)
    report.ok(f"(b) root filesystem: {copied} paths from {len(stage.packages)} packages + {BINARY_IN_IMAGE} in {root}")
    return True


class Mounts:
    """/proc, /sys (read-only) and /dev/{null,zero,random,urandom,tty} inside the root, as a
    container runtime provides them; unmounted (and checked) before the root is removed."""

    DEVICES = ("null", "zero", "random", "urandom", "full", "tty")

    def __init__(self, root: Path, report: Report) -> None:
        self.root = root
        self.report = report
        self.mounted: list[Path] = []

    def __enter__(self) -> "Mounts":
        self._mount(["mount", "-t", "proc", "proc"], self.root / "proc")
        self._mount(["mount", "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs"], self.root / "sys", optional=True)
        self._mount(["mount", "-t", "tmpfs", "-o", "mode=755,nosuid,size=1m", "tmpfs"], self.root / "dev")
        for name in self.DEVICES:
            node = self.root / "dev" / name
            node.touch()
            self._mount(["mount", "--bind", f"/dev/{name}"], node, optional=name == "tty")
        (self.root / "dev" / "shm").mkdir(exist_ok=True)
        os.chmod(self.root / "dev" / "shm", 0o1777)
        return self

    def _mount(self, cmd: list[str], target: Path, optional: bool = False) -> None:
        result = run(cmd + [str(target)], check=False)
        if result.returncode == 0:
            self.mounted.append(target)
        elif not optional:
            raise RuntimeError(f"{' '.join(cmd)} {target}: {result.stderr.strip()} (needs root / CAP_SYS_ADMIN)")

    def __exit__(self, *exc) -> None:
        for target in reversed(self.mounted):
            result = run(["umount", str(target)], check=False)
            if result.returncode != 0:
                run(["umount", "-l", str(target)], check=False)
        self.mounted.clear()

    def clean(self) -> bool:
        prefix = str(self.root.resolve()) + "/"
        with open("/proc/self/mountinfo") as f:
            return not any(line.split()[4].startswith(prefix) for line in f)


def chroot_command(root: Path, stage: RuntimeStage, args: list[str]) -> list[str]:
    return ["chroot", f"--userspec={PEAT_UID}:{PEAT_GID}", "--groups=", str(root)] + stage.entrypoint + args


def container_env(**extra: str) -> dict[str, str]:
    env = {"PATH": CONTAINER_PATH, "PEAT_DATA_DIR": "/data", "HOME": "/nonexistent",
           # tini is not PID 1 here: let it register as a subreaper instead of warning.
           "TINI_SUBREAPER": "1"}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, timeout: float = 3) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def run_identity(root: Path, stage: RuntimeStage, report: Report) -> bool:
    cmd = chroot_command(root, stage, ["identity"])
    env = container_env(PEAT_FORMATION_SECRET=TEST_SECRET, HOSTNAME=TEST_HOSTNAME)
    result = subprocess.run(cmd, env=env, text=True, capture_output=True, timeout=60)
    out = result.stdout.strip()
    if result.returncode != 0 or not re.fullmatch(rf"node_id={TEST_HOSTNAME} device_id=[0-9a-f]{{32}}", out):
        report.fail(f"(b) identity: exit {result.returncode}, stdout {out!r}, stderr {result.stderr.strip()[-800:]!r}")
        return False
    report.ok(f"(b) identity as uid {PEAT_UID} via {' '.join(stage.entrypoint)}: {out}")
    if not out.endswith(EXPECTED_DEVICE_ID):
        report.fail(f"(b) identity: device_id is not the reference {EXPECTED_DEVICE_ID}")
        return False
    return True


def run_node(root: Path, stage: RuntimeStage, report: Report, start_timeout: float) -> bool:
    broker, sync = free_port(), free_port()
    while sync == broker:
        sync = free_port()
    env = container_env(PEAT_FORMATION_SECRET=TEST_SECRET, HOSTNAME=TEST_HOSTNAME, PEAT_DISCOVERY="static",
                        PEAT_BIND_HOST="127.0.0.1", PEAT_BROKER_PORT=str(broker), PEAT_SYNC_PORT=str(sync))
    log_path = root.parent / "node.log"
    base = f"http://127.0.0.1:{broker}"
    good = True
    with open(log_path, "w") as log:
        process = subprocess.Popen(chroot_command(root, stage, []), env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + start_timeout
            status, body = 0, b""
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    status, body = http("GET", f"{base}/api/v1/health")
                    if status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.3)
            if status == 200 and json.loads(body).get("status") == "healthy":
                report.ok(f"(b) node: GET /api/v1/health 200 {body.decode().strip()}")
            else:
                report.fail(f"(b) node: no healthy /api/v1/health within {start_timeout:.0f}s (exit {process.poll()}, last status {status})")
                good = False
            if good:
                good &= exercise_node(base, report)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    code = process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    code = process.wait()
                    report.fail("(b) node: still running 30 s after SIGTERM (killed)")
                    good = False
                else:
                    if code == 0:
                        report.ok("(b) node: SIGTERM -> exit status 0")
                    else:
                        report.fail(f"(b) node: SIGTERM -> exit status {code}")
                        good = False
            else:
                report.fail(f"(b) node: exited early with status {process.returncode}")
                good = False
    text = log_path.read_text(errors="replace")
    bad = [l for l in text.splitlines() if BAD_LOG_LEVEL.search(l)]
    if bad:
        report.fail(f"(b) node log: {len(bad)} ERROR/CRITICAL line(s): {bad[:3]}")
        good = False
    if "peat-mesh-node stopped" not in text:
        report.fail("(b) node log: no 'peat-mesh-node stopped' line")
        good = False
    if not good:
        report.info("node output (last 40 lines):")
        for line in text.splitlines()[-40:]:
            report.info(f"  {line}")
    else:
        started = next((l for l in text.splitlines() if "Mesh started" in l), "")
        report.ok(f"(b) node log clean ({len(text.splitlines())} lines): {started.split(': ', 1)[-1]}")
    data = root / "data" / "automerge"
    if data.exists():
        owners = {(p.stat().st_uid, p.stat().st_gid) for p in [data, *data.rglob("*")]}
        if owners == {(PEAT_UID, PEAT_GID)}:
            report.ok(f"(b) /data/automerge written by {PEAT_UID}:{PEAT_GID}")
        else:
            report.fail(f"(b) /data/automerge owners {owners}")
            good = False
    else:
        report.fail("(b) /data/automerge was not created")
        good = False
    return good


def exercise_node(base: str, report: Report) -> bool:
    good = True
    status, body = http("GET", f"{base}/api/v1/openapi.json")
    try:
        openapi = json.loads(body)
    except ValueError:
        openapi = {}
    if status == 200 and "openapi" in openapi and openapi.get("paths"):
        report.ok(f"(b) node: GET /api/v1/openapi.json 200 ({len(openapi['paths'])} paths from the bundled resource)")
    else:
        report.fail(f"(b) node: GET /api/v1/openapi.json -> {status} {body[:200]!r} (resource bundle next to the binary?)")
        good = False
    document = {"check": "runtime_libs", "n": 1, "tags": ["a", "b"], "nested": {"x": 1.5}}
    status, body = http("PUT", f"{base}/api/v1/documents/verify/doc-1", json.dumps(document).encode())
    got_status, got = http("GET", f"{base}/api/v1/documents/verify/doc-1")
    if status in (200, 201) and got_status == 200 and json.loads(got).get("document") == document:
        report.ok("(b) node: PUT + GET /api/v1/documents/verify/doc-1 (LMDB in /data as uid 10001)")
    else:
        report.fail(f"(b) node: document write/read: PUT {status} {body[:200]!r}, GET {got_status} {got[:200]!r}")
        good = False
    status, body = http("GET", f"{base}/api/v1/ready")
    if status == 200:
        report.ok("(b) node: GET /api/v1/ready 200")
    else:
        report.fail(f"(b) node: GET /api/v1/ready -> {status} {body[:300]!r}")
        good = False
    return good


# --- size -----------------------------------------------------------------------------------------

def apt_depends_closure(packages: list[str]) -> set[str]:
    """Depends/PreDepends closure (installed alternatives) of the packages."""
    result = run(["apt-cache", "depends", "--recurse", "--installed", "--no-recommends", "--no-suggests",
                  "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"] + packages, check=False)
    closure = set(packages)
    for line in result.stdout.splitlines():
        name = line.strip()
        if not name:
            continue
        if ":" in name and not name.startswith(("Depends", "PreDepends", "|Depends", "|PreDepends")):
            continue
        if name.startswith(("Depends:", "PreDepends:", "|Depends:", "|PreDepends:")):
            name = name.split(":", 1)[1].strip()
        if name.startswith("<") or " " in name:
            continue
        closure.add(name.split(":")[0])
    return {p for p in closure if installed(p)}


def slim_packages() -> set[str]:
    """What debian:bookworm-slim holds (debootstrap minbase): the Priority: required packages and
    apt, with their dependencies — computed from this (bookworm) host's package database."""
    out = run(["dpkg-query", "-W", "-f=${Package} ${Priority}\n"]).stdout
    required = [line.split()[0] for line in out.splitlines() if line.endswith(" required")]
    return apt_depends_closure(required + ["apt"])


def size_report(stage: RuntimeStage, binary: Path, args: argparse.Namespace, report: Report) -> bool:
    slim = slim_packages()
    closure = apt_depends_closure(stage.packages)
    added = sorted(closure - slim)
    kept = sorted(set(stage.packages) & slim)
    pulled = sorted(set(added) - set(stage.packages))
    added_kib = {p: installed_size_kib(p) for p in added}
    binary_bytes = binary.stat().st_size
    resources = sum(f.stat().st_size for b in binary.parent.glob("*.resources") for f in b.rglob("*") if f.is_file())
    mb = 1_000_000
    packages_mb = sum(added_kib.values()) * 1024 / mb
    added_mb = packages_mb + (binary_bytes + resources) / mb
    total = args.base_mb + added_mb
    report.info(f"size: base {stage.base_image} assumed {args.base_mb:.1f} MB uncompressed (--base-mb)")
    report.info(f"size: already in bookworm-slim: {' '.join(kept) or '-'}")
    report.info("size: added packages: " + (", ".join(f"{p} {added_kib[p]} KiB" for p in added) or "-")
                + (f" (pulled in as dependencies: {' '.join(pulled)})" if pulled else ""))
    report.info(f"size: binary {binary_bytes / mb:.1f} MB + resources {resources / 1000:.1f} kB")
    report.info(f"size: estimated image {total:.1f} MB = {args.base_mb:.1f} base + {packages_mb:.1f} packages + {(binary_bytes + resources) / mb:.1f} binary (added {added_mb:.1f} MB)")
    measured = total if args.limit_applies_to == "total" else added_mb
    label = "estimated image" if args.limit_applies_to == "total" else "added to the base"
    if measured > args.limit_mb:
        message = f"size: {label} {measured:.1f} MB > {args.limit_mb:.0f} MB"
        if args.strict_size:
            report.fail(message)
            return False
        report.flag(message)
    else:
        report.ok(f"size: {label} {measured:.1f} MB <= {args.limit_mb:.0f} MB")
    return True


# --- main -----------------------------------------------------------------------------------------

def host_is_bookworm() -> str | None:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return None
    m = re.search(r"^VERSION_CODENAME=(\S+)", text, re.MULTILINE)
    return m.group(1).strip('"') if m else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("binary", type=Path, help="a --static-swift-stdlib release build of peat-mesh-node")
    parser.add_argument("--dockerfile", type=Path, default=DEFAULT_DOCKERFILE)
    parser.add_argument("--allow-dir", action="append", default=[], metavar="DIR",
                        help="debug: accept and copy libraries under DIR (the result still fails)")
    parser.add_argument("--base-mb", type=float, default=74.8, help="debian:bookworm-slim uncompressed size (MB)")
    parser.add_argument("--limit-mb", type=float, default=60.0)
    parser.add_argument("--limit-applies-to", choices=("added", "total"), default="added")
    parser.add_argument("--strict-size", action="store_true", help="fail (not only flag) above --limit-mb")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install missing packages")
    parser.add_argument("--skip-run", action="store_true", help="only steps (a) and size")
    parser.add_argument("--keep-root", action="store_true", help="keep the root filesystem (its path is printed)")
    parser.add_argument("--start-timeout", type=float, default=60.0)
    args = parser.parse_args()

    report = Report()
    binary = args.binary.resolve()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        print(f"runtime_libs: {args.binary}: not an executable file", file=sys.stderr)
        return 2
    for tool in ("ldd", "dpkg-query", "chroot", "mount", "umount"):
        if not shutil.which(tool):
            print(f"runtime_libs: {tool} is required", file=sys.stderr)
            return 2

    codename = host_is_bookworm()
    if codename != "bookworm":
        report.info(f"warning: this host is {codename or 'not Debian'}, the runtime image is bookworm: package contents may differ")

    try:
        stage = parse_runtime_stage(args.dockerfile)
    except (OSError, ValueError) as error:
        report.fail(f"packages: {error}")
        return 1
    report.ok(f"packages ({args.dockerfile.name}:{stage.install_line}, FROM {stage.base_image}): {' '.join(stage.packages)}")
    report.info(f"entrypoint: {json.dumps(stage.entrypoint)}")

    if not ensure_installed(stage.packages, report, not args.no_install):
        return 1

    libs_ok, libraries = check_libraries(binary, stage, [os.path.realpath(d) for d in args.allow_dir], report)
    allowed = [l for l in libraries if l.allowed_by]
    unexplained = [l for l in libraries if not l.allowed_by and (l.path is None or not (l.packages & set(stage.packages)))]
    if libs_ok:
        report.ok(f"(a) all {len(libraries)} libraries come from the runtime packages")
    elif allowed and not unexplained:
        report.info(f"(a) {len(allowed)} libraries only from --allow-dir: continuing to (b) for debugging")

    run_ok = True
    if not args.skip_run and (libs_ok or (allowed and not unexplained)):
        if os.geteuid() != 0:
            report.fail("(b) needs root (chroot, mounts, chown)")
            run_ok = False
        else:
            work = Path(tempfile.mkdtemp(prefix="peat-runtime-root."))
            root = work / "root"
            root.mkdir()
            mounts = Mounts(root, report)
            try:
                build_root(root, stage, binary, libraries, report)
                with mounts:
                    run_ok = run_identity(root, stage, report)
                    run_ok = run_node(root, stage, report, args.start_timeout) and run_ok
            except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                report.fail(f"(b) {error}")
                run_ok = False
            finally:
                if args.keep_root:
                    report.info(f"root filesystem kept in {root}")
                elif mounts.clean():
                    shutil.rmtree(work, ignore_errors=True)
                else:
                    report.info(f"warning: mounts remain under {root}; not removing it")
    elif args.skip_run:
        report.info("(b) skipped (--skip-run)")
    else:
        report.info("(b) skipped: step (a) failed (use --allow-dir to exercise it with a dynamic binary)")

    size_ok = size_report(stage, binary, args, report)

    print()
    if libs_ok and run_ok and size_ok:
        print(f"RESULT: OK: the runtime stage's packages ({' '.join(stage.packages)}) suffice for {binary}")
        return 0
    print(f"RESULT: FAIL ({len(report.failures)} failure(s))")
    return 1


if __name__ == "__main__":
    sys.exit(main())
