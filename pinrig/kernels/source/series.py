"""Patch series: a quilt directory, an mbox (one or many patches), a single patch, a git range.

Everything becomes a list of `Patch` values (name, strip level, diff text) in apply order, parsed
once; `files` and `hunks` come from the diff itself so that a failure can name the file and the
hunk, and so that the work tree can be restored file by file afterwards.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from pinrig import proc
from pinrig.errors import UserError
from pinrig.kernels.source import mailthread

SERIES_FORMAT = "series-1"      # bump when parsing changes what a patch's content is

# "[PATCH v2 03/12]", "[RFC PATCH 1/3]", "[PATCH net-next 2/2]" …
_BRACKET_RE = re.compile(r"^\s*(\[[^\]]*\]\s*)+")
_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


@dataclass(frozen=True)
class Hunk:
    header: str               # "@@ -1075,6 +1075,9 @@ static int check_vma_flags(…)"
    old_start: int
    line: int                 # 1-based line of the header in the patch text
    old_lines: tuple = field(default=(), compare=False)   # context and removed lines, in order


@dataclass(frozen=True)
class FilePatch:
    old: Optional[str]        # path after stripping (None for /dev/null: a new file)
    new: Optional[str]        # path after stripping (None for /dev/null: a deleted file)
    hunks: tuple

    @property
    def path(self) -> str:
        return self.new or self.old or "?"


@dataclass(frozen=True)
class Patch:
    name: str                 # file name, or "0003-mm-gup-refuse-….patch" for mbox/git patches
    text: str                 # the whole patch (headers included: GNU patch ignores them)
    strip: int = 1
    subject: str = ""
    origin: str = ""          # where it came from, for messages (file path, "mbox:3", commit)
    files: tuple = field(default=(), compare=False)
    # from the mail (not content: the tree a patch makes does not depend on them)
    author: str = field(default="", compare=False)
    date: str = field(default="", compare=False)
    msgid: str = field(default="", compare=False)
    trailers: tuple = field(default=(), compare=False)   # given by replies (Reviewed-by: …)

    def as_mail(self) -> str:
        """The patch as one mail `git am` takes (a format-patch file is one already)."""
        if self.text.startswith("From ") and "\nSubject:" in self.text[:4000]:
            return self.text            # a format-patch file (an in-body "From:" is not one)
        body = self.text
        if self.trailers:              # like b4 am: reviewers' trailers join the commit message
            head, sep, rest = body.partition("\n---\n")
            if sep:
                body = head.rstrip("\n") + "\n" + "\n".join(self.trailers) + "\n---\n" + rest
        author = self.author or "pinrig <pinrig@localhost>"
        date = self.date or "Thu, 1 Jan 1970 00:00:00 +0000"
        return (f"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
                f"From: {author}\nDate: {date}\nSubject: [PATCH] {self.subject or self.name}\n"
                "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
                f"Content-Transfer-Encoding: 8bit\n\n{body}")

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.name, str(self.strip), self.text):
            h.update(part.encode("utf-8", "surrogateescape"))
            h.update(b"\0")
        return h.hexdigest()

    def touched(self) -> list:
        """Every path this patch may create, change, rename or delete (relative to the tree)."""
        out = []
        for fp in self.files:
            for p in (fp.old, fp.new):
                if p and p not in out:
                    out.append(p)
        return out


@dataclass(frozen=True)
class Series:
    name: str                 # e.g. "longterm-file-deny", "git:v6.1..topic", "fix.mbox"
    patches: tuple
    origin: str = ""          # directory / file / repository the series came from
    # from a mail thread: which revision was used, the cover letter's title, what was found
    revision: Optional[int] = field(default=None, compare=False)
    title: str = field(default="", compare=False)
    notes: tuple = field(default=(), compare=False)
    revisions: tuple = field(default=(), compare=False)   # (version, patches, total)…

    @property
    def digest(self) -> str:
        h = hashlib.sha256(SERIES_FORMAT.encode())
        for p in self.patches:
            h.update(p.digest.encode())
        return h.hexdigest()

    def prefix(self, k: int) -> "Series":
        """The first k patches (bisection builds 1..k cumulatively)."""
        return Series(f"{self.name}[1..{k}]", self.patches[:k], self.origin, self.revision,
                      self.title, self.notes, self.revisions)


EMPTY = Series("", ())


# ---------------------------------------------------------------------------- diff parsing

def _strip_path(raw: str, strip: int) -> Optional[str]:
    raw = raw.split("\t")[0].strip()
    if raw.startswith('"') and raw.endswith('"'):
        raw = raw[1:-1]
    if raw == "/dev/null":
        return None
    parts = [p for p in raw.split("/") if p]
    if len(parts) <= strip:
        return parts[-1] if parts else None
    return "/".join(parts[strip:])


def parse_diff(text: str, strip: int = 1) -> tuple:
    """Unified diff text → (FilePatch…). Headers and mail text around the diff are ignored;
    git extended headers (new/deleted file, rename from/to) are understood."""
    files = []
    lines = text.splitlines()
    i = 0
    git_old = git_new = None
    rename_from = rename_to = None
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            if git_old is not None or rename_from is not None:
                _flush_git_only(files, git_old, git_new, rename_from, rename_to)
            m = re.match(r"diff --git (\S+) (\S+)$", line)
            git_old = _strip_path(m.group(1), strip) if m else None
            git_new = _strip_path(m.group(2), strip) if m else None
            rename_from = rename_to = None
            i += 1
            continue
        if line.startswith("rename from ") or line.startswith("copy from "):
            rename_from = line.split(" ", 2)[2].strip()
        elif line.startswith("rename to ") or line.startswith("copy to "):
            rename_to = line.split(" ", 2)[2].strip()
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old = _strip_path(line[4:], strip)
            new = _strip_path(lines[i + 1][4:], strip)
            if rename_from and rename_to:
                old, new = rename_from, rename_to
            i += 2
            hunks = []
            while i < len(lines):
                m = _HUNK_RE.match(lines[i])
                if not m:
                    break
                header, start, hline = lines[i].rstrip(), int(m.group(1)), i + 1
                old_n = int(m.group(2)) if m.group(2) is not None else 1
                new_n = int(m.group(4)) if m.group(4) is not None else 1
                i += 1
                olds = []
                while i < len(lines) and (old_n > 0 or new_n > 0):
                    body_line = lines[i]
                    if body_line.startswith("\\"):
                        i += 1
                        continue
                    tag = body_line[:1]
                    if tag in (" ", ""):
                        old_n -= 1
                        new_n -= 1
                        olds.append(body_line[1:])
                    elif tag == "-":
                        old_n -= 1
                        olds.append(body_line[1:])
                    elif tag == "+":
                        new_n -= 1
                    else:
                        break
                    i += 1
                hunks.append(Hunk(header, start, hline, tuple(olds)))
                while i < len(lines) and lines[i].startswith("\\"):
                    i += 1
            files.append(FilePatch(old, new, tuple(hunks)))
            git_old = git_new = rename_from = rename_to = None
            continue
        i += 1
    if git_old is not None or rename_from is not None:
        _flush_git_only(files, git_old, git_new, rename_from, rename_to)
    return tuple(files)


def _flush_git_only(files, git_old, git_new, rename_from, rename_to) -> None:
    """A git diff section without ---/+++ (pure rename, mode change, empty new file)."""
    old, new = (rename_from, rename_to) if rename_from and rename_to else (git_old, git_new)
    if old or new:
        files.append(FilePatch(old, new, ()))


def _make_patch(name: str, text: str, strip: int, subject: str = "", origin: str = "") -> Patch:
    return Patch(name=name, text=text, strip=strip, subject=subject, origin=origin,
                 files=parse_diff(text, strip))


# ---------------------------------------------------------------------------- quilt

def parse_quilt(directory: Path) -> Series:
    """A quilt directory: `series` lists patch files (relative to the directory) in order, one per
    line, optionally followed by -pN; '#' starts a comment."""
    sfile = directory / "series"
    if not sfile.is_file():
        raise UserError(f"{directory}: not a quilt series (no 'series' file)")
    patches = []
    for lineno, raw in enumerate(sfile.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        strip = 1
        for opt in words[1:]:
            m = re.fullmatch(r"-p(\d+)", opt)
            if not m:
                raise UserError(f"{sfile}:{lineno}: unknown option {opt!r} (only -pN)")
            strip = int(m.group(1))
        pfile = directory / words[0]
        if not pfile.is_file():
            raise UserError(f"{sfile}:{lineno}: patch {words[0]} does not exist in {directory}")
        text = pfile.read_text(errors="surrogateescape")
        p = _make_patch(words[0], text, strip, _subject_of(text), str(pfile))
        if not p.files:
            raise UserError(f"{sfile}:{lineno}: {words[0]} contains no diff")
        patches.append(p)
    if not patches:
        raise UserError(f"{sfile}: lists no patches")
    names = [p.name for p in patches]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"{sfile}: patch {dup[0]} listed twice")
    return Series(directory.name, tuple(patches), str(directory))


def _subject_of(text: str) -> str:
    """The Subject: header of a patch file in mail form (folded lines joined), else ''."""
    lines = text.splitlines()[:80]
    for i, line in enumerate(lines):
        if not line.strip():
            break                       # end of the header block
        if line.startswith("Subject:"):
            subject = line[len("Subject:"):]
            for cont in lines[i + 1:]:
                if cont[:1] not in (" ", "\t"):
                    break
                subject += " " + cont.strip()
            return clean_subject(subject)
    return ""


# ---------------------------------------------------------------------------- mbox

def clean_subject(subject: str) -> str:
    s = " ".join(subject.split())
    s = re.sub(r"^(re|fwd?):\s*", "", s, flags=re.I)
    return _BRACKET_RE.sub("", s).strip()


def slug(subject: str, limit: int = 52) -> str:
    """Like git format-patch: 'mm/gup: refuse pins' → 'mm-gup-refuse-pins'."""
    s = re.sub(r"[^A-Za-z0-9_.]+", "-", subject).strip("-.")
    s = re.sub(r"\.+", ".", s)
    return s[:limit].rstrip("-.") or "patch"


def split_mbox(text: str) -> list:
    return mailthread.split_mbox(text)


def has_diff(text: str) -> bool:
    return bool(parse_diff(text, 1))


def parse_mails(mails: list, origin: str, name: str, rev: Optional[int] = None) -> Series:
    """Mails (mailthread.Mail) → the series of one revision: messages with a diff become patches;
    the cover letter (0/N) and replies are skipped (replies' trailers are kept with the patch they
    answer); several revisions → the newest complete one, or `rev`."""
    sel = mailthread.pick(mails, origin, rev)
    patches = []
    for k, m in enumerate(sel.patches, 1):
        subject = clean_subject(m.title) if m.title else ""
        own = {ln.strip().lower() for ln in m.body.partition("\n---\n")[0].splitlines()}
        given = tuple(t for t in sel.trailers.get(m.msgid, ()) if t.lower() not in own)
        pname = f"{k:04d}-{slug(subject or f'message-{m.index}')}.patch"
        patches.append(Patch(pname, m.body, 1, subject, m.origin, parse_diff(m.body, 1),
                             author=m.author, date=m.date, msgid=m.msgid,
                             trailers=given))
    many = len(sel.revisions) > 1 or rev is not None
    return Series(name, tuple(patches), origin,
                  revision=sel.revision if (many or any(m.num for m in sel.patches)) else None,
                  title=sel.cover.title if sel.cover else "",
                  notes=sel.notes, revisions=sel.revisions)


def parse_mbox_text(text: str, origin: str, name: str, rev: Optional[int] = None) -> Series:
    data = text.encode("utf-8", "surrogateescape")
    return parse_mails(mailthread.read_mbox(data, origin, has_diff), origin, name, rev)


def parse_mbox(path: Path, rev: Optional[int] = None) -> Series:
    return parse_mbox_text(path.read_text(errors="surrogateescape"), str(path), path.name, rev)


def parse_eml_dir(directory: Path, rev: Optional[int] = None) -> Series:
    """A directory of .eml files (one message each, as a mail client saves them)."""
    files = sorted(directory.glob("*.eml"))
    mails = [mailthread.read_mail(f.read_bytes(), i, str(f), has_diff)
             for i, f in enumerate(files, 1)]
    return parse_mails(mails, str(directory), directory.name, rev)


# ---------------------------------------------------------------------------- git range

def parse_git_range(repo: Path, rng: str) -> Series:
    """`git format-patch` of A..B in repo (merges are skipped, as format-patch does)."""
    lo, _, hi = rng.partition("..")
    for rev in (lo, hi):
        res = proc.run(["git", "-C", repo, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"],
                       check=False)
        if res.returncode != 0:
            raise UserError(f"series: git:{rng}: {rev!r} is not a commit in {repo}")
    res = proc.run(["git", "-C", repo, "format-patch", "--stdout", "--no-signature",
                    "--no-stat", "-k", f"{lo}..{hi}"], what=f"git format-patch {rng}")
    if not res.stdout.strip():
        raise UserError(f"series: git:{rng}: no commits in that range in {repo}")
    s = parse_mbox_text(res.stdout, f"{repo} git:{rng}", f"git:{rng}")
    return Series(f"git:{rng}", s.patches, str(repo))


# ---------------------------------------------------------------------------- entry point

def load_series(spec_series: Optional[str], source_tree: Optional[Path] = None,
                rev: Optional[int] = None, local_mbox: Optional[str] = None,
                refresh: bool = False) -> Series:
    """The series named in a kernel spec (already resolved to a path, git:A..B or lore:ID by
    config). rev: the revision to take from a thread holding several (default: newest complete)."""
    if not spec_series:
        return EMPTY
    if spec_series.startswith("git:"):
        if source_tree is None:
            raise UserError(f"series {spec_series}: a git range needs a git source")
        return parse_git_range(source_tree, spec_series[4:])
    if spec_series.startswith("lore:"):
        from pinrig.kernels.source import lore
        t = lore.thread(spec_series[5:], Path(local_mbox) if local_mbox else None, refresh)
        s = parse_mbox_text(t.path.read_bytes().decode("utf-8", "surrogateescape"),
                            f"lore:{t.msgid}", f"lore:{t.msgid}", rev)
        notes = (f"thread <{t.msgid}> from {t.via} (sha256 {t.sha256[:12]})",) \
            + ((t.note,) if t.note else ()) + s.notes
        return Series(s.name, s.patches, f"lore:{t.msgid} via {t.via}", s.revision, s.title,
                      notes, s.revisions)
    p = Path(spec_series)
    if p.is_dir():
        if (p / "series").is_file():
            if rev is not None:
                raise UserError(f"{p}: --rev {rev}: a quilt series has no revisions")
            return parse_quilt(p)
        mboxes = sorted(p.glob("*.mbox"))
        if len(mboxes) == 1:
            s = parse_mbox(mboxes[0], rev)
            return Series(p.name, s.patches, s.origin, s.revision, s.title, s.notes, s.revisions)
        if not mboxes and any(p.glob("*.eml")):
            return parse_eml_dir(p, rev)
        raise UserError(f"{p}: not a series: needs a 'series' file (quilt), one *.mbox "
                        "or *.eml files")
    if not p.is_file():
        raise UserError(f"series {p} does not exist")
    text = p.read_text(errors="surrogateescape")
    if p.suffix in (".mbox", ".eml", ".mbx") or mailthread.is_mbox_start(text):
        return parse_mbox(p, rev)
    if rev is not None:
        raise UserError(f"{p}: --rev {rev}: a single patch file has no revisions")
    patch = _make_patch(p.name, text, 1, _subject_of(text), str(p))
    if not patch.files:
        raise UserError(f"{p}: contains no diff")
    return Series(p.stem, (patch,), str(p))
