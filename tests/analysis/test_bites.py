"""Where a finding bites: the related locations that name the calls failing on its object.

Related locations never change which findings exist; they name, nearest first and at most
MAX_RELATED, the calls of the project that pickle or copy an object carrying the flagged
attribute: the class itself, a subclass, or a class holding it in an attribute.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from ckpt_lsp.analysis.analyzer import Analyzer, analyze_text
from ckpt_lsp.analysis.bites import MAX_RELATED
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.config import Config
from ckpt_lsp.findings import Finding
from ckpt_lsp.report import render
from ckpt_lsp.runner import run_check

MODEL = """\
import threading
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()


class Wide(Net):
    pass


class Runner:
    def __init__(self):
        self.net = Net()
"""

TRAIN = """\
import copy
import pickle

import torch
from torch.utils.data import DataLoader

from model import Net, Runner, Wide


class Loop:
    def __init__(self):
        self.model = Net()

    def snapshot(self):
        return copy.deepcopy(self.model)


def main():
    model = Net()
    torch.save(model, "m.pt")
    torch.save(model.state_dict(), "ok.pt")
    torch.save(Wide(), "w.pt")
    torch.save(Runner(), "r.pt")
"""


def _project(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    for name, text in {"model": MODEL, "train": TRAIN, **files}.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    return tmp_path


def _analyze(root: Path, name: str = "model.py") -> list[Finding]:
    index = ProjectIndex(root)
    index.scan(sorted(root.glob("*.py")))
    path = root / name
    return Analyzer(Config(root=root), index).analyze(str(path), path.read_text()).findings


def test_each_failing_call_is_named(tmp_path: Path) -> None:
    (finding,) = _analyze(_project(tmp_path))
    train = str(tmp_path / "train.py")
    assert [(p == train, row, message) for p, row, _, message in finding.related] == [
        (True, 15, "copy.deepcopy(self.model) copies Net here"),
        (True, 20, "torch.save(model) pickles Net here"),
        (True, 22, "torch.save(Wide()) pickles Wide (a Net) here"),
        (True, 23, "torch.save(Runner()) pickles Runner (which holds a Net) here"),
    ]


def test_nearest_first_and_capped(tmp_path: Path) -> None:
    saves = "".join(f"    torch.save(Net(), 'm{i}.pt')\n" for i in range(8))
    local = MODEL + "\n\nimport torch\n\n\ndef keep():\n    torch.save(Net(), 'here.pt')\n"
    root = _project(
        tmp_path, model=local, more=f"import torch\nfrom model import Net\n\n\ndef f():\n{saves}"
    )
    # the whole-model save in model.py is also a CKPT010 finding (the default torch.load refuses it)
    (finding,) = [f for f in _analyze(root) if f.code != "CKPT010"]
    assert len(finding.related) == MAX_RELATED
    first = finding.related[0]
    assert first[0] == str(root / "model.py") and "here" in first[3]
    assert [r[0] for r in finding.related[1:]] == [str(root / "more.py")] * 4


def test_a_path_the_hazard_does_not_break_is_not_named(tmp_path: Path) -> None:
    # a socket survives spawn's pickling (multiprocessing reduces it): no spawn site, only
    # the torch.save
    model = MODEL.replace("threading.Lock()", "socket.socket()").replace(
        "import threading", "import socket"
    )
    train = (
        "import torch\nfrom torch.utils.data import DataLoader\nfrom model import Net\n"
        "DataLoader(Net(), num_workers=2, multiprocessing_context='spawn')\n"
        "torch.save(Net(), 'x')\n"
    )
    (finding,) = _analyze(_project(tmp_path, model=model, train=train))
    assert [r[3] for r in finding.related] == ["torch.save(Net()) pickles Net here"]


def test_spawn_data_loader_and_the_default_start_method(tmp_path: Path) -> None:
    data = (
        "import threading\nfrom torch.utils.data import Dataset\n\n\nclass Texts(Dataset):\n"
        "    def __init__(self):\n        self.lock = threading.Lock()\n"
    )
    train = (
        "from torch.utils.data import DataLoader\nfrom data import Texts\n"
        "a = DataLoader(Texts(), num_workers=4, multiprocessing_context='spawn')\n"
        "b = DataLoader(Texts(), num_workers=4)\n"
        "c = DataLoader(Texts())\n"
    )
    (finding,) = _analyze(_project(tmp_path, data=data, train=train), "data.py")
    assert [(r[1], r[3]) for r in finding.related] == [
        (3, "spawn DataLoader pickles Texts here"),
        (
            4,
            "DataLoader with workers pickles Texts here under spawn/forkserver "
            "(default on macOS, Windows, and Linux from Python 3.14)",
        ),
    ]


def test_related_never_changes_which_findings_exist(tmp_path: Path) -> None:
    root = _project(tmp_path)
    alone = analyze_text(MODEL, str(root / "model.py"))
    with_project = _analyze(root)
    assert [(f.code, f.location, f.attribute) for f in alone] == [
        (f.code, f.location, f.attribute) for f in with_project
    ]
    assert alone[0].related == () and with_project[0].related


def test_a_file_that_saves_itself_without_an_index() -> None:
    text = MODEL + "\n\nimport torch\n\nif __name__ == '__main__':\n    torch.save(Net(), 'x')\n"
    # the save itself is CKPT010 (a whole model) and CKPT014 (saved from __main__) too
    found = analyze_text(text, "model.py")
    (finding,) = [f for f in found if f.code < "CKPT010"]
    assert finding.related == (("model.py", 23, 5, "torch.save(Net()) pickles Net here"),)
    # those name their own places: the save calls are for attribute findings only
    others = [f for f in found if f.code >= "CKPT010"]
    assert "CKPT014" in {f.code for f in others}
    assert not any("pickles" in message for f in others for *_, message in f.related)


def test_json_and_sarif_carry_them(tmp_path: Path, monkeypatch) -> None:
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    result = run_check([Path("model.py")], Config(root=root), use_cache=False)
    (item,) = json.loads(render(result.findings, result.errors, "json", root=root))
    assert item["related"][1] == {
        "filename": "train.py",
        "location": {"row": 20, "column": 5},
        "message": "torch.save(model) pickles Net here",
    }
    sarif = json.loads(render(result.findings, result.errors, "sarif", root=root))
    (res,) = sarif["runs"][0]["results"]
    related = res["relatedLocations"]
    assert related[1]["message"]["text"] == "torch.save(model) pickles Net here"
    region = related[1]["physicalLocation"]["region"]
    assert region["startLine"] == 20
    assert related[1]["physicalLocation"]["artifactLocation"]["uri"].endswith("train.py")


def test_a_save_typed_into_the_file_being_edited_is_named(tmp_path: Path) -> None:
    """In an editor the file's own trigger words are looked for block by block (memoized):
    a save call typed into it is found on the next keystroke, and removed with it."""
    root = _project(tmp_path)
    (root / "train.py").unlink()
    index = ProjectIndex(root)
    index.scan(sorted(root.glob("*.py")))
    analyzer = Analyzer(Config(root=root), index)
    path = str(root / "model.py")
    saving = MODEL + "\n\ndef dump():\n    import pickle\n\n    return pickle.dumps(Net())\n"
    related = []
    for text in (MODEL, saving, MODEL):
        (finding,) = [f for f in analyzer.analyze(path, text).findings if f.attribute == "lock"]
        related.append([message for *_, message in finding.related])
    assert related == [[], ["pickle.dumps(Net()) pickles Net here"], []]
