"""What a kernel lacks, per case, from its .config."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from pinrig.cases import needs
from pinrig.config import Case, Pressure

GUEST = "\n".join(f"{n.symbol}=y" for n in needs.BOOT) + "\n"


def art(tmp_path: Path, config: str, modules: bool = True):
    (tmp_path / "config").write_text(config)
    moddir = tmp_path / "modroot/lib/modules/6.1.0"
    (moddir / "kernel").mkdir(parents=True, exist_ok=True)
    if modules:
        (moddir / "kernel/rdma_rxe.ko").write_bytes(b"x")
    return SimpleNamespace(config=tmp_path / "config", moddir=moddir)


def test_a_full_kernel_lacks_nothing(tmp_path):
    cfg = GUEST + "".join(f"{n.symbol}=m\n" for n in needs.PMEM + needs.RDMA["rxe"]) \
        + "CONFIG_EXT4_FS=y\nCONFIG_TMPFS=y\n"
    chk = needs.check(art(tmp_path, cfg), [Case("ibverbs-pin", "ext4", "shared"),
                                           Case("ibverbs-pin", "tmpfs", "shared")])
    assert chk.boot == [] and chk.cases == {}


def test_missing_options_are_named_with_the_fragment_that_sets_them(tmp_path):
    cfg = GUEST + "CONFIG_TMPFS=y\n# CONFIG_RDMA_RXE is not set\nCONFIG_INFINIBAND=y\n" \
        "CONFIG_INFINIBAND_USER_ACCESS=y\n"
    c = Case("ibverbs-pin", "ext4", "shared")
    chk = needs.check(art(tmp_path, cfg), [c, Case("ibverbs-pin", "tmpfs", "shared")])
    reason = chk.reason(c.id)
    assert "CONFIG_BLK_DEV_PMEM (not set; pmem.config)" in reason
    assert "CONFIG_RDMA_RXE (not set; rdma.config)" in reason
    assert set(chk.cases) == {c.id, "ibverbs-pin/tmpfs/shared"}   # rxe is missing for both


def test_a_module_without_modules_is_missing(tmp_path):
    cfg = GUEST + "CONFIG_TMPFS=y\nCONFIG_INFINIBAND=m\nCONFIG_INFINIBAND_USER_ACCESS=m\n" \
        "CONFIG_RDMA_RXE=m\n"
    chk = needs.check(art(tmp_path, cfg, modules=False), [Case("ibverbs-pin", "tmpfs", "shared")])
    assert "CONFIG_RDMA_RXE (=m but no modules; rdma.config)" in chk.reason(
        "ibverbs-pin/tmpfs/shared")


def test_boot_needs_and_workload_and_pressure_needs(tmp_path):
    cfg = "CONFIG_VIRTIO_BLK=m\n"
    chk = needs.check(art(tmp_path, cfg, modules=False))
    text = chk.boot_error("k")
    assert text.startswith("k cannot boot the rig's guest: it lacks CONFIG_BLK_DEV_INITRD")
    assert "CONFIG_VIRTIO_BLK (=m but no modules; make kvm_guest.config)" in text
    io = needs.case_needs(Case("iouring-fixed", "xfs-dax", "shared"), Pressure(memcg_limit_mb=64))
    syms = [n.symbol for n in io]
    assert {"CONFIG_IO_URING", "CONFIG_XFS_FS", "CONFIG_FS_DAX", "CONFIG_MEMCG",
            "CONFIG_BLK_DEV_PMEM"} <= set(syms)
    assert "CONFIG_EXT4_FS" not in syms


def test_no_config_means_nothing_checked(tmp_path):
    chk = needs.check(SimpleNamespace(config=None), [Case("ibverbs-pin", "tmpfs", "shared")])
    assert chk.config is None and chk.cases == {} and chk.boot == []
