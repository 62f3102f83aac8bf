"""Open documents: look-ups by URI, and the names the analysis knows them by."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

from ckpt_lsp.lsp.open_documents import OpenDocuments, is_python, path_of
from lsprotocol import types
from pygls.workspace import Workspace


def _documents(tmp_path: Any) -> OpenDocuments:
    workspace = Workspace(None)
    for name, language in [("my model.py", "python"), ("notes.txt", "plaintext")]:
        workspace.put_text_document(
            types.TextDocumentItem(
                uri=(tmp_path / name).as_uri(), language_id=language, version=1, text=""
            )
        )
    workspace.put_text_document(
        types.TextDocumentItem(uri="untitled:Untitled-1", language_id="", version=1, text="")
    )
    return OpenDocuments(SimpleNamespace(workspace=workspace))  # type: ignore[arg-type]


def test_a_document_is_found_by_its_uri_quoted_or_not(tmp_path: Any) -> None:
    documents = _documents(tmp_path)
    quoted = (tmp_path / "my model.py").as_uri()
    assert "%20" in quoted
    assert documents.get(quoted) is not None
    assert documents.get("file:///nowhere.py") is None
    assert documents.get_python((tmp_path / "notes.txt").as_uri()) is None


def test_python_documents_and_their_names(tmp_path: Any) -> None:
    documents = _documents(tmp_path)
    model = str(tmp_path / "my model.py")
    doc = documents.get((tmp_path / "my model.py").as_uri())
    assert doc is not None and is_python(doc) and path_of(doc) == os.path.normpath(model)
    (key,) = documents.python_uris()  # the notes and the untitled buffer are not Python
    assert documents.get(key) is doc
    assert documents.python_uris([model]) == [key]
    assert documents.python_uris([os.path.join(str(tmp_path), "other.py")]) == []
    assert documents.uris_at([os.path.normpath(model)]) == [key]
    untitled = documents.get("untitled:Untitled-1")
    assert untitled is not None and path_of(untitled) == "untitled:Untitled-1"
    assert not is_python(untitled)  # no language and no .py suffix
    assert model in documents.paths()
