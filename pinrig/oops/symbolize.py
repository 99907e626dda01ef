"""file:line for the frames of a kernel report, from vmlinux and module objects with debug info.

What the kernel's scripts/faddr2line and decode_stacktrace.sh do, in one batch per object:
a frame `func+0x1f/0x80 [mod]` is looked up as func's address in that object (its symbol table,
read with `readelf -sW`; in a relocatable .ko the address is section-relative, so addr2line gets
`-j SECTION`) plus the offset, and `addr2line -f -i` gives the function and file:line, inlined
callers included. Call-trace frames are return addresses: they are looked up one byte earlier
(the call instruction), the RIP frame as is. KASLR does not matter: nothing uses raw addresses.

Nothing here trusts the report: frames are matched by a strict pattern, symbol names must be in
the object's table, and at most MAX_FRAMES per report are looked up.
"""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

MAX_FRAMES = 64
# a frame line after its console prefix: `RIP: 0010:f+0x1/0x2 [mod]` or ` ? f+0x1/0x2` or `f+…`
PREFIX_RE = re.compile(r"^\s*(?:<\d>)?(?:\[\s*\d+\.\d+\])?\s*(?:\[\s*[TC]\d+\])?\s*")
FRAME_RE = re.compile(
    r"(?P<rip>RIP: [0-9a-f]{4}:)?(?P<q>\? )?"
    r"(?P<func>[A-Za-z_][A-Za-z0-9_.$]*)\+(?P<off>0x[0-9a-f]+)/(?P<size>0x[0-9a-f]+)"
    r"(?: \[(?P<mod>[A-Za-z0-9_-]+)(?: [A-Z]+)?\])?\s*$")
KERNEL_TOP = ("arch", "block", "certs", "crypto", "drivers", "fs", "include", "init", "io_uring",
              "ipc", "kernel", "lib", "mm", "net", "rust", "samples", "security", "sound",
              "virt", "usr")

Run = Callable[[List[str]], str]


@dataclass(frozen=True)
class Frame:
    func: str
    offset: int
    module: Optional[str]          # None: vmlinux
    rip: bool                      # the faulting instruction (not a return address)

    @property
    def text(self) -> str:
        return f"{self.func}+{self.offset:#x}" + (f" [{self.module}]" if self.module else "")


@dataclass
class Location:
    function: str
    file: str                      # relative to the kernel tree where it can be told
    line: int
    inlined: bool = False          # an inlined callee of the next location

    def to_dict(self) -> dict:
        return {"function": self.function, "file": self.file, "line": self.line,
                "inlined": self.inlined}

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Symbolized:
    frame: Frame
    locations: List[Location] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"frame": self.frame.text, "locations": [x.to_dict() for x in self.locations]}


def frames_of(text: str) -> List[Frame]:
    """The frames of a report's text, in order; '?' (unreliable) frames left out."""
    out: List[Frame] = []
    for line in text.splitlines()[:2000]:
        m = FRAME_RE.match(PREFIX_RE.sub("", line[:400], count=1))
        if m is None or m.group("q"):
            continue
        out.append(Frame(m.group("func"), int(m.group("off"), 16), m.group("mod"),
                         rip=bool(m.group("rip"))))
        if len(out) >= MAX_FRAMES:
            break
    return out


def short_path(path: str) -> str:
    """A source path as a kernel developer reads it: from the tree's top directory on."""
    parts = Path(path).parts
    for i, p in enumerate(parts[:-1]):
        if p in KERNEL_TOP and i > 0:
            return "/".join(parts[i:])
    return "/".join(parts[-2:]) if len(parts) >= 2 else path


def _run(argv: List[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, errors="replace",
                          timeout=300, check=True).stdout


class Symbolizer:
    """Looks frames up in vmlinux and in the modules found under module_dirs."""

    def __init__(self, vmlinux: Optional[Path], module_dirs: Sequence[Path] = (),
                 run: Run = _run) -> None:
        self.vmlinux = vmlinux
        self.module_dirs = [Path(d) for d in module_dirs if d]
        self.run = run
        self._modules: Optional[Dict[str, Path]] = None
        self._symtabs: Dict[Path, Dict[str, Tuple[Optional[str], int]]] = {}

    @property
    def usable(self) -> bool:
        return self.vmlinux is not None or bool(self.module_dirs)

    def describe(self) -> str:
        what = ([f"vmlinux {self.vmlinux}"] if self.vmlinux else []) + \
            [f"modules under {d}" for d in self.module_dirs]
        return ", ".join(what) or "nothing"

    # ------------------------------------------------------------ objects and symbols

    def object_for(self, module: Optional[str]) -> Optional[Path]:
        if module is None:
            return self.vmlinux
        if self._modules is None:
            self._modules = {}
            for d in self.module_dirs:
                for root, _dirs, files in os.walk(d):
                    for f in files:
                        if f.endswith((".ko", ".ko.debug")):
                            name = f.split(".ko")[0].replace("-", "_")
                            self._modules.setdefault(name, Path(root) / f)
        return self._modules.get(module.replace("-", "_"))

    def symtab(self, obj: Path) -> Dict[str, Tuple[Optional[str], int]]:
        """name → (section for -j in a relocatable object, else None; address)."""
        if obj in self._symtabs:
            return self._symtabs[obj]
        relocatable = obj.name.endswith((".ko", ".ko.debug", ".o"))
        sections: Dict[str, str] = {}
        if relocatable:
            for line in self.run(["readelf", "-SW", str(obj)]).splitlines():
                m = re.match(r"\s*\[\s*(\d+)\]\s+(\S+)", line)
                if m:
                    sections[m.group(1)] = m.group(2)
        table: Dict[str, Tuple[Optional[str], int]] = {}
        for line in self.run(["readelf", "-sW", str(obj)]).splitlines():
            cols = line.split()
            if len(cols) < 8 or cols[3] != "FUNC" or not cols[6].isdigit():
                continue
            try:
                addr = int(cols[1], 16)
            except ValueError:
                continue
            table.setdefault(cols[7], (sections.get(cols[6]) if relocatable else None, addr))
        self._symtabs[obj] = table
        return table

    # ------------------------------------------------------------ lookup

    def symbolize(self, frames: Sequence[Frame]) -> List[Symbolized]:
        out = [Symbolized(f) for f in frames]
        batches: Dict[Tuple[Path, Optional[str]], List[Tuple[int, int]]] = {}
        for i, f in enumerate(frames):
            obj = self.object_for(f.module)
            if obj is None:
                continue
            sym = self.symtab(obj).get(f.func)
            if sym is None:
                continue
            section, base = sym
            addr = base + f.offset - (0 if f.rip or f.offset == 0 else 1)
            batches.setdefault((obj, section), []).append((i, addr))
        for (obj, section), items in batches.items():
            argv = ["addr2line", "-f", "-i", "-a", "-e", str(obj)] + \
                (["-j", section] if section else []) + [hex(a) for _i, a in items]
            try:
                text = self.run(argv)
            except (subprocess.SubprocessError, OSError):
                continue
            for (i, _a), locs in zip(items, _parse_addr2line(text)):
                out[i].locations = locs
        return out


def _parse_addr2line(text: str) -> List[List[Location]]:
    """`addr2line -a -f -i` output → per address, its locations (innermost first)."""
    groups: List[List[Location]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("0x"):
            groups.append([])
            i += 1
            continue
        if not groups or i + 1 >= len(lines):
            i += 1
            continue
        func, where = lines[i], lines[i + 1]
        i += 2
        path, _, rest = where.rpartition(":")
        num = re.match(r"\d+", rest)
        if func == "??" or not path or path == "??" or not num or num.group() == "0":
            continue
        groups[-1].append(Location(func, short_path(path), int(num.group())))
    for g in groups:
        for loc in g[:-1]:
            loc.inlined = True
    return groups


def symbolize_reports(reports: list, symbolizer: Optional[Symbolizer]) -> None:
    """Give each CrashReport its `locations` (one entry per frame) and its `where`: the
    guilty frame's (else the first located frame's) innermost file:line."""
    if symbolizer is None or not symbolizer.usable:
        return
    for rep in reports:
        res = symbolizer.symbolize(frames_of(rep.text))
        rep.locations = [r.to_dict() for r in res]
        located = [r for r in res if r.locations]
        pick = next((r for r in located if r.frame.func.split(".")[0] == rep.frame), None) \
            or (located[0] if located else None)
        rep.where = pick.locations[0].where if pick else ""     # innermost: inlined callee

