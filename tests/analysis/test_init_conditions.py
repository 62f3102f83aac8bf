"""Conditional attributes: a hazard that `__init__` stores only under tests on its parameters.

The runtime truth the tables rest on: speechbrain's Conv1d shape, `if weight_norm: self.conv =
weight_norm(self.conv)`, saves whole with `weight_norm=False` and fails with `True` (the last
tests check it). A class is built by callers the project may not show, so a model's own
finding stays conditional (a warning saying when); a call that builds a plain helper class
with constants decides it.
"""

from __future__ import annotations

import io
import pickle
import textwrap
from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text
from ckpt_lsp.config import load_config
from ckpt_lsp.findings import Finding
from ckpt_lsp.report import json as json_report

HEADER = """\
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self, n=2, weight_norm=False, act="relu", use_bn=True, mode="x"):
        super().__init__()
"""


def findings(body: str, config: object = None) -> list[Finding]:
    source = HEADER + textwrap.indent(textwrap.dedent(body), " " * 8)
    return analyze_text(source, "model.py", config=config)  # type: ignore[arg-type]


def shown(body: str) -> list[tuple[str, str, str]]:
    """(attribute, severity, the condition the message names or "") per finding."""
    out = []
    for f in findings(body):
        _, found, rest = f.message.partition(" when ")
        out.append((f.attribute, f.severity, rest.split(":")[0] if found else ""))
    return out


WN = "nn.utils.parametrizations.weight_norm"

# INVALID only for some arguments: a warning that names the condition
CONDITIONAL = [
    # speechbrain.nnet.CNN.Conv1d
    (
        f"self.conv = nn.Conv1d(n, n, 3)\nif weight_norm:\n    self.conv = {WN}(self.conv)",
        [("conv", "warning", "`weight_norm`")],
    ),
    ("if act == 'linear':\n    self.f = lambda x: x", [("f", "warning", "`act == 'linear'`")]),
    ("if not use_bn:\n    self.f = lambda x: x", [("f", "warning", "not `use_bn`")]),
    ("if use_bn is False:\n    self.f = lambda x: x", [("f", "warning", "`use_bn is False`")]),
    (
        "if act == 'relu':\n    self.f = abs\nelif mode in ('a', 'b'):\n    self.f = lambda x: x",
        [("f", "warning", "`act != 'relu'` and `mode in ('a', 'b')`")],
    ),
    # only the else branch stores a hazard
    (
        "if use_bn:\n    self.f = abs\nelse:\n    self.f = lambda x: x",
        [("f", "warning", "not `use_bn`")],
    ),
    # nested guards, and `and`, join their conditions
    (
        "if weight_norm:\n    if act == 'linear':\n        self.f = lambda x: x",
        [("f", "warning", "`weight_norm` and `act == 'linear'`")],
    ),
    (
        "if weight_norm and act == 'linear':\n    self.f = lambda x: x",
        [("f", "warning", "`weight_norm` and `act == 'linear'`")],
    ),
    # a branch that leaves puts the rest under the other side of its test
    ("if not weight_norm:\n    return\nself.f = lambda x: x", [("f", "warning", "`weight_norm`")]),
    # a guard on something else inside one on a parameter: the parameter's is what is known
    (
        "if weight_norm:\n    if torch.cuda.is_available():\n        self.f = lambda x: x",
        [("f", "warning", "`weight_norm`")],
    ),
    # rebound before the test: still conditional (no call decides it, see below)
    (
        "act = act.lower()\nif act == 'linear':\n    self.f = lambda x: x",
        [("f", "warning", "`act == 'linear'`")],
    ),
    # the hazard is the same in two branches that do not cover every path
    (
        "if act == 'a':\n    self.f = lambda x: x\nelif act == 'b':\n    self.f = lambda x: x",
        [("f", "warning", "`act == 'a'`"), ("f", "warning", "`act == 'b'`")],
    ),
]

# INVALID whatever the arguments: a plain error, as before
CERTAIN = [
    ("self.f = lambda x: x", [("f", "error", "")]),
    # an else that stores a hazard too
    (
        "if weight_norm:\n    self.f = lambda x: x\nelse:\n    self.f = lambda x: 2 * x",
        [("f", "error", ""), ("f", "error", "")],
    ),
    (
        "if act == 'a':\n    self.f = lambda x: x\nelif act == 'b':\n    self.f = lambda x: 1\n"
        "else:\n    self.f = lambda x: 2",
        [("f", "error", ""), ("f", "error", ""), ("f", "error", "")],
    ),
    (
        "if use_bn:\n    self.f = lambda x: x\nif not use_bn:\n    self.f = lambda x: 1",
        [("f", "error", ""), ("f", "error", "")],
    ),
    # an unguarded store on another path
    (
        "self.f = lambda x: x\nif weight_norm:\n    self.f = lambda x: 2 * x",
        [("f", "error", ""), ("f", "error", "")],
    ),
    # a guard on something that is not a parameter says nothing about the caller: as before
    ("if torch.cuda.is_available():\n    self.f = lambda x: x", [("f", "error", "")]),
    ("if self.training:\n    self.f = lambda x: x", [("f", "error", "")]),
    ("if n > mode_count():\n    self.f = lambda x: x", [("f", "error", "")]),
    # `or` taken says "one of them": no condition a conjunction can hold
    ("if weight_norm or use_bn:\n    self.f = lambda x: x", [("f", "error", "")]),
    # into a container: the object receives it on the path that leads there (as before)
    (
        "self.hooks = []\nif weight_norm:\n    self.hooks.append(lambda x: x)",
        [("hooks", "error", "")],
    ),
    # a guarded store next to an unguarded one in a container
    (
        "if weight_norm:\n    self.hooks = [lambda x: x]\nelse:\n    self.hooks = []\n"
        "self.hooks.append(lambda x: 1)",
        [("hooks", "error", "")],
    ),
]

# an attribute set from a parameter stands for it; one set twice does not
CONDITIONAL += [
    (
        "self.use_bn = use_bn\nif not self.use_bn:\n    self.f = lambda x: x",
        [("f", "warning", "not `self.use_bn`")],
    ),
    (
        "self.use_bn = use_bn\nif self.use_bn:\n    self.f = abs\nelse:\n    self.f = lambda x: x",
        [("f", "warning", "not `self.use_bn`")],
    ),
]
CERTAIN += [
    (
        "self.use_bn = use_bn\nif n:\n    self.use_bn = False\nif not self.use_bn:\n"
        "    self.f = lambda x: x",
        [("f", "error", "")],
    ),
    (
        "self.wn = weight_norm\nif self.wn:\n    self.f = lambda x: x\nif not weight_norm:\n"
        "    self.f = lambda x: 1",
        [("f", "error", ""), ("f", "error", "")],
    ),
]

VALID = [
    "self.conv = nn.Conv1d(n, n, 3)\nif weight_norm:\n    self.conv = nn.Conv1d(n, n, 1)",
    "if act == 'linear':\n    self.f = abs",
]


@pytest.mark.parametrize(("body", "expected"), CONDITIONAL + CERTAIN)
def test_invalid_says_when(body: str, expected: list[tuple[str, str, str]]) -> None:
    assert shown(body) == expected


@pytest.mark.parametrize("body", VALID)
def test_valid_is_not_flagged(body: str) -> None:
    assert findings(body) == []


def test_message_and_severity_in_json() -> None:
    (finding,) = findings(f"if weight_norm:\n    self.conv = {WN}(nn.Conv1d(n, n, 3))")
    obj = json_report.finding_to_dict(finding)
    assert obj["severity"] == "warning"
    assert obj["code"] == "CKPT009"
    assert obj["message"].startswith(
        "`self.conv` holds a parametrized module (only state_dict() can save it) when "
        "`weight_norm`: torch.save(model), pickle and spawn workers fail"
    )
    # the finding sits where the hazard is made: no factory root to point at
    assert "fix it at the root" not in obj["message"]
    assert obj["related"] == []


def test_conditional_severity_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ckpt-lsp]\nconditional-severity = "information"\n', encoding="utf-8"
    )
    config = load_config(tmp_path)
    got = findings("if weight_norm:\n    self.f = lambda x: x", config)
    assert [f.severity for f in got] == ["information"]


def test_a_factory_conditional_under_a_guard_joins_both() -> None:
    source = (
        "from torch import nn\n\n\ndef get_act(name):\n    if name == 'linear':\n"
        "        return lambda x: x\n    return abs\n\n\nclass M(nn.Module):\n"
        "    def __init__(self, act, use_act=False):\n        super().__init__()\n"
        "        if use_act:\n            self.f = get_act(act)\n"
    )
    (finding,) = analyze_text(source, "m.py")
    assert finding.severity == "warning"
    assert "when `name == 'linear'` and `use_act`" in finding.message
    assert "fix it at the root" in finding.message  # the factory's return is still the root


BUILDER = """\
from torch import nn


class Model(nn.Module):
    def __init__(self, weight_norm=False, k=3):
        super().__init__()
        self.wn = weight_norm
        self._build(weight_norm, k, 3)
        if not self.wn:
            self.h = lambda x: x

    def _build(self, wn, size, three):
        if wn:
            self.g = lambda x: x
        if three == 3:
            self.c = lambda x: x
        if wn:
            self.h = lambda x: 1
"""


def test_a_method_init_calls_tests_what_init_passes() -> None:
    got = [(f.attribute, f.severity, f.message) for f in analyze_text(BUILDER, "m.py")]
    assert [g[:2] for g in got] == [
        ("h", "error"),  # `not self.wn` here and `wn` there: every path
        ("g", "warning"),
        ("c", "error"),  # a constant passed: nothing for a caller to choose
        ("h", "error"),
    ]
    assert "holds a lambda when `wn`:" in got[1][2]


def test_a_method_called_from_elsewhere_too_stays_certain() -> None:
    source = BUILDER + "\n    def reset(self):\n        self._build(True, 1, 1)\n"
    assert {f.severity for f in analyze_text(source, "m.py")} == {"error"}


HELPER = """\
from torch import nn


class Helper:
    def __init__(self, flag=False, act="relu"):
        if flag:
            self.f = lambda x: x


class Model(nn.Module):
    def __init__(self, flag):
        super().__init__()
"""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("self.h = Helper(flag=True)", [("h", "error")]),
        ("self.h = Helper(True)", [("h", "error")]),
        ("self.h = Helper(flag=flag)", [("h", "warning")]),
        ("self.h = Helper(**kwargs)", [("h", "warning")]),
        # this call leaves the default: nothing else builds what `self.h` holds
        ("self.h = Helper()", []),
        ("self.h = Helper(flag=0)", []),
    ],
)
def test_a_helper_class_is_decided_by_the_call(line: str, expected: list[tuple[str, str]]) -> None:
    got = analyze_text(HELPER + f"        kwargs = {{}}\n        {line}\n", "m.py")
    assert [(f.attribute, f.severity) for f in got] == expected


def test_a_helper_reports_the_attribute_the_call_leaves() -> None:
    source = HELPER.replace(
        "            self.f = lambda x: x\n",
        "            self.f = lambda x: x\n        if act == 'linear':\n"
        "            self.g = lambda x: x\n",
    )
    (finding,) = analyze_text(source + "        self.h = Helper(False, act=x)\n", "m.py")
    assert "whose `g` holds a lambda when `act == 'linear'`" in finding.message
    # a parameter bound again before its test is not what the call passed
    rebound = source.replace("        if act ==", "        act = act.lower()\n        if act ==")
    (finding,) = analyze_text(rebound + "        self.h = Helper(False, act='relu')\n", "m.py")
    assert finding.severity == "warning"


def test_runtime_truth() -> None:
    torch = pytest.importorskip("torch")
    from support.conv1d import Conv1d

    torch.save(Conv1d(), io.BytesIO())
    pickle.dumps(Conv1d())
    with pytest.raises(RuntimeError, match="parametrized modules"):
        torch.save(Conv1d(weight_norm=True), io.BytesIO())
    with pytest.raises(RuntimeError, match="parametrized modules"):
        pickle.dumps(Conv1d(weight_norm=True))
