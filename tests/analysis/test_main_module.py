"""CKPT014 main-module-class: a model class defined in `__main__` and saved whole.

The runtime first: saved from `__main__`, the file names `__main__.Net`, which another
process cannot find, while the state_dict loads. Then the rule's VALID and INVALID cases.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text
from ckpt_lsp.analysis.main_module import whole_saves

pytest.importorskip("torch")

SCRIPT = """\
import pickle
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)


if __name__ == "__main__":
    model = Net()
    torch.save(model, "model.pt")
    torch.save(model.state_dict(), "weights.pt")
    with open("model.pkl", "wb") as fh:
        pickle.dump(model, fh)
"""

LOADER = """\
import pickle, sys
import torch
from torch import nn

for name, load in (
    ("torch.load", lambda: torch.load("model.pt", weights_only=False)),
    ("pickle.load", lambda: pickle.load(open("model.pkl", "rb"))),
):
    try:
        load()
        print(name, "loaded")
    except AttributeError as exc:
        print(name, exc)


class Net(nn.Module):  # the class, importable here: the weights load into it
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)


Net().load_state_dict(torch.load("weights.pt"))
print("state_dict loaded")
"""


def test_runtime_a_class_saved_from_main_does_not_load_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(SCRIPT)
    subprocess.run([sys.executable, "train.py"], cwd=tmp_path, check=True, timeout=300)
    (tmp_path / "load.py").write_text(LOADER)
    out = subprocess.run(
        [sys.executable, "-c", "import runpy; runpy.run_path('load.py', run_name='loader')"],
        cwd=tmp_path,
        check=True,
        timeout=300,
        capture_output=True,
        text=True,
    ).stdout
    assert "torch.load Can't get attribute 'Net' on <module '__main__'" in out
    assert "pickle.load Can't get attribute 'Net' on <module '__main__'" in out
    assert "state_dict loaded" in out
    # and the rule says so of the script that saved them, at each whole save
    rows = [f.location.row for f in analyze_text(SCRIPT, "train.py") if f.code == "CKPT014"]
    assert rows == [14, 17]


HEADER = """\
import pickle
import joblib
import torch
from torch import nn
from sklearn.base import BaseEstimator


class Net(nn.Module):
    pass


class Est(BaseEstimator):
    pass


class Plain:
    pass


"""


def _codes(body: str, filename: str = "train.py") -> list[int]:
    source = HEADER + textwrap.dedent(body)
    return [f.location.row for f in analyze_text(source, filename) if f.code == "CKPT014"]


INVALID = [
    'if __name__ == "__main__":\n    model = Net()\n    torch.save(model, "m.pt")\n',
    'if "__main__" == __name__:\n    torch.save(Net(), "m.pt")\n',
    'if __name__ == "__main__":\n    model = Net().to("cpu").eval()\n    torch.save(model, "m.pt")\n',
    'if __name__ == "__main__":\n    m = Net()\n    torch.save({"model": m, "epoch": 3}, "c.pt")\n',
    'if __name__ == "__main__":\n    m = Net()\n    torch.save(obj=[m], f="c.pt")\n',
    'if __name__ == "__main__":\n    m = Net()\n    data = pickle.dumps(m)\n',
    'if __name__ == "__main__":\n    clf = Est().fit([[0]], [0])\n    joblib.dump(clf, "c.joblib")\n',
    'def main():\n    m = Net()\n    torch.save(m, "m.pt")\n\n\nif __name__ == "__main__":\n'
    "    main()\n",
    'def save(m):\n    pass\n\n\ndef main():\n    net = Net()\n    with open("f", "wb") as fh:\n'
    '        pickle.dump(net, fh)\n\n\nif __name__ == "__main__":\n    main()\n',
    'model = Net()\n\nif __name__ == "__main__":\n    torch.save(model, "m.pt")\n',
]

VALID = [
    # an importable module: nothing says it runs as __main__
    'def main():\n    torch.save(Net(), "m.pt")\n',
    'model = Net()\ntorch.save(model, "m.pt")\n',
    # the weights only
    'if __name__ == "__main__":\n    m = Net()\n    torch.save(m.state_dict(), "w.pt")\n',
    'if __name__ == "__main__":\n    m = Net()\n    torch.save({"model": m.state_dict()}, "c.pt")\n',
    # not a model class (out of the project's scope)
    'if __name__ == "__main__":\n    pickle.dumps(Plain())\n',
    # a name that is not always the main class's instance
    'if __name__ == "__main__":\n    m = Net()\n    m = load()\n    torch.save(m, "m.pt")\n',
    # a function the main guard does not call
    'def other():\n    torch.save(Net(), "m.pt")\n\n\nif __name__ == "__main__":\n    print(1)\n',
    # dill stores __main__ classes by value
    'import dill\nif __name__ == "__main__":\n    dill.dump(Net(), open("f", "wb"))\n',
    # suppressed
    'if __name__ == "__main__":\n    torch.save(Net(), "m.pt")  # ckpt: ignore[CKPT014]\n',
]


@pytest.mark.parametrize("body", INVALID)
def test_invalid(body: str) -> None:
    assert len(_codes(body)) == 1


@pytest.mark.parametrize("body", VALID)
def test_valid(body: str) -> None:
    assert _codes(body) == []


def test_a_notebook_is_main_without_a_guard() -> None:
    body = 'model = Net()\ntorch.save(model, "m.pt")\n'
    assert len(_codes(body, "nb.ipynb")) == 1
    assert _codes(body, "nb.py") == []


def test_a_class_of_the_same_name_imported_is_not_main() -> None:
    source = (
        "import torch\nfrom models import Net\n\n\n"
        'if __name__ == "__main__":\n    torch.save(Net(), "m.pt")\n'
    )
    assert analyze_text(source, "train.py") == []


def test_the_finding_points_at_the_class() -> None:
    (finding,) = analyze_text(HEADER + INVALID[0], "train.py")
    assert finding.severity == "warning" and finding.class_name == "Net"
    assert finding.related[0][1] == 8 and "defined here" in finding.related[0][3]
    assert "state_dict()" in finding.message and "importable module" in finding.message


def test_the_save_table_loads() -> None:
    saves = whole_saves()
    assert {"torch.save", "pickle.dump", "joblib.dump"} <= set(saves)
