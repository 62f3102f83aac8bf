"""Passes over every file of the workspace: the start-up index and checkWorkspace.

Both work a piece at a time and yield to the event loop in between, so edits and
requests get in; both pause the cyclic collector while they run (see
Scheduler.collector_paused)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import from_fs_path

from ckpt_lsp.lsp.analysis_jobs import AnalysisJobs
from ckpt_lsp.lsp.document_checks import DocumentChecks
from ckpt_lsp.lsp.folder_project import Project
from ckpt_lsp.source import SourceError, read_source_text

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

log = logging.getLogger("ckpt_lsp.lsp")

SCAN_CHUNK = 25  # files indexed per trip to the analysis thread


class WorkspaceChecks:
    """Index every folder; check every file and publish, with progress."""

    def __init__(self, server: LanguageServer, checks: DocumentChecks, jobs: AnalysisJobs) -> None:
        self.server = server
        self.checks = checks
        self.jobs = jobs
        self.client = checks.client
        self.documents = checks.documents
        self.folders = checks.folders
        self.scheduler = checks.scheduler
        self.publisher = checks.publisher

    # -- the index of the workspace ------------------------------------------------------------
    async def scan_workspace(self) -> None:
        """Index every folder's files (a chunk at a time, so edits get in between), then
        re-check the open files: their bases and factories may live in files not open."""
        total = 0
        with self.scheduler.collector_paused():
            for project in list(self.folders.projects.values()):
                total += await self._scan_project(project)
        if total:
            log.info("indexed %d files", total)
            self.checks.recheck_all()

    async def _scan_project(self, project: Project) -> int:
        files = await self.scheduler.run(project.python_files)
        open_paths = self.documents.paths()
        todo = [f for f in files if f not in open_paths]
        for start in range(0, len(todo), SCAN_CHUNK):
            chunk = [
                f
                for f in todo[start : start + SCAN_CHUNK]
                if f not in self.documents.paths()  # opened meanwhile: its text wins
            ]
            errors = await self.scheduler.run(project.index.scan, chunk)
            for path, message in errors[:3]:
                log.info("cannot index %s: %s", path, message)
        return len(todo)

    # -- checkWorkspace ------------------------------------------------------------------------
    async def check_workspace(self) -> dict[str, int]:
        """Analyze every .py file of every folder and publish the results, with progress."""
        token = await self._begin_progress()
        files: list[tuple[Project, str]] = []
        for project in list(self.folders.projects.values()):
            paths = await self.scheduler.run(project.python_files)
            files.extend((project, p) for p in paths)
        findings_total = 0
        errors = 0
        last_report = 0.0
        open_paths = self.documents.paths()
        with self.scheduler.collector_paused():
            for number, (project, path) in enumerate(files, 1):
                found = await self._check_file(project, path, open_paths)
                if found is None:
                    errors += 1
                    continue
                findings_total += found
                now = time.monotonic()
                if token is not None and (now - last_report > 0.1 or number == len(files)):
                    last_report = now
                    self._report_progress(token, number, len(files))
                await asyncio.sleep(0)  # let edits and requests in between files
        summary = {"files": len(files), "findings": findings_total, "errors": errors}
        if token is not None:
            self.server.work_done_progress.end(
                token,
                types.WorkDoneProgressEnd(
                    message=f"{findings_total} findings in {len(files)} files"
                ),
            )
        log.info("checked %d files: %d findings", len(files), findings_total)
        return summary

    async def _check_file(self, project: Project, path: str, open_paths: set[str]) -> int | None:
        """Check one file and publish it; its number of findings, None when unreadable."""
        uri = from_fs_path(path) or path
        if path in open_paths and self.documents.get(uri) is not None:
            result = await self.checks.current_result(uri)
            if result is None:
                return 0
            if not self.client.pull:  # a pulling client pulls open files itself
                self.publisher.publish(result)
            return len(result.findings)
        try:
            text = read_source_text(path)
        except SourceError as exc:
            log.info("cannot read %s: %s", path, exc)
            return None
        findings, _ = await self.scheduler.run(self.jobs.analyze, project, path, text)
        generation = self.checks.generation
        result = self.publisher.closed_result(uri, text, findings, project, generation)
        if findings or uri in self.publisher.pushed_closed:
            self.publisher.publish(result)
        if findings:
            self.publisher.pushed_closed.add(uri)
        else:
            self.publisher.pushed_closed.discard(uri)
        return len(findings)

    async def _begin_progress(self) -> str | None:
        """A work-done progress token, when the client shows progress."""
        if not self.client.work_done:
            return None
        token = f"ckpt-lsp/checkWorkspace/{uuid.uuid4()}"
        try:
            await self.server.work_done_progress.create_async(token)
            self.server.work_done_progress.begin(
                token,
                types.WorkDoneProgressBegin(title="ckpt-lsp: checking the workspace", percentage=0),
            )
        except Exception as exc:
            log.info("no progress reporting: %s", exc)
            return None
        return token

    def _report_progress(self, token: str, number: int, total: int) -> None:
        self.server.work_done_progress.report(
            token,
            types.WorkDoneProgressReport(
                message=f"{number}/{total} files",
                percentage=int(number * 100 / max(total, 1)),
            ),
        )
