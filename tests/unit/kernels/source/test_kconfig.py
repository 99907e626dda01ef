"""pinrig.kernels.source.kconfig: fragments parsed, merged into .config, every requested option checked."""
from pathlib import Path

import pytest

from pinrig.errors import UserError
from pinrig.kernels.source import kconfig as K

REPO = Path(__file__).resolve().parents[4]


def test_parse_fragment_values_and_unset():
    f = K.parse_fragment('# a comment\nCONFIG_A=y\n\nCONFIG_B=m\n# CONFIG_C is not set\n'
                         'CONFIG_S="-pinrig"\nCONFIG_N=64\n', "x.config")
    assert [(o.symbol, o.value, o.origin) for o in f.options] == [
        ("CONFIG_A", "y", "x.config:2"), ("CONFIG_B", "m", "x.config:4"),
        ("CONFIG_C", "n", "x.config:5"), ("CONFIG_S", '"-pinrig"', "x.config:6"),
        ("CONFIG_N", "64", "x.config:7")]


def test_parse_fragment_rejects_garbage_naming_file_and_line():
    with pytest.raises(UserError) as e:
        K.parse_fragment("CONFIG_A=y\nKASAN=y\n", "debug.config")
    assert str(e.value).startswith("debug.config:2: not a config line: 'KASAN=y'")


def test_later_fragments_win():
    a = K.parse_fragment("CONFIG_A=y\nCONFIG_B=y\n", "a.config")
    b = K.parse_fragment("# CONFIG_A is not set\n", "b.config")
    req = K.requested([a, b])
    assert req["CONFIG_A"].value == "n" and req["CONFIG_A"].origin == "b.config:1"
    assert req["CONFIG_B"].value == "y"


def test_merge_replaces_in_place_and_appends():
    cfg = "#\n# head\n#\nCONFIG_A=m\n# CONFIG_B is not set\nCONFIG_C=y\n"
    frag = K.parse_fragment("CONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=y\nCONFIG_A=y\n", "f")
    out = K.merge_into(cfg, [frag])
    assert out == ("#\n# head\n#\nCONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=y\n")


def test_check_lists_every_option_that_did_not_stick():
    frag = K.parse_fragment("CONFIG_OK=y\nCONFIG_GONE=y\nCONFIG_OFF=y\nCONFIG_MOD=y\n"
                            "# CONFIG_ON is not set\n# CONFIG_ABSENT is not set\n", "f.config")
    final = "CONFIG_OK=y\n# CONFIG_OFF is not set\nCONFIG_MOD=m\nCONFIG_ON=y\n"
    bad = K.check(final, [frag])
    assert [(m.option.symbol, m.actual) for m in bad] == [
        ("CONFIG_GONE", "absent"), ("CONFIG_OFF", "n"), ("CONFIG_MOD", "m"), ("CONFIG_ON", "y")]
    msg = K.describe(bad, "kernel k")
    assert msg.startswith("kernel k: 4 requested config option(s) did not stick after "
                          "olddefconfig: CONFIG_GONE=y (f.config:2) → not in .config")
    assert "CONFIG_OFF=y (f.config:3) → not set" in msg
    assert "CONFIG_MOD=y (f.config:4) → CONFIG_MOD=m" in msg
    assert "# CONFIG_ON is not set (f.config:5) → CONFIG_ON=y" in msg


def test_string_values_compare_exactly():
    frag = K.parse_fragment('CONFIG_LOCALVERSION="-pinrig"\n', "g")
    assert K.check('CONFIG_LOCALVERSION="-pinrig"\n', [frag]) == []
    assert len(K.check('CONFIG_LOCALVERSION=""\n', [frag])) == 1


def test_config_digest_changes_with_base_name_and_text():
    a = K.parse_fragment("CONFIG_A=y\n", "a.config")
    d = K.config_digest(["defconfig"], [a])
    assert d == K.config_digest(["defconfig"], [K.parse_fragment("CONFIG_A=y\n", "a.config")])
    assert d != K.config_digest(["defconfig", "kvm_guest.config"], [a])
    assert d != K.config_digest(["defconfig"], [K.parse_fragment("CONFIG_A=m\n", "a.config")])
    assert d != K.config_digest(["defconfig"], [])


def test_repo_fragments_parse():
    frags = K.load_fragments(sorted((REPO / "configs" / "kconfig").glob("*.config")))
    names = {f.name for f in frags}
    assert {"pmem.config", "rdma.config", "fs.config", "io_uring.config", "gup-test.config",
            "guest.config", "debug-vm.config", "kasan.config", "lockdep.config"} <= names
    req = K.requested(frags)
    for sym in ("CONFIG_RDMA_RXE", "CONFIG_INFINIBAND_USER_ACCESS", "CONFIG_BLK_DEV_PMEM",
                "CONFIG_FS_DAX", "CONFIG_XFS_FS", "CONFIG_IO_URING", "CONFIG_GUP_TEST"):
        assert req[sym].value == "y", sym        # built in: the rig needs no modules
