"""file:line for report frames: a real relocatable object built here with debug info (as a
kernel module is), real readelf and addr2line; and the parser on what those tools print."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pinrig import oops
from pinrig.oops.symbolize import Frame, Symbolizer, frames_of, short_path, symbolize_reports

DATA = Path(__file__).resolve().parents[2] / "data" / "oops"
SRC = """\
static int depth;
static inline __attribute__((always_inline)) void deep(int *p)
{
        *p = depth;                     /* line 4: the faulting store, inlined */
}
__attribute__((noinline)) void mymod_fault(int *p)
{
        depth++;
        deep(p);                        /* line 9 */
}
__attribute__((noinline)) void mymod_caller(int *p)
{
        mymod_fault(p);                 /* line 13 */
        depth--;
}
"""


@pytest.fixture(scope="module")
def module(tmp_path_factory) -> Path:
    if not (shutil.which("gcc") and shutil.which("addr2line") and shutil.which("readelf")):
        pytest.fail("gcc and binutils are needed (scripts/setup.sh installs them)")
    d = tmp_path_factory.mktemp("mod") / "drivers" / "mymod"
    d.mkdir(parents=True)
    (d / "mymod.c").write_text(SRC)
    subprocess.run(["gcc", "-g", "-O2", "-fno-pic", "-c", "mymod.c", "-o", "mymod.ko"],
                   cwd=d, check=True)
    return d / "mymod.ko"


def offset_of_line(ko: Path, func: str, line: int) -> int:
    """An offset into func that addr2line maps to line (found by scanning the function)."""
    sym = Symbolizer(None, [ko.parent]).symtab(ko)[func]
    out = subprocess.run(["objdump", "-d", "-l", "--no-show-raw-insn", str(ko)],
                         capture_output=True, text=True, check=True).stdout
    current, in_func = None, False
    for ln in out.splitlines():
        if ln.endswith(f"<{func}>:"):
            in_func = True
            continue
        if in_func and ln.endswith(">:"):
            break
        if in_func and ":" in ln and ln.split(":")[-1].strip().isdigit() and "/" in ln:
            current = int(ln.split(":")[-1])
        elif in_func and current == line and ln.strip()[:1].isalnum():
            return int(ln.split(":")[0], 16) - sym[1]
    raise AssertionError(f"no instruction of {func} on line {line}")


def test_module_frames_get_file_line_and_inlined_callers(module):
    off = offset_of_line(module, "mymod_fault", 4)
    ret = offset_of_line(module, "mymod_caller", 14)      # the return address after the call
    text = (f"[    1.0] RIP: 0010:mymod_fault+{off:#x}/0x40 [mymod]\n"
            "[    1.0] Call Trace:\n[    1.0]  <TASK>\n"
            f"[    1.0]  mymod_caller+{ret:#x}/0x30 [mymod]\n"
            "[    1.0]  ? unrelated+0x5/0x10\n"
            "[    1.0]  vfs_write+0xc4/0x3f0\n")
    frames = frames_of(text)
    assert [f.text for f in frames] == [f"mymod_fault+{off:#x} [mymod]",
                                        f"mymod_caller+{ret:#x} [mymod]", "vfs_write+0xc4"]
    res = Symbolizer(None, [module.parent]).symbolize(frames)
    rip = res[0].locations
    assert [(x.function, x.file, x.line, x.inlined) for x in rip] == [
        ("deep", "drivers/mymod/mymod.c", 4, True),
        ("mymod_fault", "drivers/mymod/mymod.c", 9, False)]
    # a return address is looked up at the call: line 13, not the line after it
    assert [(x.function, x.line) for x in res[1].locations] == [("mymod_caller", 13)]
    assert res[2].locations == []                 # vmlinux frame, no vmlinux: left as it is


def test_reports_get_where_and_locations(module):
    log = (DATA / "warning-module-debian-6.1.log").read_text()
    reports = oops.parse_console(log)
    symbolize_reports(reports, Symbolizer(None, [module.parent]))
    assert reports[0].where == ""                 # pinrig_oops is not among these modules
    assert reports[0].to_dict()["locations"][0]["frame"] == "pinrig_warn+0x20 [pinrig_oops]"


def test_the_warning_line_is_not_a_frame():
    text = "[ 1.0] WARNING: CPU: 1 PID: 1 at x.c:58 pinrig_warn+0x20/0x30 [pinrig_oops]\n" \
           "[ 1.0] RIP: 0010:pinrig_warn+0x20/0x30 [pinrig_oops]\n"
    assert [f.text for f in frames_of(text)] == ["pinrig_warn+0x20 [pinrig_oops]"]


def test_addr2line_output_with_unknowns_is_parsed_defensively():
    out = "0x0000000000000010\n??\n??:0\n0x20\nf\n/b/linux/mm/gup.c:1234 (discriminator 2)\n" \
          "0x30\ng\n/b/linux/include/linux/mm.h:99\nh\n/b/linux/mm/gup.c:77\n"
    sym = Symbolizer(Path("/vmlinux"), run=lambda argv: (
        "  1: 0000000000001000   10 FUNC GLOBAL DEFAULT 1 a\n" if argv[:2] == ["readelf", "-sW"]
        else out))
    res = sym.symbolize([Frame("a", 0x10, None, True), Frame("a", 0x20, None, False),
                         Frame("a", 0x30, None, False), Frame("nosuch", 1, None, False)])
    assert res[0].locations == []
    assert [(x.file, x.line) for x in res[1].locations] == [("mm/gup.c", 1234)]
    assert [(x.function, x.where, x.inlined) for x in res[2].locations] == [
        ("g", "include/linux/mm.h:99", True), ("h", "mm/gup.c:77", False)]
    assert res[3].locations == []


@pytest.mark.parametrize("path, short", [
    ("/build/linux-6.1/mm/gup.c", "mm/gup.c"),
    ("/root/.cache/pinrig/headers/x/oopsmod-1/pinrig_oops.c", "oopsmod-1/pinrig_oops.c"),
    ("gup.c", "gup.c")])
def test_short_paths(path, short):
    assert short_path(path) == short


def test_rig_oops_symbolizes_with_modules_and_says_where(module, tmp_path, capsys):
    off = offset_of_line(module, "mymod_fault", 4)
    log = tmp_path / "console.log"
    log.write_text("[    1.000000] BUG: unable to handle page fault for address: 0000000000000000\n"
                   "[    1.000000] #PF: supervisor write access in kernel mode\n"
                   "[    1.000000] Oops: 0002 [#1] PREEMPT SMP NOPTI\n"
                   f"[    1.000000] RIP: 0010:mymod_fault+{off:#x}/0x40 [mymod]\n"
                   "[    1.000000] Call Trace:\n[    1.000000]  <TASK>\n"
                   "[    1.000000]  vfs_write+0xc4/0x3f0\n[    1.000000]  </TASK>\n")
    assert oops.main(["--modules", str(module.parent), str(log)]) == 0
    out = capsys.readouterr().out
    assert "at drivers/mymod/mymod.c:4" in out, out
    assert oops.main(["--vmlinux", str(tmp_path / "nope"), str(log)]) == 2


def test_reports_in_symbolizes_and_a_failing_symbolizer_keeps_the_reports():
    log = (DATA / "warning-module-debian-6.1.log").read_text()
    reports, note = oops.reports_in(log, None)
    assert reports and note == ""

    def broken(argv):
        raise OSError("addr2line: not found")
    reports, note = oops.reports_in(log, Symbolizer(Path("/vmlinux"), run=broken))
    assert reports and all(r.where == "" for r in reports)
    assert note == "symbolizing failed (addr2line: not found)"
