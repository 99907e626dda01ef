"""Results directories whose path holds spaces, commas, quotes, newlines or `..` parts work end
to end (issue 11: path-safety tests)."""
import xml.etree.ElementTree as ET

import pytest

from pinrig.cases.verdict import Verdict
from pinrig.guest import qemu
from pinrig.outcome import Outcome
from pinrig.results.compare import load_run
from pinrig.results.rundir import RunDir, junit_xml

NAMES = ["with space", "with,comma", "quote'd", 'dq"x', "new\nline", "a/../b", "$(id)", "-rf"]


@pytest.mark.parametrize("name", NAMES)
def test_results_in_an_odd_directory(tmp_path, name):
    out = tmp_path / name / "run"
    out.mkdir(parents=True)
    run = RunDir(out, {"kernel": {"name": "k"}, "suite": {"name": "s"}, "seed": 1})
    run.write_manifest()
    v = Verdict("lost-write/ext4/shared", Outcome.DATA_LOSS, blocks_lost=1, first_bad_offset=0)
    run.write_case(v, {"guest.log": "x"})
    assert list(run.finished_cases()) == [("lost-write/ext4/shared", 1)]
    ET.fromstring(junit_xml(run, [v]))
    assert [x.verdict for x in load_run(out).verdicts] == ["data-loss"]
    cfg = qemu.QemuConfig(kernel=out / "k", initrd=out / "i", rootdisk=out / "o.qcow2",
                          modules_disk=None, pmem=out / "p.img")
    argv = qemu.build_argv(cfg)
    drive = argv[argv.index("-drive") + 1]
    assert drive.startswith("file=" + str(out / "o.qcow2").replace(",", ",,") + ",if=virtio")
