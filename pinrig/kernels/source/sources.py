"""Kernel source trees: Debian linux-source-X packages, a local git tree at a ref, a local directory.

`resolve()` is cheap (no download): it names the exact source version, which goes into the build
cache key. `materialize()` unpacks it once per version under the cache:

    sources/<kind>/<id>/pristine/   the tree as shipped (never written after unpacking)
    sources/<kind>/<id>/work/       a copy: patch series are applied (and reverted) here
    sources/<kind>/<id>/out/        the out-of-tree build directory (make O=…)
    sources/<kind>/<id>/state.json  which files of work/ a series has touched
    sources/<kind>/<id>/lock        one build per work tree at a time

A local directory is never written: its work copy is synced before each build.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TypeVar

from pinrig import paths, proc
from pinrig.config import KernelSpec
from pinrig.errors import InfraError, UserError

RESOLVE_MAX_AGE_S = 7 * 24 * 3600

_T = TypeVar("_T")


@dataclass(frozen=True)
class SourceRef:
    kind: str                 # debian / git / dir
    ident: str                # exact identity for the cache key
    label: str                # for messages and artifact metadata, e.g. linux-source-6.1 6.1.176-1
    slot: Path                # cache/sources/<kind>/<id>
    repo: Optional[Path] = None       # git: the repository; dir: the directory
    commit: Optional[str] = None      # git: the base commit
    package: Optional[tuple] = None   # debian: (name, version)

    @property
    def pristine(self) -> Path:
        return _need(self, "repo", self.repo) if self.kind == "dir" else self.slot / "pristine"

    @property
    def work(self) -> Path:
        return self.slot / "work"

    @property
    def out(self) -> Path:
        """The build directory of sessions before per-config ones (left for `rig gc`)."""
        return self.slot / "out"

    def out_for(self, config_digest: str) -> Path:
        """The build directory of one configuration: specs that differ only in their series
        share it (an incremental build), and switching between configurations of one source
        (a minimal, a debug and a full base) rebuilds nothing that was built before."""
        return self.slot / f"out-{config_digest[:12]}"

    @property
    def state_file(self) -> Path:
        return self.slot / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.slot / "lock"


def _need(ref: SourceRef, name: str, value: Optional[_T]) -> _T:
    """A field the ref's kind always sets (resolve() makes them); None is a bug."""
    if value is None:
        raise InfraError(f"source {ref.label}: a {ref.kind} source without its {name}")
    return value


def need_repo(ref: SourceRef) -> Path:
    return _need(ref, "repo", ref.repo)


def need_commit(ref: SourceRef) -> str:
    return _need(ref, "commit", ref.commit)


def _safe(s: str) -> str:
    """A directory name safe inside make rules: no '=' (a path like out/x=y/… in a rule is read as
    a variable assignment — the tools/objtool build then relinks on every make, and with it every
    kernel object is rebuilt), ':', '#', '%' or spaces."""
    return re.sub(r"[^\w.+-]", "_", s)[:120]


def sources_dir() -> Path:
    return paths.cache_dir() / "sources"


# ---------------------------------------------------------------------------- resolve

def resolve(spec: KernelSpec, refresh: bool = False) -> SourceRef:
    kind, _, arg = (spec.source or "").partition(":")
    if kind == "debian":
        return _resolve_debian(spec, arg, refresh)
    if kind == "git":
        return _resolve_git(spec, Path(arg))
    if kind == "dir":
        return _resolve_dir(Path(arg))
    raise UserError(f"{spec.path}: source: unknown source {spec.source!r}")


def _resolve_debian(spec: KernelSpec, pkg: str, refresh: bool) -> SourceRef:
    from pinrig.kernels.apt import PrivateApt
    if spec.version:
        version = spec.version
    else:
        rfile = paths.cache_dir() / "kernels" / "resolved" / f"{spec.suite}_{pkg}.json"
        fresh = rfile.exists() and time.time() - rfile.stat().st_mtime < RESOLVE_MAX_AGE_S
        if fresh and not refresh:
            version = json.loads(rfile.read_text())["version"]
        else:
            apt = PrivateApt(spec.suite, spec.mirror)
            apt.update()
            version = apt.show(pkg).get("Version", "")
            if not version:
                raise InfraError(f"apt-cache show {pkg} ({spec.suite}) has no Version")
            rfile.parent.mkdir(parents=True, exist_ok=True)
            rfile.write_text(json.dumps({"package": pkg, "version": version}))
    slot = sources_dir() / "debian" / _safe(f"{pkg}={version}")
    return SourceRef("debian", f"debian:{pkg}={version}", f"{pkg} {version}", slot,
                     package=(pkg, version))


def _resolve_git(spec: KernelSpec, repo: Path) -> SourceRef:
    ref = spec.ref or "HEAD"
    res = proc.run(["git", "-C", repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}"],
                   check=False)
    if res.returncode != 0:
        raise UserError(f"{spec.path}: ref: {ref!r} is not a commit in {repo}")
    sha = res.stdout.strip()
    slot = sources_dir() / "git" / _safe(f"{repo.name}-{hashlib.sha256(str(repo).encode()).hexdigest()[:8]}")
    return SourceRef("git", f"git:{sha}", f"{repo} {ref} ({sha[:12]})", slot, repo=repo,
                     commit=sha)


def tree_fingerprint(root: Path, exclude=(".git",)) -> str:
    """Content identity of a local directory, cheaply: every file's path, size and mtime."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in exclude)
        for name in sorted(files):
            p = Path(dirpath) / name
            st = p.lstat()
            h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _resolve_dir(tree: Path) -> SourceRef:
    if not (tree / "Makefile").is_file():
        raise UserError(f"source dir:{tree}: no Makefile (not a kernel tree?)")
    fp = tree_fingerprint(tree)
    slot = sources_dir() / "dir" / _safe(f"{tree.name}-{hashlib.sha256(str(tree).encode()).hexdigest()[:8]}")
    return SourceRef("dir", f"dir:{tree}@{fp}", f"{tree} (tree {fp[:12]})", slot, repo=tree)


# ---------------------------------------------------------------------------- materialize

def materialize(ref: SourceRef, spec: KernelSpec) -> None:
    """pristine/ and work/ exist and work/ matches the source (call with the slot lock held)."""
    ref.slot.mkdir(parents=True, exist_ok=True)
    if ref.kind == "dir":
        from pinrig.kernels.source.apply import sync_tree
        ref.work.mkdir(exist_ok=True)
        proc.progress(f"source: syncing {ref.repo} → work copy")
        n = sync_tree(_need(ref, "repo", ref.repo), ref.work)
        if n:
            _write_state(ref, {"touched": []})
        return
    if ref.kind == "git":
        marker = ref.slot / "pristine.commit"
        commit = _need(ref, "commit", ref.commit)
        if not marker.exists() or marker.read_text().strip() != commit:
            _unpack_git(ref)
            marker.write_text(commit + "\n")
    elif not (ref.slot / "pristine.done").exists():
        _unpack_debian(ref, spec)
    if not (ref.slot / "work.done").exists():
        proc.progress(f"source: copying {ref.label} to a work tree")
        shutil.rmtree(ref.work, ignore_errors=True)
        proc.run(["cp", "-a", f"{ref.pristine}/.", ref.work], what="cp -a (work tree)")
        _write_state(ref, {"touched": []})
        (ref.slot / "work.done").write_text("")


def _unpack_debian(ref: SourceRef, spec: KernelSpec) -> None:
    from pinrig.kernels.apt import PrivateApt
    pkg, version = _need(ref, "package", ref.package)
    tmp = ref.slot / "unpack.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    debs = sources_dir() / "debs"
    deb = next(iter(sorted(debs.glob(f"{pkg}_{version.split(':')[-1]}_*.deb"))), None)
    if deb is None:
        apt = PrivateApt(spec.suite, spec.mirror)
        if not any(apt.root.joinpath("lists").glob("*Packages*")):
            apt.update()
        deb = apt.download(pkg, version, debs)
    proc.progress(f"source: unpacking {deb.name}")
    proc.run(["dpkg-deb", "-x", deb, tmp / "deb"], what=f"dpkg-deb -x {deb.name}")
    tars = sorted((tmp / "deb/usr/src").glob("linux-source-*.tar.*"))
    if not tars:
        raise InfraError(f"{deb.name} has no /usr/src/linux-source-*.tar.* inside")
    proc.run(["tar", "-xf", tars[0], "-C", tmp], what=f"tar -xf {tars[0].name}", timeout=3600)
    trees = [d for d in tmp.iterdir() if d.is_dir() and d.name != "deb"]
    if len(trees) != 1 or not (trees[0] / "Makefile").is_file():
        raise InfraError(f"{tars[0].name} did not unpack to one kernel tree under {tmp}")
    shutil.rmtree(ref.pristine, ignore_errors=True)
    trees[0].rename(ref.pristine)
    shutil.rmtree(tmp)
    (ref.slot / "work.done").unlink(missing_ok=True)
    (ref.slot / "pristine.done").write_text(f"{pkg}={version}\n")


def _unpack_git(ref: SourceRef) -> None:
    proc.progress(f"source: git archive {ref.label}")
    tmp = ref.slot / "unpack.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tarball = ref.slot / "archive.tar"
    proc.run(["git", "-C", _need(ref, "repo", ref.repo), "archive", "--format=tar", "-o", tarball,
              _need(ref, "commit", ref.commit)],
             what="git archive", timeout=3600)
    proc.run(["tar", "-xf", tarball, "-C", tmp], what="tar -xf (git archive)", timeout=3600)
    tarball.unlink()
    shutil.rmtree(ref.pristine, ignore_errors=True)
    tmp.rename(ref.pristine)
    (ref.slot / "work.done").unlink(missing_ok=True)
    # the old work tree belongs to another commit: the next step copies a fresh one


def read_state(ref: SourceRef) -> dict:
    try:
        return json.loads(ref.state_file.read_text())
    except (OSError, ValueError):
        return {"touched": []}


def _write_state(ref: SourceRef, state: dict) -> None:
    tmp = ref.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.rename(ref.state_file)


write_state = _write_state
