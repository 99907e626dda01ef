"""Progress: one line per step without a terminal; a line updated in place on one."""
from __future__ import annotations

import io
import time

from pinrig import proc


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_a_tty_each_step_is_one_line_and_live_updates_are_silent(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    proc.live_line("downloading 3 MiB")
    proc.progress("kernel x: fetching")
    assert err.getvalue() == "rig: kernel x: fetching\n"


def test_on_a_tty_live_lines_are_replaced_and_cleared_before_a_step_line(monkeypatch):
    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    proc.live_line("download a: 1 MiB")
    proc.live_line("download a: 2 MiB")
    proc.progress("done")
    assert err.getvalue() == ("\r\033[Krig: download a: 1 MiB\r\033[Krig: download a: 2 MiB"
                              "\r\033[K" "rig: done\n")


def test_watch_size_reports_bytes_so_far_on_a_tty(monkeypatch, tmp_path):
    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    (tmp_path / "x.deb").write_bytes(b"\0" * (3 << 20))
    with proc.watch_size(tmp_path, 6 << 20, "download x"):
        time.sleep(1.3)
    assert "download x: 3 of 6 MiB (50%)" in err.getvalue()
