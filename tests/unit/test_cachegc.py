"""`rig gc` (issue 11: item 13): a dry run by default, by age and size, never removing what a
kept result names unless told, always removing leftovers of boots no QEMU holds."""
import json
import os
import time

from pinrig import cachegc, cli, paths

OLD = time.time() - 90 * 86400


def _entry(path, meta=None, name=None, size=4096, age=None):
    path.mkdir(parents=True)
    (path / "blob").write_bytes(b"x" * size)
    if meta:
        (path / name).write_text(json.dumps(meta))
    if age is not None:
        for p in [path, *path.iterdir()]:
            os.utime(p, (age, age))
    return path


def _cache(tmp_path):
    c = paths.cache_dir()
    k_used = _entry(c / "kernels/debian/linux-image-a=1", {"hash": "kaaaa"}, "artifact.json", age=OLD)
    k_old = _entry(c / "kernels/debian/linux-image-b=1", {"hash": "kbbbb"}, "artifact.json", age=OLD)
    img = _entry(c / "images/bookworm-gggg", {"hash": "gggg"}, "image.json", size=1 << 20)
    boot = _entry(c / "pinrig-boot-abc", age=time.time() - 7200)
    with open(boot / "pmem.img", "wb") as f:       # a 1 GiB sparse pmem file
        f.truncate(1 << 30)
    for q in (boot, *boot.iterdir()):
        os.utime(q, (time.time() - 7200,) * 2)
    run = tmp_path / "results" / "20261129-debian-6.1-smoke"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"kernel": {"hash": "kaaaa"},
                                                   "guest": {"hash": "gggg"}}))
    return k_used, k_old, img, boot


def test_plan_by_age_references_and_leftovers(tmp_path):
    k_used, k_old, img, boot = _cache(tmp_path)
    p = cachegc.plan(cachegc.scan(), cachegc.references([tmp_path / "results"]))
    gone = {e.path for e in p.remove}
    assert gone == {k_old, boot}
    assert "named by 1 kept result" in p.reasons[k_used]
    # sparse pmem counts what it uses, not 1 GiB
    assert next(e for e in p.entries if e.path == boot).size < (1 << 20)
    p2 = cachegc.plan(cachegc.scan(), cachegc.references([tmp_path / "results"]),
                      include_referenced=True)
    assert k_used in {e.path for e in p2.remove}


def test_max_size_removes_least_recently_used_but_not_referenced(tmp_path):
    k_used, k_old, img, boot = _cache(tmp_path)
    p = cachegc.plan(cachegc.scan(), cachegc.references([tmp_path / "results"]),
                     older_than_days=365, max_size=0)
    gone = {e.path for e in p.remove}
    assert k_old in gone and boot in gone and k_used not in gone and img not in gone


def test_busy_directories_are_kept(tmp_path):
    _k_used, _k_old, _img, boot = _cache(tmp_path)
    p = cachegc.plan(cachegc.scan(), {}, busy={str(boot / "pmem.img")})
    assert boot not in {e.path for e in p.remove}
    assert p.reasons[boot] == "in use by a running QEMU"


def test_cli_is_a_dry_run_unless_delete(tmp_path, capsys, keep_signal_handlers):
    k_used, k_old, img, boot = _cache(tmp_path)
    results = str(tmp_path / "results")
    assert cli.main(["gc", "--results", results]) == 0
    out = capsys.readouterr().out
    assert "would delete" in out and "--delete to do it" in out
    assert k_old.exists() and boot.exists()
    assert cli.main(["gc", "--results", results, "--delete"]) == 0
    assert not k_old.exists() and not boot.exists() and k_used.exists() and img.exists()
    assert not k_old.with_name(k_old.name + ".lock").exists()


def test_saved_states_are_entries_and_protected_by_the_runs_that_used_them(tmp_path):
    c = paths.cache_dir()
    used = _entry(c / "snapshots/abc123", {"key": "abc123"}, "info.json", age=OLD)
    stale = _entry(c / "snapshots/def456", {"key": "def456"}, "info.json", age=OLD)
    run = tmp_path / "results" / "r"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"boot": {"saved_state": "abc123"}}))
    p = cachegc.plan(cachegc.scan(), cachegc.references([tmp_path / "results"]))
    assert {e.path for e in p.remove if e.kind == "snapshot"} == {stale}
    assert used not in {e.path for e in p.remove}
