"""Project configuration: `[tool.ckpt-lsp]` in pyproject.toml, CLI overrides, editor settings.

Every face (CLI, language server, cache) reads one immutable `Config`, so a setting means the
same thing everywhere. Bad input raises `ConfigError` whose text is one line naming the file
and the key: the CLI prints it and exits, the server shows it, nobody sees a traceback.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pathspec

from ckpt_lsp import __version__
from ckpt_lsp.rules import RULES, SEVERITIES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

__all__ = [
    "DEFAULT_EXCLUDES",
    "SEVERITIES",
    "Config",
    "ConfigError",
    "expand_selectors",
    "find_pyproject",
    "load_config",
    "parse_settings",
]

# Directories nobody wants checked; the same spirit as ruff's default `exclude`.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".bzr",
    ".ckpt_cache",
    ".direnv",
    ".eggs",
    ".git",
    ".git-rewrite",
    ".hg",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".nox",
    ".pants.d",
    ".pyenv",
    ".pytest_cache",
    ".pytype",
    ".ruff_cache",
    ".svn",
    ".tox",
    ".venv",
    ".vscode",
    "__pypackages__",
    "_build",
    "buck-out",
    "build",
    "dist",
    "node_modules",
    "site-packages",
    "venv",
)

RULE_PREFIX = "CKPT"
TABLE = "[tool.ckpt-lsp]"
DEFAULT_CACHE_DIR = ".ckpt_cache"

_QUALNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TOML_WHERE = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)\s*$")


class ConfigError(Exception):
    """A configuration problem; `str(e)` is one line that names the file and the key."""


# ----------------------------------------------------------------------------------------------
# rule selectors


def expand_selectors(selectors: Iterable[str], where: str) -> dict[str, frozenset[str]]:
    """Map each selector ("CKPT001", "CKPT00", "CKPT", "ALL") to the codes it stands for.

    Prefixes select every matching rule, as in ruff. `where` starts the error message.
    """
    out: dict[str, frozenset[str]] = {}
    for raw in selectors:
        out[raw] = _expand_one(raw, where)
    return out


def _expand_one(raw: str, where: str) -> frozenset[str]:
    selector = raw.strip().upper()
    if selector == "ALL":
        return frozenset(RULES)
    codes = frozenset(c for c in RULES if c.startswith(selector))
    if not selector.startswith(RULE_PREFIX) or not codes:
        hint = difflib.get_close_matches(selector, list(RULES), n=1, cutoff=0.6)
        tail = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise ConfigError(f"{where}: unknown rule code '{raw}'{tail}")
    return codes


def _specificity(selector: str) -> int:
    selector = selector.strip().upper()
    return 0 if selector == "ALL" else len(selector)


def _resolve_layer(
    select: Iterable[str] | None,
    ignore: Iterable[str],
    where_select: str,
    where_ignore: str,
) -> tuple[frozenset[str] | None, frozenset[str]]:
    """One layer of select/ignore, resolved like ruff: the more specific selector wins.

    `select = ["CKPT001"]` with `ignore = ["CKPT"]` keeps CKPT001; on a tie, ignore wins.
    """
    sel = expand_selectors(select, where_select) if select is not None else None
    ign = expand_selectors(ignore, where_ignore)
    selected = frozenset().union(*sel.values()) if sel is not None else None
    ignored: set[str] = set()
    for code in RULES:
        best_ignore = max((_specificity(s) for s, c in ign.items() if code in c), default=-1)
        if best_ignore < 0:
            continue
        best_select = (
            max((_specificity(s) for s, c in sel.items() if code in c), default=-1)
            if sel is not None
            else -1
        )
        if best_ignore >= best_select:
            ignored.add(code)
    return selected, frozenset(ignored)


# ----------------------------------------------------------------------------------------------
# the config object


@dataclass(frozen=True)
class Config:
    """Everything that changes what is checked and how it is reported.

    Immutable and picklable (worker processes receive it). Mapping fields are excluded from
    the hash so the object stays hashable; equality still compares them.
    """

    root: Path
    select: frozenset[str] | None = None  # None: every rule
    ignore: frozenset[str] = frozenset()
    extend_model_bases: tuple[str, ...] = ()
    extend_hazards: Mapping[str, str] = field(default_factory=dict, hash=False)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES
    extend_exclude: tuple[str, ...] = ()
    per_file_ignores: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)
    severity: Mapping[str, str] = field(default_factory=dict, hash=False)
    # findings whose hazard a factory returns for some arguments only (docs/rules/CKPT003.md)
    conditional_severity: str = "warning"
    cache_dir: Path | None = None  # None: root / ".ckpt_cache"

    # -- queries --------------------------------------------------------------------------

    @property
    def cache_path(self) -> Path:
        """The cache directory to use, with the default applied."""
        return self.cache_dir if self.cache_dir is not None else self.root / DEFAULT_CACHE_DIR

    def is_enabled(self, code: str, filename: str | Path | None = None) -> bool:
        """Whether findings of `code` are reported (for `filename`, when given)."""
        code = code.upper()
        if self.select is not None and code not in self.select:
            return False
        if code in self.ignore:
            return False
        return not (filename is not None and code in self.ignored_for(filename))

    def ignored_for(self, filename: str | Path) -> frozenset[str]:
        """Codes that `per-file-ignores` switch off for this file."""
        if not self.per_file_ignores:
            return frozenset()
        rel = self._relative(filename)
        codes: set[str] = set()
        for negated, spec, pattern_codes in self._per_file_specs:
            if spec.match_file(rel) != negated:
                codes |= pattern_codes
        return frozenset(codes)

    def severity_of(self, code: str, default: str | None = None) -> str:
        """The level findings of `code` are reported at: the configured one, else `default`,
        else the rule's own. The one place that decides it: the analysis stamps it on each
        finding, and every face (reports, diagnostics) shows the finding's."""
        code = code.upper()
        configured = self.severity.get(code)
        if configured is not None:
            return configured
        if default is not None:
            return default
        rule = RULES.get(code)
        return rule.severity if rule is not None else "warning"

    def fingerprint(self) -> str:
        """A stable hash of every field that can change a file's findings (the cache key)."""
        payload = {
            "version": __version__,
            "root": str(self.root),
            "select": sorted(self.select) if self.select is not None else None,
            "ignore": sorted(self.ignore),
            "extend_model_bases": list(self.extend_model_bases),
            "extend_hazards": sorted(self.extend_hazards.items()),
            "per_file_ignores": sorted((k, sorted(v)) for k, v in self.per_file_ignores.items()),
            "severity": sorted(self.severity.items()),
            "conditional_severity": self.conditional_severity,
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    # -- derived values ---------------------------------------------------------------------

    @cached_property
    def _per_file_specs(self) -> tuple[tuple[bool, pathspec.PathSpec, frozenset[str]], ...]:
        specs = []
        for pattern, codes in self.per_file_ignores.items():
            negated = pattern.startswith("!")
            body = pattern[1:] if negated else pattern
            specs.append((negated, pathspec.GitIgnoreSpec.from_lines([body]), frozenset(codes)))
        return tuple(specs)

    def _relative(self, filename: str | Path) -> str:
        path = Path(filename)
        if not path.is_absolute():
            path = Path.cwd() / path
        try:
            return Path(os.path.normpath(path)).relative_to(self.root).as_posix()
        except ValueError:
            return Path(os.path.normpath(path)).as_posix()

    # -- building new configs ---------------------------------------------------------------

    def with_overrides(
        self,
        *,
        select: Iterable[str] | str | None = None,
        ignore: Iterable[str] | str | None = None,
        extend_model_bases: Iterable[str] | None = None,
        extend_hazards: Mapping[str, str] | None = None,
        severity: Mapping[str, str] | None = None,
        exclude: Iterable[str] | None = None,
        extend_exclude: Iterable[str] | None = None,
        per_file_ignores: Mapping[str, Iterable[str]] | None = None,
        cache_dir: str | Path | None = None,
        source: str = "command line",
    ) -> Config:
        """A new Config with a higher-precedence layer (CLI flags, editor settings) on top.

        Like ruff's layers: a given `select` replaces the rule set and drops this config's
        `ignore`; an `ignore` alone adds to it. `extend_*`, `severity` and `per_file_ignores`
        merge into the existing values; `exclude` and `cache_dir` replace them. Strings for
        select/ignore may be comma-separated. Errors start with `source`.
        """
        return _apply_layer(
            self,
            {
                "select": select,
                "ignore": ignore,
                "extend-model-bases": extend_model_bases,
                "extend-hazards": extend_hazards,
                "severity": severity,
                "exclude": exclude,
                "extend-exclude": extend_exclude,
                "per-file-ignores": per_file_ignores,
                "cache-dir": cache_dir,
            },
            prefix=f"{source}: ",
            labels={},
            anchor=Path.cwd(),
        )


# ----------------------------------------------------------------------------------------------
# validation of one layer (pyproject table, CLI flags or editor settings)

_KEYS = (
    "select",
    "ignore",
    "extend-model-bases",
    "extend-hazards",
    "exclude",
    "extend-exclude",
    "per-file-ignores",
    "severity",
    "conditional-severity",
    "cache-dir",
)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def _str_list(value: object, where: str, *, split_commas: bool = False) -> list[str]:
    if isinstance(value, str) and split_commas:
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple, frozenset, set)) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, (list, tuple)):
        bad = next(v for v in value if not isinstance(v, str))
        raise ConfigError(f"{where}: expected a list of strings, found {_type_name(bad)} in it")
    raise ConfigError(f"{where}: expected a list of strings, got {_type_name(value)}")


def _str_table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table, got {_type_name(value)}")
    return value


def _qualname(value: str, where: str) -> str:
    if not _QUALNAME.match(value):
        raise ConfigError(f"{where}: '{value}' is not a qualified name like 'package.module.Name'")
    return value


def _check_pattern(pattern: str, where: str) -> None:
    try:
        pathspec.GitIgnoreSpec.from_lines([pattern])
    except Exception:
        raise ConfigError(f"{where}: invalid pattern '{pattern}'") from None


def _full_code(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a rule code string, got {_type_name(value)}")
    code = value.strip().upper()
    if code in RULES:
        return code
    codes = _expand_one(value, where)  # raises for unknown codes
    raise ConfigError(
        f"{where}: expected one rule code, got '{value}' which matches {len(codes)} rules"
    )


def _severity_map(value: object, where: str) -> dict[str, str]:
    table = _str_table(value, where)
    # More specific keys win over prefixes, whatever their order in the file.
    out: dict[str, tuple[int, str]] = {}
    for key, level in table.items():
        if not isinstance(level, str) or level.strip().lower() not in SEVERITIES:
            shown = f"'{level}'" if isinstance(level, str) else _type_name(level)
            raise ConfigError(
                f"{where} {key}: unknown severity {shown} "
                f"(expected one of: {', '.join(SEVERITIES)})"
            )
        for code in _expand_one(key, where):
            rank = _specificity(key)
            if code not in out or rank >= out[code][0]:
                out[code] = (rank, level.strip().lower())
    return {code: level for code, (_, level) in sorted(out.items())}


def _apply_layer(
    base: Config,
    values: Mapping[str, Any],
    *,
    prefix: str,
    labels: Mapping[str, str],
    anchor: Path,
    split_commas: bool = True,
) -> Config:
    """Validate one layer of settings and merge it over `base` (see `with_overrides`).

    `prefix` starts every error message; `labels` renames keys in them (camelCase settings);
    a relative cache-dir is taken relative to `anchor`.
    """

    def where(key: str) -> str:
        return f"{prefix}{labels.get(key, key)}"

    changes: dict[str, Any] = {}
    select = values.get("select")
    ignore = values.get("ignore")
    if select is not None or ignore is not None:
        sel_list = (
            _str_list(select, where("select"), split_commas=split_commas)
            if select is not None
            else None
        )
        ign_list = (
            _str_list(ignore, where("ignore"), split_commas=split_commas)
            if ignore is not None
            else []
        )
        selected, ignored = _resolve_layer(sel_list, ign_list, where("select"), where("ignore"))
        if sel_list is not None:
            changes["select"] = selected
            changes["ignore"] = ignored
        else:
            changes["ignore"] = base.ignore | ignored

    bases = values.get("extend-model-bases")
    if bases is not None:
        merged = list(base.extend_model_bases)
        for name in _str_list(bases, where("extend-model-bases")):
            name = _qualname(name.strip(), where("extend-model-bases"))
            if name not in merged:
                merged.append(name)
        changes["extend_model_bases"] = tuple(merged)

    hazards = values.get("extend-hazards")
    if hazards is not None:
        table = _str_table(hazards, where("extend-hazards"))
        merged_hazards = dict(base.extend_hazards)
        for name, code in table.items():
            key_where = f"{where('extend-hazards')} '{name}'"
            qualified = _qualname(name.strip(), where("extend-hazards"))
            merged_hazards[qualified] = _full_code(code, key_where)
        changes["extend_hazards"] = merged_hazards

    for key, attr in (("exclude", "exclude"), ("extend-exclude", "extend_exclude")):
        patterns = values.get(key)
        if patterns is not None:
            items = tuple(_str_list(patterns, where(key)))
            for item in items:
                _check_pattern(item, where(key))
            changes[attr] = items if key == "exclude" else base.extend_exclude + items

    pfi = values.get("per-file-ignores")
    if pfi is not None:
        table = _str_table(pfi, where("per-file-ignores"))
        merged_pfi = dict(base.per_file_ignores)
        for pattern, codes in table.items():
            key_where = f"{where('per-file-ignores')} '{pattern}'"
            _check_pattern(pattern[1:] if pattern.startswith("!") else pattern, key_where)
            expanded = expand_selectors(_str_list(codes, key_where), key_where)
            merged_pfi[pattern] = frozenset().union(*expanded.values())
        changes["per_file_ignores"] = merged_pfi

    sev = values.get("severity")
    if sev is not None:
        changes["severity"] = {**base.severity, **_severity_map(sev, where("severity"))}

    conditional = values.get("conditional-severity")
    if conditional is not None:
        if not isinstance(conditional, str) or conditional.strip().lower() not in SEVERITIES:
            shown = f"'{conditional}'" if isinstance(conditional, str) else _type_name(conditional)
            raise ConfigError(
                f"{where('conditional-severity')}: unknown severity {shown} "
                f"(expected one of: {', '.join(SEVERITIES)})"
            )
        changes["conditional_severity"] = conditional.strip().lower()

    cache_dir = values.get("cache-dir")
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, os.PathLike)) or not str(cache_dir).strip():
            raise ConfigError(
                f"{where('cache-dir')}: expected a directory path, got {_type_name(cache_dir)}"
            )
        path = Path(os.path.expanduser(str(cache_dir)))
        changes["cache_dir"] = path if path.is_absolute() else anchor / path

    return dataclasses.replace(base, **changes) if changes else base


# ----------------------------------------------------------------------------------------------
# pyproject.toml


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml in `start` (a file or directory) or one of its parents."""
    start = Path(os.path.abspath(start))
    directory = start if start.is_dir() else start.parent
    for candidate in (directory, *directory.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            return path
    return None


def _display(path: Path) -> str:
    """The path as a user would type it: relative to the working directory when below it."""
    try:
        return os.path.relpath(path) if Path.cwd() in path.parents else str(path)
    except (OSError, ValueError):
        return str(path)


def _read_toml(path: Path) -> dict[str, Any]:
    shown = _display(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: not valid UTF-8 (byte {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc).splitlines()[0] if str(exc) else "parse error"
        match = _TOML_WHERE.search(message)
        if match is None:
            raise ConfigError(f"{shown}: invalid TOML: {message}") from None
        line = match.group(1) or str(max(1, len(text.splitlines())))  # or: at end of document
        message = message[: match.start()]
        raise ConfigError(f"{shown}: invalid TOML: {message} (line {line})") from None


def load_config(start: Path | None = None, *, pyproject: Path | None = None) -> Config:
    """Read `[tool.ckpt-lsp]` from `pyproject` or the nearest pyproject.toml above `start`.

    Without a pyproject.toml the defaults apply with root = the working directory; a
    pyproject.toml without the table gives the defaults with root = its directory.
    """
    if pyproject is None:
        pyproject = find_pyproject(start if start is not None else Path.cwd())
    if pyproject is None:
        root = Path(os.path.abspath(Path.cwd()))
        return Config(root=root, cache_dir=root / DEFAULT_CACHE_DIR)

    pyproject = Path(os.path.abspath(pyproject))
    root = pyproject.parent
    base = Config(root=root, cache_dir=root / DEFAULT_CACHE_DIR)
    document = _read_toml(pyproject)
    shown = _display(pyproject)

    tool = document.get("tool", {})
    if not isinstance(tool, Mapping):
        raise ConfigError(f"{shown}: [tool] must be a table, got {_type_name(tool)}")
    table = tool.get("ckpt-lsp")
    if table is None:
        return base
    if not isinstance(table, Mapping):
        raise ConfigError(f"{shown}: {TABLE} must be a table, got {_type_name(table)}")

    for key in table:
        if key not in _KEYS:
            guess = difflib.get_close_matches(key.replace("_", "-"), _KEYS, n=1, cutoff=0.6)
            tail = f" (did you mean '{guess[0]}'?)" if guess else ""
            raise ConfigError(f"{shown}: {TABLE} unknown key '{key}'{tail}")

    return _apply_layer(
        base, table, prefix=f"{shown}: {TABLE} ", labels={}, anchor=root, split_commas=False
    )


# ----------------------------------------------------------------------------------------------
# editor settings

_SETTINGS_KEYS: dict[str, str] = {
    "select": "select",
    "ignore": "ignore",
    "severity": "severity",
    "conditionalSeverity": "conditional-severity",
    "extendModelBases": "extend-model-bases",
    "extendHazards": "extend-hazards",
}


def parse_settings(obj: Mapping[str, Any], base: Config) -> Config:
    """Apply the language client's settings (camelCase keys) over `base`.

    Unknown keys are ignored (the client sends its own: enable, interpreter, ...). A null or an
    empty list for select means "not set": an editor default must not silence every rule.
    """
    if not isinstance(obj, Mapping):
        raise ConfigError(f"ckpt-lsp settings: expected an object, got {_type_name(obj)}")
    values: dict[str, Any] = {}
    for camel, key in _SETTINGS_KEYS.items():
        value = obj.get(camel)
        if value is None:
            continue
        if camel == "select" and isinstance(value, (list, tuple)) and not value:
            continue
        values[key] = value
    labels = {key: camel for camel, key in _SETTINGS_KEYS.items()}
    return _apply_layer(base, values, prefix="ckpt-lsp settings: ", labels=labels, anchor=base.root)
