"""Live latency of the language server: from a didChange to its diagnostics.

Starts `python -m ckpt_lsp --stdio` as a real subprocess, opens a generated model
file of about 5,000 lines (many nn.Module classes, each with hazards), then types
inside one class: 200 edits, each sent as a didChange (incremental by default,
`--full` for whole-document changes), waiting for the publishDiagnostics of that
version before the next one. `--notebook` does the same in a Jupyter notebook (LSP
notebook sync): the file split into one cell per class, typing in a middle cell.
Prints p50/p95/max of the time from sending the
change to receiving its diagnostics, the file size and the versions in use.

    .venv/bin/python benchmarks/live_latency.py [--lines 5000] [--edits 200] [--full]

The goal is p95 <= 20 ms. Nothing is downloaded; the client is pygls' own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CLASS_TEMPLATE = '''

class Block{n}(nn.Module):
    """Block {n}: a layer with a few things that do not pickle."""

    def __init__(self, dim: int, path: str = "log{n}.txt") -> None:
        super().__init__()
        self.dim = dim
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.log = open(path, "a")
        self.lock = threading.Lock()
        self.act = lambda x: x * {n}
        self.scale = 1.0 / math.sqrt(dim)
        self.cache = {{}}

    def forward(self, x):
        with self.lock:
            y = self.proj(self.norm(x))
            y = self.act(y) * self.scale
            self.log.write(str(y.shape))
        return y

    def extra_repr(self) -> str:
        return f"dim={{self.dim}}"

    def reset(self) -> None:
        self.cache.clear()
        for name, param in self.named_parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
            else:
                nn.init.zeros_(param)
'''

HEADER = '''"""A generated model file for the live-latency benchmark."""

import math
import threading

import torch
import torch.nn as nn
'''


def generate_model_file(lines: int = 5000) -> str:
    """About `lines` lines of nn.Module classes, each with three hazards."""
    parts = [HEADER]
    n = 0
    total = HEADER.count("\n")
    per_class = CLASS_TEMPLATE.count("\n")
    while total + per_class <= lines:
        parts.append(CLASS_TEMPLATE.format(n=n))
        total += per_class
        n += 1
    return "".join(parts)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


class RawClient:
    """A minimal JSON-RPC client over the server's stdio. It timestamps a message when its
    last byte arrives, before decoding it: what an editor waits for. (pygls' own client
    converts every message into lsprotocol objects first, which for 453 diagnostics costs
    it more than the server needs to produce them.)"""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.published: dict[int, float] = {}
        self.cell_published: dict[tuple[str, int], float] = {}  # (cell uri, version)
        self.counts: dict[int, int] = {}
        self.responses: dict[int, dict] = {}
        self.arrived = asyncio.Event()
        self._next_id = 0
        self._reader = asyncio.ensure_future(self._read())

    def _send(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def notify(self, method: str, params: object) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    async def request(self, method: str, params: object) -> dict:
        self._next_id += 1
        ident = self._next_id
        self._send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        while ident not in self.responses:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 60)
        return self.responses.pop(ident)

    async def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        while True:
            length = 0
            while True:
                line = await stdout.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await stdout.readexactly(length)
            at = time.perf_counter()
            message = json.loads(body)
            if message.get("method") == "textDocument/publishDiagnostics":
                version = message["params"].get("version")
                if version is not None:
                    self.published[version] = at
                    self.cell_published[(message["params"]["uri"], version)] = at
                    self.counts[version] = len(message["params"]["diagnostics"])
            elif "id" in message and "method" not in message:
                self.responses[message["id"]] = message
            elif "id" in message:  # a request from the server (registration): accept it
                self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            self.arrived.set()


async def start_server(root: Path, capabilities: dict[str, object]) -> RawClient:
    """The server from this checkout over stdio, initialized on `root`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "server"), env.get("PYTHONPATH", "")) if p
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ckpt_lsp",
        "--stdio",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    client = RawClient(proc)
    await client.request(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": root.as_uri(),
            "capabilities": capabilities,
            "workspaceFolders": [{"uri": root.as_uri(), "name": "bench"}],
        },
    )
    client.notify("initialized", {})
    return client


async def run(lines: int, edits: int, full: bool) -> dict[str, object]:
    text = generate_model_file(lines)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "models.py"
        path.write_text(text)
        client = await start_server(root, {})
        proc = client.proc
        uri = path.as_uri()
        published = client.published
        counts = client.counts
        arrived = client.arrived

        async def wait_version(version: int, timeout: float = 30.0) -> float:
            deadline = time.perf_counter() + timeout
            while version not in published:
                arrived.clear()
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    raise TimeoutError(f"no diagnostics for version {version}")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(arrived.wait(), remaining)
            return published[version]

        started = time.perf_counter()
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        first = await wait_version(1) - started

        # Type inside one class in the middle of the file: a new statement, char by char.
        doc_lines = text.split("\n")
        middle = next(
            i
            for i in range(len(doc_lines) // 2, len(doc_lines))
            if doc_lines[i].strip() == "self.cache = {}"
        )
        insert_line = middle + 1
        current = list(doc_lines)
        typed = "self.extra = [x for x in range(3)]  # typing "
        latencies: list[float] = []
        texts: list[str] = []
        version = 1
        for i in range(edits):
            version += 1
            ch = typed[i % len(typed)]
            if i == 0:
                current.insert(insert_line, "        " + ch)
                start = {"line": insert_line, "character": 0}
                inserted = "        " + ch + "\n"
            else:
                start = {"line": insert_line, "character": len(current[insert_line])}
                current[insert_line] += ch
                inserted = ch
            texts.append("\n".join(current))
            if full:
                change: dict = {"text": texts[-1]}
            else:
                change = {"range": {"start": start, "end": start}, "text": inserted}
            sent = time.perf_counter()
            client.notify(
                "textDocument/didChange",
                {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]},
            )
            received = await wait_version(version)
            latencies.append((received - sent) * 1000)

        await client.request("shutdown", None)
        client.notify("exit", None)
        await proc.wait()

    engine = engine_latencies(path_name="models.py", first=text, texts=texts)

    import lsprotocol
    import pygls

    return {
        "file_lines": text.count("\n") + 1,
        "file_bytes": len(text.encode("utf-8")),
        "classes": text.count("(nn.Module)"),
        "diagnostics": counts.get(version),
        "edits": edits,
        "change_kind": "full" if full else "incremental",
        "first_diagnostics_ms": round(first * 1000, 1),
        "engine_p50_ms": round(statistics.median(engine), 2),
        "engine_p95_ms": round(percentile(engine, 95), 2),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "max_ms": round(max(latencies), 2),
        "python": platform.python_version(),
        "pygls": getattr(pygls, "__version__", None) or _dist_version("pygls"),
        "lsprotocol": _dist_version("lsprotocol"),
        "lsprotocol_module": lsprotocol.__name__,
    }


def notebook_cells(text: str) -> list[str]:
    """The generated file as a notebook: the imports, then one cell per class."""
    header, *classes = text.split("\n\nclass ")
    return [header] + ["class " + c.strip("\n") for c in classes]


async def run_notebook(lines: int, edits: int) -> dict[str, object]:
    """Type in the middle cell of a notebook; the latency to that cell's diagnostics."""
    cells = notebook_cells(generate_model_file(lines))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        client = await start_server(root, {"notebookDocument": {"synchronization": {}}})
        proc = client.proc
        notebook = (root / "models.ipynb").as_uri()
        uris = [f"vscode-notebook-cell:{root}/models.ipynb#W{i}" for i in range(len(cells))]

        async def wait_for(uri: str, version: int) -> float:
            while (uri, version) not in client.cell_published:
                client.arrived.clear()
                await asyncio.wait_for(client.arrived.wait(), 30)
            return client.cell_published[(uri, version)]

        started = time.perf_counter()
        client.notify(
            "notebookDocument/didOpen",
            {
                "notebookDocument": {
                    "uri": notebook,
                    "notebookType": "jupyter-notebook",
                    "version": 1,
                    "cells": [{"kind": 2, "document": u} for u in uris],
                },
                "cellTextDocuments": [
                    {"uri": u, "languageId": "python", "version": 1, "text": t}
                    for u, t in zip(uris, cells)
                ],
            },
        )
        middle = len(cells) // 2
        first = await wait_for(uris[middle], 1) - started
        row = cells[middle].split("\n").index("        self.cache = {}") + 1
        latencies: list[float] = []
        typed = "        self.extra = [x for x in range(3)]  # typing "
        column = 0
        for i in range(edits):
            version = i + 2
            ch = typed[i % len(typed)] + ("\n" if i == 0 else "")
            start = {"line": row, "character": column}
            column += 1 if i else 0
            sent = time.perf_counter()
            client.notify(
                "notebookDocument/didChange",
                {
                    "notebookDocument": {"uri": notebook, "version": version},
                    "change": {
                        "cells": {
                            "textContent": [
                                {
                                    "document": {"uri": uris[middle], "version": version},
                                    "changes": [
                                        {"range": {"start": start, "end": start}, "text": ch}
                                    ],
                                }
                            ]
                        }
                    },
                },
            )
            latencies.append((await wait_for(uris[middle], version) - sent) * 1000)
        await client.request("shutdown", None)
        client.notify("exit", None)
        await proc.wait()
    return {
        "cells": len(cells),
        "file_lines": sum(c.count("\n") + 1 for c in cells),
        "edits": edits,
        "first_diagnostics_ms": round(first * 1000, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "max_ms": round(max(latencies), 2),
    }


def engine_latencies(path_name: str, first: str, texts: list[str]) -> list[float]:
    """The same edits through the analyzer alone, in this process: how much of the
    latency is the analysis, and how much the server and the protocol."""
    sys.path.insert(0, str(REPO / "server"))
    from ckpt_lsp.analysis.analyzer import Analyzer
    from ckpt_lsp.analysis.index import ProjectIndex
    from ckpt_lsp.config import Config

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        analyzer = Analyzer(Config(root=root), ProjectIndex(root))
        path = str(root / path_name)
        analyzer.analyze(path, first)
        out = []
        for text in texts:
            started = time.perf_counter()
            analyzer.analyze(path, text)
            out.append((time.perf_counter() - started) * 1000)
    return out


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    try:
        return version(name)
    except Exception:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--full", action="store_true", help="send whole-document changes")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--notebook", action="store_true", help="type in a notebook's cell")
    args = parser.parse_args(argv)
    if args.notebook:
        print(json.dumps(asyncio.run(run_notebook(args.lines, args.edits)), indent=2))
        return 0
    result = asyncio.run(run(args.lines, args.edits, args.full))
    result.pop("lsprotocol_module", None)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"file: {result['file_lines']} lines, {result['file_bytes']} bytes, "
            f"{result['classes']} classes, {result['diagnostics']} diagnostics"
        )
        print(
            f"{result['edits']} {result['change_kind']} edits: p50 {result['p50_ms']} ms, "
            f"p95 {result['p95_ms']} ms, max {result['max_ms']} ms "
            f"(first diagnostics after open: {result['first_diagnostics_ms']} ms)"
        )
        print(
            f"the analysis alone, same edits in process: p50 {result['engine_p50_ms']} ms, "
            f"p95 {result['engine_p95_ms']} ms"
        )
        print(
            f"python {result['python']}, pygls {result['pygls']}, lsprotocol {result['lsprotocol']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
