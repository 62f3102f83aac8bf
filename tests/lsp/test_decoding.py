"""The server reads files from disk with the CLI's decoder (PEP 263 cookie, BOM).

Open documents come from the editor as text; files the server reads itself (the
workspace index, checkWorkspace, a file changed on disk) were decoded as bare UTF-8,
so a Latin-1 module with a coding cookie was skipped where `ckpt-lsp --check` checks it.
"""

from __future__ import annotations

from pathlib import Path

from lsp_helpers import MODEL, attributes, initialize, published, uri_of
from lsprotocol import types
from pytest_lsp import LanguageClient

LATIN1 = "# -*- coding: latin-1 -*-\n# Café\n" + MODEL


async def test_check_workspace_reads_a_latin1_module(
    client: LanguageClient, workspace: Path
) -> None:
    await initialize(client, workspace)
    path = workspace / "model.py"
    path.write_bytes(LATIN1.encode("latin-1"))
    summary = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="ckpt-lsp.checkWorkspace")
    )
    assert summary == {"files": 1, "findings": 4, "errors": 0}
    params = await published(client, uri_of(path))
    assert sorted(attributes(params.diagnostics)) == ["act", "guard", "lock", "log"]
