"""pinrig.config: YAML → KernelSpec / GuestSpec / Suite, errors that name file and field."""
import textwrap
from pathlib import Path

import pytest

from pinrig import config, paths
from pinrig.config import Case, load_guest_spec, load_kernel_spec, load_suite
from pinrig.errors import UserError

REAL_KERNELS = ("debian-5.10", "debian-6.1", "debian-6.12", "debian-sid")


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


def suite_file(tmp_path, body: str, name: str = "s.yaml") -> str:
    return write(tmp_path / name, body)


def user_error(fn, *args) -> str:
    with pytest.raises(UserError) as ei:
        fn(*args)
    return str(ei.value)


# ------------------------------------------------------------------------------- kernels

def test_kernel_spec_loads_all_fields(tmp_path):
    p = write(tmp_path / "k.yaml", """\
        name: my-kernel
        kind: debian
        suite: trixie
        package: linux-image-cloud-amd64
        version: 6.12.9-1
        mirror: http://mirror.example/debian
        description: a test kernel
        """)
    spec = load_kernel_spec(p)
    assert spec == config.KernelSpec(
        name="my-kernel", kind="debian", suite="trixie", package="linux-image-cloud-amd64",
        version="6.12.9-1", mirror="http://mirror.example/debian",
        description="a test kernel", path=Path(p))


def test_kernel_spec_defaults_and_name_from_file(tmp_path):
    spec = load_kernel_spec(write(tmp_path / "bk.yaml", "suite: bookworm\n"))
    assert (spec.name, spec.kind, spec.package, spec.version, spec.mirror) == (
        "bk", "debian", "linux-image-amd64", None, "http://deb.debian.org/debian")


def test_kernel_spec_bad_suite_names_file_field_and_choices(tmp_path):
    p = write(tmp_path / "k.yaml", "suite: buster\n")
    msg = user_error(load_kernel_spec, p)
    assert msg.startswith(f"{p}: suite: unknown value 'buster' (known: ")
    assert "bookworm" in msg and "trixie" in msg


def test_kernel_spec_unknown_field(tmp_path):
    p = write(tmp_path / "k.yaml", "suite: bookworm\nflavour: rt\n")
    assert user_error(load_kernel_spec, p) == f"{p}: flavour: unknown field"


def test_kernel_spec_wrong_type(tmp_path):
    p = write(tmp_path / "k.yaml", "suite: bookworm\npackage: [a, b]\n")
    assert user_error(load_kernel_spec, p) == f"{p}: package: must be str, got list ['a', 'b']"


def test_kernel_spec_missing_required(tmp_path):
    p = write(tmp_path / "k.yaml", "name: x\n")
    assert user_error(load_kernel_spec, p) == f"{p}: suite: is required"


def test_kernel_spec_bad_kind(tmp_path):
    p = write(tmp_path / "k.yaml", "suite: bookworm\nkind: rpm\n")
    assert user_error(load_kernel_spec, p).startswith(f"{p}: kind: unknown value 'rpm'")


def test_unknown_kernel_name_lists_known_ones():
    msg = user_error(load_kernel_spec, "nope")
    assert msg.startswith("unknown kernel 'nope' (known: ")
    known = msg[len("unknown kernel 'nope' (known: "):-1].split(", ")
    for k in REAL_KERNELS:
        assert k in known
    assert known == sorted(known)


def test_kernel_path_that_does_not_exist(tmp_path):
    p = str(tmp_path / "missing.yaml")
    assert user_error(load_kernel_spec, p) == f"kernel file {p} does not exist"


def test_kernel_names_has_the_real_specs():
    names = config.kernel_names()
    assert set(REAL_KERNELS) <= set(names)


@pytest.mark.parametrize("name", REAL_KERNELS)
def test_real_kernel_specs_load_by_name(name):
    spec = load_kernel_spec(name)
    assert spec.name == name
    assert spec.kind == "debian"
    assert spec.suite in config.DEBIAN_SUITES
    assert spec.path == paths.KERNELS_DIR / f"{name}.yaml"


def test_real_kernel_suites():
    assert {n: load_kernel_spec(n).suite for n in REAL_KERNELS} == {
        "debian-5.10": "bullseye", "debian-6.1": "bookworm", "debian-6.12": "trixie",
        "debian-sid": "sid"}


# ------------------------------------------------------------------------------- YAML errors

def test_invalid_yaml_names_file_and_line(tmp_path):
    p = suite_file(tmp_path, """\
        name: x
        cases:
          - workload: ibverbs-pin
            fs: ext4: oops
        """)
    msg = user_error(load_suite, p)
    assert msg.startswith(f"{p}: line 4: invalid YAML: ")
    assert "\n" not in msg


def test_top_level_must_be_mapping(tmp_path):
    p = suite_file(tmp_path, "- a\n- b\n")
    assert user_error(load_suite, p) == f"{p}: top level must be a mapping, got list"


def test_empty_file(tmp_path):
    p = suite_file(tmp_path, "")
    assert user_error(load_suite, p) == f"{p}: top level must be a mapping, got NoneType"


# ------------------------------------------------------------------------------- suites

def test_suite_loads_with_pressure_and_defaults(tmp_path):
    p = suite_file(tmp_path, """\
        name: mine
        description: d
        seed: 7
        timeout: 30
        pressure:
          dirty_ratio: 5
          dirty_expire_centisecs: 100
          sync_storm: true
        cases:
          - workload: ibverbs-pin
            fs: ext4
          - workload: lost-write
            fs: xfs
            expect: data-loss
            size: 8192
            timeout: 300
        """)
    s = load_suite(p)
    assert (s.name, s.description, s.seed, s.path) == ("mine", "d", 7, Path(p))
    assert s.pressure == config.Pressure(dirty_ratio=5, dirty_expire_centisecs=100,
                                         sync_storm=True)
    assert s.cases == (
        Case("ibverbs-pin", "ext4", "shared", None, None, 1 << 20, 30),
        Case("lost-write", "xfs", "shared", None, "data-loss", 8192, 300),
    )


def test_suite_name_defaults_to_file_stem(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: ibverbs-pin, fs: tmpfs}]\n", name="stem.yaml")
    s = load_suite(p)
    assert s.name == "stem" and s.seed == 1 and s.pressure == config.Pressure()


def test_matrix_expansion_fs_mapping_variant(tmp_path):
    p = suite_file(tmp_path, """\
        cases:
          - workload: ibverbs-pin
            fs: [ext4, xfs-dax]
            mapping: [shared, private]
            variant: [rw, ro]
        """)
    ids = [c.id for c in load_suite(p).cases]
    assert ids == [
        "ibverbs-pin/ext4/shared/rw", "ibverbs-pin/ext4/shared/ro",
        "ibverbs-pin/ext4/private/rw", "ibverbs-pin/ext4/private/ro",
        "ibverbs-pin/xfs-dax/shared/rw", "ibverbs-pin/xfs-dax/shared/ro",
        "ibverbs-pin/xfs-dax/private/rw", "ibverbs-pin/xfs-dax/private/ro",
    ]


def test_matrix_expansion_without_variant(tmp_path):
    p = suite_file(tmp_path, """\
        cases:
          - workload: iouring-fixed
            fs: [tmpfs, ext4]
            mapping: [private, shared]
        """)
    cases = load_suite(p).cases
    assert [c.id for c in cases] == ["iouring-fixed/tmpfs/private", "iouring-fixed/tmpfs/shared",
                                     "iouring-fixed/ext4/private", "iouring-fixed/ext4/shared"]
    assert all(c.variant is None for c in cases)


def test_scalar_variant_is_one_variant(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: lost-write, fs: ext4, variant: control}]\n")
    (c,) = load_suite(p).cases
    assert c.variant == "control" and c.id == "lost-write/ext4/shared/control"


def test_provider_axis_expands_and_only_a_non_default_provider_enters_the_id(tmp_path):
    p = suite_file(tmp_path, """\
        cases:
          - workload: ibverbs-pin
            fs: ext4
            mapping: [shared, private]
            provider: [rxe, siw]
          - workload: lost-write
            fs: xfs
        """)
    cases = load_suite(p).cases
    assert [c.id for c in cases] == [
        "ibverbs-pin/ext4/shared", "ibverbs-pin/ext4/shared@siw",
        "ibverbs-pin/ext4/private", "ibverbs-pin/ext4/private@siw", "lost-write/xfs/shared"]
    assert [c.provider for c in cases] == ["rxe", "siw", "rxe", "siw", "rxe"]
    assert Case("lost-write", "ext4", "shared", "control", provider="siw").id == \
        "lost-write/ext4/shared/control@siw"


def test_bad_provider_names_file_and_field(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: ibverbs-pin, fs: ext4, provider: [rxe, mlx5]}]\n")
    assert user_error(load_suite, p) == \
        f"{p}: cases[0].provider[1]: unknown value 'mlx5' (known: rxe, siw)"


def test_provider_on_a_workload_without_rdma_is_refused(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: iouring-fixed, fs: ext4, provider: siw}]\n")
    assert "cases[0].provider: workload iouring-fixed uses no RDMA device" in \
        user_error(load_suite, p)


def test_provider_a_workload_cannot_use_is_refused(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: anon-coherency, fs: tmpfs, mapping: private, "
                             "variant: control, provider: [rxe, siw]}]\n")
    assert "cases[0].provider[1]: workload anon-coherency runs on rxe only, not siw" in \
        user_error(load_suite, p)


def test_the_repo_suites_for_selftests_and_providers_load():
    ids = [c.id for c in load_suite("provider-matrix").cases]
    assert len(ids) == 20 and sum(i.endswith("@siw") for i in ids) == 10
    ks = load_suite("mm-selftests")
    assert {c.workload for c in ks.cases} == {"kselftest-gup_longterm", "kselftest-cow",
                                              "kselftest-gup_test"}


@pytest.mark.parametrize("case,want", [
    (Case("ibverbs-pin", "ext4", "shared"), "ibverbs-pin/ext4/shared"),
    (Case("lost-write", "xfs", "shared"), "lost-write/xfs/shared"),
    (Case("ibverbs-pin", "ext4-dax", "shared"), "ibverbs-pin/ext4-dax/shared"),
    (Case("iouring-fixed", "ext4", "private"), "iouring-fixed/ext4/private"),
    (Case("ibverbs-pin", "ext4", "shared", "ro"), "ibverbs-pin/ext4/shared/ro"),
])
def test_case_id_format(case, want):
    assert case.id == want


def test_bad_fs_choice_names_file_and_field(tmp_path):
    p = suite_file(tmp_path, """\
        cases:
          - workload: ibverbs-pin
            fs: ext4
          - workload: ibverbs-pin
            fs: [xfs, ext5]
        """)
    msg = user_error(load_suite, p)
    assert msg == (f"{p}: cases[1].fs[1]: unknown value 'ext5' "
                   "(known: ext4, xfs, ext4-dax, xfs-dax, tmpfs, btrfs, ext4-integrity)")


def test_scalar_bad_fs(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: ibverbs-pin, fs: ext5}]\n")
    assert user_error(load_suite, p).startswith(f"{p}: cases[0].fs[0]: unknown value 'ext5'")


def test_bad_workload(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: fio, fs: ext4}]\n")
    assert user_error(load_suite, p).startswith(f"{p}: cases[0].workload: unknown value 'fio'")


def test_bad_mapping(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: ibverbs-pin, fs: ext4, mapping: anon}]\n")
    assert user_error(load_suite, p).startswith(
        f"{p}: cases[0].mapping[0]: unknown value 'anon' (known: shared, private)")


def test_bad_expect(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: ibverbs-pin, fs: ext4, expect: granted}]\n")
    assert user_error(load_suite, p).startswith(f"{p}: cases[0].expect: unknown value 'granted'")


def test_unknown_case_field(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: ibverbs-pin, fs: ext4, filesystem: xfs}]\n")
    assert user_error(load_suite, p) == f"{p}: cases[0].filesystem: unknown field"


def test_unknown_top_level_field(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: ibverbs-pin, fs: ext4}]\nrepetitions: 3\n")
    assert user_error(load_suite, p) == f"{p}: repetitions: unknown field"


def test_unknown_pressure_field(tmp_path):
    p = suite_file(tmp_path, """\
        pressure: {dirty_ratio: 5, swappiness: 10}
        cases: [{workload: ibverbs-pin, fs: ext4}]
        """)
    assert user_error(load_suite, p) == f"{p}: pressure.swappiness: unknown field"


def test_wrong_type_in_pressure(tmp_path):
    p = suite_file(tmp_path, """\
        pressure: {dirty_ratio: lots}
        cases: [{workload: ibverbs-pin, fs: ext4}]
        """)
    assert user_error(load_suite, p) == f"{p}: pressure.dirty_ratio: must be int, got str 'lots'"


def test_bool_is_not_an_int(tmp_path):
    p = suite_file(tmp_path, "seed: true\ncases: [{workload: ibverbs-pin, fs: ext4}]\n")
    assert user_error(load_suite, p) == f"{p}: seed: must be int, got bool True"


def test_wrong_type_case_size(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: ibverbs-pin, fs: ext4, size: 1M}]\n")
    assert user_error(load_suite, p) == f"{p}: cases[0].size: must be int, got str '1M'"


def test_fs_list_items_must_be_strings(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: ibverbs-pin, fs: [ext4, 3]}]\n")
    assert user_error(load_suite, p) == f"{p}: cases[0].fs[1]: must be a string, got 3"


def test_case_must_be_mapping(tmp_path):
    p = suite_file(tmp_path, "cases: [ibverbs-pin]\n")
    assert user_error(load_suite, p) == f"{p}: cases[0]: must be a mapping"


def test_missing_cases(tmp_path):
    p = suite_file(tmp_path, "name: x\n")
    assert user_error(load_suite, p) == f"{p}: cases: is required"


def test_missing_fs(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: ibverbs-pin}]\n")
    assert user_error(load_suite, p) == f"{p}: cases[0].fs: is required"


def test_empty_cases(tmp_path):
    p = suite_file(tmp_path, "cases: []\n")
    assert user_error(load_suite, p) == f"{p}: cases: no cases"


def test_duplicate_case_ids(tmp_path):
    p = suite_file(tmp_path, """\
        cases:
          - workload: ibverbs-pin
            fs: [ext4, xfs]
          - workload: ibverbs-pin
            fs: xfs
            mapping: shared
        """)
    assert user_error(load_suite, p) == f"{p}: cases: duplicate case id ibverbs-pin/xfs/shared"


def test_variant_and_base_case_are_distinct_ids(tmp_path):
    p = suite_file(tmp_path, """\
        cases:
          - {workload: ibverbs-pin, fs: ext4}
          - {workload: ibverbs-pin, fs: ext4, variant: ro}
        """)
    assert [c.id for c in load_suite(p).cases] == ["ibverbs-pin/ext4/shared",
                                                   "ibverbs-pin/ext4/shared/ro"]


@pytest.mark.parametrize("size", [4097, 1000, 0, -4096])
def test_size_must_be_positive_multiple_of_4096(tmp_path, size):
    p = suite_file(tmp_path, f"cases: [{{workload: ibverbs-pin, fs: ext4, size: {size}}}]\n")
    assert user_error(load_suite, p) == f"{p}: cases[0].size: must be a positive multiple of 4096"


def test_size_multiple_of_4096_is_fine(tmp_path):
    p = suite_file(tmp_path, "cases: [{workload: ibverbs-pin, fs: ext4, size: 12288}]\n")
    assert load_suite(p).cases[0].size == 12288


def test_unknown_suite_name_lists_known():
    msg = user_error(load_suite, "nope")
    assert msg.startswith("unknown suite 'nope' (known: ")
    assert "smoke" in msg


def test_explicit_null_variant_is_not_an_unknown_field(tmp_path):
    p = suite_file(tmp_path, "cases:\n  - workload: ibverbs-pin\n    fs: ext4\n    variant:\n")
    (c,) = load_suite(p).cases
    assert c.id == "ibverbs-pin/ext4/shared"


def test_empty_fs_list_is_an_error(tmp_path):
    p = suite_file(tmp_path, """\
        cases:
          - {workload: ibverbs-pin, fs: ext4}
          - {workload: lost-write, fs: []}
        """)
    with pytest.raises(UserError, match=r"cases\[1\]\.fs"):
        load_suite(p)


# ------------------------------------------------------------------------------- guests

def guest_recipe(tmp_path, extra: str = "") -> Path:
    write(tmp_path / "g" / "files" / "etc" / "motd", "hello\n")
    write(tmp_path / "g" / "files" / "usr" / "local" / "sbin" / "init", "#!/bin/sh\n")
    return Path(write(tmp_path / "g" / "mini.yaml",
                      "suite: bookworm\npackages: [python3, ndctl]\n" + extra))


def test_guest_spec_loads(tmp_path):
    p = guest_recipe(tmp_path, "size_mb: 1024\n")
    g = load_guest_spec(str(p))
    assert g == config.GuestSpec(name="mini", suite="bookworm", packages=("python3", "ndctl"),
                                 size_mb=1024, files_dir=p.parent / "files", path=p)


def test_guest_packages_scalar_becomes_tuple(tmp_path):
    p = write(tmp_path / "g.yaml", "suite: trixie\npackages: fio\n")
    assert load_guest_spec(p).packages == ("fio",)


def test_guest_size_minimum(tmp_path):
    p = write(tmp_path / "g.yaml", "suite: bookworm\npackages: [fio]\nsize_mb: 100\n")
    assert user_error(load_guest_spec, p) == f"{p}: size_mb: must be at least 512"


def test_guest_missing_packages(tmp_path):
    p = write(tmp_path / "g.yaml", "suite: bookworm\n")
    assert user_error(load_guest_spec, p) == f"{p}: packages: is required"


def test_unknown_guest_name():
    msg = user_error(load_guest_spec, "nope")
    assert msg.startswith("unknown guest recipe 'nope' (known: ") and "bookworm" in msg


def test_recipe_hash_is_stable(tmp_path):
    p = guest_recipe(tmp_path)
    h1 = load_guest_spec(str(p)).recipe_hash()
    assert h1 == load_guest_spec(str(p)).recipe_hash()
    assert len(h1) == 64 and int(h1, 16) >= 0


def test_recipe_hash_changes_when_a_file_changes(tmp_path):
    p = guest_recipe(tmp_path)
    h1 = load_guest_spec(str(p)).recipe_hash()
    (p.parent / "files" / "etc" / "motd").write_text("hello!\n")
    h2 = load_guest_spec(str(p)).recipe_hash()
    assert h2 != h1
    (p.parent / "files" / "etc" / "motd").write_text("hello\n")
    assert load_guest_spec(str(p)).recipe_hash() == h1


def test_recipe_hash_changes_when_a_file_is_added_or_renamed(tmp_path):
    p = guest_recipe(tmp_path)
    h1 = load_guest_spec(str(p)).recipe_hash()
    motd = p.parent / "files" / "etc" / "motd"
    motd.rename(motd.with_name("issue"))
    h2 = load_guest_spec(str(p)).recipe_hash()
    assert h2 != h1
    write(p.parent / "files" / "etc" / "new", "")
    assert load_guest_spec(str(p)).recipe_hash() not in (h1, h2)


def test_recipe_hash_changes_when_the_recipe_changes(tmp_path):
    p = guest_recipe(tmp_path)
    h1 = load_guest_spec(str(p)).recipe_hash()
    p.write_text(p.read_text().replace("ndctl", "ndctl, fio"))
    assert load_guest_spec(str(p)).recipe_hash() != h1


def test_recipe_hash_changes_when_a_file_mode_changes(tmp_path):
    p = guest_recipe(tmp_path)
    init = p.parent / "files" / "usr" / "local" / "sbin" / "init"
    init.chmod(0o644)
    h1 = load_guest_spec(str(p)).recipe_hash()
    init.chmod(0o755)
    assert load_guest_spec(str(p)).recipe_hash() != h1


# ------------------------------------------------------------------------------- the repo's own

def _repo_yaml(sub: str):
    return sorted((paths.REPO / sub).glob("*.yaml"))


@pytest.mark.parametrize("path", _repo_yaml("configs/suites"), ids=lambda p: p.name)
def test_repo_suites_load(path):
    s = load_suite(str(path))
    assert s.cases
    assert len({c.id for c in s.cases}) == len(s.cases)


@pytest.mark.parametrize("path", _repo_yaml("kernels"), ids=lambda p: p.name)
def test_repo_kernels_load(path):
    assert load_kernel_spec(str(path)).name


@pytest.mark.parametrize("path", _repo_yaml("guests"), ids=lambda p: p.name)
def test_repo_guests_load(path):
    g = load_guest_spec(str(path))
    assert g.packages and g.size_mb >= 512


def test_smoke_suite_cases():
    s = load_suite("smoke")
    assert [c.id for c in s.cases] == ["ibverbs-pin/ext4/shared", "ibverbs-pin/tmpfs/shared"]


def test_bookworm_guest_ships_pinrig_init():
    g = load_guest_spec("bookworm")
    assert (g.files_dir / "usr/local/sbin/pinrig-init").is_file()
    assert "openssh-server" in g.packages and "ndctl" in g.packages


# ------------------------------------------------------------------------------- names become paths

@pytest.mark.parametrize("variant", ["../../victim", "a b", "x'; reboot -f; '", "@2", ".hidden",
                                     "a/b", "new\nline", "comma,here", "", "x" * 65])
def test_case_id_parts_have_one_character_set(tmp_path, variant):
    import json
    body = "cases:\n  - workload: ibverbs-pin\n    fs: ext4\n    variant: %s\n" % json.dumps(variant)
    msg = user_error(load_suite, suite_file(tmp_path, body))
    assert "cases[0].variant" in msg and "not a valid case id part" in msg
    assert "\n" not in msg.strip()


@pytest.mark.parametrize("variant", ["ro", "control", "v2.1", "no-pressure_x"])
def test_plain_variants_still_load(tmp_path, variant):
    s = load_suite(suite_file(tmp_path, f"cases:\n  - {{workload: ibverbs-pin, fs: ext4, variant: {variant}}}\n"))
    assert s.cases[0].id == f"ibverbs-pin/ext4/shared/{variant}"


def test_suite_name_is_a_path_component(tmp_path):
    msg = user_error(load_suite, suite_file(tmp_path, "name: ../x\ncases:\n  - {workload: ibverbs-pin, fs: ext4}\n"))
    assert ": name:" in msg and "not a valid name" in msg


@pytest.mark.parametrize("knob, value", [("dirty_ratio", -7), ("dirty_ratio", 101),
                                         ("memcg_limit_mb", 0), ("dirty_expire_centisecs", -1)])
def test_pressure_out_of_range_is_refused_at_load(tmp_path, knob, value):
    body = f"pressure: {{{knob}: {value}}}\ncases:\n  - {{workload: ibverbs-pin, fs: ext4}}\n"
    msg = user_error(load_suite, suite_file(tmp_path, body))
    assert f"pressure.{knob}" in msg and "out of range" in msg


@pytest.mark.parametrize("mirror", ["http://deb.debian.org/debian\ndeb http://evil/ x main",
                                    "ftp://x/debian", "http://x/debian main", "'http://x'"])
def test_mirror_must_be_one_url(tmp_path, mirror):
    import json
    p = write(tmp_path / "k.yaml", f"suite: bookworm\nmirror: {json.dumps(mirror)}\n")
    msg = user_error(load_kernel_spec, p)
    assert ": mirror:" in msg and "not an http(s) URL" in msg


def test_version_must_be_a_debian_version(tmp_path):
    p = write(tmp_path / "k.yaml", "suite: bookworm\nversion: ../../etc\n")
    assert "not a Debian package version" in user_error(load_kernel_spec, p)


def test_anon_coherency_variants_are_its_triggers(tmp_path):
    p = suite_file(tmp_path, """\
        cases:
          - workload: anon-coherency
            fs: tmpfs
            mapping: private
            size: 2097152
            variant: [control, ksm]
        """)
    assert [c.id for c in load_suite(p).cases] == ["anon-coherency/tmpfs/private/control",
                                                   "anon-coherency/tmpfs/private/ksm"]
    bad = suite_file(tmp_path, "cases: [{workload: anon-coherency, fs: tmpfs, variant: [ksm, uprobes]}]\n",
                     name="bad.yaml")
    with pytest.raises(UserError, match=r"cases\[0\]\.variant\[1\]: unknown variant 'uprobes' of "
                                        r"anon-coherency \(known: control, fork-child-write"):
        load_suite(bad)


def test_kernel_append_words(tmp_path):
    p = suite_file(tmp_path, "kernel_append: [numa=fake=2, transparent_hugepage=madvise]\n"
                             "cases: [{workload: ibverbs-pin, fs: tmpfs}]\n")
    assert load_suite(p).kernel_append == ("numa=fake=2", "transparent_hugepage=madvise")
    assert load_suite(suite_file(tmp_path, "cases: [{workload: ibverbs-pin, fs: tmpfs}]\n",
                                 name="plain.yaml")).kernel_append == ()


@pytest.mark.parametrize("word, msg", [
    ("a b", "is not a kernel parameter"), ("x=$(reboot)", "is not a kernel parameter"),
    ("init=/bin/sh", "is not a kernel parameter"), ("panic=0", "the rig sets panic= itself"),
    ("console=tty0", "the rig sets console= itself")])
def test_kernel_append_refuses_what_is_not_a_plain_parameter(tmp_path, word, msg):
    p = suite_file(tmp_path, f"kernel_append: ['{word}']\ncases: [{{workload: ibverbs-pin, fs: tmpfs}}]\n")
    with pytest.raises(UserError, match=r"kernel_append\[0\]: .*" + msg):
        load_suite(p)


def test_the_anon_coherency_suite_loads():
    s = load_suite("anon-coherency")
    assert s.kernel_append == ("numa=fake=2",)
    assert {c.variant for c in s.cases} == set(config.workloads.ANON_TRIGGERS)
    assert all(c.size % (2 << 20) == 0 for c in s.cases)


def test_guest_mem_mb_is_checked(tmp_path):
    p = suite_file(tmp_path, "guest_mem_mb: 4096\ncases: [{workload: ibverbs-pin, fs: tmpfs}]\n")
    assert load_suite(p).guest_mem_mb == 4096
    bad = suite_file(tmp_path, "guest_mem_mb: 64\ncases: [{workload: ibverbs-pin, fs: tmpfs}]\n",
                     name="bad.yaml")
    with pytest.raises(UserError, match=r"guest_mem_mb: 64 is out of range \(1024\.\.8192\)"):
        load_suite(bad)
