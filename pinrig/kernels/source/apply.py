"""Apply a series to a work tree with GNU patch, strictly (no fuzz), one patch at a time.

Each patch is first tried with --dry-run against the tree as the previous patches left it; a
failure is reported with the patch's name and position, the file and the hunk (its @@ header),
before anything is built. Files are restored from the pristine tree afterwards (file by file:
only what the series touched), so a failed series leaves the work tree as it found it.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pinrig import proc
from pinrig.errors import UserError
from pinrig.kernels.source.series import Patch, Series

PATCH_OPTS = ("--batch", "--forward", "--fuzz=0", "--no-backup-if-mismatch", "-r", "-")


@dataclass(frozen=True)
class Failure:
    patch: str
    index: int                # 1-based position in the series
    total: int
    file: Optional[str]
    hunk: Optional[int]
    hunks: Optional[int]      # hunks for that file in the patch
    header: Optional[str]     # "@@ -1075,6 +1075,9 @@ static int check_vma_flags(…)"
    at_line: Optional[int]    # line in the target file where patch looked
    reason: str               # "hunk FAILED", "file not found", "already applied", …
    output: str = ""

    def message(self, target: str) -> str:
        where = f"patch {self.index}/{self.total} {self.patch}"
        what = self.reason
        if self.file:
            what = f"{self.file}: {what}"
        if self.hunk:
            of = f" of {self.hunks}" if self.hunks else ""
            at = f" at line {self.at_line}" if self.at_line else ""
            hdr = f" ({self.header})" if self.header else ""
            what = f"{self.file}: hunk #{self.hunk}{of} FAILED{at}{hdr}"
        return f"{where} does not apply to {target}: {what}; nothing was built"


class PatchDoesNotApply(UserError):
    def __init__(self, failure: Failure, target: str):
        super().__init__(failure.message(target))
        self.failure = failure


def parse_patch_output(out: str, patch: Patch, index: int, total: int) -> Failure:
    """GNU patch's (dry-run) output for a patch that failed → the first failure in it."""
    current = None
    lines = out.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(?:checking|patching) file (.+?)\s*$", line)
        if m:
            current = m.group(1).strip("'\"")
            continue
        m = re.match(r"^Hunk #(\d+) FAILED at (\d+)", line)
        if m:
            n, at = int(m.group(1)), int(m.group(2))
            fp = _file_patch(patch, current)
            header = fp.hunks[n - 1].header if fp and 0 < n <= len(fp.hunks) else None
            return Failure(patch.name, index, total, current, n, len(fp.hunks) if fp else None,
                           header, at, "hunk FAILED", out)
        if line.startswith("can't find file to patch"):
            path = None
            for later in lines[i:]:
                mm = re.match(r"^\|\+\+\+ (\S+)", later) or re.match(r"^\|--- (\S+)", later)
                if mm:
                    path = mm.group(1)
            fp_path = _strip(path, patch.strip) if path else None
            return Failure(patch.name, index, total, fp_path, None, None, None, None,
                           "file to patch not found in the tree", out)
        if "Reversed (or previously applied) patch detected" in line:
            return Failure(patch.name, index, total, current, None, None, None, None,
                           "already applied (or reversed)", out)
        m = re.match(r"^The next patch would (?:create|delete) the file (.+?),", line)
        if m:
            return Failure(patch.name, index, total, m.group(1), None, None, None, None,
                           line.split(",", 1)[1].strip().rstrip("!"), out)
        m = re.match(r"^patch: \*\*\*\* (.+)$", line)
        if m:
            return Failure(patch.name, index, total, current, None, None, None, None,
                           m.group(1).strip(), out)
    tail = " | ".join(line for line in lines[-3:] if line.strip()) or "patch failed"
    return Failure(patch.name, index, total, current, None, None, None, None, tail, out)


def _strip(path: str, n: int) -> str:
    parts = [p for p in path.split("/") if p]
    return "/".join(parts[n:]) if len(parts) > n else path


def _file_patch(patch: Patch, path: Optional[str]):
    for fp in patch.files:
        if path in (fp.new, fp.old):
            return fp
    return None


def _patch_argv(tree: Path, patch: Patch, pfile: Path, dry: bool) -> list:
    return ["patch", "-d", tree, f"-p{patch.strip}", *PATCH_OPTS,
            *(["--dry-run"] if dry else []), "-i", pfile]


def apply_series(tree: Path, series: Series, scratch: Path, target: str,
                 on_touch=None) -> list:
    """Apply every patch in order. `on_touch(paths)` is called with the files a patch may touch
    before the patch is applied (so they can be restored even after a crash). Returns the list of
    touched files. Raises PatchDoesNotApply naming patch, file and hunk."""
    touched: list = []
    scratch.mkdir(parents=True, exist_ok=True)
    total = len(series.patches)
    for k, patch in enumerate(series.patches, 1):
        pfile = scratch / f"{k:04d}.patch"
        pfile.write_bytes(patch.text.encode("utf-8", "surrogateescape"))
        new = [p for p in patch.touched() if p not in touched]
        touched.extend(new)
        if on_touch:
            on_touch(list(touched))
        res = proc.run(_patch_argv(tree, patch, pfile, dry=True), check=False)
        if res.returncode != 0:
            raise PatchDoesNotApply(parse_patch_output(res.stdout + res.stderr, patch, k, total),
                                    target)
        res = proc.run(_patch_argv(tree, patch, pfile, dry=False), check=False)
        if res.returncode != 0:           # cannot happen after a clean dry run, but say so
            raise PatchDoesNotApply(parse_patch_output(res.stdout + res.stderr, patch, k, total),
                                    target)
        pfile.unlink()
    return touched


def restore(tree: Path, pristine: Path, rels) -> None:
    """Make each relative path in the work tree what it is in the pristine tree (copied with a new
    mtime, so make rebuilds what depends on it), or remove it when pristine has none."""
    for rel in rels:
        dst = tree / rel
        src = pristine / rel
        for junk in (dst.with_name(dst.name + ".orig"), dst.with_name(dst.name + ".rej")):
            if junk.is_file() and not (pristine / rel).with_name(junk.name).exists():
                junk.unlink()
        if src.is_file():
            if dst.is_file() and not dst.is_symlink() and _same(src, dst):
                continue
            if dst.is_symlink() or dst.exists():
                if dst.is_dir() and not dst.is_symlink():
                    shutil.rmtree(dst)
                else:
                    dst.unlink()
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            shutil.copymode(src, dst)
        elif dst.is_file() or dst.is_symlink():
            dst.unlink()


def _same(a: Path, b: Path) -> bool:
    sa, sb = a.stat(), b.stat()
    if sa.st_size != sb.st_size or (sa.st_mode & 0o777) != (sb.st_mode & 0o777):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 16), fb.read(1 << 16)
            if x != y:
                return False
            if not x:
                return True


def sync_tree(src: Path, dst: Path, exclude=(".git",)) -> int:
    """Make dst a copy of src (a local source directory → its work copy): copy files whose size or
    mtime differ (mtime kept, so make sees the source's edits), remove files src no longer has.
    Returns the number of files copied or removed."""
    changed = 0
    seen = set()
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if d not in exclude]
        rroot = Path(root).relative_to(src)
        (dst / rroot).mkdir(parents=True, exist_ok=True)
        for name in files:
            rel = rroot / name
            seen.add(rel)
            s, d = src / rel, dst / rel
            st = s.lstat()
            try:
                dt = d.lstat()
                if dt.st_size == st.st_size and dt.st_mtime_ns == st.st_mtime_ns:
                    continue
            except FileNotFoundError:
                pass
            if d.is_symlink() or d.exists():
                d.unlink()
            if s.is_symlink():
                os.symlink(os.readlink(s), d)
            else:
                shutil.copy2(s, d)
            changed += 1
    for root, dirs, files in os.walk(dst):
        dirs[:] = [d for d in dirs if d not in exclude]
        rroot = Path(root).relative_to(dst)
        for name in files:
            if rroot / name not in seen:
                (dst / rroot / name).unlink()
                changed += 1
    return changed
