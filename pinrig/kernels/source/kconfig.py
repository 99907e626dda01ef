"""Kernel config fragments: parse, merge into a .config, and check what stuck after olddefconfig.

A fragment is what `scripts/kconfig/merge_config.sh` takes: `CONFIG_FOO=y|m|"str"|123` lines and
`# CONFIG_FOO is not set` lines; other comments and blank lines are ignored. Later fragments win.
After `make olddefconfig` every requested option is compared with the resulting .config; the
ones that did not stick (an unmet `depends on`, a typo, a symbol this version does not have) are
all listed and the build stops before compiling anything.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pinrig.errors import UserError

_SET_RE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET_RE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set\s*$")


@dataclass(frozen=True)
class Option:
    symbol: str               # CONFIG_FOO
    value: str                # "y", "m", "n", '"text"', "123", "0x10"
    origin: str               # "rdma.config:4"

    def line(self) -> str:
        return f"# {self.symbol} is not set" if self.value == "n" else f"{self.symbol}={self.value}"


@dataclass(frozen=True)
class Fragment:
    name: str
    text: str
    options: tuple


@dataclass(frozen=True)
class Mismatch:
    option: Option
    actual: str               # value in .config ("n" when not set, "absent" when not there)


def parse_fragment(text: str, name: str) -> Fragment:
    opts = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = _SET_RE.match(line)
        if m:
            opts.append(Option(m.group(1), m.group(2).strip(), f"{name}:{lineno}"))
            continue
        m = _UNSET_RE.match(line)
        if m:
            opts.append(Option(m.group(1), "n", f"{name}:{lineno}"))
            continue
        if line.startswith("#"):
            continue
        raise UserError(f"{name}:{lineno}: not a config line: {raw.strip()!r} "
                        "(expected CONFIG_FOO=y or '# CONFIG_FOO is not set')")
    return Fragment(name, text, tuple(opts))


def load_fragments(paths) -> tuple:
    out = []
    for p in paths:
        p = Path(p)
        try:
            text = p.read_text()
        except OSError as e:
            raise UserError(f"{p}: cannot read config fragment: {e.strerror}")
        out.append(parse_fragment(text, p.name))
    return tuple(out)


def requested(fragments) -> dict:
    """symbol → Option, later fragments overriding earlier ones."""
    out: dict = {}
    for frag in fragments:
        for opt in frag.options:
            out[opt.symbol] = opt
    return out


def config_digest(base_targets, fragments) -> str:
    h = hashlib.sha256(b"kconfig-1\0")
    for t in base_targets:
        h.update(f"base:{t}\0".encode())
    for frag in fragments:
        h.update(f"fragment:{frag.name}\0".encode())
        h.update(frag.text.encode())
        h.update(b"\0")
    return h.hexdigest()


def parse_config(text: str) -> dict:
    """.config text → {symbol: value}; '# CONFIG_X is not set' → 'n'."""
    out = {}
    for line in text.splitlines():
        m = _SET_RE.match(line)
        if m:
            out[m.group(1)] = m.group(2)
            continue
        m = _UNSET_RE.match(line)
        if m:
            out[m.group(1)] = "n"
    return out


def merge_into(config_text: str, fragments) -> str:
    """The .config text with every requested option set (replaced in place, else appended)."""
    want = requested(fragments)
    lines = config_text.splitlines()
    seen = set()
    out = []
    for line in lines:
        m = _SET_RE.match(line) or _UNSET_RE.match(line)
        if m and m.group(1) in want:
            sym = m.group(1)
            if sym not in seen:
                out.append(want[sym].line())
                seen.add(sym)
            continue
        out.append(line)
    for sym, opt in want.items():
        if sym not in seen:
            out.append(opt.line())
    return "\n".join(out) + "\n"


def check(config_text: str, fragments) -> list:
    """Requested options whose value in the final .config differs → [Mismatch]."""
    have = parse_config(config_text)
    bad = []
    for sym, opt in requested(fragments).items():
        actual = have.get(sym)
        if opt.value == "n":
            if actual not in (None, "n"):
                bad.append(Mismatch(opt, actual))
        elif actual != opt.value:
            bad.append(Mismatch(opt, "absent" if actual is None else actual))
    return bad


def describe(bad: list, what: str) -> str:
    items = "; ".join(
        f"{m.option.line()} ({m.option.origin}) → "
        + ("not in .config (unknown symbol or unmet dependency)" if m.actual == "absent"
           else "not set" if m.actual == "n" else f"{m.option.symbol}={m.actual}")
        for m in bad)
    return (f"{what}: {len(bad)} requested config option(s) did not stick after olddefconfig: "
            f"{items}")
