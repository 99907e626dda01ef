"""Integration (opt-in): the rig's longterm-file-deny series as it would be posted — committed,
`git format-patch --cover-letter -v2`, mailed as one mbox — read back and applied to Debian's real
linux-source-6.1 tree, strictly with GNU patch and with `git am -3`; both give the same files.

    PINRIG_POSTED_SERIES=1 .venv/bin/python -m pytest tests/integration/test_posted_series.py

The tree is the rig's own unpacked linux-source-6.1 (~/.cache/pinrig/sources; downloaded and
unpacked once when absent). Only the files the series touches are copied out (the pristine tree is
never written); the git repository is made of those real files.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pinrig import config
from pinrig.kernels.source import apply, sources
from pinrig.kernels.source import series as S

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("PINRIG_POSTED_SERIES") != "1",
                       reason="needs Debian's linux-source-6.1 unpacked (1.3 GB): run with "
                              "PINRIG_POSTED_SERIES=1"),
]


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Ann Dev",
                           "-c", "user.email=ann@example.org", *args],
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def pristine():
    spec = config.load_kernel_spec("src-6.1-longterm-deny")
    ref = sources.resolve(spec)
    if not (ref.slot / "pristine.done").exists():
        sources.materialize(ref, spec)
    return ref.pristine


def test_posted_longterm_deny_applies_strictly_and_with_git_am(tmp_path, pristine):
    quilt = S.load_series(str(REPO / "kernels" / "patches" / "longterm-file-deny"))
    repo = tmp_path / "linux"
    repo.mkdir()
    apply.scratch_copy(pristine, quilt, repo)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "linux-source-6.1 (the files the series touches)")
    base = git(repo, "rev-parse", "HEAD").strip()
    for p in quilt.patches:
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=Ann Dev", "-c",
                        "user.email=ann@example.org", "am", "-q", str(Path(p.origin))],
                       check=True, capture_output=True)
    out = tmp_path / "posted"
    git(repo, "format-patch", "-q", "--cover-letter", "-v2", "--thread=shallow", "-o", str(out),
        f"{base}..HEAD")
    files = sorted(out.glob("*.patch"))
    assert len(files) == 5 and files[0].name.startswith("v2-0000-cover-letter")
    mbox = tmp_path / "longterm-file-deny-v2.mbox"
    mbox.write_text("".join(f.read_text() + "\n" for f in files))

    posted = S.load_series(str(mbox))
    assert posted.revision == 2 and len(posted.patches) == 4
    assert [p.subject for p in posted.patches] == [p.subject for p in quilt.patches]
    assert "cover letter" in posted.notes[0]

    strict = tmp_path / "strict"
    strict.mkdir()
    apply.scratch_copy(pristine, posted, strict)
    notes: list = []
    apply.apply_series(strict, posted, tmp_path / "p", "linux-source-6.1", notes=notes)
    assert all(n.fuzz == 0 for n in notes)          # offsets allowed and recorded, never fuzz

    work = tmp_path / "work"
    work.mkdir()
    apply.scratch_copy(pristine, posted, work)
    am_notes: list = []
    apply.apply_series_git(work, posted, tmp_path / "am", "linux-source-6.1", repo, base,
                           notes=am_notes)
    for rel in {r for p in posted.patches for r in p.touched()}:
        assert (work / rel).read_bytes() == (strict / rel).read_bytes(), rel
        assert (work / rel).read_bytes() == (repo / rel).read_bytes(), rel
    assert "FOLL_LONGTERM" in (work / "mm" / "gup.c").read_text()
    shutil.rmtree(tmp_path / "linux")
