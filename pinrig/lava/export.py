"""`rig lava export KERNEL --suite SUITE`: one LAVA job definition per guest the rig would boot.

The guests are the runner's own grouping (pinrig.runs.runner.group_sessions): cases that share a
boot share a job; a crash-and-verify case gets a job of its own with two boot actions on one
deployed pmem file (LAVA's second boot kills the first QEMU: the power cut with the pin held).
The machine shape comes from the rig's QEMU command-line builder (pinrig.guest.qemu.build_argv):
nvdimm on a share=on memory-backend-file, virtio NIC (rxe runs on it), the rig's kernel command
line. Deploy artifacts are the rig's own files (kernel, initramfs, rootfs image, modules disk)
plus a zeroed pmem medium and an overlay tar with the workload programs and case scripts, each
with its sha256.

tuxlava is not used: its job templates are fixed per device (one rootfs drive, its own test
catalogue), with no way to add the nvdimm memory-backend, a second disk, an initramfs overlay
or a second boot on the same medium that these jobs need; the jobs here are plain dicts built
from the rig's own builders and checked with LAVA's schema (pinrig.lava.validate).
"""
from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from pinrig import __version__, paths
from pinrig.cases import kmod, programs
from pinrig.cases.workloads import needs_own_guest
from pinrig.config import Case, Suite
from pinrig.errors import UserError
from pinrig.guest import qemu
from pinrig.kernels.artifact import file_sha256
from pinrig.lava import guestside
from pinrig.runs.runner import group_sessions

DEVICE_TYPE = "qemu"
BOOT_MINUTES = 10          # QEMU start → shell prompt, TCG on a loaded host with margin
DEPLOY_MINUTES = 20        # copying a 2 GiB rootfs and unpacking the pmem medium
META_KEY = "pinrig"        # job metadata: the JSON the results are mapped back with
ROOT_ADDR, MODS_ADDR = "0x10", "0x11"   # fixed PCI slots: the root disk is vda, modules vdb
ARTIFACTS = ("kernel", "initrd", "rootfs", "modules", "pmem", "overlay")


@dataclass(frozen=True)
class GuestJob:
    """One guest the rig would boot: its cases (number in the suite, Case) and its kind."""
    index: int
    cases: tuple
    crash: bool

    @property
    def slug(self) -> str:
        first = self.cases[0][1].id
        more = f"-and-{len(self.cases) - 1}" if len(self.cases) > 1 else ""
        return f"{self.index:02d}-" + re.sub(r"[^A-Za-z0-9.-]+", "_", first) + more


def unsupported(case: Case) -> Optional[str]:
    """Why a case is not (yet) expressed as a LAVA job, or None: the case scripts cover the
    workloads/src programs on rxe; the kernel's own selftests and the siw provider need setup
    steps (a selftest build per kernel, siw.ko) the export does not carry yet."""
    from pinrig.cases import workloads
    from pinrig.config import DEFAULT_PROVIDER
    if workloads.kselftest(case) is not None:
        return "not exported to LAVA: kernel selftest programs are not in the LAVA jobs yet"
    if case.provider != DEFAULT_PROVIDER:
        return f"not exported to LAVA: the {case.provider} provider is not in the LAVA jobs yet"
    return None


def plan(suite: Suite, jobs: int = 1, skip=()) -> list:
    """The guests of a `rig run` of this suite (the runner's grouping, not a copy of it).
    skip: ids of cases the runner would not boot for (the kernel lacks what they need)."""
    number = {c.id: n for n, c in enumerate(suite.cases)}
    out = []
    todo = [c for c in suite.cases if c.id not in skip]
    for i, group in enumerate(group_sessions(todo, jobs), 1):
        crash = len(group) == 1 and needs_own_guest(group[0])
        out.append(GuestJob(i, tuple((number[c.id], c) for c in group), crash))
    return out


@dataclass(frozen=True)
class Shape:
    """The rig's machine, as LAVA's qemu device-type context and image arguments."""
    context: dict
    append: str
    pmem_arg: str


def machine_shape(accel: str = "tcg", pmem_mb: int = 1024, mem_mb: int = 2048,
                  smp: int = 2) -> Shape:
    """Taken from the argv the rig itself would run (placeholders where LAVA substitutes)."""
    cfg = qemu.QemuConfig(kernel=Path("{kernel}"), initrd=Path("{initrd}"), rootdisk=None,
                          modules_disk=None, pmem=Path("{pmem}"), pmem_mb=pmem_mb,
                          mem_mb=mem_mb, smp=smp, accel=accel, vmgenid=False)
    argv = qemu.build_argv(cfg)

    def after(flag: str, nth: int = 0) -> str:
        idx = [i for i, a in enumerate(argv) if a == flag][nth]
        return argv[idx + 1]
    obj, dev = after("-object"), after("-device")
    if "memory-backend-file" not in obj or not dev.startswith("nvdimm"):
        raise ValueError("pinrig.guest.qemu.build_argv: no nvdimm memory-backend in its argv")
    extra = ["-machine " + after("-machine"), "-smp " + after("-smp"), "-no-reboot",
             "-vga none"]
    if accel == "tcg":
        extra += ["-accel " + after("-accel"), "-cpu " + after("-cpu")]
    context = {"arch": "amd64", "memory": after("-m"), "no_kvm": accel != "kvm",
               "extra_options": extra}
    return Shape(context, after("-append"), f"-object {obj} -device {dev}")


@dataclass(frozen=True)
class Artifact:
    url: str
    sha256: str


def image_entries(arts: dict, shape: Shape) -> dict:
    """deploy.images of a job: the rig's files with their checksums and QEMU arguments. The
    initramfs gets LAVA's test overlay and the rig's overlay (init hand-over, programs,
    case scripts) unpacked into it by LAVA."""
    def url(name: str) -> dict:
        return {"url": arts[name].url, "sha256sum": arts[name].sha256}
    return {
        "kernel": {**url("kernel"), "image_arg": f'-kernel {{kernel}} -append "{shape.append}"'},
        "initrd": {**url("initrd"), "compression": "gz", "format": "cpio.newc",
                   "image_arg": "-initrd {initrd}",
                   "overlays": {"lava": True,
                                "pinrig": {**url("overlay"), "format": "tar", "path": "/"}}},
        "rootfs": {**url("rootfs"),
                   "image_arg": "-drive file={rootfs},if=none,id=root,format=raw,cache=unsafe "
                                f"-device virtio-blk-pci,drive=root,addr={ROOT_ADDR}"},
        "modules": {**url("modules"),
                    "image_arg": "-drive file={modules},if=none,id=mods,format=raw,readonly=on "
                                 f"-device virtio-blk-pci,drive=mods,addr={MODS_ADDR}"},
        "pmem": {**url("pmem"), "compression": "gz", "image_arg": shape.pmem_arg},
    }


def _test_action(name: str, steps: list, minutes: int, what: str) -> dict:
    return {"test": {
        "timeout": {"minutes": minutes},
        "definitions": [{
            "from": "inline", "name": name, "path": f"inline/{name}.yaml",
            "repository": {
                "metadata": {"format": "Lava-Test Test Definition 1.0", "name": name,
                             "description": what},
                "run": {"steps": steps}}}]}}


def _boot_action() -> dict:
    return {"boot": {"method": "qemu", "media": "tmpfs", "timeout": {"minutes": BOOT_MINUTES},
                     "prompts": [guestside.PROMPT]}}


def script_path(n: int, part: str = "") -> str:
    return f"{guestside.LAVA_DIR}/cases/{n}{part}.sh"


def job_definition(g: GuestJob, arts: dict, shape: Shape, meta: dict) -> dict:
    """The LAVA job (a plain dict, dumped as YAML) for one guest."""
    ids = [c.id for _n, c in g.cases]
    kernel, suite = meta["kernel"], meta["suite"]
    name = f"pinrig {kernel} {suite} guest {g.index}: {', '.join(ids)}"
    if len(name) > 200:
        name = name[:196] + " ..."
    test_min = sum(c.timeout for _n, c in g.cases) // 60 + 5 * len(g.cases) + 5
    actions: list = [{"deploy": {"to": "tmpfs", "timeout": {"minutes": DEPLOY_MINUTES},
                                 "os": "debian", "images": image_entries(arts, shape)}},
                     _boot_action()]
    tname = f"pinrig-{g.index:02d}"
    if g.crash:
        n, case = g.cases[0]
        actions.append(_test_action(tname + "-pin", ["sh " + script_path(n, "-pin")], test_min,
                                    f"{case.id}: pin, write through it, hold the pin"))
        actions.append(_boot_action())      # kills the first QEMU: a power cut, pin held
        actions.append(_test_action(tname + "-verify", ["sh " + script_path(n, "-verify")],
                                    test_min, f"{case.id}: verify every block after the cut"))
        boots = 2
    else:
        actions.append(_test_action(tname, ["sh " + script_path(n) for n, _c in g.cases],
                                    test_min, f"pinrig cases: {', '.join(ids)}"))
        boots = 1
    job_min = DEPLOY_MINUTES + boots * (BOOT_MINUTES + test_min) + 5
    guest_meta = {**meta, "guest": g.index, "crash_and_verify": g.crash,
                  "cases": [{"n": n, "id": c.id, **c.__dict__} for n, c in g.cases]}
    return {
        "device_type": DEVICE_TYPE,
        "job_name": name,
        "timeouts": {"job": {"minutes": job_min}, "action": {"minutes": test_min},
                     "connection": {"minutes": 2}},
        "priority": "medium",
        "visibility": "public",
        "context": dict(shape.context),
        "metadata": {META_KEY: json.dumps(guest_meta, sort_keys=True)},
        "actions": actions,
    }


def case_scripts(suite: Suite, seed: int, skip=()) -> dict:
    """Guest path → text of every case script of the suite."""
    from pinrig.cases.execute import case_seed
    out: dict = {}
    skip = set(skip) | {c.id for c in suite.cases if unsupported(c)}
    if len(skip) == len(suite.cases):
        return out
    for g in plan(suite, 1, skip):
        for n, case in g.cases:
            cseed = case_seed(seed, case.id)
            if g.crash:
                out[script_path(n, "-pin")] = guestside.crash_pin_script(n, case, cseed,
                                                                         suite.pressure)
                out[script_path(n, "-verify")] = guestside.crash_verify_script(n, case)
            else:
                out[script_path(n)] = guestside.shared_case_script(n, case, cseed,
                                                                   suite.pressure)
    return out


def overlay_tar(scripts: dict, bins: list, test_module: Optional[Path]) -> bytes:
    """The rig's overlay for the initramfs: /init (hand-over to LAVA's shell), the LAVA init and
    helpers, the case scripts and the workload programs (owned by root, fixed mtimes)."""
    buf = io.BytesIO()

    def add(path: str, data: bytes, mode: int) -> None:
        info = tarfile.TarInfo("." + path)
        info.size, info.mode, info.mtime = len(data), mode, 0
        info.uid = info.gid = 0
        tf.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        add("/init", guestside.initramfs_init().encode(), 0o755)
        add(f"{guestside.LAVA_DIR}/lava-init", guestside.LAVA_INIT.encode(), 0o755)
        add(f"{guestside.LAVA_DIR}/lib.sh", guestside.LIB_SH.encode(), 0o644)
        for path, text in sorted(scripts.items()):
            add(path, text.encode(), 0o755)
        for b in bins:
            add(f"/opt/pinrig/bin/{b.name}", b.read_bytes(), 0o755)
        if test_module is not None:
            add(f"{guestside.LAVA_DIR}/{Path(kmod.GUEST_KO).name}", test_module.read_bytes(),
                0o644)
    return buf.getvalue()


def pmem_medium(mb: int) -> Path:
    """A zeroed pmem medium, gzip-compressed (a few hundred KiB per GiB), cached."""
    dest = paths.cache_dir() / "lava" / f"pmem-{mb}M.img.gz"
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    zero = bytes(1 << 20)
    with gzip.open(tmp, "wb", compresslevel=6) as f:
        for _ in range(mb):
            f.write(zero)
    tmp.rename(dest)
    return dest


def _place(src: Path, dest: Path) -> None:
    """The artifact in the export directory: a hard link to the rig's cached file when the
    filesystem allows (no copy of a 2 GiB image), else a copy."""
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


@dataclass
class Export:
    out: Path
    jobs: list = field(default_factory=list)        # job files written
    artifacts: dict = field(default_factory=dict)   # name → Artifact


def export(kernel_arg: str, suite_arg: str, out: Path, artifact_url: Optional[str] = None,
           seed: Optional[int] = None, jobs: int = 1, accel: str = "tcg") -> Export:
    """Resolve the rig's environment (cached kernel, image, programs) and write the jobs."""
    from pinrig.config import load_suite
    from pinrig.guest.session import prepare_env
    from pinrig.lava.validate import validate_jobs
    if accel not in ("tcg", "kvm"):
        raise UserError(f"--accel {accel}: one of tcg, kvm")
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: must be at least 1")
    suite = load_suite(suite_arg)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"-o {out}: not empty; give an empty or new directory")
    env = prepare_env(kernel_arg)
    from pinrig.cases import needs
    lacks = needs.check(env.art, suite.cases, suite.pressure)
    # what the job cannot express yet comes first (the runner would run a siw case with its
    # own siw.ko on a kernel without CONFIG_RDMA_SIW: the config is not the reason here)
    skip = {c.id: why for c in suite.cases for why in [unsupported(c)] if why}
    for c in suite.cases:
        if c.id in lacks.cases and c.id not in skip:
            skip[c.id] = lacks.reason(c.id)
    if len(skip) == len(suite.cases):
        raise UserError(f"suite {suite.name} on {env.spec.name}: no case to export "
                        f"({next(iter(skip.values()))})")
    module = kmod.test_module(env.spec, env.art) \
        if any(kmod_needed(c) and c.id not in skip for c in suite.cases) else None
    seed = suite.seed if seed is None else seed
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "artifacts").mkdir(parents=True)
    (tmp / "jobs").mkdir()
    bins = programs.binaries(env.bins) if env.bins else []
    (tmp / "artifacts" / "pinrig-overlay.tar").write_bytes(
        overlay_tar(case_scripts(suite, seed, skip), bins, module))
    files = {"kernel": env.art.vmlinuz, "initrd": env.boot.initrd, "rootfs": env.image.rootfs,
             "modules": env.boot.modules_disk, "pmem": pmem_medium(1024)}
    names = {"kernel": "vmlinuz", "initrd": "initrd.cpio.gz", "rootfs": "rootfs.img",
             "modules": "modules.img", "pmem": "pmem.img.gz", "overlay": "pinrig-overlay.tar"}
    for key, src in files.items():
        _place(src, tmp / "artifacts" / names[key])
    base = (artifact_url or (out.resolve() / "artifacts").as_uri()).rstrip("/")
    arts = {key: Artifact(f"{base}/{names[key]}", file_sha256(tmp / "artifacts" / names[key]))
            for key in ARTIFACTS}
    meta = {"rig_version": __version__, "kernel": env.spec.name, "release": env.art.release,
            "kernel_hash": env.art.hash, "guest_image": env.image.name,
            "guest_hash": env.image.hash, "suite": suite.name, "seed": seed}
    shape = machine_shape(accel)
    res = Export(out, artifacts=arts)
    docs = {}
    for g in plan(suite, jobs, skip):
        # the cases the runner would skip without a boot travel with the first job
        extra = {"skipped": [{"n": n, "id": c.id, **c.__dict__, "reason": skip[c.id]}
                             for n, c in enumerate(suite.cases) if c.id in skip]} \
            if g.index == 1 and skip else {}
        docs[f"{g.slug}.yaml"] = job_definition(g, arts, shape, {**meta, **extra})
    validate_jobs(list(docs.values()))          # nothing invalid is ever written
    for fname, doc in docs.items():
        (tmp / "jobs" / fname).write_text(dump(doc))
    index = {"kernel": meta, "artifacts": {k: a.__dict__ for k, a in arts.items()},
             "jobs": sorted(docs), "skipped": skip}
    (tmp / "export.json").write_text(json.dumps(index, indent=2) + "\n")
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    res.jobs = [out / "jobs" / f for f in sorted(docs)]
    return res


def kmod_needed(case: Case) -> bool:
    from pinrig.cases.workloads import needs_module
    return needs_module(case)


def dump(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


def job_files(arg: Path) -> list:
    """Job files named by the user: a job YAML, or an export directory (its jobs/*.yaml)."""
    if arg.is_dir():
        files = sorted((arg / "jobs").glob("*.yaml")) or sorted(arg.glob("*.yaml"))
        if not files:
            raise UserError(f"{arg}: no LAVA job files (jobs/*.yaml) in this directory")
        return files
    if not arg.is_file():
        raise UserError(f"{arg}: no such job file or export directory")
    return [arg]


def load_job(path: Path) -> dict:
    """A job file, read and checked to be a mapping (schema checks: pinrig.lava.validate)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read: {e}")
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not YAML: {str(e).splitlines()[0]}")
    if not isinstance(doc, dict):
        raise UserError(f"{path}: not a LAVA job (a YAML mapping)")
    return doc
