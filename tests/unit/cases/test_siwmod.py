"""pinrig.cases.siwmod: siw for kernels without it (no build here: the pure parts)."""
from pathlib import Path

import pytest

from pinrig.cases import siwmod
from pinrig.errors import InfraError
from pinrig.kernels.artifact import KernelArtifact, image_version


def _art(tmp_path, config_text=None, packages=("linux-image-6.1.0-57-amd64=6.1.192-3",)):
    cfg = None
    if config_text is not None:
        cfg = tmp_path / "config"
        cfg.write_text(config_text)
    return KernelArtifact("debian-6.1", "6.1.0-57-amd64", tmp_path / "vmlinuz", tmp_path, cfg,
                          tuple(packages), "h", tmp_path)


def test_needs_module_reads_the_kernel_config(tmp_path):
    assert siwmod.needs_module(_art(tmp_path, "CONFIG_RDMA_RXE=m\n# CONFIG_RDMA_SIW is not set\n"))
    assert not siwmod.needs_module(_art(tmp_path, "CONFIG_RDMA_SIW=m\n"))
    assert not siwmod.needs_module(_art(tmp_path, "CONFIG_RDMA_SIW=y\n"))
    assert siwmod.needs_module(_art(tmp_path))                     # no config: build it
    assert siwmod.config_value(_art(tmp_path, "CONFIG_HZ=250\n"), "HZ") == "250"


def test_source_package_and_image_version(tmp_path):
    assert siwmod.source_package("6.1.0-57-amd64") == "linux-source-6.1"
    assert siwmod.source_package("6.12.118+deb13-amd64") == "linux-source-6.12"
    assert siwmod.source_package("5.10.0-35-amd64") == "linux-source-5.10"
    with pytest.raises(InfraError):
        siwmod.source_package("weird")
    assert image_version(_art(tmp_path)) == "6.1.192-3"
    with pytest.raises(InfraError):
        image_version(_art(tmp_path, packages=("firmware=1",)))


def test_module_depends_from_modinfo(tmp_path):
    ko = tmp_path / "siw.ko"
    ko.write_bytes(b"\x7fELF...license=GPL\0depends=ib_core,libcrc32c\0retpoline=Y\0")
    assert siwmod.module_depends(ko) == ["ib_core", "libcrc32c"]
    ko.write_bytes(b"\x7fELF...depends=\0")
    assert siwmod.module_depends(ko) == []


def test_guest_setup_inserts_the_built_module_on_a_dummy_netdev(tmp_path):
    ko = tmp_path / "siw.ko"
    ko.write_bytes(b"depends=ib_core,libcrc32c\0")
    cmd = siwmod.guest_setup_command("eth0", ko)
    assert cmd.startswith("test -e /sys/class/infiniband/siw0 ||")      # idempotent
    assert "modprobe -a ib_core libcrc32c" in cmd and f"insmod {siwmod.GUEST_KO}" in cmd
    assert f"ip link add {siwmod.SIW_NETDEV} type dummy" in cmd
    assert "rdma link add siw0 type siw netdev $nd" in cmd and "nd=eth0" in cmd
    own = siwmod.guest_setup_command("eth0", None)
    assert "modprobe siw" in own and "insmod" not in own


def test_guest_setup_command_is_valid_shell(tmp_path):
    import subprocess
    ko = tmp_path / "siw.ko"
    ko.write_bytes(b"depends=ib_core\0")
    for k in (ko, None):
        subprocess.run(["sh", "-n", "-c", siwmod.guest_setup_command("eth0", k)], check=True)
    assert Path(siwmod.GUEST_KO).is_absolute()


def _image(tmp_path, root):
    import json
    from types import SimpleNamespace

    from pinrig import config
    d = tmp_path / "art"
    d.mkdir(parents=True)
    (d / "artifact.json").write_text(json.dumps({"inputs": {"root": str(root) if root else None}}))
    spec = config.KernelSpec(name="bzImage", kind="image", suite="", package="", mirror="")
    return spec, SimpleNamespace(dir=d, hash="abcd")


def test_a_kernel_path_finds_its_o_build_source_tree(tmp_path):
    from pinrig.errors import UserError
    tree, build = tmp_path / "linux", tmp_path / "build"
    (tree / "tools").mkdir(parents=True)
    (tree / "Makefile").write_text("")
    build.mkdir()
    (build / "source").symlink_to(tree)
    spec, art = _image(tmp_path, build)
    got, label, ident = siwmod.source_tree(spec, art)
    assert got == tree.resolve() and ident == f"local:{tree.resolve()}@abcd" and str(tree) in label
    # built in place: the rig would have to write into the user's tree
    (tree / ".config").write_text("CONFIG_X=y\n")
    with pytest.raises(UserError, match="was built in place.*build the kernel with O=DIR"):
        siwmod.source_tree(*_image(tmp_path / "b", tree))
    with pytest.raises(UserError, match="imported from a bare image"):
        siwmod.source_tree(*_image(tmp_path / "c", None))
