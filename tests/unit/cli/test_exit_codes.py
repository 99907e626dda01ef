"""The exit-code contract: 2 and one line for anything that is not a case failing (issue 11: 7)."""
import pytest

from pinrig import cli
from pinrig.cli import kernels as cli_kernels


@pytest.fixture(autouse=True)
def _signals(keep_signal_handlers):
    yield


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("rig: error: ") and "Traceback" not in err[0]
    return err[0]


def test_binary_yaml_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "k.yaml"
    bad.write_bytes(b"\xff\xfe\x00\x01binary")
    assert cli.main(["build", str(bad)]) == 2
    assert "not UTF-8 text" in one_error_line(capsys)


@pytest.mark.parametrize("exc, words", [
    (OSError(28, "No space left on device", "/results/x/junit.xml"), "/results/x/junit.xml: No space left"),
    (ValueError("invalid literal for int() with base 10: 'x'"), "ValueError: invalid literal"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "not UTF-8"),
    (KeyError("boom"), None),
])
def test_unexpected_errors_map_to_2_or_stay_loud(monkeypatch, capsys, exc, words):
    def boom(args):
        raise exc
    monkeypatch.setattr(cli_kernels, "cmd_kernels", boom)
    if words is None:                       # a bug in the rig: loud, with its traceback
        with pytest.raises(KeyError):
            cli.main(["kernels"])
        return
    assert cli.main(["kernels"]) == 2
    assert words in one_error_line(capsys)


def test_debug_shows_the_traceback(monkeypatch):
    def boom(args):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(cli_kernels, "cmd_kernels", boom)
    with pytest.raises(OSError):
        cli.main(["--debug", "kernels"])


@pytest.mark.parametrize("argv, words", [
    (["run", "--kernel", "{tmp}/notes.txt", "--suite", "smoke"], "not a kernel image (no x86"),
    (["run", "--kernel", "{tmp}/tree", "--suite", "smoke"], "a kernel tree with no built image"),
    (["boot", "--kernel", "{tmp}/nope"], "--kernel {tmp}/nope: no such file"),
    (["build", "debian-6.1", "--kernel", "{tmp}/tree"], "not both"),
    (["build"], "name a kernel"),
    (["build", "debian-6.1", "--modules", "{tmp}"], "--modules goes with a built kernel"),
    (["build", "--kernel", "{tmp}/notes.txt", "--modules", "{tmp}/none"],
     "--modules {tmp}/none: not a directory"),
])
def test_bad_kernel_paths_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.setenv("PINRIG_CACHE", str(tmp_path / "cache"))
    (tmp_path / "notes.txt").write_text("not a kernel")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree/Kconfig").write_text("")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(argv) == 2
    assert words.replace("{tmp}", str(tmp_path)) in one_error_line(capsys)
    assert not (tmp_path / "cache" / "kernels").exists() or \
        not any((tmp_path / "cache" / "kernels").rglob("artifact.json"))
