"""The server's state and the flow from an edit to a published diagnostic.

One thread owns every analyzer and index (`_worker`): they are not thread-safe,
and one worker gives "latest wins" for free. An edit marks its document dirty; a
single drain task analyzes the newest text of each dirty document off the event
loop and publishes the result only if the document is still at the version that
was analyzed (an older result for a document that moved on is dropped, and the
newer version is already queued). So a burst of edits costs one analysis per
burst, not one per edit, and nothing stale reaches the client.

Diagnostics go to the client the way it prefers: pulled (textDocument/diagnostic)
when it can pull and be asked to re-pull (workspace/diagnostic/refresh), pushed
otherwise, never both (a client that does both would show everything twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path

from ckpt_lsp.findings import Finding
from ckpt_lsp.lsp.actions import ActionContext, resolve_fix
from ckpt_lsp.lsp.diagnostics import DiagnosticCache, Json, publish_body
from ckpt_lsp.lsp.positions import LineIndex
from ckpt_lsp.lsp.projects import SETTINGS_KEYS, Project, is_within, norm_path
from ckpt_lsp.source import MAX_BYTES, SourceError, read_source_text

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer
    from pygls.workspace import TextDocument

log = logging.getLogger("ckpt_lsp.lsp")
T = TypeVar("T")

PYTHON_SUFFIXES = (".py", ".pyi")
SETTINGS_SECTION = "ckpt-lsp"
SLOW_ANALYSIS_S = 1.0  # log analyses slower than this


@dataclass
class DocResult:
    """The findings of one version of one document, ready to publish."""

    uri: str
    version: int | None
    text: str
    findings: list[Finding]
    diagnostics: list[Json]  # the protocol's JSON, in the order of `findings`
    result_id: str
    generation: int  # the session's configuration generation it was computed under


@dataclass
class ClientFeatures:
    """What the client said it can do, read once at initialize."""

    pull: bool = False
    refresh: bool = False
    watch_dynamic: bool = False
    relative_patterns: bool = False
    configuration: bool = False
    work_done: bool = False
    document_changes: bool = False
    resolve_edit: bool = False  # codeAction/resolve may fill in `edit`
    markdown: bool = True
    show_message: bool = True

    @classmethod
    def from_capabilities(cls, caps: types.ClientCapabilities | None) -> ClientFeatures:
        if caps is None:
            return cls()
        td = caps.text_document
        ws = caps.workspace
        window = caps.window
        pull_cap = td.diagnostic if td is not None else None
        refresh = bool(ws and ws.diagnostics and ws.diagnostics.refresh_support)
        watched = ws.did_change_watched_files if ws is not None else None
        hover = td.hover if td is not None else None
        action = td.code_action if td is not None else None
        resolvable = action.resolve_support.properties if action and action.resolve_support else []
        markdown = True
        if hover is not None and hover.content_format:
            markdown = types.MarkupKind.Markdown in hover.content_format
        return cls(
            pull=pull_cap is not None and refresh,
            refresh=refresh,
            watch_dynamic=bool(watched and watched.dynamic_registration),
            relative_patterns=bool(watched and watched.relative_pattern_support),
            configuration=bool(ws and ws.configuration),
            work_done=bool(window and window.work_done_progress),
            document_changes=bool(ws and ws.workspace_edit and ws.workspace_edit.document_changes),
            resolve_edit="edit" in (resolvable or []),
            markdown=markdown,
        )


@dataclass
class Settings:
    """Editor settings: global ones (initializationOptions, didChangeConfiguration)
    and per-folder ones pulled with workspace/configuration."""

    global_: dict[str, Any] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_folder(self, root: str | None) -> dict[str, Any]:
        merged = dict(self.global_)
        if root is not None:
            merged.update(self.folders.get(root, {}))
        return merged


def settings_from_payload(payload: Any) -> dict[str, Any] | None:
    """The ckpt-lsp settings in a didChangeConfiguration or initializationOptions payload.

    Accepts {"ckpt-lsp": {...}}, {"settings": {...}} (the extension's initialization
    options) and a bare settings object. None when the payload has none."""
    if not isinstance(payload, Mapping):
        return None
    for key in (SETTINGS_SECTION, "ckptLsp", "settings"):
        inner = payload.get(key)
        if isinstance(inner, Mapping):
            nested = settings_from_payload(inner) if key == "settings" else None
            return dict(nested if nested is not None else inner)
    if any(key in payload for key in SETTINGS_KEYS):
        return dict(payload)
    return None


class Session:
    """Documents, projects, settings and the analysis thread of one server."""

    def __init__(self, server: LanguageServer) -> None:
        self.server = server
        self.client = ClientFeatures()
        self.settings = Settings()
        self.projects: dict[str, Project] = {}  # folder path -> project
        self.loose: Project | None = None  # files outside every folder
        self.results: dict[str, DocResult] = {}  # uri -> last published result
        self.pushed_closed: set[str] = set()  # closed files published by checkWorkspace
        self.generation = 0
        self._ids = itertools.count(1)
        self._diagnostics = DiagnosticCache()
        self._dirty: dict[str, None] = {}  # ordered set of uris to analyze
        self._drain_task: asyncio.Task[None] | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ckpt-analysis")
        # Fixes parse the whole file; on their own thread they hold up neither the
        # message loop nor the diagnostics of the next keystroke.
        self._fixer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ckpt-fix")
        self._fix_cache: dict[tuple[Any, ...], tuple[Any, str | None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._too_large: dict[str, int] = {}  # path -> size last reported
        self.shutting_down = False
        self._paused = 0
        self._collector_was_on = True

    # -- threads -------------------------------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on the analysis thread (the only one that touches analyzers)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, partial(fn, *args))

    @contextlib.contextmanager
    def collector_paused(self) -> Iterator[None]:
        """Pause the cyclic collector for a pass over many files (the start-up index,
        checkWorkspace): their syntax trees are acyclic, freed by refcounting, and the
        collector would rescan them again and again (checkWorkspace over 2,000 files: 33 s
        with it, 14 s without). Paused per file, each file's trees were scanned as soon
        as it came back on (29 s); paused for good (or with high thresholds), the cyclic
        garbage of each keystroke piled up: +1.2 MiB/s in benchmarks/soak_server.py."""
        self._paused += 1
        if self._paused == 1:
            self._collector_was_on = gc.isenabled()
            gc.disable()
        try:
            yield
        finally:
            self._paused -= 1
            if self._paused == 0 and self._collector_was_on:
                gc.enable()

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Start a background task whose failure is logged, not lost."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                log.error("%s failed: %s", name, exc, exc_info=exc)

        task.add_done_callback(done)
        return task

    def close(self) -> None:
        self.shutting_down = True
        for task in list(self._background):
            task.cancel()
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._fixer.shutdown(wait=False, cancel_futures=True)

    # -- documents and projects ----------------------------------------------------------------
    def open_document(self, uri: str) -> TextDocument | None:
        """The open document at `uri`, or None (pygls would invent one from disk)."""
        docs = self.server.workspace.text_documents
        doc = docs.get(uri)
        if doc is None:
            from urllib.parse import unquote

            doc = docs.get(unquote(uri))
        return doc

    @staticmethod
    def path_of(doc: TextDocument) -> str:
        """The file name the analysis knows a document by: its path for files; the URI
        for others (notebook cells share their notebook's path, untitled ones have none)."""
        if doc.uri.startswith("file:") and doc.path:
            return norm_path(doc.path)
        return doc.uri

    @staticmethod
    def is_python(doc: TextDocument) -> bool:
        if doc.language_id:
            return doc.language_id == "python"
        return doc.uri.endswith(PYTHON_SUFFIXES)

    def project_for_path(self, path: str) -> Project:
        best: Project | None = None
        for project in self.projects.values():
            if project.contains(path) and (
                best is None or len(project.root or "") > len(best.root or "")
            ):
                best = project
        if best is not None:
            return best
        if self.loose is None:
            self.loose = Project.create(None)
            self._configure(self.loose)
        return self.loose

    def add_folder(self, uri: str) -> Project | None:
        path = to_fs_path(uri)
        if not path:
            return None
        root = norm_path(path)
        if root not in self.projects:
            project = Project.create(root)
            self.projects[root] = project
            self._configure(project)
        return self.projects[root]

    def remove_folder(self, uri: str) -> None:
        path = to_fs_path(uri)
        if path:
            self.projects.pop(norm_path(path), None)

    def all_projects(self) -> list[Project]:
        return list(self.projects.values()) + ([self.loose] if self.loose else [])

    def _configure(self, project: Project) -> bool:
        """(Re)build a project's config; shows an error once. True when it changed."""
        before = (project.config, project.enabled)
        error = project.reconfigure(self.settings.for_folder(project.root))
        if error:
            log.error("%s", error)
            self.show_message(error, types.MessageType.Error)
        return (project.config, project.enabled) != before

    def show_message(self, message: str, kind: types.MessageType) -> None:
        with contextlib.suppress(Exception):
            self.server.window_show_message(types.ShowMessageParams(type=kind, message=message))

    # -- the analysis flow ---------------------------------------------------------------------
    def schedule(self, uri: str) -> None:
        """Mark a document for (re-)analysis; one drain task works through them."""
        self._dirty[uri] = None
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = self.spawn(self._drain(), "analysis")

    def schedule_open(self, paths: Iterable[str] | None = None) -> None:
        """Re-check open documents (those at `paths`, or all)."""
        wanted = None if paths is None else {norm_path(p) for p in paths}
        for uri, doc in list(self.server.workspace.text_documents.items()):
            if not self.is_python(doc):
                continue
            if wanted is None or (doc.path and norm_path(doc.path) in wanted):
                self.schedule(uri)

    async def _drain(self) -> None:
        while self._dirty and not self.shutting_down:
            uri = next(iter(self._dirty))
            del self._dirty[uri]
            try:
                await self._check_open(uri)
            except Exception:
                log.exception("checking %s failed", uri)

    async def _check_open(self, uri: str) -> DocResult | None:
        doc = self.open_document(uri)
        if doc is None or not self.is_python(doc):
            return None
        version, text = doc.version, doc.source
        generation = self.generation
        cached = self.results.get(uri)
        if self._valid(cached, version, text):
            return cached  # nothing changed since (a save, or a second request)
        path = self.path_of(doc)
        project = self.project_for_path(path)
        findings, dependents = await self.run(self._analyze_open, project, path, text)
        current = self.open_document(uri)
        if current is None or current.version != version or self.generation != generation:
            log.debug("dropping stale result for %s v%s", uri, version)
            if current is not None:
                self.schedule(uri)
            return None
        cached = self.results.get(uri)
        if self._valid(cached, version, text):
            return cached  # analyzed twice at once (a hover during an edit): publish once
        result = self._store(uri, version, text, findings, project)
        if not self.client.pull:
            self.publish(result)
        if dependents:
            self.dependents_changed(dependents)
        return result

    def _valid(self, result: DocResult | None, version: int | None, text: str) -> bool:
        return (
            result is not None
            and result.version == version
            and result.generation == self.generation
            and result.text == text
        )

    def _analyze_open(
        self, project: Project, path: str, text: str
    ) -> tuple[list[Finding], set[str]]:
        """On the analysis thread: analyze (and index) an open file's live text. Also the
        files that depend on it, when what they can see of it changed."""
        started = time.perf_counter()
        findings, changed = self._analyze(project, path, text)
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

    def _analyze(self, project: Project, path: str, text: str) -> tuple[list[Finding], bool]:
        """On the analysis thread. A failure is logged and gives no findings, never a crash."""
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

    def _store(
        self, uri: str, version: int | None, text: str, findings: list[Finding], project: Project
    ) -> DocResult:
        index = LineIndex(text, self.server.workspace.position_codec)
        diagnostics = self._diagnostics.convert(findings, index)
        previous = self.results.get(uri)
        if previous is not None and previous.diagnostics == diagnostics:
            result_id = previous.result_id
        else:
            result_id = f"{next(self._ids)}"
        result = DocResult(uri, version, text, findings, diagnostics, result_id, self.generation)
        self.results[uri] = result
        return result

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

    async def current_result(self, uri: str) -> DocResult | None:
        """The result for the document's current text (analyzing it now if needed)."""
        doc = self.open_document(uri)
        if doc is None:
            return None
        cached = self.results.get(uri)
        if self._valid(cached, doc.version, doc.source):
            return cached
        for _ in range(3):  # an edit can land while we analyze; try again, then give up
            result = await self._check_open(uri)
            if result is not None:
                return result
        return self.results.get(uri)

    def dependents_changed(self, deps: set[str]) -> None:
        """A module others import changed: re-check the open files that use it."""
        log.debug("re-checking %d dependents", len(deps))
        for uri, doc in list(self.server.workspace.text_documents.items()):
            if doc.path and norm_path(doc.path) in deps:
                self.results.pop(uri, None)  # same text, new answer
        if self.client.pull:
            self.refresh()
        else:
            self.schedule_open(deps)

    def refresh(self) -> None:
        """Ask a pulling client to pull again (after config or cross-file changes)."""
        if not self.client.refresh:
            return
        with contextlib.suppress(Exception):
            self.server.workspace_diagnostic_refresh(None)

    def recheck_all(self) -> None:
        """Everything may have changed (settings, pyproject): re-check every open file."""
        self.generation += 1
        if self.client.pull:
            self.results.clear()
            self.refresh()
        else:
            self.schedule_open()

    async def resolve_fix(self, ctx: ActionContext, action: types.CodeAction) -> str | None:
        """Build a fix action's edit on the fix thread; cached per document state and
        targets, since an editor asks again for the same line."""
        key = (ctx.uri, ctx.version, len(ctx.text), hash(ctx.text), repr(action.data))
        cached = self._fix_cache.get(key)
        if cached is not None:
            action.edit, reason = cached
            return reason
        loop = asyncio.get_running_loop()
        reason = await loop.run_in_executor(self._fixer, resolve_fix, ctx, action)
        if len(self._fix_cache) > 64:
            self._fix_cache.clear()
        self._fix_cache[key] = (action.edit, reason)
        return reason

    # -- lifecycle of documents ----------------------------------------------------------------
    def did_open(self, uri: str) -> None:
        doc = self.open_document(uri)
        if doc is None or not self.is_python(doc):
            return
        if uri in self.pushed_closed:
            self.pushed_closed.discard(uri)
            if self.client.pull:
                self.publish_empty(uri)  # the pull result takes over from the pushed one
        self.schedule(uri)

    def did_close(self, uri: str) -> None:
        self._dirty.pop(uri, None)
        self.results.pop(uri, None)
        self.publish_empty(uri)
        path = to_fs_path(uri) if uri.startswith("file:") else None
        if path:
            # The editor may have dropped unsaved changes: the index goes back to the disk.
            self.spawn(self._back_to_disk(norm_path(path)), f"re-indexing {path}")

    async def _back_to_disk(self, path: str) -> None:
        project = self.project_for_path(path)
        project_analyzer = project.analyzer
        await self.run(project_analyzer.forget, path)
        if project.root is None:
            return
        try:
            text = read_source_text(path)
        except SourceError:
            deps = await self.run(project.remove_source, path)
        else:
            deps = await self.run(self._reindex, project, path, text)
        if deps:
            self.dependents_changed(deps)

    # -- settings and config files -------------------------------------------------------------
    def apply_settings(self) -> None:
        changed = False
        for project in self.all_projects():
            changed |= self._configure(project)
        if changed:
            self.recheck_all()

    async def pull_settings(self) -> None:
        """Ask the client for the `ckpt-lsp` section, globally and per folder."""
        if not self.client.configuration:
            return
        roots = list(self.projects)
        items = [types.ConfigurationItem(section=SETTINGS_SECTION)]
        items += [
            types.ConfigurationItem(scope_uri=from_fs_path(root), section=SETTINGS_SECTION)
            for root in roots
        ]
        try:
            values = await self.server.workspace_configuration_async(
                types.ConfigurationParams(items=items)
            )
        except Exception as exc:
            log.warning("workspace/configuration failed: %s", exc)
            return
        values = list(values or [])
        if values and isinstance(values[0], Mapping):
            self.settings.global_.update(values[0])
        for root, value in zip(roots, values[1:]):
            if isinstance(value, Mapping):
                self.settings.folders[root] = dict(value)

    def config_file_changed(self, path: str) -> None:
        """A pyproject.toml changed: re-read the configs of the projects it can affect."""
        directory = norm_path(Path(path).parent)
        changed = False
        for project in self.all_projects():
            root = project.root
            if root is None or is_within(root, directory) or is_within(directory, root):
                changed |= self._configure(project)
        if changed:
            self.recheck_all()

    async def file_changed_on_disk(self, path: str, kind: types.FileChangeType) -> None:
        """A watched .py file changed outside the editor: update the index, re-check."""
        path = norm_path(path)
        uri = from_fs_path(path) or path
        if self.open_document(uri) is not None:
            return  # the editor's text is what counts for open files
        project = self.project_for_path(path)
        if project.root is None:
            return
        if kind == types.FileChangeType.Deleted:
            deps = await self.run(project.remove_source, path)
            if uri in self.pushed_closed:
                self.pushed_closed.discard(uri)
                self.publish_empty(uri)
            if deps:
                self.dependents_changed(deps)
            return
        try:
            text = read_source_text(path)
        except SourceError as exc:
            log.info("cannot read %s: %s", path, exc)
            return
        dependents = await self.run(self._reindex, project, path, text)
        if dependents:
            self.dependents_changed(dependents)
        if uri in self.pushed_closed:
            findings, _ = await self.run(self._analyze, project, path, text)
            self._store(uri, None, text, findings, project)
            self.publish(self.results.pop(uri))

    @staticmethod
    def _reindex(project: Project, path: str, text: str) -> set[str]:
        """On the analysis thread: index a closed file's new text; its dependents when
        what they can see of it changed."""
        return project.index.dependents(path) if project.update_source(path, text) else set()

    # -- the index of the workspace ------------------------------------------------------------
    async def scan_workspace(self) -> None:
        """Index every folder's files (a chunk at a time, so edits get in between), then
        re-check the open files: their bases and factories may live in files not open."""
        total = 0
        with self.collector_paused():
            for project in list(self.projects.values()):
                files = await self.run(project.python_files)
                open_paths = self._open_paths()
                todo = [f for f in files if f not in open_paths]
                for start in range(0, len(todo), 25):
                    chunk = [
                        f
                        for f in todo[start : start + 25]
                        if f not in self._open_paths()  # opened meanwhile: its text wins
                    ]
                    errors = await self.run(project.index.scan, chunk)
                    for path, message in errors[:3]:
                        log.info("cannot index %s: %s", path, message)
                total += len(todo)
        if total:
            log.info("indexed %d files", total)
            self.recheck_all()

    def _open_paths(self) -> set[str]:
        return {norm_path(d.path) for d in self.server.workspace.text_documents.values() if d.path}

    # -- checkWorkspace ------------------------------------------------------------------------
    async def check_workspace(self) -> dict[str, int]:
        """Analyze every .py file of every folder and publish the results, with progress."""
        token: str | None = None
        if self.client.work_done:
            token = f"ckpt-lsp/checkWorkspace/{uuid.uuid4()}"
            try:
                await self.server.work_done_progress.create_async(token)
                self.server.work_done_progress.begin(
                    token,
                    types.WorkDoneProgressBegin(
                        title="ckpt-lsp: checking the workspace", percentage=0
                    ),
                )
            except Exception as exc:
                log.info("no progress reporting: %s", exc)
                token = None
        files: list[tuple[Project, str]] = []
        for project in list(self.projects.values()):
            paths = await self.run(project.python_files)
            files.extend((project, p) for p in paths)
        findings_total = 0
        errors = 0
        last_report = 0.0
        open_paths = self._open_paths()
        with self.collector_paused():
            for number, (project, path) in enumerate(files, 1):
                uri = from_fs_path(path) or path
                if path in open_paths and self.open_document(uri) is not None:
                    result = await self.current_result(uri)
                    if result is not None:
                        findings_total += len(result.findings)
                        if self.client.pull:
                            pass  # the client pulls open files itself
                        else:
                            self.publish(result)
                else:
                    try:
                        text = read_source_text(path)
                    except SourceError as exc:
                        log.info("cannot read %s: %s", path, exc)
                        errors += 1
                        continue
                    findings, _ = await self.run(self._analyze, project, path, text)
                    findings_total += len(findings)
                    result = self._store(uri, None, text, findings, project)
                    del self.results[uri]  # not open: keep no state but the published list
                    if findings or uri in self.pushed_closed:
                        self.publish(result)
                    if findings:
                        self.pushed_closed.add(uri)
                    else:
                        self.pushed_closed.discard(uri)
                now = time.monotonic()
                if token is not None and (now - last_report > 0.1 or number == len(files)):
                    last_report = now
                    self.server.work_done_progress.report(
                        token,
                        types.WorkDoneProgressReport(
                            message=f"{number}/{len(files)} files",
                            percentage=int(number * 100 / max(len(files), 1)),
                        ),
                    )
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
