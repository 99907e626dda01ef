"""pinrig.runs.runner: which cases share a boot, and the run's exit code."""
import pytest

from pinrig.cases.verdict import Verdict
from pinrig.cases.workloads import needs_own_guest
from pinrig.config import Case


def c(workload, fs, mapping="shared", variant=None):
    return Case(workload, fs, mapping, variant)


def ids(groups):
    return [[x.id for x in g] for g in groups]


def test_shared_cases_one_group_in_fs_order(runner_module):
    cases = [c("ibverbs-pin", fs) for fs in ("xfs-dax", "ext4", "tmpfs", "ext4-dax", "xfs")]
    assert ids(runner_module.group_sessions(cases)) == [[
        "ibverbs-pin/tmpfs/shared", "ibverbs-pin/ext4/shared", "ibverbs-pin/xfs/shared",
        "ibverbs-pin/ext4-dax/shared", "ibverbs-pin/xfs-dax/shared"]]


def test_order_is_stable_within_a_filesystem(runner_module):
    cases = [c("ibverbs-pin", "ext4", "private"), c("odirect-into-mmap", "xfs"),
             c("ibverbs-pin", "xfs"), c("ibverbs-pin", "ext4", "shared", "ro"),
             c("ibverbs-pin", "ext4")]
    assert ids(runner_module.group_sessions(cases)) == [[
        "ibverbs-pin/ext4/private", "ibverbs-pin/ext4/shared/ro", "ibverbs-pin/ext4/shared",
        "odirect-into-mmap/xfs/shared", "ibverbs-pin/xfs/shared"]]


def test_lost_write_cases_each_alone_after_the_shared_group(runner_module):
    cases = [c("lost-write", "ext4"), c("ibverbs-pin", "xfs"), c("lost-write", "xfs"),
             c("ibverbs-pin", "tmpfs"), c("lost-write", "ext4", variant="control")]
    assert ids(runner_module.group_sessions(cases)) == [
        ["ibverbs-pin/tmpfs/shared", "ibverbs-pin/xfs/shared"],
        ["lost-write/ext4/shared"], ["lost-write/xfs/shared"],
        ["lost-write/ext4/shared/control"]]


def test_only_own_guest_cases(runner_module):
    cases = [c("lost-write", "xfs"), c("lost-write", "ext4")]
    assert ids(runner_module.group_sessions(cases)) == [["lost-write/xfs/shared"],
                                                        ["lost-write/ext4/shared"]]


def test_no_cases(runner_module):
    assert runner_module.group_sessions([]) == []


def test_every_case_lands_in_exactly_one_group(runner_module):
    cases = [c(w, fs, m) for w in ("ibverbs-pin", "lost-write", "odirect-into-mmap",
                                   "iouring-fixed")
             for fs in ("ext4", "xfs", "tmpfs", "ext4-dax", "xfs-dax")
             for m in ("shared", "private")]
    groups = runner_module.group_sessions(cases)
    flat = [x.id for g in groups for x in g]
    assert sorted(flat) == sorted(x.id for x in cases)
    assert all(len(g) == 1 for g in groups[1:])


@pytest.mark.parametrize("case,own", [
    (c("lost-write", "ext4"), True),
    (c("lost-write", "xfs", variant="control"), True),
    (c("iouring-fixed", "ext4", "shared"), True),
    (c("iouring-fixed", "ext4", "private"), False),
    (c("ibverbs-pin", "ext4", "shared"), False),
    (c("odirect-into-mmap", "xfs", "shared"), False),
])
def test_needs_own_guest(runner_module, case, own):
    assert needs_own_guest(case) is own


@pytest.mark.parametrize("verdicts,code", [
    ([], 0),
    (["ok", "refused", "skipped"], 0),
    (["ok", "error"], 2),
    (["ok", "crash"], 1),
    (["data-loss", "error"], 1),
    (["unexpected"], 1),
])
def test_run_outcome_exit_code(runner_module, tmp_path, verdicts, code):
    from pinrig.results.rundir import RunDir
    out = runner_module.RunOutcome(RunDir(tmp_path),
                                   [Verdict(f"w/ext4/shared/{i}", v) for i, v in
                                    enumerate(verdicts)])
    assert out.exit_code == code


def test_jobs_split_shared_cases_into_contiguous_slices(runner_module):
    cases = [c("ibverbs-pin", fs) for fs in ("xfs-dax", "ext4", "tmpfs", "ext4-dax", "xfs")] + \
        [c("lost-write", "ext4")]
    groups = ids(runner_module.group_sessions(cases, jobs=2))
    assert groups == [["ibverbs-pin/tmpfs/shared", "ibverbs-pin/ext4/shared",
                       "ibverbs-pin/xfs/shared"],
                      ["ibverbs-pin/ext4-dax/shared", "ibverbs-pin/xfs-dax/shared"],
                      ["lost-write/ext4/shared"]]
    # more jobs than cases: one case per guest, none empty
    assert all(ids(runner_module.group_sessions(cases[:2], jobs=8)))
    assert len(runner_module.group_sessions(cases[:2], jobs=8)) == 2


def test_default_jobs_is_at_least_one(runner_module):
    assert runner_module.default_jobs() >= 1
