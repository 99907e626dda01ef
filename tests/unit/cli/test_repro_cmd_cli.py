"""`rig repro KERNEL --c FILE / --cmd CMD` at the command line: bad input is one line and exit 2,
with nothing written; the modes do not take each other's options."""
from pathlib import Path

import pytest

from pinrig import cli
from pinrig.cli import results as cli_results

DATA = Path(__file__).resolve().parents[2] / "data" / "repro"


@pytest.fixture(autouse=True)
def _signals(keep_signal_handlers):
    yield


@pytest.fixture
def no_env(monkeypatch):
    """Fail loudly if a test gets as far as preparing a kernel environment."""
    def refuse(args):
        raise AssertionError("prepared a kernel environment")
    monkeypatch.setattr(cli_results, "_repro_env", refuse)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("rig: error: ")
    return err[0]


def test_a_reproducer_that_does_not_compile_is_exit_2_and_writes_nothing(tmp_path, capsys, no_env):
    out = tmp_path / "out"
    rc = cli.main(["repro", "debian-6.1", "--c", str(DATA / "does-not-compile.c"), "--out",
                   str(out)])
    assert rc == 2
    line = one_error_line(capsys)
    assert "does not compile" in line and "does-not-compile.c:7:" in line and "error:" in line
    assert not out.exists()


@pytest.mark.parametrize("argv, words", [
    (["repro", "debian-6.1", "--c", "x.c", "--case", "a/b/c"], "--case: only for `rig repro RESULT_DIR`"),
    (["repro", "debian-6.1", "--cmd", "true", "--mirror", "http://m"], "--mirror: only for"),
    (["repro", "RESULTS", "--timeout", "5"], "--timeout: only with --c FILE or --cmd CMD"),
    (["repro", "RESULTS", "--expect-title", "x"], "--expect-title: only with"),
    (["repro", "RESULTS", "--test-module"], "--test-module: only with"),
    (["repro", "debian-6.1", "--cmd", "true", "--dynamic"], "--dynamic/--cflags: only with --c"),
    (["repro", "debian-6.1", "--cmd", "true", "--timeout", "0"], "--timeout: must be more than 0"),
    (["repro", "debian-6.1", "--cmd", "true", "--attempts", "0"], "--attempts: must be at least 1"),
    (["repro", "debian-6.1", "--cmd", "true", "--expect-title", " "], "--expect-title: empty"),
    (["repro", "no-such-kernel", "--cmd", "true"], "no-such-kernel"),
    (["repro", "debian-6.1", "--c", "/nonexistent/r.c"], "--c /nonexistent/r.c: no such file"),
    (["repro", "debian-6.1", "--cmd", ""], "--cmd: empty command"),
    (["repro", "RESULTS", "--kernel", "/boot/vmlinuz"], "--kernel/--modules: only with --c FILE"),
    (["repro"], "name a results directory to replay, or a kernel with --c FILE"),
    (["repro", "--kernel", "/nonexistent/bzImage", "--cmd", "true"],
     "--kernel /nonexistent/bzImage: no such file or directory"),
    (["repro", "debian-6.1", "--kernel", "/boot/x", "--cmd", "true"], "not both"),
])
def test_bad_arguments_are_one_line_exit_2(argv, words, capsys, no_env, tmp_path):
    (tmp_path / "manifest.json").write_text('{"run_id": "r", "suite": {"cases": []}}')
    argv = [str(tmp_path) if a == "RESULTS" else a for a in argv]
    assert cli.main(argv) == 2
    assert words in one_error_line(capsys)


def test_c_and_cmd_together_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["repro", "debian-6.1", "--c", "x.c", "--cmd", "true"])
    assert e.value.code == 2


def test_a_non_empty_out_is_refused_before_compiling(tmp_path, capsys, no_env, fake_runner):
    (tmp_path / "f").write_text("x")
    assert cli.main(["repro", "debian-6.1", "--c", str(DATA / "clean.c"), "--out",
                     str(tmp_path)]) == 2
    assert "not an empty directory" in one_error_line(capsys)
    assert fake_runner.calls == []


def test_the_recorded_command_line_runs_the_same_reproducer_again():
    args = cli.build_parser().parse_args(
        ["repro", "debian-6.1", "--c", "r.c", "--attempts", "5", "--timeout", "30",
         "--expect-title", "WARNING in f", "--test-module", "--cflags=-DX"])
    argv = cli_results._repro_argv(args)
    assert argv == ["rig", "repro", "debian-6.1", f"--c={Path('r.c').resolve()}",
                    "--attempts=5", "--timeout=30.0", "--expect-title=WARNING in f",
                    "--cflags=-DX", "--test-module"]
    again = cli.build_parser().parse_args(argv[1:])
    for name in ("kernel", "attempts", "timeout", "expect_title", "cflags", "test_module"):
        assert getattr(again, name) == getattr(args, name), name
    assert again.c_file == str(Path("r.c").resolve())


def test_a_recorded_reproducer_runs_again_from_its_directory(tmp_path, monkeypatch, capsys):
    """`rig repro DIR` of a --c run: rebuilt from the source kept there, with the recorded
    kernel, timeout, expected title, flags; --attempts and --timeout override."""
    import json
    d = tmp_path / "run"
    d.mkdir()
    (d / "source.c").write_text((DATA / "oops-trigger.c").read_text())
    (d / "manifest.json").write_text(json.dumps({
        "kind": "repro", "kernel": {"name": "debian-6.1", "spec": "/gone/debian-6.1.yaml",
                                    "release": "6.1.0-57-amd64"},
        "repro": {"kind": "c", "name": "oops-trigger", "given": "/home/u/oops-trigger.c",
                  "compile": ["gcc", "-static"], "source_copy": "source.c", "attempts": 4,
                  "timeout_s": 60.0, "expect_title": "WARNING in pinrig_warn",
                  "test_module": True, "cflags": "-DTRIGGER_WARN", "dynamic": False}}))
    seen = {}

    def fake_run(args, rep, kernel, timeout, title, test_module, cold, build, argv=None,
                 recorded_release=None):
        seen.update(kernel=kernel, timeout=timeout, title=title, module=test_module,
                    attempts=args.attempts, name=rep.name, given=rep.given, build=build,
                    compiled=rep.compile_argv, exists=rep.binary.exists(),
                    release=recorded_release)
        return 1
    monkeypatch.setattr(cli_results, "_run_reprocmd", fake_run)
    assert cli.main(["repro", str(d), "--timeout", "9"]) == 1
    assert seen == {"kernel": "debian-6.1", "timeout": 9.0, "title": "WARNING in pinrig_warn",
                    "module": True, "attempts": 4, "name": "oops-trigger",
                    "given": "/home/u/oops-trigger.c",
                    "build": {"cflags": "-DTRIGGER_WARN", "dynamic": False},
                    "compiled": seen["compiled"], "exists": True, "release": "6.1.0-57-amd64"}
    assert "-static" in seen["compiled"] and "-DTRIGGER_WARN" in seen["compiled"]
    assert cli.main(["repro", str(d), "--cflags=-O0"]) == 2
    assert "--cflags: not when running a recorded reproducer again" in capsys.readouterr().err


@pytest.mark.parametrize("repro, words", [
    ({"kind": "c", "source_copy": "missing.c"}, "repro.source_copy: the reproducer's source"),
    ({"kind": "c", "source_copy": "../x.c"}, "repro.source_copy"),
    ({"kind": "cmd"}, "repro.given: the command is missing"),
    ({"kind": "py"}, "repro.kind: expected 'c' or 'cmd'"),
    ({"kind": "cmd", "given": "x", "timeout_s": -1}, "repro.timeout_s"),
    ({"kind": "cmd", "given": "x", "attempts": "3"}, "repro.attempts"),
])
def test_a_recorded_reproducer_with_bad_fields_is_named(tmp_path, capsys, repro, words, no_env):
    import json
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"kind": "repro", "kernel": {"name": "debian-6.1"}, "repro": repro}))
    assert cli.main(["repro", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert "manifest.json: " in line and words in line
