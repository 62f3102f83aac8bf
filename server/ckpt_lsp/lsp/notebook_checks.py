"""Checking open notebooks: the code cells analyzed together, the results kept per cell.

A notebook is one module (its cells joined, see notebooks.py), run as `__main__`.
An edit in any cell re-analyzes the whole notebook once (the scheduler's queue holds
the notebook's URI, so a burst of edits is one analysis), and every cell gets its own
result: the diagnostics pushed for that cell's URI, with rows counted from the cell's
first line. A result is kept only if the notebook still has
the cells it was made from; a cell that left the notebook has its list cleared.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ckpt_lsp.findings import Finding
from ckpt_lsp.lsp.analysis_jobs import AnalysisJobs
from ckpt_lsp.lsp.folder_project import Project
from ckpt_lsp.lsp.notebooks import (
    MovedFindings,
    NotebookSnapshot,
    OpenNotebooks,
    findings_by_cell,
)
from ckpt_lsp.lsp.publishing import DiagnosticPublisher, DocResult
from ckpt_lsp.lsp.scheduling import Scheduler
from ckpt_lsp.lsp.workspace_folders import WorkspaceFolders

log = logging.getLogger("ckpt_lsp.lsp")


@dataclass
class NotebookResult:
    """The findings of one state of a notebook: for the module, and per cell."""

    snapshot: NotebookSnapshot
    findings: list[Finding]  # module rows
    generation: int


class NotebookChecks:
    """Analysis of open notebooks, kept in step with their cells and the config."""

    def __init__(
        self,
        notebooks: OpenNotebooks,
        folders: WorkspaceFolders,
        scheduler: Scheduler,
        publisher: DiagnosticPublisher,
        jobs: AnalysisJobs,
    ) -> None:
        self.notebooks = notebooks
        self.folders = folders
        self.scheduler = scheduler
        self.publisher = publisher
        self.jobs = jobs
        self.results: dict[str, NotebookResult] = {}  # notebook uri -> last result
        self._moved: MovedFindings = {}  # findings made cell-relative, by place

    def is_current(self, result: NotebookResult | None, snap: NotebookSnapshot, gen: int) -> bool:
        return result is not None and result.generation == gen and result.snapshot.key == snap.key

    async def check(self, uri: str, generation: int) -> NotebookResult | None:
        """Analyze a notebook's present cells (unless its result is current); store and
        publish each cell's result. None when it is not open or moved on meanwhile."""
        snap = self.notebooks.snapshot(uri)
        if snap is None:
            return None
        cached = self.results.get(snap.uri)
        if self.is_current(cached, snap, generation):
            return cached
        project = self.folders.project_for_path(snap.path)
        if snap.cells:
            findings, _ = await self.scheduler.run(
                self.jobs.analyze_open, project, snap.path, snap.joined.text
            )
        else:
            findings = []
        now = self.notebooks.snapshot(uri)
        if now is None or now.key != snap.key:
            log.debug("dropping stale result for notebook %s", uri)
            if now is not None:
                self.scheduler.schedule(uri)
            return None
        cached = self.results.get(snap.uri)
        if self.is_current(cached, snap, generation):
            return cached  # analyzed twice at once: store and publish once
        result = NotebookResult(snap, findings, generation)
        self._store(result, cached, project)
        return result

    def _store(
        self, result: NotebookResult, previous: NotebookResult | None, project: Project
    ) -> None:
        """Keep each cell's result and push what changed; clear cells that left the
        notebook. Cells are pushed even to a client that pulls: vscode-languageclient 9
        pulls on text documents' open events and visible tabs, and a cell has neither
        (it is synced with its notebook), so it is never pulled; its pull answers empty
        (handlers/document_diagnostic.py), so nothing shows twice."""
        snap = result.snapshot
        self.results[snap.uri] = result
        per_cell = findings_by_cell(snap, result.findings, self._moved)
        for cell, found in zip(snap.cells, per_cell, strict=True):
            before = self.publisher.results.get(cell.uri)
            if (
                before is not None
                and before.version == cell.version
                and before.generation == result.generation
                and before.text == cell.text
                and before.findings == found
            ):
                continue  # an untouched cell with the same findings: nothing to redo
            stored = self.publisher.store(
                cell.uri, cell.version, cell.text, found, project, result.generation
            )
            if before is None or before.result_id != stored.result_id:
                self.publisher.publish(stored)
            elif before.version != cell.version:
                self.publisher.publish(stored)  # same list, new version: the client's is stale
        if previous is not None:
            present = {c.uri for c in snap.cells}
            for cell in previous.snapshot.cells:
                if cell.uri not in present:
                    self.publisher.forget(cell.uri)

    async def cell_result(self, uri: str, notebook: str, generation: int) -> DocResult | None:
        """The result of one cell for the notebook's present cells."""
        for _ in range(3):  # an edit can land while we analyze; try again, then give up
            if await self.check(notebook, generation) is not None:
                break
        return self.publisher.results.get(uri)

    def closed(self, uri: str, cell_uris: list[str]) -> None:
        """A notebook closed: clear every cell it had and forget its result."""
        result = self.results.pop(uri, None)
        cells = set(cell_uris)
        if result is not None:
            cells.update(c.uri for c in result.snapshot.cells)
        for cell in cells:
            self.scheduler.unschedule(cell)
            self.publisher.forget(cell)
        self.scheduler.unschedule(uri)
        if result is not None:  # a notebook is nobody's import: out of the index
            path = result.snapshot.path
            project = self.folders.project_for_path(path)
            self.scheduler.spawn(self.scheduler.run(project.remove_source, path), f"closing {uri}")

    def dependents_changed(self, paths: set[str]) -> list[str]:
        """Modules the notebooks at `paths` import changed: drop their results (same
        cells, new answer). Returns the notebooks to check again."""
        stale = [uri for uri, r in self.results.items() if r.snapshot.path in paths]
        for uri in stale:
            self.results.pop(uri, None)
        return stale
