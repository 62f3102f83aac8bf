"""The language server under abuse, over real stdio: bursts, malformed frames, a vanishing
client, broken configuration. It must answer or log, go on, and never publish stale results."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text
from hostile_rpc import RawServer, file_uri

MODEL = """\
import threading
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, path):
        super().__init__()
        self.path = path
        self.log = open(path, "a")
        self.lock = threading.Lock()
"""

# Each version adds one attribute, a hazard or not: the findings differ from version to version.
EXTRA = ["self.a{i} = lambda x: x", "self.b{i} = {i}", "self.c{i} = threading.Event()"]


def version_text(version: int) -> str:
    lines = [f"        {EXTRA[version % 3].format(i=version)}\n"]
    return MODEL + "".join(lines)


def expected(text: str, path: Path) -> list[tuple[str, int, int, str]]:
    """What a fresh analysis says, in the protocol's 0-based terms."""
    return sorted(
        (f.code, f.location.row - 1, f.location.column - 1, f.message)
        for f in analyze_text(text, str(path))
    )


def got(params: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    return sorted(
        (d["code"], d["range"]["start"]["line"], d["range"]["start"]["character"], d["message"])
        for d in params["diagnostics"]
    )


@pytest.fixture
def server(tmp_path: Path):
    srv = RawServer(tmp_path)
    yield srv
    srv.close()


def _hover(server: RawServer, uri: str, line: int = 8, character: int = 14) -> dict[str, Any]:
    return server.request(
        "textDocument/hover",
        {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
    )


def test_a_burst_of_changes_publishes_only_current_results(
    server: RawServer, tmp_path: Path
) -> None:
    server.initialize(tmp_path)
    path = tmp_path / "model.py"
    uri = server.open(path, MODEL)
    server.published(uri, version=1)
    last = 1001
    texts = {1: MODEL}
    started = time.monotonic()
    for version in range(2, last + 1):
        texts[version] = version_text(version)
        server.change(uri, texts[version], version)
    # still responsive right after the burst: a request is answered promptly
    hover = _hover(server, uri)
    assert "result" in hover, hover
    final = server.published(uri, version=last, timeout=60)
    elapsed = time.monotonic() - started
    assert got(final) == expected(texts[last], path)
    time.sleep(1.0)  # anything still in flight would arrive now
    publications = server.publications(uri)
    versions = [p["version"] for p in publications]
    assert versions == sorted(versions), "an older version was published after a newer one"
    assert versions[-1] == last
    # every publication is the analysis of the text of the version it names
    for params in publications:
        assert got(params) == expected(texts[params["version"]], path), params["version"]
    assert elapsed < 60


BAD_FRAMES: list[tuple[str, bytes]] = [
    ("non-numeric length", b"Content-Length: abc\r\n\r\n{}"),
    ("invalid JSON", b"Content-Length: 9\r\n\r\n{not json"),
    ("length too short", b'Content-Length: 10\r\n\r\n{"jsonrpc": "2.0", "id": 99, "method": "x"}'),
    ("garbage between frames", b"\x00\xff garbage line\r\n\r\n"),
    ("not UTF-8", b"Content-Length: 4\r\n\r\n\xff\xfe\xfd\xfc"),
    ("a JSON array", b"Content-Length: 2\r\n\r\n[]"),
    ("a JSON number", b"Content-Length: 1\r\n\r\n7"),
]


def test_malformed_frames_are_answered_or_logged_and_survived(
    server: RawServer, tmp_path: Path
) -> None:
    server.initialize(tmp_path)
    path = tmp_path / "model.py"
    uri = server.open(path, MODEL)
    server.published(uri, version=1)
    for name, data in BAD_FRAMES:
        server.send_bytes(data)
        assert "result" in _hover(server, uri), f"no answer after {name}"
    parse_errors = [m for m in server.messages if m.get("error", {}).get("code") == -32700]
    assert len(parse_errors) >= 3
    # a length that is too long swallows the next frame; the server finds its header again
    body = b'{"jsonrpc": "2.0", "method": "$/nothing"}'
    server.send_bytes(b"Content-Length: %d\r\n\r\n" % (len(body) + 60) + body)
    assert "result" in _hover(server, uri), "no answer after a too-long length"
    # a request without "jsonrpc": answered "invalid request", not left waiting
    server.send_bytes(b'Content-Length: 46\r\n\r\n{"id": 777, "method": "shutdown", "params": 1}')
    answer = server.response(777)
    assert answer["error"]["code"] == -32600
    # unknown methods: a request gets "method not found", a notification is ignored
    unknown = server.request("ckpt/noSuchMethod", {"x": 1})
    assert unknown["error"]["code"] == -32601
    server.notify("ckpt/noSuchNotification", {"x": 1})
    # params that do not fit the method
    bad_params = server.request("textDocument/hover", {"x": 1})
    assert bad_params["error"]["code"] == -32602
    # requests about a document that was never opened, and positions out of range
    ghost = file_uri(tmp_path / "ghost.py")
    assert _hover(server, ghost)["result"] is None
    assert _hover(server, uri, line=10_000, character=10_000)["result"] is None
    assert _hover(server, uri, line=-1, character=-5).get("error") is not None
    actions = server.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": uri},
            "range": {
                "start": {"line": 9000, "character": 0},
                "end": {"line": 9001, "character": 99},
            },
            "context": {"diagnostics": []},
        },
    )
    assert "result" in actions
    server.change(ghost, "x = 1\n", 3)  # a change to a document that is not open
    server.notify("textDocument/didClose", {"textDocument": {"uri": ghost}})
    # and after all that, edits are still analyzed and published
    server.change(uri, MODEL.replace("self.lock = threading.Lock()", "pass"), 2)
    params = server.published(uri, version=2)
    assert [d["code"] for d in params["diagnostics"]] == ["CKPT001"]
    assert server.shutdown_and_exit() == 0
    assert not any("Traceback" in line for line in server.stderr_lines), server.stderr_lines


def test_a_client_that_vanishes_ends_the_server_cleanly(server: RawServer, tmp_path: Path) -> None:
    server.initialize(tmp_path)
    path = tmp_path / "model.py"
    big = MODEL + "".join(
        MODEL.split("\n\n\n", 1)[1].replace("class Model", f"class Model{i}") for i in range(200)
    )
    server.open(path, big)  # busy analyzing when the client goes
    assert server.proc.stdin is not None
    started = time.monotonic()
    server.proc.stdin.close()
    assert server.proc.wait(10) == 0
    assert time.monotonic() - started < 5


def test_exit_without_shutdown_is_code_one(server: RawServer, tmp_path: Path) -> None:
    server.initialize(tmp_path)
    server.notify("exit", None)
    assert server.proc.wait(10) == 1


def _show_messages(server: RawServer) -> list[dict[str, Any]]:
    return [m["params"] for m in server.messages if m.get("method") == "window/showMessage"]


@pytest.mark.parametrize(
    ("broken", "words"),
    [
        ("[tool.ckpt-lsp\nignore = 1\n", ["invalid TOML"]),
        ("[tool.ckpt-lsp]\nignore = 1\n", ["ignore", "list"]),
        ("[tool.ckpt-lsp]\nignore = ['CKPT999']\n", ["CKPT999"]),
        ("[tool.ckpt-lsp]\nignroe = ['CKPT001']\n", ["ignroe"]),
    ],
    ids=["toml", "type", "rule", "key"],
)
def test_broken_config_keeps_the_last_good_one_and_says_so(
    server: RawServer, tmp_path: Path, broken: str, words: list[str]
) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.ckpt-lsp]\nignore = ["CKPT005"]\n')
    server.initialize(tmp_path)
    path = tmp_path / "model.py"
    uri = server.open(path, MODEL)
    assert [d["code"] for d in server.published(uri, version=1)["diagnostics"]] == ["CKPT001"]
    pyproject.write_text(broken)
    server.notify(
        "workspace/didChangeWatchedFiles",
        {"changes": [{"uri": file_uri(pyproject), "type": 2}]},
    )
    shown = server.wait_for(
        lambda m: m.get("method") == "window/showMessage", what="an error message"
    )["params"]
    assert shown["type"] == 1 and "\n" not in shown["message"]
    assert all(w in shown["message"] for w in words), shown["message"]
    server.change(uri, MODEL + "\n", 2)
    assert [d["code"] for d in server.published(uri, version=2)["diagnostics"]] == ["CKPT001"]
    # bad editor settings (with the pyproject good again): the same
    pyproject.write_text('[tool.ckpt-lsp]\nignore = ["CKPT005"]\n')
    server.notify(
        "workspace/didChangeWatchedFiles",
        {"changes": [{"uri": file_uri(pyproject), "type": 2}]},
    )
    server.notify("workspace/didChangeConfiguration", {"settings": {"ckpt-lsp": {"select": 5}}})
    server.wait_for(
        lambda m: m.get("method") == "window/showMessage" and "select" in m["params"]["message"],
        what="a settings error",
    )
    server.change(uri, MODEL + "\n\n", 3)
    assert [d["code"] for d in server.published(uri, version=3)["diagnostics"]] == ["CKPT001"]
    assert len(_show_messages(server)) == 2  # each error is shown once
    assert server.shutdown_and_exit() == 0


def test_a_huge_document_is_skipped_and_the_others_still_checked(
    server: RawServer, tmp_path: Path
) -> None:
    from ckpt_lsp.source import MAX_BYTES

    server.initialize(tmp_path)
    filler = "x = [1, 2, 3]  # padding padding padding padding padding padding\n"
    huge = MODEL + filler * (MAX_BYTES // len(filler) + 1)
    huge_uri = server.open(tmp_path / "huge.py", huge)
    uri = server.open(tmp_path / "model.py", MODEL)
    started = time.monotonic()
    assert [d["code"] for d in server.published(uri, version=1)["diagnostics"]] == [
        "CKPT001",
        "CKPT005",
    ]
    assert time.monotonic() - started < 20
    assert server.published(huge_uri, version=1)["diagnostics"] == []
    server.wait_for(
        lambda m: m.get("method") == "window/logMessage" and "too large" in m["params"]["message"],
        what="a log line",
    )
    assert server.shutdown_and_exit() == 0
