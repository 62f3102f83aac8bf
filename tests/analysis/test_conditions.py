"""Conditional hazards: a factory that returns a lambda for some arguments only.

The runtime truth both tables rest on is plain: `get_activation_fn("linear")` returns a
lambda (pickle fails), any other name returns a torch function (pickle works); the last
test checks it.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text
from ckpt_lsp.config import load_config
from ckpt_lsp.findings import Finding
from ckpt_lsp.report import json as json_report
from ckpt_lsp.report import sarif

FACTORY = """\
import torch.nn.functional as F
from torch import nn


def get_activation_fn(activation):
    if activation == "relu":
        return F.relu
    elif activation == "linear":
        return lambda x: x
    return getattr(F, activation)


def always():
    return lambda x: x


def quant_noise(module, p, block_size):
    if p <= 0:
        return module

    def _pre(mod, inputs):
        return None

    module.register_forward_pre_hook(_pre)
    return module


def maybe_identity(use, scale=None):
    if use and scale is None:
        return lambda x: x
    return abs


class Model(nn.Module):
    def __init__(self, activation="relu", q=0.1):
        super().__init__()
"""


def findings(body: str) -> list[Finding]:
    return analyze_text(FACTORY + "".join(f"        {line}\n" for line in body.splitlines()))


# (body of __init__, expected (attribute, severity) findings)
CASES = [
    ("self.act = get_activation_fn(activation)", [("act", "warning")]),
    ("self.act = get_activation_fn(activation=activation)", [("act", "warning")]),
    ("self.act = get_activation_fn('linear')", [("act", "error")]),
    ("self.act = get_activation_fn(activation='linear')", [("act", "error")]),
    ("self.act = get_activation_fn('relu')", []),
    ("self.act = get_activation_fn('gelu')", []),
    ("self.act = get_activation_fn(**{'activation': 'gelu'})", [("act", "warning")]),
    ("self.act = always()", [("act", "error")]),
    ("self.fc = quant_noise(nn.Linear(2, 2), q, 4)", [("fc", "warning")]),
    ("self.fc = quant_noise(nn.Linear(2, 2), 0.1, 4)", [("fc", "error")]),
    ("self.fc = quant_noise(nn.Linear(2, 2), 0.0, 4)", []),
    ("self.fc = quant_noise(nn.Linear(2, 2), p=0, block_size=4)", []),
    # inside a container the hazard keeps its condition
    ("self.seq = nn.Sequential(quant_noise(nn.Linear(2, 2), q, 4))", [("seq", "warning")]),
    ("self.acts = [get_activation_fn(activation)]", [("acts", "warning")]),
    # a bare test on a parameter is a condition too; `and` taken says both sides
    ("self.f = maybe_identity(q)", [("f", "warning")]),
    ("self.f = maybe_identity(True)", [("f", "error")]),
    ("self.f = maybe_identity(False)", []),
    ("self.f = maybe_identity(True, 2.0)", []),
    ("self.f = maybe_identity(1, scale=q)", [("f", "warning")]),
]


@pytest.mark.parametrize(("body", "expected"), CASES)
def test_condition_decided_by_the_call(body: str, expected: list[tuple[str, str]]) -> None:
    assert [(f.attribute, f.severity) for f in findings(body)] == expected


def test_message_names_the_condition_and_the_root_fix() -> None:
    (finding,) = findings("self.act = get_activation_fn(activation)")
    assert "when `activation == 'linear'`" in finding.message
    assert "not `activation == 'relu'`" not in finding.message  # implied by == 'linear'
    assert "module-level function" in finding.message
    lambda_row = FACTORY.splitlines().index("        return lambda x: x") + 1
    assert [r[1:] for r in finding.related] == [
        (lambda_row, 16, "returned here when `activation == 'linear'`")
    ]


def test_a_flag_reads_as_the_source_says_it() -> None:
    (finding,) = findings("self.f = maybe_identity(q, scale=q)")
    assert "when `use` and `scale is None`" in finding.message


def test_early_return_condition_is_negated() -> None:
    (finding,) = findings("self.fc = quant_noise(nn.Linear(2, 2), q, 4)")
    assert "when `p > 0`" in finding.message


def test_guard_on_something_else_keeps_the_finding_certain() -> None:
    source = (
        "from torch import nn\nimport os\n"
        "def make():\n    if os.environ.get('X'):\n        return lambda x: x\n    return abs\n"
        "class M(nn.Module):\n    def __init__(self):\n        self.f = make()\n"
    )
    assert [f.severity for f in analyze_text(source)] == ["error"]


def test_conditional_severity_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ckpt-lsp]\nconditional-severity = "error"\n', encoding="utf-8"
    )
    config = load_config(tmp_path)
    assert config.conditional_severity == "error"
    source = FACTORY + "        self.act = get_activation_fn(activation)\n"
    assert [f.severity for f in analyze_text(source, "m.py", config=config)] == ["error"]


def test_conditional_severity_rejects_unknown_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ckpt_lsp.config import ConfigError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ckpt-lsp]\nconditional-severity = "loud"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="conditional-severity"):
        load_config(tmp_path)


def test_reporters_carry_the_related_location(tmp_path: Path) -> None:
    (finding,) = findings("self.act = get_activation_fn(activation)")
    finding = replace(finding, filename="m.py", related=(("m.py", 9, 16, "returned here"),))
    obj = json_report.finding_to_dict(finding)
    assert obj["related"] == [
        {"filename": "m.py", "location": {"row": 9, "column": 16}, "message": "returned here"}
    ]
    (result,) = sarif.to_sarif([finding], [], root=tmp_path)["runs"][0]["results"]
    (loc,) = result["relatedLocations"]
    assert loc["physicalLocation"]["region"] == {"startLine": 9, "startColumn": 16}
    assert loc["message"]["text"] == "returned here"


def test_runtime_truth() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    def get_activation_fn(activation: str):  # type: ignore[no-untyped-def]
        if activation == "linear":
            return lambda x: x
        return getattr(F, activation)

    pickle.dumps(get_activation_fn("relu"))
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(get_activation_fn("linear"))


def test_lsp_diagnostic_carries_related_information() -> None:
    from ckpt_lsp.lsp.diagnostics import diagnostic_json
    from ckpt_lsp.lsp.positions import LineIndex
    from pygls.workspace import PositionCodec

    source = FACTORY + "        self.act = get_activation_fn(activation)\n"
    (finding,) = analyze_text(source, str(Path.cwd() / "m.py"))
    data = diagnostic_json(finding, LineIndex(source, PositionCodec("utf-16")))
    (info,) = data["relatedInformation"]
    row = FACTORY.splitlines().index("        return lambda x: x")
    assert info["location"]["range"]["start"] == {"line": row, "character": 15}
    assert info["location"]["uri"].endswith("/m.py")
    assert "activation == 'linear'" in info["message"]


def test_nested_factory_points_at_the_innermost_return() -> None:
    source = FACTORY.replace(
        "class Model(nn.Module):\n",
        "def build(q):\n    return quant_noise(nn.Linear(2, 2), q, 4)\n\n\nclass Model(nn.Module):\n",
    )
    source += "        self.fc = build(q)\n"
    (finding,) = analyze_text(source)
    assert finding.severity == "warning"
    row = FACTORY.splitlines().index("    return module", 20) + 1
    assert [r[1] for r in finding.related] == [row]
