"""The server as shipped in the linux-x64 .vsix, under every CPython the bundle claims (3.9-3.13).

Each interpreter runs the extension's launcher with `-S` (no site-packages), so it can only
use what the .vsix carries: a missing dependency, a libcst build for the wrong Python or a
library too new for 3.9 fails here. The check goes as far as a real diagnostic, which
exercises libcst and the analysis, not just the start-up.

The .vsix is the newest ckpt-lsp-linux-x64-*.vsix at the repo root, built with
`npm run package` first when it is missing or older than the server's sources (as the code-server
test does); CKPT_E2E_VSIX names another one.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
import zipfile
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
MINORS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
WAIT_S = 60
MODEL = (
    "import threading\n"
    "from torch import nn\n"
    "class M(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.lock = threading.Lock()\n"
)


# Sources whose change makes a packaged extension stale.
SOURCES = ("server/ckpt_lsp", "bundled/tool", "scripts/build-vsix.sh", "scripts/build-vsix-libs.py")


def newest_source() -> float:
    stamps = [0.0]
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        stamps += [f.stat().st_mtime for f in files if "__pycache__" not in f.parts]
    return max(stamps)


def shipped_vsix() -> Path:
    """CKPT_E2E_VSIX, else the repo's linux-x64 .vsix, rebuilt by `npm run package` when stale."""
    given = os.environ.get("CKPT_E2E_VSIX")
    if given:
        return Path(given)

    def newest() -> Path | None:
        found = sorted(ROOT.glob("ckpt-lsp-linux-x64-*.vsix"), key=lambda p: p.stat().st_mtime)
        return found[-1] if found else None

    vsix = newest()
    if vsix is not None and vsix.stat().st_mtime >= newest_source():
        return vsix
    npm = shutil.which("npm")
    if npm is None or not (ROOT / "node_modules").is_dir():
        message = "no fresh ckpt-lsp-linux-x64-*.vsix and no npm/node_modules to build one"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so this test must run)", pytrace=False)
        pytest.skip(message)
    proc = subprocess.run(
        [npm, "run", "package"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        output = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        pytest.fail(f"npm run package exited {proc.returncode}:\n{output}", pytrace=False)
    vsix = newest()
    assert vsix is not None, "npm run package made no ckpt-lsp-linux-x64-*.vsix"
    return vsix


@pytest.fixture(scope="module")
def extension(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vsix = shipped_vsix()
    assert vsix.is_file() and vsix.stat().st_size > 0, vsix
    out = tmp_path_factory.mktemp("vsix")
    with zipfile.ZipFile(vsix) as archive:
        archive.extractall(out)
    return out / "extension"


def interpreter(minor: str) -> str | None:
    """A CPython of that minor version: pyenv's, else one on PATH."""
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{minor}.*/bin/python{minor}"))
    candidates = [str(c) for c in pyenv[::-1]] + [f"python{minor}"]
    for python in candidates:
        try:
            proc = subprocess.run(
                [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0 and proc.stdout.strip() == minor:
            return python
    return None


class Client:
    """Just enough JSON-RPC over a child's pipes for this test."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.next_id = 0
        assert proc.stdout is not None
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    self.messages.put(None)
                    return
                if not line.strip():
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            assert length is not None
            self.messages.put(json.loads(stream.read(length)))

    def send(self, method: str, params: Any = None, request: bool = False) -> int | None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        ident = None
        if request:
            self.next_id += 1
            ident = message["id"] = self.next_id
        body = json.dumps(message).encode("utf-8")
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return ident

    def wait(self, accept: Any, what: str) -> dict[str, Any]:
        """The first message `accept` takes; server requests get a null answer meanwhile."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                message = self.messages.get(timeout=0.5)
            except queue.Empty:
                continue
            if message is None:
                raise AssertionError(f"the server closed its output while waiting for {what}")
            if "id" in message and "method" in message:
                body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": None})
                assert self.proc.stdin is not None
                data = body.encode("utf-8")
                self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(data) + data)
                self.proc.stdin.flush()
            if accept(message):
                return message
        raise AssertionError(f"no {what} within {WAIT_S} s")

    def request(self, method: str, params: Any = None) -> Any:
        ident = self.send(method, params, request=True)
        answer = self.wait(lambda m: m.get("id") == ident and "method" not in m, method)
        assert "error" not in answer, answer
        return answer.get("result")


@pytest.mark.e2e
@pytest.mark.parametrize("minor", MINORS)
def test_bundled_server_diagnoses_under(minor: str, extension: Path, tmp_path: Path) -> None:
    python = interpreter(minor)
    if python is None:
        message = f"no CPython {minor} on this machine (pyenv or python{minor} on PATH)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    model = tmp_path / "model.py"
    model.write_text(MODEL, encoding="utf-8")
    launcher = extension / "bundled" / "tool" / "server.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave the unpacked extension as shipped
    proc = subprocess.Popen(
        [python, "-S", str(launcher), "--stdio"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stderr: list[bytes] = []
    assert proc.stderr is not None
    drain = threading.Thread(target=lambda: stderr.extend(proc.stderr or []), daemon=True)
    drain.start()
    try:
        client = Client(proc)
        result = client.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": tmp_path.as_uri(),
                "capabilities": {},
                "initializationOptions": {"settings": {"enable": True}, "globalSettings": {}},
            },
        )
        assert result["serverInfo"]["name"] == "ckpt-lsp"
        client.send("initialized", {})
        uri = model.as_uri()
        client.send(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": MODEL}},
        )

        def has_lock(message: dict[str, Any]) -> bool:
            params = message.get("params") or {}
            return message.get("method") == "textDocument/publishDiagnostics" and any(
                d.get("code") == "CKPT005" and d["range"]["start"]["line"] == 5
                for d in params.get("diagnostics", [])
                if params.get("uri") == uri
            )

        client.wait(has_lock, f"CKPT005 on line index 5 under Python {minor}")
        client.request("shutdown")
        client.send("exit")
        assert proc.wait(timeout=WAIT_S) == 0
    except AssertionError as error:
        proc.kill()
        drain.join(timeout=10)
        text = b"".join(stderr).decode("utf-8", "replace")[-3000:]
        raise AssertionError(f"{error}\nserver stderr:\n{text}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
