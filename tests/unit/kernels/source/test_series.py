"""pinrig.kernels.source.series: quilt directories, mboxes (one or many patches), git ranges, diff parsing."""
import subprocess
import textwrap
from pathlib import Path

import pytest

from pinrig.errors import UserError
from pinrig.kernels.source import series as S

REPO = Path(__file__).resolve().parents[4]


def diff(path="mm/gup.c", old=" a\n-b\n+c\n", hunk="@@ -1,2 +1,2 @@ static int f(void)"):
    return f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n{hunk}\n{old}"


def mail(n, total, subject, body, sha="0123456789abcdef0123456789abcdef01234567"):
    num = f" {n}/{total}" if total else ""
    return (f"From {sha} Mon Sep 17 00:00:00 2001\nFrom: Dev <dev@example.org>\n"
            f"Date: Mon, 1 Jan 2024 00:00:00 +0000\nSubject: [PATCH{num}] {subject}\n\n"
            f"Commit message.\n\nSigned-off-by: Dev <dev@example.org>\n---\n{body}\n-- \n2.39.2\n\n")


# ------------------------------------------------------------------------------ diff parsing

def test_parse_diff_files_and_hunks():
    text = ("diff --git a/mm/gup.c b/mm/gup.c\n--- a/mm/gup.c\n+++ b/mm/gup.c\n"
            "@@ -10,3 +10,4 @@ static int check_vma_flags(struct vm_area_struct *vma)\n"
            " x\n+y\n z\n w\n"
            "@@ -40,2 +41,2 @@ int pin(void)\n-a\n+b\n c\n"
            "diff --git a/mm/new.c b/mm/new.c\nnew file mode 100644\n--- /dev/null\n+++ b/mm/new.c\n"
            "@@ -0,0 +1 @@\n+new\n")
    files = S.parse_diff(text)
    assert [(f.old, f.new, len(f.hunks)) for f in files] == [
        ("mm/gup.c", "mm/gup.c", 2), (None, "mm/new.c", 1)]
    assert files[0].hunks[0].header == \
        "@@ -10,3 +10,4 @@ static int check_vma_flags(struct vm_area_struct *vma)"
    assert files[0].hunks[1].old_start == 40


def test_parse_diff_hunk_lines_starting_like_headers_are_content():
    # a removed line "-- x" and an added line "++ y" inside a hunk are not file headers
    text = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n--- x\n+++ y\n keep\n"
    files = S.parse_diff(text)
    assert len(files) == 1 and files[0].path == "f"


def test_parse_diff_rename_and_strip_level():
    text = ("diff --git a/old/name.c b/new/name.c\nsimilarity index 90%\n"
            "rename from old/name.c\nrename to new/name.c\n"
            "--- a/old/name.c\n+++ b/new/name.c\n@@ -1 +1 @@\n-a\n+b\n"
            "diff --git a/pure b/moved\nsimilarity index 100%\nrename from pure\nrename to moved\n")
    files = S.parse_diff(text)
    assert [(f.old, f.new) for f in files] == [("old/name.c", "new/name.c"), ("pure", "moved")]
    p0 = S.parse_diff("--- linux/mm/gup.c\n+++ linux/mm/gup.c\n@@ -1 +1 @@\n-a\n+b\n", strip=1)
    assert p0[0].path == "mm/gup.c"


def test_patch_touched_lists_every_path_once():
    p = S._make_patch("x.patch", diff("a.c") + diff("b.c") + diff("a.c"), 1)
    assert p.touched() == ["a.c", "b.c"]


# ------------------------------------------------------------------------------ quilt

def write(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def test_quilt_series_order_comments_and_strip(tmp_path):
    d = tmp_path / "my-series"
    write(d / "first.patch", diff("a.c"))
    write(d / "second.patch", "--- linux/b.c\n+++ linux/b.c\n@@ -1 +1 @@\n-x\n+y\n")
    write(d / "series", "# the order matters\nfirst.patch\n\nsecond.patch -p1  # trailing\n")
    s = S.parse_quilt(d)
    assert s.name == "my-series"
    assert [p.name for p in s.patches] == ["first.patch", "second.patch"]
    assert [p.touched() for p in s.patches] == [["a.c"], ["b.c"]]


def test_quilt_missing_patch_names_series_line(tmp_path):
    d = tmp_path / "s"
    write(d / "series", "one.patch\nmissing.patch\n")
    write(d / "one.patch", diff())
    with pytest.raises(UserError) as e:
        S.parse_quilt(d)
    assert str(e.value) == f"{d / 'series'}:2: patch missing.patch does not exist in {d}"


def test_quilt_bad_option_and_empty(tmp_path):
    d = tmp_path / "s"
    write(d / "series", "one.patch -R\n")
    write(d / "one.patch", diff())
    with pytest.raises(UserError, match=r"series:1: unknown option '-R'"):
        S.parse_quilt(d)
    write(d / "series", "# nothing\n")
    with pytest.raises(UserError, match="lists no patches"):
        S.parse_quilt(d)


def test_quilt_patch_without_diff_is_an_error(tmp_path):
    d = tmp_path / "s"
    write(d / "series", "empty.patch\n")
    write(d / "empty.patch", "just words\n")
    with pytest.raises(UserError, match="empty.patch contains no diff"):
        S.parse_quilt(d)


def test_quilt_subject_of_format_patch_file_is_unfolded(tmp_path):
    d = tmp_path / "s"
    text = mail(1, 2, "mm/gup: a subject long enough to be\n folded by git", diff())
    write(d / "0001.patch", text)
    write(d / "series", "0001.patch\n")
    assert S.parse_quilt(d).patches[0].subject == "mm/gup: a subject long enough to be folded by git"


# ------------------------------------------------------------------------------ mbox

def test_mbox_one_patch(tmp_path):
    p = tmp_path / "one.mbox"
    p.write_text(mail(0, 0, "mm/gup: refuse things", diff()))
    s = S.load_series(str(p))
    assert [x.name for x in s.patches] == ["0001-mm-gup-refuse-things.patch"]
    assert s.patches[0].subject == "mm/gup: refuse things"
    assert s.patches[0].touched() == ["mm/gup.c"]


def test_mbox_many_patches_cover_letter_skipped_and_ordered_by_number(tmp_path):
    p = tmp_path / "series.mbox"
    p.write_text(mail(0, 3, "the cover letter", "no diff here\n")
                 + mail(2, 3, "second", diff("b.c"))
                 + mail(1, 3, "first", diff("a.c"))
                 + mail(3, 3, "third", diff("c.c")))
    s = S.parse_mbox(p)
    assert [x.subject for x in s.patches] == ["first", "second", "third"]
    assert [x.name for x in s.patches] == ["0001-first.patch", "0002-second.patch",
                                          "0003-third.patch"]


def test_mbox_file_order_when_not_numbered(tmp_path):
    p = tmp_path / "x.mbox"
    p.write_text(mail(0, 0, "zeta", diff("z.c")) + mail(0, 0, "alpha", diff("a.c")))
    assert [x.subject for x in S.parse_mbox(p).patches] == ["zeta", "alpha"]


def test_mbox_resend_of_a_patch_takes_the_later_one(tmp_path):
    p = tmp_path / "x.mbox"
    p.write_text(mail(1, 2, "a", diff("a.c")) + mail(2, 2, "b", diff("b.c"))
                 + mail(1, 2, "a again", diff("a.c", old=" a\n-b\n+d\n")))
    s = S.parse_mbox(p)
    assert [x.subject for x in s.patches] == ["a again", "b"]
    assert any("v1 1/2 was sent twice" in n and "message 3" in n for n in s.notes)


def test_mbox_without_patches(tmp_path):
    p = tmp_path / "x.mbox"
    p.write_text(mail(0, 0, "just talk", "hello\n"))
    with pytest.raises(UserError, match="no patch in it"):
        S.parse_mbox(p)


def test_mboxrd_from_lines_unescaped_and_quoted_printable_decoded(tmp_path):
    body = "From the start this was wrong.\n---\n" + diff("a.c", old=" x\n-y\n+changed=\n")
    qp = body.replace("=", "=3D").replace("\nFrom the start", "\n>From the start")
    text = ("From mboxrd@z Thu Jan  1 00:00:00 1970\nSubject: [PATCH] qp mail\n"
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n"
            "\n" + qp.replace("From the start", ">From the start", 1) + "\n")
    p = tmp_path / "qp.mbox"
    p.write_text(text)
    patch = S.parse_mbox(p).patches[0]
    assert patch.text.startswith("From the start this was wrong.\n")
    assert "+changed=\n" in patch.text
    assert patch.touched() == ["a.c"]


def test_digest_covers_name_strip_and_text():
    a = S.Patch("a.patch", diff(), 1)
    assert a.digest == S.Patch("a.patch", diff(), 1).digest
    assert a.digest != S.Patch("b.patch", diff(), 1).digest
    assert a.digest != S.Patch("a.patch", diff(), 0).digest
    assert a.digest != S.Patch("a.patch", diff(old=" a\n-b\n+d\n"), 1).digest
    s = S.Series("s", (a,))
    assert s.digest != S.Series("s", (a, a)).digest
    assert s.digest == S.Series("renamed", (a,)).digest    # the name is not content
    assert S.Series("s", (a, a)).prefix(1).digest == s.digest


def test_single_patch_file_and_unknown_path(tmp_path):
    p = write(tmp_path / "fix.patch", diff())
    s = S.load_series(str(p))
    assert (s.name, [x.name for x in s.patches]) == ("fix", ["fix.patch"])
    with pytest.raises(UserError, match="does not exist"):
        S.load_series(str(tmp_path / "nope.patch"))


def test_directory_with_one_mbox(tmp_path):
    d = tmp_path / "from-lore"
    write(d / "v2.mbox", mail(1, 1, "only", diff()))
    s = S.load_series(str(d))
    assert s.name == "from-lore" and len(s.patches) == 1


# ------------------------------------------------------------------------------ git range

def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def test_git_range_becomes_patches_in_order(tmp_path):
    repo = tmp_path / "linux"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "f.c").write_text("one\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "tag", "v1")
    for i, msg in enumerate(["mm: first change", "mm: second change"], 2):
        (repo / "f.c").write_text("one\n" * i)
        git(repo, "commit", "-qam", msg)
    s = S.load_series("git:v1..HEAD", repo)
    assert s.name == "git:v1..HEAD"
    assert [p.subject for p in s.patches] == ["mm: first change", "mm: second change"]
    assert all(p.touched() == ["f.c"] for p in s.patches)
    with pytest.raises(UserError, match="'nope' is not a commit"):
        S.load_series("git:nope..HEAD", repo)
    with pytest.raises(UserError, match="no commits in that range"):
        S.load_series("git:HEAD..HEAD", repo)


# ------------------------------------------------------------------------------ the repo's series

@pytest.mark.parametrize("name,count", [("longterm-file-deny", 4), ("pinned-writeback-warn", 1)])
def test_repo_series_parse(name, count):
    s = S.load_series(str(REPO / "kernels" / "patches" / name))
    assert len(s.patches) == count
    assert all(p.files and p.subject for p in s.patches)
