"""Helpers for driving the server the way an editor does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient, client_capabilities

MODEL = """\
import threading
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, path):
        super().__init__()
        self.path = path
        self.log = open(path, "a")
        self.lock = threading.Lock()
        self.act = lambda x: x

    def forward(self, x):
        return self.act(x)


class Other(nn.Module):
    def __init__(self):
        super().__init__()
        self.guard = threading.Lock()
"""

PULL_CAPS = "pull"  # a profile name of our own: VS Code's with pull diagnostics
EAGER_CAPS = "no-resolve"  # VS Code's without codeAction/resolve: edits come at once


def capabilities(profile: str, encodings: Sequence[str] | None = None) -> types.ClientCapabilities:
    """A client profile from pytest-lsp; "pull" adds pull diagnostics with refresh."""
    if profile == PULL_CAPS:
        caps = client_capabilities("visual-studio-code")
        assert caps.text_document is not None and caps.workspace is not None
        caps.text_document.diagnostic = types.DiagnosticClientCapabilities(
            dynamic_registration=True, related_document_support=False
        )
        caps.workspace.diagnostics = types.DiagnosticWorkspaceClientCapabilities(
            refresh_support=True
        )
    elif profile == EAGER_CAPS:
        caps = client_capabilities("visual-studio-code")
        assert caps.text_document is not None and caps.text_document.code_action is not None
        caps.text_document.code_action.resolve_support = None
    else:
        caps = client_capabilities(profile)
    if encodings is not None:
        caps.general = types.GeneralClientCapabilities(position_encodings=list(encodings))
    return caps


def uri_of(path: Path) -> str:
    uri = from_fs_path(str(path))
    assert uri is not None
    return uri


async def initialize(
    client: LanguageClient,
    root: Path,
    profile: str = "visual-studio-code",
    *,
    settings: dict[str, Any] | None = None,
    encodings: Sequence[str] | None = None,
) -> types.InitializeResult:
    params = types.InitializeParams(
        capabilities=capabilities(profile, encodings),
        root_uri=uri_of(root),
        workspace_folders=[types.WorkspaceFolder(uri=uri_of(root), name=root.name)],
        initialization_options={"settings": settings} if settings is not None else None,
    )
    return await client.initialize_session(params)


def open_doc(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    if text is None:
        text = path.read_text(encoding="utf-8")
    uri = uri_of(path)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=version, text=text
            )
        )
    )
    return uri


def change_doc(client: LanguageClient, uri: str, text: str, version: int) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def published(
    client: LanguageClient,
    uri: str,
    version: int | None = None,
    check: Callable[[Sequence[types.Diagnostic]], bool] | None = None,
    timeout: float = 10.0,
) -> types.PublishDiagnosticsParams:
    """The latest publication for `uri` (at `version`, passing `check`), waiting for it."""

    def find() -> types.PublishDiagnosticsParams | None:
        for params in reversed(client.published):  # type: ignore[attr-defined]
            if params.uri != uri:
                continue
            if version is not None and params.version != version:
                return None
            if check is not None and not check(params.diagnostics):
                return None
            return params
        return None

    return await wait_for(find, timeout, f"diagnostics of {uri} v{version}")


def attributes(diagnostics: Sequence[types.Diagnostic]) -> list[str]:
    return [d.data["attribute"] for d in diagnostics]  # type: ignore[index]


def offset_of(text: str, pos: types.Position, encoding: str = "utf-16") -> int:
    """A client position in `text` as a str index (lines end at \\r\\n, \\r or \\n)."""
    import re

    lines = re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)
    start = sum(len(line) for line in lines[: pos.line])
    line = lines[pos.line] if pos.line < len(lines) else ""
    units = 0
    for i, ch in enumerate(line):
        if units >= pos.character:
            return start + i
        if encoding == "utf-8":
            units += len(ch.encode("utf-8"))
        elif encoding == "utf-32":
            units += 1
        else:
            units += 2 if ord(ch) > 0xFFFF else 1
    return start + len(line.rstrip("\r\n"))


def apply_edits(text: str, edits: Sequence[types.TextEdit], encoding: str = "utf-16") -> str:
    """Apply text edits the way a client does (all ranges refer to the original text)."""
    spans = sorted(
        (
            (offset_of(text, e.range.start, encoding), offset_of(text, e.range.end, encoding), e)
            for e in edits
        ),
        key=lambda s: (s[0], s[1]),
        reverse=True,
    )
    for start, end, edit in spans:
        text = text[:start] + edit.new_text + text[end:]
    return text


def edits_of(edit: types.WorkspaceEdit, uri: str) -> list[types.TextEdit]:
    if edit.document_changes:
        out: list[types.TextEdit] = []
        for change in edit.document_changes:
            assert isinstance(change, types.TextDocumentEdit)
            assert change.text_document.uri == uri
            out.extend(change.edits)  # type: ignore[arg-type]
        return out
    assert edit.changes is not None
    return list(edit.changes[uri])
