"""rig lava export: the runner's grouping, the rig's machine shape, and LAVA's own schema."""
import io
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from pinrig.cases.execute import case_seed
from pinrig.config import load_suite
from pinrig.errors import UserError
from pinrig.guest import qemu
from pinrig.lava import export, guestside, local
from pinrig.lava.validate import schema_errors, validate_jobs
from pinrig.paths import CONFIGS_DIR
from pinrig.runs.runner import group_sessions

SUITES = sorted(p.stem for p in (CONFIGS_DIR / "suites").glob("*.yaml"))
ARTS = {k: export.Artifact(f"https://lab.example/a/{k}", "ab" * 32) for k in export.ARTIFACTS}


def jobs_of(suite_name: str, jobs: int = 1) -> list:
    suite = load_suite(suite_name)
    meta = {"kernel": "debian-6.1", "suite": suite.name, "seed": suite.seed}
    return [export.job_definition(g, ARTS, export.machine_shape(), meta)
            for g in export.plan(suite, jobs)]


@pytest.mark.parametrize("name", SUITES)
@pytest.mark.parametrize("jobs", [1, 3])
def test_one_job_per_guest_of_the_runner(name, jobs):
    suite = load_suite(name)
    groups = group_sessions(list(suite.cases), jobs)
    plan = export.plan(suite, jobs)
    assert [[c.id for _n, c in g.cases] for g in plan] == [[c.id for c in grp] for grp in groups]
    assert sorted(n for g in plan for n, _c in g.cases) == list(range(len(suite.cases)))


def test_every_job_of_every_suite_passes_lavas_schema():
    docs = [d for name in SUITES for jobs in (1, 2) for d in jobs_of(name, jobs)]
    assert len(docs) > len(SUITES)
    # not skipped when lava-common is missing: schema_errors raises MissingTool then
    assert schema_errors(docs) == [None] * len(docs)


def test_a_job_lava_refuses_is_named_with_the_reason():
    bad = jobs_of("smoke")[0]
    bad["actions"][2]["test"]["definitions"][0]["name"] = "has space"
    del bad["timeouts"]
    errors = schema_errors([jobs_of("smoke")[0], bad])
    assert errors[0] is None and "timeouts" in errors[1]
    with pytest.raises(UserError, match="smoke.yaml: refused by LAVA's job schema"):
        validate_jobs([bad], ["smoke.yaml"])


def test_crash_and_verify_is_two_boots_on_one_deployed_pmem_file():
    (job,) = jobs_of("lost-write-once")
    kinds = [next(iter(a)) for a in job["actions"]]
    assert kinds == ["deploy", "boot", "test", "boot", "test"]
    pmem = job["actions"][0]["deploy"]["images"]["pmem"]["image_arg"]
    assert "memory-backend-file" in pmem and "share=on" in pmem and "mem-path={pmem}" in pmem
    steps = [a["test"]["definitions"][0]["repository"]["run"]["steps"]
             for a in job["actions"] if "test" in a]
    assert steps == [["sh /opt/pinrig/lava/cases/0-pin.sh"],
                     ["sh /opt/pinrig/lava/cases/0-verify.sh"]]


def test_machine_shape_is_the_rigs_own_argv():
    shape = export.machine_shape("tcg")
    ctx = shape.context
    assert "-machine pc,nvdimm=on" in ctx["extra_options"] and "-smp 2" in ctx["extra_options"]
    assert ctx["memory"] == "2048M,slots=2,maxmem=4096M" and ctx["no_kvm"] is True
    cfg = qemu.QemuConfig(kernel=Path("k"), initrd=Path("i"), rootdisk=None, modules_disk=None,
                          accel="tcg")
    assert shape.append == qemu.kernel_cmdline(cfg)
    assert shape.pmem_arg == ("-object memory-backend-file,id=mem1,share=on,mem-path={pmem},"
                              "size=1024M -device nvdimm,id=nv1,memdev=mem1")
    kvm = export.machine_shape("kvm").context
    assert kvm["no_kvm"] is False and not any("-cpu" in o for o in kvm["extra_options"])


def test_deploy_artifacts_carry_checksums_and_the_overlay():
    images = jobs_of("smoke")[0]["actions"][0]["deploy"]["images"]
    assert set(images) == {"kernel", "initrd", "rootfs", "modules", "pmem"}
    assert all(i["sha256sum"] == "ab" * 32 for i in images.values())
    ov = images["initrd"]["overlays"]
    assert ov["lava"] is True and ov["pinrig"]["path"] == "/"
    assert "root=/dev/vda" in images["kernel"]["image_arg"]
    assert "addr=0x10" in images["rootfs"]["image_arg"]        # vda before vdb (modules)
    assert "addr=0x11" in images["modules"]["image_arg"]


def test_job_metadata_names_every_case_with_its_parameters():
    import json
    (job,) = jobs_of("smoke")
    meta = json.loads(job["metadata"]["pinrig"])
    assert [c["id"] for c in meta["cases"]] == ["ibverbs-pin/tmpfs/shared",
                                                "ibverbs-pin/ext4/shared"]
    assert meta["crash_and_verify"] is False and meta["kernel"] == "debian-6.1"


@pytest.mark.parametrize("name", SUITES)
def test_case_scripts_are_valid_sh_using_the_rigs_commands(name, tmp_path):
    suite = load_suite(name)
    scripts = export.case_scripts(suite, suite.seed)
    runnable = [(n, c) for n, c in enumerate(suite.cases) if not export.unsupported(c)]
    if not runnable:
        assert scripts == {}
        return
    assert scripts
    for path, text in scripts.items():
        f = tmp_path / Path(path).name
        f.write_text(text)
        res = subprocess.run(["sh", "-n", str(f)], capture_output=True, text=True)
        assert res.returncode == 0, (path, res.stderr)
    n, c = runnable[0]
    one = next(t for p, t in scripts.items() if f"/cases/{n}" in p)
    assert f"--seed {case_seed(suite.seed, c.id)}" in one
    assert f"echo 'pinrig: case-start {c.id}' > /dev/kmsg" in one


def test_initramfs_hand_over_and_overlay(tmp_path):
    init = guestside.initramfs_init()
    assert guestside.SWITCH_LINE not in init
    assert "exec switch_root /newroot /bin/sh /opt/pinrig/lava/lava-init" in init
    b = tmp_path / "lost-write"
    b.write_bytes(b"\x7fELF")
    data = export.overlay_tar({"/opt/pinrig/lava/cases/0.sh": "#!/bin/sh\n"}, [b], None)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = set(tf.getnames())
        assert {"./init", "./opt/pinrig/lava/lava-init", "./opt/pinrig/lava/lib.sh",
                "./opt/pinrig/lava/cases/0.sh", "./opt/pinrig/bin/lost-write"} <= names
        assert all(m.uid == 0 and not m.name.startswith("/") for m in tf.getmembers())


def test_device_dictionary_applies_the_jobs_context():
    (job,) = jobs_of("smoke")
    dev = local.device_dictionary(job["context"])
    params = dev["actions"]["boot"]["methods"]["qemu"]["parameters"]
    assert "-m 2048M,slots=2,maxmem=4096M" in params["options"]
    assert "-enable-kvm" not in params["options"]
    assert params["extra"] == job["context"]["extra_options"]
    assert any("model=virtio" in o for o in params["options"])      # rxe runs on it


def test_job_files_and_bad_job_files(tmp_path):
    with pytest.raises(UserError, match="no LAVA job files"):
        export.job_files(tmp_path)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "a.yaml").write_text(export.dump(jobs_of("smoke")[0]))
    assert [p.name for p in export.job_files(tmp_path)] == ["a.yaml"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- [unclosed")
    with pytest.raises(UserError, match="bad.yaml: not YAML"):
        export.load_job(bad)
    bad.write_text("- a list")
    with pytest.raises(UserError, match="not a LAVA job"):
        export.load_job(bad)
    with pytest.raises(UserError, match="no such job file"):
        export.job_files(tmp_path / "missing.yaml")


def test_dump_round_trips():
    (job,) = jobs_of("smoke")
    assert yaml.safe_load(export.dump(job)) == job


def test_scripts_keep_the_console_quiet_and_mark_before_they_talk():
    scripts = export.case_scripts(load_suite("smoke"), 1)
    one = scripts["/opt/pinrig/lava/cases/0.sh"]
    assert one.index("case-start") < one.index("pinrig-lava:0:begin")
    assert "dmesg -n 5" in guestside.LIB_SH
    assert "dmesg_since ibverbs-pin/ext4/shared" in one


def test_export_writes_validated_jobs_and_checksummed_artifacts(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from pinrig.lava.export import export as do_export
    cache = tmp_path / "cache"
    cache.mkdir()
    files = {}
    for name, data in (("vmlinuz", b"kernel"), ("initrd.cpio.gz", b"initrd"),
                       ("rootfs.img", b"root"), ("modules.img", b"mods")):
        files[name] = cache / name
        files[name].write_bytes(data)
    bins = tmp_path / "bins"
    bins.mkdir()
    (bins / "ibverbs-pin").write_bytes(b"\x7fELF")
    env = SimpleNamespace(
        spec=SimpleNamespace(name="debian-6.1"),
        art=SimpleNamespace(vmlinuz=files["vmlinuz"], release="6.1.0-57-amd64", hash="h1"),
        boot=SimpleNamespace(initrd=files["initrd.cpio.gz"], modules_disk=files["modules.img"]),
        image=SimpleNamespace(rootfs=files["rootfs.img"], name="bookworm", hash="g1"),
        bins=bins)
    monkeypatch.setattr("pinrig.guest.session.prepare_env", lambda kernel: env)
    monkeypatch.setattr("pinrig.cases.needs.check", lambda art, cases=(), pressure=None:
                        SimpleNamespace(cases={}, reason=lambda cid: ""))
    pmem = tmp_path / "pmem.img.gz"
    pmem.write_bytes(b"zeros")
    monkeypatch.setattr(export, "pmem_medium", lambda mb: pmem)
    out = tmp_path / "out"
    res = do_export("debian-6.1", "lost-write-once", out)
    assert [p.name for p in res.jobs] == ["01-lost-write_ext4_shared.yaml"]
    job = yaml.safe_load(res.jobs[0].read_text())
    images = job["actions"][0]["deploy"]["images"]
    import hashlib
    for key, name in (("kernel", "vmlinuz"), ("rootfs", "rootfs.img"), ("pmem", "pmem.img.gz")):
        url = images[key]["url"]
        assert url == (out / "artifacts" / name).resolve().as_uri()
        assert images[key]["sha256sum"] == \
            hashlib.sha256((out / "artifacts" / name).read_bytes()).hexdigest()
    with tarfile.open(out / "artifacts" / "pinrig-overlay.tar") as tf:
        assert "./opt/pinrig/lava/cases/0-pin.sh" in tf.getnames()
        assert "./opt/pinrig/bin/ibverbs-pin" in tf.getnames()
    assert not (tmp_path / "out.tmp").exists()
    with pytest.raises(UserError, match="not empty"):
        do_export("debian-6.1", "smoke", out)
    with pytest.raises(UserError, match="--jobs 0"):
        do_export("debian-6.1", "smoke", tmp_path / "o2", jobs=0)


def test_plan_leaves_out_the_cases_the_runner_skips():
    suite = load_suite("smoke")
    plan = export.plan(suite, 1, skip={"ibverbs-pin/ext4/shared"})
    assert [[c.id for _n, c in g.cases] for g in plan] == [["ibverbs-pin/tmpfs/shared"]]
    assert [n for n, _c in plan[0].cases] == [1]          # numbers stay the suite's


def test_without_lava_common_the_check_fails_naming_the_package():
    """The venv's python has no lava_common: the check raises, it never passes silently."""
    import sys

    from pinrig.errors import MissingTool
    with pytest.raises(MissingTool, match="apt-get install lava-common"):
        schema_errors(jobs_of("smoke"), python=sys.executable)


def test_cases_the_jobs_cannot_express_yet_are_named():
    from pinrig.config import Case
    assert export.unsupported(Case("ibverbs-pin", "ext4", "shared")) is None
    assert "siw provider" in export.unsupported(Case("ibverbs-pin", "ext4", "shared",
                                                     provider="siw"))
    assert "selftest" in export.unsupported(Case("kselftest-cow", "tmpfs", "private"))
