"""The save calls of a module (module facts): which calls, what their argument names."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.save_calls import SaveCall, has_trigger, save_call_data


def _calls(tmp_path: Path, text: str) -> list[SaveCall]:
    index = ProjectIndex(tmp_path)
    index.add_source(tmp_path / "train.py", textwrap.dedent(text))
    return index.save_calls(tmp_path / "train.py")


def _summary(calls: list[SaveCall]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.path, c.label, c.target) for c in calls]


VALID = [  # (source, expected (path, label, target) of each call)
    (
        """
        import torch
        from model import Net
        def main():
            model = Net()
            torch.save(model, "m.pt")
        """,
        [("torch.save", "torch.save(model)", ("name", "Net"))],
    ),
    (  # nn.Module.to() and its like return the module itself
        """
        import torch
        def main(device):
            model = Net().to(device)
            model = model.eval()
            torch.save(model, "m.pt")
        """,
        [("torch.save", "torch.save(model)", ("name", "Net"))],
    ),
    (  # a container is pickled whole, with what it holds
        """
        import torch
        import model as m
        def main():
            net = m.Net()
            torch.save({"model": net, "step": 3}, "c.pt")
        """,
        [("torch.save", "torch.save({...})", ("name", "m.Net"))],
    ),
    (  # an annotated parameter; pickle.dumps and joblib.dump
        """
        import pickle, joblib
        def dump(net: "Net", other: Net):
            pickle.dumps(net)
            joblib.dump(other, "x.joblib")
        """,
        [
            ("pickle", "pickle.dumps(net)", ("name", "Net")),
            ("pickle", "joblib.dump(other)", ("name", "Net")),
        ],
    ),
    (  # an attribute of self, deep-copied in a method
        """
        from copy import deepcopy
        class Loop:
            def __init__(self):
                self.model = Net()
            def snapshot(self):
                return deepcopy(self.model)
        """,
        [("deepcopy", "deepcopy(self.model)", ("self", "Loop", "model"))],
    ),
    (  # spawn and forkserver contexts, named or bound
        """
        import multiprocessing as mp
        from torch.utils.data import DataLoader
        ctx = mp.get_context("forkserver")
        loader = DataLoader(Data(), num_workers=2, multiprocessing_context="spawn")
        other = DataLoader(Data(), num_workers=2, multiprocessing_context=ctx)
        p = ctx.Process(target=work, args=(Data(),))
        """,
        [
            ("spawn", "spawn DataLoader", ("name", "Data")),
            ("spawn", "forkserver DataLoader", ("name", "Data")),
            ("spawn", "Process args", ("name", "Data")),
        ],
    ),
    (  # torch.multiprocessing.spawn args; Lightning's ddp_spawn strategy
        """
        import torch.multiprocessing as mp
        import lightning as L
        mp.spawn(run, args=(Net(),), nprocs=2)
        trainer = L.Trainer(strategy="ddp_spawn")
        trainer.fit(Module())
        """,
        [
            ("spawn", "mp.spawn", ("name", "Net")),
            ("spawn", 'Trainer(strategy="ddp_spawn").fit', ("name", "Module")),
        ],
    ),
]


@pytest.mark.parametrize("source, expected", VALID)
def test_recorded_calls(tmp_path: Path, source: str, expected: list[object]) -> None:
    assert _summary(_calls(tmp_path, source)) == expected


INVALID = [
    # what state_dict() returns is not the model
    "import torch\ndef f(model: Net):\n    torch.save(model.state_dict(), 'm.pt')\n",
    # a function's result: no class to name
    "import torch\ndef f():\n    torch.save(build_model(), 'm.pt')\n",
    # no workers, or fork workers: the dataset is not pickled
    "from torch.utils.data import DataLoader\nDataLoader(Data(), num_workers=0)\n",
    "from torch.utils.data import DataLoader\n"
    "DataLoader(Data(), num_workers=4, multiprocessing_context='fork')\n",
    # the module sets fork: a Process of the default method pickles nothing
    "import multiprocessing as mp\nmp.set_start_method('fork')\n"
    "mp.Process(target=f, args=(Data(),))\n",
    # a name bound to two different things stands for neither
    "import torch\ndef f(flag):\n    m = Net()\n    m = Other()\n    torch.save(m, 'x')\n",
    # Lightning's own checkpoints keep state_dict and hparams, not the module
    "import lightning as L\nL.Trainer(max_epochs=1).fit(Module())\n",
    # a module without a trigger word is not parsed at all
    "model = Net()\n",
]


@pytest.mark.parametrize("source", INVALID)
def test_not_recorded(tmp_path: Path, source: str) -> None:
    assert _calls(tmp_path, source) == []


def test_default_start_method_is_said(tmp_path: Path) -> None:
    (call,) = _calls(
        tmp_path, "from torch.utils.data import DataLoader\nDataLoader(Data(), num_workers=4)\n"
    )
    assert call.label == "DataLoader with workers"
    assert "default on macOS, Windows, and Linux from Python 3.14" in call.note


def test_rows_are_the_module_rows(tmp_path: Path) -> None:
    text = "import torch\n\n\nclass A:\n    def save(self):\n        torch.save(Net(), 'x')\n"
    (call,) = _calls(tmp_path, text)
    assert (call.row, call.column) == (6, 9)


def test_triggers_and_data() -> None:
    assert has_trigger("torch.save(x)") and not has_trigger("x.save_pretrained(d)")
    data = save_call_data()
    assert data.plain["copy.deepcopy"].path == "deepcopy"
    assert {"fit", "save", "deepcopy", "DataLoader"} <= data.last_names


def test_kept_by_the_index_until_the_text_changes(tmp_path: Path) -> None:
    index = ProjectIndex(tmp_path)
    path = tmp_path / "train.py"
    text = "import torch\ntorch.save(Net(), 'x')\n"
    index.add_source(path, text)
    first = index.save_calls(path)
    assert index.save_calls(path) is first
    assert [p for p, _ in index.calling_texts()] == [str(path)]
    index.add_source(path, "\n" + text)
    assert [c.row for c in index.save_calls(path)] == [3]
    index.add_source(path, "x = 1\n")
    assert index.save_calls(path) == [] and index.calling_texts() == []


@pytest.mark.filterwarnings("ignore:Got pickle error")
def test_the_recorded_calls_fail_at_runtime(tmp_path: Path) -> None:
    """Each kind of call in data/save_calls.toml, run on an object holding a lock, fails
    (the spawn ones in this process, while pickling what the child would get)."""
    torch = pytest.importorskip("torch")
    joblib = pytest.importorskip("joblib")
    import copy
    import multiprocessing
    import pickle

    from torch.utils.data import DataLoader

    attempts = {
        "torch.save": lambda: torch.save(_Held(), tmp_path / "x.pt"),
        "pickle": lambda: pickle.dumps(_Held()),
        "joblib": lambda: joblib.dump(_Held(), tmp_path / "x.joblib"),
        "deepcopy": lambda: copy.deepcopy(_Held()),
        "spawn DataLoader": lambda: iter(
            DataLoader(_Held(), num_workers=1, multiprocessing_context="spawn")
        ),
        "forkserver Process": lambda: (
            multiprocessing.get_context("forkserver").Process(target=print, args=(_Held(),)).start()
        ),
    }
    for what, attempt in attempts.items():
        with pytest.raises(TypeError, match="pickle"):
            attempt()
            pytest.fail(f"{what} did not fail")


class _Held:
    """A dataset holding a lock (module level: a local class fails to pickle for its own
    reason)."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        return i
