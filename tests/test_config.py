"""Config: every key of [tool.ckpt-lsp], every error message, CLI and editor layers."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from ckpt_lsp.config import (
    DEFAULT_EXCLUDES,
    Config,
    ConfigError,
    find_pyproject,
    load_config,
    parse_settings,
)
from ckpt_lsp.rules import RULES

ALL = frozenset(RULES)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory that is also the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(project: Path, body: str) -> Path:
    path = project / "pyproject.toml"
    path.write_text(body, encoding="utf-8")
    return path


def load_error(project: Path, body: str) -> str:
    write(project, body)
    with pytest.raises(ConfigError) as info:
        load_config(project)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- finding and reading the file --------------------------------------------------------------


def test_find_pyproject_walks_up_from_file_and_dir(project: Path) -> None:
    write(project, "")
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "m.py").write_text("")
    assert find_pyproject(deep) == project / "pyproject.toml"
    assert find_pyproject(deep / "m.py") == project / "pyproject.toml"
    nested = write(deep, "")
    assert find_pyproject(deep / "m.py") == nested


def test_find_pyproject_none(tmp_path: Path) -> None:
    # /tmp itself has no pyproject.toml on this machine; a directory below it neither.
    start = tmp_path / "x"
    start.mkdir()
    if any((p / "pyproject.toml").is_file() for p in start.parents):
        pytest.skip("a pyproject.toml above the temp directory")
    assert find_pyproject(start) is None


def test_no_pyproject_gives_defaults_rooted_at_cwd(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("ckpt_lsp.config.find_pyproject", lambda start: None)
    config = load_config()
    assert config.root == tmp_path
    assert config.select is None and config.ignore == frozenset()
    assert config.exclude == DEFAULT_EXCLUDES
    assert config.cache_path == tmp_path / ".ckpt_cache"


def test_pyproject_without_table_gives_defaults_rooted_there(project: Path) -> None:
    write(project, '[project]\nname = "x"\n[tool.ruff]\nline-length = 100\n')
    sub = project / "src"
    sub.mkdir()
    config = load_config(sub)
    assert config.root == project
    assert config == Config(root=project, cache_dir=project / ".ckpt_cache")


def test_explicit_pyproject_argument(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    path = write(other, '[tool.ckpt-lsp]\nignore = ["CKPT004"]\n')
    config = load_config(tmp_path, pyproject=path)
    assert config.root == other
    assert config.ignore == {"CKPT004"}


def test_every_key(project: Path) -> None:
    write(
        project,
        """
[tool.ckpt-lsp]
select = ["CKPT00"]
ignore = ["CKPT004"]
extend-model-bases = ["mylib.base.Trainable", "other.Model"]
extend-hazards = { "mydb.connect" = "CKPT002", "mylib.Pool" = "ckpt005" }
exclude = ["generated"]
extend-exclude = ["scratch/", "*_pb2.py"]
per-file-ignores = { "tests/**" = ["CKPT003"], "__init__.py" = ["CKPT007", "CKPT008"] }
severity = { CKPT004 = "error", CKPT001 = "Hint" }
cache-dir = ".cache/ckpt"
""",
    )
    config = load_config(project)
    assert config.select == {code for code in ALL if code.startswith("CKPT00")}  # a prefix
    assert config.ignore == {"CKPT004"}
    assert config.extend_model_bases == ("mylib.base.Trainable", "other.Model")
    assert config.extend_hazards == {"mydb.connect": "CKPT002", "mylib.Pool": "CKPT005"}
    assert config.exclude == ("generated",)
    assert config.extend_exclude == ("scratch/", "*_pb2.py")
    assert config.per_file_ignores == {
        "tests/**": frozenset({"CKPT003"}),
        "__init__.py": frozenset({"CKPT007", "CKPT008"}),
    }
    assert config.severity == {"CKPT004": "error", "CKPT001": "hint"}
    assert config.severity_of("CKPT004", "warning") == "error"
    assert config.severity_of("CKPT002", "error") == "error"
    assert config.cache_dir == project / ".cache" / "ckpt"
    assert config.cache_path == project / ".cache" / "ckpt"


def test_absolute_cache_dir(project: Path, tmp_path_factory) -> None:
    target = tmp_path_factory.mktemp("cache")
    write(project, f'[tool.ckpt-lsp]\ncache-dir = "{target.as_posix()}"\n')
    assert load_config(project).cache_dir == target


# -- rule selection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("CKPT001", {"CKPT001"}),
        ("ckpt001", {"CKPT001"}),
        ("CKPT00", {code for code in ALL if code.startswith("CKPT00")}),
        ("CKPT0", ALL),
        ("CKPT", ALL),
        ("ALL", ALL),
    ],
)
def test_select_prefixes(project: Path, selector: str, expected: set[str]) -> None:
    write(project, f'[tool.ckpt-lsp]\nselect = ["{selector}"]\n')
    assert load_config(project).select == expected


def test_empty_select_enables_nothing(project: Path) -> None:
    write(project, "[tool.ckpt-lsp]\nselect = []\n")
    config = load_config(project)
    assert not any(config.is_enabled(code) for code in RULES)


def test_ignore_wins_over_equally_specific_select(project: Path) -> None:
    write(project, '[tool.ckpt-lsp]\nselect = ["CKPT001"]\nignore = ["CKPT001"]\n')
    assert not load_config(project).is_enabled("CKPT001")


def test_more_specific_select_beats_prefix_ignore(project: Path) -> None:
    write(project, '[tool.ckpt-lsp]\nselect = ["CKPT001", "CKPT002"]\nignore = ["CKPT"]\n')
    config = load_config(project)
    assert config.is_enabled("CKPT001")
    assert config.is_enabled("CKPT002")
    assert not config.is_enabled("CKPT003")


def test_prefix_ignore_with_specific_exception(project: Path) -> None:
    write(project, '[tool.ckpt-lsp]\nselect = ["CKPT00"]\nignore = ["CKPT004"]\n')
    config = load_config(project)
    assert [code for code in RULES if config.is_enabled(code)] == [
        code for code in RULES if code.startswith("CKPT00") and code != "CKPT004"
    ]


def test_per_file_ignores_globs(project: Path) -> None:
    write(
        project,
        """
[tool.ckpt-lsp]
[tool.ckpt-lsp.per-file-ignores]
"tests/**" = ["CKPT003"]
"__init__.py" = ["CKPT"]
"src/*/legacy_*.py" = ["CKPT001"]
"!src/**" = ["CKPT009"]
""",
    )
    config = load_config(project)
    assert not config.is_enabled("CKPT003", "tests/unit/test_a.py")
    assert not config.is_enabled("CKPT003", project / "tests" / "test_b.py")
    assert config.is_enabled("CKPT003", "src/tests_helper.py")
    assert config.is_enabled("CKPT003")  # no file: only select/ignore count
    # a pattern without a slash matches the file name at any depth
    assert not config.is_enabled("CKPT005", "pkg/sub/__init__.py")
    assert config.is_enabled("CKPT005", "pkg/sub/init.py")
    assert not config.is_enabled("CKPT001", "src/pkg/legacy_io.py")
    assert config.is_enabled("CKPT001", "src/pkg/io.py")
    # "!" inverts: everything outside src/ ignores CKPT009
    assert config.is_enabled("CKPT009", "src/pkg/io.py")
    assert not config.is_enabled("CKPT009", "scripts/run.py")
    assert config.ignored_for("tests/x.py") == {"CKPT003", "CKPT009"}


def test_per_file_ignores_from_another_cwd(project: Path, monkeypatch) -> None:
    write(project, '[tool.ckpt-lsp]\nper-file-ignores = { "tests/*.py" = ["CKPT003"] }\n')
    config = load_config(project)
    monkeypatch.chdir(project.parent)
    assert not config.is_enabled("CKPT003", f"{project.name}/tests/a.py")
    assert config.is_enabled("CKPT003", "tests/a.py")  # not below the root from here


def test_severity_prefix_and_specific_key(project: Path) -> None:
    write(project, '[tool.ckpt-lsp]\nseverity = { CKPT001 = "error", CKPT = "warning" }\n')
    severity = load_config(project).severity
    assert severity["CKPT001"] == "error"  # more specific wins whatever the order
    assert {severity[c] for c in RULES if c != "CKPT001"} == {"warning"}


# -- errors: one line, naming the file and the key -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "[tool.ckpt-lsp]\nselct = []\n",
            "pyproject.toml: [tool.ckpt-lsp] unknown key 'selct' (did you mean 'select'?)",
        ),
        (
            "[tool.ckpt-lsp]\nextend_model_bases = []\n",
            "pyproject.toml: [tool.ckpt-lsp] unknown key 'extend_model_bases' "
            "(did you mean 'extend-model-bases'?)",
        ),
        (
            "[tool.ckpt-lsp]\nzzz = 1\n",
            "pyproject.toml: [tool.ckpt-lsp] unknown key 'zzz'",
        ),
        (
            '[tool.ckpt-lsp]\nselect = "CKPT001"\n',
            "pyproject.toml: [tool.ckpt-lsp] select: expected a list of strings, got a string",
        ),
        (
            "[tool.ckpt-lsp]\nignore = [1]\n",
            "pyproject.toml: [tool.ckpt-lsp] ignore: expected a list of strings, "
            "found a number in it",
        ),
        (
            '[tool.ckpt-lsp]\nselect = ["CKPT0099"]\n',
            "pyproject.toml: [tool.ckpt-lsp] select: unknown rule code 'CKPT0099' "
            "(did you mean 'CKPT009'?)",
        ),
        (
            '[tool.ckpt-lsp]\nignore = ["E501"]\n',
            "pyproject.toml: [tool.ckpt-lsp] ignore: unknown rule code 'E501'",
        ),
        (
            '[tool.ckpt-lsp]\nselect = ["C"]\n',
            "pyproject.toml: [tool.ckpt-lsp] select: unknown rule code 'C'",
        ),
        (
            '[tool.ckpt-lsp]\nper-file-ignores = { "tests/*" = ["CKPT9"] }\n',
            "pyproject.toml: [tool.ckpt-lsp] per-file-ignores 'tests/*': "
            "unknown rule code 'CKPT9' (did you mean 'CKPT009'?)",
        ),
        (
            '[tool.ckpt-lsp]\nper-file-ignores = ["tests"]\n',
            "pyproject.toml: [tool.ckpt-lsp] per-file-ignores: expected a table, got a list",
        ),
        (
            '[tool.ckpt-lsp]\nseverity = { CKPT004 = "fatal" }\n',
            "pyproject.toml: [tool.ckpt-lsp] severity CKPT004: unknown severity 'fatal' "
            "(expected one of: error, warning, information, hint)",
        ),
        (
            "[tool.ckpt-lsp]\nseverity = { CKPT004 = 2 }\n",
            "pyproject.toml: [tool.ckpt-lsp] severity CKPT004: unknown severity a number "
            "(expected one of: error, warning, information, hint)",
        ),
        (
            '[tool.ckpt-lsp]\nseverity = { CKPT404 = "error" }\n',
            "pyproject.toml: [tool.ckpt-lsp] severity: unknown rule code 'CKPT404' "
            "(did you mean 'CKPT004'?)",
        ),
        (
            '[tool.ckpt-lsp]\nextend-hazards = { "mydb.connect" = "CKPT042" }\n',
            "pyproject.toml: [tool.ckpt-lsp] extend-hazards 'mydb.connect': "
            "unknown rule code 'CKPT042' (did you mean 'CKPT004'?)",
        ),
        (
            '[tool.ckpt-lsp]\nextend-hazards = { "mydb.connect" = "CKPT00" }\n',
            "pyproject.toml: [tool.ckpt-lsp] extend-hazards 'mydb.connect': "
            "expected one rule code, got 'CKPT00' which matches 9 rules",
        ),
        (
            '[tool.ckpt-lsp]\nextend-hazards = { "mydb.connect" = 2 }\n',
            "pyproject.toml: [tool.ckpt-lsp] extend-hazards 'mydb.connect': "
            "expected a rule code string, got a number",
        ),
        (
            '[tool.ckpt-lsp]\nextend-hazards = { "my db()" = "CKPT002" }\n',
            "pyproject.toml: [tool.ckpt-lsp] extend-hazards: 'my db()' is not a qualified "
            "name like 'package.module.Name'",
        ),
        (
            '[tool.ckpt-lsp]\nextend-model-bases = ["mylib.Base", "1bad"]\n',
            "pyproject.toml: [tool.ckpt-lsp] extend-model-bases: '1bad' is not a qualified "
            "name like 'package.module.Name'",
        ),
        (
            '[tool.ckpt-lsp]\nexclude = ["ok", "bad\\\\"]\n',
            "pyproject.toml: [tool.ckpt-lsp] exclude: invalid pattern 'bad\\'",
        ),
        (
            "[tool.ckpt-lsp]\nextend-exclude = {}\n",
            "pyproject.toml: [tool.ckpt-lsp] extend-exclude: expected a list of strings, "
            "got a table",
        ),
        (
            "[tool.ckpt-lsp]\ncache-dir = false\n",
            "pyproject.toml: [tool.ckpt-lsp] cache-dir: expected a directory path, got a boolean",
        ),
        (
            '[tool]\nckpt-lsp = "yes"\n',
            "pyproject.toml: [tool.ckpt-lsp] must be a table, got a string",
        ),
        (
            "[tool.ckpt-lsp]\nselect = [\n",
            "pyproject.toml: invalid TOML: Invalid value (line 2)",
        ),
        (
            "[project]\nname = 'x'\n[tool.ckpt-lsp\nselect = []\n",
            "pyproject.toml: invalid TOML: Expected ']' at the end of a table declaration (line 3)",
        ),
        (
            "[tool.ckpt-lsp]\nselect = []\nselect = []\n",
            "pyproject.toml: invalid TOML: Cannot overwrite a value (line 3)",
        ),
    ],
)
def test_errors(project: Path, body: str, message: str) -> None:
    assert load_error(project, body) == message


def test_error_names_the_file_relative_to_cwd(project: Path) -> None:
    sub = project / "pkg"
    sub.mkdir()
    write(sub, "[tool.ckpt-lsp]\nzzz = 1\n")
    with pytest.raises(ConfigError, match=r"^pkg/pyproject.toml: \[tool.ckpt-lsp\] unknown key"):
        load_config(sub)


def test_not_utf8(project: Path) -> None:
    (project / "pyproject.toml").write_bytes(b"[tool.ckpt-lsp]\n# \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"^pyproject.toml: not valid UTF-8 \(byte 18\)$"):
        load_config(project)


def test_unreadable_pyproject(project: Path) -> None:
    (project / "pyproject.toml").mkdir()  # a directory where the file should be
    with pytest.raises(ConfigError, match=r"^pyproject.toml: cannot read: "):
        load_config(project, pyproject=project / "pyproject.toml")


# -- layers: CLI overrides and editor settings -----------------------------------------------------


@pytest.fixture
def base(project: Path) -> Config:
    write(
        project,
        """
[tool.ckpt-lsp]
ignore = ["CKPT004"]
extend-model-bases = ["a.Base"]
severity = { CKPT001 = "warning" }
per-file-ignores = { "tests/**" = ["CKPT003"] }
extend-exclude = ["gen"]
""",
    )
    return load_config(project)


def test_override_select_replaces_rules_and_config_ignore(base: Config) -> None:
    config = base.with_overrides(select=["CKPT004", "CKPT001"])
    assert config.select == {"CKPT001", "CKPT004"}
    assert config.is_enabled("CKPT004")  # the CLI's select wins over the file's ignore
    assert not config.is_enabled("CKPT002")


def test_override_ignore_adds(base: Config) -> None:
    config = base.with_overrides(ignore="CKPT001, CKPT002")
    assert config.ignore == {"CKPT001", "CKPT002", "CKPT004"}
    assert config.select is None


def test_override_comma_string_and_merges(base: Config, project: Path) -> None:
    config = base.with_overrides(
        select="CKPT00",
        extend_model_bases=["b.Model", "a.Base"],
        extend_hazards={"x.y": "CKPT009"},
        severity={"CKPT002": "information"},
        exclude=["only"],
        extend_exclude=["more"],
        per_file_ignores={"docs/*": ["CKPT001"]},
        cache_dir="cachehere",
    )
    assert config.select == {code for code in ALL if code.startswith("CKPT00")}
    assert config.extend_model_bases == ("a.Base", "b.Model")
    assert config.extend_hazards == {"x.y": "CKPT009"}
    assert config.severity == {"CKPT001": "warning", "CKPT002": "information"}
    assert config.exclude == ("only",)
    assert config.extend_exclude == ("gen", "more")
    assert set(config.per_file_ignores) == {"tests/**", "docs/*"}
    assert config.cache_dir == project / "cachehere"  # relative to the working directory
    assert base.select is None  # the original is untouched


def test_override_nothing_returns_equal_config(base: Config) -> None:
    assert base.with_overrides() == base


def test_override_errors(base: Config) -> None:
    with pytest.raises(ConfigError) as info:
        base.with_overrides(select=["CKPT9"])
    assert str(info.value) == (
        "command line: select: unknown rule code 'CKPT9' (did you mean 'CKPT009'?)"
    )
    with pytest.raises(ConfigError) as info:
        base.with_overrides(ignore=["x"], source="--ignore")
    assert str(info.value) == "--ignore: ignore: unknown rule code 'x'"


def test_parse_settings(base: Config) -> None:
    config = parse_settings(
        {
            "enable": True,
            "interpreter": ["/usr/bin/python3"],
            "select": ["CKPT001", "CKPT004"],
            "severity": {"CKPT004": "hint"},
            "extendModelBases": ["c.Net"],
            "extendHazards": {"lib.open_thing": "CKPT001"},
        },
        base,
    )
    assert config.select == {"CKPT001", "CKPT004"}
    assert config.is_enabled("CKPT004")
    assert config.severity["CKPT004"] == "hint"
    assert config.severity["CKPT001"] == "warning"  # from pyproject
    assert config.extend_model_bases == ("a.Base", "c.Net")
    assert config.extend_hazards == {"lib.open_thing": "CKPT001"}


def test_parse_settings_null_and_empty_mean_unset(base: Config) -> None:
    assert parse_settings({"select": None, "ignore": None, "severity": None}, base) == base
    assert parse_settings({"select": []}, base) == base
    assert parse_settings({}, base) == base


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"select": ["CKPT999"]},
            "ckpt-lsp settings: select: unknown rule code 'CKPT999' (did you mean 'CKPT009'?)",
        ),
        (
            {"ignore": "CKPT001"},
            None,  # a string is accepted (comma separated) for the CLI and the editor
        ),
        (
            {"extendModelBases": "a.B"},
            "ckpt-lsp settings: extendModelBases: expected a list of strings, got a string",
        ),
        (
            {"severity": {"CKPT001": "loud"}},
            "ckpt-lsp settings: severity CKPT001: unknown severity 'loud' "
            "(expected one of: error, warning, information, hint)",
        ),
        (
            {"severity": ["CKPT001"]},
            "ckpt-lsp settings: severity: expected a table, got a list",
        ),
    ],
)
def test_parse_settings_errors(base: Config, settings: dict, message: str | None) -> None:
    if message is None:
        assert parse_settings(settings, base).is_enabled("CKPT001") is False
        return
    with pytest.raises(ConfigError) as info:
        parse_settings(settings, base)
    assert str(info.value) == message


def test_parse_settings_rejects_non_object(base: Config) -> None:
    with pytest.raises(ConfigError, match="^ckpt-lsp settings: expected an object, got a list$"):
        parse_settings([], base)  # type: ignore[arg-type]


# -- identity: fingerprint, hashing, pickling ------------------------------------------------


def test_fingerprint_is_stable(base: Config, project: Path) -> None:
    assert base.fingerprint() == load_config(project).fingerprint()
    assert len(base.fingerprint()) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"select": ["CKPT001"]},
        {"ignore": ["CKPT002"]},
        {"extend_model_bases": ["z.Z"]},
        {"extend_hazards": {"z.z": "CKPT001"}},
        {"per_file_ignores": {"x/*": ["CKPT001"]}},
        {"severity": {"CKPT009": "hint"}},
    ],
)
def test_fingerprint_changes_with_each_analysis_field(base: Config, change: dict) -> None:
    assert base.with_overrides(**change).fingerprint() != base.fingerprint()


def test_fingerprint_changes_with_root(base: Config, tmp_path: Path) -> None:
    import dataclasses

    moved = dataclasses.replace(base, root=tmp_path / "elsewhere")
    assert moved.fingerprint() != base.fingerprint()


def test_fingerprint_ignores_walk_only_fields(base: Config) -> None:
    assert base.with_overrides(extend_exclude=["x"]).fingerprint() == base.fingerprint()
    assert base.with_overrides(cache_dir="/elsewhere").fingerprint() == base.fingerprint()


def test_config_is_hashable_and_picklable(base: Config) -> None:
    base.is_enabled("CKPT003", "tests/a.py")  # fills the compiled pattern cache
    clone = pickle.loads(pickle.dumps(base))
    assert clone == base and hash(clone) == hash(base)
    assert not clone.is_enabled("CKPT003", "tests/a.py")
    assert {base: 1}[clone] == 1
