"""The ckpt-lsp language server (pygls 2): its protocol, its stdio loop, its session.

The handlers of the LSP methods live in lsp/handlers/ (one module each) and are
wired to the server by lsp/handlers/registry.py; the state they work on is the
session's (lsp/session.py). `run_stdio()` is what `ckpt-lsp` / `ckpt-lsp --stdio` runs.
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

from ckpt_lsp import __version__
from ckpt_lsp.lsp.framing import FrameReader, serve
from ckpt_lsp.lsp.handlers.registry import register_handlers
from ckpt_lsp.lsp.logs import ClientLogHandler, setup_stderr_logging
from ckpt_lsp.lsp.notebooks import NOTEBOOK_SYNC
from ckpt_lsp.lsp.session import Session

log = logging.getLogger("ckpt_lsp.lsp")

# A message that could not be read is answered here and then skipped by pygls.
_SKIP = SimpleNamespace(jsonrpc="skipped")


class CkptProtocol(LanguageServerProtocol):
    """pygls' protocol with four changes: diagnostics are advertised only to clients
    that will pull them, a request whose params do not fit its method gets an
    InvalidParams answer (pygls would leave the client waiting forever), the
    futures of notifications are let go once done, and a notebook change the
    workspace cannot apply is a warning."""

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

    @lsp_method(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def lsp_notebook_document__did_change(
        self, params: types.DidChangeNotebookDocumentParams
    ) -> Generator[Any, Any, None]:
        # pygls raises KeyError for a notebook or cell it does not know (a client out of
        # step): a warning, and the notebook (when open) is checked as it now stands.
        uri = params.notebook_document.uri
        try:
            yield from super().lsp_notebook_document__did_change(params)
        except KeyError as exc:
            log.warning("%s: a change for a notebook or cell that is not open: %s", uri, exc)
            if self.workspace.get_notebook_document(notebook_uri=uri) is not None:
                self._server.session.scheduler.schedule(uri)

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
            notebook_document_sync=NOTEBOOK_SYNC,
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
register_handlers(server)


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
