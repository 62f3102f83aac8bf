"""Which files a check covers: the paths given, walked like ruff walks them.

Directories are walked for `*.py` and, as ruff does, Jupyter notebooks (`*.ipynb`), skipping
hidden directories, the configured `exclude` / `extend-exclude` patterns and whatever git
ignores (.gitignore files at every level and .git/info/exclude). Files named explicitly are
always checked unless `force_exclude` is set (pre-commit passes every staged file explicitly).
Nothing here raises: a path that cannot be read becomes a `FileError`, so one bad path never
hides the findings of the others.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

import pathspec

from ckpt_lsp.config import Config
from ckpt_lsp.findings import FileError

__all__ = ["Patterns", "discover"]

_SEP = os.sep
SOURCE_SUFFIXES = (".py", ".ipynb")


class Patterns:
    """Gitignore-style lines compiled into a few large regexes.

    Matching each path against 100 pattern objects one by one costs more than the whole
    directory walk, so consecutive patterns of the same polarity are joined into one
    alternation and the runs are tried from the last one up: the last matching line wins, as
    in git. A pattern must match the whole path (directories end with "/"): the walk asks
    about every directory on the way down, so matching through an ancestor is never needed,
    and a directory given explicitly is walked even when its own name is excluded.
    """

    __slots__ = ("_runs",)

    def __init__(self, lines: Iterable[str]) -> None:
        runs: list[tuple[bool, list[str]]] = []
        for line in lines:
            regex = _line_regex(line)
            if regex is None:
                continue
            source, include = regex
            if runs and runs[-1][0] == include:
                runs[-1][1].append(source)
            else:
                runs.append((include, [source]))
        self._runs = [(include, _join(sources)) for include, sources in reversed(runs)]

    def __bool__(self) -> bool:
        return bool(self._runs)

    def check(self, rel: str) -> bool | None:
        """True: ignored; False: re-included by a `!` line; None: no line matches."""
        for include, regex in self._runs:
            if regex.fullmatch(rel):
                return include
        return None


_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")


_FLOATING = "^(?:.+/)?"


def _join(sources: list[str]) -> re.Pattern[str]:
    """One regex for many patterns, with the common "at any depth" prefix factored out.

    Most lines (`build/`, `*.pyc`) float to any depth; trying `(?:.+/)?` once and then the
    alternation is several times faster than scanning the path again for each line.
    """
    floating = [s[len(_FLOATING) :] for s in sources if s.startswith(_FLOATING)]
    # pathspec searches; a source without "^" may match anywhere in the path.
    anchored = [
        s[1:] if s.startswith("^") else ".*?" + s for s in sources if not s.startswith(_FLOATING)
    ]
    parts = []
    if floating:
        parts.append("(?:.+/)?(?:" + "|".join(f"(?:{s})" for s in floating) + ")")
    if anchored:
        parts.append("|".join(f"(?:{s})" for s in anchored))
    return re.compile("^(?:" + "|".join(parts) + ")")


def _line_regex(line: str) -> tuple[str, bool] | None:
    """One gitignore line as (regex source, include), or None for comments, blanks, bad lines."""
    if not line.strip() or line.startswith("#"):
        return None
    try:
        (pattern,) = pathspec.GitIgnoreSpec.from_lines([line]).patterns
    except Exception:  # a malformed line in someone's .gitignore must not stop the walk
        return None
    regex = getattr(pattern, "regex", None)
    if pattern.include is None or regex is None:
        return None
    # Joined patterns cannot share group names; the groups only mark directories.
    return _NAMED_GROUP.sub("(?:", regex.pattern), bool(pattern.include)


def _read_ignore_file(path: str) -> Patterns | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            patterns = Patterns(handle.read().splitlines())
    except OSError:
        return None
    return patterns or None


# One level of ignore rules: the directory its patterns are relative to (absolute, with a
# trailing separator) and the compiled patterns.
_Level = tuple[str, Patterns]


def _ignored(chain: Sequence[_Level], abs_path: str, is_dir: bool) -> bool:
    """Git's verdict: the deepest ignore file with a matching pattern decides."""
    for base, patterns in reversed(chain):
        if not abs_path.startswith(base):
            continue
        rel = abs_path[len(base) :]
        if _SEP != "/":
            rel = rel.replace(_SEP, "/")
        include = patterns.check(rel + "/" if is_dir else rel)
        if include is not None:
            return include
    return False


def _git_top(directory: str) -> str | None:
    """The work tree root above (or at) `directory`: where `.git` is, a dir or a file."""
    current = directory
    while True:
        if os.path.exists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _with_sep(directory: str) -> str:
    return directory if directory.endswith(_SEP) else directory + _SEP


class _Walker:
    """State shared by all paths of one `discover` call: compiled specs, caches, results."""

    def __init__(self, config: Config) -> None:
        self.root = _with_sep(os.path.abspath(config.root))
        self.exclude = Patterns([*config.exclude, *config.extend_exclude])
        self.files: dict[str, str] = {}  # absolute path -> the path as shown
        self.errors: list[FileError] = []
        self._ignore_files: dict[str, Patterns | None] = {}

    # -- exclusion --------------------------------------------------------------------------

    def excluded(self, abs_path: str, is_dir: bool, base: str) -> bool:
        """Whether `exclude`/`extend-exclude` match, relative to the root (or `base` outside)."""
        if not self.exclude:
            return False
        anchor = self.root if abs_path.startswith(self.root) else base
        rel = abs_path[len(anchor) :] if abs_path.startswith(anchor) else abs_path
        if _SEP != "/":
            rel = rel.replace(_SEP, "/")
        return bool(self.exclude.check(rel + "/" if is_dir else rel))

    def force_excluded(self, abs_path: str, is_dir: bool) -> bool:
        """For `force_exclude`: the path or a directory above it (up to the root) is excluded."""
        base = _with_sep(os.path.dirname(abs_path))
        if self.excluded(abs_path, is_dir, base):
            return True
        current = os.path.dirname(abs_path)
        while _with_sep(current).startswith(self.root) and _with_sep(current) != self.root:
            if self.excluded(current, True, base):
                return True
            current = os.path.dirname(current)
        return False

    def ignore_file(self, directory: str) -> Patterns | None:
        if directory not in self._ignore_files:
            self._ignore_files[directory] = _read_ignore_file(os.path.join(directory, ".gitignore"))
        return self._ignore_files[directory]

    def initial_chain(self, directory: str) -> list[_Level]:
        """Ignore rules that apply above `directory`: .git/info/exclude and parents' .gitignore."""
        top = _git_top(directory)
        if top is None:
            # Outside git, .gitignore files still count from the project root down.
            if not _with_sep(directory).startswith(self.root):
                return []
            top = self.root.rstrip(_SEP) or _SEP
        chain: list[_Level] = []
        info = _read_ignore_file(os.path.join(top, ".git", "info", "exclude"))
        if info is not None:
            chain.append((_with_sep(top), info))
        ancestors = []
        current = os.path.dirname(directory)
        while _with_sep(current).startswith(_with_sep(top)) and current != directory:
            ancestors.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        for ancestor in reversed(ancestors):
            spec = self.ignore_file(ancestor)
            if spec is not None:
                chain.append((_with_sep(ancestor), spec))
        return chain

    # -- walking ----------------------------------------------------------------------------

    def add_file(self, abs_path: str, shown: str) -> None:
        self.files.setdefault(abs_path, shown)

    def walk(self, abs_dir: str, shown_dir: str) -> None:
        """Walk one directory given on the command line, iteratively (no recursion limit)."""
        base = _with_sep(os.path.dirname(abs_dir))
        stack: list[tuple[str, str, list[_Level]]] = [
            (abs_dir, shown_dir, self.initial_chain(abs_dir))
        ]
        while stack:
            directory, shown, chain = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = list(it)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed or replaced while we walked: nothing to check there
            except OSError as exc:
                self.errors.append(FileError(shown, exc.strerror or str(exc)))
                continue
            if any(entry.name == ".gitignore" for entry in entries):
                spec = self.ignore_file(directory)
                if spec is not None:
                    chain = [*chain, (_with_sep(directory), spec)]
            prefix = shown + _SEP if shown not in ("", ".") else ""
            for entry in entries:
                name = entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                    is_file = not is_dir and name.endswith(SOURCE_SUFFIXES) and entry.is_file()
                except OSError:
                    continue  # a symlink loop or a file that vanished
                if is_dir:
                    if name.startswith("."):
                        continue
                    path = entry.path
                    if self.excluded(path, True, base) or _ignored(chain, path, True):
                        continue
                    stack.append((path, prefix + name, chain))
                elif is_file:
                    path = entry.path
                    if self.excluded(path, False, base) or _ignored(chain, path, False):
                        continue
                    self.add_file(path, prefix + name)


def discover(
    paths: Sequence[Path], config: Config, *, force_exclude: bool = False
) -> tuple[list[Path], list[FileError]]:
    """The Python files to check under `paths`, sorted and deduplicated, and the paths that failed.

    Returned paths keep the form they were given in (relative stays relative), so messages
    show what the user typed. Never raises.
    """
    walker = _Walker(config)
    for given in paths:
        shown = os.path.normpath(str(given))
        abs_path = os.path.normpath(os.path.abspath(shown))
        try:
            st = os.stat(abs_path)
        except OSError as exc:
            walker.errors.append(FileError(str(given), exc.strerror or str(exc)))
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if not is_dir and not stat.S_ISREG(st.st_mode):
            walker.errors.append(FileError(str(given), "Not a regular file or directory"))
        elif force_exclude and walker.force_excluded(abs_path, is_dir):
            continue
        elif is_dir:
            walker.walk(abs_path, shown)
        else:
            walker.add_file(abs_path, shown)
    shown_paths = sorted(walker.files.values(), key=lambda p: p.split(_SEP))
    return [Path(p) for p in shown_paths], walker.errors
