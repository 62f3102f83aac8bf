"""CKPT010 weights-only: VALID and INVALID examples per shape, the report's fields, the loads
that opt out, the cache's dependencies, and fixes that load at runtime."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import Analyzer, analyze_text
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.config import Config
from ckpt_lsp.findings import Finding
from ckpt_lsp.fix import fix_file_source
from ckpt_lsp.report.json import finding_to_dict
from ckpt_lsp.runner import run_check
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import argparse, collections, datetime, enum, os, uuid
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import torch
from torch import nn
from omegaconf import OmegaConf, DictConfig

class Mode(enum.Enum):
    TRAIN = 1

@dataclass
class Cfg:
    lr: float = 0.1

class Net(nn.Module):
    pass
"""


def _wo(source: str) -> list[Finding]:
    return weights_only_findings(HEADER, source)


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


INVALID = [
    ("dict display", 'def save(p):\n    torch.save({"m": np.mean([1.0])}, p)\n', [(2, "m")]),
    (
        "subscript assignment",
        'def save(p):\n    ck = {}\n    ck["a"] = Path(p)\n    torch.save(ck, p)\n',
        [(3, "a")],
    ),
    (
        "dict(k=v)",
        "def save(p):\n    torch.save(dict(cfg=OmegaConf.create({})), p)\n",
        [(2, "cfg")],
    ),
    ("nested dict", 'def save(p):\n    torch.save({"a": {"b": uuid.uuid4()}}, p)\n', [(2, "b")]),
    (
        "nested subscript",
        'def save(p):\n    ck = {"a": {}}\n    ck["a"]["b"] = Mode.TRAIN\n    torch.save(ck, p)\n',
        [(3, "b")],
    ),
    (
        "update(dict)",
        'def save(p):\n    ck = {}\n    ck.update({"t": datetime.datetime.now()})\n    torch.save(ck, p)\n',
        [(3, "t")],
    ),
    (
        "update(k=v)",
        "def save(p):\n    ck = dict()\n    ck.update(c=Cfg())\n    torch.save(ck, p)\n",
        [(3, "c")],
    ),
    (
        "local dict in a dict",
        'def save(p):\n    meta = {"d": collections.defaultdict(list)}\n    torch.save({"meta": meta}, p)\n',
        [(2, "d")],
    ),
    ("whole model", "def save(p):\n    model = Net()\n    torch.save(model, p)\n", [(3, None)]),
    (
        "annotated parameter",
        "def save(model: nn.Module, p):\n    torch.save(model, p)\n",
        [(2, None)],
    ),
    (
        "parse_args",
        'def save(p):\n    args = argparse.ArgumentParser().parse_args()\n    torch.save({"args": args}, p)\n',
        [(3, "args")],
    ),
    (
        "flow through a loop",
        'def save(p, xs):\n    best = 0.0\n    for x in xs:\n        acc = np.mean(x)\n        if acc > best:\n            best = acc\n    torch.save({"best": best}, p)\n',
        [(7, "best")],
    ),
    (
        "list holding a numpy scalar",
        'def save(p):\n    torch.save({"h": [np.float64(1), 2.0]}, p)\n',
        [(2, "h")],
    ),
    (
        "keyword obj",
        'def save(p):\n    torch.save(obj={"v": torch.__version__}, f=p)\n',
        [(2, "v")],
    ),
    (
        "method with self attribute",
        "class Trainer:\n    def __init__(self):\n        self.best = np.float64(0.0)\n"
        '    def save(self, p):\n        torch.save({"best": self.best}, p)\n',
        [(5, "best")],
    ),
    (
        "on_save_checkpoint",
        "import lightning as L\nclass Lit(L.LightningModule):\n"
        '    def on_save_checkpoint(self, checkpoint):\n        checkpoint["cfg"] = OmegaConf.create({})\n',
        [(4, "cfg")],
    ),
    (
        "added to a state_dict",
        'def save(p):\n    ck = Net().state_dict()\n    ck["epoch"] = np.int64(3)\n    torch.save(ck, p)\n',
        [(3, "epoch")],
    ),
    (
        "a list that numpy values are appended to",
        "def save(p, xs):\n    hist = []\n    for x in xs:\n        hist.append(np.mean(x))\n"
        '    torch.save({"hist": hist}, p)\n',
        [(5, "hist")],
    ),
    (
        "an item of a numpy array",
        'def save(p):\n    a = np.zeros(3)\n    torch.save({"a0": a[0]}, p)\n',
        [(3, "a0")],
    ),
    (
        "through a saving helper",
        "def save_checkpoint(state, path):\n    torch.save(state, path)\n"
        'def save(p):\n    save_checkpoint({"lr": np.float64(0.1)}, p)\n',
        [(4, "lr")],
    ),
    (
        "through a saving method",
        "class T:\n    def _write(self, state, path):\n        torch.save(state, path)\n"
        '    def save(self, p):\n        self._write({"when": datetime.date.today()}, path=p)\n',
        [(5, "when")],
    ),
    (
        "a module saving itself",
        "class M(nn.Module):\n    def save(self, p):\n        torch.save(self, p)\n",
        [(3, None)],
    ),
    (
        "fabric.save numpy",
        'def save(fabric, p):\n    fabric.save(p, {"step": np.int64(3)})\n',
        [(2, "step")],
    ),
    (
        "accelerator.save",
        'def save(accelerator, p):\n    accelerator.save({"p": Path(".")}, p)\n',
        [(2, "p")],
    ),
    (
        "the save's own pickle_module is no load",
        'import pickle\ndef save(p):\n    torch.save({"m": np.mean([1.0])}, p, pickle_module=pickle)\n'
        "def load(p):\n    return torch.load(p)\n",
        [(3, "m")],
    ),
    (
        "a load that passes pickle_module and weights_only=True",
        'import pickle\ndef save(p):\n    torch.save({"m": np.mean([1.0])}, p)\n'
        "def load(p):\n    return torch.load(p, pickle_module=pickle, weights_only=True)\n",
        [(3, "m")],
    ),
    (
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set to 0",
        'os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "0"\n'
        'def save(p):\n    torch.save({"m": np.mean([1.0])}, p)\n',
        [(3, "m")],
    ),
]

VALID = [
    ("state_dict", 'def save(p):\n    torch.save({"m": Net().state_dict()}, p)\n'),
    ("item", 'def save(p):\n    torch.save({"m": np.mean([1.0]).item()}, p)\n'),
    ("float()", 'def save(p):\n    torch.save({"m": float(np.mean([1.0]))}, p)\n'),
    (
        "vars",
        'def save(p):\n    a = argparse.ArgumentParser().parse_args()\n    torch.save({"a": vars(a)}, p)\n',
    ),
    (
        "to_container",
        'def save(p):\n    torch.save({"c": OmegaConf.to_container(OmegaConf.create({}))}, p)\n',
    ),
    ("str(path)", 'def save(p):\n    torch.save({"p": str(Path(p))}, p)\n'),
    (
        "OrderedDict, Counter, set",
        'def save(p):\n    torch.save({"o": collections.OrderedDict(), "c": collections.Counter(), "s": {1}}, p)\n',
    ),
    (
        "rebound to a float",
        'def save(p):\n    x = np.mean([1.0])\n    x = float(x)\n    torch.save({"x": x}, p)\n',
    ),
    ("unknown parameter", 'def save(args, p):\n    torch.save({"args": args}, p)\n'),
    ("enum value", 'def save(p):\n    torch.save({"m": Mode.TRAIN.value}, p)\n'),
    (
        "fabric converts modules",
        'def save(fabric, p):\n    fabric.save(p, {"model": Net(), "opt": torch.optim.SGD([], lr=0.1)})\n',
    ),
    (
        "not a writer",
        "def save(p):\n    np.save(p, np.zeros(3))\n    model = Net()\n    model.save(p)\n",
    ),
    (
        "suppressed",
        'def save(p):\n    torch.save({"m": np.mean([1.0])}, p)  # ckpt: ignore[CKPT010]\n',
    ),
    (
        "same-file load opts out",
        'def save(p):\n    torch.save({"m": np.mean([1.0])}, p)\n'
        "def load(p):\n    return torch.load(p, weights_only=False)\n",
    ),
    (
        "same-file load opts out through a spread dict, on new torch only",
        'def save(p):\n    torch.save({"m": np.mean([1.0])}, p)\n'
        "def load(p):\n"
        "    kwargs = {'weights_only': False} if new_torch() else {}\n"
        "    return torch.load(p, map_location='cpu', **kwargs)\n",
    ),
    (
        "same-file load opts out through dict(weights_only=False)",
        'def save(p):\n    torch.save({"m": np.mean([1.0])}, p)\n'
        "def load(p):\n    return torch.load(p, **dict(weights_only=False))\n",
    ),
    (
        "registered dataclass",
        'torch.serialization.add_safe_globals([Cfg])\ndef save(p):\n    torch.save({"c": Cfg()}, p)\n',
    ),
    (
        "a list of plain values",
        'def save(p, xs):\n    h = []\n    for x in xs:\n        h.append(float(x))\n    torch.save({"h": h}, p)\n',
    ),
    (
        "a helper that saves something else",
        'def helper(state, path):\n    torch.save({"ok": 1}, path)\ndef save(p):\n    helper({"lr": np.float64(0.1)}, p)\n',
    ),
    (
        "a class that pickles its own way",
        "class C:\n    def __reduce__(self):\n        return (dict, ())\n    def save(self, p):\n        torch.save(self, p)\n",
    ),
    ("nn.Parameter", 'def save(p):\n    torch.save({"w": nn.Parameter(torch.zeros(2))}, p)\n'),
    (
        "same-file load passes a pickle_module (weights_only then defaults to False)",
        'import pickle\ndef save(p):\n    torch.save({"m": np.mean([1.0])}, p)\n'
        "def load(p):\n    return torch.load(p, pickle_module=pickle)\n",
    ),
    (
        "the project sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD",
        'os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"\n'
        'def save(p):\n    torch.save({"m": np.mean([1.0])}, p)\n',
    ),
    (
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD by setdefault",
        'def main(p):\n    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "true")\n'
        '    torch.save({"m": np.mean([1.0])}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert _rows(source) == expected


@pytest.mark.parametrize(("name", "source"), VALID, ids=[c[0] for c in VALID])
def test_valid(name: str, source: str) -> None:
    assert _wo(source) == []


def test_registration_does_not_silence_a_defaultdict() -> None:
    """Registered, a non-empty defaultdict still fails to load (measured): still reported."""
    source = (
        "torch.serialization.add_safe_globals([collections.defaultdict])\n"
        'def save(p):\n    torch.save({"d": collections.defaultdict(list)}, p)\n'
    )
    assert _rows(source) == [(3, "d")]


def test_json_fields_of_a_module_function_and_a_method() -> None:
    module = _wo('def save(p):\n    torch.save({"m": np.mean([1.0])}, p)\n')[0]
    data = finding_to_dict(module)
    assert data["class"] is None and data["attribute"] == "m"
    assert data["location"] == {"row": HEADER.count("\n") + 2, "column": 22}
    assert "numpy scalar" in data["message"] and ".item()" in data["message"]
    whole = _wo("def save(p):\n    torch.save(Net(), p)\n")[0]
    assert finding_to_dict(whole)["attribute"] is None
    method = _wo("class T:\n    def save(self, p):\n        torch.save(Net(), p)\n")[0]
    assert method.class_name == "T"


def test_other_rules_keep_their_fields() -> None:
    found = analyze_text(
        "import threading\nfrom torch import nn\nclass M(nn.Module):\n    def __init__(self):\n        self.lock = threading.Lock()\n"
    )
    assert [(f.code, f.class_name, f.attribute) for f in found] == [("CKPT005", "M", "lock")]


def test_an_ignored_ckpt010_reads_no_block_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--ignore CKPT010` costs nothing: no module's writers are looked for."""
    from ckpt_lsp.analysis import analyzer

    def unexpected(*args: object) -> object:
        raise AssertionError("CKPT010 read a block while ignored")

    (tmp_path / "save.py").write_text(SAVE)
    ignored = Config(root=tmp_path).with_overrides(ignore="CKPT010")
    monkeypatch.setattr(analyzer, "module_writers", unexpected)
    assert run_check([tmp_path], ignored, use_cache=False, jobs=1).errors == []
    assert run_check([tmp_path], Config(root=tmp_path), use_cache=False, jobs=1).errors != []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))


SAVE = """\
import numpy as np
import torch
def save(out):
    torch.save({"m": np.mean([1.0])}, out + "/last.pt")
"""


def test_a_load_in_another_module_of_the_same_file_opts_out(tmp_path: Path) -> None:
    load = (
        "import torch\ndef resume(d):\n    return torch.load(d + '/last.pt', weights_only=False)\n"
    )
    other = (
        "import torch\ndef resume(d):\n    return torch.load(d + '/other.pt', weights_only=False)\n"
    )
    _write(tmp_path, {"train.py": SAVE, "resume.py": other, "pyproject.toml": ""})
    assert [
        f.attribute for f in run_check([tmp_path], Config(root=tmp_path), use_cache=False).findings
    ] == ["m"]
    _write(tmp_path, {"resume.py": load})
    assert run_check([tmp_path], Config(root=tmp_path), use_cache=False).findings == []


def test_a_project_that_forces_weights_only_off_reports_no_save(tmp_path: Path) -> None:
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set in any module (an entry script, typically) makes
    every default `torch.load` of the process skip weights-only loading."""
    entry = 'import os\nos.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"\nimport train\n'
    _write(
        tmp_path, {"train.py": SAVE, "main.py": entry.replace('"1"', '"0"'), "pyproject.toml": ""}
    )
    assert [
        f.attribute for f in run_check([tmp_path], Config(root=tmp_path), use_cache=False).findings
    ] == ["m"]
    _write(tmp_path, {"main.py": entry})
    assert run_check([tmp_path], Config(root=tmp_path), use_cache=False).findings == []


def test_the_cache_depends_on_the_file_whose_load_opts_out(tmp_path: Path) -> None:
    load = (
        "import torch\ndef resume(d):\n    return torch.load(d + '/last.pt', weights_only=False)\n"
    )
    _write(tmp_path, {"train.py": SAVE, "resume.py": load, "pyproject.toml": ""})
    config = Config(root=tmp_path)
    assert run_check([tmp_path / "train.py"], config).findings == []
    # the load changes: the save's cached "nothing" must not survive
    _write(tmp_path, {"resume.py": load.replace("weights_only=False", "weights_only=True")})
    assert [f.attribute for f in run_check([tmp_path / "train.py"], config).findings] == ["m"]
    _write(tmp_path, {"resume.py": load})
    assert run_check([tmp_path / "train.py"], config).findings == []


def test_the_editor_analyzer_memoizes_and_sees_other_files(tmp_path: Path) -> None:
    index = ProjectIndex(tmp_path)
    analyzer = Analyzer(index=index)
    train = str(tmp_path / "train.py")
    first = analyzer.analyze(train, SAVE).findings
    assert [f.attribute for f in first] == ["m"]
    # a line added above moves the finding with the block
    moved = analyzer.analyze(train, "\n" + SAVE).findings
    assert [f.location.row for f in moved] == [first[0].location.row + 1]
    index.add_source(
        tmp_path / "resume.py",
        "import torch\ndef r(d):\n    return torch.load(d + '/last.pt', weights_only=False)\n",
    )
    assert analyzer.analyze(train, SAVE).findings == []


FIXABLE = """\
import argparse
import os
from pathlib import Path
import numpy as np
import torch
from torch import nn
import omegaconf


def save_all(out_dir):
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    args = argparse.ArgumentParser().parse_args([])
    cfg = omegaconf.OmegaConf.create({"lr": 0.1})
    path = os.path.join(out_dir, "all.pt")
    torch.save(
        {
            "loss": np.mean([0.5, 0.25]),
            "model": model,
            "optimizer": optimizer,
            "args": args,
            "dir": Path(out_dir) / "runs",
            "cfg": cfg,
            "version": torch.__version__,
        },
        path,
    )
    return path


def save_whole(out_dir):
    path = os.path.join(out_dir, "whole.pt")
    torch.save(nn.Sequential(nn.Linear(2, 2)), path)
    return path
"""


@pytest.mark.skipif(importlib.util.find_spec("omegaconf") is None, reason="needs omegaconf")
def test_fixed_saves_load_under_the_default_torch_load(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    findings = [f for f in analyze_text(FIXABLE, "fixable.py") if f.code == "CKPT010"]
    assert {f.fix_mode for f in findings} == {"item", "state_dict", "vars", "str", "to_container"}
    assert len(findings) == 8
    fixed = fix_file_source(FIXABLE, findings)
    assert "omegaconf.OmegaConf.to_container(cfg)" in fixed
    assert [f for f in analyze_text(fixed, "fixable.py") if f.code == "CKPT010"] == []
    assert fix_file_source(fixed, analyze_text(fixed, "fixable.py")) == fixed
    module_path = tmp_path / "fixable_fixed.py"
    module_path.write_text(fixed)
    spec = importlib.util.spec_from_file_location("fixable_fixed", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fixable_fixed"] = module
    try:
        spec.loader.exec_module(module)
        for save in (module.save_all, module.save_whole):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.load(save(str(tmp_path)))  # the default: weights_only=True
    finally:
        sys.modules.pop("fixable_fixed", None)


def test_to_container_adds_the_import_only_when_missing() -> None:
    source = 'from omegaconf import DictConfig\nimport torch\ndef save(cfg: DictConfig, p):\n    torch.save({"cfg": cfg}, p)\n'
    fixed = fix_file_source(source, analyze_text(source))
    assert fixed.splitlines()[:3] == [
        "from omegaconf import DictConfig",
        "import torch",
        "from omegaconf import OmegaConf",
    ]
    assert '"cfg": OmegaConf.to_container(cfg)' in fixed
    aliased = "from omegaconf import OmegaConf as OC\n" + source
    assert '"cfg": OC.to_container(cfg)' in fix_file_source(aliased, analyze_text(aliased))


def test_no_fix_where_the_loadable_form_is_not_certain() -> None:
    source = 'import numpy as np\nimport torch\ndef save(a, p):\n    torch.save({"m": np.mean(a, axis=0), "arr": np.zeros(3)}, p)\n'
    findings = analyze_text(source)
    assert [f.fix_mode for f in findings] == ["none", "none"]
    assert fix_file_source(source, findings) == source


def test_json_report_carries_the_value_fix(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "t.py").write_text(SAVE)
    proc = __import__("subprocess").run(
        [sys.executable, "-m", "ckpt_lsp", "--check", "--no-cache", "--format", "json", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={
            **__import__("os").environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "server"),
        },
    )
    (row,) = json.loads(proc.stdout)
    assert row["class"] is None and row["attribute"] == "m"
    assert row["fix"]["edits"][0]["content"] == "np.mean([1.0]).item()"


def test_a_registration_through_a_local_list_counts() -> None:
    """transformers registers numpy's reconstructor through a list built in a helper."""
    source = (
        "def safe():\n    allow = [np.dtype]\n    allow += [np.ndarray]\n"
        "    return torch.serialization.safe_globals(allow)\n"
        'def save(p):\n    torch.save({"rng": np.random.get_state()}, p)\n'
    )
    assert _rows(source) == []
    assert _rows(source.replace("allow += [np.ndarray]", "allow += [np.int8]")) == [(6, "rng")]


def test_a_registration_of_a_module_list_spread_into_a_local_one_counts() -> None:
    """anomalib allowlists its shared types as `[*ANOMALIB_SAFE_GLOBALS, *extra]`."""
    source = (
        "SHARED: list = [np.dtype, np.ndarray]\n"
        "def safe(extra=None):\n    allow = [*SHARED, *(extra or ())]\n"
        "    return torch.serialization.safe_globals(allow)\n"
        'def save(p):\n    torch.save({"rng": np.random.get_state()}, p)\n'
    )
    assert _rows(source) == []
    assert _rows(source.replace("np.dtype, np.ndarray", "np.int8")) == [(6, "rng")]


def test_sarif_and_github_reports_carry_a_module_function_finding(tmp_path: Path) -> None:
    from ckpt_lsp.report import github, sarif

    finding = _wo('def save(p):\n    torch.save({"m": np.mean([1.0])}, p)\n')[0]
    result = json.loads(sarif.render([finding], [], root=tmp_path))["runs"][0]["results"][0]
    assert result["ruleId"] == "CKPT010"
    assert result["properties"] == {"class": None, "attribute": "m"}
    assert result["locations"][0]["logicalLocations"][0]["name"] == "m"
    assert "CKPT010" in github.render([finding], [])


MORE_INVALID = [
    (
        "a module-level parser",
        'parser = argparse.ArgumentParser()\ndef save(p):\n    args = parser.parse_args()\n    torch.save({"args": args}, p)\n',
        [(4, "args")],
    ),
    (
        "a deep copy of a model",
        'import copy\ndef save(p):\n    torch.save({"ema": copy.deepcopy(Net())}, p)\n',
        [(3, "ema")],
    ),
    (
        "a fitted scaler's arrays",
        "from sklearn.preprocessing import StandardScaler\ndef save(p, x):\n    s = StandardScaler().fit(x)\n"
        '    torch.save({"mean": s.mean_, "scaler": s}, p)\n',
        [(4, "mean"), (4, "scaler")],
    ),
]


@pytest.mark.parametrize(
    ("name", "source", "expected"), MORE_INVALID, ids=[c[0] for c in MORE_INVALID]
)
def test_more_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert _rows(source) == expected


def test_a_container_refused_whole_is_reported_once() -> None:
    """The oracle's rule: a defaultdict fails as one value, at the torch.save argument."""
    source = (
        "def save(p):\n    ck = collections.defaultdict(dict)\n"
        '    ck["lr"] = np.float64(0.1)\n    torch.save(ck, p)\n'
    )
    assert _rows(source) == [(4, None)]


def test_a_history_dict_whose_lists_numpy_values_are_appended_to() -> None:
    source = (
        "def save(p, xs):\n"
        '    history = {"loss": [], "acc": []}\n'
        "    for x in xs:\n"
        '        history["acc"].append(np.mean(x))\n'
        '        history["loss"].append(float(x))\n'
        '    torch.save({"history": history}, p)\n'
    )
    found = _wo(source)
    assert [(f.location.row - HEADER.count("\n"), f.attribute) for f in found] == [(2, "acc")]
    assert found[0].location.column == len('    history = {"loss": [], "acc": ') + 1


# Families a blind round found: each INVALID value is refused by the default torch.load (torch
# 2.13), each VALID one loads.
FAMILY_INVALID = [
    (
        "numpy calls the catalog had missed: trapezoid, bincount, unique",
        'def save(p):\n    torch.save({"auc": np.trapezoid([1.0, 2.0], dx=0.1),'
        ' "n": np.bincount([0, 1]), "u": np.unique([1, 1])}, p)\n',
        [(2, "auc"), (2, "n"), (2, "u")],
    ),
    (
        "a numpy finfo field",
        'def save(p):\n    torch.save({"eps": np.finfo(np.float32).eps}, p)\n',
        [(2, "eps")],
    ),
    (
        "a seeded torch Generator and a RandomState's get_state",
        "def save(p):\n    g = torch.Generator().manual_seed(1)\n"
        '    torch.save({"g": g, "s": np.random.RandomState(7).get_state()}, p)\n',
        [(3, "g"), (3, "s")],
    ),
    (
        "names unpacked from a helper's tuple of arrays, and from a tuple display",
        "def evaluate():\n    return np.asarray([0.1]), np.asarray([0.2])\n"
        "def save(p):\n    losses, accs = evaluate()\n    a, b = np.mean(losses), 1.0\n"
        '    torch.save({"best": accs.max(), "worst": losses[0], "all": losses, "a": a}, p)\n',
        [(6, "best"), (6, "worst"), (6, "all"), (6, "a")],
    ),
    (
        "builtins and statistics over numpy values keep numpy",
        "import statistics\ndef save(p):\n    a = np.asarray([0.1, 0.7])\n"
        '    torch.save({"r": round(a.min(), 4), "m": max(0.5, a[1]), "s": sum(a),'
        ' "mean": statistics.mean(a)}, p)\n',
        [(4, "r"), (4, "m"), (4, "s"), (4, "mean")],
    ),
    (
        "classes and functions saved as values, and a partial",
        "import functools\ndef warmup(step):\n    return step\n"
        'def save(p):\n    torch.save({"cls": Net, "fn": warmup, "opt": torch.optim.AdamW,'
        ' "act": nn.GELU, "sched": functools.partial(warmup)}, p)\n',
        [(5, "cls"), (5, "fn"), (5, "opt"), (5, "act"), (5, "sched")],
    ),
    (
        "a difference of datetimes is a timedelta",
        "def save(p):\n    t0 = datetime.datetime(2024, 5, 1)\n"
        "    t1 = t0 + datetime.timedelta(hours=3)\n"
        '    torch.save({"took": t1 - t0}, p)\n',
        [(4, "took")],
    ),
    (
        "a submodule of a Sequential, and an AveragedModel",
        "def save(p):\n    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())\n"
        "    ema = torch.optim.swa_utils.AveragedModel(model)\n"
        '    torch.save({"head": model[0], "ema": ema}, p)\n',
        [(4, "head"), (4, "ema")],
    ),
    (
        "numpy compared or scaled with a local bound to a number",
        "def save(p):\n    a = np.asarray([0.1, 0.7])\n    best = 0.5\n    scale = 100\n"
        '    torch.save({"improved": a.min() < best, "pct": a[0] * scale}, p)\n',
        [(5, "improved"), (5, "pct")],
    ),
    (
        "sub-configs of a config built from a dict display, through a helper",
        "def load_config():\n"
        '    return OmegaConf.create({"model": {"hidden": 32}, "optim": {"betas": [0.9, 0.99]}})\n'
        "def save(p):\n    cfg = load_config()\n"
        '    torch.save({"o": cfg.optim, "b": cfg.optim.betas, "m": cfg.model}, p)\n',
        [(5, "o"), (5, "b"), (5, "m")],
    ),
    (
        "a helper's loop over the numpy array a call passes (an EMA), and a default factor",
        "def smoothed(values, beta=0.9):\n    avg = 0.0\n    for v in values:\n"
        "        avg = beta * avg + (1 - beta) * v\n    return avg\n"
        "def scaled(x, k=100):\n    return x * k\n"
        "def save(p):\n    a = np.asarray([0.1, 0.7])\n"
        '    torch.save({"ema": smoothed(a), "pct": scaled(a.mean())}, p)\n',
        [(10, "ema"), (10, "pct")],
    ),
    (
        "array-valued library calls: convolve, a confusion matrix, per-class scores",
        "from sklearn.metrics import confusion_matrix, f1_score\n"
        "def save(p, yt, yp):\n"
        '    torch.save({"s": np.convolve([1.0, 2.0], [0.5, 0.5]), "cm": confusion_matrix(yt, yp),'
        ' "f1": f1_score(yt, yp, average=None)}, p)\n',
        [(3, "s"), (3, "cm"), (3, "f1")],
    ),
    (
        "instances of module-level namedtuple classes (both factories)",
        "import collections, typing\n"
        'Result = collections.namedtuple("Result", ["loss", "acc"])\n'
        'Span = typing.NamedTuple("Span", [("a", int)])\n'
        "def save(p):\n"
        '    torch.save({"r": Result(0.5, 1.0), "s": Span(1)}, p)\n',
        [(5, "r"), (5, "s")],
    ),
    (
        "fields a project dataclass annotates with an Enum class or Path",
        "import enum, pathlib\nfrom dataclasses import dataclass\n"
        "class Sched(str, enum.Enum):\n    COS = 'cos'\n"
        "@dataclass\nclass Args:\n    sched: Sched = Sched.COS\n"
        "    root: pathlib.Path = pathlib.Path('/tmp')\n"
        "def save(p):\n    args = Args()\n"
        '    torch.save({"s": args.sched, "r": args.root}, p)\n',
        [(11, "s"), (11, "r")],
    ),
    (
        "a key of a helper's returned dict display",
        "def evaluate(losses):\n    return {'loss': np.mean(losses), 'n': 12}\n"
        "def save(p):\n    metrics = evaluate([0.1])\n    ckpt = {}\n"
        '    ckpt["best"] = metrics["loss"]\n    torch.save(ckpt, p)\n'
        "def save2(p):\n    m = evaluate([0.1])\n"
        '    torch.save({"l": m["loss"]}, p)\n',
        [(6, "best"), (10, "l")],
    ),
    (
        "names a starred target leaves to a helper's tuple elements",
        "def run():\n    y = torch.zeros(3)\n    return 1, 2.0, 3, y.numpy(), np.asarray([1])\n"
        "def save(p):\n    n, *_, yt, yp = run()\n"
        '    torch.save({"c": (yt == yp).sum(), "y": yt}, p)\n',
        [(6, "c"), (6, "y")],
    ),
    (
        "argparse arguments converted by type=Path: a str default, a Path default, positional",
        "import argparse\nfrom pathlib import Path\n"
        "def build():\n    p = argparse.ArgumentParser()\n"
        '    p.add_argument("--data-root", type=Path, default="/data")\n'
        '    p.add_argument("--out", type=Path, default=Path("/o"))\n'
        '    p.add_argument("src", type=Path)\n    return p\n'
        "def save(p):\n    args = build().parse_args()\n"
        '    torch.save({"d": args.data_root, "o": args.out, "s": args.src}, p)\n',
        [(11, "d"), (11, "o"), (11, "s")],
    ),
    (
        "an attribute __init__ sets from a constructor, or from what the call passes",
        "class Cfg:\n    pass\n"
        "class Net(nn.Module):\n    def __init__(self, config=None, loss=None):\n"
        "        super().__init__()\n        self.config = config or Cfg()\n        self.loss = loss\n"
        "def save(p):\n    model = Net(loss=nn.MSELoss())\n"
        '    torch.save({"c": model.config, "l": model.loss}, p)\n',
        [(10, "c"), (10, "l")],
    ),
    (
        "a numpy scalar's reductions, an estimator's transforms, sklearn's class weights",
        "from sklearn.preprocessing import LabelEncoder\n"
        "from sklearn.utils.class_weight import compute_class_weight\n"
        "def save(p, r, y):\n    rw = np.random.default_rng(1).normal(size=9)\n"
        '    torch.save({"m": np.abs(rw).max(), "t": LabelEncoder().fit_transform(r).max(),'
        ' "w": compute_class_weight("balanced", classes=np.unique(y), y=y)}, p)\n',
        [(5, "m"), (5, "t"), (5, "w")],
    ),
    (
        "a local dict display's item under a constant key",
        "from sklearn.preprocessing import LabelEncoder\n"
        'def save(p, r):\n    enc = {"r": LabelEncoder().fit(r), "n": 3}\n'
        '    torch.save({"e": enc["r"], "n": enc["n"]}, p)\n',
        [(4, "e")],
    ),
    (
        "a pandas column's reductions and its mode's item are numpy scalars",
        "import pandas as pd\n"
        'def save(p):\n    df = pd.DataFrame({"ap": [0.1, 0.5], "n": [5, 9]})\n'
        '    torch.save({"m": df["ap"].mean(), "s": df["n"].sum(), "x": df["n"].max(),'
        ' "mode": df["n"].mode()[0], "c": df["ap"].count(), "q": df["ap"].quantile()}, p)\n',
        [(4, "m"), (4, "s"), (4, "x"), (4, "mode"), (4, "c"), (4, "q")],
    ),
    (
        "a pandas frame, column, uniques, aggregate, Index and Timestamps are refused whole",
        "import pandas as pd\n"
        "def save(p, path):\n    df = pd.read_csv(path)\n"
        '    torch.save({"df": df, "col": df["ap"], "u": df["tag"].unique(),'
        ' "agg": df.groupby("tag").agg("mean"), "cols": df.columns,'
        ' "ts": pd.Timestamp("2024-01-01"), "dt": pd.Timestamp.now() - pd.Timestamp("2024-01-01"),'
        ' "sub": df[["ap", "n"]]}, p)\n',
        [
            (4, "df"),
            (4, "col"),
            (4, "u"),
            (4, "agg"),
            (4, "cols"),
            (4, "ts"),
            (4, "dt"),
            (4, "sub"),
        ],
    ),
    (
        "numpy reductions and ufuncs the catalog had missed",
        "def save(p, sr=8000):\n    a = np.asarray([1.0, 5.0])\n"
        '    torch.save({"g": np.gcd(16000, sr), "r": np.ptp(a), "m": np.nanmedian(a),'
        ' "k": np.count_nonzero(a), "l": np.lcm(4, 6)}, p)\n',
        [(3, "g"), (3, "r"), (3, "m"), (3, "k"), (3, "l")],
    ),
    (
        "the items of a numpy array: a comprehension's, sorted()'s, list()'s",
        "def save(p):\n    thr = np.linspace(0.5, 0.95, 10)\n"
        '    torch.save({"c": [t for t in thr if t <= 0.75], "s": sorted(thr),'
        ' "l": list(thr), "d": {t for t in thr}}, p)\n',
        [(3, "c"), (3, "s"), (3, "l"), (3, "d")],
    ),
    (
        "a frame a helper returns, and pd.factorize's uniques unpacked through a helper",
        "import pandas as pd\n"
        'def load():\n    return pd.DataFrame({"user_id": [3, 1, 3]})\n'
        'def factorize(df):\n    codes, uniques = pd.factorize(df["user_id"])\n'
        "    return codes, uniques\n"
        "def save(p):\n    df = load()\n    codes, uniques = factorize(df)\n"
        '    torch.save({"max": df["user_id"].max(), "vocab": uniques, "codes": codes}, p)\n',
        [(10, "max"), (10, "vocab"), (10, "codes")],
    ),
    (
        "a frame indexed by time: its rows sliced, through a helper's tuple, keep Timestamps",
        "import pandas as pd\n"
        'def series():\n    idx = pd.date_range("2024-01-01", periods=96, freq="h")\n'
        '    return pd.DataFrame({"y": np.linspace(1.0, 2.0, 96)}, index=idx)\n'
        "def split(df):\n    cut = int(len(df) * 0.8)\n    return df.iloc[:cut], df.iloc[cut:]\n"
        "def save(p):\n    df = series()\n    train, val = split(df)\n"
        '    torch.save({"last": train.index[-1], "max": df.iloc[:-6].index.max(),'
        ' "step": df.index[1] - df.index[0], "std": df["y"].iloc[-24:].std()}, p)\n',
        [(11, "last"), (11, "max"), (11, "step"), (11, "std")],
    ),
    (
        "a column of numbers' max and items, and a count of values, are numpy scalars",
        "import pandas as pd\n"
        "def save(p):\n    r = np.random.default_rng(0)\n"
        '    df = pd.DataFrame({"cls": ["a", "b"], "ap": [0.1, 0.5], "n": r.integers(1, 9, size=2)})\n'
        '    torch.save({"ap": df["ap"].max(), "n": df.dropna()["n"].min(), "c": df["cls"].value_counts()["a"],'
        ' "first": df["ap"].sort_values()[0]}, p)\n',
        [(5, "ap"), (5, "n"), (5, "c"), (5, "first")],
    ),
    (
        "a builtin over a generator of a numpy array's items, enumerate's and zip's items",
        "def save(p, names):\n    arr = np.linspace(0.1, 0.9, 5)\n"
        '    torch.save({"s": sum(t for t in arr), "m": max(t for t in arr if t > 0.2),'
        ' "e": [t for i, t in enumerate(arr) if i % 2], "z": [a for a, n in zip(arr, names)]}, p)\n',
        [(3, "s"), (3, "m"), (3, "e"), (3, "z")],
    ),
    (
        "a frame's row by position, a number column's last item, dtypes, a Timestamp's date",
        "import pandas as pd\n"
        'def save(p):\n    df = pd.DataFrame({"a": [1.5, 2.5], "s": ["x", "y"]})\n'
        '    ts = pd.Timestamp("2024-01-01")\n'
        '    torch.save({"row": df.iloc[-1], "last": df["a"].iloc[-1], "dt": df.dtypes,'
        ' "d": ts.date()}, p)\n',
        [(5, "row"), (5, "last"), (5, "dt"), (5, "d")],
    ),
    (
        "a generator's integer without a size, through a helper's dict; statistics and random",
        "import random, statistics\n"
        "def augment(rng):\n"
        '    return {"snr": rng.integers(5, 20), "gain": rng.uniform(-6.0, 6.0)}\n'
        "def save(p):\n    rng = np.random.default_rng(0)\n    aug = augment(rng)\n"
        "    a = np.asarray([1, 2, 2])\n"
        '    torch.save({"snr": aug["snr"], "n": rng.integers(3), "v": statistics.variance(a),'
        ' "mode": statistics.mode(a), "c": random.choice(a)}, p)\n',
        [(8, "snr"), (8, "n"), (8, "v"), (8, "mode"), (8, "c")],
    ),
    (
        "a column of numbers' values, uniques and array hold numpy items",
        "import pandas as pd\n"
        'def save(p):\n    df = pd.DataFrame({"ap": [1.5, 2.5], "tag": ["x", "y"]})\n'
        '    torch.save({"m": df["ap"].values.mean(), "u": sorted(df["ap"].unique()),'
        ' "c": [v for v in df["ap"].to_numpy()]}, p)\n',
        [(4, "m"), (4, "u"), (4, "c")],
    ),
    (
        "more numpy array reductions and a numpy scalar rounded",
        "import pandas as pd\n"
        "def save(p):\n    a = np.asarray([[0.5, 1.5], [2.0, 0.0]])\n"
        '    df = pd.DataFrame({"ap": [1.5, 2.5]})\n'
        '    torch.save({"v": a.var(), "i": a.argmin(), "any": (a > 1).any(),'
        ' "r": df["ap"].mean().round(3), "flat": a.round(1).ravel()}, p)\n',
        [(5, "v"), (5, "i"), (5, "any"), (5, "r"), (5, "flat")],
    ),
    (
        "a set of a numpy array's items, and a set filled in a loop over one",
        "def save(p, y):\n    a = np.arange(3)\n    seen = set(a)\n    picked = set()\n"
        "    for i in np.flatnonzero(y):\n        picked.add(i)\n"
        '    torch.save({"s": seen, "p": picked, "d": set(np.arange(2))}, p)\n',
        [(7, "s"), (7, "p"), (7, "d")],
    ),
    (
        "a helper's dict comprehension of numpy rows, one row and a tuple of it",
        "def read(ids):\n    rng = np.random.default_rng(0)\n"
        "    return {pid: rng.uniform(size=3) for pid in ids}\n"
        "def save(p, ids):\n    spacings = read(ids)\n"
        '    torch.save({"all": spacings, "one": spacings[ids[0]],'
        ' "t": tuple(spacings[ids[0]])}, p)\n',
        [(6, "all"), (6, "one"), (6, "t")],
    ),
    (
        "a frame built from records or a dict of rows: a column's mean is a numpy scalar",
        "import pandas as pd\n"
        "def save(p, rows, recs):\n    df = pd.DataFrame.from_dict(rows, orient='index')\n"
        "    dr = pd.DataFrame.from_records(recs)\n"
        '    torch.save({"m": df["dice"].mean(), "r": dr["dice"].mean()}, p)\n',
        [(5, "m"), (5, "r")],
    ),
    (
        "a dict filled in a loop with numpy values under keys not constant, and its values",
        "def save(p, preds, y):\n    scores = {}\n    for k, q in enumerate(preds):\n"
        "        scores[k] = np.mean(np.asarray(q) == y)\n"
        '    torch.save({"best": max(scores.values()), "v": list(scores.values())}, p)\n',
        [(5, "best"), (5, "v")],
    ),
    (
        "a list of dict displays holding numpy values, and a helper's tuple unpacked from a local",
        "def split(n):\n    return np.zeros(n, dtype=bool), np.ones(n, dtype=bool)\n"
        "def save(p, preds):\n    history = []\n    for q in preds:\n"
        '        history.append({"acc": np.mean(np.asarray(q)), "epoch": 1})\n'
        "    masks = split(4)\n    tr, va = masks\n"
        '    torch.save({"h": history, "va": va}, p)\n',
        [(9, "h"), (9, "va")],
    ),
]
FAMILY_VALID = [
    (
        # (a local of __init__ holding a module is followed now: test_object_effects.py)
        "__init__ attributes from a keyword-only parameter not passed",
        "config = nn.Linear(2, 2)\n"
        "class Net(nn.Module):\n    def __init__(self, *, config=None):\n"
        "        super().__init__()\n        self.config = config\n"
        "def save(p):\n    model = Net()\n"
        '    torch.save({"c": model.config}, p)\n',
    ),
    (
        "attributes __init__ sets that load, are set again, or are replaced after building",
        "class Cfg:\n    pass\n"
        "class Net(nn.Module):\n    def __init__(self, config=None, lr=0.1, flag=False):\n"
        "        super().__init__()\n        self.config = config or Cfg()\n        self.lr = lr\n"
        "        self.extra = Cfg()\n        if flag:\n            self.other = Cfg()\n"
        "    def reset(self):\n        self.extra = None\n"
        "def save(p):\n    a = Net(config={'n': 1})\n    b = Net()\n    b.config = {'n': 2}\n"
        '    torch.save({"a": a.config, "b": b.config, "lr": a.lr, "e": a.extra, "o": a.other}, p)\n',
    ),
    (
        "argparse arguments that load: no default, a non-string default, no type, cast",
        "import argparse\nfrom pathlib import Path\n"
        "def build():\n    p = argparse.ArgumentParser()\n"
        '    p.add_argument("--a", type=Path)\n    p.add_argument("--b", type=Path, default=0)\n'
        '    p.add_argument("--c", default="/c")\n    p.add_argument("--d", type=Path, default="/d")\n'
        '    p.add_argument("--many", type=Path, nargs="*", default=[])\n    return p\n'
        "def save(p):\n    args = build().parse_args()\n"
        '    torch.save({"a": args.a, "b": args.b, "c": args.c, "d": str(args.d), "m": args.many}, p)\n',
    ),
    (
        "starred targets: the plain elements, the starred list of them, and casts",
        "def run():\n    y = torch.zeros(3)\n    return 1, y.numpy(), np.asarray([1]), 2.0\n"
        "def save(p):\n    n, *mid, last = run()\n    first, *rest = run()\n"
        '    torch.save({"n": n, "l": last, "f": first, "m": len(mid), "r": len(rest),'
        ' "c": int((mid[0] == mid[1]).sum())}, p)\n',
    ),
    (
        "keys of a helper's dict that load, were changed, or differ between returns",
        "def evaluate(losses):\n    return {'loss': np.mean(losses), 'n': 12}\n"
        "def other(flag):\n    if flag:\n        return {'loss': np.mean([1.0])}\n"
        "    return {'loss': 0.5}\n"
        "def save(p):\n    m = evaluate([0.1])\n    a = m['n']\n"
        "    m['loss'] = float(m['loss'])\n    b = m['loss']\n"
        "    k = evaluate([0.1])\n    k.update(loss=1.0)\n"
        "    r = evaluate([0.1])\n    r = {'loss': 1.0}\n    o = other(True)\n"
        '    torch.save({"a": a, "b": b, "k": k["loss"], "r": r["loss"], "o": o["loss"]}, p)\n',
    ),
    (
        "dataclass fields that load: a value, a str default, an Optional, a union",
        "import enum, pathlib\nfrom dataclasses import dataclass\nfrom typing import Optional, Union\n"
        "class Sched(enum.Enum):\n    COS = 'cos'\n"
        "@dataclass\nclass Args:\n    sched: Sched = Sched.COS\n"
        "    out: pathlib.Path = 'runs'\n    best: Optional[Sched] = None\n"
        "    kind: Union[Sched, str] = 'cos'\n    lr: float = 0.1\n"
        "def save(p):\n    args = Args()\n"
        '    torch.save({"s": args.sched.value, "o": args.out, "b": args.best, "k": args.kind,'
        ' "lr": args.lr}, p)\n',
    ),
    (
        "a namedtuple as a dict, a tuple or a field",
        "from collections import namedtuple\n"
        'Result = namedtuple("Result", ["loss", "acc"])\n'
        "def save(p):\n    r = Result(0.5, 1.0)\n"
        '    torch.save({"d": r._asdict(), "t": tuple(r), "l": r.loss}, p)\n',
    ),
    (
        "averaged scores are Python floats; a confusion matrix as a list",
        "from sklearn.metrics import confusion_matrix, f1_score, precision_score\n"
        "def save(p, yt, yp):\n"
        '    torch.save({"f1": f1_score(yt, yp, average="macro"), "p": precision_score(yt, yp),'
        ' "cm": confusion_matrix(yt, yp).tolist()}, p)\n',
    ),
    (
        "casts and torch's own finfo",
        'def save(p):\n    torch.save({"eps": torch.finfo(torch.float32).eps,'
        ' "auc": float(np.trapezoid([1.0, 2.0])), "n": len(np.unique([1, 1])),'
        ' "g": torch.Generator().manual_seed(1).get_state()}, p)\n',
    ),
    (
        "unpacked elements that load, or that differ between returns",
        "def evaluate(flag):\n    if flag:\n        return np.asarray([0.1]), 1.0\n"
        "    return [0.1], 2.0\n"
        "def save(p):\n    losses, n = evaluate(False)\n    a, b = 1.0, np.mean([1.0])\n"
        '    torch.save({"l": losses, "n": n, "a": a, "t": torch.as_tensor(losses)}, p)\n',
    ),
    (
        "round without ndigits, fmean, and builtins over Python numbers",
        "import statistics\ndef save(p, xs):\n    a = np.asarray([0.1, 0.7])\n"
        '    torch.save({"r": round(a.min()), "f": statistics.fmean(a), "m": max(0.5, 0.7),'
        ' "s": sum(xs), "r2": round(0.123, 2)}, p)\n',
    ),
    (
        "names and dtypes of classes, and a local rebinding a class name",
        "def warmup(step):\n    return step\n"
        "def save(p, make):\n    Net = make()\n"
        '    torch.save({"name": warmup.__qualname__, "n": Net, "dt": torch.float32,'
        ' "c": Cfg.__name__, "e": Mode.TRAIN.value}, p)\n',
    ),
    (
        "seconds between datetimes, and a timestamp minus an unknown number",
        "def save(p, t0):\n    t1 = datetime.datetime(2024, 5, 1)\n"
        '    torch.save({"s": (t1 - t1).total_seconds(), "u": t1.timestamp() - t0, "n": 3 - 1}, p)\n',
    ),
    (
        "a submodule's weights, and an item of a project module with its own __getitem__",
        "class Bank(nn.Module):\n    def __getitem__(self, i):\n        return torch.zeros(i)\n"
        "def save(p):\n    model = nn.Sequential(nn.Linear(2, 2))\n"
        '    torch.save({"head": model[0].state_dict(), "row": Bank()[0]}, p)\n',
    ),
    (
        "numpy compared with a number, then cast; a Python number compared",
        "def save(p):\n    a = np.asarray([0.1, 0.7])\n    best = 0.5\n"
        '    torch.save({"improved": bool(a.min() < best), "b": a.min().item() < best,'
        ' "c": 0.1 < best}, p)\n',
    ),
    (
        "plain leaves of a config built from a dict display",
        'def save(p):\n    cfg = OmegaConf.create({"model": {"hidden": 32}, "lr": 0.1})\n'
        '    torch.save({"h": cfg.model.hidden, "lr": cfg.lr}, p)\n',
    ),
    (
        "the same helpers over Python numbers, or cast",
        "def smoothed(values, beta=0.9):\n    avg = 0.0\n    for v in values:\n"
        "        avg = beta * avg + (1 - beta) * v\n    return avg\n"
        "def scaled(x, k=100):\n    return x * k\n"
        "def save(p):\n    a = np.asarray([0.1, 0.7])\n"
        '    torch.save({"ema": smoothed([0.1, 0.7]), "f": float(smoothed(a)),'
        ' "pct": scaled(a.mean().item()), "t": scaled(torch.tensor(a))}, p)\n',
    ),
    (
        "the same reductions, transforms and class weights converted",
        "from sklearn.preprocessing import LabelEncoder\n"
        "from sklearn.utils.class_weight import compute_class_weight\n"
        "def save(p, r, y):\n    rw = np.random.default_rng(1).normal(size=9)\n"
        '    torch.save({"m": float(np.abs(rw).max()), "t": LabelEncoder().fit_transform(r).max().item(),'
        ' "w": torch.from_numpy(compute_class_weight("balanced", classes=np.unique(y), y=y))}, p)\n',
    ),
    (
        "a dict display's item replaced by assignment, or the name rebound",
        "from sklearn.preprocessing import LabelEncoder\n"
        'def save(p, r):\n    enc = {"r": LabelEncoder().fit(r)}\n    enc["r"] = 3\n'
        '    other = {"r": LabelEncoder().fit(r)}\n    other = {"r": 1}\n'
        '    torch.save({"e": enc["r"], "o": other["r"]}, p)\n',
    ),
    (
        "a pandas column's count of uniques, its lists, and reductions made Python numbers",
        "import pandas as pd\n"
        'def save(p):\n    df = pd.DataFrame({"ap": [0.1, 0.5], "n": [5, 9]})\n'
        '    torch.save({"u": df["n"].nunique(), "l": df["ap"].tolist(), "f": float(df["ap"].mean()),'
        ' "i": df["n"].sum().item(), "it": list(df["ap"]), "s": sorted(df["ap"]), "len": len(df),'
        ' "tl": df["n"].unique().tolist()}, p)\n',
    ),
    (
        "a frame's default RangeIndex has int items; a Timestamp made a string",
        "import pandas as pd\n"
        'def save(p):\n    df = pd.DataFrame({"y": [1.0, 2.0]})\n'
        '    ts = pd.date_range("2024-01-01", periods=3, freq="h")\n'
        '    t = pd.DataFrame({"y": [1.0, 2.0, 3.0]}, index=ts)\n'
        '    torch.save({"last": df.index[-1], "row": df.iloc[:1].index[0], "iso": ts[-1].isoformat(),'
        ' "s": str(t.index[0]), "secs": (ts[1] - ts[0]).total_seconds()}, p)\n',
    ),
    (
        "a numpy array's items made Python numbers, and a comprehension over a list",
        "def save(p, names):\n    thr = np.linspace(0.5, 0.95, 10)\n"
        '    torch.save({"c": [round(float(t), 2) for t in thr], "n": [t for t in names],'
        ' "l": thr.tolist(), "shadow": [thr for thr in names]}, p)\n',
    ),
    (
        "a string column's max, mode and items are str; a read column's dtype is not known",
        "import pandas as pd\n"
        'def save(p, path):\n    df = pd.DataFrame({"cls": ["a", "b"], "ap": [0.1, 0.5]})\n'
        "    raw = pd.read_csv(path)\n"
        '    torch.save({"m": df["cls"].max(), "mode": df["cls"].mode()[0], "first": df["cls"][0],'
        ' "raw": raw["date"].max()}, p)\n',
    ),
    (
        "enumerate's indexes, zip's other items, a generator of Python numbers",
        "def save(p, names):\n    arr = np.linspace(0.1, 0.9, 5)\n"
        '    torch.save({"i": [i for i, t in enumerate(arr)], "n": [n for a, n in zip(arr, names)],'
        ' "f": max(float(t) for t in arr), "c": sum(1 for t in arr if t > 0.5)}, p)\n',
    ),
    (
        "a string column's last item, a cell by position, a Timestamp's seconds",
        "import pandas as pd\n"
        'def save(p):\n    df = pd.DataFrame({"a": [1.5, 2.5], "s": ["x", "y"]})\n'
        '    ts = pd.Timestamp("2024-01-01")\n'
        '    torch.save({"s": df["s"].iloc[-1], "cell": df.iloc[0, 1], "t": ts.timestamp()}, p)\n',
    ),
    (
        "a generator's float draws, an integer made int, statistics' floats, a choice of str",
        "import random, statistics\n"
        "def augment(rng):\n"
        '    return {"snr": int(rng.integers(5, 20)), "gain": rng.uniform(-6.0, 6.0)}\n'
        "def save(p):\n    rng = np.random.default_rng(0)\n    aug = augment(rng)\n"
        "    a = np.asarray([1.0, 2.0, 2.5])\n"
        '    torch.save({"snr": aug["snr"], "g": aug["gain"], "f": statistics.fmean(a),'
        ' "sd": statistics.stdev(a), "c": random.choice(["a", "b"]), "r": rng.random()}, p)\n',
    ),
    (
        "a string column's array, uniques and values hold str",
        "import pandas as pd\n"
        'def save(p):\n    df = pd.DataFrame({"ap": [1.5, 2.5], "tag": ["x", "y"]})\n'
        '    torch.save({"s": sorted(df["tag"].to_numpy()), "u": sorted(df["tag"].unique()),'
        ' "v": [v for v in df["tag"].values]}, p)\n',
    ),
    (
        "numpy reductions made Python values, an array made a list",
        "def save(p):\n    a = np.asarray([[0.5, 1.5], [2.0, 0.0]])\n"
        '    torch.save({"v": float(a.var()), "i": int(a.argmin()), "any": bool((a > 1).any()),'
        ' "r": a.mean().round(3).item(), "l": a.round(1).ravel().tolist()}, p)\n',
    ),
    (
        "the keys of a dict of numpy values are what they are; sets of Python numbers",
        "def save(p, preds, y):\n    scores = {}\n    for k, q in enumerate(preds):\n"
        '        scores[f"c{k}"] = float(np.mean(np.asarray(q) == y))\n'
        "    raw = {name: np.float64(0.5) for name in ['a', 'b']}\n"
        '    torch.save({"best": max(raw, key=raw.get), "names": sorted(raw), "s": set(raw),'
        ' "keys": [k for k in raw], "i": {int(i) for i in np.arange(3)},'
        ' "l": set(np.arange(3).tolist()), "sc": scores}, p)\n',
    ),
    (
        "a tensor's item set to a numpy value stays a tensor; dicts of Python values",
        "def split(n):\n    return list(range(n)), [n]\n"
        "def save(p, preds):\n    t = torch.zeros(3)\n    history = []\n    d = {}\n"
        "    for i, q in enumerate(preds):\n        t[i] = np.float64(q)\n"
        '        history.append({"acc": float(np.mean(q)), "epoch": i})\n'
        "        d[i] = float(np.mean(q))\n"
        "    masks = split(4)\n    tr, va = masks\n"
        "    rows = {k: float(v) for k, v in zip('ab', np.arange(2))}\n"
        '    torch.save({"t": t, "h": history, "d": d, "va": va, "tr": tr, "rows": rows}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), FAMILY_INVALID)
def test_family_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), FAMILY_VALID)
def test_family_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name


DRAWS_INVALID = [
    (
        "a choice from a sequence, through a helper's dict and a dataclass built from it",
        "import dataclasses\n"
        'SPACE = {"hidden": [8, 16]}\n'
        "@dataclasses.dataclass\nclass Best:\n    hidden: int = 16\n    score: float = 0.0\n"
        'def sample(rng):\n    return {"hidden": rng.choice(SPACE["hidden"])}\n'
        "def save(p):\n    rng = np.random.default_rng(0)\n    params = sample(rng)\n"
        "    score = np.float64(0.5)\n    best = Best(score=score, **params)\n"
        '    torch.save({"h": best.hidden, "s": best.score, "c": rng.choice(["a", "b"])}, p)\n',
        [(14, "h"), (14, "s"), (14, "c")],
    ),
    (
        "a splitter's fold indexes, called directly or through a local, and one item",
        "from sklearn.model_selection import KFold, StratifiedKFold\n"
        "def save(p, X, y):\n    skf = StratifiedKFold(5)\n"
        "    for fold, (tr, va) in enumerate(skf.split(X, y)):\n"
        '        torch.save({"fold": fold, "val": va, "first": va[0]}, p)\n'
        "    for tr, va in KFold(3).split(X):\n"
        '        torch.save({"train": tr}, p)\n',
        [(5, "val"), (5, "first"), (7, "train")],
    ),
]
DRAWS_VALID = [
    (
        "a choice from a number, a converted dataclass, a default config",
        "import dataclasses\n"
        "@dataclasses.dataclass\nclass Conv:\n    hidden: int = 16\n"
        "    def __post_init__(self):\n        self.hidden = int(self.hidden)\n"
        "def save(p):\n    rng = np.random.default_rng(0)\n"
        "    c = Conv(hidden=rng.choice([8, 16]))\n    d = Conv()\n"
        '    torch.save({"n": rng.choice(10), "c": c.hidden, "d": d.hidden}, p)\n',
    ),
    (
        "a dataclass's numpy field set anew, through setattr or its __dict__",
        "import dataclasses\n"
        "@dataclasses.dataclass\nclass Best:\n    hidden: int = 16\n"
        "def save(p):\n    rng = np.random.default_rng(0)\n"
        "    a = Best(hidden=rng.choice([8, 16]))\n    a.hidden = int(a.hidden)\n"
        "    b = Best(hidden=rng.choice([8, 16]))\n    setattr(b, 'hidden', 3)\n"
        "    c = Best(hidden=rng.choice([8, 16]))\n    vars(c).update(hidden=3)\n"
        '    torch.save({"a": a.hidden, "b": b.hidden, "c": c.hidden}, p)\n',
    ),
    (
        "folds made lists, a splitter rebound, a split of a string",
        "from sklearn.model_selection import KFold\n"
        "def save(p, X, other, line):\n    kf = KFold(5)\n"
        "    for fold, (tr, va) in enumerate(kf.split(X)):\n"
        '        torch.save({"fold": fold, "val": va.tolist(), "n": len(va)}, p)\n'
        "    kf = other\n"
        "    for a, b in kf.split(X):\n"
        '        torch.save({"a": a}, p)\n'
        "    for a, b in line.split(','):\n"
        '        torch.save({"b": b}, p)\n',
    ),
    (
        "numpy's legacy choice of a number is a Python int",
        "def save(p, xs):\n    n = 10\n"
        '    torch.save({"a": np.random.choice(5), "b": np.random.choice(len(xs)),'
        ' "c": np.random.choice(n)}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), DRAWS_INVALID)
def test_draws_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), DRAWS_VALID)
def test_draws_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name
