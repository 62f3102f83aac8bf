"""Settings, pyproject.toml, cross-file re-checks, checkWorkspace, robustness."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from lsp_helpers import (
    MODEL,
    PULL_CAPS,
    attributes,
    change_doc,
    initialize,
    open_doc,
    published,
    uri_of,
    wait_for,
)
from lsprotocol import types
from pytest_lsp import LanguageClient

ALL = ["act", "guard", "lock", "log"]


def _config_change(client: LanguageClient, settings: object) -> None:
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=settings))


async def test_settings_from_initialization_options(
    client: LanguageClient, workspace: Path
) -> None:
    await initialize(client, workspace, settings={"severity": {"CKPT001": "hint"}})
    path = workspace / "model.py"
    path.write_text(MODEL)
    uri = open_doc(client, path)
    params = await published(client, uri, version=1)
    severities = {d.data["attribute"]: d.severity for d in params.diagnostics}
    assert severities["log"] == types.DiagnosticSeverity.Hint
    assert severities["lock"] == types.DiagnosticSeverity.Error


async def test_configuration_changes(client: LanguageClient, workspace: Path) -> None:
    await initialize(client, workspace)
    path = workspace / "model.py"
    path.write_text(MODEL)
    uri = open_doc(client, path)
    await published(client, uri, version=1, check=lambda d: sorted(attributes(d)) == ALL)
    # pushed settings
    _config_change(client, {"ckpt-lsp": {"ignore": ["CKPT005"]}})
    await published(client, uri, check=lambda d: sorted(attributes(d)) == ["act", "log"])
    # settings pulled with workspace/configuration after an empty notification
    client.set_configuration({"select": ["CKPT003"]}, section="ckpt-lsp")
    _config_change(client, None)
    await published(client, uri, check=lambda d: attributes(d) == ["act"])
    # bad settings: one message, the last good config stays, the server goes on
    client.set_configuration({"select": ["CKPT999"]}, section="ckpt-lsp")
    _config_change(client, None)
    await wait_for(lambda: any("CKPT999" in m.message for m in client.messages), what="message")
    error = next(m for m in client.messages if "CKPT999" in m.message)
    assert error.type == types.MessageType.Error
    assert "\n" not in error.message
    change_doc(client, uri, MODEL + "\n", 2)
    await published(client, uri, version=2, check=lambda d: attributes(d) == ["act"])
    # enable: false clears everything
    client.set_configuration({"enable": False}, section="ckpt-lsp")
    _config_change(client, None)
    await published(client, uri, check=lambda d: len(d) == 0)
    client.set_configuration({}, section="ckpt-lsp")
    _config_change(client, {"ckpt-lsp": {}})
    await published(client, uri, check=lambda d: sorted(attributes(d)) == ALL)


async def test_pyproject_config_and_its_changes(client: LanguageClient, workspace: Path) -> None:
    pyproject = workspace / "pyproject.toml"
    pyproject.write_text('[tool.ckpt-lsp]\nignore = ["CKPT003"]\n')
    await initialize(client, workspace)
    await wait_for(  # file watchers registered dynamically (VS Code can)
        lambda: any(
            r.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES
            for r in client.registrations  # type: ignore[attr-defined]
        ),
        what="watcher registration",
    )
    path = workspace / "model.py"
    path.write_text(MODEL)
    uri = open_doc(client, path)
    await published(client, uri, version=1, check=lambda d: "act" not in attributes(d))

    def changed() -> None:
        client.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[types.FileEvent(uri=uri_of(pyproject), type=types.FileChangeType.Changed)]
            )
        )

    pyproject.write_text('[tool.ckpt-lsp]\nignore = ["CKPT001"]\n')
    changed()
    await published(client, uri, check=lambda d: sorted(attributes(d)) == ["act", "guard", "lock"])
    pyproject.write_text("[tool.ckpt-lsp\nignore = 1\n")  # broken TOML
    changed()
    await wait_for(lambda: any("pyproject" in m.message for m in client.messages), what="error")
    assert all("\n" not in m.message for m in client.messages)
    # still working, with the last good config
    change_doc(client, uri, MODEL + "\n", 2)
    params = await published(client, uri, version=2)
    assert sorted(attributes(params.diagnostics)) == ["act", "guard", "lock"]


BASE = """\
import torch.nn as nn


class Base(nn.Module):
    pass
"""

USER = """\
from base import Base


class Net(Base):
    def __init__(self):
        super().__init__()
        self.log = open("train.log", "a")
"""


async def test_a_base_class_change_rechecks_dependents(
    client: LanguageClient, workspace: Path
) -> None:
    (workspace / "base.py").write_text(BASE)
    (workspace / "model.py").write_text(USER)
    await initialize(client, workspace)
    model_uri = open_doc(client, workspace / "model.py")
    await published(client, model_uri, check=lambda d: attributes(d) == ["log"])
    # a closed base changed on disk (watched files)
    (workspace / "base.py").write_text(BASE.replace("class Base(nn.Module)", "class Base"))
    base_uri = uri_of(workspace / "base.py")
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=base_uri, type=types.FileChangeType.Changed)]
        )
    )
    await published(client, model_uri, check=lambda d: len(d) == 0)
    # the base open in the editor, changed there
    open_doc(client, workspace / "base.py")
    change_doc(client, base_uri, BASE, 2)
    await published(client, model_uri, check=lambda d: attributes(d) == ["log"])
    change_doc(client, base_uri, BASE.replace("class Base(nn.Module)", "class Base"), 3)
    await published(client, model_uri, check=lambda d: len(d) == 0)
    change_doc(client, base_uri, BASE, 4)
    await published(client, model_uri, check=lambda d: attributes(d) == ["log"])
    # closing it with unsaved changes: the index goes back to what is on disk
    (workspace / "base.py").write_text(BASE)
    change_doc(client, base_uri, BASE.replace("class Base(nn.Module)", "class Base"), 5)
    await published(client, model_uri, check=lambda d: len(d) == 0)
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=base_uri))
    )
    await published(client, model_uri, check=lambda d: attributes(d) == ["log"])


async def test_check_workspace_command(client: LanguageClient, workspace: Path) -> None:
    result = await initialize(client, workspace)
    assert result.capabilities.execute_command_provider is not None
    assert "ckpt-lsp.checkWorkspace" in result.capabilities.execute_command_provider.commands
    (workspace / "pkg").mkdir()
    (workspace / "pkg" / "a.py").write_text(MODEL)
    (workspace / "pkg" / "clean.py").write_text("x = 1\n")
    (workspace / "b.py").write_text(MODEL.replace("self.act = lambda x: x", "pass"))
    (workspace / ".venv").mkdir()
    (workspace / ".venv" / "skip.py").write_text(MODEL)
    open_uri = open_doc(client, workspace / "b.py")
    await published(client, open_uri, version=1)
    summary = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="ckpt-lsp.checkWorkspace")
    )
    assert summary == {"files": 3, "findings": 7, "errors": 0}
    a_uri = uri_of(workspace / "pkg" / "a.py")
    assert sorted(attributes(client.diagnostics[a_uri])) == ALL
    assert uri_of(workspace / ".venv" / "skip.py") not in client.diagnostics
    reports = [r for rs in client.progress_reports.values() for r in rs]
    assert isinstance(reports[0], types.WorkDoneProgressBegin)
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    # a checked file that changes on disk is re-published
    (workspace / "pkg" / "a.py").write_text("x = 2\n")
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=a_uri, type=types.FileChangeType.Changed)]
        )
    )
    await published(client, a_uri, check=lambda d: len(d) == 0)


async def _raw_request(client: LanguageClient, payload: dict[str, object]) -> object:
    """Send bytes the typed client would refuse to build; wait for the answer."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[object] = loop.create_future()
    client.protocol._request_futures[payload["id"]] = future  # type: ignore[index]
    body = json.dumps(payload).encode()
    assert client._server is not None and client._server.stdin is not None
    client._server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    try:
        return await asyncio.wait_for(future, 10)
    except Exception as exc:
        return exc


async def test_bad_input_is_answered_and_survived(client: LanguageClient, workspace: Path) -> None:
    await initialize(client, workspace)
    path = workspace / "model.py"
    path.write_text(MODEL)
    uri = open_doc(client, path)
    await published(client, uri, version=1)
    # a request whose params do not fit its method gets an error answer
    answer = await _raw_request(
        client,
        {"jsonrpc": "2.0", "id": "bad-1", "method": "textDocument/hover", "params": {"x": 1}},
    )
    assert isinstance(answer, Exception)
    assert "-32602" in repr(answer) or "nvalid" in str(answer)
    # changes to a document that was never opened, positions out of range
    change_doc(client, uri_of(workspace / "nothing.py"), "x = 1\n", 5)
    await wait_for(  # logged to the client, not fatal
        lambda: any(m.type == types.MessageType.Error for m in client.log_messages),
        what="an error in the log",
    )
    far = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(10_000, 10_000),
        )
    )
    assert far is None
    # deep nesting and a big file
    deep = (
        "class Deep(nn.Module):\n    def __init__(self):\n        self.x = "
        + "(" * 400
        + "1"
        + ")" * 400
        + "\n"
    )
    change_doc(client, uri, MODEL + deep, 2)
    await published(client, uri, version=2)
    big = MODEL + "".join(
        MODEL.split("\n\n\n", 1)[1]
        .replace("class Model", f"class Model{i}")
        .replace("class Other", f"class Other{i}")
        for i in range(60)
    )
    change_doc(client, uri, big, 3)
    params = await published(client, uri, version=3, timeout=30)
    assert len(params.diagnostics) == 4 * 61
    # still answering
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=params.diagnostics[0].range.start,
        )
    )
    assert hover is not None
    # and it still shuts down cleanly, at once
    server = client._server
    assert server is not None
    started = asyncio.get_running_loop().time()
    await client.shutdown_session()
    client.capabilities = None  # the fixture's teardown must not shut it down again
    assert server.returncode == 0
    assert asyncio.get_running_loop().time() - started < 5


async def test_pull_clients_are_asked_to_refresh_dependents(
    client: LanguageClient, workspace: Path
) -> None:
    await initialize(client, workspace, PULL_CAPS)
    (workspace / "base.py").write_text(BASE)
    (workspace / "model.py").write_text(USER)
    base_uri = open_doc(client, workspace / "base.py")
    model_uri = open_doc(client, workspace / "model.py")

    async def pull(uri: str) -> list[str]:
        report = await client.text_document_diagnostic_async(
            types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        return attributes(report.items)  # type: ignore[union-attr]

    assert await pull(model_uri) == ["log"]
    before = client.diagnostic_refresh_count
    change_doc(client, base_uri, BASE.replace("class Base(nn.Module)", "class Base"), 2)
    await wait_for(lambda: client.diagnostic_refresh_count > before, what="a refresh")
    assert await pull(model_uri) == []


async def test_check_workspace_takes_the_arguments_a_client_sends(
    client: LanguageClient, workspace: Path
) -> None:
    """VS Code sends `arguments: []`; pygls then converts them through the handler's type
    hints, which must resolve at run time."""
    await initialize(client, workspace)
    (workspace / "model.py").write_text(MODEL)
    summary = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="ckpt-lsp.checkWorkspace", arguments=[])
    )
    assert summary == {"files": 1, "findings": 4, "errors": 0}
