"""pinrig.cases.kmod: the pure parts of building modules for Debian kernels."""
import pytest

from pinrig.cases import kmod


def test_build_root_packages_names_the_compiler_of_every_release():
    # bullseye: linux-headers-5.10.0-NN-amd64 → linux-compiler-gcc-10-x86
    assert kmod.build_root_packages(["linux-headers-5.10.0-46-common", "linux-kbuild-5.10",
                                     "linux-compiler-gcc-10-x86", "libc6", "libelf1"]) == \
        {"make", "gcc-10", "libc6", "libelf1"}
    # trixie: gcc-14 directly
    assert kmod.build_root_packages(["gcc-14", "linux-headers-6.12.118+deb13-common"]) == \
        {"make", "gcc-14"}


def test_a_kernel_build_directory_is_the_kdir_of_the_test_module(tmp_path):
    import json
    from types import SimpleNamespace

    from pinrig import config
    from pinrig.errors import UserError
    build = tmp_path / "build"
    (build / "scripts/mod").mkdir(parents=True)
    (build / ".config").write_text("CONFIG_MODULES=y\n")
    art = SimpleNamespace(dir=tmp_path / "art", hash="abcd", release="6.1.0-mine")
    art.dir.mkdir()
    (art.dir / "artifact.json").write_text(json.dumps({"inputs": {"root": str(build)}}))
    spec = config.KernelSpec(name="bzImage", kind="image", suite="", package="", mirror="")
    with pytest.raises(UserError, match=r"cannot build modules \(Module.symvers, "
                                        r"scripts/mod/modpost missing"):
        kmod.local_headers(spec, art)
    (build / "Module.symvers").write_text("")
    (build / "scripts/mod/modpost").write_text("")
    h = kmod.local_headers(spec, art)
    assert (h.kdir, h.release, h.cc) == (build, "6.1.0-mine", "gcc")


def test_a_source_kernels_module_needs_its_build_directory_to_hold_that_kernel(tmp_path,
                                                                             monkeypatch):
    import contextlib
    from types import SimpleNamespace

    from pinrig import config, paths
    from pinrig.errors import UserError
    from pinrig.kernels.source import builder
    kdir = tmp_path / "out-abc"
    (kdir / "include/config").mkdir(parents=True)
    (kdir / "include/config/kernel.release").write_text("6.1.192-other\n")
    (kdir / "Module.symvers").write_text("")
    ref = SimpleNamespace(out_for=lambda digest: kdir)
    monkeypatch.setattr(builder, "plan", lambda spec: SimpleNamespace(ref=ref, config_base=(),
                                                                      fragments=()))
    monkeypatch.setattr(builder, "locked_tree", lambda ref: contextlib.nullcontext())
    monkeypatch.setattr(paths, "cache_dir", lambda: tmp_path / "cache")
    built = []
    monkeypatch.setattr(kmod, "build_external", lambda h, out, *a: built.append((h, out)) or out)
    spec = config.KernelSpec(name="src-x", kind="source", suite="", package="", mirror="")
    art = SimpleNamespace(hash="feed", release="6.1.192-pinrig")
    with pytest.raises(UserError, match="now holds 6.1.192-other, not 6.1.192-pinrig"):
        kmod.test_module(spec, art)
    (kdir / "include/config/kernel.release").write_text("6.1.192-pinrig\n")
    out = kmod.test_module(spec, art)
    assert built[0][0].kdir == kdir and "source-feed" in str(out)
