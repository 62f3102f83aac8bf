"""Diagnostics over stdio: push with versions, pull, positions, close, syntax errors."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from lsp_helpers import (
    MODEL,
    PULL_CAPS,
    attributes,
    change_doc,
    initialize,
    open_doc,
    published,
    wait_for,
)
from lsprotocol import types
from pytest_lsp import LanguageClient

PROFILES = ["visual-studio-code", "neovim"]


@pytest.mark.parametrize("profile", PROFILES)
async def test_open_pushes_diagnostics_with_version_and_data(
    client: LanguageClient, workspace: Path, profile: str
) -> None:
    result = await initialize(client, workspace, profile)
    assert result.capabilities.diagnostic_provider is None  # push clients are not asked to pull
    path = workspace / "model.py"
    path.write_text(MODEL)
    uri = open_doc(client, path, version=7)
    params = await published(client, uri, version=7)
    by_attr = {d.data["attribute"]: d for d in params.diagnostics}
    assert set(by_attr) == {"log", "lock", "act", "guard"}
    log = by_attr["log"]
    assert log.code == "CKPT001"
    assert log.source == "ckpt-lsp"
    assert log.severity == types.DiagnosticSeverity.Error
    assert log.code_description is not None
    assert log.code_description.href.endswith("/CKPT001.md")
    assert "self.log" in log.message
    # `self.log` on line 9 (0-based 8), columns 8..16
    assert log.range == types.Range(types.Position(8, 8), types.Position(8, 16))
    assert log.data == {
        "class": "Model",
        "attribute": "log",
        "class_line": 5,
        "statement_rows": [9, 9],
        "bases": ["torch.nn.Module"],
    }
    assert by_attr["guard"].data["class"] == "Other"
    # the server logs to the client, never to stdout (stdout junk would break the stream)
    await wait_for(lambda: any("ckpt-lsp" in m.message for m in client.log_messages))


async def test_pull_client_pulls_and_gets_no_push(client: LanguageClient, workspace: Path) -> None:
    result = await initialize(client, workspace, PULL_CAPS)
    provider = result.capabilities.diagnostic_provider
    assert isinstance(provider, types.DiagnosticOptions)
    assert provider.identifier == "ckpt-lsp"
    path = workspace / "model.py"
    path.write_text(MODEL)
    uri = open_doc(client, path)
    report = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
    assert sorted(attributes(report.items)) == ["act", "guard", "lock", "log"]
    again = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            previous_result_id=report.result_id,
        )
    )
    assert isinstance(again, types.RelatedUnchangedDocumentDiagnosticReport)
    change_doc(client, uri, MODEL.replace('        self.log = open(path, "a")\n', ""), 2)
    third = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            previous_result_id=report.result_id,
        )
    )
    assert isinstance(third, types.RelatedFullDocumentDiagnosticReport)
    assert sorted(attributes(third.items)) == ["act", "guard", "lock"]
    # a settings change asks the client to pull again
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"ckpt-lsp": {"ignore": ["CKPT005"]}})
    )
    await wait_for(lambda: client.diagnostic_refresh_count > 0, what="a refresh request")
    fourth = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert attributes(fourth.items) == ["act"]  # type: ignore[union-attr]
    assert not [p for p in client.published if p.diagnostics]  # type: ignore[attr-defined]


def _line_with_prefix(prefix: str) -> str:
    return MODEL.replace(
        '        self.log = open(path, "a")\n', f'        {prefix}; self.log = open(path, "a")\n'
    )


@pytest.mark.parametrize(
    ("encodings", "expected_encoding", "start"),
    [
        # `note = "😀漢字"; ` before the target: 😀 is 2 UTF-16 units / 4 UTF-8 bytes
        (None, "utf-16", 8 + len('note = "') + 2 + 2 + len('"; ')),
        (["utf-8", "utf-16"], "utf-8", 8 + len('note = "') + 4 + 6 + len('"; ')),
        (["utf-32"], "utf-32", 8 + len('note = "') + 1 + 2 + len('"; ')),
    ],
)
async def test_columns_in_the_negotiated_encoding(
    client: LanguageClient,
    workspace: Path,
    encodings: list[str] | None,
    expected_encoding: str,
    start: int,
) -> None:
    result = await initialize(client, workspace, encodings=encodings)
    assert result.capabilities.position_encoding == expected_encoding
    path = workspace / "model.py"
    text = _line_with_prefix('note = "😀漢字"')
    path.write_text(text, encoding="utf-8")
    uri = open_doc(client, path)
    params = await published(client, uri, version=1)
    log = next(d for d in params.diagnostics if d.data["attribute"] == "log")
    assert log.range.start == types.Position(8, start)
    assert log.range.end == types.Position(8, start + len("self.log"))
    # CRLF line endings and tab indentation (a tab is one unit in every encoding)
    crlf = MODEL.replace("        ", "\t\t").replace("    ", "\t").replace("\n", "\r\n")
    other = workspace / "crlf.py"
    other.write_bytes(crlf.encode())
    other_uri = open_doc(client, other, text=crlf)
    params = await published(client, other_uri, version=1)
    log = next(d for d in params.diagnostics if d.data["attribute"] == "log")
    assert log.range == types.Range(types.Position(8, 2), types.Position(8, 10))


async def test_edits_update_and_close_clears(client: LanguageClient, workspace: Path) -> None:
    await initialize(client, workspace)
    path = workspace / "model.py"
    path.write_text(MODEL)
    uri = open_doc(client, path)
    await published(client, uri, version=1, check=lambda d: len(d) == 4)
    change_doc(client, uri, MODEL.replace("threading.Lock()", "None"), 2)
    params = await published(client, uri, version=2)
    assert sorted(attributes(params.diagnostics)) == ["act", "log"]
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    cleared = await published(client, uri, check=lambda d: len(d) == 0)
    assert list(cleared.diagnostics) == []


async def test_incremental_edits(client: LanguageClient, workspace: Path) -> None:
    await initialize(client, workspace)
    path = workspace / "model.py"
    path.write_text(MODEL)
    uri = open_doc(client, path)
    await published(client, uri, version=1)
    # replace `threading.Lock()` on line 10 (0-based 9) by `0`
    line = MODEL.splitlines()[9]
    start = line.index("threading")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(9, start), types.Position(9, len(line))),
                    text="0",
                )
            ],
        )
    )
    params = await published(client, uri, version=2)
    assert sorted(attributes(params.diagnostics)) == ["act", "guard", "log"]
    # a form feed is not a line break for the protocol: edits below it land right
    text = MODEL.replace("import threading\n", "import threading\x0c\n")
    path = workspace / "paged.py"
    path.write_text(text)
    uri = open_doc(client, path, text=text)
    await published(client, uri, version=1)
    line = text.split("\n")[9]  # protocol line 9; str.splitlines would say line 10
    assert "self.lock" in line
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        types.Position(9, line.index("threading")), types.Position(9, len(line))
                    ),
                    text="0",
                )
            ],
        )
    )
    params = await published(client, uri, version=2)
    assert sorted(attributes(params.diagnostics)) == ["act", "guard", "log"]
    log = next(d for d in params.diagnostics if d.data["attribute"] == "log")
    assert log.range.start.line == 8


async def test_a_broken_class_keeps_the_others(client: LanguageClient, workspace: Path) -> None:
    await initialize(client, workspace)
    path = workspace / "model.py"
    path.write_text(MODEL)
    uri = open_doc(client, path)
    await published(client, uri, version=1, check=lambda d: len(d) == 4)
    broken = MODEL.replace("self.guard = threading.Lock()", "self.guard = threading.Lock(")
    with pytest.raises(SyntaxError):
        ast.parse(broken)
    change_doc(client, uri, broken, 2)
    params = await published(client, uri, version=2)
    # Model parses and keeps its findings; Other does not parse and keeps its last good one
    assert sorted(attributes(params.diagnostics)) == ["act", "guard", "lock", "log"]
    # break Model while fixing Other: Model's findings stay, Other's reflect the new text
    broken2 = MODEL.replace("return self.act(x)", "return self.act(x) +").replace(
        "self.guard = threading.Lock()", "self.guard = 1"
    )
    change_doc(client, uri, broken2, 3)
    params = await published(client, uri, version=3)
    assert sorted(attributes(params.diagnostics)) == ["act", "lock", "log"]


async def test_versions_only_move_forward(client: LanguageClient, workspace: Path) -> None:
    """A burst of edits: results are published for increasing versions only, the last
    one for the last version, and each matches the text of its version."""
    await initialize(client, workspace)
    path = workspace / "model.py"
    path.write_text(MODEL)
    uri = open_doc(client, path)
    await published(client, uri, version=1)
    for version in range(2, 42):
        # even versions have the lock, odd ones do not
        text = MODEL if version % 2 == 0 else MODEL.replace("self.lock = threading.Lock()", "")
        change_doc(client, uri, text, version)
    await published(client, uri, version=41)
    versions = [p.version for p in client.published if p.uri == uri]  # type: ignore[attr-defined]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    for p in client.published:  # type: ignore[attr-defined]
        if p.uri == uri and p.version and p.version > 1:
            assert ("lock" in attributes(p.diagnostics)) == (p.version % 2 == 0)
    # a slow version overtaken by a quick one is never published (3,000 classes: slow
    # enough that version 43 arrives while 42 is analyzed, however fast the engine gets)
    big = MODEL + "".join(
        MODEL.split("\n\n\n", 1)[1].replace("class ", f"class V{i}") for i in range(3000)
    )
    change_doc(client, uri, big, 42)
    change_doc(client, uri, MODEL, 43)
    # the wait covers analysing 3,000 classes first, which a loaded machine takes 10 s to do
    await published(client, uri, version=43, timeout=60)
    await asyncio.sleep(0.2)
    versions = [p.version for p in client.published if p.uri == uri]  # type: ignore[attr-defined]
    assert 42 not in versions
    assert versions[-1] == 43
