"""Checking open documents: from the newest text to a stored (and pushed) result.

A check analyzes the document's newest text on the analysis thread and keeps the
result only if the document is still at the version that was analyzed and the
configuration has not changed meanwhile (an older result for a document that
moved on is dropped, and the newer version is queued again). So nothing stale
reaches the client. When a file's interface changes, the open files that import
it are checked again."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ckpt_lsp.lsp.analysis_jobs import AnalysisJobs
from ckpt_lsp.lsp.client_features import ClientFeatures
from ckpt_lsp.lsp.notebook_checks import NotebookChecks
from ckpt_lsp.lsp.open_documents import OpenDocuments, path_of
from ckpt_lsp.lsp.publishing import DiagnosticPublisher, DocResult
from ckpt_lsp.lsp.scheduling import Scheduler
from ckpt_lsp.lsp.workspace_folders import WorkspaceFolders

log = logging.getLogger("ckpt_lsp.lsp")


class DocumentChecks:
    """Analysis of open documents, kept in step with their versions and the config."""

    def __init__(
        self,
        client: ClientFeatures,
        documents: OpenDocuments,
        folders: WorkspaceFolders,
        scheduler: Scheduler,
        publisher: DiagnosticPublisher,
        jobs: AnalysisJobs,
    ) -> None:
        self.client = client
        self.documents = documents
        self.folders = folders
        self.scheduler = scheduler
        self.publisher = publisher
        self.jobs = jobs
        self.generation = 0  # bumped when every result may have changed
        self.notebooks: NotebookChecks | None = None  # checks a notebook's cells together

    def notebook_of(self, uri: str) -> str | None:
        """The open notebook `uri` is (or is a cell of), else None."""
        return self.notebooks.notebooks.notebook_uri(uri) if self.notebooks else None

    def schedule_open(self, paths: Iterable[str] | None = None) -> None:
        """Re-check open documents (those at `paths`, or all)."""
        for uri in self.documents.python_uris(paths):
            self.scheduler.schedule(uri)

    async def check_open(self, uri: str) -> DocResult | None:
        """Analyze an open document's current text; publish it to a pushing client.
        A notebook, or a cell of one, is analyzed with all its cells."""
        notebook = self.notebook_of(uri)
        if notebook is not None and self.notebooks is not None:
            await self.notebooks.check(notebook, self.generation)
            return self.publisher.results.get(uri)
        doc = self.documents.get_python(uri)
        if doc is None:
            return None
        version, text = doc.version, doc.source
        generation = self.generation
        cached = self.publisher.results.get(uri)
        if self.is_current(cached, version, text):
            return cached  # nothing changed since (a save, or a second request)
        path = path_of(doc)
        project = self.folders.project_for_path(path)
        findings, dependents = await self.scheduler.run(self.jobs.analyze_open, project, path, text)
        current = self.documents.get(uri)
        if current is None or current.version != version or self.generation != generation:
            log.debug("dropping stale result for %s v%s", uri, version)
            if current is not None:
                self.scheduler.schedule(uri)
            return None
        cached = self.publisher.results.get(uri)
        if self.is_current(cached, version, text):
            return cached  # analyzed twice at once (a hover during an edit): publish once
        result = self.publisher.store(uri, version, text, findings, project, self.generation)
        if not self.client.pull:
            self.publisher.publish(result)
        if dependents:
            self.dependents_changed(dependents)
        return result

    def is_current(self, result: DocResult | None, version: int | None, text: str) -> bool:
        """Whether `result` answers for this version and text under today's config."""
        return (
            result is not None
            and result.version == version
            and result.generation == self.generation
            and result.text == text
        )

    async def current_result(self, uri: str) -> DocResult | None:
        """The result for the document's current text (analyzing it now if needed)."""
        notebook = self.notebook_of(uri)
        if notebook is not None and self.notebooks is not None:
            return await self.notebooks.cell_result(uri, notebook, self.generation)
        doc = self.documents.get(uri)
        if doc is None:
            return None
        cached = self.publisher.results.get(uri)
        if self.is_current(cached, doc.version, doc.source):
            return cached
        for _ in range(3):  # an edit can land while we analyze; try again, then give up
            result = await self.check_open(uri)
            if result is not None:
                return result
        return self.publisher.results.get(uri)

    def dependents_changed(self, deps: set[str]) -> None:
        """A module others import changed: re-check the open files that use it."""
        log.debug("re-checking %d dependents", len(deps))
        for uri in self.documents.uris_at(deps):
            self.publisher.results.pop(uri, None)  # same text, new answer
        notebooks = self.notebooks.dependents_changed(deps) if self.notebooks else []
        for uri in notebooks:  # cells are pushed, pulling client or not (notebook_checks)
            self.scheduler.schedule(uri)
        if self.client.pull:
            self.publisher.refresh()
        else:
            self.schedule_open(deps)

    def recheck_all(self) -> None:
        """Everything may have changed (settings, pyproject): re-check every open file."""
        self.generation += 1
        if self.notebooks is not None:  # pushed, pulling client or not (notebook_checks)
            for uri in self.notebooks.notebooks.uris():
                self.scheduler.schedule(uri)
        if self.client.pull:
            self.publisher.results.clear()
            self.publisher.refresh()
        else:
            self.schedule_open()
