"""Logging for the server (stderr and window/logMessage), and its pop-ups for the user.

Stdout carries the protocol, so nothing may ever be printed there. Records can
come from the analysis worker thread, and pygls writes messages synchronously, so
a record from another thread is handed to the event loop instead of written from
that thread (two threads writing one stream would interleave messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

LOGGER_NAME = "ckpt_lsp"

_LEVELS = (
    (logging.ERROR, types.MessageType.Error),
    (logging.WARNING, types.MessageType.Warning),
    (logging.INFO, types.MessageType.Info),
)


def message_type(levelno: int) -> types.MessageType:
    for level, kind in _LEVELS:
        if levelno >= level:
            return kind
    return types.MessageType.Log


class ClientLogHandler(logging.Handler):
    """Sends records to the client as window/logMessage, from the loop's thread."""

    def __init__(self, server: LanguageServer, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.server = server
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: int | None = None
        self.setFormatter(logging.Formatter("%(message)s"))

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the event loop that owns the output stream."""
        self.loop = loop
        self.loop_thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if self.loop is None or self.loop.is_closed():
            return  # before initialize or after exit: stderr has it
        try:
            params = types.LogMessageParams(
                type=message_type(record.levelno), message=self.format(record)
            )
            if threading.get_ident() == self.loop_thread:
                self.server.window_log_message(params)
            else:
                self.loop.call_soon_threadsafe(self._send, params)
        except Exception:  # a log record must never take the server down
            self.handleError(record)

    def _send(self, params: types.LogMessageParams) -> None:
        with contextlib.suppress(Exception):
            self.server.window_log_message(params)


def setup_stderr_logging(level: int = logging.INFO) -> logging.Logger:
    """The package logger writes to stderr; pygls' own chatter only from warnings up."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(getattr(h, "_ckpt_stderr", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[ckpt-lsp] %(levelname)s %(message)s"))
        handler._ckpt_stderr = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
    pygls_logger = logging.getLogger("pygls")
    pygls_logger.setLevel(logging.WARNING)
    if not pygls_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(_quiet_pygls)
        pygls_logger.addHandler(handler)
    return logger


# pygls logs a multi-page traceback for every message it cannot structure, and a warning
# for the placeholder of a message we already answered; the server logs one line itself.
def _quiet_pygls(record: logging.LogRecord) -> bool:
    if str(record.msg).startswith("Unable to deserialize message"):
        return False
    args = record.args if isinstance(record.args, tuple) else ()
    skipped = bool(args) and getattr(args[0], "jsonrpc", None) == "skipped"
    return not (str(record.msg).startswith("Unknown message") and skipped)


def show_message(server: LanguageServer, message: str, kind: types.MessageType) -> None:
    """A pop-up for the user (window/showMessage); a broken connection is no error here."""
    with contextlib.suppress(Exception):
        server.window_show_message(types.ShowMessageParams(type=kind, message=message))
