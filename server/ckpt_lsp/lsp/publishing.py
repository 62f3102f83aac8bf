"""The findings of each document as the client sees them, and how they get there.

Diagnostics go to the client the way it prefers: pulled (textDocument/diagnostic)
when it can pull and be asked to re-pull (workspace/diagnostic/refresh), pushed
otherwise, never both (a client that does both would show everything twice).
A result keeps its id while its diagnostics stay the same, so a pulling client
hears "unchanged"."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lsprotocol import types

from ckpt_lsp.findings import Finding
from ckpt_lsp.lsp.client_features import ClientFeatures
from ckpt_lsp.lsp.diagnostics import DiagnosticCache, Json, publish_body
from ckpt_lsp.lsp.positions import LineIndex

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from ckpt_lsp.lsp.folder_project import Project

log = logging.getLogger("ckpt_lsp.lsp")


@dataclass
class DocResult:
    """The findings of one version of one document, ready to publish."""

    uri: str
    version: int | None
    text: str
    findings: list[Finding]
    diagnostics: list[Json]  # the protocol's JSON, in the order of `findings`
    result_id: str
    generation: int  # the configuration generation it was computed under


class DiagnosticPublisher:
    """The last result of each open document, and the way to the client."""

    def __init__(self, server: LanguageServer, client: ClientFeatures) -> None:
        self.server = server
        self.client = client
        self.results: dict[str, DocResult] = {}  # uri -> last published result
        self.pushed_closed: set[str] = set()  # closed files published by checkWorkspace
        self._ids = itertools.count(1)
        self._diagnostics = DiagnosticCache()

    def store(
        self,
        uri: str,
        version: int | None,
        text: str,
        findings: list[Finding],
        project: Project,
        generation: int,
    ) -> DocResult:
        """Convert findings to diagnostics and keep them as the document's result."""
        index = LineIndex(text, self.server.workspace.position_codec)
        diagnostics = self._diagnostics.convert(findings, index)
        previous = self.results.get(uri)
        if previous is not None and previous.diagnostics == diagnostics:
            result_id = previous.result_id
        else:
            result_id = f"{next(self._ids)}"
        result = DocResult(uri, version, text, findings, diagnostics, result_id, generation)
        self.results[uri] = result
        return result

    def closed_result(
        self, uri: str, text: str, findings: list[Finding], project: Project, generation: int
    ) -> DocResult:
        """A result for a file that is not open, not kept: only its published list stays."""
        self.store(uri, None, text, findings, project, generation)
        return self.results.pop(uri)

    def withdraw_pushed(self, uri: str) -> None:
        """A closed file that checkWorkspace published is gone: clear its list."""
        if uri in self.pushed_closed:
            self.pushed_closed.discard(uri)
            self.publish_empty(uri)

    def forget(self, uri: str) -> None:
        """A document closed: drop its result and clear what the client shows for it."""
        self.results.pop(uri, None)
        self.publish_empty(uri)

    def opened(self, uri: str) -> None:
        """A document opened that checkWorkspace had pushed while closed: for a pulling
        client the pull result takes over, so the pushed list is cleared."""
        if uri in self.pushed_closed:
            self.pushed_closed.discard(uri)
            if self.client.pull:
                self.publish_empty(uri)

    def publish(self, result: DocResult) -> None:
        self._publish(result.uri, result.version, result.diagnostics)

    def publish_empty(self, uri: str) -> None:
        self._publish(uri, None, [])

    def _publish(self, uri: str, version: int | None, diagnostics: list[Json]) -> None:
        """Send publishDiagnostics as ready JSON text: going through cattrs and json again
        would cost more than the analysis for a file with hundreds of diagnostics."""
        protocol = self.server.protocol
        writer = getattr(protocol, "writer", None)
        if writer is None:
            log.warning("cannot publish diagnostics: no connection")
            return
        body = publish_body(uri, version, diagnostics).encode("utf-8")
        header = f"Content-Length: {len(body)}\r\n\r\n".encode("ascii")
        result = writer.write(header + body)
        if inspect.isawaitable(result):  # an async transport (TCP, websockets)
            asyncio.ensure_future(result)

    def diagnostic_objects(self, diagnostics: list[Json]) -> list[types.Diagnostic]:
        converter = self.server.protocol._converter
        return [converter.structure(d, types.Diagnostic) for d in diagnostics]

    def refresh(self) -> None:
        """Ask a pulling client to pull again (after config or cross-file changes)."""
        if not self.client.refresh:
            return
        with contextlib.suppress(Exception):
            self.server.workspace_diagnostic_refresh(None)
