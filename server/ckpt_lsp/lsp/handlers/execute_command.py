"""workspace/executeCommand: the server's one command, checking the whole workspace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer

CHECK_WORKSPACE = "ckpt-lsp.checkWorkspace"


async def check_workspace(ls: CkptServer, *args: Any) -> dict[str, int]:
    return await ls.session.workspace_checks.check_workspace()
