"""pinrig.cases.workloads: the one table every stage asks."""
import pytest

from pinrig import paths
from pinrig.cases import workloads
from pinrig.config import Case


def case(workload, fs="ext4", mapping="shared", variant=None):
    return Case(workload=workload, fs=fs, mapping=mapping, variant=variant)


@pytest.mark.parametrize("w", [w for w in workloads.WORKLOADS.values() if w.kselftest is None],
                         ids=lambda w: w.name)
def test_every_workload_has_its_c_program(w):
    assert (paths.WORKLOADS_DIR / "src" / f"{w.program}.c").is_file()


def test_kselftest_workloads_name_their_program_and_share_a_guest():
    for name, prog in (("kselftest-gup_longterm", "gup_longterm"), ("kselftest-cow", "cow"),
                       ("kselftest-gup_test", "gup_test")):
        c = case(name, fs="xfs")
        assert workloads.kselftest(c) == prog
        assert not workloads.needs_own_guest(c) and not workloads.get(name).needs_rdma
    assert workloads.kselftest(case("ibverbs-pin")) is None


def test_the_provider_picks_the_rdma_device():
    for name in ("ibverbs-pin", "lost-write"):
        rxe = workloads.get(name).argv("/b", Case(name, "ext4", "shared"), 1)
        siw = workloads.get(name).argv("/b", Case(name, "ext4", "shared", provider="siw"), 1)
        assert rxe[rxe.index("--device") + 1] == "rxe0"
        assert siw[siw.index("--device") + 1] == "siw0"


@pytest.mark.parametrize("name, own", [("lost-write", True), ("ibverbs-pin", False),
                                       ("odirect-into-mmap", False), ("iouring-fixed", True)])
def test_crash_and_verify_cases_get_their_own_guest(name, own):
    assert workloads.needs_own_guest(case(name)) is own
    assert workloads.needs_own_guest(case(name, fs="tmpfs")) is False
    assert workloads.needs_own_guest(case(name, mapping="private")) is (name == "lost-write")


def test_needs_and_verification():
    assert workloads.get("ibverbs-pin").needs_rdma and not workloads.get("ibverbs-pin").verifies
    assert workloads.get("lost-write").needs_rdma and workloads.get("lost-write").verifies
    assert not workloads.get("iouring-fixed").needs_rdma


def test_unknown_workload_names_the_known_ones():
    with pytest.raises(KeyError, match="one of: ibverbs-pin, lost-write"):
        workloads.get("nope")


def test_the_leak_variant_needs_the_test_module_and_asks_for_the_leak():
    leak = case("ibverbs-pin", variant="leak")
    assert workloads.needs_module(leak) and not workloads.needs_module(case("ibverbs-pin"))
    argv = workloads.get("ibverbs-pin").argv("/opt/pinrig/bin", leak, 7)
    assert argv[-1] == "--leak" and "--access" in argv and argv[argv.index("--access") + 1] == "rw"


def test_anon_coherency_passes_its_trigger_and_size():
    c = Case("anon-coherency", "tmpfs", "private", "khugepaged", size=4 << 20, timeout=240)
    argv = workloads.get("anon-coherency").argv("/b", c, 9)
    assert argv == ["/b/anon-coherency", "--trigger", "khugepaged", "--size", str(4 << 20),
                    "--device", "rxe0", "--seed", "9", "--wait", "180"]
    assert workloads.get("anon-coherency").needs_rdma
    assert not workloads.needs_own_guest(c)


def test_anon_coherency_uprobe_maps_a_file_on_the_case_filesystem():
    c = Case("anon-coherency", "tmpfs", "private", "uprobe", size=2 << 20, timeout=240)
    argv = workloads.get("anon-coherency").argv("/b", c, 9)
    assert argv[-2:] == ["--file", "/mnt/test/uprobe.bin"]
    assert "--file" not in workloads.get("anon-coherency").argv("/b", case("anon-coherency"), 9)


def test_stable_pages_and_odirect_race_argv_and_verification():
    sp = workloads.get("stable-pages")
    argv = sp.argv("/b", case("stable-pages", fs="btrfs"), 7, hold=True)
    assert argv == ["/b/stable-pages", "--file", "/mnt/test/stable.dat", "--size", "1048576",
                    "--seed", "7", "--writer", "rdma", "--duration", "8", "--hold",
                    "--device", "rxe0"]
    cpu = sp.argv("/b", case("stable-pages", variant="cpu"), 7)
    assert cpu[cpu.index("--writer") + 1] == "cpu" and "--hold" not in cpu
    od = workloads.get("odirect-race").argv("/b", case("odirect-race"), 7, hold=True)
    assert od[0] == "/b/stable-pages" and od[od.index("--writer") + 1] == "odirect"
    assert "--device" not in od and not workloads.get("odirect-race").needs_rdma
    assert sp.verifier == workloads.get("odirect-race").verifier == "stable"
    assert workloads.stable_check_argv("/b", case("stable-pages"), 7) == [
        "/b/stable-pages", "--check", "--file", "/mnt/test/stable.dat", "--size", "1048576",
        "--seed", "7"]
    assert workloads.needs_own_guest(case("odirect-race", fs="ext4-integrity"))


@pytest.mark.parametrize("variant, how, extra", [
    (None, "reflink", []), ("dirty", "reflink", ["--dirty"]),
    ("control", "reflink", ["--control"]), ("snapshot", "snapshot", []),
    ("snapshot-dirty", "snapshot", ["--dirty"])])
def test_reflink_pin_variants(variant, how, extra):
    w = workloads.get("reflink-pin")
    argv = w.argv("/b", case("reflink-pin", fs="btrfs", variant=variant), 3)
    assert argv[argv.index("--how") + 1] == how
    assert [a for a in argv if a in ("--dirty", "--control")] == extra
    assert w.verifier == "clones" and w.needs_rdma and w.needs_own_guest(case("reflink-pin"))


def test_the_long_variant_stretches_the_overlap():
    argv = workloads.get("odirect-race").argv("/b", case("odirect-race", variant="long"), 1)
    assert argv[argv.index("--duration") + 1] == str(workloads.STABLE_LONG_S)


def test_crash_class_passes_its_trigger_and_verifies_its_file_in_place():
    c = Case("crash-class", "xfs", "shared", "drop-caches", size=1 << 20)
    argv = workloads.get("crash-class").argv("/b", c, 3)
    assert argv == ["/b/crash-class", "--file", "/mnt/test/crash.dat", "--trigger", "drop-caches",
                    "--size", str(1 << 20), "--seed", "3", "--device", "rxe0"]
    w = workloads.get("crash-class")
    assert w.needs_rdma and w.verifies and w.verifier == "blocks"
    assert not workloads.needs_own_guest(c)      # verified after a remount, no power cut
    assert set(w.variants) == {"control", "reclaim", "munmap-reclaim", "pageout", "compact",
                               "migrate", "drop-caches", "truncate", "punch", "splice-steal"}
