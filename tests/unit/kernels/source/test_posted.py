"""Series as posted: the format-patch fixtures in tests/data/series (scripts/make_series_fixtures.py)
read as a list archive serves them, applied strictly, with --fuzz, with git am -3, and lore:."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pinrig import proc
from pinrig.errors import UserError
from pinrig.kernels.source import apply, lore
from pinrig.kernels.source import series as S

REPO = Path(__file__).resolve().parents[4]
DATA = REPO / "tests" / "data" / "series"
V1_IDS = ["<20260101.v1.%d-series@example.org>" % k for k in range(4)]
SUBJECTS = ["mm: declare vma_needs_dirty_tracking()",
            "mm/gup: refuse writable long-term pins of file mappings that need dirty tracking",
            "mm/gup: pin_user_pages() must not be called with FOLL_GET"]


def real_runner(monkeypatch):
    monkeypatch.setattr(proc, "RUNNER", proc.Runner())


# ------------------------------------------------------------------------------ reading threads

def test_v1_thread_cover_replies_and_trailers():
    s = S.load_series(str(DATA / "v1.mbox"))
    assert s.revision == 1 and [p.subject for p in s.patches] == SUBJECTS
    assert s.title == "mm/gup: refuse long-term pins that escape dirty tracking"
    assert all(p.author == "Jörg Rödel <joerg@example.org>" for p in s.patches)   # RFC 2047
    # the review of 2/3 gives it Reviewed-by; the ack of the cover goes to every patch; the
    # author's "thanks" quoting the review adds nothing
    ack = "Acked-by: Zoë Maintainer <zoe@example.org>"
    assert s.patches[0].trailers == (ack,)
    assert s.patches[1].trailers == ("Reviewed-by: Bob Reviewer <bob@example.org>", ack)
    assert "3 replies (not patches) skipped" in s.notes
    # the reply quotes the patch ("> +…") but is not taken for one
    assert len(s.patches) == 3


def test_encoded_v2_decodes_to_the_same_diffs_as_format_patch_wrote():
    enc = S.load_series(str(DATA / "v2-encoded.mbox"))
    assert enc.revision == 2 and [p.subject for p in enc.patches] == SUBJECTS
    raw = (DATA / "v2-encoded.mbox").read_text()
    assert "Content-Transfer-Encoding: quoted-printable" in raw and "base64" in raw
    assert "=?UTF-8?q?J=C3=B6rg" in raw
    qp = enc.patches[0].text
    assert "+bool vma_needs_dirty_tracking(struct vm_area_struct *vma);\n" in qp
    b64 = enc.patches[1].text
    assert "+\t\t/* a device write would escape the filesystem's dirty tracking */\n" in b64
    assert [p.touched() for p in enc.patches] == [["mm/internal.h"], ["mm/gup.c"], ["mm/gup.c"]]


def test_eml_directory_is_the_same_series_as_the_mbox():
    a = S.load_series(str(DATA / "v2-eml"))
    b = S.load_series(str(DATA / "v2-encoded.mbox"))
    assert a.digest == b.digest and a.revision == 2 and a.name == "v2-eml"


def test_several_revisions_newest_complete_is_used_and_said():
    s = S.load_series(str(DATA / "all-revisions.mbox"))
    assert s.revision == 2
    assert s.notes[0].startswith("using v2, the newest complete revision: 3 patch(es)")
    assert "v3 not used (incomplete: 1 of 3, missing 1, 3)" in s.notes
    assert "v1 not used (complete)" in s.notes
    assert s.digest == S.load_series(str(DATA / "v2-encoded.mbox")).digest
    assert [x for x in s.revisions] == [(1, 3, 3), (2, 3, 3), (3, 1, 3)]


def test_rev_picks_an_older_revision_or_completes_a_partial_reroll():
    v1 = S.load_series(str(DATA / "all-revisions.mbox"), rev=1)
    assert v1.revision == 1 and v1.digest == S.load_series(str(DATA / "v1.mbox")).digest
    v3 = S.load_series(str(DATA / "all-revisions.mbox"), rev=3)
    assert v3.revision == 3
    assert "patch 1/3 taken from v2 (v3 has no 1/3)" in v3.notes
    assert "unlikely(gup_flags & FOLL_LONGTERM)" in v3.patches[1].text
    assert v3.patches[0].text == S.load_series(str(DATA / "v2-encoded.mbox")).patches[0].text
    with pytest.raises(UserError, match=r"--rev 7: no revision 7 in it \(has v1, v2, v3\)"):
        S.load_series(str(DATA / "all-revisions.mbox"), rev=7)


def test_no_complete_revision_says_what_is_missing(tmp_path):
    text = (DATA / "v2-encoded.mbox").read_text()
    msgs = S.split_mbox(text)
    p = tmp_path / "partial.mbox"
    p.write_text("".join("From x@y Thu Jan  1 00:00:00 1970\n" + m for m in msgs[:2]))
    with pytest.raises(UserError) as e:
        S.load_series(str(p))
    assert str(e.value) == (f"{p}: no complete revision of the series (v2 has 1 of 3 "
                            "(missing 2, 3)); use --rev N to fill one from an earlier revision")


def test_mbox_with_no_patch_is_one_line():
    with pytest.raises(UserError) as e:
        S.load_series(str(DATA / "no-patch.mbox"))
    assert str(e.value) == (f"{DATA / 'no-patch.mbox'}: no patch in it (no message with a diff; "
                            "2 message(s) read)")


def test_as_mail_carries_author_date_subject_and_reply_trailers():
    p = S.load_series(str(DATA / "v1.mbox")).patches[1]
    mail = p.as_mail()
    assert mail.startswith("From 0000000000000000000000000000000000000000 ")
    assert "\nFrom: Jörg Rödel <joerg@example.org>\n" in mail
    assert f"\nSubject: [PATCH] {SUBJECTS[1]}\n" in mail
    head, _, rest = mail.partition("\n---\n")
    assert head.endswith("Reviewed-by: Bob Reviewer <bob@example.org>\n"
                         "Acked-by: Zoë Maintainer <zoe@example.org>")
    assert "diff --git a/mm/gup.c b/mm/gup.c" in rest


# ------------------------------------------------------------------------------ applying

def test_strict_apply_records_offsets(tmp_path, monkeypatch):
    real_runner(monkeypatch)
    s = S.load_series(str(DATA / "v1.mbox"))
    notes = apply.trial(DATA / "base", s, tmp_path / "t", "base")
    assert notes == []
    # drifted moved the code down: patch 1 and 3 go in at an offset, patch 2 needs fuzz 1
    with pytest.raises(apply.PatchDoesNotApply) as e:
        apply.trial(DATA / "drifted", s, tmp_path / "t", "drifted")
    assert str(e.value) == (
        "patch 2/3 0002-mm-gup-refuse-writable-long-term-pins-of-file-mappin.patch does not "
        "apply to drifted: mm/gup.c: hunk #1 of 1 FAILED at line 13 (@@ -13,6 +13,8 @@ static "
        "int check_vma_flags(struct vm_area_struct *vma, unsigned long gup_flags)); nearest match "
        "at line 17 (5 of 6 old lines match; hunk line 6 '}' is '}\\t/* check_vma_flags */' "
        "there); nothing was built")
    assert not (DATA / "drifted" / "mm" / "gup.c.orig").exists()


def test_fuzz_is_opt_in_and_every_offset_and_fuzz_is_recorded(tmp_path, monkeypatch):
    real_runner(monkeypatch)
    s = S.load_series(str(DATA / "v1.mbox"))
    notes = apply.trial(DATA / "drifted", s, tmp_path / "t", "drifted", fuzz=1)
    assert [(n.index, n.file, n.hunk, n.at, n.offset, n.fuzz) for n in notes] == [
        (1, "mm/internal.h", 1, 6, 2, 0), (2, "mm/gup.c", 1, 17, 4, 1), (3, "mm/gup.c", 1, 26, 4, 0)]
    assert notes[1].text() == ("patch 2 0002-mm-gup-refuse-writable-long-term-pins-of-file-mappin"
                               ".patch: mm/gup.c hunk #1 applied at line 17 (offset +4 lines, "
                               "fuzz 1)")
    with pytest.raises(UserError, match="--fuzz -1: must be 0 or more"):
        apply.trial(DATA / "drifted", s, tmp_path / "t", "drifted", fuzz=-1)


def test_a_real_conflict_names_the_differing_line(tmp_path, monkeypatch):
    real_runner(monkeypatch)
    s = S.load_series(str(DATA / "all-revisions.mbox"))
    with pytest.raises(apply.PatchDoesNotApply) as e:
        apply.trial(DATA / "conflicting", s, tmp_path / "t", "c", fuzz=2)
    f = e.value.failure
    assert (f.index, f.file, f.hunk) == (2, "mm/gup.c", 1)
    assert f.nearest == ("nearest match at line 13 (4 of 6 old lines match; hunk line 2 "
                         "'if (!(vm_flags & VM_WRITE))' is 'if (!(vm_flags & VM_MAYWRITE))' there)")


def test_nearest_context_when_the_code_is_gone(tmp_path):
    (tmp_path / "f.c").write_text("nothing\nhere\n")
    h = S.parse_diff("--- a/f.c\n+++ b/f.c\n@@ -1,2 +1,2 @@\n int x;\n-int y;\n+int z;\n")[0].hunks[0]
    assert apply.nearest_context(tmp_path, "f.c", h) == "none of its 2 old lines is in f.c"
    assert apply.nearest_context(tmp_path, "missing.c", h) is None


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def upstream_repo(tmp_path, head_tree):
    """A repo with base/ as its first commit (so the series' index lines name real blobs) and
    head_tree as HEAD (upstream moved on)."""
    repo = tmp_path / "linux"
    shutil.copytree(DATA / "base", repo)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    if head_tree != "base":
        shutil.copytree(DATA / head_tree, repo, dirs_exist_ok=True)
        git(repo, "commit", "-qam", "upstream drift")
    work = tmp_path / "work"
    shutil.copytree(DATA / head_tree, work)
    return repo, work, git(repo, "rev-parse", "HEAD")


def test_git_am_3way_applies_what_strict_patch_refuses(tmp_path, monkeypatch):
    real_runner(monkeypatch)
    repo, work, head = upstream_repo(tmp_path, "drifted")
    s = S.load_series(str(DATA / "v1.mbox"))
    notes: list = []
    touched = apply.apply_series_git(work, s, tmp_path / "am", "drifted", repo, head, notes=notes)
    assert touched == ["mm/internal.h", "mm/gup.c"]
    text = (work / "mm/gup.c").read_text()
    assert "vma_needs_dirty_tracking(vma))" in text and "WARN_ON_ONCE(gup_flags & FOLL_GET)" in text
    assert "}\t/* check_vma_flags */" in text          # upstream's change kept
    assert any("applied by 3-way merge (mm/gup.c)" in n for n in notes)
    assert not (work / ".git").exists() and not (tmp_path / "am").exists()
    assert git(repo, "rev-parse", "HEAD") == head       # the user's repository was not written
    assert git(repo, "status", "--porcelain") == ""


def test_git_am_conflict_reports_patch_file_and_hunk(tmp_path, monkeypatch):
    real_runner(monkeypatch)
    repo, work, head = upstream_repo(tmp_path, "conflicting")
    s = S.load_series(str(DATA / "v1.mbox"))
    with pytest.raises(apply.PatchDoesNotApply) as e:
        apply.apply_series_git(work, s, tmp_path / "am", "conflicting", repo, head)
    msg = str(e.value)
    assert msg.startswith("patch 2/3 0002-mm-gup-refuse-writable-long-term-pins-of-file-mappin."
                          "patch does not apply (git am -3) to conflicting: mm/gup.c: hunk #1 of 1 "
                          "FAILED at line 13")
    assert "'if (!(vm_flags & VM_WRITE))' is 'if (!(vm_flags & VM_MAYWRITE))' there" in msg


# ------------------------------------------------------------------------------ lore:

MSGID = "20260101.v1.0-series@example.org"


def test_msgid_forms():
    for text in (MSGID, f"<{MSGID}>", f"https://lore.kernel.org/all/{MSGID}/",
                 f"https://lore.kernel.org/linux-mm/{MSGID.replace('@', '%40')}"):
        assert lore.clean_msgid(text) == MSGID
    with pytest.raises(UserError, match="not a Message-ID"):
        lore.clean_msgid("no spaces allowed@x y")


def resolves(host: str) -> bool:
    import socket
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def test_offline_without_cache_or_mbox_is_one_clear_line(monkeypatch):
    """The real b4, the real (absent) network: lore.kernel.org does not resolve here."""
    real_runner(monkeypatch)
    with pytest.raises(UserError) as e:
        S.load_series(f"lore:{MSGID}")
    msg = str(e.value)
    assert msg.startswith(f"series lore:{MSGID}: cannot fetch the thread (b4 mbox failed (exit 1)")
    assert msg.endswith("); no cached copy and no series_mbox: to use instead")
    if not resolves("lore.kernel.org"):        # this box: the exact words
        assert "(exit 1): lore.kernel.org does not resolve (no network?))" in msg
    assert msg.endswith("no cached copy and no series_mbox: to use instead")
    assert "\n" not in msg
    assert not list((lore.cache_root() / "ids").glob("*")) if (lore.cache_root() / "ids").exists() \
        else True


def test_offline_uses_the_local_mbox_then_the_cache(monkeypatch, tmp_path):
    real_runner(monkeypatch)
    s = S.load_series(f"lore:{MSGID}", local_mbox=str(DATA / "all-revisions.mbox"))
    assert s.revision == 2 and s.name == f"lore:{MSGID}"
    assert s.notes[0].startswith(f"thread <{MSGID}> from local mbox {DATA / 'all-revisions.mbox'}")
    assert s.notes[1].startswith("not fetched: b4 mbox failed")
    # now cached (content-addressed): no local mbox needed, b4 not even asked
    monkeypatch.setattr(lore, "fetch_b4", lambda m: pytest.fail("fetched although cached"))
    again = S.load_series(f"lore:{MSGID}")
    assert again.digest == s.digest and "from cache (local mbox" in again.notes[0]
    blob = next((lore.cache_root() / "blobs").glob("*.mbox"))
    assert blob.read_bytes() == (DATA / "all-revisions.mbox").read_bytes()
    # a damaged cache entry is not used
    blob.write_bytes(b"From x\n\ntruncated")
    monkeypatch.setattr(lore, "fetch_b4", lambda m: (None, "offline"))
    with pytest.raises(UserError, match="cannot fetch the thread \\(offline\\)"):
        S.load_series(f"lore:{MSGID}")


def test_local_mbox_without_the_message_is_refused():
    with pytest.raises(UserError, match=r"series_mbox: .*v2-encoded.mbox does not hold "
                                        rf"<{MSGID}>"):
        lore.thread(MSGID, DATA / "v2-encoded.mbox")


def b4_writes(fake_runner, data, rc=0, err=""):
    def handler(argv, kw):
        if "mbox" in argv and rc == 0:
            out = Path(argv[argv.index("-o") + 1]) / argv[argv.index("-n") + 1]
            out.write_bytes(data)
        return rc, "", err
    fake_runner.handler = handler


def test_b4_call_and_the_cache(fake_runner):
    b4_writes(fake_runner, (DATA / "v1.mbox").read_bytes())
    s = S.load_series(f"lore:<{MSGID}>", rev=1)
    argv = fake_runner.argvs()[0]
    assert argv[1:6] == ["-q", "mbox", "-n", "thread.mbox", "-o"] and argv[-1] == MSGID
    assert Path(argv[0]).name == "b4"
    assert s.revision == 1 and "b4 mbox (lore.kernel.org)" in s.origin
    meta = json.loads(next((lore.cache_root() / "ids").glob("*.json")).read_text())
    assert meta["msgid"] == MSGID and meta["via"] == "b4 mbox (lore.kernel.org)"
    assert not [p for p in lore.cache_root().iterdir() if p.name.startswith("b4-")]  # tmp gone
    fake_runner.calls.clear()
    S.load_series(f"lore:{MSGID}")
    assert fake_runner.calls == []                   # the cache answers
    S.load_series(f"lore:{MSGID}", refresh=True)
    assert len(fake_runner.calls) == 1               # --refresh asks b4 again


def test_half_fetched_thread_never_lands_in_the_cache(fake_runner):
    # b4 "succeeds" but the mbox lacks the asked-for message (cut short): refused, nothing kept
    b4_writes(fake_runner, (DATA / "v2-encoded.mbox").read_bytes())
    with pytest.raises(UserError, match=r"b4 mbox gave a thread without <.*> \(incomplete\?\)"):
        S.load_series(f"lore:{MSGID}")
    assert not (lore.cache_root() / "ids").exists() or not list((lore.cache_root() / "ids").iterdir())
    b4_writes(fake_runner, b"", rc=1, err="Could not retrieve thread: boom\n")
    with pytest.raises(UserError, match=r"b4 mbox failed \(exit 1\): Could not retrieve thread: "
                                        r"boom\)"):
        S.load_series(f"lore:{MSGID}")


@pytest.mark.parametrize("subject, want", [
    ("[PATCH v3 02/12] mm/gup: x", (False, 3, 2, 12, ("PATCH",), "mm/gup: x")),
    ("[PATCHv2 1/3] a", (False, 2, 1, 3, (), "a")),
    ("[RFC PATCH 0/4] cover", (False, 1, 0, 4, ("RFC", "PATCH"), "cover")),
    ("Re: [PATCH v2 RESEND 3/3] y", (True, 2, 3, 3, ("PATCH", "RESEND"), "y")),
    ("[PATCH net-next] [v4] z", (False, 4, None, None, ("PATCH", "net-next"), "z")),
    ("AW: Re: [PATCH 1/2] q", (True, 1, 1, 2, ("PATCH",), "q")),
    ("plain words", (False, 1, None, None, (), "plain words")),
])
def test_subject_prefixes(subject, want):
    from pinrig.kernels.source.mailthread import parse_subject
    assert parse_subject(subject) == want


def test_a_damaged_blob_is_rewritten_when_stored_again(monkeypatch):
    monkeypatch.setattr(lore, "fetch_b4", lambda m: (None, "offline"))
    t = lore.thread(MSGID, DATA / "v1.mbox")
    t.path.write_bytes(b"damaged")
    t2 = lore.thread(MSGID, DATA / "v1.mbox")
    assert t2.path.read_bytes() == (DATA / "v1.mbox").read_bytes()


def test_b4_errors_are_shortened():
    long = ("Could not retrieve thread: All hosts failed for https://lore.kernel.org/all/x/t.mbox.gz:"
            " HTTPSConnectionPool(host='lore.kernel.org', port=443): Max retries exceeded with url:"
            " /all/x/t.mbox.gz (Caused by NameResolutionError(\"…Failed to resolve…\"))")
    assert lore.short_reason(long) == "lore.kernel.org does not resolve (no network?)"
    assert lore.short_reason("HTTPSConnectionPool(host='lore.kernel.org', port=443): Max retries "
                             "exceeded (Connection refused)") == "cannot reach lore.kernel.org"
    assert lore.short_reason("x" * 300).endswith("…") and len(lore.short_reason("x" * 300)) == 200


def test_reply_trailers_already_in_the_patch_are_not_added_twice(tmp_path):
    patch = ("From: A <a@x>\nSubject: [PATCH 1/1] f\nMessage-ID: <p1@x>\n\nWhy.\n\n"
             "Reviewed-by: Early <early@x>\nSigned-off-by: A <a@x>\n---\n"
             "--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-a\n+b\n")
    ack = ("From: R <r@x>\nSubject: Re: [PATCH 1/1] f\nMessage-ID: <r1@x>\nIn-Reply-To: <p1@x>\n\n"
           "> Reviewed-by: Quoted <q@x>\nReviewed-by: Early <early@x>\nTested-by: T <t@x>\n")
    p = tmp_path / "t.mbox"
    p.write_text("".join(f"From x@y Thu Jan  1 00:00:00 1970\n{m}\n" for m in (patch, ack)))
    (only,) = S.load_series(str(p)).patches
    assert only.trailers == ("Tested-by: T <t@x>",)
    assert only.as_mail().count("Reviewed-by: Early <early@x>") == 1


def test_trial_on_a_git_tree_uses_git_am_3way(tmp_path, monkeypatch, capsys, keep_signal_handlers):
    real_runner(monkeypatch)
    repo, _work, head = upstream_repo(tmp_path, "drifted")
    s = S.load_series(str(DATA / "v1.mbox"))
    notes = apply.trial_git(repo, head, s, tmp_path / "t", "drifted")
    assert notes == ["patch 2 0002-mm-gup-refuse-writable-long-term-pins-of-file-mappin.patch: "
                     "applied by 3-way merge (mm/gup.c)"]
    from pinrig import cli
    assert cli.main(["series", str(DATA / "v1.mbox"), "--tree", str(repo)]) == 0
    assert f"applies to {repo} with git am -3, 1 warning(s):" in capsys.readouterr().out
    assert git(repo, "status", "--porcelain") == "" and git(repo, "rev-parse", "HEAD") == head


def test_in_body_from_line_stays_in_the_body_for_git_am(tmp_path, monkeypatch):
    """A patch sent on someone's behalf starts its body with 'From: Real Author': git am takes
    that as the author; the mail still needs its own headers."""
    real_runner(monkeypatch)
    repo, work, head = upstream_repo(tmp_path, "base")
    body = ("From: Real Author <real@x>\n\nWhy.\n\nSigned-off-by: Real Author <real@x>\n---\n"
            "--- a/mm/internal.h\n+++ b/mm/internal.h\n@@ -5,3 +5,4 @@\n"
            " extern bool mirrored_kernelcore;\n+extern int x;\n \n"
            " static inline bool vma_soft_dirty_enabled(struct vm_area_struct *vma)\n")
    p = tmp_path / "s.mbox"
    p.write_text("From x@y Thu Jan  1 00:00:00 1970\nFrom: Sender <s@x>\n"
                 "Subject: [PATCH] mm: add x\nMessage-ID: <m@x>\n\n" + body)
    s = S.load_series(str(p))
    assert s.patches[0].as_mail().startswith("From 0000000000000000000000000000000000000000")
    apply.apply_series_git(work, s, tmp_path / "am", "base", repo, head)
    assert "extern int x;" in (work / "mm/internal.h").read_text()
