"""A headless check run: discover, read, index, analyze, and optionally fix.

The same Analyzer the language server uses; files that cannot be read or
parsed become one-line FileErrors and the run goes on with the others.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ckpt_lsp.budget import file_budget_s
from ckpt_lsp.cache import WHOLE_PROJECT, Entry, ResultCache, content_hash
from ckpt_lsp.config import Config
from ckpt_lsp.discovery import discover
from ckpt_lsp.findings import FileError, Finding, Fix
from ckpt_lsp.notebook.reader import (
    NOTEBOOK_MAX_BYTES,
    Notebook,
    is_notebook_path,
    read_notebook_bytes,
)
from ckpt_lsp.source import SourceError, decode_source, encode_like, read_bytes, read_source_text

if TYPE_CHECKING:
    from ckpt_lsp.analysis.analyzer import Analyzer
    from ckpt_lsp.analysis.facts import ModuleFacts
    from ckpt_lsp.analysis.index import ProjectIndex


@dataclass
class RunResult:
    findings: list[Finding] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    files: int = 0
    fixed: int = 0
    diffs: list[str] = field(default_factory=list)


@dataclass
class _Source:
    path: Path
    name: str  # as shown to the user

    @cached_property
    def is_notebook(self) -> bool:
        return is_notebook_path(self.path)

    @cached_property
    def raw(self) -> bytes:
        """Read when needed (SourceError if it cannot be): a warm run whose files kept
        their size and modification time reads none of them."""
        if self.is_notebook:
            return read_bytes(self.path, NOTEBOOK_MAX_BYTES)
        return read_bytes(self.path)

    def read(self) -> bytes:
        return self.raw

    @cached_property
    def notebook(self) -> Notebook:
        """A notebook's code cells (SourceError when the file is not a notebook we read)."""
        return read_notebook_bytes(self.raw)

    @cached_property
    def text(self) -> str:
        """Decoded when needed: a warm run's cache hits never are (SourceError if bad).
        A notebook's text is its code cells joined into one module."""
        if self.is_notebook:
            return self.notebook.joined.text
        return decode_source(self.raw)

    def text_or_empty(self) -> str:
        try:
            return self.text
        except SourceError:
            return ""

    @cached_property
    def key(self) -> str:
        """The normalized absolute path: the cache's and the index's key."""
        return os.path.normpath(os.path.abspath(self.path))


def attach_fixes(
    text: str, findings: list[Finding], facts: ModuleFacts | None = None
) -> list[Finding]:
    """Each finding gets its class's fix (the edits that exclude all its flagged attributes).
    `facts`: the analysis's facts of `text`, when at hand."""
    # libcst: imported only when fixes are wanted
    from ckpt_lsp.fix import fix_edits, fix_targets, value_edits, value_fixes
    from ckpt_lsp.fix.module import load_module
    from ckpt_lsp.fix.policy import target_title

    out: list[Finding] = []
    by_class: dict[tuple[str | None, int], Fix | None] = {}
    targets = fix_targets(findings)
    module = None
    # the file's facts once, for all its classes; a text they cannot be made from fails
    # again in each fix_edits below, which gives that class no fix
    with contextlib.suppress(Exception):
        module = load_module(text, facts) if targets else None
    for target in targets:
        try:
            edits = fix_edits(text, [target], module)
        except Exception:  # a fix we cannot build is no fix, never a crash
            edits = []
        by_class[(target.class_name, target.class_line)] = (
            Fix(target_title(target), tuple(edits)) if edits else None
        )
    for finding in findings:
        fix = by_class.get((finding.class_name, finding.class_line))
        for value in value_fixes([finding]):  # a checkpoint value: its own edit
            try:
                edits = value_edits(text, [value])
            except Exception:
                edits = []
            fix = Fix(value.title, tuple(edits)) if edits else None
        out.append(replace(finding, fix=fix))
    return out


def write_atomically(path: Path, data: bytes, expected: bytes) -> None:
    """Replace a file's bytes unless it changed since we read it; never leave half a file."""
    with open(path, "rb") as fh:
        if fh.read() != expected:
            raise SourceError("changed on disk while being fixed; not overwritten")
    directory = os.path.dirname(os.path.abspath(path))
    import tempfile  # only a fix run writes files

    fd, tmp = tempfile.mkstemp(prefix=".ckpt-fix-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def run_check(
    paths: Sequence[Path],
    config: Config,
    *,
    fix: bool = False,
    diff: bool = False,
    with_fixes: bool = False,
    use_cache: bool = True,
    jobs: int | None = None,
    keep: list[object] | None = None,
) -> RunResult:
    """Check `paths`. `keep`, when given, receives the project's syntax trees, so that a
    caller about to exit (the CLI) is not the one who frees them: that took ~1 s of a
    one-process run over the benchmark corpus."""
    # A batch run keeps many syntax trees alive and frees little: the cyclic garbage
    # collector would rescan them over and over, for about half the CPU time of a big run.
    enabled = gc.isenabled()
    gc.disable()
    gc.freeze()  # objects alive now (modules, catalogs) are never scanned again
    try:
        return _run_check(
            paths,
            config,
            fix=fix,
            diff=diff,
            with_fixes=with_fixes,
            use_cache=use_cache,
            jobs=jobs,
            keep=keep,
        )
    finally:
        if enabled:
            gc.enable()


def _run_check(
    paths: Sequence[Path],
    config: Config,
    *,
    fix: bool,
    diff: bool,
    with_fixes: bool,
    use_cache: bool,
    jobs: int | None,
    keep: list[object] | None,
) -> RunResult:
    result = RunResult()
    files, errors = discover(paths, config)
    result.errors.extend(errors)
    cache = ResultCache(config.cache_path, config.fingerprint()) if use_cache else None
    # Hashes key the cache and its dependencies; without a cache nothing reads them, and
    # hashing 64 MB is 0.07 s that every worker would otherwise wait for.
    digests: dict[str, str] = _Digests(cache) if cache is not None else _NoDigests()
    sources: list[_Source] = []
    for path in files:
        src = _Source(path, str(path))
        try:
            if isinstance(digests, _Digests):
                digests[src.key] = digests.of(src.key, src.read)
            else:
                src.raw  # noqa: B018 - read now: a file that cannot be is reported here
        except SourceError as exc:
            result.errors.append(FileError(src.name, str(exc)))
            continue
        sources.append(src)
    if isinstance(digests, _Digests):
        digests.project = lambda: _project_keys(sources, config)
    outcomes: dict[str, Entry] = {}
    misses: list[_Source] = []
    readable: list[_Source] = []
    for src in sources:
        entry = cache.get(src.key, digests[src.key], digests) if cache is not None else None
        if entry is None:
            try:
                src.text  # noqa: B018 - decoding tells whether the file can be checked
            except SourceError as exc:
                result.errors.append(FileError(src.name, str(exc)))
                continue
            misses.append(src)
        else:
            outcomes[src.key] = entry
        readable.append(src)
    sources = readable
    result.files = len(sources)
    if misses:
        fixes_now = with_fixes and not fix and not diff  # a fix run rebuilds them itself
        # a changed file's save calls may name classes of files answered from the cache
        reach = cache is not None and bool(outcomes)
        before = {s.key: _reaches_of(cache.entries.get(s.key)) for s in misses} if cache else {}
        done = _analyze_all(sources, misses, config, digests, jobs, keep, fixes_now, reach)
        stale = _stale_hits(sources, done, before, outcomes) if reach else []
        if stale:
            done += _analyze_all(sources, stale, config, digests, jobs, keep, fixes_now)
        for src, entry in done:
            if WHOLE_PROJECT in entry.deps:  # hashed once here, not in every worker
                entry.deps[WHOLE_PROJECT] = digests[WHOLE_PROJECT]
            outcomes[src.key] = entry
            if cache is not None:
                cache.put(src.key, entry)
    analyzer: Analyzer | None = None
    index: ProjectIndex | None = None
    for src in sources:
        entry = outcomes[src.key]
        result.errors.extend(replace(e, filename=src.name) for e in entry.errors)
        findings = [replace(f, filename=src.name) for f in entry.findings]
        if findings and (fix or diff):
            if analyzer is None or index is None:
                index, analyzer = _project(sources, config)
            findings = _fix_file(src, findings, analyzer, index, result, write=fix, diff=diff)
            if findings and with_fixes:
                findings = attach_fixes(src.text, findings)
        elif findings and with_fixes:
            fixes = getattr(entry, "fixes", None)  # an entry pickled before the field existed
            if fixes is None or len(fixes) != len(findings):
                fixes = [f.fix for f in attach_fixes(src.text, findings)]
                entry.fixes = fixes
                if cache is not None:
                    cache.put(src.key, entry)
            findings = [replace(f, fix=fx) for f, fx in zip(findings, fixes)]
        if src.is_notebook and findings:
            from ckpt_lsp.notebook.locate import locate_findings

            findings = locate_findings(findings, src.notebook, src.name)
        result.findings.extend(findings)
    if cache is not None:
        cache.save()
    return result


def _reaches_of(entry: Entry | None) -> list[str]:
    return list(getattr(entry, "reaches", None) or ())  # an entry pickled before the field


def _stale_hits(
    sources: Sequence[_Source],
    done: list[tuple[_Source, Entry]],
    before: dict[str, list[str]],
    outcomes: dict[str, Entry],
) -> list[_Source]:
    """The files answered from the cache whose classes a changed file's save calls reach,
    now or before the change: their findings' related locations are stale."""
    reached = {p for src, entry in done for p in (*entry.reaches, *before.get(src.key, ()))}
    stale: list[_Source] = []
    for src in sources:
        if src.key in reached and src.key in outcomes:
            try:
                src.text  # noqa: B018 - a hit was never decoded
            except SourceError:
                continue
            stale.append(src)
    return stale


class _Digests(dict):  # type: ignore[type-arg]
    """Content hashes by path; a project file that was not checked is hashed on first use
    (a cached result depends on it when its analysis read it). A file whose size and
    modification time are those recorded with its hash in the cache is not read again
    (as git and ruff trust them), unless it was modified within 2 s of being hashed."""

    def __init__(self, cache: ResultCache | None = None) -> None:
        super().__init__()
        self.cache = cache
        self.started_ns = time.time_ns()
        # the keys of every file of the checked files' projects, for WHOLE_PROJECT
        self.project: Callable[[], list[str]] = list

    def of(self, path: str, read: Callable[[], bytes]) -> str:
        """The hash of `path`'s bytes; `read` reads them (and may raise SourceError)."""
        try:
            st = os.stat(path)
        except OSError:
            return content_hash(read())  # read() says what is wrong
        cache = self.cache
        known = cache.known_digest(path, st.st_mtime_ns, st.st_size) if cache else None
        if known is not None:
            return known
        digest = content_hash(read())
        if cache is not None:
            cache.note_digest(path, st.st_mtime_ns, st.st_size, digest, self.started_ns)
        return digest

    def __missing__(self, path: str) -> str:
        if path == WHOLE_PROJECT:
            digest = self._of_project()
        else:
            try:
                digest = self.of(path, lambda: Path(path).read_bytes())
            except OSError:
                digest = ""
        self[path] = digest
        return digest

    def _of_project(self) -> str:
        """One hash of which files the project has and what each holds: a result that
        searched every module's text is stale when a file is added, removed or changed."""
        keys = sorted(set(self.project()))
        return content_hash("\n".join(f"{key}\t{self[key]}" for key in keys).encode())


class _NoDigests(dict):  # type: ignore[type-arg]
    """Stands in for _Digests when no cache is read or written: every hash is empty."""

    def __missing__(self, path: str) -> str:
        return ""


# Below this many files to analyze, worker start-up costs more than it saves.
PARALLEL_MIN_FILES = 48


def _project(sources: Sequence[_Source], config: Config) -> tuple[ProjectIndex, Analyzer]:
    # the analysis is imported when something is not in the cache (a warm run skips it)
    from ckpt_lsp.analysis.analyzer import Analyzer
    from ckpt_lsp.analysis.index import ProjectIndex

    index = ProjectIndex(config.root)
    for path in _context_files(sources, config):
        index.register(path, _reader(path))  # read only if an analysis needs it
    for src in sources:
        index.register(src.path, src.text_or_empty)  # decoded if an analysis reads it
    return index, Analyzer(config, index, batch=True)


def _project_keys(sources: Sequence[_Source], config: Config) -> list[str]:
    """The keys of the files a run's index holds: the checked files and their projects'."""
    keys = [src.key for src in sources]
    keys += [_Source(path, str(path)).key for path in _context_files(sources, config)]
    return keys


def _context_files(sources: Sequence[_Source], config: Config) -> list[Path]:
    """The project's other Python files, so that `ckpt-lsp --check model.py` (as pre-commit
    runs it, with only the staged files) resolves a base class or a factory defined in a file
    it was not given, exactly as `ckpt-lsp --check .` does: a file's result must not depend on
    which other files were named. The project of a file is the nearest folder above it that
    holds a project marker; a file outside any project sees its own folder's modules and
    packages, which is what Python gives a script run from there."""
    given = {src.key for src in sources}
    roots: set[str] = set()
    loose: set[str] = set()
    markers: dict[str, str | None] = {}
    for src in sources:
        folder = os.path.dirname(src.key)
        project = _project_root(folder, markers)
        (roots if project is not None else loose).add(project or folder)
    places = [Path(r) for r in sorted(roots)]
    for folder in sorted(loose - roots):
        if not any(folder.startswith(r + os.sep) for r in roots):
            places.extend(_script_modules(folder))
    # discover() applies the excludes and turns odd files (loops, fifos) into errors,
    # which are the checked files' business, not their neighbours'
    files, _ = discover(places, config) if places else ([], [])
    seen: set[str] = set()
    out = []
    for path in files:
        key = os.path.normpath(os.path.abspath(path))
        if key not in given and key not in seen:
            seen.add(key)
            out.append(path)
    return out


PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


def _project_root(folder: str, memo: dict[str, str | None]) -> str | None:
    """The nearest folder at or above `folder` that holds a project marker, or None."""
    trail = []
    found: str | None = None
    current = folder
    while True:
        if current in memo:
            found = memo[current]
            break
        trail.append(current)
        if any(os.path.exists(os.path.join(current, m)) for m in PROJECT_MARKERS):
            found = current
            break
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for seen in trail:
        memo[seen] = found
    return found


def _script_modules(folder: str) -> list[Path]:
    """The modules a script in `folder` can import without a project: the folder's own
    files and its packages (folders with an `__init__.py`), never a whole home folder."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    out: list[Path] = []
    for name in names:
        path = os.path.join(folder, name)
        if name.endswith(".py") or os.path.isfile(os.path.join(path, "__init__.py")):
            out.append(Path(path))
    return out


def _reader(path: Path) -> Callable[[], str]:
    def read() -> str:
        try:
            return read_source_text(path)
        except SourceError:
            return ""

    return read


def _analyze_one(
    analyzer: Analyzer,
    index: ProjectIndex,
    src: _Source,
    digests: dict[str, str],
    with_fixes: bool = False,
    reach: bool = False,
) -> Entry:
    # the files an analysis read are what its cached result depends on; no cache, no need
    index.touched = None if isinstance(digests, _NoDigests) else set()
    try:
        file_result = analyzer.analyze(src.name, src.text, budget_s=file_budget_s() or None)
    except Exception as exc:  # a bug of ours costs this file's findings, not the whole run
        index.touched = None
        message = f"internal error, not checked: {type(exc).__name__}: {exc}"
        return Entry(digests[src.key], {WHOLE_PROJECT: ""}, [], [FileError(src.name, message)])
    deps = {
        path: "" if path == WHOLE_PROJECT else digests[path]
        for path in index.touched or ()
        if path != src.key
    }
    index.touched = None
    errors: list[FileError] = []
    if file_result.error is not None:
        errors.append(file_result.error)
        return Entry(digests[src.key], deps, [], errors)
    for start, end in file_result.broken:
        reason = file_result.broken_reasons.get(start, "")
        if reason.startswith(("RecursionError", "MemoryError")):
            message = f"{_lines(src, start, end)}: too deeply nested to parse, not checked"
        else:
            detail = f" ({reason})" if reason else ""
            message = f"syntax error at {_lines(src, start)}{detail}: not checked"
        errors.append(FileError(src.name, message))
    entry = Entry(digests[src.key], deps, file_result.findings, errors)
    if reach:
        entry.reaches = _reaches(analyzer, index, src)
    if with_fixes and entry.findings:
        # built here, in the worker, rather than one file after another once all are done
        facts = index.facts(src.key)
        entry.fixes = [f.fix for f in attach_fixes(src.text, entry.findings, facts)]
    return entry


def _lines(src: _Source, start: int, end: int | None = None) -> str:
    """`line 3` / `lines 3-9` of a file; of a notebook, in the cell that holds them."""
    if not src.is_notebook:
        return f"line {start}" if end is None else f"lines {start}-{end}"
    from ckpt_lsp.findings import Position

    notebook = src.notebook
    at = notebook.joined.to_cell(Position(start, 1))
    where = f"cell {notebook.cells[at.cell].index + 1}, line {at.position.row}"
    return where if end is None else f"{where} (+{end - start} lines)"


def _reaches(analyzer: Analyzer, index: ProjectIndex, src: _Source) -> list[str]:
    """The other modules whose classes the file's save calls reach."""
    from ckpt_lsp.analysis.save_calls import has_trigger

    facts = index.facts(src.key) if has_trigger(src.text) else None
    if facts is None:
        return []
    reached = analyzer.bites.reached_paths(index.save_calls(src.key), facts)
    return sorted(reached - {src.key})


def _analyze_all(
    sources: list[_Source],
    misses: list[_Source],
    config: Config,
    digests: dict[str, str],
    jobs: int | None,
    keep: list[object] | None = None,
    with_fixes: bool = False,
    reach: bool = False,
) -> list[tuple[_Source, Entry]]:
    """Analyze the files not in the cache, in worker processes when it pays; with_fixes
    also builds each finding's fix there (the JSON report carries them)."""
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    workers = max(1, min(workers, len(misses) // (PARALLEL_MIN_FILES // 2) or 1))
    import multiprocessing  # 30% of a warm run's start-up, which never forks

    can_fork = "fork" in multiprocessing.get_all_start_methods()
    if workers > 1 and can_fork and len(misses) >= PARALLEL_MIN_FILES:
        return _analyze_in_workers(sources, misses, config, digests, workers, with_fixes, reach)
    index, analyzer = _project(sources, config)
    if keep is not None:
        keep.append(index)
    return [(src, _analyze_one(analyzer, index, src, digests, with_fixes, reach)) for src in misses]


# What forked workers inherit (set just before the fork, so nothing is pickled to them).
_SHARED: dict[str, object] = {}


def _worker_batch(positions: list[int]) -> list[tuple[int, Entry]]:
    sources: list[_Source] = _SHARED["sources"]  # type: ignore[assignment]
    misses: list[_Source] = _SHARED["misses"]  # type: ignore[assignment]
    digests: dict[str, str] = _SHARED["digests"]  # type: ignore[assignment]
    state: tuple[ProjectIndex, Analyzer] | None = _SHARED.get("project")  # type: ignore[assignment]
    if state is None:
        state = _project(sources, _SHARED["config"])  # type: ignore[arg-type]
        _SHARED["project"] = state
    index, analyzer = state
    with_fixes, reach = bool(_SHARED.get("with_fixes")), bool(_SHARED.get("reach"))
    return [
        (i, _analyze_one(analyzer, index, misses[i], digests, with_fixes, reach)) for i in positions
    ]


def _analyze_in_workers(
    sources: list[_Source],
    misses: list[_Source],
    config: Config,
    digests: dict[str, str],
    workers: int,
    with_fixes: bool = False,
    reach: bool = False,
) -> list[tuple[_Source, Entry]]:
    """Fork workers that each index the project lazily (parsing only what their files
    need) and analyze batches of files; results come back pickled."""
    _SHARED.update(
        sources=sources,
        misses=misses,
        digests=digests,
        config=config,
        with_fixes=with_fixes,
        reach=reach,
    )
    _SHARED.pop("project", None)
    # Big files first, in small batches, so no worker is left with the long tail.
    order = sorted(range(len(misses)), key=lambda i: -len(misses[i].text))
    batches = [order[i : i + 8] for i in range(0, len(order), 8)]
    out: list[tuple[_Source, Entry]] = []
    import multiprocessing

    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(workers) as pool:
            for done in pool.imap_unordered(_worker_batch, batches):
                out.extend((misses[i], entry) for i, entry in done)
    finally:
        _SHARED.clear()
    return out


def _fix_file(
    src: _Source,
    findings: list[Finding],
    analyzer: Analyzer,
    index: ProjectIndex,
    result: RunResult,
    *,
    write: bool,
    diff: bool,
) -> list[Finding]:
    from ckpt_lsp.fix import fix_file_source

    try:
        if src.is_notebook:
            from ckpt_lsp.notebook.fixing import fix_notebook

            bom = src.raw.startswith(b"\xef\xbb\xbf")
            fixed = fix_notebook(src.notebook, findings, src.name, bom)
            new_text, new_data, diffs = fixed.module_text, fixed.data, fixed.diffs
        else:
            new_text = fix_file_source(src.text, findings)
            new_data = None
            diffs = [_unified(src.text, new_text, src.name, src.name)] if diff else []
    except Exception as exc:  # never lose the user's text over a fix we cannot build
        result.errors.append(FileError(src.name, f"fix failed, file left unchanged: {exc}"))
        return findings
    if new_text == src.text:
        return findings
    if diff:
        result.diffs.extend(diffs)
    if not write:
        return findings
    try:
        data = new_data if new_data is not None else encode_like(new_text, src.raw)
        write_atomically(src.path, data, src.raw)
    except (OSError, SourceError, UnicodeEncodeError) as exc:
        result.errors.append(FileError(src.name, f"not fixed: {exc}"))
        return findings
    index.add_source(src.path, new_text)
    remaining = analyzer.analyze(src.name, new_text).findings
    result.fixed += len(findings) - len(remaining)
    if new_data is not None:
        src.raw = new_data
        src.notebook = read_notebook_bytes(new_data)
    src.text = new_text
    return remaining


def _unified(old: str, new: str, old_name: str, new_name: str) -> str:
    import difflib

    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{old_name}",
            tofile=f"b/{new_name}",
        )
    )
