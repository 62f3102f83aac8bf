"""Files that change outside the editor: the index follows the disk.

A watched .py file that is not open is re-indexed from disk (or dropped when
deleted); the open files that import it are re-checked when what they can see of
it changed. A closed file that checkWorkspace published is published again. An
open file is left alone: the editor's text is what counts."""

from __future__ import annotations

import logging

from lsprotocol import types
from pygls.uris import from_fs_path

from ckpt_lsp.lsp.analysis_jobs import AnalysisJobs
from ckpt_lsp.lsp.document_checks import DocumentChecks
from ckpt_lsp.lsp.file_paths import norm_path
from ckpt_lsp.source import SourceError, read_source_text

log = logging.getLogger("ckpt_lsp.lsp")


class FileWatcher:
    """Keeps each folder's index in step with files changed or deleted on disk."""

    def __init__(self, checks: DocumentChecks, jobs: AnalysisJobs) -> None:
        self.checks = checks
        self.jobs = jobs
        self.documents = checks.documents
        self.folders = checks.folders
        self.scheduler = checks.scheduler
        self.publisher = checks.publisher

    async def file_changed_on_disk(self, path: str, kind: types.FileChangeType) -> None:
        """A watched .py file changed outside the editor: update the index, re-check."""
        path = norm_path(path)
        uri = from_fs_path(path) or path
        if self.documents.get(uri) is not None:
            return  # the editor's text is what counts for open files
        project = self.folders.project_for_path(path)
        if project.root is None:
            return
        if kind == types.FileChangeType.Deleted:
            deps = await self.scheduler.run(project.remove_source, path)
            self.publisher.withdraw_pushed(uri)
            if deps:
                self.checks.dependents_changed(deps)
            return
        try:
            text = read_source_text(path)
        except SourceError as exc:
            log.info("cannot read %s: %s", path, exc)
            return
        dependents = await self.scheduler.run(self.jobs.reindex, project, path, text)
        if dependents:
            self.checks.dependents_changed(dependents)
        if uri in self.publisher.pushed_closed:
            findings, _ = await self.scheduler.run(self.jobs.analyze, project, path, text)
            generation = self.checks.generation
            self.publisher.publish(
                self.publisher.closed_result(uri, text, findings, project, generation)
            )

    async def back_to_disk(self, path: str) -> None:
        """A file was closed: the editor may have dropped unsaved changes, so the index
        goes back to the text on disk."""
        project = self.folders.project_for_path(path)
        project_analyzer = project.analyzer
        await self.scheduler.run(project_analyzer.forget, path)
        if project.root is None:
            return
        try:
            text = read_source_text(path)
        except SourceError:
            deps = await self.scheduler.run(project.remove_source, path)
        else:
            deps = await self.scheduler.run(self.jobs.reindex, project, path, text)
        if deps:
            self.checks.dependents_changed(deps)
