"""pinrig.kernels.source.builder: source kernels end to end on a tiny fake kernel tree (tests/data/fake-kernel):
patch failures before any build, config checks, cache keys and hits, series switching."""
import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from pinrig import config
from pinrig.errors import InfraError, UserError
from pinrig.kernels import fetch as kernel
from pinrig.kernels.source import apply, builder, kconfig, sources
from pinrig.kernels.source import series as S

REPO = Path(__file__).resolve().parents[4]
FAKE = REPO / "tests" / "data" / "fake-kernel"

GUP_FIX = """\
--- a/mm/gup.c
+++ b/mm/gup.c
@@ -5,6 +5,9 @@ static int check_vma_flags(unsigned long vm_flags, unsigned long gup_flags)
 	if (vm_flags & 2)
 		return -14;
 
+	if (write && (gup_flags & 0x100) && (vm_flags & 8))
+		return -14;
+
 	if (write) {
 		if (!(vm_flags & 4))
 			return -14;
"""

MM_H = """\
--- a/include/linux/mm.h
+++ b/include/linux/mm.h
@@ -1,3 +1,4 @@
 /* fake include/linux/mm.h */
 #define FOLL_WRITE	0x01
 #define FOLL_LONGTERM	0x100
+#define VM_SHARED	0x08
"""

NEW_FILE = """\
--- /dev/null
+++ b/mm/new.c
@@ -0,0 +1 @@
+/* added by a patch */
"""

STALE = """\
--- a/mm/gup.c
+++ b/mm/gup.c
@@ -1,4 +1,4 @@
 /* fake mm/gup.c */
-static int check_vma_flags(unsigned long flags)
+static int check_vma_flags(unsigned long flags, int x)
 {
 	int write = gup_flags & 1;
@@ -16,3 +16,3 @@ int pin_user_pages(unsigned long start, unsigned long gup_flags)
 {
-	return check_vma_flags(start, gup_flags);
+	return check_vma_flags(start, gup_flags, 0);
 }
"""


@pytest.fixture
def tree(tmp_path):
    """A private copy of the fake kernel tree (a `dir:` source)."""
    t = tmp_path / "linux"
    shutil.copytree(FAKE, t)
    return t


@pytest.fixture(autouse=True)
def light_tools(monkeypatch):
    # the fake tree needs make/patch/python3, not flex/bison/libelf
    monkeypatch.setattr(builder, "REQUIRED_TOOLS", ("make", "patch", "cp", "nice"))
    monkeypatch.setattr(builder, "REQUIRED_HEADERS", ())
    monkeypatch.setenv("PINRIG_BUILD_JOBS", "2")
    builder._TOOLCHAIN.clear()


def quilt(d: Path, patches: dict) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in patches.items():
        (d / name).write_text(text)
    (d / "series").write_text("".join(f"{n}\n" for n in patches))
    return d


def frag(d: Path, name: str, text: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(textwrap.dedent(text))
    return p


def spec_file(tmp_path, tree, series=None, fragments=(), name="fake", base=None) -> Path:
    lines = [f"name: {name}", "kind: source", f"source: dir:{tree}"]
    if series:
        lines.append(f"series: {series}")
    if fragments:
        lines.append("config: [" + ", ".join(str(f) for f in fragments) + "]")
    if base:
        lines.append("base: [" + ", ".join(base) + "]")
    p = tmp_path / f"{name}.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def makes(monkeypatch):
    """Record every make invocation while still running it."""
    calls = []
    real = builder.stream

    def rec(argv, log, env=None, progress=False):
        calls.append([str(a) for a in argv])
        return real(argv, log, env=env, progress=progress)
    monkeypatch.setattr(builder, "STREAM", rec)
    return calls


# ------------------------------------------------------------------------------ spec loading

def test_source_spec_loads_and_resolves_names(tmp_path, tree):
    d = quilt(tmp_path / "p", {"fix.patch": GUP_FIX})
    f = frag(tmp_path / "frags", "rdma.config", "CONFIG_RDMA_RXE=y\n")
    spec = config.load_kernel_spec(str(spec_file(tmp_path, tree, d, [f], base=["defconfig"])))
    assert (spec.kind, spec.source, spec.series, spec.config, spec.config_base, spec.suite) == (
        "source", f"dir:{tree}", str(d), (str(f),), ("defconfig",), "")
    json.dumps({k: v for k, v in spec.__dict__.items() if k != "path"})   # manifest-safe


def test_repo_source_specs_load():
    for name in ("src-6.1", "src-6.12", "src-6.1-longterm-deny", "src-6.1-pinned-warn"):
        spec = config.load_kernel_spec(name)
        assert spec.kind == "source" and spec.source.startswith("debian:linux-source-")
        assert spec.config_base == ("defconfig", "kvm_guest.config")
        assert all(Path(c).is_file() for c in spec.config)
    assert config.load_kernel_spec("src-6.1-longterm-deny").series == \
        str(REPO / "kernels" / "patches" / "longterm-file-deny")


@pytest.mark.parametrize("body,msg", [
    ("source: svn:/x\n", "source: must be debian:PACKAGE, git:PATH or dir:PATH"),
    ("source: debian:linux-image-amd64\nsuite: bookworm\n", "must be linux-source-X"),
    ("source: debian:linux-source-6.1\n", "suite: is required"),
    ("source: dir:/nonexistent-tree\n", "source: /nonexistent-tree is not a directory"),
    ("source: debian:linux-source-6.1\nsuite: bookworm\nseries: no-such-series\n",
     "series: unknown series 'no-such-series'"),
    ("source: debian:linux-source-6.1\nsuite: bookworm\nconfig: [nope]\n",
     "config[0]: unknown fragment 'nope'"),
    ("source: debian:linux-source-6.1\nsuite: bookworm\nseries: git:a..b\n",
     "series: a git range series needs a git: source"),
    ("source: debian:linux-source-6.1\nsuite: bookworm\nref: v6.1\n",
     "ref: only a git: source has a ref"),
    ("source: debian:linux-source-6.1\nsuite: bookworm\nbase: []\n", "base: empty"),
])
def test_source_spec_errors_name_file_and_field(tmp_path, body, msg):
    p = tmp_path / "k.yaml"
    p.write_text("kind: source\n" + body)
    with pytest.raises(UserError) as e:
        config.load_kernel_spec(str(p))
    assert str(e.value).startswith(f"{p}: ") and msg in str(e.value)


# ------------------------------------------------------------------------------ cache keys

def test_cache_key_covers_source_series_config_and_toolchain():
    k = builder.cache_key("debian:linux-source-6.1=6.1.1-1", "s" * 64, "c" * 64, "gcc 12")
    assert k == builder.cache_key("debian:linux-source-6.1=6.1.1-1", "s" * 64, "c" * 64, "gcc 12")
    others = [builder.cache_key("debian:linux-source-6.1=6.1.2-1", "s" * 64, "c" * 64, "gcc 12"),
              builder.cache_key("debian:linux-source-6.1=6.1.1-1", "t" * 64, "c" * 64, "gcc 12"),
              builder.cache_key("debian:linux-source-6.1=6.1.1-1", "s" * 64, "d" * 64, "gcc 12"),
              builder.cache_key("debian:linux-source-6.1=6.1.1-1", "s" * 64, "c" * 64, "gcc 13")]
    assert len({k, *others}) == 5


def test_plan_key_changes_with_patch_text_fragment_text_and_tree(tmp_path, tree):
    d = quilt(tmp_path / "p", {"fix.patch": GUP_FIX})
    f = frag(tmp_path / "frags", "x.config", "CONFIG_NET=y\n")
    spec = config.load_kernel_spec(str(spec_file(tmp_path, tree, d, [f])))
    k0 = builder.plan(spec).key
    assert builder.plan(spec).key == k0
    (d / "fix.patch").write_text(GUP_FIX.replace("0x100", "0x200"))
    k1 = builder.plan(spec).key
    f.write_text("CONFIG_NET=y\nCONFIG_PCI=y\n")
    k2 = builder.plan(spec).key
    (tree / "init" / "main.c").write_text("/* edited */\n")
    k3 = builder.plan(spec).key
    assert len({k0, k1, k2, k3}) == 4


def test_toolchain_id_reads_gcc_and_ld(fake_runner):
    fake_runner.handler = lambda argv, kw: (0, {"gcc": "gcc (Debian 12.2.0-14) 12.2.0\nCopyright",
                                                "ld": "GNU ld (GNU Binutils for Debian) 2.40\n"}
                                            [argv[0]], "")
    builder._TOOLCHAIN.clear()
    assert builder.toolchain_id() == "gcc (Debian 12.2.0-14) 12.2.0 | GNU ld (GNU Binutils for Debian) 2.40"


# ------------------------------------------------------------------------------ builds

def test_build_from_dir_with_series_and_fragments(tmp_path, tree, monkeypatch):
    calls = makes(monkeypatch)
    d = quilt(tmp_path / "p", {"0001-mm.patch": MM_H, "0002-gup.patch": GUP_FIX,
                               "0003-new.patch": NEW_FILE})
    f = frag(tmp_path / "frags", "rig.config", 'CONFIG_LOCALVERSION="-pinrig"\nCONFIG_INFINIBAND=y\n'
                                                "CONFIG_RDMA_RXE=y\n")
    spec = config.load_kernel_spec(str(spec_file(tmp_path, tree, d, [f])))
    art = kernel.fetch(spec)
    assert art.name == "fake" and art.release == "6.1.99-pinrig"
    image = art.vmlinuz.read_text()
    assert "(vm_flags & 8)" in image                    # the series is in the build
    assert "CONFIG_RDMA_RXE=y" in art.config.read_text()
    assert (art.moddir / "kernel/drivers/fake.ko").is_file()
    assert not (art.moddir / "build").is_symlink()      # no link back into the cache's tree
    meta = json.loads((art.dir / "artifact.json").read_text())
    assert meta["inputs"]["patches"] == ["0001-mm.patch", "0002-gup.patch", "0003-new.patch"]
    assert meta["inputs"]["fragments"] == ["rig.config"]
    assert art.packages[0].startswith("source=dir:") and art.packages[1].startswith("series=p@")
    assert (art.dir / "build.log").read_text().count("$ ") == len(calls)
    plan = builder.plan(spec)
    out = sources.resolve(spec).out_for(kconfig.config_digest(plan.config_base, plan.fragments))
    assert out.name.startswith("out-") and out.is_dir()
    targets = [c[c.index(f"O={out}") + 1:] for c in calls]
    assert targets[0] == ["defconfig", "kvm_guest.config"]
    assert targets[1] == ["olddefconfig"]
    assert targets[2] == ["-j2", *builder.cc_vars(), "bzImage", "modules"]
    assert all(c[:3] == ["nice", "-n", "19"] for c in calls)
    # the user's directory was never written
    assert (tree / "mm" / "gup.c").read_text() == (FAKE / "mm" / "gup.c").read_text()
    assert not (tree / "mm" / "new.c").exists()


def test_second_build_is_a_cache_hit_without_make(tmp_path, tree, monkeypatch):
    spec = config.load_kernel_spec(str(spec_file(tmp_path, tree)))
    a1 = kernel.fetch(spec)
    monkeypatch.setattr(builder, "STREAM", lambda *a, **k: pytest.fail("cache miss: make ran"))
    monkeypatch.setattr(sources, "materialize", lambda *a, **k: pytest.fail("tree touched"))
    a2 = kernel.fetch(spec)
    assert (a1.dir, a1.hash, a1.release) == (a2.dir, a2.hash, a2.release)


def test_patch_that_does_not_apply_fails_before_any_build(tmp_path, tree, monkeypatch):
    calls = makes(monkeypatch)
    d = quilt(tmp_path / "bad", {"0001-mm.patch": MM_H, "0002-stale.patch": STALE,
                                 "0003-gup.patch": GUP_FIX})
    spec = config.load_kernel_spec(str(spec_file(tmp_path, tree, d)))
    with pytest.raises(apply.PatchDoesNotApply) as e:
        kernel.fetch(spec)
    msg = str(e.value)
    assert msg.startswith("patch 2/3 0002-stale.patch does not apply to ")
    assert msg.endswith("mm/gup.c: hunk #1 of 2 FAILED at line 1 (@@ -1,4 +1,4 @@); "
                        "nearest match at line 1 (3 of 4 old lines match; hunk line 2 "
                        "'static int check_vma_flags(unsigned long flags)' is 'static int "
                        "check_vma_flags(unsigned long vm_flags, unsigned…' there); "
                        "nothing was built")
    f = e.value.failure
    assert (f.index, f.file, f.hunk, f.hunks) == (2, "mm/gup.c", 1, 2)
    assert calls == []                                   # no make at all
    ref = sources.resolve(spec)
    # patch 1 was applied, then everything was put back
    assert (ref.work / "include/linux/mm.h").read_text() == (tree / "include/linux/mm.h").read_text()
    assert sources.read_state(ref)["touched"] == []
    assert not list(ref.work.rglob("*.rej")) and not list(ref.work.rglob("*.orig"))


def test_second_hunk_failure_names_its_header(tmp_path, tree):
    text = STALE.replace("-static int check_vma_flags(unsigned long flags)\n"
                         "+static int check_vma_flags(unsigned long flags, int x)\n",
                         "-static int check_vma_flags(unsigned long vm_flags, unsigned long gup_flags)\n"
                         "+static int check_vma_flags(unsigned long vm_flags, unsigned long gup_flags, int x)\n")
    text = text.replace("-\treturn check_vma_flags(start, gup_flags);", "-\treturn nothing_like_this();")
    d = quilt(tmp_path / "bad", {"only.patch": text})
    spec = config.load_kernel_spec(str(spec_file(tmp_path, tree, d)))
    with pytest.raises(apply.PatchDoesNotApply) as e:
        kernel.fetch(spec)
    assert "patch 1/1 only.patch" in str(e.value)
    assert ("mm/gup.c: hunk #2 of 2 FAILED at line 16 "
            "(@@ -16,3 +16,3 @@ int pin_user_pages(unsigned long start, unsigned long gup_flags))"
            in str(e.value))


def test_missing_file_and_already_applied(tmp_path, tree):
    missing = "--- a/mm/nothere.c\n+++ b/mm/nothere.c\n@@ -1 +1 @@\n-a\n+b\n"
    d = quilt(tmp_path / "m", {"missing.patch": missing})
    spec = config.load_kernel_spec(str(spec_file(tmp_path, tree, d, name="m")))
    with pytest.raises(apply.PatchDoesNotApply, match=r"mm/nothere.c: file to patch not found"):
        kernel.fetch(spec)
    d2 = quilt(tmp_path / "twice", {"a.patch": MM_H, "b.patch": MM_H})
    spec2 = config.load_kernel_spec(str(spec_file(tmp_path, tree, d2, name="t")))
    with pytest.raises(apply.PatchDoesNotApply,
                       match=r"patch 2/2 b.patch .*include/linux/mm.h: already applied"):
        kernel.fetch(spec2)


def test_option_that_does_not_stick_fails_the_build_and_lists_all(tmp_path, tree, monkeypatch):
    calls = makes(monkeypatch)
    f = frag(tmp_path / "frags", "debug.config",
             "CONFIG_DEBUG_VM=y\nCONFIG_GUP_TEST=y\nCONFIG_KASAN=y\nCONFIG_NO_SUCH_THING=y\n")
    spec = config.load_kernel_spec(str(spec_file(tmp_path, tree, fragments=[f])))
    with pytest.raises(UserError) as e:
        kernel.fetch(spec)
    msg = str(e.value)
    assert msg.startswith("kernel fake: 3 requested config option(s) did not stick")
    assert "CONFIG_GUP_TEST=y (debug.config:2) → not set" in msg
    assert "CONFIG_KASAN=y (debug.config:3) → not set" in msg
    assert "CONFIG_NO_SUCH_THING=y (debug.config:4) → not in .config" in msg
    assert "CONFIG_GUP_TEST: depends on DEBUG_FS" in msg
    assert "CONFIG_KASAN: depends on HAVE_ARCH_KASAN" in msg
    assert "CONFIG_NO_SUCH_THING: declared in no Kconfig file of this tree" in msg
    assert "CONFIG_DEBUG_VM" not in msg
    assert not any("bzImage" in c for c in calls)       # nothing compiled


def test_switching_series_restores_files_and_rebuilds(tmp_path, tree):
    with_fix = quilt(tmp_path / "fix", {"a.patch": MM_H, "b.patch": GUP_FIX, "c.patch": NEW_FILE})
    a = kernel.fetch(config.load_kernel_spec(str(spec_file(tmp_path, tree, with_fix, name="a"))))
    base = kernel.fetch(config.load_kernel_spec(str(spec_file(tmp_path, tree, name="base"))))
    assert "(vm_flags & 8)" in a.vmlinuz.read_text()
    assert "(vm_flags & 8)" not in base.vmlinuz.read_text()
    assert a.dir != base.dir
    ref = sources.resolve(config.load_kernel_spec(str(tmp_path / "base.yaml")))
    assert not (ref.work / "mm/new.c").exists()          # created by c.patch, removed again
    assert (ref.work / "mm/gup.c").read_text() == (tree / "mm/gup.c").read_text()


def test_series_prefix_builds_cumulatively(tmp_path, tree):
    d = quilt(tmp_path / "s", {"a.patch": MM_H, "b.patch": GUP_FIX})
    spec = config.load_kernel_spec(str(spec_file(tmp_path, tree, d)))
    full = S.load_series(spec.series)
    one = builder.build(spec, series=full.prefix(1))
    two = builder.build(spec, series=full.prefix(2))
    assert "(vm_flags & 8)" not in one.vmlinuz.read_text()
    assert "(vm_flags & 8)" in two.vmlinuz.read_text()
    assert kernel.fetch(spec).dir == two.dir             # the full series is the same content


def test_compile_error_keeps_the_log_and_says_where(tmp_path, tree):
    broken = "--- a/mm/gup.c\n+++ b/mm/gup.c\n@@ -1 +1,2 @@\n+#error broken\n /* fake mm/gup.c */\n"
    d = quilt(tmp_path / "b", {"broken.patch": broken})
    spec = config.load_kernel_spec(str(spec_file(tmp_path, tree, d)))
    with pytest.raises(InfraError) as e:
        kernel.fetch(spec)
    assert "kernel build failed (exit 2); full log: " in str(e.value)
    assert "mm/gup.c:1:2: error: broken by a patch" in str(e.value)
    log = Path(str(e.value).split("full log: ")[1].split(" | ")[0])
    assert "error: broken by a patch" in log.read_text()


def test_git_source_with_git_range_series(tmp_path, tree):
    def git(*args):
        subprocess.run(["git", "-C", str(tree), "-c", "user.name=T", "-c", "user.email=t@t", *args],
                       check=True, capture_output=True)
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "v6.1.99")
    git("tag", "v6.1.99")
    (tree / "include/linux/mm.h").write_text((tree / "include/linux/mm.h").read_text()
                                             + "#define VM_SHARED\t0x08\n")
    git("commit", "-qam", "mm: add VM_SHARED")
    p = tmp_path / "g.yaml"
    p.write_text(f"kind: source\nsource: git:{tree}\nseries: git:v6.1.99..HEAD\n")
    spec = config.load_kernel_spec(str(p))
    assert spec.ref == "v6.1.99"
    art = kernel.fetch(spec)
    ref = sources.resolve(spec)
    assert "VM_SHARED" in (ref.work / "include/linux/mm.h").read_text()
    assert "VM_SHARED" not in (ref.pristine / "include/linux/mm.h").read_text()
    assert art.packages[0].startswith("source=git:")


def test_debian_source_unpacks_the_tarball_in_the_package(tmp_path, tree, isolated_cache):
    """A linux-source-X .deb (built here from the fake tree) is unpacked once, reused after."""
    pkgroot = tmp_path / "pkg"
    (pkgroot / "DEBIAN").mkdir(parents=True)
    (pkgroot / "DEBIAN/control").write_text(
        "Package: linux-source-6.1\nVersion: 6.1.99-1\nArchitecture: all\n"
        "Maintainer: t <t@t>\nDescription: fake\n")
    (pkgroot / "usr/src").mkdir(parents=True)
    subprocess.run(["tar", "-cJf", str(pkgroot / "usr/src/linux-source-6.1.tar.xz"), "-C",
                    str(tmp_path), "--transform", "s,^linux,linux-source-6.1,", "linux"], check=True)
    debs = isolated_cache / "sources" / "debs"
    debs.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-b", "-Zgzip", str(pkgroot),
                    str(debs / "linux-source-6.1_6.1.99-1_all.deb")], check=True, capture_output=True)
    p = tmp_path / "d.yaml"
    p.write_text("kind: source\nsource: debian:linux-source-6.1\nsuite: bookworm\n"
                 "version: 6.1.99-1\n")
    spec = config.load_kernel_spec(str(p))
    art = kernel.fetch(spec)
    assert art.packages[0] == "linux-source-6.1=6.1.99-1"
    ref = sources.resolve(spec)
    assert (ref.pristine / "mm/gup.c").is_file() and (ref.slot / "pristine.done").exists()
    assert art.release == "6.1.99"


def test_source_slots_have_make_safe_names(tmp_path, isolated_cache):
    """A '=' in the build directory's path makes the kernel's tools/ build (objtool) relink on
    every make, which rebuilds every object: slot names must not carry one."""
    p = tmp_path / "d.yaml"
    p.write_text("kind: source\nsource: debian:linux-source-6.1\nsuite: bookworm\n"
                 "version: 1:6.1.99-1~bpo12+1\n")
    ref = sources.resolve(config.load_kernel_spec(str(p)))
    assert ref.slot.name == "linux-source-6.1_1_6.1.99-1_bpo12+1"
    for ch in "=:#% ":
        assert ch not in str(ref.out_for("ab" * 32).relative_to(isolated_cache))


@pytest.mark.skipif(not (shutil.which("busybox") and shutil.which("cpio")),
                    reason="needs busybox-static and cpio")
def test_initrd_for_a_kernel_with_everything_built_in(tmp_path):
    """A source kernel may have no modules at all: no modules.dep, empty module tree."""
    import gzip

    from pinrig.guest import image as guest
    from pinrig.kernels.artifact import KernelArtifact
    busybox = Path(shutil.which("busybox"))
    if b"/ld-linux" in busybox.read_bytes()[:8192]:
        pytest.skip("busybox is dynamically linked")
    modroot = tmp_path / "modroot"
    (modroot / "lib/modules/6.1.99-pinrig").mkdir(parents=True)
    art = KernelArtifact("k", "6.1.99-pinrig", tmp_path / "vmlinuz", modroot, None, (), "h",
                         tmp_path)
    dest = tmp_path / "initrd.cpio.gz"
    guest._make_initrd(art, dest)
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=gzip.decompress(dest.read_bytes()),
                             capture_output=True).stdout.decode()
    assert "init" in listing.split() and "chains" in listing.split()
    assert not [n for n in listing.split() if n.startswith(("mods/", "chains/"))]


def test_fuzz_is_in_the_key_and_every_offset_and_fuzz_is_in_the_artifact(tmp_path, tree):
    # GUP_FIX's target with a line added above: its hunks go in at an offset
    gup = tree / "mm" / "gup.c"
    lines = gup.read_text().splitlines(keepends=True)
    gup.write_text("/* upstream added this */\n" + "".join(lines))
    d = quilt(tmp_path / "s", {"0001-gup.patch": GUP_FIX})
    strict = config.load_kernel_spec(str(spec_file(tmp_path, tree, d)))
    fuzzy = config.override_spec(strict, fuzz=1)
    assert builder.plan(strict).key != builder.plan(fuzzy).key
    assert builder.plan(strict).key == builder.plan(config.override_spec(strict, fuzz=0)).key
    art = kernel.fetch(fuzzy)
    rec = json.loads((art.dir / "artifact.json").read_text())["inputs"]["series_apply"]
    assert rec["method"] == "patch --fuzz=1" and rec["fuzz"] == 1
    assert rec["hunks"] and rec["hunks"][0]["offset"] > 0
    assert rec["warnings"][0].startswith("patch 1 0001-gup.patch: mm/gup.c hunk #1 applied at "
                                         "line ")
    from pinrig.runs.runner import series_applied
    assert series_applied(art.dir) == rec


def test_git_base_applies_a_posted_series_with_git_am_3way(tmp_path, tree):
    """The series was posted against an older commit; upstream since changed a context line:
    GNU patch (strict) refuses, `git am -3` merges — and says so in the artifact."""
    def git(*args):
        return subprocess.run(["git", "-C", str(tree), "-c", "user.name=T", "-c", "user.email=t@t",
                               *args], check=True, capture_output=True, text=True).stdout.strip()
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "v6.1.99")
    git("tag", "v6.1.99")
    gup = tree / "mm/gup.c"
    gup.write_text(gup.read_text().replace("\tint write = gup_flags & 1;\n",
                                           "\tint write = gup_flags & 1;\n\tint longterm = 0;\n"))
    git("commit", "-qam", "mm/gup: a posted change")
    mbox = tmp_path / "posted.mbox"
    mbox.write_text(git("format-patch", "--stdout", "--cover-letter", "-v2", "-1"))
    git("reset", "-q", "--hard", "v6.1.99")
    gup.write_text(gup.read_text().replace("\tif (vm_flags & 2)\n", "\tif (vm_flags & 0x2)\n"))
    git("commit", "-qam", "upstream: spell the flag in hex")
    p = tmp_path / "g.yaml"
    p.write_text(f"kind: source\nsource: git:{tree}\nref: HEAD\nseries: {mbox}\n")
    spec = config.load_kernel_spec(str(p))
    series = S.load_series(spec.series)
    with pytest.raises(apply.PatchDoesNotApply, match="hunk #1 of 1 FAILED"):
        apply.trial(tree, series, tmp_path / "trial", "HEAD")
    art = kernel.fetch(spec)
    rec = json.loads((art.dir / "artifact.json").read_text())["inputs"]["series_apply"]
    assert rec["method"] == "git am -3" and rec["revision"] == 2
    assert rec["warnings"] == ["patch 1 0001-mm-gup-a-posted-change.patch: applied by 3-way "
                               "merge (mm/gup.c)"]
    work = sources.resolve(spec).work
    text = (work / "mm/gup.c").read_text()
    assert "int longterm = 0;" in text and "vm_flags & 0x2" in text
    assert not (work / ".git").exists()
    assert git("status", "--porcelain") == ""          # the user's repository is untouched


def test_choice_member_that_did_not_stick_names_the_member_to_unset(tmp_path):
    # seen for real: tinyconfig picks SLOB and -Os; a fragment with CONFIG_SLUB=y alone did not
    # stick and the hint said only "depends on …"
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm/Kconfig").write_text(
        'choice\n\tprompt "Choose SLAB allocator"\n\tdefault SLUB\n\n'
        "config SLAB\n\tbool \"SLAB\"\n\tdepends on !PREEMPT_RT\n\n"
        "config SLUB\n\tbool \"SLUB\"\n\tselect HAVE_HARDENED_USERCOPY_ALLOCATOR\n\n"
        "config SLOB\n\tbool \"SLOB\"\n\tdepends on EXPERT\n\nendchoice\n\n"
        "config GUP_TEST\n\tbool \"gup\"\n\tdepends on DEBUG_FS\n")
    current = {"CONFIG_SLOB": "y", "CONFIG_SLUB": "n", "CONFIG_SLAB": "n"}
    hints = builder.kconfig_hints(tmp_path, ["CONFIG_SLUB", "CONFIG_SLAB", "CONFIG_GUP_TEST"],
                                  current=current)
    assert hints["CONFIG_SLUB"] == ("a choice with CONFIG_SLOB=y from the base: add "
                                    "'# CONFIG_SLOB is not set' to the same fragment")
    assert hints["CONFIG_SLAB"].startswith("a choice with CONFIG_SLOB=y")
    assert hints["CONFIG_GUP_TEST"] == "depends on DEBUG_FS"
    # without the current .config (or with the member itself chosen): the plain hints
    assert builder.kconfig_hints(tmp_path, ["CONFIG_SLAB"])["CONFIG_SLAB"] == "depends on !PREEMPT_RT"


def test_an_option_inside_an_unset_if_block_names_the_menu_to_set(tmp_path):
    # seen for real: CONFIG_LKDTM=y did not stick on tinyconfig; the hint said "depends on
    # DEBUG_FS" (set) — the real reason is `if RUNTIME_TESTING_MENU` around it, unset by the base
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib/Kconfig.debug").write_text(
        "menuconfig RUNTIME_TESTING_MENU\n\tbool \"Runtime Testing\"\n\tdef_bool y\n\n"
        "if RUNTIME_TESTING_MENU\n\nconfig LKDTM\n\ttristate \"LKDTM\"\n\tdepends on DEBUG_FS\n\n"
        "endif # RUNTIME_TESTING_MENU\n\nconfig OTHER\n\tbool \"x\"\n\tdepends on FOO\n")
    current = {"CONFIG_RUNTIME_TESTING_MENU": "n", "CONFIG_DEBUG_FS": "y"}
    hints = builder.kconfig_hints(tmp_path, ["CONFIG_LKDTM", "CONFIG_OTHER"], current=current)
    assert hints["CONFIG_LKDTM"] == ("inside `if RUNTIME_TESTING_MENU`, which the base left "
                                     "unset: add CONFIG_RUNTIME_TESTING_MENU=y to the same fragment")
    assert hints["CONFIG_OTHER"] == "depends on FOO"
    current["CONFIG_RUNTIME_TESTING_MENU"] = "y"
    assert builder.kconfig_hints(tmp_path, ["CONFIG_LKDTM"], current=current)["CONFIG_LKDTM"] \
        == "depends on DEBUG_FS"
