"""pinrig.cases.execute: the pure parts — result parsing, fs setup lines, pressure, seeds, argv."""
import json

import pytest

from pinrig.cases.execute import (
    MNT,
    case_seed,
    fs_setup_commands,
    in_memcg,
    parse_result,
    pressure_commands,
    workload_argv,
)
from pinrig.config import Case, Pressure
from pinrig.errors import InfraError
from pinrig.guest.session import GUEST_BIN

# ------------------------------------------------------------------------------- parse_result


def test_parse_result_single_line():
    assert parse_result('{"pin": "granted", "errno": null}\n') == {"pin": "granted",
                                                                   "errno": None}


def test_parse_result_last_object_line_wins():
    out = ('starting\n{"pin": "granted"}\nnoise\n  {"pin": "refused", "errno": "EFAULT"}  \n'
           'bye\n')
    assert parse_result(out) == {"pin": "refused", "errno": "EFAULT"}


def test_parse_result_skips_bad_json_and_garbage():
    out = ('{"pin": "granted", "seed": 7}\n'
           '{not json}\n'
           '{"truncated": \n'
           'garbage { "a": 1 } garbage\n'
           '\x00\x1b[0m{}\n')
    assert parse_result(out) == {"pin": "granted", "seed": 7}


def test_parse_result_ignores_non_object_json():
    out = '{"pin": "granted"}\n[1, 2, 3]\n"string"\n42\nnull\n'
    assert parse_result(out) == {"pin": "granted"}


def test_parse_result_nothing():
    assert parse_result("") is None
    assert parse_result("no json here\n[1]\n") is None
    assert parse_result("{broken\n") is None


def test_parse_result_ignores_huge_lines():
    huge = json.dumps({"pin": "refused", "pad": "x" * (5 << 20)})
    out = '{"pin": "granted"}\n' + huge + "\n"
    assert parse_result(out) == {"pin": "granted"}


def test_parse_result_empty_object_counts():
    assert parse_result('{"pin": "granted"}\n{}\n') == {}


def test_parse_result_crlf():
    assert parse_result('{"pin": "granted"}\r\n') == {"pin": "granted"}


# ------------------------------------------------------------------------------- fs setup

UMOUNT = f"umount {MNT} 2>/dev/null; true"
TO_FSDAX = "ndctl create-namespace -f -e namespace0.0 --mode=fsdax >/dev/null"
TO_RAW = "ndctl create-namespace -f -e namespace0.0 --mode=raw >/dev/null"


@pytest.mark.parametrize("fs,state,want", [
    ("ext4", "raw", [UMOUNT, "mkfs.ext4 -q -F /dev/pmem0", "mount -t ext4 /dev/pmem0 /mnt/test"]),
    ("xfs", "raw", [UMOUNT, "mkfs.xfs -q -f /dev/pmem0", "mount -t xfs /dev/pmem0 /mnt/test"]),
    ("tmpfs", "raw", [UMOUNT, "mount -t tmpfs -o size=768m tmpfs /mnt/test"]),
    ("tmpfs", "fsdax", [UMOUNT, "mount -t tmpfs -o size=768m tmpfs /mnt/test"]),
    ("ext4-dax", "raw", [UMOUNT, TO_FSDAX, "mkfs.ext4 -q -F /dev/pmem0",
                         "mount -t ext4 -o dax /dev/pmem0 /mnt/test",
                         "grep -q ' /mnt/test .*dax' /proc/mounts"]),
    ("ext4-dax", "fsdax", [UMOUNT, "mkfs.ext4 -q -F /dev/pmem0",
                           "mount -t ext4 -o dax /dev/pmem0 /mnt/test",
                           "grep -q ' /mnt/test .*dax' /proc/mounts"]),
    ("xfs-dax", "raw", [UMOUNT, TO_FSDAX, "mkfs.xfs -q -f -m reflink=0 /dev/pmem0",
                        "mount -t xfs -o dax /dev/pmem0 /mnt/test",
                        "grep -q ' /mnt/test .*dax' /proc/mounts"]),
    ("xfs-dax", "fsdax", [UMOUNT, "mkfs.xfs -q -f -m reflink=0 /dev/pmem0",
                          "mount -t xfs -o dax /dev/pmem0 /mnt/test",
                          "grep -q ' /mnt/test .*dax' /proc/mounts"]),
    ("ext4", "fsdax", [UMOUNT, TO_RAW, "mkfs.ext4 -q -F /dev/pmem0",
                       "mount -t ext4 /dev/pmem0 /mnt/test"]),
    ("xfs", "fsdax", [UMOUNT, TO_RAW, "mkfs.xfs -q -f /dev/pmem0",
                      "mount -t xfs /dev/pmem0 /mnt/test"]),
])
def test_fs_setup_commands(fs, state, want):
    assert fs_setup_commands(fs, state) == want


def test_fs_setup_first_line_unmounts_and_cannot_fail():
    for fs in ("ext4", "xfs", "ext4-dax", "xfs-dax", "tmpfs"):
        for state in ("raw", "fsdax"):
            cmds = fs_setup_commands(fs, state)
            assert cmds[0] == UMOUNT
            assert sum("ndctl" in c for c in cmds) <= 1
            assert ("-o dax" in " ".join(cmds)) == fs.endswith("-dax")


def test_namespace_flips_once_across_a_grouped_session():
    """The group order tmpfs, ext4, xfs, ext4-dax, xfs-dax flips raw → fsdax exactly once."""
    state, flips = "raw", []
    for fs in ("tmpfs", "ext4", "xfs", "ext4-dax", "xfs-dax"):
        flips += [c for c in fs_setup_commands(fs, state) if c.startswith("ndctl")]
        if fs.endswith("-dax"):
            state = "fsdax"
        elif fs in ("ext4", "xfs"):
            state = "raw"
    assert flips == [TO_FSDAX]


# ------------------------------------------------------------------------------- pressure

def test_pressure_none():
    assert pressure_commands(Pressure()) == ([], [])


def test_pressure_sysctls_in_order_and_restored():
    start, stop = pressure_commands(Pressure(dirty_writeback_centisecs=50, dirty_ratio=5,
                                             dirty_expire_centisecs=100,
                                             dirty_background_ratio=2))
    knobs = ["dirty_ratio", "dirty_background_ratio", "dirty_expire_centisecs",
             "dirty_writeback_centisecs"]
    vals = [5, 2, 100, 50]
    assert [x.split("; ")[1] for x in start] == [f"sysctl -q -w vm.{k}={v}"
                                                  for k, v in zip(knobs, vals)]
    assert all(f"/proc/sys/vm/{k} > /run/pinrig-{k}.orig" in x for k, x in zip(knobs, start))
    assert stop == [f"cat /run/pinrig-{k}.orig > /proc/sys/vm/{k} 2>/dev/null; true"
                    for k in knobs]


def test_pressure_zero_is_a_value():
    start, _ = pressure_commands(Pressure(dirty_background_ratio=0))
    assert start[0].endswith("sysctl -q -w vm.dirty_background_ratio=0")


def test_pressure_sync_storm_is_started_and_stopped():
    start, stop = pressure_commands(Pressure(sync_storm=True, dirty_ratio=1))
    assert start[0].endswith("sysctl -q -w vm.dirty_ratio=1")
    assert len(start) == 2 and "sync" in start[1] and "&" in start[1]
    assert "/run/pinrig-storm.pid" in start[1]
    assert stop[1] == ("kill $(cat /run/pinrig-storm.pid) 2>/dev/null; rm -f /run/pinrig-storm.pid; "
                       "true")


def test_pressure_memcg_wraps_the_workload():
    start, stop = pressure_commands(Pressure(memcg_limit_mb=64))
    assert start == ["echo +memory > /sys/fs/cgroup/cgroup.subtree_control && "
                     "mkdir -p /sys/fs/cgroup/pinrig && echo 64M > /sys/fs/cgroup/pinrig/memory.max"]
    assert stop == ["rmdir /sys/fs/cgroup/pinrig 2>/dev/null; true"]
    argv = in_memcg(["/opt/pinrig/bin/lost-write", "--file", "a b"], Pressure(memcg_limit_mb=64))
    assert argv[:2] == ["sh", "-c"] and argv[4:] == ["/opt/pinrig/bin/lost-write", "--file", "a b"]
    assert in_memcg(["x"], Pressure()) == ["x"]


def test_pressure_drop_caches_loop():
    start, stop = pressure_commands(Pressure(drop_caches=True))
    assert "drop_caches" in start[0] and "/run/pinrig-drop.pid" in stop[0]


# ------------------------------------------------------------------------------- seeds

def test_case_seed_stable():
    assert case_seed(1, "ibverbs-pin/ext4/shared") == case_seed(1, "ibverbs-pin/ext4/shared")
    assert isinstance(case_seed(1, "ibverbs-pin/ext4/shared"), int)


def test_case_seed_known_value():
    import zlib
    want = (7 * 1000003 + zlib.crc32(b"lost-write/xfs/shared")) & 0x7FFFFFFF
    assert case_seed(7, "lost-write/xfs/shared") == want


def test_case_seed_differs_by_case_and_run():
    ids = ["ibverbs-pin/ext4/shared", "ibverbs-pin/ext4/private", "ibverbs-pin/xfs/shared",
           "ibverbs-pin/ext4/shared/ro", "lost-write/ext4/shared", "lost-write/ext4/shared/control"]
    seeds = [case_seed(1, i) for i in ids]
    assert len(set(seeds)) == len(ids)
    assert case_seed(1, ids[0]) != case_seed(2, ids[0])
    assert all(0 <= s < 2**31 for s in seeds + [case_seed(2**40, ids[0])])


# ------------------------------------------------------------------------------- argv

def test_ibverbs_argv_default_rw():
    argv = workload_argv(Case("ibverbs-pin", "ext4", "shared", size=8192), 42)
    assert argv == [f"{GUEST_BIN}/ibverbs-pin", "--file", "/mnt/test/pin.dat", "--size", "8192",
                    "--map", "shared", "--access", "rw", "--device", "rxe0", "--seed", "42"]


def test_ibverbs_argv_variant_ro_private():
    argv = workload_argv(Case("ibverbs-pin", "tmpfs", "private", "ro"), 3)
    assert argv[argv.index("--access") + 1] == "ro"
    assert argv[argv.index("--map") + 1] == "private"
    assert argv[argv.index("--size") + 1] == str(1 << 20)
    assert all(isinstance(a, str) for a in argv)


def test_ibverbs_argv_variant_none():
    argv = workload_argv(Case("ibverbs-pin", "ext4", "shared", "none"), 3)
    assert argv[argv.index("--access") + 1] == "none"


def test_argv_for_every_known_workload_is_a_list_of_strings():
    for wl in ("ibverbs-pin", "lost-write", "odirect-into-mmap", "iouring-fixed"):
        argv = workload_argv(Case(wl, "ext4", "shared"), 9)
        assert argv[0] == f"{GUEST_BIN}/{wl}"
        assert all(isinstance(a, str) for a in argv)
        assert argv[argv.index("--seed") + 1] == "9"


def test_argv_unknown_workload_is_infra_error():
    with pytest.raises(InfraError):
        workload_argv(Case("fio", "ext4", "shared"), 1)


def test_a_workload_that_reports_a_skip_makes_the_case_skipped():
    from pinrig.cases.execute import CaseRun, _take_result
    from pinrig.cases.verdict import RawOutcome
    c = Case("anon-coherency", "tmpfs", "private", "migrate")
    out = '{"pin": "granted", "error": null, "skip": "the guest has 1 NUMA node(s)"}\n'
    run = CaseRun(RawOutcome(c.id))
    assert _take_result(run, c, out, 0) and run.raw.skip_reason == \
        "anon-coherency: the guest has 1 NUMA node(s)"
    failed = CaseRun(RawOutcome(c.id))       # a program that failed is not skipped
    assert not _take_result(failed, c, out.replace('"error": null', '"error": "boom"'), 1)
    assert failed.raw.skip_reason is None and failed.raw.infra_error


def test_fs_setup_btrfs_and_ext4_over_dm_integrity():
    from pinrig.cases.execute import INTEGRITY_DEV
    from pinrig.cases.execute import UNMOUNT as INT_UNMOUNT
    assert fs_setup_commands("btrfs", "raw") == [UMOUNT, "mkfs.btrfs -q -f /dev/pmem0",
                                                 "mount -t btrfs /dev/pmem0 /mnt/test"]
    assert fs_setup_commands("btrfs", "fsdax")[1] == TO_RAW
    cmds = fs_setup_commands("ext4-integrity", "raw")
    assert cmds[0] == INT_UNMOUNT and "integritysetup close pinrig-int" in cmds[0]
    assert cmds[1] == ('dmsetup create pinrig-slice --table "0 262144 linear /dev/pmem0 0" && '
                       'dmsetup mknodes pinrig-slice')
    assert cmds[2] == ("integritysetup format -q --batch-mode --sector-size 4096 "
                       "--integrity-no-journal /dev/mapper/pinrig-slice")
    assert cmds[3] == ("integritysetup open --integrity-no-journal /dev/mapper/pinrig-slice "
                       "pinrig-int")
    assert cmds[4:] == [f"mkfs.ext4 -q -F {INTEGRITY_DEV}", f"mount -t ext4 {INTEGRITY_DEV} /mnt/test"]


def test_mount_existing_reopens_dm_integrity_without_formatting():
    from pinrig.cases.execute import mount_existing_commands
    cmds = mount_existing_commands("ext4-integrity")
    assert not any("format" in c or "mkfs" in c for c in cmds)
    assert "integritysetup open --integrity-no-journal /dev/mapper/pinrig-slice pinrig-int" in cmds[1]
    assert cmds[-1] == "mount -t ext4 /dev/mapper/pinrig-int /mnt/test"
    assert mount_existing_commands("btrfs")[-1] == "mount -t btrfs /dev/pmem0 /mnt/test"


def _device_session(tmp_path, info, config=True):
    from types import SimpleNamespace
    cfg = tmp_path / "config"
    if config:
        cfg.write_text("CONFIG_RDMA_RXE=m\nCONFIG_BLK_DEV_PMEM=m\n")
    art = SimpleNamespace(config=cfg if config else None)
    return SimpleNamespace(info=info, env=SimpleNamespace(art=art))


def test_a_missing_device_of_a_kernel_that_has_it_is_an_infrastructure_error(tmp_path):
    from pinrig.cases import execute
    pin = Case("ibverbs-pin", "ext4", "shared")
    # the real run: rdma_rxe could not get its crc32, the ready line said rdma=none
    sess = _device_session(tmp_path, {"rdma": "none", "pmem": "/dev/pmem0"})
    why = execute.device_setup_failed(pin, sess)
    assert why and why.startswith("no RDMA device in the guest, although the kernel's config")
    sess = _device_session(tmp_path, {"rdma": "rxe0", "pmem": "none"})
    assert execute.device_setup_failed(pin, sess).startswith("no /dev/pmem0 in the guest")
    # all there: nothing to say
    assert execute.device_setup_failed(pin, _device_session(
        tmp_path, {"rdma": "rxe0", "pmem": "/dev/pmem0"})) is None


def test_a_missing_device_stays_a_skip_when_the_kernel_is_unknown_or_siw_brings_it(tmp_path):
    from pinrig.cases import execute
    pin = Case("ibverbs-pin", "ext4", "shared")
    sess = _device_session(tmp_path, {"rdma": "none", "pmem": "/dev/pmem0"}, config=False)
    assert execute.device_setup_failed(pin, sess) is None
    assert execute.needs(pin, sess) == "no RDMA device in the guest (kernel without rdma_rxe?)"
    siw = Case("ibverbs-pin", "ext4", "shared", provider="siw")
    assert execute.device_setup_failed(
        siw, _device_session(tmp_path, {"rdma": "none", "pmem": "/dev/pmem0"})) is None
    # a FakeSession (no env) is a kernel without a known config
    from types import SimpleNamespace
    assert execute.device_setup_failed(pin, SimpleNamespace(info={"rdma": "none"}, env=None)) \
        is None


def test_chained_stops_at_the_first_failure_and_in_turn_runs_everything():
    import subprocess

    from pinrig.cases.execute import chained, in_turn

    def sh(line):
        return subprocess.run(["sh", "-c", line], capture_output=True, text=True)
    r = sh(chained(["echo a", "false", "echo b"]))
    assert r.returncode == 1 and r.stdout == "a\n"
    r = sh(in_turn(["echo a; false", "echo b"]))
    assert r.returncode == 0 and r.stdout == "a\nb\n"
    # lines that end in `;`, run in the background or hold `&&` keep their meaning
    r = sh(chained(["umount /nonexistent 2>/dev/null; true", "(sleep 0) & echo bg",
                    "true && echo c"]))
    assert r.returncode == 0 and r.stdout == "bg\nc\n"


@pytest.mark.parametrize("fs", ["ext4", "xfs", "btrfs", "ext4-dax", "xfs-dax", "tmpfs",
                                "ext4-integrity"])
def test_every_fs_setup_is_one_valid_shell_line(fs):
    import subprocess

    from pinrig.cases.execute import chained
    for state in ("raw", "fsdax"):
        subprocess.run(["sh", "-n", "-c", chained(fs_setup_commands(fs, state))], check=True)
