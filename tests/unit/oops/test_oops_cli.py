"""``rig oops [--json] LOG...`` (pinrig.oops.main)."""
from __future__ import annotations

import json
import os
import tracemalloc

import pytest

from pinrig.oops import linux, main, parse_console
from pinrig.oops.engine import ReportParser


def test_main_json(tmp_path, capsys, corpus_log):
    bad = tmp_path / "bad.log"
    bad.write_bytes(corpus_log("two-reports-warn-then-bug-6.1.log"))
    good = tmp_path / "good.log"
    good.write_bytes(corpus_log("clean-boot-6.12.log"))
    assert main(["--json", str(bad), str(good)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == [str(bad), str(good)]
    assert out[str(good)] == []
    first = out[str(bad)][0]
    for key in ("title", "kind", "frames", "corrupted", "line", "normalized"):
        assert key in first
    assert first["title"] == "WARNING in ext4_dirty_folio"
    assert isinstance(first["frames"], list) and isinstance(first["corrupted"], bool)
    assert isinstance(first["line"], int) and first["line"] > 1
    assert len(out[str(bad)]) == 2


def test_main_text(tmp_path, capsys, corpus_log):
    log = tmp_path / "console.log"
    log.write_bytes(corpus_log("hung-task-fsync-6.1.log"))
    clean = tmp_path / "clean.log"
    clean.write_bytes(corpus_log("clean-boot-6.1.log"))
    assert main([str(log), str(clean)]) == 0
    out = capsys.readouterr().out
    assert "INFO: task hung in ext4_sync_file" in out
    assert f"{clean}: no kernel reports" in out


def test_main_unreadable(tmp_path, capsys):
    missing = tmp_path / "nope.log"
    assert main([str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err and "Traceback" not in err
    assert main([str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_main_usage_error(capsys):
    assert main([]) == 2


# --------------------------------------------------------------------------
# Unreadable logs do not hide the readable ones.


def _two_good_logs(tmp_path, corpus_log):
    one = tmp_path / "one.log"
    one.write_bytes(corpus_log("hung-task-fsync-6.1.log"))
    two = tmp_path / "two.log"
    two.write_bytes(corpus_log("two-reports-warn-then-bug-6.1.log"))
    return one, two


def _error_lines(err: str):
    lines = err.splitlines()
    assert "Traceback" not in err
    assert all(line.startswith("rig oops: cannot read ") for line in lines), lines
    return lines


def test_main_text_reports_readable_logs_when_others_are_not(tmp_path, capsys, corpus_log):
    one, two = _two_good_logs(tmp_path, corpus_log)
    missing = tmp_path / "missing.log"
    directory = tmp_path / "a-directory"
    directory.mkdir()
    assert main([str(one), str(missing), str(directory), str(two)]) == 2
    captured = capsys.readouterr()
    assert "INFO: task hung in ext4_sync_file" in captured.out
    assert f"{two}: 2 kernel reports; headline: WARNING in ext4_dirty_folio" in captured.out
    errors = _error_lines(captured.err)
    assert len(errors) == 2
    assert str(missing) in errors[0] and "No such file or directory" in errors[0]
    assert str(directory) in errors[1] and "Is a directory" in errors[1]


def test_main_json_reports_readable_logs_when_others_are_not(tmp_path, capsys, corpus_log):
    one, two = _two_good_logs(tmp_path, corpus_log)
    missing = tmp_path / "missing.log"
    assert main(["--json", str(missing), str(one), str(two)]) == 2
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert list(out) == [str(one), str(two)]
    assert out[str(one)][0]["title"] == "INFO: task hung in ext4_sync_file"
    assert [r["title"] for r in out[str(two)]] == ["WARNING in ext4_dirty_folio",
                                                   "kernel BUG in folio_end_writeback"]
    assert all(r["count"] == 1 for r in out[str(two)])
    (error,) = _error_lines(captured.err)
    assert str(missing) in error


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_main_permission_denied(tmp_path, capsys, corpus_log):
    one, _ = _two_good_logs(tmp_path, corpus_log)
    locked = tmp_path / "locked.log"
    locked.write_bytes(b"x\n")
    locked.chmod(0)
    try:
        assert main([str(locked), str(one)]) == 2
    finally:
        locked.chmod(0o600)
    captured = capsys.readouterr()
    assert "INFO: task hung in ext4_sync_file" in captured.out
    (error,) = _error_lines(captured.err)
    assert str(locked) in error and "Permission denied" in error


def test_main_read_error_in_the_middle_of_a_log(tmp_path, capsys, corpus_log, monkeypatch):
    """An I/O error after part of a log was read: that log is unreadable."""
    one, two = _two_good_logs(tmp_path, corpus_log)
    real_open = open

    class Failing:
        def __init__(self, fh):
            self.fh = fh

        def read(self, size=-1):
            if self.fh.tell() > 0:
                raise OSError(5, "Input/output error")
            return self.fh.read(16)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def fake_open(path, mode="r", *args, **kw):
        fh = real_open(path, mode, *args, **kw)
        return Failing(fh) if str(path) == str(one) else fh

    monkeypatch.setattr("builtins.open", fake_open)
    assert main([str(one), str(two)]) == 2
    captured = capsys.readouterr()
    assert f"{two}: 2 kernel reports" in captured.out and str(one) not in captured.out
    (error,) = _error_lines(captured.err)
    assert str(one) in error and "Input/output error" in error


# --------------------------------------------------------------------------
# Big logs are streamed.


def test_main_streams_a_big_log_in_bounded_memory(tmp_path, capsys, corpus_log):
    """A 48 MB log (noise, then a crash at the very end) is parsed with a small
    memory peak: the log is never held whole."""
    noise = "".join(
        f"[ {i % 9000 + 100:4d}.{i * 7919 % 1000000:06d}] audit: type=1400 audit({i}.123:{i}): "
        f"apparmor=\"ALLOWED\" operation=\"open\" profile=\"pinrig-{i % 13}\" "
        f"name=\"/sys/kernel/mm/transparent_hugepage/enabled\" pid={i % 4096} comm=\"fio\"\n"
        for i in range(1000)).encode()
    big = tmp_path / "big.log"
    size = 48 << 20
    with big.open("wb") as fh:
        for _ in range(size // len(noise)):
            fh.write(noise)
        fh.write(corpus_log("bug-mpage-prepare-extent-to-map-6.1.log"))
    tracemalloc.start()
    try:
        rc = main(["--json", str(big)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rc == 0
    assert peak < 64 << 20, f"peak {peak / 2**20:.1f} MB"
    out = json.loads(capsys.readouterr().out)
    (rep,) = out[str(big)]
    assert rep["title"] == "kernel BUG in mpage_prepare_extent_to_map"
    assert rep["line"] > (size // len(noise)) * 1000


def test_parse_file_gives_the_reports_of_parse(tmp_path, corpus_logs):
    """Reading a file in chunks, whatever their size, changes no report."""
    parser = ReportParser(linux.TABLE)
    log = b"\r\n".join(corpus_logs[:8]) + b"\n" + b"\n".join(corpus_logs[8:])
    want = [r.to_dict() for r in parse_console(log)]
    assert len(want) > 20
    path = tmp_path / "all.log"
    path.write_bytes(log)
    for chunk_size in (1, 7, 4096, 1 << 20):
        with path.open("rb") as fh:
            assert [r.to_dict() for r in parser.parse_file(fh, chunk_size=chunk_size)] == want
    assert [r.to_dict() for r in parser.parse_file(str(path))] == want
    assert [r.to_dict() for r in parser.parse_file(path)] == want
