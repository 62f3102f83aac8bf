"""config_containers and the typed fields of config_shapes: what a structured OmegaConf config
hands back and what `OmegaConf.to_container` / `to_object` of it keeps. VALID and INVALID,
each refusal measured on torch 2.13 with omegaconf 2.4 (CKPT010), and the same conversions
inside a Lightning `__init__` or at the call that builds the module (CKPT011)."""

from __future__ import annotations

import textwrap

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import dataclasses
import enum
from pathlib import Path
from typing import List

import torch
from omegaconf import MISSING, OmegaConf, SCMode


class Schedule(enum.Enum):
    COSINE = "cosine"
    STEP = "step"


@dataclasses.dataclass
class Optim:
    lr: float = 0.1
    schedule: Schedule = Schedule.COSINE


@dataclasses.dataclass
class Run:
    name: str = "run"
    out: Path = "runs"
    optim: Optim = dataclasses.field(default_factory=Optim)


@dataclasses.dataclass
class Data:
    dirs: List[Path] = dataclasses.field(default_factory=lambda: [Path("train")])
    sizes: List[int] = dataclasses.field(default_factory=lambda: [1, 2])


@dataclasses.dataclass
class Plain:
    name: str = "run"
    steps: int = 10
    schedule: Schedule = MISSING


"""

INVALID = [
    (
        "an Enum field read off a structured config",
        'def save(p):\n    cfg = OmegaConf.structured(Run)\n    torch.save({"s": cfg.optim.schedule}, p)\n',
        [(3, "s")],
    ),
    (
        "a Path field, also when given as a string default",
        'def save(p):\n    cfg = OmegaConf.structured(Run)\n    torch.save({"o": cfg.out}, p)\n',
        [(3, "o")],
    ),
    (
        "to_container keeps the Enum member of a nested structured config",
        "def save(p):\n"
        "    cfg = OmegaConf.structured(Optim)\n"
        '    torch.save({"c": OmegaConf.to_container(cfg, resolve=True)}, p)\n',
        [(3, "c")],
    ),
    (
        "enum_to_str converts members, not paths",
        "def save(p):\n"
        "    cfg = OmegaConf.structured(Run)\n"
        '    torch.save({"c": OmegaConf.to_container(cfg, enum_to_str=True)}, p)\n',
        [(3, "c")],
    ),
    (
        "a merge with overrides keeps the fields typed",
        "def save(p):\n"
        '    cfg = OmegaConf.merge(OmegaConf.structured(Optim), {"schedule": "STEP"})\n'
        '    torch.save({"c": OmegaConf.to_container(cfg)}, p)\n',
        [(3, "c")],
    ),
    (
        "a key of the converted dict",
        "def save(p):\n"
        "    plain = OmegaConf.to_container(OmegaConf.structured(Optim))\n"
        '    torch.save({"s": plain["schedule"], "lr": plain["lr"]}, p)\n',
        [(3, "s")],
    ),
    (
        "to_object builds the dataclass",
        'def save(p):\n    torch.save({"c": OmegaConf.to_object(OmegaConf.structured(Optim))}, p)\n',
        [(2, "c")],
    ),
    (
        "SCMode.INSTANTIATE builds it too",
        "def save(p):\n"
        "    cfg = OmegaConf.structured(Optim)\n"
        "    plain = OmegaConf.to_container(cfg, structured_config_mode=SCMode.INSTANTIATE)\n"
        '    torch.save({"c": plain}, p)\n',
        [(4, "c")],
    ),
    (
        "SCMode.DICT_CONFIG hands a structured config back as it is",
        "def save(p):\n"
        "    cfg = OmegaConf.structured(Optim)\n"
        "    kept = OmegaConf.to_container(cfg, structured_config_mode=SCMode.DICT_CONFIG)\n"
        '    torch.save({"c": kept}, p)\n',
        [(4, "c")],
    ),
    (
        "a list of paths",
        "def save(p):\n"
        "    cfg = OmegaConf.structured(Data)\n"
        '    torch.save({"d": OmegaConf.to_container(cfg.dirs)}, p)\n',
        [(3, "d")],
    ),
    (
        "a merge of the configs a list holds",
        "def load(overrides=()):\n"
        "    parts = [OmegaConf.structured(Run)]\n"
        "    parts.append(OmegaConf.from_dotlist(list(overrides)))\n"
        "    return OmegaConf.merge(*parts)\n"
        "\n"
        "\n"
        "def save(p):\n"
        '    torch.save({"o": load().out, "n": load().name}, p)\n',
        [(8, "o")],
    ),
    (
        "a dict of a config node holding a list",
        "def save(p):\n"
        '    cfg = OmegaConf.create({"data": {"root": "x", "dirs": ["a", "b"]}})\n'
        '    torch.save({"d": dict(cfg.data)}, p)\n',
        [(3, "d")],
    ),
]

YAML_STAGES = '''STAGES = """
stages:
  - {noise: 0.3, epochs: 5}
  - {noise: 0.1, epochs: 10}
sizes: [64, 32]
"""


'''

RUN_YAML = '''import yaml

RUN = """
dataset:
  name: zinc
  snapshot: 2024-03-01
train:
  lr: 3e-4
  quoted: '2024-03-01'
"""


'''

INVALID += [
    (
        "PyYAML reads an unquoted date as a datetime.date",
        RUN_YAML + "def save(p):\n"
        "    raw = yaml.safe_load(RUN)\n"
        '    torch.save({"snap": raw["dataset"]["snapshot"], "ds": raw["dataset"],\n'
        '                "train": raw["train"], "whole": raw}, p)\n',
        [(15, "snap"), (15, "ds"), (16, "whole")],
    ),
    (
        "yaml.load with a Loader reads the same dates",
        RUN_YAML + "def save(p):\n"
        "    raw = yaml.load(RUN, Loader=yaml.SafeLoader)\n"
        '    torch.save({"snap": raw["dataset"]["snapshot"], "lr": raw["train"]["lr"]}, p)\n',
        [(15, "snap")],
    ),
    (
        "list() of a YAML list of mappings holds DictConfigs",
        YAML_STAGES + "def save(p):\n"
        "    cfg = OmegaConf.create(STAGES)\n"
        '    torch.save({"stages": list(cfg.stages), "sizes": list(cfg.sizes)}, p)\n',
        [(11, "stages")],
    ),
]

VALID = [
    (
        "the member's value and the path as a string",
        "def save(p):\n"
        "    cfg = OmegaConf.structured(Run)\n"
        '    torch.save({"s": cfg.optim.schedule.value, "o": str(cfg.out), "n": cfg.name}, p)\n',
    ),
    (
        "enum_to_str on a config without paths",
        "def save(p):\n"
        "    cfg = OmegaConf.structured(Optim)\n"
        '    torch.save({"c": OmegaConf.to_container(cfg, enum_to_str=True)}, p)\n',
    ),
    (
        "a config built from a display holds plain values",
        "def save(p):\n"
        '    cfg = OmegaConf.create({"lr": 0.1, "optim": {"name": "adam"}})\n'
        '    torch.save({"c": OmegaConf.to_container(cfg), "o": OmegaConf.to_object(cfg)}, p)\n',
    ),
    (
        "a plain key of the converted dict",
        "def save(p):\n"
        "    plain = OmegaConf.to_container(OmegaConf.structured(Optim))\n"
        '    torch.save({"lr": plain["lr"]}, p)\n',
    ),
    (
        "a list of numbers, and the paths as strings",
        "def save(p):\n"
        "    cfg = OmegaConf.structured(Data)\n"
        "    sizes = OmegaConf.to_container(cfg.sizes)\n"
        '    torch.save({"s": sizes, "d": [str(d) for d in cfg.dirs]}, p)\n',
    ),
    (
        "a dict of a config node of scalars",
        "def save(p):\n"
        '    cfg = OmegaConf.create({"optim": {"lr": 0.1, "name": "adam"}})\n'
        '    torch.save({"o": dict(cfg.optim)}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(weights_only_rows(HEADER, source), key=str) == sorted(expected, key=str), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER, source) == [], name


VALID += [
    (
        "PyYAML's quoted dates and other values, and OmegaConf's reading of the same text",
        RUN_YAML + "def save(p):\n"
        "    raw = yaml.safe_load(RUN)\n"
        "    cfg = OmegaConf.create(RUN)\n"
        '    torch.save({"q": raw["train"]["quoted"], "lr": raw["train"]["lr"],\n'
        '                "snap": str(raw["dataset"]["snapshot"]), "omega": cfg.dataset.snapshot}, p)\n',
    ),
    (
        "tuple() of a YAML list of numbers holds ints",
        YAML_STAGES + "def save(p):\n"
        "    cfg = OmegaConf.create(STAGES)\n"
        '    torch.save({"sizes": tuple(cfg.sizes)}, p)\n',
    ),
]

LIGHTNING = HEADER.replace("import torch\n", "import lightning as L\nimport torch\n")

# (source, the parameter reported, or None)
HPARAMS = [
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, cfg):
                super().__init__()
                cfg = OmegaConf.to_container(cfg, resolve=True)
                self.save_hyperparameters(cfg)


        def build():
            return Lit(OmegaConf.merge(OmegaConf.structured(Optim), OmegaConf.from_dotlist([])))
        """,
        "cfg",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, n=2, run_config=None):
                super().__init__()
                self.save_hyperparameters()


        def build():
            cfg = OmegaConf.structured(Run)
            return Lit(run_config=OmegaConf.to_container(cfg, enum_to_str=True))
        """,
        "run_config",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, cfg):
                super().__init__()
                cfg = OmegaConf.to_container(cfg, enum_to_str=True)
                self.save_hyperparameters(cfg)


        def build():
            return Lit(OmegaConf.structured(Optim))
        """,
        None,
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, n=2, run_config=None):
                super().__init__()
                self.save_hyperparameters()


        def build():
            return Lit(run_config=OmegaConf.to_container(OmegaConf.structured(Plain)))
        """,
        None,
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, n=2, run=None):
                super().__init__()
                self.save_hyperparameters()


        def build(run_cfg=None):
            run_cfg = run_cfg or Run(name="tabular")
            return Lit(run=dataclasses.asdict(run_cfg))
        """,
        "run",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, n=2, run=None):
                super().__init__()
                self.save_hyperparameters()


        def build():
            return Lit(run=dataclasses.asdict(Plain(schedule=Schedule.STEP.value)))
        """,
        None,
    ),
]


# a config maker of a structured config and overrides (indented as the cases are)
OPTIM_CONFIG = """
        def optim_config(overrides=()):
            return OmegaConf.merge(OmegaConf.structured(Optim), OmegaConf.from_dotlist(list(overrides)))

"""

HPARAMS += [
    (  # the factory is called with the config maker paired with it in a registry
        OPTIM_CONFIG
        + """
        class Lit(L.LightningModule):
            def __init__(self, cfg):
                super().__init__()
                cfg = OmegaConf.to_container(cfg, resolve=True)
                self.save_hyperparameters()


        def build(cfg):
            return Lit(cfg)


        REGISTRY = {"optim": (optim_config, build)}


        def build_module(name, overrides=()):
            make_cfg, factory = REGISTRY[name]
            return factory(make_cfg(overrides))
        """,
        "cfg",
    ),
    (  # the factory converts the config its caller made with the caller's own argument
        OPTIM_CONFIG
        + """
        class Lit(L.LightningModule):
            def __init__(self, model_cfg, n=2):
                super().__init__()
                self.save_hyperparameters()


        def build(cfg):
            model_cfg = OmegaConf.to_container(cfg)
            return Lit(model_cfg)


        def main(overrides=()):
            return build(optim_config(overrides))
        """,
        "model_cfg",
    ),
    (  # the same, with `enum_to_str=True`: the member is its name
        OPTIM_CONFIG
        + """
        class Lit(L.LightningModule):
            def __init__(self, model_cfg, n=2):
                super().__init__()
                self.save_hyperparameters()


        def build(cfg):
            model_cfg = OmegaConf.to_container(cfg, enum_to_str=True)
            return Lit(model_cfg)


        def main(overrides=()):
            return build(optim_config(overrides))
        """,
        None,
    ),
    (  # the stages of a YAML config: a list of DictConfigs
        """
        STAGES = \"\"\"
        stages:
          - {noise: 0.3}
          - {noise: 0.1}
        \"\"\"


        class Lit(L.LightningModule):
            def __init__(self, stages, n=2):
                super().__init__()
                self.save_hyperparameters()


        def build():
            cfg = OmegaConf.create(STAGES)
            return Lit(list(cfg.stages))
        """,
        "stages",
    ),
]


@pytest.mark.parametrize(("source", "parameter"), HPARAMS)
def test_hparams_converted(source: str, parameter: str | None) -> None:
    found = [
        f.attribute
        for f in analyze_text(LIGHTNING + textwrap.dedent(source), "lit.py")
        if f.code == "CKPT011"
    ]
    assert found == ([parameter] if parameter else [])
