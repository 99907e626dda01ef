"""pinrig.kernels (apt, artifact, debian, fetch): control parsing, package resolution from suite metadata, kernel file layout."""
import json
import re
from pathlib import Path

import pytest

from pinrig import proc
from pinrig.config import KernelSpec
from pinrig.errors import InfraError, RigError, UserError
from pinrig.kernels import apt, artifact, debian
from pinrig.kernels import fetch as kernel
from pinrig.kernels.apt import PrivateApt, depends_names, parse_control
from pinrig.kernels.artifact import find_kernel_files
from pinrig.kernels.debian import resolve_packages
from tests.fakes import FakeApt

# ------------------------------------------------------------------------------- parse_control

APT_SHOW = """\
Package: linux-image-6.1.0-28-amd64
Source: linux-signed-amd64 (6.1.119+1)
Version: 6.1.119-1
Installed-Size: 408232
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Recommends: firmware-linux-free,
 apparmor
Description-en: Linux 6.1 for 64-bit PCs (signed)
 The Linux kernel 6.1 and modules for use on PCs with AMD64, Intel 64 or
 VIA Nano processors.
 .
 This kernel also runs on a Xen hypervisor.
Description-md5: 0f0d7e0d5a2b6b0d12f0f9b1d51d3d2a

Package: linux-image-6.1.0-27-amd64
Version: 6.1.115-1
"""


def test_parse_control_first_stanza_only():
    f = parse_control(APT_SHOW)
    assert f["Package"] == "linux-image-6.1.0-28-amd64"
    assert f["Version"] == "6.1.119-1"
    assert f["Source"] == "linux-signed-amd64 (6.1.119+1)"
    assert f["Depends"] == ("kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | "
                            "linux-initramfs-tool")


def test_parse_control_joins_continuation_lines():
    f = parse_control(APT_SHOW)
    assert f["Recommends"] == "firmware-linux-free, apparmor"
    assert f["Description-en"].startswith("Linux 6.1 for 64-bit PCs (signed) The Linux kernel 6.1")
    assert f["Description-en"].endswith("on a Xen hypervisor.")


def test_parse_control_value_with_colon_and_leading_blank_lines():
    f = parse_control("\n\nPackage: a\nHomepage: https://example.org:8080/x\n")
    assert f == {"Package": "a", "Homepage": "https://example.org:8080/x"}


def test_parse_control_empty():
    assert parse_control("") == {}
    assert parse_control("\n\n") == {}


# ------------------------------------------------------------------------------- depends_names

@pytest.mark.parametrize("depends,want", [
    ("a (= 1), b | c, d", ["a", "b", "d"]),
    ("linux-image-6.1.0-28-amd64 (= 6.1.119-1)", ["linux-image-6.1.0-28-amd64"]),
    ("kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool",
     ["kmod", "linux-base", "initramfs-tools"]),
    ("libc6:any (>= 2.36), python3:amd64", ["libc6", "python3"]),
    ("foo [amd64], bar [!i386] | baz", ["foo", "bar"]),
    ("  spaced  ,\tb ", ["spaced", "b"]),
    ("", []),
    ("a, , b", ["a", "b"]),
])
def test_depends_names(depends, want):
    assert depends_names(depends) == want


# ------------------------------------------------------------------------------- resolve_packages


BOOKWORM = {
    "linux-image-amd64": {"Version": "6.1.119-1",
                          "Depends": "linux-image-6.1.0-28-amd64 (= 6.1.119-1)"},
    "linux-image-6.1.0-28-amd64": {
        "Version": "6.1.119-1",
        "Depends": "kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | "
                   "linux-initramfs-tool"},
}

SID = {
    "linux-image-amd64": {"Version": "7.0.2-1",
                          "Depends": "linux-image-7.0.0-1-amd64 (= 7.0.2-1)"},
    "linux-image-7.0.0-1-amd64": {
        "Version": "7.0.2-1",
        "Depends": "linux-binary-7.0.0-1-amd64 (= 7.0.2-1), "
                   "linux-modules-7.0.0-1-amd64 (= 7.0.2-1)"},
    "linux-binary-7.0.0-1-amd64": {
        "Version": "7.0.2-1", "Pre-Depends": "linux-base (>= 4.12~)",
        "Depends": "kmod, linux-modules-7.0.0-1-amd64 (= 7.0.2-1)"},
    "linux-modules-7.0.0-1-amd64": {
        "Version": "7.0.2-1", "Depends": "linux-binary-7.0.0-1-amd64 (= 7.0.2-1)"},
}


def test_resolve_bookworm_meta_to_one_image():
    apt = FakeApt("bookworm", BOOKWORM)
    assert resolve_packages(apt, "linux-image-amd64") == [
        ("linux-image-6.1.0-28-amd64", "6.1.119-1")]
    # non-kernel dependencies (kmod, linux-base, initramfs-tools) are never looked up
    assert apt.shown == ["linux-image-amd64", "linux-image-6.1.0-28-amd64"]


def test_resolve_sid_meta_image_binary_modules():
    apt = FakeApt("sid", SID)
    got = resolve_packages(apt, "linux-image-amd64")
    assert got == [("linux-image-7.0.0-1-amd64", "7.0.2-1"),
                   ("linux-binary-7.0.0-1-amd64", "7.0.2-1"),
                   ("linux-modules-7.0.0-1-amd64", "7.0.2-1")]
    # binary and modules depend on each other: each is looked up once
    assert sorted(apt.shown) == sorted(SID)
    assert len(apt.shown) == len(set(apt.shown))


def test_resolve_pre_depends_are_followed():
    table = {"linux-image-amd64": {"Version": "1", "Pre-Depends": "linux-image-6.1.0-9-amd64"},
             "linux-image-6.1.0-9-amd64": {"Version": "6.1.27-1"}}
    assert resolve_packages(FakeApt("bookworm", table), "linux-image-amd64") == [
        ("linux-image-6.1.0-9-amd64", "6.1.27-1")]


def test_resolve_a_versioned_package_directly():
    apt = FakeApt("bookworm", BOOKWORM)
    assert resolve_packages(apt, "linux-image-6.1.0-28-amd64") == [
        ("linux-image-6.1.0-28-amd64", "6.1.119-1")]


def test_resolve_meta_without_kernel_dependency():
    apt = FakeApt("bookworm", {"linux-image-amd64": {"Version": "1", "Depends": "kmod"}})
    with pytest.raises(InfraError, match="linux-image-amd64 in bookworm depends on no "):
        resolve_packages(apt, "linux-image-amd64")


def test_resolve_unknown_package():
    with pytest.raises(UserError, match="package linux-image-foo not found in Debian suite sid"):
        resolve_packages(FakeApt("sid", SID), "linux-image-foo")


@pytest.mark.parametrize("name,match", [
    ("linux-image-6.1.0-28-amd64", True),
    ("linux-binary-7.0.0-1-amd64", True),
    ("linux-modules-7.0.0-1-amd64", True),
    ("linux-image-amd64", False),
    ("linux-headers-6.1.0-28-amd64", False),
    ("linux-base", False),
])
def test_kernel_package_regex(name, match):
    assert bool(debian.KERNEL_PKG_RE.match(name)) == match


# ------------------------------------------------------------------------------- PrivateApt via RUNNER

def test_private_apt_show_goes_through_runner_with_private_state(tmp_path, fake_runner,
                                                                 monkeypatch):
    monkeypatch.setattr(proc, "require", lambda tool: f"/usr/bin/{tool}")
    fake_runner.handler = lambda argv, kw: (0, APT_SHOW, "")
    apt = PrivateApt("bookworm", "http://deb.example/debian", root=tmp_path / "apt")
    fields = apt.show("linux-image-6.1.0-28-amd64")
    assert fields["Version"] == "6.1.119-1"
    (argv, _), = fake_runner.calls
    assert argv[0] == "apt-cache" and argv[-3:] == ["show", "--no-all-versions",
                                                    "linux-image-6.1.0-28-amd64"]
    assert f"Dir::State::Lists={tmp_path / 'apt'}/lists" in argv
    assert f"Dir::Etc::sourcelist={tmp_path / 'apt'}/etc/sources.list" in argv
    k = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    assert (tmp_path / "apt/etc/sources.list").read_text() == (
        f"{k}http://deb.example/debian bookworm main\n"
        f"{k}http://deb.example/debian bookworm-updates main\n"
        f"{k}http://deb.example/debian-security bookworm-security main\n")


def test_private_apt_show_missing_package(tmp_path, fake_runner, monkeypatch):
    monkeypatch.setattr(proc, "require", lambda tool: f"/usr/bin/{tool}")
    fake_runner.handler = lambda argv, kw: (100, "", "E: No packages found")
    apt = PrivateApt("trixie", "http://deb.example/debian", root=tmp_path / "apt")
    with pytest.raises(UserError, match="package nope not found in Debian suite trixie"):
        apt.show("nope")


def _apt_handler(table):
    """apt-get/apt-cache as a fake: `show [--no-all-versions] PKG[=VER]` answers from table
    ({pkg: {version: fields}}), update/download succeed without doing anything."""
    def handler(argv, kw):
        if argv[0] == "apt-cache" and "show" in argv:
            want = argv[-1]
            pkg, _, ver = want.partition("=")
            versions = table.get(pkg, {})
            if ver:
                versions = {v: f for v, f in versions.items() if v == ver}
            if not versions:
                return 100, "", f"E: No packages found for {want}"
            out = ""
            for v, f in versions.items():
                out += f"Package: {pkg}\nVersion: {v}\n" + "".join(
                    f"{k}: {x}\n" for k, x in f.items()) + "\n"
            return 0, out, ""
        return 0, "", ""
    return handler


def test_fetch_honours_pinned_version(fake_runner, monkeypatch):
    monkeypatch.setattr(proc, "require", lambda tool: f"/usr/bin/{tool}")
    fake_runner.handler = _apt_handler({
        "linux-image-amd64": {"6.1.999-1": {"Depends": "linux-image-6.1.0-99-amd64 (= 6.1.999-1)"}},
        "linux-image-6.1.0-99-amd64": {"6.1.999-1": {"Depends": "kmod"}},
    })
    spec = KernelSpec(name="pinned", kind="debian", suite="bookworm", version="6.1.0-1")
    with pytest.raises(RigError):
        kernel.fetch(spec)
    downloads = [a for a in fake_runner.argvs() if "download" in a]
    assert not any("6.1.999-1" in " ".join(a) for a in downloads), downloads
    assert not any("6.1.0-99" in " ".join(a) for a in downloads), downloads


# ------------------------------------------------------------------------------- find_kernel_files

def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


R = "6.1.0-28-amd64"


def test_find_files_bookworm_layout(tmp_path):
    vmlinuz = touch(tmp_path / f"boot/vmlinuz-{R}")
    config = touch(tmp_path / f"boot/config-{R}")
    touch(tmp_path / f"boot/System.map-{R}")
    touch(tmp_path / f"lib/modules/{R}/kernel/fs/ext4/ext4.ko")
    assert find_kernel_files(tmp_path) == (vmlinuz, tmp_path / f"lib/modules/{R}", config)


def test_find_files_trixie_layout(tmp_path):
    r = "6.12.9-amd64"
    vmlinuz = touch(tmp_path / f"boot/vmlinuz-{r}")
    config = touch(tmp_path / f"boot/config-{r}")
    touch(tmp_path / f"usr/lib/modules/{r}/kernel/fs/xfs/xfs.ko.xz")
    touch(tmp_path / f"usr/lib/modules/{r}/modules.order")
    assert find_kernel_files(tmp_path) == (vmlinuz, tmp_path / f"usr/lib/modules/{r}", config)


def test_find_files_sid_split_layout(tmp_path):
    r = "7.0.0-1-amd64"
    vmlinuz = touch(tmp_path / f"usr/lib/modules/{r}/vmlinuz")        # linux-binary-*
    config = touch(tmp_path / f"usr/lib/modules/{r}/config")
    touch(tmp_path / f"usr/lib/modules/{r}/kernel/drivers/nvdimm/nd_pmem.ko.xz")  # linux-modules-*
    assert find_kernel_files(tmp_path) == (vmlinuz, tmp_path / f"usr/lib/modules/{r}", config)


def test_find_files_without_config(tmp_path):
    vmlinuz = touch(tmp_path / f"boot/vmlinuz-{R}")
    touch(tmp_path / f"lib/modules/{R}/kernel/a.ko")
    assert find_kernel_files(tmp_path) == (vmlinuz, tmp_path / f"lib/modules/{R}", None)


def test_find_files_no_vmlinuz(tmp_path):
    touch(tmp_path / f"lib/modules/{R}/kernel/a.ko")
    touch(tmp_path / f"boot/config-{R}")
    with pytest.raises(InfraError, match=re.escape(f"no vmlinuz found in unpacked kernel "
                                                   f"packages under {tmp_path}")):
        find_kernel_files(tmp_path)


def test_find_files_no_modules(tmp_path):
    touch(tmp_path / f"boot/vmlinuz-{R}")
    with pytest.raises(InfraError, match="no modules directory found"):
        find_kernel_files(tmp_path)


def test_artifact_moddir_and_to_dict(tmp_path):
    art = artifact.KernelArtifact(name="debian-6.1", release=R, vmlinuz=tmp_path / "vmlinuz",
                                modroot=tmp_path / "modroot", config=None,
                                packages=(f"linux-image-{R}=6.1.119-1",), hash="abc",
                                dir=tmp_path)
    assert art.moddir == tmp_path / "modroot" / "lib" / "modules" / R
    d = art.to_dict()
    assert d["vmlinuz"] == str(tmp_path / "vmlinuz") and d["config"] is None
    assert d["packages"] == (f"linux-image-{R}=6.1.119-1",)


def test_cached_artifacts_empty_cache():
    assert artifact.cached_artifacts() == []


# ------------------------------------------------------------------------------- trust the cache

@pytest.mark.parametrize("suite, mirror, want", [
    ("bookworm", "http://deb.debian.org/debian",
     [("http://deb.debian.org/debian", "bookworm"), ("http://deb.debian.org/debian", "bookworm-updates"),
      ("http://deb.debian.org/debian-security", "bookworm-security")]),
    ("sid", "http://deb.debian.org/debian", [("http://deb.debian.org/debian", "sid")]),
    ("bookworm-backports", "http://m/debian", [("http://m/debian", "bookworm-backports")]),
    ("trixie", "http://snapshot.example/archive", [("http://snapshot.example/archive", "trixie"),
                                                   ("http://snapshot.example/archive", "trixie-updates")]),
])
def test_a_suite_means_its_newest_kernel_security_pocket_included(suite, mirror, want):
    """Issue 11 item 16: bookworm main had 6.1.176-1, bookworm-security 6.1.192-3."""
    assert apt.pockets(suite, mirror) == want


def test_apt_state_is_keyed_by_suite_and_mirror(tmp_path):
    a = PrivateApt("bookworm", "http://a.example/debian")
    b = PrivateApt("bookworm", "http://b.example/debian")
    assert a.root != b.root
    assert "a.example" in (a.root / "etc/sources.list").read_text()
    assert "b.example" in (b.root / "etc/sources.list").read_text()


def _fake_artifact(kdir, name="debian-6.1"):
    kdir.mkdir(parents=True)
    (kdir / "vmlinuz").write_bytes(b"kernel bytes")
    (kdir / "modroot").mkdir()
    import hashlib
    (kdir / "artifact.json").write_text(json.dumps({
        "name": name, "release": R, "vmlinuz": "vmlinuz", "modroot": "modroot", "config": None,
        "packages": [f"linux-image-{R}=6.1.119-1"], "hash": "abc",
        "vmlinuz_sha256": hashlib.sha256(b"kernel bytes").hexdigest()}))


@pytest.mark.parametrize("damage", ["truncate", "not-object", "vmlinuz-changed", "vmlinuz-gone",
                                    "no-release"])
def test_a_corrupt_artifact_is_detected(tmp_path, damage):
    kdir = tmp_path / "k"
    _fake_artifact(kdir)
    meta = kdir / "artifact.json"
    if damage == "truncate":
        meta.write_text(meta.read_text()[:30])
    elif damage == "not-object":
        meta.write_text("[1, 2]")
    elif damage == "vmlinuz-changed":
        (kdir / "vmlinuz").write_bytes(b"kernel bytez")
    elif damage == "vmlinuz-gone":
        (kdir / "vmlinuz").unlink()
    elif damage == "no-release":
        d = json.loads(meta.read_text())
        del d["release"]
        meta.write_text(json.dumps(d))
    with pytest.raises(artifact.CacheCorrupt):
        artifact.load_artifact(meta, "debian-6.1")


def test_rig_kernels_lists_a_corrupt_entry_instead_of_a_traceback():
    from pinrig import paths
    kdir = paths.cache_dir() / "kernels" / "debian" / "x"
    _fake_artifact(kdir)
    (kdir / "artifact.json").write_text("{trunc")
    assert [r[1] for r in artifact.cached_artifacts()] == ["corrupt (rebuilt on next use)"]


def test_a_corrupt_artifact_is_rebuilt_not_a_traceback(tmp_path):
    kdir = tmp_path / "k"
    _fake_artifact(kdir)
    (kdir / "artifact.json").write_text("{\"release\": ")
    built = []

    def build():
        built.append(1)
        _fake_artifact(kdir)
        return artifact.load_artifact(kdir / "artifact.json", "debian-6.1")
    art = artifact.load_or_rebuild(kdir / "artifact.json", "debian-6.1", build)
    assert built == [1] and art.release == R
    assert artifact.load_or_rebuild(kdir / "artifact.json", "debian-6.1", build).release == R
    assert built == [1]                       # a good entry is used as it is


@pytest.mark.parametrize("text", ["", "[", "{}", "[]", '[["linux-image-x"]]', '[["../x", "1"]]'])
def test_a_corrupt_resolution_is_resolved_again(text, fake_runner, monkeypatch):
    monkeypatch.setattr(proc, "require", lambda tool: f"/usr/bin/{tool}")
    fake_runner.handler = _apt_handler({
        "linux-image-amd64": {"6.1.5-1": {"Depends": "linux-image-6.1.0-5-amd64 (= 6.1.5-1)"}},
        "linux-image-6.1.0-5-amd64": {"6.1.5-1": {}},
    })
    spec = KernelSpec(name="d", kind="debian", suite="bookworm")
    rfile = debian.resolved_path(spec)
    rfile.parent.mkdir(parents=True, exist_ok=True)
    rfile.write_text(text)
    assert debian._resolve_cached(spec, refresh=False) == [("linux-image-6.1.0-5-amd64", "6.1.5-1")]
    assert json.loads(rfile.read_text()) == [["linux-image-6.1.0-5-amd64", "6.1.5-1"]]
