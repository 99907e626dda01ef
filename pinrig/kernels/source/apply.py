"""Apply a series to a work tree with GNU patch, strictly (no fuzz), one patch at a time.

Each patch is first tried with --dry-run against the tree as the previous patches left it; a
failure is reported with the patch's name and position, the file and the hunk (its @@ header)
and the nearest place the hunk's old lines appear in the file, before anything is built.
`fuzz=N` (opt-in) lets GNU patch apply with that much fuzz; every hunk that needed an offset or
fuzz is recorded as an `Applied` note (they go into the artifact, the manifest and the report).
When the base is a git commit, `apply_series_git` applies with `git am -3` instead (a 3-way merge
with the blobs the patches name), in a git directory kept outside the work tree. Files are restored from the pristine tree afterwards (file by file:
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
GIT_ID = ("-c", "user.name=pinrig", "-c", "user.email=pinrig@localhost", "-c", "am.keepcr=false",
          "-c", "core.autocrlf=false")


@dataclass(frozen=True)
class Applied:
    """A hunk that did not apply where its header said: moved (offset) and/or fuzzed."""
    index: int
    patch: str
    file: str
    hunk: int
    at: int                   # the line it went in at
    offset: int               # lines from where the header said
    fuzz: int                 # context lines ignored (0 = strict)

    def text(self) -> str:
        how = [f"offset {self.offset:+d} line{'s' if abs(self.offset) != 1 else ''}"] \
            if self.offset else []
        if self.fuzz:
            how.append(f"fuzz {self.fuzz}")
        return (f"patch {self.index} {self.patch}: {self.file} hunk #{self.hunk} applied at "
                f"line {self.at} ({', '.join(how)})")

    def to_dict(self) -> dict:
        return {"patch": self.patch, "index": self.index, "file": self.file, "hunk": self.hunk,
                "at": self.at, "offset": self.offset, "fuzz": self.fuzz}


def parse_applied(out: str, patch: Patch, index: int) -> list:
    """GNU patch's output for an applied patch → an Applied for every hunk moved or fuzzed."""
    notes = []
    current = "?"
    for line in out.splitlines():
        m = re.match(r"^(?:checking|patching) file (.+?)\s*$", line)
        if m:
            current = m.group(1).strip("'\"")
            continue
        m = re.match(r"^Hunk #(\d+) succeeded at (\d+)(?: with fuzz (\d+))?"
                     r"(?: \(offset (-?\d+) lines?\))?", line)
        if m:
            notes.append(Applied(index, patch.name, current, int(m.group(1)), int(m.group(2)),
                                 int(m.group(4) or 0), int(m.group(3) or 0)))
    return notes


def nearest_context(tree: Path, file: Optional[str], hunk, limit_ops: int = 5_000_000) -> Optional[str]:
    """Where in tree/file the hunk's old lines (context and removed) come nearest to appearing:
    the window matching most of them (ties: nearest the header's line), and the first line that
    differs there. None when there is nothing to compare."""
    if not file or hunk is None or not hunk.old_lines:
        return None
    try:
        lines = (tree / file).read_text(errors="replace").splitlines()
    except OSError:
        return None
    old = [x.rstrip() for x in hunk.old_lines]
    have = [x.rstrip() for x in lines]
    n = len(old)
    if len(have) * n > limit_ops:
        return None
    # a blank line or a lone brace matches almost anywhere: it counts only to break ties
    solid = [bool(x.strip()) and x.strip() not in ("{", "}", "};", "*/", "/*", "*") for x in old]
    best = (-1, -1, 0, 0)            # (solid matches, matches, -distance, start)
    for start in range(0, max(1, len(have) - n + 1)):
        hits = [start + i < len(have) and have[start + i] == old[i] for i in range(n)]
        key = (sum(1 for h, s_ in zip(hits, solid) if h and s_), sum(hits),
               -abs(start + 1 - hunk.old_start), start)
        if key > best:
            best = key
    strong, score, _d, start = best
    if strong <= 0 and any(solid):
        return f"none of its {n} old lines is in {file}"
    where = f"nearest match at line {start + 1} ({score} of {n} old lines match"
    if score == n:
        return where + "; the context is there, the hunk conflicts with what patch already changed)"
    differ = [i for i in range(n) if start + i >= len(have) or have[start + i] != old[i]]
    i = next((i for i in differ if solid[i]), differ[0])    # the first telling difference
    got = have[start + i] if start + i < len(have) else "<end of file>"
    return where + f"; hunk line {i + 1} {_q(old[i])} is {_q(got)} there)"


def _q(text: str, limit: int = 60) -> str:
    t = text.strip()
    return repr(t if len(t) <= limit else t[:limit - 1] + "…")


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
    nearest: Optional[str] = None    # where the hunk's old lines are nearest to appearing
    method: str = "patch"

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
        if self.nearest:
            what += f"; {self.nearest}"
        how = " (git am -3)" if self.method != "patch" else ""
        return f"{where} does not apply{how} to {target}: {what}; nothing was built"


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


def _patch_argv(tree: Path, patch: Patch, pfile: Path, dry: bool, fuzz: int = 0) -> list:
    opts = [o if o != "--fuzz=0" else f"--fuzz={fuzz}" for o in PATCH_OPTS]
    return ["patch", "-d", tree, f"-p{patch.strip}", *opts,
            *(["--dry-run"] if dry else []), "-i", pfile]


def _failure(tree: Path, out: str, patch: Patch, k: int, total: int) -> Failure:
    f = parse_patch_output(out, patch, k, total)
    if f.hunk:
        fp = _file_patch(patch, f.file)
        hunk = fp.hunks[f.hunk - 1] if fp and 0 < f.hunk <= len(fp.hunks) else None
        near = nearest_context(tree, f.file, hunk)
        if near:
            f = Failure(f.patch, f.index, f.total, f.file, f.hunk, f.hunks, f.header, f.at_line,
                        f.reason, f.output, near)
    return f


def apply_series(tree: Path, series: Series, scratch: Path, target: str,
                 on_touch=None, fuzz: int = 0, notes: Optional[list] = None) -> list:
    """Apply every patch in order. `on_touch(paths)` is called with the files a patch may touch
    before the patch is applied (so they can be restored even after a crash). Returns the list of
    touched files; every hunk that went in moved or fuzzed is appended to `notes` (Applied).
    Raises PatchDoesNotApply naming patch, file, hunk and where its context is nearest."""
    if fuzz < 0:
        raise UserError(f"--fuzz {fuzz}: must be 0 or more")
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
        res = proc.run(_patch_argv(tree, patch, pfile, dry=True, fuzz=fuzz), check=False)
        if res.returncode != 0:
            raise PatchDoesNotApply(_failure(tree, res.stdout + res.stderr, patch, k, total),
                                    target)
        res = proc.run(_patch_argv(tree, patch, pfile, dry=False, fuzz=fuzz), check=False)
        if res.returncode != 0:           # cannot happen after a clean dry run, but say so
            raise PatchDoesNotApply(_failure(tree, res.stdout + res.stderr, patch, k, total),
                                    target)
        if notes is not None:
            notes.extend(parse_applied(res.stdout, patch, k))
        pfile.unlink()
    return touched


def scratch_copy(tree: Path, series: Series, dest: Path) -> None:
    """Only the files the series touches, copied from tree into dest (cheap trial runs)."""
    seen: set = set()
    for patch in series.patches:
        for rel in patch.touched():
            if rel in seen:
                continue
            seen.add(rel)
            src = tree / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)


def trial(tree: Path, series: Series, scratch: Path, target: str, fuzz: int = 0) -> list:
    """Apply the series to a copy of just the files it touches (tree is not written): the notes
    (Applied…) when it applies, PatchDoesNotApply when not."""
    shutil.rmtree(scratch, ignore_errors=True)
    work = scratch / "tree"
    work.mkdir(parents=True)
    try:
        scratch_copy(tree, series, work)
        notes: list = []
        apply_series(work, series, scratch / "patches", target, fuzz=fuzz, notes=notes)
        return notes
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def trial_git(repo: Path, commit: str, series: Series, scratch: Path, target: str) -> list:
    """`git am -3` of the series onto commit of repo, in scratch (repo is not written): the
    notes (3-way merges) when it applies, PatchDoesNotApply when not. Only the files the series
    touches are checked out."""
    shutil.rmtree(scratch, ignore_errors=True)
    work = scratch / "tree"
    work.mkdir(parents=True)
    try:
        for patch in series.patches:
            for rel in patch.touched():
                res = proc.run(["git", "-C", repo, "show", f"{commit}:{rel}"], check=False)
                if res.returncode == 0 and not (work / rel).exists():
                    (work / rel).parent.mkdir(parents=True, exist_ok=True)
                    (work / rel).write_text(res.stdout)
        notes: list = []
        apply_series_git(work, series, scratch / "am", target, repo, commit, notes=notes)
        return notes
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------------------- git am -3

def git_objects(repo: Path) -> Path:
    res = proc.run(["git", "-C", repo, "rev-parse", "--git-path", "objects"], what="git rev-parse")
    p = Path(res.stdout.strip())
    return p if p.is_absolute() else (repo / p).resolve()


def _git(gitdir: Path, work: Path, *args, check: bool = True, what: str = "git"):
    return proc.run(["git", *GIT_ID, f"--git-dir={gitdir}", f"--work-tree={work}", *args],
                    check=check, what=what, timeout=3600)


def apply_series_git(work: Path, series: Series, scratch: Path, target: str, repo: Path,
                     commit: str, on_touch=None, notes: Optional[list] = None) -> list:
    """`git am -3` of the series onto work (a copy of repo at commit). The git directory lives in
    scratch (objects borrowed from repo through alternates: repo is never written), so the kernel
    build does not see a .git and the release string stays the same. Returns the touched files;
    a 3-way merge is recorded in notes (as text). A failure is reported like apply_series' (the
    hunk and nearest context come from a strict GNU patch trial of that patch)."""
    touched: list = []
    for patch in series.patches:
        touched += [p for p in patch.touched() if p not in touched]
    if on_touch:
        on_touch(list(touched))
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    gitdir = scratch / "am.git"
    try:
        proc.run(["git", "init", "-q", "--bare", gitdir], what="git init")
        (gitdir / "objects" / "info" / "alternates").write_text(f"{git_objects(repo)}\n")
        proc.run(["git", f"--git-dir={gitdir}", "config", "core.bare", "false"], what="git config")
        _git(gitdir, work, "update-ref", "HEAD", commit, what="git update-ref")
        _git(gitdir, work, "read-tree", "HEAD", what="git read-tree")
        present = [p for p in touched if (work / p).is_file()]
        if present:      # index stat data for the files the series touches (content = HEAD's)
            _git(gitdir, work, "update-index", "-q", "--refresh", "--", *present, check=False)
        mbox = scratch / "series.mbox"
        mbox.write_bytes("".join(_mail_block(p.as_mail()) for p in series.patches)
                         .encode("utf-8", "surrogateescape"))
        res = _git(gitdir, work, "am", "-3", "--keep-non-patch", mbox, check=False)
        out = res.stdout + res.stderr
        if res.returncode != 0:
            m = re.search(r"Patch failed at (\d+)", out)
            k = int(m.group(1)) if m else 1
            raise PatchDoesNotApply(_git_failure(commit, series, k, out, scratch, target), target)
        if notes is not None:
            notes.extend(_merge_notes(out, series))
        return touched
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _mail_block(text: str) -> str:
    if not text.startswith("From "):
        text = "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n" + text
    body = re.sub(r"(?m)^(>*From )", r">\1", text.split("\n", 1)[1])     # mboxrd escaping
    return text.split("\n", 1)[0] + "\n" + body.rstrip("\n") + "\n\n"


def _merge_notes(out: str, series: Series) -> list:
    """git am's output → "patch k NAME: applied by 3-way merge (FILES)" for each merged patch."""
    notes = []
    k = 0
    merging: list = []
    for line in out.splitlines() + ["Applying: <end>"]:
        if line.startswith("Applying: "):
            if k and merging:
                notes.append(f"patch {k} {series.patches[k - 1].name}: applied by 3-way merge "
                             f"({', '.join(merging)})")
            k += 1
            merging = []
        m = re.match(r"^Auto-merging (.+)$", line)
        if m and k:
            merging.append(m.group(1).strip())
    return notes


def _git_failure(commit: str, series: Series, k: int, out: str, scratch: Path,
                 target: str) -> Failure:
    """git am stopped at patch k: what GNU patch says about that patch on the tree as patches
    1..k-1 leave it (applied to a scratch copy of just the touched files), with git's words."""
    k = min(max(k, 1), len(series.patches))
    patch = series.patches[k - 1]
    conflict = re.findall(r"CONFLICT \([^)]*\): (?:Merge conflict in )?(.+)", out)
    base = scratch / "diag"
    pristine = scratch / "pristine"
    try:
        shutil.rmtree(base, ignore_errors=True)
        # the tree git am left may hold conflict markers: start again from HEAD's files
        (base / "tree").mkdir(parents=True)
        _checkout_touched(scratch / "am.git", commit, pristine, series)
        scratch_copy(pristine, series, base / "tree")
        if k > 1:
            apply_series(base / "tree", Series("", series.patches[:k - 1]), base / "p", target,
                         fuzz=3)
        apply_series(base / "tree", Series("", (patch,)), base / "p", target)
    except PatchDoesNotApply as e:
        f = e.failure
        return Failure(patch.name, k, len(series.patches), f.file, f.hunk, f.hunks, f.header,
                       f.at_line, f.reason, out, f.nearest, "git am -3")
    except Exception:          # the diagnosis is a courtesy: git's own words still go out
        pass
    lines = [ln for ln in out.splitlines() if ln.startswith(("error:", "CONFLICT"))]
    reason = "; ".join(lines[:3]) or "git am -3 failed"
    return Failure(patch.name, k, len(series.patches), conflict[0] if conflict else None, None,
                   None, None, None, reason, out, None, "git am -3")


def _checkout_touched(gitdir: Path, commit: str, dest: Path, series: Series) -> None:
    """The base commit's version of every file the series touches, into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for patch in series.patches:
        for rel in patch.touched():
            res = proc.run(["git", f"--git-dir={gitdir}", "show", f"{commit}:{rel}"], check=False)
            if res.returncode == 0:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                (dest / rel).write_text(res.stdout)


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
