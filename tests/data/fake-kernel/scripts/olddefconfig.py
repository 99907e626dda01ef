"""Fake olddefconfig: last assignment wins, undeclared symbols vanish, and a symbol whose
`depends on` is not y is forced off -- like kconfig, in twenty lines."""
import re
import sys

kconfig, cfg = sys.argv[1], sys.argv[2]
deps, cur = {}, None
for line in open(kconfig):
    m = re.match(r"config (\w+)", line)
    if m:
        cur = m.group(1)
        deps[cur] = None
    m = re.match(r"\s+depends on (\w+)", line)
    if m and cur:
        deps[cur] = m.group(1)
vals = {}
for line in open(cfg):
    m = re.match(r"CONFIG_(\w+)=(.*)", line) or re.match(r"# CONFIG_(\w+) is not set", line)
    if m:
        vals[m.group(1)] = m.group(2) if m.lastindex == 2 else "n"
out = ["#\n# fake kernel configuration\n#\n"]
for sym in deps:
    v = vals.get(sym, "n")
    if v != "n" and deps[sym] and vals.get(deps[sym], "n") != "y":
        v = "n"
    vals[sym] = v
    out.append(f"# CONFIG_{sym} is not set\n" if v == "n" else f"CONFIG_{sym}={v}\n")
open(cfg, "w").write("".join(out))
