"""CKPT010 of an OmegaConf config's nodes read by member: a sub-config or a list is a
DictConfig/ListConfig (refused) when the config's shape says so: its display, the YAML text of
a string literal or a module constant, or a merge of such; a leaf loads. The block-YAML reader
gives up (None) on what it does not know. VALID and INVALID."""

from __future__ import annotations

import ast

import pytest
from ckpt_lsp.analysis.config_shapes import RefusedLeaf, dated, yaml_shape
from ckpt_lsp.findings import Finding
from ckpt_lsp.weights_only import weights_only_catalog
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = '''\
import torch
from omegaconf import OmegaConf

DEFAULTS = """
model:
  name: unet   # the net
  widths: [16, 32]
  head: {dropout: 0.1, classes: [a, b]}
data:
  root: /data
  transforms:
  - flip
  - crop
seed: 0
"""


def load(overrides=()):
    return OmegaConf.merge(OmegaConf.create(DEFAULTS), OmegaConf.from_dotlist(list(overrides)))
'''


def _wo(source: str) -> list[Finding]:
    return weights_only_findings(HEADER, source)


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


STRUCTURED = (
    "import dataclasses, typing\n"
    "@dataclasses.dataclass\nclass Data:\n    root: str = '/d'\n"
    "    augment: typing.List[str] = dataclasses.field(default_factory=list)\n"
    "    size: typing.Tuple[int, int] = (8, 8)\n"
    "@dataclasses.dataclass\nclass Cfg:\n"
    "    data: Data = dataclasses.field(default_factory=Data)\n    lr: float = 0.1\n"
    "    extra: dict = dataclasses.field(default_factory=dict)\n"
    "    maybe: typing.Optional[typing.List[int]] = None\n"
)

INVALID = [
    (
        "sub-configs and lists of a YAML module constant, through a helper's merge",
        "def save(path):\n    cfg = load(['seed=1'])\n    torch.save({\n"
        '        "model": cfg.model,\n        "widths": cfg.model.widths,\n'
        '        "classes": cfg.model.head.classes,\n        "transforms": cfg.data.transforms,\n'
        "    }, path)\n",
        [(4, "model"), (5, "widths"), (6, "classes"), (7, "transforms")],
    ),
    (
        "a list of a YAML string literal; a dict display merged over it",
        "def save(path):\n"
        '    inline = OmegaConf.create("opt:\\n  betas: [0.9, 0.99]\\n  lr: 0.1\\n")\n'
        '    both = OmegaConf.merge(inline, {"opt": {"lr": 0.2}, "aug": ["flip"]})\n'
        '    torch.save({"betas": inline.opt.betas, "aug": both.aug, "b2": both.opt.betas}, path)\n',
        [(4, "betas"), (4, "aug"), (4, "b2")],
    ),
    (
        "containers of a structured config (a dataclass's fields), also merged",
        STRUCTURED + "def save(path):\n    c = OmegaConf.structured(Cfg)\n"
        "    d = OmegaConf.merge(OmegaConf.structured(Cfg(lr=0.2)), OmegaConf.from_cli())\n"
        '    torch.save({"data": c.data, "aug": c.data.augment, "size": d.data.size,\n'
        '                "extra": d.extra}, path)\n',
        [(16, "data"), (16, "aug"), (16, "size"), (17, "extra")],
    ),
]

VALID = [
    (
        "leaves and converted nodes",
        "def save(path):\n    cfg = load()\n    torch.save({\n"
        '        "name": cfg.model.name, "seed": cfg.seed, "root": cfg.data.root,\n'
        '        "drop": cfg.model.head.dropout, "tl": list(cfg.data.transforms),\n'
        '        "plain": OmegaConf.to_container(cfg.model),\n'
        "    }, path)\n",
    ),
    (
        "a YAML text the reader does not know (anchors), or a key it does not hold",
        "def save(path):\n"
        '    cfg = OmegaConf.create("base: &b\\n  lr: 0.1\\nopt: *b\\n")\n'
        '    other = load()\n    torch.save({"opt": cfg.opt, "x": other.missing}, path)\n',
    ),
    (
        "leaves of a structured config: a plain type, an Optional left at None",
        STRUCTURED + "def save(path):\n    c = OmegaConf.structured(Cfg)\n"
        '    torch.save({"lr": c.lr, "root": c.data.root, "maybe": c.maybe}, path)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("a: 1\nb:\n  c: [x]\n", "{'a': '1', 'b': {'c': ['x']}}"),
        ("a:\n- x\n- y\nb: 2\n", "{'a': ['x', 'y'], 'b': '2'}"),
        (
            "a: |\n  text\n  more\nb: {c: 1, d: [1, 2]}\n",
            "{'a': '|', 'b': {'c': '1', 'd': ['1', '2']}}",
        ),
        # a sequence's items: a flow or block mapping is a dict (a block one's keys unread)
        (
            "s:\n  - {n: 0.3}\n  - name: a\n    k: 1\n  -\n    x: 1\n",
            "{'s': [{'n': '0.3'}, {}, {}]}",
        ),
        ("s: [[1, 2], {a: 1}, x]\n", "{'s': [['1', '2'], {'a': '1'}, 'x']}"),
        ("a: '#not a comment'  # a comment\n", "{'a': \"'#not a comment'\"}"),
        ("a:\n", "{'a': None}"),
        # a flow sequence or mapping that goes on over the next lines
        (
            "a: [x, y,\n     z]\nb: {c: 1,\n  d: 2}\ne: 3\n",
            "{'a': ['x', 'y', 'z'], 'b': {'c': '1', 'd': '2'}, 'e': '3'}",
        ),
    ],
)
def test_yaml_shapes(text: str, shape: str) -> None:
    found = yaml_shape(text)
    assert found is not None and ast.unparse(found) == shape


@pytest.mark.parametrize(
    "text",
    ["- a\n- b\n", "a: &x 1\nb: *x\n", "a:\n  b: 1\n c: 2\n", "a: [1,\n  2\n", "<<: *base\n", ""],
)
def test_unknown_yaml(text: str) -> None:
    assert yaml_shape(text) is None


@pytest.mark.parametrize(
    ("value", "is_date"),
    [
        ("2024-02-15", True),
        ("2024-2-5 08:00:00", True),
        ("2001-12-14t21:59:43.10-05:00", True),
        ("'2024-02-15'", False),  # quoted: a string
        ("2024-02", False),
        ("20240215", False),
    ],
)
def test_pyyaml_timestamps_are_dates(value: str, is_date: bool) -> None:
    """PyYAML's implicit timestamps (measured: `yaml.safe_load` gives date/datetime for the
    first three, strings for the rest)."""
    import datetime

    import yaml

    date = weights_only_catalog().kind("datetime")
    assert date is not None
    shape = yaml_shape(f"d: {value}\n")
    assert shape is not None and isinstance(shape, ast.Dict)
    leaf = dated(shape, date)
    assert isinstance(leaf, ast.Dict)
    assert isinstance(leaf.values[0], RefusedLeaf) is is_date
    loaded = yaml.safe_load(f"d: {value}\n")["d"]
    assert isinstance(loaded, datetime.date) is is_date  # a datetime is a date too
