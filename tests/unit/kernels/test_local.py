"""--kernel PATH: finding what belongs to a built kernel, and importing it into the cache."""
from __future__ import annotations

from pathlib import Path

import pytest

from pinrig import config
from pinrig.errors import UserError
from pinrig.kernels import local

REL = "6.1.99-pinrig"


def bzimage(version: str = f"{REL} (dev@box) #1 SMP PREEMPT_DYNAMIC") -> bytes:
    """Just enough of an x86 boot image: setup header magic and the version pointer."""
    data = bytearray(0x4000)
    data[0x202:0x206] = b"HdrS"
    at = 0x3000
    data[0x20E:0x210] = (at - 0x200).to_bytes(2, "little")
    v = version.encode() + b"\0"
    data[at:at + len(v)] = v
    return bytes(data)


def build_tree(root: Path, modules: tuple = ("drivers/infiniband/sw/rxe/rdma_rxe",)) -> Path:
    (root / "arch/x86/boot").mkdir(parents=True)
    (root / "arch/x86/boot/bzImage").write_bytes(bzimage())
    (root / ".config").write_text("CONFIG_RDMA_RXE=m\n")
    (root / "System.map").write_text("ffffffff81000000 T _text\n")
    (root / "vmlinux").write_bytes(b"\x7fELF" + b"\0" * 60)
    (root / "Makefile").write_text("# kernel\n")
    for m in modules:
        (root / m).parent.mkdir(parents=True, exist_ok=True)
        (root / f"{m}.ko").write_bytes(b"\x7fELF module " + m.encode())
    (root / "modules.order").write_text("".join(f"{m}.o\n" for m in modules))
    return root


def test_version_string_read_from_the_setup_header():
    assert local.bzimage_version(bzimage()) == f"{REL} (dev@box) #1 SMP PREEMPT_DYNAMIC"
    assert local.release_of(local.bzimage_version(bzimage()) or "") == REL


@pytest.mark.parametrize("head", [b"", b"MZ" + b"\0" * 0x300, b"\x7fELF" + b"\0" * 0x300])
def test_not_a_bzimage(head):
    assert local.bzimage_version(head) is None


def test_a_build_directory_gives_config_map_vmlinux_and_built_modules(tmp_path):
    root = build_tree(tmp_path / "linux")
    for arg in (root, root / "arch/x86/boot/bzImage"):
        lk = local.locate(arg)
        assert lk.release == REL and lk.root == root.resolve()
        assert lk.config == root / ".config" and lk.system_map == root / "System.map"
        assert lk.vmlinux == root / "vmlinux"
        assert [str(rel) for _src, rel in lk.built_modules] == \
            ["kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko"]


def test_boot_layout_takes_config_and_map_named_by_release(tmp_path):
    (tmp_path / f"vmlinuz-{REL}").write_bytes(bzimage())
    (tmp_path / f"config-{REL}").write_text("CONFIG_X=y\n")
    (tmp_path / f"System.map-{REL}").write_text("")
    lk = local.locate(tmp_path / f"vmlinuz-{REL}")
    assert lk.root is None and lk.config == tmp_path / f"config-{REL}"
    assert lk.system_map == tmp_path / f"System.map-{REL}" and lk.vmlinux is None
    assert not lk.has_modules


@pytest.mark.parametrize("layout", ["root", "moddir"])
def test_modules_given_as_install_root_or_as_the_release_dir(tmp_path, layout):
    (tmp_path / "bzImage").write_bytes(bzimage())
    moddir = tmp_path / "inst/lib/modules" / REL
    (moddir / "kernel").mkdir(parents=True)
    lk = local.locate(tmp_path / "bzImage", tmp_path / "inst" if layout == "root" else moddir)
    assert lk.modules == moddir.resolve()


def test_modules_of_another_release_are_refused_saying_which(tmp_path):
    (tmp_path / "bzImage").write_bytes(bzimage())
    (tmp_path / "inst/lib/modules/6.1.0-57-amd64").mkdir(parents=True)
    with pytest.raises(UserError, match=r"has modules for 6.1.0-57-amd64, not for 6.1.99-pinrig"):
        local.locate(tmp_path / "bzImage", tmp_path / "inst")


def test_bad_paths_are_one_clear_line(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        local.locate(tmp_path / "nope")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree/Makefile").write_text("")
    with pytest.raises(UserError, match=r"a kernel tree with no built image .*make bzImage"):
        local.locate(tmp_path / "tree")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a kernel image or kernel build directory"):
        local.locate(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="not a kernel image"):
        local.locate(tmp_path / "notes.txt")
    (tmp_path / "vmlinux").write_bytes(b"\x7fELF" + b"\0" * 100)
    with pytest.raises(UserError, match="an ELF vmlinux, not a bootable image"):
        local.locate(tmp_path / "vmlinux")


def test_a_module_in_modules_order_that_was_not_built(tmp_path):
    root = build_tree(tmp_path / "linux")
    (root / "drivers/infiniband/sw/rxe/rdma_rxe.ko").unlink()
    with pytest.raises(UserError, match="modules.order names .*rdma_rxe.ko but it is not built"):
        local.locate(root)


def test_import_is_cached_by_content(tmp_path, monkeypatch, fake_depmod):
    monkeypatch.setenv("PINRIG_CACHE", str(tmp_path / "cache"))
    root = build_tree(tmp_path / "linux")
    spec = config.image_spec(str(root))
    assert spec.kind == "image" and spec.name == "local-linux"
    art = local.fetch(spec)
    assert art.release == REL and art.vmlinux is not None and art.system_map is not None
    assert (art.moddir / "kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko").is_file()
    assert (art.moddir / "modules.order").read_text() == \
        "kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko\n"
    assert fake_depmod == [["depmod", "-b", str(art.dir.with_name(art.dir.name + ".tmp") /
                                                    "modroot"),
                            "-F", str(root / "System.map"), REL]]
    again = local.fetch(spec)
    assert again.dir == art.dir and len(fake_depmod) == 1      # found again, not re-imported
    (root / "arch/x86/boot/bzImage").write_bytes(bzimage(f"{REL} (dev@box) #2 SMP"))
    assert local.fetch(spec).dir != art.dir                    # a rebuilt image is a new one


@pytest.fixture
def fake_depmod(monkeypatch):
    calls: list = []

    def run(argv, **_kw):
        calls.append([str(a) for a in argv])
    monkeypatch.setattr(local.proc, "run", run)
    return calls


def test_a_path_is_a_kernel_argument_a_name_is_a_spec(tmp_path, monkeypatch):
    assert not config.is_kernel_path("debian-6.1")
    assert config.is_kernel_path(str(tmp_path))
    assert not config.is_kernel_path("kernels/debian-6.1.yaml")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bzImage").write_bytes(bzimage())
    assert config.is_kernel_path("bzImage")          # no spec of that name, but a file here
    assert config.load_kernel_spec("bzImage").kind == "image"


def test_image_spec_file(tmp_path):
    root = build_tree(tmp_path / "linux")
    f = tmp_path / "k.yaml"
    f.write_text("kind: image\nimage: linux\nname: my-kernel\n")
    spec = config.load_kernel_spec(str(f))
    assert (spec.kind, spec.name, spec.image) == ("image", "my-kernel", str(root.resolve()))
    f.write_text("kind: image\nimage: nowhere\n")
    with pytest.raises(UserError, match=r"k.yaml: image: .*nowhere: no such file"):
        config.load_kernel_spec(str(f))
    f.write_text("kind: image\n")
    with pytest.raises(UserError, match=r"k.yaml: image: is required"):
        config.load_kernel_spec(str(f))


def test_a_release_that_is_not_one_is_refused(tmp_path):
    (tmp_path / "bzImage").write_bytes(bzimage("../../etc (x@y) #1"))
    with pytest.raises(UserError, match="not a kernel release"):
        local.locate(tmp_path / "bzImage")
