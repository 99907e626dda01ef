"""A private apt state: apt-get/apt-cache against one Debian suite without touching the host's apt."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from pinrig import paths, proc
from pinrig.errors import InfraError, UserError


class PrivateApt:
    """apt-get/apt-cache with a private state dir for one suite."""

    def __init__(self, suite: str, mirror: str, root: Optional[Path] = None):
        self.suite, self.mirror = suite, mirror
        self.root = root or paths.cache_dir() / "apt" / suite.replace("/", "_")
        for d in ("lists/partial", "cache/archives/partial", "etc"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        (self.root / "etc/sources.list").write_text(
            f"deb [signed-by={keyring}] {mirror} {suite} main\n")
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
        proc.progress(f"apt: fetching the {self.suite} package index")
        proc.run(["apt-get", *self.opts(), "update"], what=f"apt-get update ({self.suite})",
                 timeout=600)

    def show(self, pkg: str, version: Optional[str] = None) -> dict:
        """Fields of the candidate version of pkg (or of exactly `version`)."""
        arg = f"{pkg}={version}" if version else pkg
        res = proc.run(["apt-cache", *self.opts(), "show", "--no-all-versions", arg], check=False)
        if res.returncode != 0 or not res.stdout.strip():
            what = f"package {pkg} version {version}" if version else f"package {pkg}"
            raise UserError(f"{what} not found in Debian suite {self.suite}")
        return parse_control(res.stdout)

    def download(self, pkg: str, version: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        proc.progress(f"apt: downloading {pkg} {version}")
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


