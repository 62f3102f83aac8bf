"""shutdown: stop the threads and background tasks; `exit` ends the process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


def shutdown(ls: CkptServer, params: Any) -> None:
    ls.session.close()
