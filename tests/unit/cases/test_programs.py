"""Build the guest workload programs on the host and cross-check them against pinrig.cases.integrity.

Only compilation and the host-safe paths run here (no rxe device on the host): usage errors,
blocksum, the "no such RDMA device" failure, and best-effort smoke runs of the file paths.
"""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pinrig.cases.integrity import BLOCK, block_checksums, pattern_bytes, verify

REPO = Path(__file__).resolve().parents[3]
WORKLOADS = REPO / "workloads"
PROGRAMS = ["ibverbs-pin", "lost-write", "odirect-into-mmap", "iouring-fixed", "blocksum",
            "anon-coherency", "stable-pages", "reflink-pin", "crash-class"]
# objects compiled once into OUT and linked into every program (verbs_util only into the verbs ones)
SHARED_OBJECTS = ["common.o", "json.o", "report.o", "cli.o", "verbs_util.o", "rdma_loop.o"]
REQUIRED = {
    "gcc": None,
    "make": None,
    "/usr/include/infiniband/verbs.h": "libibverbs-dev",
    "/usr/include/liburing.h": "liburing-dev",
}


def _missing():
    out = []
    for what, pkg in REQUIRED.items():
        if pkg is None:
            if shutil.which(what) is None:
                out.append(what)
        elif not Path(what).exists():
            out.append(f"{what} (apt install {pkg})")
    return out


@pytest.fixture(scope="module")
def bindir(tmp_path_factory):
    missing = _missing()
    if missing:
        pytest.skip("cannot build guest workloads, missing: " + ", ".join(missing))
    out = tmp_path_factory.mktemp("workloads-build")
    proc = subprocess.run(["make", "-C", str(WORKLOADS), f"OUT={out}"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"make failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def run(bindir, prog, *args, timeout=60):
    return subprocess.run([str(bindir / prog), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def one_json(proc):
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"expected exactly one JSON line on stdout, got: {proc.stdout!r}"
    return json.loads(lines[0])


COMMON_KEYS = {"workload", "pin", "errno", "errno_num", "file", "size", "block_size"}


def test_all_programs_built(bindir):
    for prog in PROGRAMS:
        p = bindir / prog
        assert p.is_file(), prog
        assert p.stat().st_mode & 0o111, prog
    # OUT holds the programs and their object files, nothing else (the host copies what is not
    # an object into the guest)
    names = [p.name for p in bindir.iterdir()]
    assert sorted(n for n in names if not n.endswith(".o")) == sorted(PROGRAMS)
    assert sorted(n for n in names if n.endswith(".o")) == sorted(
        SHARED_OBJECTS + [prog + ".o" for prog in PROGRAMS])


def test_make_is_incremental(bindir):
    """Right after the build, OUT is up to date: the shared objects are kept, not rebuilt."""
    proc = subprocess.run(["make", "-q", "-C", str(WORKLOADS), f"OUT={bindir}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("seed,tag,letter,size", [
    (7, 1, "A", 65536),
    (7, 2, "B", 65536),
    (123456789, 1, "A", 3 * BLOCK),
    (0xFFFFFFFFFFFFFFFF, 2, "B", BLOCK),
    (7, 1, "A", 10000),           # trailing partial block
])
def test_blocksum_pattern_matches_python(bindir, seed, tag, letter, size):
    proc = run(bindir, "blocksum", "--pattern", letter, "--seed", seed, "--size", size)
    assert proc.returncode == 0, proc.stderr
    out = one_json(proc)
    assert out["blocks"] == block_checksums(pattern_bytes(seed, tag, 0, size))
    assert out["size"] == size
    assert out["block_size"] == BLOCK
    assert out["file"] is None
    assert COMMON_KEYS <= out.keys()


def test_blocksum_file_matches_python(bindir, tmp_path):
    data = pattern_bytes(99, 2, 0, 5 * BLOCK) + b"tail bytes"
    f = tmp_path / "data.bin"
    f.write_bytes(data)
    proc = run(bindir, "blocksum", "--file", f)
    assert proc.returncode == 0, proc.stderr
    out = one_json(proc)
    assert out["file"] == str(f)
    assert out["size"] == len(data)
    assert out["block_size"] == BLOCK
    assert out["blocks"] == block_checksums(data)
    assert len(out["blocks"]) == 6


def test_blocksum_file_size_limit_and_short_file(bindir, tmp_path):
    data = pattern_bytes(1, 1, 0, 4 * BLOCK)
    f = tmp_path / "data.bin"
    f.write_bytes(data)
    out = one_json(run(bindir, "blocksum", "--file", f, "--size", 2 * BLOCK))
    assert out["blocks"] == block_checksums(data[:2 * BLOCK])
    # a file shorter than --size: fewer blocks, which verify() counts as lost
    out = one_json(run(bindir, "blocksum", "--file", f, "--size", 8 * BLOCK))
    assert out["size"] == 4 * BLOCK
    r = verify(block_checksums(pattern_bytes(1, 1, 0, 8 * BLOCK)), out["blocks"])
    assert (r.blocks_lost, r.first_bad) == (4, 4 * BLOCK)


def test_blocksum_empty_file(bindir, tmp_path):
    f = tmp_path / "empty"
    f.write_bytes(b"")
    out = one_json(run(bindir, "blocksum", "--file", f))
    assert out["blocks"] == [] and out["size"] == 0


def test_blocksum_missing_file_is_infrastructure_error(bindir, tmp_path):
    proc = run(bindir, "blocksum", "--file", tmp_path / "nope")
    assert proc.returncode == 1
    out = one_json(proc)
    assert "nope" in out["error"] and out["errno"] == "ENOENT"


@pytest.mark.parametrize("prog", PROGRAMS)
def test_bad_option_prints_usage_and_exits_2(bindir, prog):
    proc = run(bindir, prog, "--no-such-option")
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
    assert proc.stderr.startswith(prog + ":")
    out = one_json(proc)
    assert out["workload"] == prog
    assert out["error"].startswith("usage:")


@pytest.mark.parametrize("prog", PROGRAMS)
def test_help_exits_0(bindir, prog):
    proc = run(bindir, prog, "--help")
    assert proc.returncode == 0
    assert "usage:" in proc.stdout


# the shared flags are parsed in one place (workloads/src/cli.c): same messages everywhere
@pytest.mark.parametrize("prog,args,error", [
    *[(prog, ["--seed", "x"], "--seed must be an unsigned integer: 'x'") for prog in PROGRAMS],
    *[(prog, ["--size", "100"], "--size must be a positive multiple of 4096 up to 1G: '100'")
      for prog in PROGRAMS if prog != "blocksum"],
    ("blocksum", ["--size", "1X"], "--size must be an unsigned integer: '1X'"),
    *[(prog, ["--map", "x"], "--map must be shared or private: 'x'")
      for prog in ("ibverbs-pin", "iouring-fixed")],
    *[(prog, ["--timeout", "0"], "--timeout must be 1..3600 seconds: '0'")
      for prog in ("lost-write", "iouring-fixed")],
    ("lost-write", ["--port", "256"], "--port must be 1..255: '256'"),
    *[(prog, ["stray"], "unexpected argument 'stray'") for prog in PROGRAMS],
])
def test_shared_flag_errors(bindir, prog, args, error):
    proc = run(bindir, prog, *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"{prog}: {error}\n")
    assert one_json(proc)["error"] == "usage: " + error


@pytest.mark.parametrize("prog,args", [
    ("ibverbs-pin", ["--file", "x", "--size", "100"]),
    ("ibverbs-pin", ["--map", "sideways", "--file", "x"]),
    ("ibverbs-pin", ["--access", "wx", "--file", "x"]),
    ("ibverbs-pin", ["--size", "4096"]),                      # no --file, no --anon
    ("ibverbs-pin", ["--anon", "--file", "x"]),
    ("lost-write", ["--size", "1M"]),                         # no --file
    ("lost-write", ["--file", "x", "--gid-index", "abc"]),
    ("odirect-into-mmap", ["--src", "a"]),
    ("odirect-into-mmap", ["--src", "a", "--dst", "a"]),
    ("iouring-fixed", ["--file", "a", "--src", "b", "--map", "x"]),
    ("blocksum", []),
    ("blocksum", ["--pattern", "C", "--seed", "1", "--size", "4096"]),
    ("blocksum", ["--pattern", "A", "--size", "4096"]),       # no --seed
    ("blocksum", ["--file", "x", "stray"]),
    ("anon-coherency", []),                                   # no --trigger
    ("anon-coherency", ["--trigger", "swap"]),
    ("anon-coherency", ["--trigger", "ksm", "--size", "1M"]),  # not a multiple of 2M
    ("anon-coherency", ["--trigger", "uprobe"]),              # uprobe needs --file
    ("anon-coherency", ["--trigger", "ksm", "--file", "x"]),  # and only uprobe takes one
    ("anon-coherency", ["--trigger", "ksm", "--wait", "0"]),
])
def test_bad_arguments_exit_2(bindir, prog, args):
    proc = run(bindir, prog, *args)
    assert proc.returncode == 2, proc.stderr
    assert "usage:" in proc.stderr


@pytest.mark.parametrize("prog", ["ibverbs-pin", "lost-write", "anon-coherency"])
def test_verbs_nonexistent_device_is_infrastructure_error(bindir, tmp_path, prog):
    size = 65536 if prog != "anon-coherency" else 2 << 20
    args = ["--file", tmp_path / "f.bin"] if prog != "anon-coherency" else ["--trigger", "control"]
    proc = run(bindir, prog, *args, "--device", "nonexistent", "--size", size)
    assert proc.returncode == 1, proc.stderr
    out = one_json(proc)
    assert out["workload"] == prog
    assert out["error"]
    assert out["pin"] == "n/a"
    assert COMMON_KEYS <= out.keys()
    assert out["block_size"] == BLOCK and out["size"] == size


# --- best-effort smoke runs of the file paths on the host ---------------------------------

def test_odirect_into_mmap_host_smoke(bindir, tmp_path):
    proc = run(bindir, "odirect-into-mmap", "--src", tmp_path / "src", "--dst", tmp_path / "dst",
               "--size", 64 * 1024, "--seed", 11, "--iterations", 3, "--pressure")
    out = one_json(proc)
    if proc.returncode == 1 and "O_DIRECT" in (out.get("error") or ""):
        pytest.skip(f"host filesystem lacks O_DIRECT: {out['error']}")
    assert proc.returncode == 0, proc.stderr
    assert out["pin"] == "n/a" and out["errno"] is None
    assert out["expected"] == block_checksums(pattern_bytes(11, 1, 0, 64 * 1024))
    assert out["mapping_matching_blocks"] == 16
    assert [s["stage"] for s in out["stages"]] == ["mapped", "after_reads", "after_fsync"]
    on_disk = one_json(run(bindir, "blocksum", "--file", tmp_path / "dst"))["blocks"]
    assert verify(out["expected"], on_disk).blocks_lost == 0


@pytest.mark.parametrize("mapping", ["shared", "private"])
def test_iouring_fixed_host_smoke(bindir, tmp_path, mapping):
    f = tmp_path / "file"
    proc = run(bindir, "iouring-fixed", "--file", f, "--src", tmp_path / "src",
               "--size", 64 * 1024, "--seed", 5, "--map", mapping)
    out = one_json(proc)
    if proc.returncode == 1 and "io_uring_queue_init" in (out.get("error") or ""):
        pytest.skip(f"io_uring unavailable on this host: {out['error']}")
    assert proc.returncode == 0, proc.stderr
    assert out["pin"] in ("granted", "refused")
    if out["pin"] == "refused":
        assert out["errno"] and out["errno_num"] > 0
    else:
        assert out["read_landed"] is True
    tag = 2 if (mapping == "shared" and out["pin"] == "granted") else 1
    assert out["expected"] == block_checksums(pattern_bytes(5, tag, 0, 64 * 1024))
    on_disk = one_json(run(bindir, "blocksum", "--file", f))["blocks"]
    assert verify(out["expected"], on_disk).blocks_lost == 0


# --------------------------------------------------------- stable-pages (issue 15 items 2, 6)

def test_stable_pages_cpu_writer_then_check_classifies_every_block(bindir, tmp_path):
    """The control writer on the host's own filesystem: every block read back is one
    generation (consistent) after the writer stopped; --check finds the same."""
    f = tmp_path / "s.dat"
    r = one_json(run(bindir, "stable-pages", "--file", f, "--size", "64K", "--writer", "cpu",
                     "--duration", "1"))
    assert r["error"] is None and r["writer"] == "cpu" and r["pin"] == "n/a"
    assert r["check_passes"] >= 1 and r["writer_passes"] >= 1
    assert r["after_stop"]["consistent"] == 16 and r["after_stop"]["unreadable"] == 0
    c = one_json(run(bindir, "stable-pages", "--check", "--file", f, "--size", "64K"))
    assert c["now"]["consistent"] == 16 and c["now"]["gen_max"] >= 2


def test_stable_pages_check_names_torn_foreign_and_missing_blocks(bindir, tmp_path):
    f = tmp_path / "s.dat"
    one_json(run(bindir, "stable-pages", "--file", f, "--size", "16K", "--writer", "cpu",
                 "--duration", "1"))
    data = bytearray(f.read_bytes())
    data[4096 + 2048:4096 + 2056] = b"\x00" * 8        # block 1: torn (word 256 changed)
    data[8192:12288] = b"\x00" * 4096                   # block 2: foreign (zeros)
    f.write_bytes(bytes(data[:12288]))                  # block 3: missing (short file)
    c = one_json(run(bindir, "stable-pages", "--check", "--file", f, "--size", "16K"))
    now = c["now"]
    assert (now["consistent"], now["torn"], now["foreign"], now["unreadable"]) == (1, 1, 1, 1)
    assert now["first_bad_block"] == 1 and now["first_errno"] == "ENODATA"


def test_stable_pages_and_reflink_pin_usage_errors_are_one_json_line(bindir):
    p = run(bindir, "stable-pages", "--file", "/x", "--writer", "gpu")
    assert p.returncode == 2 and "--writer must be rdma, odirect or cpu" in one_json(p)["error"]
    p = run(bindir, "reflink-pin", "--file", "/x")
    assert p.returncode == 2 and "--clone PATH is required" in one_json(p)["error"]


def test_crash_class_usage_errors_and_a_missing_device_are_one_json_line(bindir, tmp_path):
    p = run(bindir, "crash-class", "--file", "/x", "--trigger", "earthquake")
    assert p.returncode == 2 and "--trigger must be one of control reclaim" in one_json(p)["error"] and "splice-steal" in one_json(p)["error"]
    p = run(bindir, "crash-class", "--trigger", "pageout")
    assert p.returncode == 2 and "--file PATH is required" in one_json(p)["error"]
    p = run(bindir, "crash-class", "--file", "/x", "--trigger", "reclaim", "--rounds", "99")
    assert p.returncode == 2 and "--rounds must be 1..16" in one_json(p)["error"]
    # no RDMA device here: an infrastructure failure, reported with the trigger and its rounds
    p = run(bindir, "crash-class", "--file", str(tmp_path / "f"), "--trigger", "reclaim",
            "--device", "no-such-device")
    d = one_json(p)
    assert p.returncode == 1 and d["error"] and d["pin"] == "n/a"
    assert d["crash_class"]["trigger"] == "reclaim" and d["crash_class"]["rounds"] == 8
    assert d["crash_class"]["snapshots"] == [] and d["expected"] is None
