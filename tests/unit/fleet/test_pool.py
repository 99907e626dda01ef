"""pinrig.fleet.pool: pool YAML validation, jobs per host, placement order, failover bookkeeping."""
import json
import threading
from pathlib import Path

import pytest

from pinrig import paths
from pinrig.config import Case
from pinrig.errors import UserError
from pinrig.fleet import pool as hosts
from pinrig.fleet.pool import LOCAL, Scheduler, load_pool, make_tasks, parse_memory

GOOD_HOST = """  - name: a
    address: 192.0.2.1
    user: root
    key: id_test
    cores: 8
    memory: 16G
    kvm: true
    workdir: /var/lib/pinrig
"""


def pool_file(tmp_path, body: str, name="p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(body)
    (tmp_path / "id_test").write_text("not a real key\n")
    return p


def err(tmp_path, body) -> str:
    with pytest.raises(UserError) as e:
        load_pool(pool_file(tmp_path, body))
    return str(e.value)


# ---------------------------------------------------------------------------- YAML

def test_pool_loads_with_defaults_and_relative_key(tmp_path):
    p = load_pool(pool_file(tmp_path, "local: true\nhosts:\n" + GOOD_HOST))
    assert p.name == "p" and p.local and p.participants() == [LOCAL, "a"]
    h = p.host("a")
    assert (h.address, h.port, h.user, h.cores, h.memory_mb, h.kvm) == \
        ("192.0.2.1", 22, "root", 8, 16384, True)
    assert h.key == (tmp_path / "id_test").resolve()
    assert h.workdir == "/var/lib/pinrig" and h.host_key is None
    assert h.slots == 4 and h.target == "root@192.0.2.1:22"


def test_pool_key_with_a_nul_byte_is_one_clear_line(tmp_path):
    # found by test_fuzz_inputs once more YAML files shifted its random stream
    msg = err(tmp_path, "hosts:\n" + GOOD_HOST.replace("key: id_test", 'key: "id\\0x"'))
    assert msg.endswith("hosts[0].key: a path cannot contain a NUL byte"), msg


def test_pool_by_name_from_configs_hosts(tmp_path, monkeypatch):
    d = tmp_path / "configs"
    (d / "hosts").mkdir(parents=True)
    pool_file(d / "hosts", "hosts:\n" + GOOD_HOST, "lab.yaml")
    monkeypatch.setattr(paths, "CONFIGS_DIR", d)
    assert load_pool("lab").name == "lab"
    with pytest.raises(UserError, match="unknown host pool 'nope' \\(known: lab\\)"):
        load_pool("nope")


def test_repo_example_pool_is_valid():
    p = load_pool(paths.CONFIGS_DIR / "hosts" / "example.yaml")
    assert p.local and [h.name for h in p.hosts] == ["kvm-a", "tcg-b"]
    assert p.host("kvm-a").host_key.startswith("ssh-ed25519 ")


@pytest.mark.parametrize("body,msg", [
    ("hosts: []\n", "p.yaml: hosts: no hosts and local: false"),
    ("hosts:\n  - 3\n", "p.yaml: hosts[0]: must be a mapping"),
    ("hosts:\n" + GOOD_HOST.replace("    cores: 8\n", ""), "p.yaml: hosts[0].cores: is required"),
    ("hosts:\n" + GOOD_HOST.replace("cores: 8", "cores: eight"),
     "p.yaml: hosts[0].cores: must be int, got str 'eight'"),
    ("hosts:\n" + GOOD_HOST.replace("cores: 8", "cores: 0"), "hosts[0].cores: must be at least 1"),
    ("hosts:\n" + GOOD_HOST.replace("memory: 16G", "memory: 16"),
     "p.yaml: hosts[0].memory: must be a size with a unit"),
    ("hosts:\n" + GOOD_HOST.replace("memory: 16G", "memory: 1G"),
     "p.yaml: hosts[0].memory: 1G: one guest needs 3 GiB"),
    ("hosts:\n" + GOOD_HOST.replace("    memory: 16G\n", ""), "hosts[0].memory: is required"),
    ("hosts:\n" + GOOD_HOST.replace("kvm: true", "kvm: yes please"),
     "p.yaml: hosts[0].kvm: must be bool"),
    ("hosts:\n" + GOOD_HOST.replace("/var/lib/pinrig", "work"),
     "p.yaml: hosts[0].workdir: 'work': must be an absolute path on the host"),
    ("hosts:\n" + GOOD_HOST + "    colour: red\n", "p.yaml: hosts[0].colour: unknown field"),
    ("hosts:\n" + GOOD_HOST + "    port: 70000\n", "hosts[0].port: 70000 is not a TCP port"),
    ("hosts:\n" + GOOD_HOST + "    jobs: 0\n", "hosts[0].jobs: must be at least 1"),
    ("hosts:\n" + GOOD_HOST + "    host_key: AAAA\n", "hosts[0].host_key: must look like"),
    ("hosts:\n" + GOOD_HOST + GOOD_HOST.replace("192.0.2.1", "192.0.2.2"),
     "p.yaml: hosts[1].name: duplicate host name 'a' (also hosts[0])"),
    ("hosts:\n" + GOOD_HOST + GOOD_HOST.replace("name: a", "name: b"),
     "p.yaml: hosts[1]: same address, port and workdir as hosts[0]"),
    ("hosts:\n" + GOOD_HOST.replace("name: a", "name: local"), "hosts[0].name: 'local' is"),
    ("hosts:\n" + GOOD_HOST.replace("name: a", "name: 'a b'"), "hosts[0].name: 'a b': letters"),
    ("local: 1\nhosts:\n" + GOOD_HOST, "p.yaml: local: must be bool"),
    ("local: true\nlocal_jobs: 0\n", "p.yaml: local_jobs: must be at least 1"),
    ("pool: x\nhosts:\n" + GOOD_HOST, "p.yaml: pool: unknown field"),
    ("- a\n", "p.yaml: top level must be a mapping"),
    ("hosts: [\n", "p.yaml: line"),
])
def test_pool_errors_name_file_and_field(tmp_path, body, msg):
    assert msg in err(tmp_path, body)


def test_same_address_other_workdir_is_two_hosts(tmp_path):
    body = "hosts:\n" + GOOD_HOST + GOOD_HOST.replace("name: a", "name: b").replace(
        "/var/lib/pinrig", "/srv/pinrig")
    assert [h.name for h in load_pool(pool_file(tmp_path, body)).hosts] == ["a", "b"]


def test_local_only_pool(tmp_path):
    p = load_pool(pool_file(tmp_path, "local: true\nlocal_jobs: 3\n"))
    assert p.participants() == [LOCAL] and p.slots() == {LOCAL: 3}


@pytest.mark.parametrize("text,mb", [("16G", 16384), ("2048M", 2048), ("1.5GiB", 1536),
                                     ("1T", 1048576), ("512 mb", 512)])
def test_parse_memory(text, mb):
    assert parse_memory(text) == mb


@pytest.mark.parametrize("bad", [16, "16", "16Q", True, None, "G"])
def test_parse_memory_rejects(bad):
    with pytest.raises(ValueError):
        parse_memory(bad)


# ---------------------------------------------------------------------------- jobs

@pytest.mark.parametrize("cores,mem,jobs", [(2, 4096, 1), (16, 65536, 8), (16, 8192, 2),
                                            (1, 3072, 1), (64, 3072, 1), (4, 1024, 1)])
def test_jobs_for_cores_and_memory(cores, mem, jobs):
    assert hosts.jobs_for(cores, mem) == jobs


def test_slots_per_host_and_override(tmp_path):
    body = "local: true\nhosts:\n" + GOOD_HOST + GOOD_HOST.replace("name: a", "name: b") \
        .replace("192.0.2.1", "192.0.2.2").replace("cores: 8", "cores: 4") + "    jobs: 3\n"
    p = load_pool(pool_file(tmp_path, body))
    assert p.slots(local_default=2) == {LOCAL: 2, "a": 4, "b": 3}
    assert p.slots(jobs=1, local_default=2) == {LOCAL: 1, "a": 1, "b": 1}


# ---------------------------------------------------------------------------- placement

def C(fs, workload="ibverbs-pin", mapping="shared", variant=None):
    return Case(workload, fs, mapping, variant)


def own(case):
    return case.workload == "lost-write"


def test_make_tasks_puts_crash_cases_and_big_groups_first():
    groups = [(1, [C("ext4")]), (1, [C("tmpfs"), C("xfs"), C("ext4-dax")]),
              (1, [C("ext4", "lost-write")]), (2, [C("ext4")])]
    tasks = make_tasks(groups, own)
    assert [t.label() for t in tasks] == [
        "lost-write/ext4/shared",                       # two boots
        "ibverbs-pin/tmpfs/shared, ibverbs-pin/xfs/shared, ibverbs-pin/ext4-dax/shared",
        "ibverbs-pin/ext4/shared",                      # ties keep the runner's order
        "ibverbs-pin/ext4/shared #2"]
    assert tasks[0].own_guest and not tasks[1].own_guest
    assert sorted(t.id for t in tasks) == [0, 1, 2, 3]


def test_take_hands_out_in_order_and_ends_when_all_done():
    tasks = make_tasks([(1, [C("ext4")]), (1, [C("tmpfs")])], own)
    s = Scheduler(tasks, ["a", "b"])
    t1, t2 = s.take("a"), s.take("b")
    assert (t1.cases, t2.cases) == ((C("ext4"),), (C("tmpfs"),))
    assert s.take("a", block=False) is None            # nothing queued, b still running
    s.finish("a", t1)
    s.finish("b", t2)
    assert s.take("a") is None and s.leftover() == []


def test_failover_requeues_unwritten_cases_at_the_front_and_keeps_finished():
    group = [C("tmpfs"), C("ext4"), C("xfs")]
    s = Scheduler(make_tasks([(1, group), (1, [C("ext4", variant="x")])], own), ["a", "b"])
    ta = s.take("a")
    assert ta.cases == tuple(group)
    s.record("a", "ibverbs-pin/tmpfs/shared")
    fail = s.fail_host("a", "host a: ssh connection lost", ta, ("ibverbs-pin/tmpfs/shared",))
    assert fail.kept == ["ibverbs-pin/tmpfs/shared"]
    assert fail.requeued == ["ibverbs-pin/ext4/shared", "ibverbs-pin/xfs/shared"]
    assert fail.task == "ibverbs-pin/tmpfs/shared, ibverbs-pin/ext4/shared, ibverbs-pin/xfs/shared"
    assert s.take("a") is None                         # a failed host gets nothing more
    tb = s.take("b")
    assert tb.cases == (C("ext4"), C("xfs")) and tb.lost_on == ("a",) and tb.id == 2
    assert s.done == {"a": ["ibverbs-pin/tmpfs/shared"]}
    d = fail.to_dict()
    assert d["host"] == "a" and d["reason"] == "host a: ssh connection lost" and d["when"]


def test_second_task_lost_on_same_host_joins_the_first_failure():
    s = Scheduler(make_tasks([(1, [C("ext4")]), (1, [C("xfs")]), (1, [C("tmpfs")])], own),
                  ["a", "b"])
    t1, t2 = s.take("a"), s.take("a")
    s.fail_host("a", "first reason", t1)
    f = s.fail_host("a", "second reason", t2)
    assert f.reason == "first reason" and len(f.requeued) == 2 and list(s.failed) == ["a"]
    assert [len(t.cases) for t in s.queue] == [1, 1, 1]


def test_crash_case_task_moves_whole():
    s = Scheduler(make_tasks([(1, [C("ext4", "lost-write")])], own), ["a", "b"])
    t = s.take("a")
    s.fail_host("a", "gone", t, ())
    t2 = s.take("b")
    assert t2.own_guest and t2.cases == t.cases


def test_everything_failed_leaves_tasks_over():
    s = Scheduler(make_tasks([(1, [C("ext4")]), (1, [C("xfs")])], own), ["a"])
    t = s.take("a")
    s.fail_host("a", "gone", t)
    assert s.take("a") is None
    assert len(s.leftover()) == 2


def test_failing_before_any_task_requeues_nothing():
    s = Scheduler(make_tasks([(1, [C("ext4")])], own), ["a", "b"])
    f = s.fail_host("b", "cannot connect")
    assert f.task is None and f.requeued == [] and s.take("a").cases == (C("ext4"),)


def test_waiting_worker_picks_up_a_requeued_task():
    """b is idle-waiting while a runs the last task; a drops out: b must get the task."""
    s = Scheduler(make_tasks([(1, [C("ext4")])], own), ["a", "b"])
    ta = s.take("a")
    got = []
    th = threading.Thread(target=lambda: got.append(s.take("b")))
    th.start()
    th.join(0.3)
    assert th.is_alive()                      # blocked: a's task may come back
    s.fail_host("a", "gone", ta)
    th.join(5)
    assert got and got[0].cases == (C("ext4"),)


def test_stop_wakes_and_ends_everyone():
    s = Scheduler(make_tasks([(1, [C("ext4")]), (1, [C("xfs")])], own), ["a", "b"])
    s.take("a")
    s.stop()
    assert s.take("b") is None
    assert len(s.leftover()) == 1


# ---------------------------------------------------------------------------- CLI

def test_cli_hosts_check_bad_pool_names_file_and_field(tmp_path, capsys, keep_signal_handlers):
    from pinrig import cli
    p = pool_file(tmp_path, "hosts:\n" + GOOD_HOST.replace("memory: 16G", "memory: lots"))
    assert cli.main(["hosts", "check", str(p)]) == 2
    assert "p.yaml: hosts[0].memory: must be a size with a unit" in capsys.readouterr().err


def test_cli_run_with_bad_pool_fails_before_any_kernel_work(tmp_path, capsys, monkeypatch,
                                                           keep_signal_handlers):
    from pinrig import cli
    from pinrig.runs import runner
    monkeypatch.setattr(runner, "prepare_env", lambda *a, **k: pytest.fail("kernel work"))
    p = pool_file(tmp_path, "hosts: []\n")
    assert cli.main(["run", "debian-6.1", "--suite", "smoke", "--hosts", str(p)]) == 2
    assert "no hosts and local: false" in capsys.readouterr().err


def test_cli_hosts_check_exit_codes(tmp_path, capsys, monkeypatch, keep_signal_handlers):
    from pinrig import cli
    from pinrig.fleet import checks
    p = pool_file(tmp_path, "hosts:\n" + GOOD_HOST)
    good = checks.HostCheck("a", "root@192.0.2.1:22", facts={"qemu": "QEMU 7.2"})
    monkeypatch.setattr(checks, "check_pool", lambda pool, jobs, local_jobs: [good])
    assert cli.main(["hosts", "check", str(p)]) == 0
    assert capsys.readouterr().out.split() == ["a", "root@192.0.2.1:22", "ok", "QEMU", "7.2"]
    bad = checks.HostCheck("a", "root@192.0.2.1:22")
    bad.problem("qemu-img missing: apt-get install qemu-utils")
    monkeypatch.setattr(checks, "check_pool", lambda pool, jobs, local_jobs: [bad])
    assert cli.main(["hosts", "check", str(p), "--json"]) == 2
    out = capsys.readouterr()
    assert json.loads(out.out)["hosts"][0]["problems"] == ["qemu-img missing: apt-get install "
                                                           "qemu-utils"]
    assert "unusable host(s) in pool p: a" in out.err
