"""The documents the editor has open, as pygls keeps them, and what the analysis calls them.

Only open documents are read from here: pygls would invent a document from the
disk for a URI it does not know, and the editor's text is what counts for an
open file."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ckpt_lsp.lsp.file_paths import norm_path

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer
    from pygls.workspace import TextDocument

PYTHON_SUFFIXES = (".py", ".pyi")


def path_of(doc: TextDocument) -> str:
    """The file name the analysis knows a document by: its path for files; the URI
    for others (notebook cells share their notebook's path, untitled ones have none)."""
    if doc.uri.startswith("file:") and doc.path:
        return norm_path(doc.path)
    return doc.uri


def is_python(doc: TextDocument) -> bool:
    if doc.language_id:
        return doc.language_id == "python"
    return doc.uri.endswith(PYTHON_SUFFIXES)


class OpenDocuments:
    """Look-ups over the open documents of one server's workspace."""

    def __init__(self, server: LanguageServer) -> None:
        self.server = server

    def get(self, uri: str) -> TextDocument | None:
        """The open document at `uri`, or None (pygls would invent one from disk)."""
        docs = self.server.workspace.text_documents
        doc = docs.get(uri)
        if doc is None:
            doc = docs.get(unquote(uri))
        return doc

    def get_python(self, uri: str) -> TextDocument | None:
        """The open document at `uri` when it is Python, else None."""
        doc = self.get(uri)
        return doc if doc is not None and is_python(doc) else None

    def paths(self) -> set[str]:
        """The paths of the open documents that are files."""
        return {norm_path(d.path) for d in self.server.workspace.text_documents.values() if d.path}

    def uris_at(self, paths: Iterable[str]) -> list[str]:
        """The URIs of the open documents at `paths` (any language)."""
        wanted = set(paths)
        return [
            uri
            for uri, doc in list(self.server.workspace.text_documents.items())
            if doc.path and norm_path(doc.path) in wanted
        ]

    def python_uris(self, paths: Iterable[str] | None = None) -> list[str]:
        """The URIs of the open Python documents (those at `paths`, or all)."""
        wanted = None if paths is None else {norm_path(p) for p in paths}
        return [
            uri
            for uri, doc in list(self.server.workspace.text_documents.items())
            if is_python(doc) and (wanted is None or (doc.path and norm_path(doc.path) in wanted))
        ]
