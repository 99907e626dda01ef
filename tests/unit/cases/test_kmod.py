"""pinrig.cases.kmod: the pure parts of building modules for Debian kernels."""
from pinrig.cases import kmod


def test_build_root_packages_names_the_compiler_of_every_release():
    # bullseye: linux-headers-5.10.0-NN-amd64 → linux-compiler-gcc-10-x86
    assert kmod.build_root_packages(["linux-headers-5.10.0-46-common", "linux-kbuild-5.10",
                                     "linux-compiler-gcc-10-x86", "libc6", "libelf1"]) == \
        {"make", "gcc-10", "libc6", "libelf1"}
    # trixie: gcc-14 directly
    assert kmod.build_root_packages(["gcc-14", "linux-headers-6.12.118+deb13-common"]) == \
        {"make", "gcc-14"}
