"""A headless check run: discover, read, index, analyze, and optionally fix.

The same Analyzer the language server uses; files that cannot be read or
parsed become one-line FileErrors and the run goes on with the others.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ckpt_lsp.analysis.engine import Analyzer
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.config import Config
from ckpt_lsp.discovery import discover
from ckpt_lsp.findings import FileError, Finding, Fix
from ckpt_lsp.fixes import FixTarget, fix_edits, fix_source
from ckpt_lsp.source import SourceError, encode_like, read_source


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
    text: str
    raw: bytes


# Object arrays pickle; only weights-only formats reject them, so dropping them from the
# pickled state would lose data for nothing. They get no automatic fix.
UNFIXABLE = frozenset({"CKPT004"})


def fix_targets(findings: Sequence[Finding]) -> list[FixTarget]:
    """One FixTarget per class: every flagged attribute of the class is fixed together."""
    grouped: dict[tuple[str, int], list[Finding]] = {}
    for finding in findings:
        if finding.code in UNFIXABLE:
            continue
        grouped.setdefault((finding.class_name, finding.class_line), []).append(finding)
    targets = []
    for (name, line), items in sorted(grouped.items(), key=lambda kv: kv[0][1]):
        attrs = tuple(dict.fromkeys(f.attribute for f in items))
        targets.append(FixTarget(name, line, attrs, bases=items[0].bases))
    return targets


def attach_fixes(text: str, findings: list[Finding]) -> list[Finding]:
    """Each finding gets its class's fix (the edits that exclude all its flagged attributes)."""
    out: list[Finding] = []
    by_class: dict[tuple[str, int], Fix | None] = {}
    for target in fix_targets(findings):
        try:
            edits = fix_edits(text, [target])
        except Exception:  # a fix we cannot build is no fix, never a crash
            edits = []
        by_class[(target.class_name, target.class_line)] = (
            Fix(
                f"Exclude unpicklable attributes of `{target.class_name}` from pickling "
                "(add __getstate__/__setstate__)",
                tuple(edits),
            )
            if edits
            else None
        )
    for finding in findings:
        out.append(replace(finding, fix=by_class.get((finding.class_name, finding.class_line))))
    return out


def write_atomically(path: Path, data: bytes, expected: bytes) -> None:
    """Replace a file's bytes unless it changed since we read it; never leave half a file."""
    with open(path, "rb") as fh:
        if fh.read() != expected:
            raise SourceError("changed on disk while being fixed; not overwritten")
    directory = os.path.dirname(os.path.abspath(path))
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
) -> RunResult:
    result = RunResult()
    files, errors = discover(paths, config)
    result.errors.extend(errors)
    sources: list[_Source] = []
    for path in files:
        name = str(path)
        try:
            text, raw = read_source(path)
        except SourceError as exc:
            result.errors.append(FileError(name, str(exc)))
            continue
        sources.append(_Source(path, name, text, raw))
    result.files = len(sources)
    index = ProjectIndex(config.root)
    for src in sources:
        index.add_source(src.path, src.text)
    analyzer = Analyzer(config, index)
    for src in sources:
        file_result = analyzer.analyze(src.name, src.text)
        if file_result.error is not None:
            result.errors.append(file_result.error)
            continue
        for start, _end in file_result.broken:
            result.errors.append(FileError(src.name, f"syntax error at line {start}: not checked"))
        findings = file_result.findings
        if findings and (fix or diff):
            findings = _fix_file(src, findings, analyzer, index, result, write=fix, diff=diff)
        if findings and with_fixes:
            findings = attach_fixes(src.text, findings)
        result.findings.extend(findings)
    return result


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
    try:
        new_text = fix_source(src.text, fix_targets(findings))
    except Exception as exc:  # never lose the user's text over a fix we cannot build
        result.errors.append(FileError(src.name, f"fix failed, file left unchanged: {exc}"))
        return findings
    if new_text == src.text:
        return findings
    if diff:
        result.diffs.append(
            "".join(
                difflib.unified_diff(
                    src.text.splitlines(keepends=True),
                    new_text.splitlines(keepends=True),
                    fromfile=f"a/{src.name}",
                    tofile=f"b/{src.name}",
                )
            )
        )
    if not write:
        return findings
    try:
        write_atomically(src.path, encode_like(new_text, src.raw), src.raw)
    except (OSError, SourceError, UnicodeEncodeError) as exc:
        result.errors.append(FileError(src.name, f"not fixed: {exc}"))
        return findings
    index.add_source(src.path, new_text)
    remaining = analyzer.analyze(src.name, new_text).findings
    result.fixed += len(findings) - len(remaining)
    src.text = new_text
    return remaining
