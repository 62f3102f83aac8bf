"""Where a finding bites, in the editor: relatedInformation names the calls that fail,
and editing the file that saves refreshes the diagnostics of the file that defines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lsp_helpers import change_doc, initialize, open_doc, published, uri_of
from lsprotocol import types
from pytest_lsp import LanguageClient

MODEL = """\
import threading
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
"""

TRAIN = """\
import torch
from model import Net


def main():
    model = Net()
    torch.save(model, "m.pt")
"""


def _related(diagnostics: Sequence[types.Diagnostic]) -> list[tuple[str, int, str]]:
    return [
        (Path(r.location.uri).name, r.location.range.start.line, r.message)
        for d in diagnostics
        for r in d.related_information or ()
    ]


async def test_related_information_names_the_save_and_follows_edits(
    client: LanguageClient, workspace: Path
) -> None:
    (workspace / "model.py").write_text(MODEL)
    (workspace / "train.py").write_text(TRAIN)
    await initialize(client, workspace)
    model_uri = open_doc(client, workspace / "model.py")
    saved = [("train.py", 6, "torch.save(model) pickles Net here")]
    params = await published(client, model_uri, check=lambda d: _related(d) == saved)
    (diagnostic,) = params.diagnostics
    (info,) = diagnostic.related_information or ()
    assert info.location.uri == uri_of(workspace / "train.py")
    assert info.location.range.start.character == 4
    # the save moves down a line, then goes: model.py's diagnostics follow
    train_uri = open_doc(client, workspace / "train.py")
    change_doc(client, train_uri, "\n" + TRAIN, 2)
    moved = [("train.py", 7, "torch.save(model) pickles Net here")]
    await published(client, model_uri, check=lambda d: _related(d) == moved)
    change_doc(client, train_uri, TRAIN.replace('torch.save(model, "m.pt")', "pass"), 3)
    await published(client, model_uri, check=lambda d: len(d) == 1 and _related(d) == [])
    change_doc(client, train_uri, TRAIN, 4)
    await published(client, model_uri, check=lambda d: _related(d) == saved)


async def test_a_closed_file_changed_on_disk_refreshes_them(
    client: LanguageClient, workspace: Path
) -> None:
    (workspace / "model.py").write_text(MODEL)
    (workspace / "train.py").write_text(TRAIN)
    await initialize(client, workspace)
    model_uri = open_doc(client, workspace / "model.py")
    await published(client, model_uri, check=lambda d: [r[1] for r in _related(d)] == [6])
    (workspace / "train.py").write_text("\n\n" + TRAIN)
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[
                types.FileEvent(
                    uri=uri_of(workspace / "train.py"), type=types.FileChangeType.Changed
                )
            ]
        )
    )
    await published(client, model_uri, check=lambda d: [r[1] for r in _related(d)] == [8])
