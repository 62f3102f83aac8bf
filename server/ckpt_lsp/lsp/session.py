"""The state of one language server, built from parts that each have one job.

    client            ClientFeatures       what the editor can do (read at initialize)
    documents         OpenDocuments        the open documents and their file names
    folders           WorkspaceFolders     projects per folder, their settings and config
    scheduler         Scheduler            the analysis and fix threads, the dirty queue
    publisher         DiagnosticPublisher  each document's last result, pushed or pulled
    checks            DocumentChecks       newest text -> analysis -> result, nothing stale
    watcher           FileWatcher          the index follows files changed on disk
    workspace_checks  WorkspaceChecks      the start-up index and checkWorkspace
    fixes             FixResolver          quick-fix edits, built on the fix thread
    notebooks         OpenNotebooks        the open notebooks and their code cells
    notebook_checks   NotebookChecks       a notebook's cells analyzed as one module

Handlers (lsp/handlers/) talk to these parts; the session only builds and wires them.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

from ckpt_lsp.lsp.analysis_jobs import AnalysisJobs
from ckpt_lsp.lsp.client_features import ClientFeatures
from ckpt_lsp.lsp.document_checks import DocumentChecks
from ckpt_lsp.lsp.file_watching import FileWatcher
from ckpt_lsp.lsp.fix_resolution import FixResolver
from ckpt_lsp.lsp.notebook_checks import NotebookChecks
from ckpt_lsp.lsp.notebooks import OpenNotebooks
from ckpt_lsp.lsp.open_documents import OpenDocuments
from ckpt_lsp.lsp.publishing import DiagnosticPublisher
from ckpt_lsp.lsp.scheduling import Scheduler
from ckpt_lsp.lsp.workspace_checks import WorkspaceChecks
from ckpt_lsp.lsp.workspace_folders import WorkspaceFolders

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer


class Session:
    """Documents, folders, settings, threads and publishing of one server."""

    def __init__(self, server: LanguageServer) -> None:
        self.server = server
        self.client = ClientFeatures()  # one object, shared by every part
        self.documents = OpenDocuments(server)
        self.folders = WorkspaceFolders(server, self.client)
        self.scheduler = Scheduler()
        self.publisher = DiagnosticPublisher(server, self.client)
        jobs = AnalysisJobs()
        self.checks = DocumentChecks(
            self.client, self.documents, self.folders, self.scheduler, self.publisher, jobs
        )
        self.notebooks = OpenNotebooks(server)
        self.notebook_checks = NotebookChecks(
            self.notebooks, self.folders, self.scheduler, self.publisher, jobs
        )
        self.checks.notebooks = self.notebook_checks
        self.scheduler.check = self.checks.check_open
        self.watcher = FileWatcher(self.checks, jobs)
        self.workspace_checks = WorkspaceChecks(server, self.checks, jobs)
        self.fixes = FixResolver(self.scheduler)

    def use_client(self, features: ClientFeatures) -> None:
        """Take the client's features (at initialize), in place: every part holds them."""
        for f in fields(ClientFeatures):
            setattr(self.client, f.name, getattr(features, f.name))

    def close(self) -> None:
        self.scheduler.close()
