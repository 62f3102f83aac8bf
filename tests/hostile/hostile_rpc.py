"""A raw JSON-RPC client over a real server's stdio: it can send what typed clients won't.

A reader thread splits the server's stdout into frames; tests send bytes, frames or
requests and wait for messages matching a predicate. Used by the stress tests and by
benchmarks/soak_server.py (which imports it by path).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVER_DIR = REPO / "server"

Message = dict[str, Any]


def frame(payload: Any) -> bytes:
    body = json.dumps(payload).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def file_uri(path: Path) -> str:
    return path.resolve().as_uri()


class RawServer:
    """`python -m ckpt_lsp --stdio` in a subprocess, spoken to in raw frames."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(SERVER_DIR), full_env.get("PYTHONPATH", "")) if p
        )
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ckpt_lsp", "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(cwd),
            env=full_env,
        )
        self.messages: list[Message] = []
        self.stderr_lines: list[str] = []
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._err_reader.start()

    # -- reading -------------------------------------------------------------------------------
    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    with self._lock:
                        self._lock.notify_all()
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                elif not line.strip() and length is not None:
                    break
            body = out.read(length)
            try:
                message = json.loads(body)
            except ValueError:
                message = {"unparsable": body.decode("utf-8", "replace")}
            with self._lock:
                self.messages.append(message)
                self._lock.notify_all()

    def _read_stderr(self) -> None:
        err = self.proc.stderr
        assert err is not None
        for line in err:
            self.stderr_lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    def wait_for(
        self, predicate: Callable[[Message], bool], timeout: float = 20.0, what: str = ""
    ) -> Message:
        """The first message (old or new) matching `predicate`."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._lock:
            while True:
                for message in self.messages[seen:]:
                    if predicate(message):
                        return message
                seen = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and seen == len(self.messages)):
                    tail = "\n".join(self.stderr_lines[-20:])
                    raise AssertionError(f"no message: {what or predicate}\nstderr:\n{tail}")
                self._lock.wait(min(left, 0.2))

    # -- writing -------------------------------------------------------------------------------
    def send_bytes(self, data: bytes) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(data)
        stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send_bytes(frame({"jsonrpc": "2.0", "method": method, "params": params}))

    def request_async(self, method: str, params: Any) -> int:
        msg_id = next(self._ids)
        self.send_bytes(frame({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}))
        return msg_id

    def response(self, msg_id: Any, timeout: float = 20.0) -> Message:
        return self.wait_for(
            lambda m: m.get("id") == msg_id and ("result" in m or "error" in m),
            timeout,
            f"the answer to request {msg_id}",
        )

    def request(self, method: str, params: Any, timeout: float = 20.0) -> Message:
        return self.response(self.request_async(method, params), timeout)

    # -- the editor's side of a session ------------------------------------------------------------
    def initialize(self, root: Path, capabilities: dict[str, Any] | None = None) -> Message:
        answer = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": file_uri(root),
                "workspaceFolders": [{"uri": file_uri(root), "name": root.name}],
                "capabilities": capabilities or {},
            },
            timeout=60,
        )
        self.notify("initialized", {})
        return answer

    def open(self, path: Path, text: str, version: int = 1) -> str:
        uri = file_uri(path)
        self.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": "python",
                    "version": version,
                    "text": text,
                }
            },
        )
        return uri

    def change(self, uri: str, text: str, version: int) -> None:
        self.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"text": text}],
            },
        )

    def publications(self, uri: str) -> list[Message]:
        with self._lock:
            return [
                m["params"]
                for m in self.messages
                if m.get("method") == "textDocument/publishDiagnostics"
                and m["params"]["uri"] == uri
            ]

    def published(
        self, uri: str, version: int | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        return self.wait_for(
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics"
                and m["params"]["uri"] == uri
                and (version is None or m["params"].get("version") == version)
            ),
            timeout,
            f"diagnostics for {uri} v{version}",
        )["params"]

    def shutdown_and_exit(self, timeout: float = 10.0) -> int:
        self.request("shutdown", None)
        self.notify("exit", None)
        return self.proc.wait(timeout)

    def close(self) -> None:
        """End the process whatever state it is in (for fixtures' teardown)."""
        if self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)

    def rss_kb(self) -> int:
        """Resident memory of the server process (Linux /proc)."""
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0
