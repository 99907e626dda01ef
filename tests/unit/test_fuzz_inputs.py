"""Every input the rig reads, fuzzed: a mutated YAML file is either accepted or refused with one
UserError line naming the file — never a traceback — and `rig run` exits 2 before any work.
(issue 11: "a schema or validator for every input with fuzzed YAML")."""
import json
import random

import pytest
import yaml

from pinrig import cli, config, paths
from pinrig.errors import UserError
from pinrig.fleet.pool import load_pool
from pinrig.runs import nightly, runner

NASTY = ["../../victim", "a b", "x'; reboot -f; '", "@2", ".hidden", "a/b", "new\nline",
         "comma,here", "", "x" * 300, "\u202e", "\x00", "$(id)", "`id`", "~root", "-rf",
         -1, 0, 2**70, 1.5, True, None, [], {}, ["a", 1], {"k": "v"}, "http://x\n y"]
SOURCES = {
    "suite": (paths.CONFIGS_DIR / "suites", config.load_suite),
    "kernel": (paths.KERNELS_DIR, config.load_kernel_spec),
    "guest": (paths.GUESTS_DIR, config.load_guest_spec),
    "pool": (paths.CONFIGS_DIR / "hosts", load_pool),
    "plan": (paths.CONFIGS_DIR / "nightly", nightly.load_plan),
}


def _paths(obj, prefix=()):
    """Every (path) to a value inside nested dicts/lists."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _mutate(data, rng):
    data = yaml.safe_load(yaml.safe_dump(data))
    where = rng.choice(list(_paths(data))[1:] or [()])
    if not where:
        return rng.choice(NASTY)
    parent = data
    for k in where[:-1]:
        parent = parent[k]
    op = rng.random()
    if op < 0.6:
        parent[where[-1]] = rng.choice(NASTY)
    elif op < 0.8 and isinstance(parent, dict):
        del parent[where[-1]]
    elif isinstance(parent, dict):
        parent[rng.choice(["bogus", "Name", "cases ", "../x"])] = rng.choice(NASTY)
    else:
        parent.append(rng.choice(NASTY))
    return data


def _cases():
    rng = random.Random(20261129)
    out = []
    for kind, (d, _loader) in SOURCES.items():
        for src in sorted(d.glob("*.yaml")):
            base = yaml.safe_load(src.read_text())
            for i in range(40):
                out.append((kind, src.name, i, _mutate(base, rng)))
    return out


@pytest.mark.parametrize("kind, name, i, data", _cases(),
                         ids=lambda x: x if isinstance(x, (str, int)) else "")
def test_mutated_yaml_is_accepted_or_refused_in_one_line(tmp_path, kind, name, i, data):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, allow_unicode=True) if not isinstance(data, str) else data)
    loader = SOURCES[kind][1]
    try:
        loader(str(p))
    except UserError as e:
        msg = str(e)
        # a newline in the message can only come from the input itself (the CLI prints it
        # folded onto one line: test_rig_run_with_a_bad_suite_exits_2_before_any_work)
        assert "\n" not in msg.strip() or "\\n" in json.dumps(data), msg
        assert str(p) in msg or p.name in msg, msg


@pytest.mark.parametrize("text", [b"\xff\xfe\x00", b"cases: [", b"- just\n- a list\n",
                                  b"name: x\ncases:\n  - {workload: ibverbs-pin, fs: ext4, "
                                  b"variant: \"../../v\"}\n", b"\t\tbad: indent\n",
                                  b"cases:\n  - {workload: ibverbs-pin, fs: \"ext4\\nmore\"}\n"])
def test_rig_run_with_a_bad_suite_exits_2_before_any_work(tmp_path, text, capsys, monkeypatch,
                                                         keep_signal_handlers):
    def forbidden(*a, **k):
        raise AssertionError("work started on a bad suite")
    monkeypatch.setattr(runner, "prepare_env", forbidden)
    p = tmp_path / "bad.yaml"
    p.write_bytes(text)
    assert cli.main(["run", "debian-6.1", "--suite", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rig: error: ") and "bad.yaml" in err[0]
