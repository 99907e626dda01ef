"""pinrig.cli and pinrig.proc: errors become one line and exit code 2; the subprocess seam."""
import pytest

from pinrig import cli, proc
from pinrig.errors import InfraError, MissingTool

pytestmark = pytest.mark.usefixtures("keep_signal_handlers")


def one_error_line(capsys, prefix="rig: error: ") -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix)
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def no_subprocess(monkeypatch, fake_runner):
    """Nothing in these commands may reach apt, QEMU or the network."""
    def refuse(argv, kw):
        raise AssertionError(f"unexpected subprocess {argv}")
    fake_runner.handler = refuse
    return fake_runner


def test_build_unknown_kernel(capsys, no_subprocess):
    assert cli.main(["build", "nope"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("rig: error: unknown kernel 'nope' (known: ")
    for k in ("debian-5.10", "debian-6.1", "debian-6.12", "debian-sid"):
        assert k in line
    assert capsys.readouterr().out == ""


def test_boot_unknown_kernel(capsys, no_subprocess):
    assert cli.main(["boot", "nope", "--dry-run"]) == 2
    assert one_error_line(capsys).startswith("rig: error: unknown kernel 'nope'")


def test_run_unknown_suite(capsys, no_subprocess, runner_module):
    assert cli.main(["run", "debian-6.1", "--suite", "nope"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("rig: error: unknown suite 'nope' (known: ")
    assert "smoke" in line


def test_run_bad_suite_file_names_file_and_field(capsys, tmp_path, no_subprocess,
                                                 runner_module):
    p = tmp_path / "bad.yaml"
    p.write_text("cases: [{workload: ibverbs-pin, fs: ext5}]\n")
    assert cli.main(["run", "debian-6.1", "--suite", str(p)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"rig: error: {p}: cases[0].fs[0]: unknown value 'ext5'")


def test_image_unknown_guest(capsys, no_subprocess):
    assert cli.main(["image", "nope"]) == 2
    assert one_error_line(capsys).startswith("rig: error: unknown guest recipe 'nope'")


def test_debug_shows_the_exception(no_subprocess):
    from pinrig.errors import UserError
    with pytest.raises(UserError):
        cli.main(["--debug", "build", "nope"])


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as ei:
        cli.main(["frobnicate"])
    assert ei.value.code == 2


def test_oops_missing_file(capsys, tmp_path):
    pytest.importorskip("pinrig.oops")
    missing = tmp_path / "missing.log"
    assert cli.main(["oops", str(missing)]) == 2
    line = one_error_line(capsys, prefix="rig")       # one line naming the file, no traceback
    assert str(missing) in line


# ------------------------------------------------------------------------------- proc

def test_require_missing_tool_names_a_package():
    with pytest.raises(MissingTool) as ei:
        proc.require("definitely-not-a-tool")
    e = ei.value
    assert e.tool == "definitely-not-a-tool" and e.package == "definitely-not-a-tool"
    assert str(e) == ("host tool 'definitely-not-a-tool' not found: install it with "
                      "'apt-get install definitely-not-a-tool'")
    assert isinstance(e, InfraError)


def test_require_known_tool_names_its_debian_package(monkeypatch):
    monkeypatch.setattr(proc.shutil, "which", lambda *a, **k: None)
    with pytest.raises(MissingTool) as ei:
        proc.require("qemu-img")
    assert ei.value.package == "qemu-utils"
    assert "apt-get install qemu-utils" in str(ei.value)


def test_require_finds_a_real_tool():
    assert proc.require("sh").endswith("/sh")


def test_run_failure_raises_infra_error_with_stderr_tail(fake_runner):
    fake_runner.handler = lambda argv, kw: (1, "out\n", "line1\nline2\nline3\nline4\n\n")
    with pytest.raises(InfraError) as ei:
        proc.run(["true", "--flag"], what="doing the thing")
    assert str(ei.value) == "doing the thing failed (exit 1): line2 | line3 | line4"
    assert fake_runner.argvs() == [["true", "--flag"]]


def test_run_failure_falls_back_to_stdout_and_argv0(fake_runner):
    fake_runner.handler = lambda argv, kw: (3, "only stdout\n", "")
    with pytest.raises(InfraError) as ei:
        proc.run(["true"])
    assert str(ei.value) == "true failed (exit 3): only stdout"


def test_run_check_false_returns_result(fake_runner):
    fake_runner.handler = lambda argv, kw: (1, "o", "e")
    res = proc.run(["true", 5], check=False, timeout=7, cwd="/")
    assert (res.returncode, res.stdout, res.stderr) == (1, "o", "e")
    (argv, kw), = fake_runner.calls
    assert argv == ["true", "5"]
    assert kw == {"timeout": 7, "cwd": "/"}


def test_run_missing_tool_never_reaches_the_runner(fake_runner):
    with pytest.raises(MissingTool):
        proc.run(["definitely-not-a-tool", "x"])
    assert fake_runner.calls == []


def test_real_runner_captures_output_and_code():
    res = proc.Runner().run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")


def test_real_runner_timeout_is_infra_error():
    with pytest.raises(InfraError, match="timed out after 0.2s"):
        proc.Runner().run(["sleep", "5"], timeout=0.2)
