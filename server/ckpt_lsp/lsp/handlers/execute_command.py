"""workspace/executeCommand: the server's one command, checking the whole workspace."""

from __future__ import annotations

from typing import Any

CHECK_WORKSPACE = "ckpt-lsp.checkWorkspace"


# `ls` is the CkptServer. pygls reads a command's type hints at run time to convert its
# arguments, so the hint must name something importable here, and the server module
# imports this one: Any it is.
async def check_workspace(ls: Any, *args: Any) -> dict[str, int]:
    result: dict[str, int] = await ls.session.workspace_checks.check_workspace()
    return result
