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
        findings, changed = self.analyze(project, path, text)
        dependents: set[str] = set()
        if changed:
            try:
                dependents = project.index.dependents(path)
            except Exception:
                log.exception("finding the dependents of %s failed", path)
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

    @staticmethod
    def reindex(project: Project, path: str, text: str) -> set[str]:
        """Index a closed file's new text; its dependents when what they can see of it
        changed."""
        return project.index.dependents(path) if project.update_source(path, text) else set()
