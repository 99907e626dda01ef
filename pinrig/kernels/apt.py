"""A private apt state: apt-get/apt-cache against one Debian suite without touching the host's apt."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

from pinrig import paths, proc
from pinrig.errors import InfraError, UserError
from pinrig.paths import atomic_write

# Pockets read besides the suite itself: a user naming a suite expects its newest kernel,
# security fixes included (bookworm main had 6.1.176-1 while bookworm-security had 6.1.192-3).
POCKETLESS = ("sid", "unstable", "experimental")


def pockets(suite: str, mirror: str) -> list:
    """[(uri, suite)] the private state reads for suite: main, -updates, -security."""
    if suite in POCKETLESS or suite.endswith("-backports"):
        return [(mirror, suite)]
    base = mirror.rstrip("/")
    security = base + "-security" if base.endswith("/debian") else None
    out = [(mirror, suite), (mirror, f"{suite}-updates")]
    if security:
        out.append((security, f"{suite}-security"))
    return out


class PrivateApt:
    """apt-get/apt-cache with a private state dir for one (suite, mirror).

    Every apt call on the state holds the state's cache lock, so two rig processes sharing a
    cache wait for each other instead of rewriting the same lists (apt's own locking is off:
    it would fail the second process instead of letting it wait)."""

    def __init__(self, suite: str, mirror: str, root: Optional[Path] = None):
        self.suite, self.mirror = suite, mirror
        key = hashlib.sha256(mirror.encode()).hexdigest()[:8]
        self.root = root or paths.cache_dir() / "apt" / f"{suite.replace('/', '_')}-{key}"
        for d in ("lists/partial", "cache/archives/partial", "etc"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        lines = "".join(f"deb [signed-by={keyring}] {uri} {s} main\n"
                        for uri, s in pockets(suite, mirror))
        with paths.cache_lock(self.root):
            if not (self.root / "etc/sources.list").exists() or \
                    (self.root / "etc/sources.list").read_text() != lines:
                atomic_write(self.root / "etc/sources.list", lines)
            status = self.root / "status"
            if not status.exists():
                status.write_text("")

    def opts(self) -> list:
        r = self.root
        return ["-o", f"Dir::Etc::sourcelist={r}/etc/sources.list", "-o", "Dir::Etc::sourceparts=-",
                "-o", f"Dir::State::Lists={r}/lists", "-o", f"Dir::Cache={r}/cache",
                "-o", f"Dir::State::status={r}/status", "-o", "APT::Architecture=amd64",
                "-o", "Acquire::Languages=none", "-o", "Debug::NoLocking=1"]

    def update(self) -> None:
        proc.progress(f"apt: fetching the {self.suite} package index "
                      f"({', '.join(s for _u, s in pockets(self.suite, self.mirror))})")
        with paths.cache_lock(self.root):
            proc.run(["apt-get", *self.opts(), "update"], what=f"apt-get update ({self.suite})",
                     timeout=600)

    def show(self, pkg: str, version: Optional[str] = None) -> dict:
        """Fields of the candidate version of pkg (or of exactly `version`)."""
        arg = f"{pkg}={version}" if version else pkg
        with paths.cache_lock(self.root):
            res = proc.run(["apt-cache", *self.opts(), "show", "--no-all-versions", arg],
                           check=False)
        if res.returncode != 0 or not res.stdout.strip():
            what = f"package {pkg} version {version}" if version else f"package {pkg}"
            raise UserError(f"{what} not found in Debian suite {self.suite}")
        return parse_control(res.stdout)

    def download(self, pkg: str, version: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        proc.progress(f"apt: downloading {pkg} {version}")
        with paths.cache_lock(self.root), proc.watch_size(dest, 0, f"download {pkg}"):
            proc.run(["apt-get", *self.opts(), "download", f"{pkg}={version}"], cwd=dest,
                     what=f"apt-get download {pkg}", timeout=1800)
        debs = [p for p in dest.glob(f"{pkg}_*.deb")]
        if not debs:
            raise InfraError(f"apt-get download {pkg}={version} produced no .deb in {dest}")
        return debs[0]


def parse_control(text: str) -> dict:
    """First stanza of Debian control text → {field: value} (continuation lines joined)."""
    fields: dict = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and last:
            fields[last] += " " + line.strip()
        elif ":" in line:
            k, v = line.split(":", 1)
            last = k.strip()
            fields[last] = v.strip()
    return fields


def depends_names(depends: str) -> list:
    """'a (= 1), b | c, d' → ['a', 'b', 'd'] (first alternative of each clause)."""
    out = []
    for clause in depends.split(","):
        first = clause.split("|")[0].strip()
        name = first.split(" ")[0].split(":")[0].strip()
        if name:
            out.append(name)
    return out


