#!/usr/bin/env python3
"""Regenerate tests/data/series/: posted-series fixtures made the way a list archive has them.

A small git repository (mm/gup.c, mm/internal.h) gets a three-patch series; `git format-patch
--cover-letter --thread=shallow` writes it out (v1, and v2 with patch 2 reworked). Then copies are
edited the way mail really arrives:
  - a reply to v1 2/3 quoting the patch and giving Reviewed-by, an Acked-by reply to the cover;
  - v2 mailed through a list that re-encodes: 1/3 quoted-printable, 2/3 base64, an author with a
    UTF-8 name (RFC 2047 encoded by format-patch), 3/3 8bit;
  - a v3 of just patch 2/3 sent in reply to v2's 2/3 (a partial reroll);
  - the v2 thread as a directory of .eml files; a thread with no patch at all.
The base tree is kept as base/ (what the series applies to) and drifted/ (the same files with
lines added above and one context line changed: offsets and fuzz).

Deterministic: fixed dates, identities and Message-IDs. Run: python3 scripts/make_series_fixtures.py
"""
from __future__ import annotations

import base64
import os
import quopri
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "series"
AUTHOR = ("Jörg Rödel", "joerg@example.org")
ENV = {"GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1],
       "GIT_COMMITTER_NAME": "Ann Dev", "GIT_COMMITTER_EMAIL": "ann@example.org",
       "GIT_AUTHOR_DATE": "2026-01-05T10:00:00+0000", "GIT_COMMITTER_DATE": "2026-01-05T10:00:00+0000",
       "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C.UTF-8", "TZ": "UTC"}

GUP_C = """\
// SPDX-License-Identifier: GPL-2.0-only
#include <linux/mm.h>
#include "internal.h"

static int check_vma_flags(struct vm_area_struct *vma, unsigned long gup_flags)
{
	vm_flags_t vm_flags = vma->vm_flags;
	int write = (gup_flags & FOLL_WRITE);

	if (vm_flags & (VM_IO | VM_PFNMAP))
		return -EFAULT;

	if (write) {
		if (!(vm_flags & VM_WRITE))
			return -EFAULT;
	}
	return 0;
}

long pin_user_pages(unsigned long start, unsigned long nr_pages,
		    unsigned int gup_flags, struct page **pages)
{
	if (!(gup_flags & FOLL_PIN))
		gup_flags |= FOLL_PIN;
	return __gup_longterm_locked(current->mm, start, nr_pages, pages,
				     NULL, gup_flags);
}
"""
INTERNAL_H = """\
/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef __MM_INTERNAL_H
#define __MM_INTERNAL_H

extern bool mirrored_kernelcore;

static inline bool vma_soft_dirty_enabled(struct vm_area_struct *vma)
{
	return false;
}

#endif	/* __MM_INTERNAL_H */
"""


def git(repo: Path, *args: str, env_extra: dict | None = None) -> str:
    env = dict(os.environ) | ENV | (env_extra or {})
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


def commit(repo: Path, msg: str, date: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-s", "-m", msg,
        env_extra={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


PATCH1 = ("mm/internal.h", "extern bool mirrored_kernelcore;\n",
          "extern bool mirrored_kernelcore;\n\n"
          "bool vma_needs_dirty_tracking(struct vm_area_struct *vma);\n")
PATCH2_V1 = ("mm/gup.c", "\tif (write) {\n\t\tif (!(vm_flags & VM_WRITE))\n\t\t\treturn -EFAULT;\n\t}\n",
             "\tif (write) {\n\t\tif (!(vm_flags & VM_WRITE))\n\t\t\treturn -EFAULT;\n"
             "\t\tif ((gup_flags & FOLL_LONGTERM) && vma_needs_dirty_tracking(vma))\n"
             "\t\t\treturn -EFAULT;\n\t}\n")
PATCH2_V2 = ("mm/gup.c", PATCH2_V1[1],
             "\tif (write) {\n\t\tif (!(vm_flags & VM_WRITE))\n\t\t\treturn -EFAULT;\n"
             "\t\t/* a device write would escape the filesystem's dirty tracking */\n"
             "\t\tif ((gup_flags & FOLL_LONGTERM) && vma_needs_dirty_tracking(vma))\n"
             "\t\t\treturn -EFAULT;\n\t}\n")
PATCH2_V3 = ("mm/gup.c", PATCH2_V1[1],
             "\tif (write) {\n\t\tif (!(vm_flags & VM_WRITE))\n\t\t\treturn -EFAULT;\n"
             "\t\t/* a device write would escape the filesystem's dirty tracking */\n"
             "\t\tif (unlikely(gup_flags & FOLL_LONGTERM) &&\n"
             "\t\t    vma_needs_dirty_tracking(vma))\n"
             "\t\t\treturn -EFAULT;\n\t}\n")
PATCH3 = ("mm/gup.c", "\tif (!(gup_flags & FOLL_PIN))\n\t\tgup_flags |= FOLL_PIN;\n",
          "\tif (WARN_ON_ONCE(gup_flags & FOLL_GET))\n\t\treturn -EINVAL;\n"
          "\tif (!(gup_flags & FOLL_PIN))\n\t\tgup_flags |= FOLL_PIN;\n")
SUBJECTS = ("mm: declare vma_needs_dirty_tracking()",
            "mm/gup: refuse writable long-term pins of file mappings that need dirty tracking",
            "mm/gup: pin_user_pages() must not be called with FOLL_GET")
BODIES = ("GUP needs to know whether a mapping's writes must be seen by the kernel.",
          "A device writing through a long-term pin bypasses page faults, so the filesystem\n"
          "never learns the page was dirtied.",
          "Catch callers that mix the two reference schemes; the café test on ext4 hit it.")


def make_series(repo: Path, patch2, version: int, out: Path, day: int) -> list:
    """Three commits on top of base, format-patch'ed with a cover letter. → [message text]."""
    git(repo, "checkout", "-q", "-B", f"v{version}", "base")
    for i, (path, old, new) in enumerate((PATCH1, patch2, PATCH3)):
        edit(repo / path, old, new)
        commit(repo, f"{SUBJECTS[i]}\n\n{BODIES[i]}", f"2026-01-{day:02d}T10:0{i}:00+0000")
    tmp = out / f"fp-v{version}"
    shutil.rmtree(tmp, ignore_errors=True)
    git(repo, "format-patch", "-q", "--cover-letter", "--thread=shallow", f"-v{version}",
        "--no-signature", "-o", str(tmp), "base..HEAD",
        env_extra={"GIT_COMMITTER_DATE": f"2026-01-{day:02d}T12:00:00+0000"})
    msgs = []
    for f in sorted(tmp.glob("*.patch")):
        msgs.append(f.read_text())
    shutil.rmtree(tmp)
    cover = msgs[0].replace("*** SUBJECT HERE ***", "mm/gup: refuse long-term pins that escape "
                            "dirty tracking")
    cover = cover.replace("*** BLURB HERE ***",
                          f"Revision {version} of the series. Writable FOLL_LONGTERM pins of "
                          "file-backed\nmappings that need dirty tracking are refused, as 6.5 does.")
    msgs[0] = cover
    return [fix_ids(m, version, k) for k, m in enumerate(msgs)]


def fix_ids(msg: str, version: int, k: int) -> str:
    """Deterministic Message-ID / In-Reply-To / References (format-patch's carry timestamps)."""
    mid = f"<20260101.v{version}.{k}-series@example.org>"
    cover = f"<20260101.v{version}.0-series@example.org>"
    msg = re.sub(r"(?m)^Message-Id: <[^>]+>$", f"Message-ID: {mid}", msg)
    msg = re.sub(r"(?m)^In-Reply-To: <[^>]+>$", f"In-Reply-To: {cover}", msg)
    msg = re.sub(r"(?m)^References: <[^>]+>$", f"References: {cover}", msg)
    return msg


def reencode(msg: str, cte: str) -> str:
    """The body quoted-printable or base64, as a list server or mail client may send it."""
    head, _, body = msg.partition("\n\n")
    if "Content-Transfer-Encoding:" not in head:
        head += ("\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8"
                 "\nContent-Transfer-Encoding: 8bit")
    head = re.sub(r"(?m)^Content-Transfer-Encoding: .*$", f"Content-Transfer-Encoding: {cte}", head)
    raw = body.encode("utf-8")
    if cte == "quoted-printable":
        enc = quopri.encodestring(raw).decode("ascii")
    else:
        enc = base64.encodebytes(raw).decode("ascii")
    return head + "\n\n" + enc


def reply(subject: str, parent: str, refs: str, mid: str, who: str, date: str, quoted: str,
          words: str) -> str:
    q = "\n".join("> " + ln if ln else ">" for ln in quoted.splitlines()[:14])
    return (f"From: {who}\nDate: {date}\nSubject: Re: {subject}\nMessage-ID: {mid}\n"
            f"In-Reply-To: {parent}\nReferences: {refs} {parent}\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
            f"Content-Transfer-Encoding: 8bit\n\nOn Mon, Ann wrote:\n{q}\n\n{words}\n")


def subject_of(msg: str) -> str:
    m = re.search(r"(?m)^Subject: (.*(?:\n[ \t].*)*)", msg)
    return " ".join(m.group(1).split()) if m else ""


def mbox(msgs: list) -> str:
    out = []
    for m in msgs:
        lines = m.split("\n")
        if not lines[0].startswith("From "):
            lines.insert(0, "From mboxrd@z Thu Jan  1 00:00:00 1970")
        body = "\n".join(re.sub(r"^(>*From )", r">\1", ln) for ln in lines[1:])
        out.append(lines[0] + "\n" + body.rstrip("\n") + "\n\n")
    return "".join(out)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "linux"
        (repo / "mm").mkdir(parents=True)
        git(repo, "init", "-q", "-b", "master")
        (repo / "mm/gup.c").write_text(GUP_C)
        (repo / "mm/internal.h").write_text(INTERNAL_H)
        commit(repo, "base", "2026-01-01T00:00:00+0000")
        git(repo, "tag", "base")
        v1 = make_series(repo, PATCH2_V1, 1, OUT, 5)
        v2 = make_series(repo, PATCH2_V2, 2, OUT, 12)
        v3 = make_series(repo, PATCH2_V3, 3, OUT, 19)
        # the base tree, and a drifted copy (offsets; one context line changed: fuzz 1)
        for name in ("mm/gup.c", "mm/internal.h"):
            (OUT / "base" / name).parent.mkdir(parents=True, exist_ok=True)
            (OUT / "base" / name).write_text(git(repo, "show", f"base:{name}"))
        drift = OUT / "drifted"
        shutil.copytree(OUT / "base", drift)
        edit(drift / "mm/gup.c", '#include "internal.h"\n',
             '#include "internal.h"\n\n/* Added upstream since the series was written. */\n'
             "static bool gup_debug;\n\n")
        edit(drift / "mm/gup.c", "\tint write = (gup_flags & FOLL_WRITE);\n",
             "\tint write = !!(gup_flags & FOLL_WRITE);\n")
        edit(drift / "mm/gup.c", "\treturn 0;\n}\n", "\treturn 0;\n}\t/* check_vma_flags */\n")
        edit(drift / "mm/internal.h", "#define __MM_INTERNAL_H\n",
             "#define __MM_INTERNAL_H\n\n#include <linux/fs.h>\n")
        conflict = OUT / "conflicting"
        shutil.copytree(OUT / "base", conflict)
        edit(conflict / "mm/gup.c", "\t\tif (!(vm_flags & VM_WRITE))\n\t\t\treturn -EFAULT;\n",
             "\t\tif (!(vm_flags & VM_MAYWRITE))\n\t\t\treturn -EPERM;\n")
    # v1 thread: cover, patches, a review of 2/3 (quoting it) and an ack of the cover
    c1, p1 = "<20260101.v1.0-series@example.org>", "<20260101.v1.2-series@example.org>"
    review = reply(subject_of(v1[2]), p1, c1, "<review-v1-2@example.org>",
                   "Bob Reviewer <bob@example.org>", "Tue, 6 Jan 2026 09:00:00 +0000",
                   v1[2].split("\n\n", 1)[1],
                   "Looks right to me.\n\nReviewed-by: Bob Reviewer <bob@example.org>")
    ack = reply(subject_of(v1[0]), c1, "", "<ack-v1@example.org>",
                "Zoë Maintainer <zoe@example.org>", "Tue, 6 Jan 2026 10:00:00 +0000",
                "", "For the series:\n\nAcked-by: Zoë Maintainer <zoe@example.org>")
    thanks = reply(subject_of(review), "<review-v1-2@example.org>", c1 + " " + p1,
                   "<thanks-v1@example.org>", f"{AUTHOR[0]} <{AUTHOR[1]}>",
                   "Tue, 6 Jan 2026 11:00:00 +0000", "Reviewed-by: Bob", "Thanks, Bob!")
    thread_v1 = [v1[0], v1[1], v1[2], review, v1[3], ack, thanks]
    (OUT / "v1.mbox").write_text(mbox(thread_v1))
    # v2 as a list re-encodes it: QP, base64, 8bit; the RFC 2047 From: stays as git wrote it
    v2_sent = [v2[0], reencode(v2[1], "quoted-printable"), reencode(v2[2], "base64"), v2[3]]
    (OUT / "v2-encoded.mbox").write_text(mbox(v2_sent))
    # v3 of just patch 2/3, in reply to v2's 2/3 (a partial reroll)
    v3_2 = v3[2]
    v3_2 = re.sub(r"(?m)^In-Reply-To: .*$", "In-Reply-To: <20260101.v2.2-series@example.org>", v3_2)
    v3_2 = re.sub(r"(?m)^References: .*$", "References: <20260101.v2.0-series@example.org> "
                  "<20260101.v2.2-series@example.org>", v3_2)
    # everything in one file, as a lore search result or a saved folder would hold it
    (OUT / "all-revisions.mbox").write_text(mbox(thread_v1 + v2_sent + [v3_2]))
    eml = OUT / "v2-eml"
    eml.mkdir()
    for k, m in enumerate(v2_sent):
        (eml / f"{k:02d}.eml").write_text(m.split("\n", 1)[1] if m.startswith("From ") else m)
    (OUT / "no-patch.mbox").write_text(mbox([v1[0], ack]))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
