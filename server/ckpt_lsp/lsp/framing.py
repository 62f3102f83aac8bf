"""Reading JSON-RPC frames from a client that may send garbage, and living through it.

pygls' reader wants `Content-Length: N` alone on a line; one frame with a bad header
or a wrong length glues the next frame's header to the tail of its body, and every
frame after it is lost (the server is alive but deaf). Here a header is found
anywhere in a line, a body that is not JSON is answered with a parse error and
searched for the next frame's header (a length that was too long swallowed it), and a
message that is JSON but not a JSON-RPC message is answered with "invalid request"
when it has an id. Nothing a client sends ends the loop but end of input or `exit`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any, Protocol

log = logging.getLogger("ckpt_lsp.lsp")

_CONTENT_LENGTH = re.compile(rb"content-length:[ \t]*(\d+)", re.IGNORECASE)
_HEADER = b"Content-Length:"
MAX_FRAME = 512 * 1024 * 1024  # a larger length is a broken header, not a message

PARSE_ERROR = -32700
INVALID_REQUEST = -32600


class AsyncReader(Protocol):
    async def readline(self) -> bytes: ...

    async def readexactly(self, n: int) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes) -> Any: ...


class FrameReader:
    """A reader with a push-back buffer, so bytes read too far can be read again."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.buffer = b""

    def unread(self, data: bytes) -> None:
        self.buffer = data + self.buffer

    async def readline(self) -> bytes:
        if self.buffer:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line, self.buffer = self.buffer[: end + 1], self.buffer[end + 1 :]
                return line
            head, self.buffer = self.buffer, b""
            return head + bytes(await self.inner.readline())
        return bytes(await self.inner.readline())

    async def readexactly(self, n: int) -> bytes:
        head, self.buffer = self.buffer[:n], self.buffer[n:]
        while len(head) < n:
            more = bytes(await self.inner.readexactly(n - len(head)))
            if not more:
                break  # end of input: a short body
            head += more
        return head


def error_frame(code: int, message: str, msg_id: Any = None) -> bytes:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}
    ).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _reply(writer: Writer | None, code: int, message: str, msg_id: Any = None) -> None:
    if writer is None:
        return
    try:
        writer.write(error_frame(code, message, msg_id))
    except Exception as exc:  # the client is gone: the read loop will see end of input
        log.debug("cannot answer a bad message: %s", exc)


def _short(data: bytes, limit: int = 80) -> str:
    text = data[:limit].decode("utf-8", "replace")
    return repr(text + ("..." if len(data) > limit else ""))


async def serve(
    stop_event: threading.Event,
    reader: FrameReader,
    protocol: Any,
) -> str:
    """Read and dispatch frames until end of input ("eof") or a stop ("stopped")."""
    length: int | None = None
    while not stop_event.is_set():
        line = await reader.readline()
        if not line:
            return "eof"
        match = _CONTENT_LENGTH.search(line)
        if match:
            if match.start() > 0 and line[: match.start()].strip():
                log.warning("skipped bytes before a frame: %s", _short(line[: match.start()]))
            length = int(match.group(1))
            continue
        if line.strip():
            continue  # another header (Content-Type) or garbage between frames
        if length is None:
            continue  # a blank line outside a frame
        if length > MAX_FRAME:
            log.warning("ignored a frame that claims %d bytes", length)
            length = None
            continue
        body = await reader.readexactly(length)
        length = None
        if not body:
            return "eof"
        _dispatch(body, reader, protocol)
    return "stopped"


def _dispatch(body: bytes, reader: FrameReader, protocol: Any) -> None:
    writer = getattr(protocol, "writer", None)
    try:
        message = json.loads(body, object_hook=protocol.structure_message)
    except Exception as exc:
        try:  # the hook runs on objects before the decoder sees what follows them
            data = json.loads(body)
        except ValueError:  # not JSON (or not UTF-8): the length may have been wrong
            log.warning("malformed message (%s): %s", exc.__class__.__name__, _short(body))
            _reply(writer, PARSE_ERROR, "Parse error: the message is not valid JSON")
            cut = body.find(_HEADER, 1)
            if cut > 0:
                reader.unread(body[cut:])  # a too-long length swallowed the next frame
            return
        log.warning("cannot read a message (%s): %s", exc, _short(body))
        if isinstance(data, dict) and data.get("id") is not None and "method" in data:
            _reply(writer, INVALID_REQUEST, f"Invalid request: {exc}", data["id"])
        return
    if isinstance(message, dict) or not hasattr(message, "jsonrpc"):
        msg_id = message.get("id") if isinstance(message, dict) else None
        log.warning("not a JSON-RPC 2.0 message: %s", _short(body))
        if msg_id is not None or not isinstance(message, dict) or "method" not in message:
            _reply(writer, INVALID_REQUEST, "Invalid request: not a JSON-RPC 2.0 message", msg_id)
        return
    try:
        protocol.handle_message(message)
    except Exception as exc:  # a handler bug must not end the loop
        log.error("handling %s failed: %s", getattr(message, "method", "a message"), exc)
