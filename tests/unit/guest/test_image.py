"""pinrig.guest.image: modules.dep parsing, initramfs module load order, compressed module reading."""
import gzip
import lzma
import shutil
import subprocess
from pathlib import Path

import pytest

from pinrig.guest import image as guest
from pinrig.guest.image import _read_module, module_load_order, parse_modules_dep

ROOT_MODULES = [m for chain in guest.ROOT_MODULE_CHAINS for m in chain]

MODULES_DEP = """\
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/lib/crc16.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/fs/jbd2/jbd2.ko.xz:
kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz kernel/drivers/virtio/virtio_pci_legacy_dev.ko.xz
kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko.xz:
kernel/drivers/block/virtio_blk.ko.xz:
kernel/crypto/crc32c_generic.ko.xz:
kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko.xz: kernel/drivers/infiniband/core/ib_uverbs.ko.xz kernel/drivers/infiniband/core/ib_core.ko.xz
kernel/drivers/infiniband/core/ib_uverbs.ko.xz: kernel/drivers/infiniband/core/ib_core.ko.xz
kernel/drivers/infiniband/core/ib_core.ko.xz:
kernel/drivers/net/dummy-net.ko:
this line has no colon
"""


def test_parse_modules_dep():
    dep = parse_modules_dep(MODULES_DEP)
    assert dep["ext4"] == ("kernel/fs/ext4/ext4.ko.xz",
                           ["kernel/lib/crc16.ko.xz", "kernel/fs/mbcache.ko.xz",
                            "kernel/fs/jbd2/jbd2.ko.xz"])
    assert dep["crc16"] == ("kernel/lib/crc16.ko.xz", [])
    assert dep["rdma_rxe"][1] == ["kernel/drivers/infiniband/core/ib_uverbs.ko.xz",
                                  "kernel/drivers/infiniband/core/ib_core.ko.xz"]
    assert len(dep) == 13


def test_parse_modules_dep_dash_becomes_underscore():
    dep = parse_modules_dep(MODULES_DEP)
    assert dep["dummy_net"] == ("kernel/drivers/net/dummy-net.ko", [])
    assert "dummy-net" not in dep


def test_parse_modules_dep_plain_ko_and_gz():
    dep = parse_modules_dep("kernel/a/foo.ko: kernel/b/bar.ko.gz\nkernel/b/bar.ko.gz:\n")
    assert dep == {"foo": ("kernel/a/foo.ko", ["kernel/b/bar.ko.gz"]),
                   "bar": ("kernel/b/bar.ko.gz", [])}


def test_load_order_root_modules():
    dep = parse_modules_dep(MODULES_DEP)
    order = module_load_order(dep, ROOT_MODULES)
    # crc32c_intel is not in this kernel: skipped; everything else, dependencies first
    assert order == [
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz",
        "kernel/drivers/virtio/virtio_pci_legacy_dev.ko.xz",
        "kernel/drivers/virtio/virtio_pci.ko.xz",
        "kernel/drivers/block/virtio_blk.ko.xz",
        "kernel/crypto/crc32c_generic.ko.xz",
        "kernel/lib/crc16.ko.xz", "kernel/fs/mbcache.ko.xz", "kernel/fs/jbd2/jbd2.ko.xz",
        "kernel/fs/ext4/ext4.ko.xz",
    ]


def test_load_order_transitive_deps_first_no_duplicates():
    dep = parse_modules_dep(MODULES_DEP)
    order = module_load_order(dep, ["rdma_rxe", "ib_uverbs", "ib_core"])
    assert order == ["kernel/drivers/infiniband/core/ib_core.ko.xz",
                     "kernel/drivers/infiniband/core/ib_uverbs.ko.xz",
                     "kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko.xz"]


def test_load_order_respects_deps_even_when_listed_in_reverse():
    # a's list names c before b, but b itself needs c: c must still come before b
    dep = {"a": ("a.ko", ["b.ko", "c.ko"]), "b": ("b.ko", ["c.ko"]), "c": ("c.ko", [])}
    order = module_load_order(dep, ["a"])
    assert order == ["c.ko", "b.ko", "a.ko"]
    dep = {"a": ("a.ko", ["c.ko", "b.ko"]), "b": ("b.ko", ["c.ko"]), "c": ("c.ko", [])}
    order = module_load_order(dep, ["a"])
    assert order.index("c.ko") < order.index("b.ko") < order.index("a.ko")
    assert sorted(order) == ["a.ko", "b.ko", "c.ko"]


def test_load_order_missing_modules_skipped():
    dep = parse_modules_dep(MODULES_DEP)
    assert module_load_order(dep, ["nope", "crc32c_intel"]) == []
    assert module_load_order(dep, ["nope", "virtio_blk"]) == ["kernel/drivers/block/virtio_blk.ko.xz"]
    assert module_load_order({}, ROOT_MODULES) == []


def test_load_order_wanted_twice():
    dep = parse_modules_dep(MODULES_DEP)
    assert module_load_order(dep, ["crc16", "crc16", "ext4", "ext4"]) == [
        "kernel/lib/crc16.ko.xz", "kernel/fs/mbcache.ko.xz", "kernel/fs/jbd2/jbd2.ko.xz",
        "kernel/fs/ext4/ext4.ko.xz"]


def test_load_order_cycle_terminates():
    dep = {"a": ("a.ko", ["b.ko"]), "b": ("b.ko", ["c.ko"]), "c": ("c.ko", ["a.ko"])}
    order = module_load_order(dep, ["a", "b", "c"])
    assert order == ["c.ko", "b.ko", "a.ko"]   # each once; the walk stops at the back edge


def test_load_order_self_dependency():
    assert module_load_order({"a": ("a.ko", ["a.ko"])}, ["a"]) == ["a.ko"]


# ------------------------------------------------------------------------------- _read_module

ELF = b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 40


def test_read_plain_ko(tmp_path):
    p = tmp_path / "m.ko"
    p.write_bytes(ELF)
    assert _read_module(p) == ELF


def test_read_ko_xz(tmp_path):
    p = tmp_path / "m.ko.xz"
    p.write_bytes(lzma.compress(ELF, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32))
    assert _read_module(p) == ELF


def test_read_ko_gz(tmp_path):
    p = tmp_path / "m.ko.gz"
    p.write_bytes(gzip.compress(ELF))
    assert _read_module(p) == ELF


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd not installed")
def test_read_ko_zst(tmp_path):
    raw = tmp_path / "m.ko"
    raw.write_bytes(ELF)
    subprocess.run(["zstd", "-q", str(raw), "-o", str(tmp_path / "m.ko.zst")], check=True)
    assert _read_module(tmp_path / "m.ko.zst") == ELF


def test_read_corrupt_xz_raises(tmp_path):
    p = tmp_path / "m.ko.xz"
    p.write_bytes(b"not xz at all")
    with pytest.raises(lzma.LZMAError):
        _read_module(p)


def test_image_secrets_are_owner_only(tmp_path):
    """rootfs.img carries the guest's private sshd host key (issue 11: item 17)."""
    import json
    import os

    from pinrig.guest import image
    d = tmp_path / "bookworm-x"
    d.mkdir()
    (d / "image.json").write_text(json.dumps({"name": "bookworm", "hash": "x"}))
    (d / "host_key.pub").write_text("ssh-ed25519 AAAA")
    for name in ("rootfs.img", "id_ed25519"):
        (d / name).write_bytes(b"secret")
        os.chmod(d / name, 0o644)
    image._load_image(d)
    assert oct((d / "rootfs.img").stat().st_mode & 0o777) == "0o600"
    assert oct((d / "id_ed25519").stat().st_mode & 0o777) == "0o600"


def test_a_changed_init_script_makes_a_new_initramfs(tmp_path, monkeypatch):
    """(seen: an edited INIT_SCRIPT never reached the guest, the cached initramfs was reused)"""
    from types import SimpleNamespace

    from pinrig.guest import image
    made = []
    monkeypatch.setattr(image, "_make_initrd", lambda art, dest: (made.append(dest),
                                                                 dest.write_bytes(b"i")))
    monkeypatch.setattr(image, "_make_modules_disk", lambda art, dest: dest.write_bytes(b"m"))
    art = SimpleNamespace(dir=tmp_path)
    first = image.boot_files(art).initrd
    assert image.boot_files(art).initrd == first and len(made) == 1     # cached
    monkeypatch.setattr(image, "INIT_SCRIPT", image.INIT_SCRIPT + "# changed\n")
    second = image.boot_files(art).initrd
    assert second != first and len(made) == 2 and second.name == "initrd.cpio.gz"


def test_the_initramfs_gives_the_address_to_a_real_nic_not_a_builtin_dummy(tmp_path):
    # seen for real: a kernel with CONFIG_DUMMY=y built in (siw.config) has dummy0 at boot; the
    # loop took it (it sorts before eth0), eth0 got no address and ssh never came up
    import re
    loop = re.search(r"^for n in /sys/class/net/\*; do\n.*?^done\n", guest.INIT_SCRIPT,
                     re.M | re.S).group(0)
    net = tmp_path / "sys/class/net"
    for n, real in (("dummy0", False), ("eth0", True), ("lo", False), ("sit0", False)):
        (net / n).mkdir(parents=True)
        if real:
            (net / n / "device").mkdir()
    newroot = tmp_path / "newroot"
    newroot.mkdir()
    script = ("ip() { echo \"ip $*\"; }\n"
              + loop.replace("/sys/class/net", str(net)).replace("/newroot", str(newroot)))
    res = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert "ip addr add 10.0.2.15/24 dev eth0" in res.stdout
    assert "dummy0" not in res.stdout and "sit0" not in res.stdout
    assert (newroot / "run-nic").read_text().strip() == "eth0"


def test_root_module_chains_are_disjoint_and_dependencies_first():
    dep = parse_modules_dep(MODULES_DEP)
    chains = guest.module_chains(dep, guest.ROOT_MODULE_CHAINS)
    assert chains == [
        ["kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz",
         "kernel/drivers/virtio/virtio_pci_legacy_dev.ko.xz",
         "kernel/drivers/virtio/virtio_pci.ko.xz",
         "kernel/drivers/block/virtio_blk.ko.xz"],
        ["kernel/crypto/crc32c_generic.ko.xz",
         "kernel/lib/crc16.ko.xz", "kernel/fs/mbcache.ko.xz", "kernel/fs/jbd2/jbd2.ko.xz",
         "kernel/fs/ext4/ext4.ko.xz"]]


def test_a_chain_that_needs_an_earlier_chains_module_loads_after_it():
    # b needs s, which chain 1 loads: b's chain joins chain 1, after it (never in parallel)
    dep = {"a": ("a.ko", ["s.ko"]), "s": ("s.ko", []), "b": ("b.ko", ["s.ko"]),
           "c": ("c.ko", [])}
    assert guest.module_chains(dep, [("a",), ("b",), ("c",)]) == \
        [["s.ko", "a.ko", "b.ko"], ["c.ko"]]
    # a module both chains name stays in the first; a chain with nothing left is dropped
    assert guest.module_chains(dep, [("a", "c"), ("c",)]) == [["s.ko", "a.ko", "c.ko"]]
    # all built in: no chains at all
    assert guest.module_chains({}, guest.ROOT_MODULE_CHAINS) == []


@pytest.mark.parametrize("shell", [["sh"], ["busybox", "sh"]])
def test_guest_init_scripts_parse(tmp_path, shell):
    """The initramfs /init (busybox sh) and the image's pinrig-init and pinrig-devices (dash): a
    syntax error in any of them kills every boot."""
    import os

    from pinrig.config import load_guest_spec
    if not shutil.which(shell[0]):
        pytest.skip(f"no {shell[0]}")
    init = tmp_path / "init"
    init.write_text(guest.INIT_SCRIPT)
    sbin = load_guest_spec("bookworm").files_dir / "usr/local/sbin"
    scripts = sorted(sbin.iterdir())
    assert [p.name for p in scripts] == ["pinrig-devices", "pinrig-init"]
    for script in [init] + scripts:
        assert script == init or os.access(script, os.X_OK), script
        subprocess.run(shell + ["-n", str(script)], check=True)


def test_nothing_loads_a_module_before_the_switch_root():
    """The kernel's own module requests run the /sbin/modprobe of the root it sees, which is the
    initramfs until switch_root: a module loaded from the new root before the switch (rdma_rxe,
    which asks for crc32) fails (seen in a real run). Only the initramfs's own insmods come first."""
    before = guest.INIT_SCRIPT.split("exec switch_root")[0]
    assert "modprobe" not in before and "chroot" not in before


def test_modules_disk_holds_modules_decompressed_with_their_dependencies(tmp_path, monkeypatch):
    """The .ko.xz a rig guest loads (and what they need) go on the modules disk as .ko, the rest
    as shipped, and depmod runs again for them."""
    from types import SimpleNamespace

    from pinrig import proc
    rel = "6.12.0-test"
    mods = tmp_path / "modroot/lib/modules" / rel
    (mods / "kernel/fs").mkdir(parents=True)
    (mods / "kernel/lib").mkdir(parents=True)
    (mods / "kernel/sound").mkdir(parents=True)
    (mods / "kernel/fs/a.ko.xz").write_bytes(lzma.compress(b"A" * 100))
    (mods / "kernel/fs/b.ko").write_bytes(b"B")
    (mods / "kernel/lib/d.ko.xz").write_bytes(lzma.compress(b"D"))       # a.ko needs it
    (mods / "kernel/sound/c.ko.xz").write_bytes(lzma.compress(b"C"))     # no guest loads it
    (mods / "modules.dep").write_text("kernel/fs/a.ko.xz: kernel/lib/d.ko.xz\nkernel/fs/b.ko:\n"
                                      "kernel/lib/d.ko.xz:\nkernel/sound/c.ko.xz:\n")
    calls = []

    def fake_run(argv, what="", **_kw):
        calls.append([str(a) for a in argv])
        if argv[0] == "mkfs.ext4":
            tree = Path(argv[argv.index("-d") + 1])
            calls.append(sorted(str(p.relative_to(tree)) for p in tree.rglob("*.ko*")))
            Path(argv[-2]).write_bytes(b"img")
    monkeypatch.setattr(proc, "run", fake_run)
    art = SimpleNamespace(modroot=tmp_path / "modroot", name="k")
    dest = tmp_path / "boot/modules-plain.img"
    dest.parent.mkdir()
    guest._make_modules_disk(art, dest)
    depmod = [c for c in calls if c[0] == "depmod"]
    assert len(depmod) == 1 and depmod[0][1] == "-b" and depmod[0][3] == rel
    assert [f"{rel}/kernel/fs/a.ko", f"{rel}/kernel/fs/b.ko", f"{rel}/kernel/lib/d.ko",
            f"{rel}/kernel/sound/c.ko.xz"] in calls
    assert dest.read_bytes() == b"img"
    assert not (tmp_path / "boot/modroot.tmp").exists()        # the decompressed copy is gone
    assert (mods / "kernel/fs/a.ko.xz").exists()                # the artifact is untouched
