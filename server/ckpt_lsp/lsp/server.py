"""The ckpt-lsp language server (pygls 2): wires protocol messages to the session.

Handlers stay thin: they read the request, ask the session (which owns the state
and the analysis thread) and shape the answer. `run_stdio()` is what
`ckpt-lsp` / `ckpt-lsp --stdio` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
import threading
from collections.abc import Generator
from types import SimpleNamespace
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.io_ import StdinAsyncReader, StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.uris import to_fs_path

from ckpt_lsp import __version__
from ckpt_lsp.lsp import actions, hover
from ckpt_lsp.lsp.diagnostics import SOURCE
from ckpt_lsp.lsp.documents import use_lsp_lines
from ckpt_lsp.lsp.framing import FrameReader, serve
from ckpt_lsp.lsp.logs import ClientLogHandler, setup_stderr_logging
from ckpt_lsp.lsp.positions import LineIndex
from ckpt_lsp.lsp.projects import norm_path
from ckpt_lsp.lsp.session import DocResult, Session, settings_from_payload

log = logging.getLogger("ckpt_lsp.lsp")

CHECK_WORKSPACE = "ckpt-lsp.checkWorkspace"
WATCHERS_ID = "ckpt-lsp/watchers"

# A message that could not be read is answered here and then skipped by pygls.
_SKIP = SimpleNamespace(jsonrpc="skipped")


class CkptProtocol(LanguageServerProtocol):
    """pygls' protocol with three changes: diagnostics are advertised only to clients
    that will pull them, a request whose params do not fit its method gets an
    InvalidParams answer (pygls would leave the client waiting forever), and the
    futures of notifications are let go once done."""

    _server: CkptServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._finished: list[Any] = []  # keys of notification futures done off the loop

    def _handle_notification(self, method_name: str, params: Any) -> None:
        # pygls 2.1 files the future of every notification with a generator or async
        # handler (didOpen, didChange, didClose, didSave...) under a fresh uuid in
        # _request_futures and never removes it: about 1.6 KB per keystroke, 280 MB
        # over an hour of 50 edits/s (benchmarks/soak_server.py).
        while self._finished:
            self._request_futures.pop(self._finished.pop(), None)
        before = set(self._request_futures)
        super()._handle_notification(method_name, params)
        for key in set(self._request_futures) - before:
            future = self._request_futures.get(key)
            if future is None or future.done():
                self._request_futures.pop(key, None)
            else:
                future.add_done_callback(functools.partial(self._forget_future, key))

    def _forget_future(self, key: Any, _future: Any) -> None:
        # Not at once: a cancel() runs this callback synchronously, and pygls's shutdown
        # cancels while it walks _request_futures. The event loop pops it right after.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread or no loop: the next notification does it
            self._finished.append(key)
            return
        loop.call_soon(self._request_futures.pop, key, None)

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(
        self, params: types.InitializeParams
    ) -> Generator[Any, Any, types.InitializeResult]:
        result = yield from super().lsp_initialize(params)
        if not self._server.session.client.pull:
            result.capabilities.diagnostic_provider = None
        return result

    def structure_message(self, data: dict[str, Any]) -> Any:
        if isinstance(data, dict) and "jsonrpc" in data and "method" in data:
            data.setdefault("params", None)  # JSON-RPC lets a message leave params out
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                log.warning("invalid %s request: %s", data.get("method"), exc)
                error = JsonRpcInvalidParams(
                    f"invalid params for {data.get('method')}"
                ).to_response_error()
                self._send_response(data["id"], None, error)
                return _SKIP
            raise


class CkptServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            name="ckpt-lsp",
            version=__version__,
            protocol_cls=CkptProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.session = Session(self)
        self.client_log = ClientLogHandler(self)
        self.ended_by = ""  # "eof": the client went away; "exit": it said exit

    def _start_io_async(self, stdin: Any = None, stdout: Any = None) -> None:
        """pygls' stdio loop with our frame reader (see framing.py): a malformed frame
        is answered or logged and the server reads on. Records why the loop ended."""
        self._stop_event = threading.Event()
        reader = FrameReader(StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool))
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        try:
            self.ended_by = asyncio.run(serve(self._stop_event, reader, self.protocol))
        except BrokenPipeError:
            log.info("the client closed the connection")
            self.ended_by = "eof"
        except (KeyboardInterrupt, SystemExit):
            self.ended_by = "exit"
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop without waiting for the thread blocked reading stdin (see run_stdio)."""
        if self._stop_event is not None:
            self._stop_event.set()
        if self._thread_pool is not None:
            self._thread_pool.shutdown(wait=False, cancel_futures=True)
        self.session.close()

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Errors outside a request go to the log (stderr and the client's output), not
        pop-ups: one broken handler must not nag the user, nor stop the server."""
        log.error("%s: %s", getattr(source, "__name__", source), error)


server = CkptServer()


def _session(ls: CkptServer) -> Session:
    return ls.session


# -- lifecycle ---------------------------------------------------------------------------------
@server.feature(types.INITIALIZE)
def initialize(ls: CkptServer, params: types.InitializeParams) -> None:
    session = _session(ls)
    session.client = session.client.from_capabilities(params.capabilities)
    use_lsp_lines(ls.workspace)
    try:
        ls.client_log.bind(asyncio.get_running_loop())
        logging.getLogger("ckpt_lsp").addHandler(ls.client_log)
    except RuntimeError:
        pass
    options = params.initialization_options
    settings = settings_from_payload(options)
    if settings is not None:
        session.settings.global_.update(settings)
    folders = list(params.workspace_folders or [])
    if not folders:
        root_uri = params.root_uri or (f"file://{params.root_path}" if params.root_path else None)
        if root_uri:
            folders = [types.WorkspaceFolder(uri=root_uri, name="root")]
    for folder in folders:
        session.add_folder(folder.uri)
    log.info(
        "ckpt-lsp %s (python %s), %s diagnostics, %s positions, %d folder(s)",
        __version__,
        sys.version.split()[0],
        "pull" if session.client.pull else "push",
        getattr(ls.workspace.position_encoding, "value", ls.workspace.position_encoding),
        len(folders),
    )


@server.feature(types.INITIALIZED)
async def initialized(ls: CkptServer, params: types.InitializedParams) -> None:
    session = _session(ls)
    if session.client.watch_dynamic:
        watchers = [
            types.FileSystemWatcher(glob_pattern="**/*.py"),
            types.FileSystemWatcher(glob_pattern="**/*.pyi"),
            types.FileSystemWatcher(glob_pattern="**/pyproject.toml"),
        ]
        try:
            await ls.client_register_capability_async(
                types.RegistrationParams(
                    registrations=[
                        types.Registration(
                            id=WATCHERS_ID,
                            method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                            register_options=types.DidChangeWatchedFilesRegistrationOptions(
                                watchers=watchers
                            ),
                        )
                    ]
                )
            )
        except Exception as exc:
            log.info("could not register file watchers: %s", exc)
    if session.client.configuration:
        await session.pull_settings()
        session.apply_settings()
    session.spawn(session.scan_workspace(), "indexing the workspace")


@server.feature(types.SHUTDOWN)
def shutdown(ls: CkptServer, params: Any) -> None:
    _session(ls).close()


# -- documents ---------------------------------------------------------------------------------
@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: CkptServer, params: types.DidOpenTextDocumentParams) -> None:
    _session(ls).did_open(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: CkptServer, params: types.DidChangeTextDocumentParams) -> None:
    session = _session(ls)
    doc = session.open_document(params.text_document.uri)
    if doc is not None and session.is_python(doc):
        session.schedule(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
def did_save(ls: CkptServer, params: types.DidSaveTextDocumentParams) -> None:
    session = _session(ls)
    uri = params.text_document.uri
    path = to_fs_path(uri)
    if path and path.endswith("pyproject.toml"):
        session.config_file_changed(norm_path(path))
        return
    doc = session.open_document(uri)
    if doc is not None and session.is_python(doc):
        session.schedule(uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: CkptServer, params: types.DidCloseTextDocumentParams) -> None:
    _session(ls).did_close(params.text_document.uri)


# -- diagnostics (pull) ------------------------------------------------------------------------
# interFileDependencies is false: a change in one file would make the client re-pull every
# open file; the server knows which files depend on which and asks for a refresh instead.
@server.feature(
    types.TEXT_DOCUMENT_DIAGNOSTIC,
    types.DiagnosticOptions(
        identifier=SOURCE, inter_file_dependencies=False, workspace_diagnostics=False
    ),
)
async def pull_diagnostics(ls: CkptServer, params: types.DocumentDiagnosticParams) -> Any:
    session = _session(ls)
    result = await session.current_result(params.text_document.uri)
    if result is None:
        return {"kind": "full", "items": []}
    if params.previous_result_id is not None and params.previous_result_id == result.result_id:
        return {"kind": "unchanged", "resultId": result.result_id}
    # ready JSON, like the pushed diagnostics (see Session._publish)
    return {"kind": "full", "resultId": result.result_id, "items": result.diagnostics}


# -- code actions ------------------------------------------------------------------------------
def _action_context(ls: CkptServer, result: DocResult) -> actions.ActionContext:
    return actions.ActionContext(
        uri=result.uri,
        version=result.version,
        text=result.text,
        index=LineIndex(result.text, ls.workspace.position_codec),
        document_changes=_session(ls).client.document_changes,
    )


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=actions.KINDS, resolve_provider=True),
)
async def code_action(
    ls: CkptServer, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    session = _session(ls)
    result = await session.current_result(params.text_document.uri)
    if result is None or not result.findings:
        return None
    ctx = _action_context(ls, result)

    def diagnostic(i: int) -> types.Diagnostic | None:
        if 0 <= i < len(result.diagnostics):
            return session.diagnostic_objects([result.diagnostics[i]])[0]
        return None

    found = actions.code_actions(ctx, result.findings, diagnostic, params)
    if not session.client.resolve_edit:
        # this client cannot resolve: build every edit now, drop what cannot be fixed
        complete = []
        for action in found:
            if actions.is_fix_action(action) and await session.resolve_fix(ctx, action):
                continue
            complete.append(action)
        found = complete
    return found or None


@server.feature(types.CODE_ACTION_RESOLVE)
async def code_action_resolve(ls: CkptServer, action: types.CodeAction) -> types.CodeAction:
    session = _session(ls)
    if not actions.is_fix_action(action) or action.edit is not None:
        return action
    data: dict[str, Any] = action.data or {}  # a dict: is_fix_action checked it
    result = await session.current_result(str(data.get("uri")))
    if result is None or result.version != data.get("version"):
        session.show_message(
            "ckpt-lsp: the file changed since the fix was offered; try again",
            types.MessageType.Warning,
        )
        return action
    reason = await session.resolve_fix(_action_context(ls, result), action)
    if reason is not None:
        session.show_message(f"ckpt-lsp: no fix applied: {reason}", types.MessageType.Warning)
    return action


# -- hover -------------------------------------------------------------------------------------
@server.feature(types.TEXT_DOCUMENT_HOVER)
async def on_hover(ls: CkptServer, params: types.HoverParams) -> types.Hover | None:
    session = _session(ls)
    result = await session.current_result(params.text_document.uri)
    if result is None:
        return None
    index = LineIndex(result.text, ls.workspace.position_codec)
    pos = index.from_client(params.position)
    markdown = session.client.markdown
    kind = types.MarkupKind.Markdown if markdown else types.MarkupKind.PlainText
    finding = hover.finding_at(result.findings, pos)
    if finding is not None:
        i = result.findings.index(finding)
        return types.Hover(
            contents=types.MarkupContent(
                kind=kind, value=hover.finding_markdown(finding, markdown)
            ),
            range=session.diagnostic_objects([result.diagnostics[i]])[0].range,
        )
    code = hover.code_in_suppression(index.line_text(pos.row - 1), pos.column - 1)
    if code is not None:
        text = hover.rule_markdown(code, markdown)
        if text is not None:
            return types.Hover(contents=types.MarkupContent(kind=kind, value=text))
    return None


# -- workspace ---------------------------------------------------------------------------------
@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(
    ls: CkptServer, params: types.DidChangeConfigurationParams
) -> None:
    session = _session(ls)
    settings = settings_from_payload(params.settings)
    if settings is not None:
        session.settings.global_ = settings
    if session.client.configuration:
        await session.pull_settings()
    session.apply_settings()


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
async def did_change_watched_files(
    ls: CkptServer, params: types.DidChangeWatchedFilesParams
) -> None:
    session = _session(ls)
    config_changes: set[str] = set()
    for change in params.changes:
        path = to_fs_path(change.uri)
        if not path:
            continue
        path = norm_path(path)
        if path.endswith("pyproject.toml"):
            config_changes.add(path)
        elif path.endswith((".py", ".pyi")):
            await session.file_changed_on_disk(path, change.type)
    for path in sorted(config_changes):
        session.config_file_changed(path)


@server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
def did_change_folders(ls: CkptServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
    session = _session(ls)
    for folder in params.event.removed:
        session.remove_folder(folder.uri)
    for folder in params.event.added:
        session.add_folder(folder.uri)
    session.spawn(session.scan_workspace(), "indexing the workspace")


@server.command(CHECK_WORKSPACE)
async def check_workspace(ls: CkptServer, *args: Any) -> dict[str, int]:
    return await _session(ls).check_workspace()


def run_stdio() -> None:
    """Serve over stdin/stdout until the client says exit.

    The protocol gets the real stdout; `sys.stdout` becomes stderr, so a stray print
    anywhere (ours or a library's) cannot corrupt the message stream."""
    setup_stderr_logging()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    server.start_io(stdin, stdout)
    # The loop has ended (exit, or the client went away). A thread is still blocked
    # reading stdin and would hold up the interpreter's exit until the client closes
    # the pipe; nothing is left to do, so leave now. After `exit`, the protocol's code
    # (1 without a shutdown request first); a client that vanished is a clean end: 0.
    shut_down = getattr(server.protocol, "_shutdown", False)
    code = 0 if shut_down or server.ended_by == "eof" else 1
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(code)
