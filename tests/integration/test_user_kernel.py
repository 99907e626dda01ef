"""A kernel the user brings (issue 12 item 1): `rig run --kernel PATH --modules DIR` boots it
with no YAML, and a case the kernel's .config cannot serve is `skipped` saying which options
are missing and which fragment provides them; the rest run.

The "user's kernel" is the real debian-6.1 image laid out the way /boot and
`make modules_install INSTALL_MOD_PATH=…` leave one, with CONFIG_BLK_DEV_PMEM switched off in
its config: the ext4 case (on pmem) is skipped, the tmpfs case runs on the real kernel."""
from __future__ import annotations

import json
import shutil

import pytest

from pinrig import cli, config
from pinrig.kernels import fetch as kernel

pytestmark = pytest.mark.integration


def test_run_with_a_built_kernel_and_its_modules(tmp_path, capsys):
    art = kernel.fetch(config.load_kernel_spec("debian-6.1"))
    boot = tmp_path / "boot"
    boot.mkdir()
    image = boot / f"vmlinuz-{art.release}"
    shutil.copy2(art.vmlinuz, image)
    text = art.config.read_text().replace("CONFIG_BLK_DEV_PMEM=m",
                                          "# CONFIG_BLK_DEV_PMEM is not set")
    (boot / f"config-{art.release}").write_text(text)
    mods = tmp_path / "inst"
    shutil.copytree(art.modroot, mods, symlinks=True)
    out = tmp_path / "r"
    rc = cli.main(["run", "--kernel", str(image), "--modules", str(mods), "--suite", "smoke",
                   "--out", str(out)])
    err = capsys.readouterr().err
    by = {v["case"]: v for v in (json.loads(f.read_text())
                                 for f in (out / "cases").rglob("verdict.json"))}
    skipped = by["ibverbs-pin/ext4/shared"]
    assert skipped["verdict"] == "skipped", skipped
    assert "CONFIG_BLK_DEV_PMEM (not set; pmem.config)" in skipped["reason"], skipped
    assert by["ibverbs-pin/tmpfs/shared"]["verdict"] == "ok", by
    assert rc == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kernel"]["spec_fields"]["kind"] == "image"
    assert manifest["kernel"]["spec_fields"]["image"] == str(image.resolve())
    assert manifest["kernel"]["release"] == art.release and manifest["kernel"]["hash"]
    assert f"--kernel {image.resolve()} --modules {mods.resolve()}" in manifest["reproducer"]
