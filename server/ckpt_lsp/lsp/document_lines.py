"""Open documents whose lines are the protocol's lines.

pygls splits a document with `str.splitlines`, which also breaks lines at form
feeds, U+2028 and a few other characters; the protocol (and Python's tokenizer)
break only at `\\r\\n`, `\\n` and `\\r`. With pygls' lines an incremental edit
after a form feed (Emacs page breaks, some stdlib-style files) lands on the wrong
line and the server's copy of the document silently diverges from the editor's.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MethodType
from typing import Any

from pygls.workspace import TextDocument, Workspace

from ckpt_lsp.analysis.blocks import split_lines

_EXOTIC_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


class LspTextDocument(TextDocument):
    @property
    def lines(self) -> Sequence[str]:
        source = self.source
        if any(ch in source for ch in _EXOTIC_BREAKS):
            return tuple(split_lines(source))
        return tuple(source.splitlines(True))  # same result, in C


def _create_text_document(
    self: Workspace,
    doc_uri: str,
    source: str | None = None,
    version: int | None = None,
    language_id: str | None = None,
) -> TextDocument:
    return LspTextDocument(
        doc_uri,
        source=source,
        version=version,
        language_id=language_id,
        sync_kind=self._sync_kind,
        position_codec=self._position_codec,
    )


def use_lsp_lines(workspace: Any) -> None:
    """Make `workspace` create LspTextDocuments (pygls offers no hook but this method)."""
    workspace._create_text_document = MethodType(_create_text_document, workspace)
