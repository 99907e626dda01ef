"""runner.siw_buildable: a Debian kernel without CONFIG_RDMA_SIW still runs siw cases (the rig
builds siw.ko from its source); any other kernel, or any other missing option, still skips."""
from types import SimpleNamespace

from pinrig.cases.needs import ConfigCheck, Missing, Need
from pinrig.config import Case
from pinrig.runs.runner import siw_buildable

SIW = Case("ibverbs-pin", "ext4", "shared", provider="siw")
RXE = Case("ibverbs-pin", "ext4", "shared")


def _lacks(*symbols):
    return ConfigCheck(None, [], {SIW.id: [Missing(Need(s), "absent", "x") for s in symbols],
                                  RXE.id: [Missing(Need("CONFIG_RDMA_RXE"), "absent", "x")]})


def test_debian_kernel_builds_siw_so_only_that_option_is_forgiven():
    lacks = _lacks("CONFIG_RDMA_SIW")
    siw_buildable(SimpleNamespace(spec=SimpleNamespace(kind="debian")), lacks, [SIW, RXE])
    assert SIW.id not in lacks.cases and RXE.id in lacks.cases
    lacks = _lacks("CONFIG_RDMA_SIW", "CONFIG_INFINIBAND_USER_ACCESS")
    siw_buildable(SimpleNamespace(spec=SimpleNamespace(kind="debian")), lacks, [SIW, RXE])
    assert [m.need.symbol for m in lacks.cases[SIW.id]] == ["CONFIG_INFINIBAND_USER_ACCESS"]


def test_other_kernels_keep_the_skip():
    for kind in ("source", "image"):
        lacks = _lacks("CONFIG_RDMA_SIW")
        siw_buildable(SimpleNamespace(spec=SimpleNamespace(kind=kind)), lacks, [SIW])
        assert "CONFIG_RDMA_SIW" in lacks.reason(SIW.id)
