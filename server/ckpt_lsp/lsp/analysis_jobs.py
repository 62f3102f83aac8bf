"""What runs on the analysis thread: analyzing and indexing one file's text.

Only the scheduler's analysis worker calls these (analyzers and indexes are not
thread-safe). A failure is logged and gives no findings, never a crash."""

from __future__ import annotations

import logging
import time

from ckpt_lsp.findings import Finding
from ckpt_lsp.lsp.folder_project import Project
from ckpt_lsp.source import MAX_BYTES

log = logging.getLogger("ckpt_lsp.lsp")

SLOW_ANALYSIS_S = 1.0  # log analyses slower than this


class AnalysisJobs:
    """The analysis thread's jobs, with the one piece of state they share: which
    files were reported too large (so each size is reported once)."""

    def __init__(self) -> None:
        self._too_large: dict[str, int] = {}  # path -> size last reported

    def analyze_open(
        self, project: Project, path: str, text: str
    ) -> tuple[list[Finding], set[str]]:
        """Analyze (and index) an open file's live text. Also the files that depend on
        it, when what they can see of it changed."""
        started = time.perf_counter()
        before = self._reach(project, path)
        findings, changed = self.analyze(project, path, text)
        dependents: set[str] = set()
        if changed:
            try:
                dependents = project.index.dependents(path)
            except Exception:
                log.exception("finding the dependents of %s failed", path)
        dependents |= self._reached(project, path, before)
        elapsed = time.perf_counter() - started
        if elapsed > SLOW_ANALYSIS_S:
            log.info("analysis of %s took %.0f ms", path, elapsed * 1000)
        return findings, dependents

    def analyze(self, project: Project, path: str, text: str) -> tuple[list[Finding], bool]:
        """The findings of `text`, and whether what other modules see of it changed."""
        if not project.enabled:
            return [], False
        if len(text) > MAX_BYTES:  # the CLI's limit: one file must not stall the others
            if self._too_large.get(path) != len(text):
                log.warning("%s: skipped: too large (%d characters)", path, len(text))
            self._too_large[path] = len(text)
            return [], False
        self._too_large.pop(path, None)
        try:
            result, changed = project.analyze(path, text)
        except RecursionError:
            log.warning("%s: too deeply nested to analyze", path)
            return [], False
        except Exception:
            log.exception("analysis of %s failed", path)
            return [], False
        if result.error is not None:
            log.info("%s: %s", path, result.error.message)
        return list(result.findings), changed

    def reindex(self, project: Project, path: str, text: str) -> set[str]:
        """Index a closed file's new text; its dependents when what they can see of it
        changed, and the modules whose classes its save calls reach when those changed."""
        before = self._reach(project, path)
        changed = project.update_source(path, text)
        reached = self._reached(project, path, before)
        return (project.index.dependents(path) if changed else set()) | reached

    @staticmethod
    def _reach(project: Project, path: str) -> tuple[tuple[object, ...], frozenset[str]]:
        try:
            return project.save_reach(path)
        except Exception:  # related locations are a courtesy: never lose the findings
            log.exception("reading the save calls of %s failed", path)
            return (), frozenset()

    def _reached(
        self, project: Project, path: str, before: tuple[tuple[object, ...], frozenset[str]]
    ) -> set[str]:
        """The modules whose findings' related locations changed with `path`'s save calls."""
        after = self._reach(project, path)
        if after[0] == before[0]:
            return set()
        return set(before[1] | after[1]) - {path}
