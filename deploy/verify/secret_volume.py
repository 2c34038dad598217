#!/usr/bin/env python3
"""A Secret volume laid out the way the kubelet's atomic writer lays it out (kubelet
pkg/volume/util/atomic_writer.go), for pod_sim.py. A volume with the item broker-token looks like

    <volume>/..2026_01_02_03_04_05.1234567890/broker-token   the content, in a timestamped directory
    <volume>/..data -> ..2026_01_02_03_04_05.1234567890      replaced atomically on every update
    <volume>/broker-token -> ..data/broker-token             what the container opens; never changes

An update writes a new timestamped directory, points a new `..data_tmp` symlink at it and renames
that over `..data` (one atomic rename), then removes the old directory. The file the container
names is a symlink whose target path stays the same: its inode never changes and nothing writes
to it, so a reader must notice the swap (watch the directory, or re-read / compare periodically),
not wait for a modification of the file.

With an fsGroup the kubelet then gives everything that group (files |= 0440, directories |= 02550,
read-only volume), as volume.SetVolumeOwnership does.

    python3 deploy/verify/secret_volume.py     # self-test in a temporary directory
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import sys
import tempfile
import time
from typing import Any

DATA_DIR = "..data"
DATA_DIR_TMP = "..data_tmp"


class VolumeError(Exception):
    """The kubelet could not set the volume up (the pod would stay in ContainerCreating)."""


def payload(secret: dict[str, Any], source: dict[str, Any]) -> dict[str, tuple[bytes, int]]:
    """{relative path: (content, mode)} of a `secret` volume source over a Secret object, as the
    kubelet projects it: every key as a file named after it, or only `items` (key -> path, mode)."""
    data = {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
    data.update({key: str(value).encode() for key, value in (secret.get("stringData") or {}).items()})
    default_mode = int(source.get("defaultMode", 0o644))
    items = source.get("items")
    if not items:
        return {key: (content, default_mode) for key, content in data.items()}
    files: dict[str, tuple[bytes, int]] = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise VolumeError(f"couldn't find key {item['key']} in Secret {secret['metadata']['name']}")
        path = item["path"]
        if path.startswith("/") or ".." in path.split("/") or path.startswith(".."):
            raise VolumeError(f"invalid path {path!r} in the volume's items")
        files[path] = (data[item["key"]], int(item.get("mode", default_mode)))
    return files


class SecretVolume:
    """One pod's Secret volume in a host directory (bind-mounted into the container read-only)."""

    def __init__(self, directory: str, fs_group: int | None) -> None:
        self.directory = directory
        self.fs_group = fs_group
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o755)
        if fs_group is not None:
            os.chown(directory, 0, fs_group)
            os.chmod(directory, 0o2755)

    def current(self) -> str | None:
        """The timestamped directory `..data` points at (None before the first write)."""
        try:
            return os.readlink(os.path.join(self.directory, DATA_DIR))
        except FileNotFoundError:
            return None

    def write(self, files: dict[str, tuple[bytes, int]]) -> str:
        """Writes `files` as the volume's new content; returns the new timestamped directory's name."""
        old = self.current()
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        ts_dir = tempfile.mkdtemp(prefix=stamp, dir=self.directory)
        os.chmod(ts_dir, 0o755)
        for relative, (content, mode) in sorted(files.items()):
            path = os.path.join(ts_dir, relative)
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(content)
            os.chmod(path, mode)
        if self.fs_group is not None:
            self._set_ownership(ts_dir)
        name = os.path.basename(ts_dir)
        tmp_link = os.path.join(self.directory, DATA_DIR_TMP)
        if os.path.lexists(tmp_link):
            os.unlink(tmp_link)
        os.symlink(name, tmp_link)
        os.rename(tmp_link, os.path.join(self.directory, DATA_DIR))  # the atomic swap
        # User-visible paths: one symlink per top-level name, through ..data.
        wanted = {relative.split("/", 1)[0] for relative in files}
        for entry in os.listdir(self.directory):
            path = os.path.join(self.directory, entry)
            if entry.startswith(".."):
                continue
            if entry not in wanted and os.path.islink(path):
                os.unlink(path)
        for top in sorted(wanted):
            link = os.path.join(self.directory, top)
            if not os.path.lexists(link):
                os.symlink(os.path.join(DATA_DIR, top), link)
        if old and old != name:
            shutil.rmtree(os.path.join(self.directory, old), ignore_errors=True)
        return name

    def _set_ownership(self, root: str) -> None:
        assert self.fs_group is not None
        for directory, dirs, names in os.walk(root):
            for path in [directory] + [os.path.join(directory, n) for n in names]:
                info = os.lstat(path)
                os.lchown(path, -1, self.fs_group)
                if stat.S_ISLNK(info.st_mode):
                    continue
                mask = 0o440 | (stat.S_ISGID | 0o110 if stat.S_ISDIR(info.st_mode) else 0)
                os.chmod(path, stat.S_IMODE(info.st_mode) | mask)


def _self_test() -> int:
    problems: list[str] = []
    secret = {"metadata": {"name": "t"}, "data": {"broker-token": base64.b64encode(b"first\n").decode(),
                                                  "other": base64.b64encode(b"x").decode()}}
    source = {"secretName": "t", "defaultMode": 0o440, "items": [{"key": "broker-token", "path": "broker-token"}]}
    files = payload(secret, source)
    if files != {"broker-token": (b"first\n", 0o440)}:
        problems.append(f"payload with items: {files}")
    if set(payload(secret, {"secretName": "t"})) != {"broker-token", "other"}:
        problems.append("payload without items must project every key")
    try:
        payload(secret, {"items": [{"key": "missing", "path": "m"}]})
        problems.append("a missing key must fail the volume")
    except VolumeError:
        pass
    with tempfile.TemporaryDirectory() as root:
        gid = os.getgid() if os.geteuid() != 0 else 10001
        volume = SecretVolume(os.path.join(root, "vol"), gid if os.geteuid() == 0 else None)
        first = volume.write(files)
        path = os.path.join(volume.directory, "broker-token")
        inode = os.lstat(path).st_ino
        if open(path, "rb").read() != b"first\n" or os.readlink(path) != "..data/broker-token":
            problems.append(f"first write: {open(path, 'rb').read()!r} via {os.readlink(path)}")
        if os.geteuid() == 0:
            info = os.stat(path)
            if (info.st_gid, stat.S_IMODE(info.st_mode)) != (gid, 0o440):
                problems.append(f"file owner/mode {info.st_gid} {oct(stat.S_IMODE(info.st_mode))}, expected {gid} 0o440")
        # Rotation: a reader holding the old file open keeps the old content; a new open sees the new one.
        handle = open(path, "rb")
        secret["data"]["broker-token"] = base64.b64encode(b"second").decode()
        second = volume.write(payload(secret, source))
        if open(path, "rb").read() != b"second" or handle.read() != b"first\n":
            problems.append("after the update a new open must read the new content, an old handle the old one")
        handle.close()
        if os.lstat(path).st_ino != inode:
            problems.append("the user-visible symlink must stay the same inode (only ..data is swapped)")
        left = sorted(e for e in os.listdir(volume.directory))
        if left != sorted([DATA_DIR, second, "broker-token"]) or first in left:
            problems.append(f"after the update the volume holds {left}")
    for problem in problems:
        print(f"FAIL {problem}")
    print("secret_volume: self-test " + ("passed" if not problems else f"failed ({len(problems)})"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(_self_test())
