"""CKPT010 through reads the flow follows: numpy arithmetic with config fields known to be
Python numbers, conditional expressions and `if` statements a module constant decides, any
item of a list or dict whose every item is refused, a local's keys handed to a helper's
parameter, `module.hparams.x` of a LightningModule built here, and a helper's dict or tuple
saved whole when one of its items is refused (CKPT011 too). VALID and INVALID."""

from __future__ import annotations

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text
from ckpt_lsp.findings import Finding
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import argparse, dataclasses, enum
import numpy as np
import torch
import lightning as L
"""


def _wo(source: str) -> list[Finding]:
    return weights_only_findings(HEADER, source)


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


CONFIG = (
    "@dataclasses.dataclass\n"
    "class Cfg:\n"
    "    eps_start: float = 1.0\n"
    "    eps_end: float = 0.05\n"
    "    decay: int = 100\n"
    "    scale: torch.Tensor = None\n"
)
EPSILON = (
    "def epsilon_at(step, cfg):\n"
    "    frac = np.clip(step / cfg.decay, 0.0, 1.0)\n"
    "    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)\n"
)
POLICY = (
    "class Grip(enum.Enum):\n"
    "    A = 'a'\n"
    "class Policy(L.LightningModule):\n"
    "    def __init__(self, scale=None, grip: Grip = Grip.A, n: int = 3, stats=None):\n"
    "        super().__init__()\n"
    "        self.save_hyperparameters()\n"
)
ROWS = 12  # CONFIG + EPSILON + POLICY + the `def` line: the first row of a body below

INVALID = [
    (
        "numpy arithmetic with a dataclass's float fields, in a helper bound to the config",
        CONFIG + EPSILON + "def save(p, step):\n"
        "    eps = epsilon_at(step, Cfg())\n"
        "    torch.save({'eps': eps}, p)\n",
        [(12, "eps")],
    ),
    (
        "numpy arithmetic with an argparse option converted by type=float",
        "def save(p):\n"
        "    parser = argparse.ArgumentParser()\n"
        "    parser.add_argument('--lr', type=float, default=0.1)\n"
        "    args = parser.parse_args()\n"
        "    torch.save({'lr': args.lr * np.float32(0.5)}, p)\n",
        [(5, "lr")],
    ),
    (
        "a conditional expression or an if statement a module constant decides",
        "KEEP_OBJECT = True\n"
        "DEBUG = False\n"
        "def save(p, opt):\n"
        "    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2)\n"
        "    a = sched if KEEP_OBJECT else sched.state_dict()\n"
        "    b = sched if not DEBUG else sched.state_dict()\n"
        "    if KEEP_OBJECT:\n"
        "        c = sched\n"
        "    else:\n"
        "        c = sched.state_dict()\n"
        "    torch.save({'a': a, 'b': b, 'c': c}, p)\n",
        [(11, "a"), (11, "b"), (11, "c")],
    ),
    (
        "any item of a list or dict whose every item is refused, indexed or iterated",
        CONFIG + "def save(p, i, k):\n"
        "    infos = [Cfg(decay=t) for t in range(3)]\n"
        "    arrays = {n: np.zeros(3) for n in 'ab'}\n"
        "    pair = (Cfg(), Cfg())\n"
        "    for info in infos:\n"
        "        last = info\n"
        "    for arr in arrays.values():\n"
        "        kept = arr\n"
        "    torch.save({'cur': infos[i], 'a': arrays[k], 'p': pair[i], 'last': last,\n"
        "                'kept': kept}, p)\n",
        [(15, "cur"), (15, "a"), (15, "p"), (15, "last"), (16, "kept")],
    ),
    (
        "a local's known keys handed to a helper's parameter",
        "def make():\n"
        "    return {'obs': np.zeros((4, 3)), 'n': 4}\n"
        "def stats(dataset):\n"
        "    mean = dataset['obs'].mean(0)\n"
        "    return mean, dataset['obs'].std(0)\n"
        "def save(p):\n"
        "    mean, std = stats(make())\n"
        "    data = make()\n"
        "    mean, std = stats(data)\n"
        "    torch.save({'mean': mean, 'std': torch.from_numpy(std)}, p)\n",
        [(10, "mean")],
    ),
    (
        "module.hparams.x of a LightningModule built here: passed, or its default",
        POLICY + "def save(p):\n"
        "    policy = Policy(scale=np.ones(3) * 2)\n"
        "    export = {'w': policy.state_dict()}\n"
        "    export['grip'] = policy.hparams.grip\n"
        "    export['max'] = policy.hparams.scale.max()\n"
        "    export['scale'] = policy.hparams['scale']\n"
        "    torch.save(export, p)\n",
        [(10, "grip"), (11, "max"), (12, "scale")],
    ),
]

VALID = [
    (
        "a float field the building call passes something else for, or hidden behind **",
        CONFIG + "def save(p, lr, extra):\n"
        "    cfg = Cfg(eps_start=lr)\n"
        "    other = Cfg(**extra)\n"
        "    frac = np.clip(0.3, 0.0, 1.0)\n"
        "    torch.save({'a': cfg.eps_start * frac, 'b': other.eps_end * frac,\n"
        "                'c': cfg.scale * frac}, p)\n",
    ),
    (
        "an argparse option without type=, and a conditional expression a parameter decides",
        "FLAG = True\n"
        "FLAG = False\n"
        "def save(p, opt, keep):\n"
        "    parser = argparse.ArgumentParser()\n"
        "    parser.add_argument('--lr', default=0.1)\n"
        "    args = parser.parse_args()\n"
        "    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2)\n"
        "    a = sched if keep else sched.state_dict()\n"
        "    b = sched if FLAG else sched.state_dict()\n"
        "    c = sched.state_dict() if True else sched\n"
        "    torch.save({'lr': args.lr * np.float32(0.5), 'a': a, 'b': b, 'c': c}, p)\n",
    ),
    (
        "a list with one loadable item, a dict's keys, an item replaced, a list grown",
        CONFIG + "def save(p, i, k):\n"
        "    mixed = [Cfg(), 3]\n"
        "    arrays = {n: np.zeros(3) for n in 'ab'}\n"
        "    for key in arrays:\n"
        "        name = key\n"
        "    infos = [Cfg() for _ in range(2)]\n"
        "    infos[0] = 1\n"
        "    grown = [Cfg() for _ in range(2)]\n"
        "    grown.append(1)\n"
        "    torch.save({'m': mixed[i], 'n': name, 'i': infos[i], 'g': grown[i],\n"
        "                'f': [c.decay for c in infos]}, p)\n",
    ),
    (
        "module.hparams.x that loads, a converted argument, a module not built here",
        POLICY + "class Conv(L.LightningModule):\n"
        "    def __init__(self, scale=None):\n"
        "        super().__init__()\n"
        "        scale = float(scale)\n"
        "        self.save_hyperparameters()\n"
        "def save(p, given, kw):\n"
        "    policy = Policy(scale=[1.0, 2.0])\n"
        "    conv = Conv(np.float32(2.0))\n"
        "    spread = Policy(**kw)\n"
        "    torch.save({'n': policy.hparams.n, 's': policy.hparams.scale,\n"
        "                'c': conv.hparams.scale, 'g': given.hparams.grip,\n"
        "                'x': spread.hparams.scale, 'st': policy.hparams.stats}, p)\n",
    ),
]


STATS = (
    "def demo_stats():\n"
    "    obs = np.zeros((4, 3), dtype=np.float32)\n"
    "    return {'mean': obs.mean(0), 'n': 4}\n"
    "def run(x):\n"
    "    return float(x), np.zeros(3)\n"
)
INVALID += [
    (
        "a helper's dict or tuple saved whole, one of its items refused",
        STATS + "def save(p):\n"
        "    stats = demo_stats()\n"
        "    out = run(1.0)\n"
        "    torch.save({'stats': stats, 'out': out}, p)\n"
        "    torch.save(stats, p)\n",
        [(9, "stats"), (9, "out"), (10, None)],
    ),
]
VALID += [
    (
        "a helper's dict whose refused item was replaced, rebound, or set here key by key",
        STATS + "def save(p):\n"
        "    stats = demo_stats()\n"
        "    stats['mean'] = stats['mean'].tolist()\n"
        "    plain = demo_stats()\n"
        "    plain = {k: float(v) for k, v in plain.items()}\n"
        "    ckpt = {'n': 1}\n"
        "    ckpt['m'] = 2\n"
        "    torch.save({'stats': stats, 'plain': plain, 'n': demo_stats()['n']}, p)\n"
        "    torch.save(ckpt, p)\n",
    ),
]

INVALID += [
    (
        "numpy arithmetic with a module-level number and an OmegaConf display's number",
        "SCALE = 100.0\n"
        "EPS = -1e-3\n"
        "from omegaconf import OmegaConf\n"
        "def save(p):\n"
        "    cfg = OmegaConf.create({'optim': {'lr': 0.1}, 'gamma': 0.9})\n"
        "    acc = np.mean(np.zeros(3))\n"
        "    torch.save({'a': acc * SCALE, 'b': acc + EPS, 'c': cfg.gamma * acc,\n"
        "                'd': cfg.optim.lr * acc}, p)\n",
        [(7, "a"), (7, "b"), (7, "c"), (8, "d")],
    ),
    (
        "any item of a list appended to from empty, and tests of constants joined",
        CONFIG + "KEEP = True\n"
        "DEBUG = False\n"
        "def save(p, i, opt):\n"
        "    infos = []\n"
        "    for t in range(3):\n"
        "        infos.append(Cfg(decay=t))\n"
        "    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2)\n"
        "    a = sched if KEEP and not DEBUG else sched.state_dict()\n"
        "    b = sched.state_dict() if DEBUG or not KEEP else sched\n"
        "    torch.save({'cur': infos[i], 'a': a, 'b': b}, p)\n",
        [(16, "cur"), (16, "a"), (16, "b")],
    ),
]
VALID += [
    (
        "a module name bound twice or to a string, a display's string, a list of mixed appends",
        CONFIG + "SCALE = 1.0\n"
        "SCALE = torch.ones(3)\n"
        "NAME = 'x'\n"
        "from omegaconf import OmegaConf\n"
        "def save(p, i, flag):\n"
        "    cfg = OmegaConf.create({'w': torch.ones(3), 'lr': 0.1})\n"
        "    acc = np.mean(np.zeros(3))\n"
        "    mixed = []\n"
        "    mixed.append(Cfg())\n"
        "    mixed.append(3)\n"
        "    torch.save({'a': acc * SCALE, 'w': cfg.w * acc, 'm': mixed[i],\n"
        "                'f': torch.ones(3) if flag and not NAME else 0}, p)\n",
    ),
]

RECORDS = (
    "import pandas as pd\n"
    "class Agent:\n"
    "    def update(self, x):\n"
    "        loss = torch.ones(1).sum()\n"
    "        return {'loss': loss.item(), 'tag': str(x)}\n"
    "def train(agent):\n"
    "    hist = []\n"
    "    for i in range(3):\n"
    "        hist.append(agent.update(i))\n"
    "    return pd.DataFrame(hist)\n"
)
INVALID += [
    (
        "a number column of a frame built from appended records (displays or a method's)",
        RECORDS + "def save(p):\n"
        "    log = train(Agent())\n"
        "    rows = []\n"
        "    for e in range(3):\n"
        "        rows.append({'epoch': e, 'acc': float(e) / 3, 'name': 'x'})\n"
        "    df = pd.DataFrame(rows)\n"
        "    torch.save({'a': log['loss'].iloc[-1], 'b': df['acc'].max(),\n"
        "                'e': df['epoch'].iloc[0]}, p)\n",
        [(17, "a"), (17, "b"), (18, "e")],
    ),
]
VALID += [
    (
        "a text column of records, records of unknown or mixed columns, a list extended",
        RECORDS + "def save(p, extra):\n"
        "    log = train(Agent())\n"
        "    rows = []\n"
        "    rows.append({'acc': 0.5, 'name': 'x'})\n"
        "    rows.append({'acc': 'n/a'})\n"
        "    more = [{'acc': 0.5}]\n"
        "    more.append({'acc': 0.7})\n"
        "    grown = []\n"
        "    grown.append({'acc': 0.5})\n"
        "    grown.extend(extra)\n"
        "    torch.save({'t': log['tag'].iloc[-1], 'a': pd.DataFrame(rows)['acc'].iloc[-1],\n"
        "                'n': pd.DataFrame(rows)['name'].iloc[-1],\n"
        "                'm': pd.DataFrame(more)['acc'].iloc[-1],\n"
        "                'g': pd.DataFrame(grown)['acc'].iloc[-1]}, p)\n",
    ),
]

INVALID += [
    (
        "a helper's tuple holding a local dict display: its keys, read after unpacking",
        "from sklearn.preprocessing import LabelEncoder\n"
        "def fit(region):\n"
        "    encoders = {'region': LabelEncoder().fit(region), 'n': 3}\n"
        "    return 1.0, encoders\n"
        "def save(p, region):\n"
        "    loss, encoders = fit(region)\n"
        "    torch.save({'enc': encoders['region'], 'n': encoders['n']}, p)\n",
        [(7, "enc")],
    ),
    (
        "a dataclass field whose default the default load refuses, left out by the call",
        "@dataclasses.dataclass\n"
        "class Anchors:\n"
        "    iou_fg: float = np.float32(0.5)\n"
        "def save(p):\n"
        "    cfg = Anchors()\n"
        "    torch.save({'iou': cfg.iou_fg, 'r': round(cfg.iou_fg, 2)}, p)\n",
        [(6, "iou"), (6, "r")],
    ),
]
VALID += [
    (
        "a dataclass field the call passes, or passes hidden behind ** or by position",
        "@dataclasses.dataclass\n"
        "class Base:\n"
        "    a: int = 1\n"
        "@dataclasses.dataclass\n"
        "class Anchors(Base):\n"
        "    iou_fg: float = np.float32(0.5)\n"
        "def save(p, kw):\n"
        "    given = Anchors(iou_fg=0.5)\n"
        "    spread = Anchors(**kw)\n"
        "    placed = Anchors(1, 0.5)\n"
        "    torch.save({'g': given.iou_fg, 's': spread.iou_fg, 'p': placed.iou_fg}, p)\n",
    ),
]

LIT = (
    "class Lit(L.LightningModule):\n"
    "    def __init__(self, lr=0.1):\n"
    "        super().__init__()\n"
    "        self.save_hyperparameters()\n"
    "    def export(self, path):\n"
    "        torch.save({'sd': self.state_dict(), 'hp': self.hparams,\n"
    "                    'plain': dict(self.hparams), 'lr': self.hparams.lr}, path)\n"
    "class Child(Lit):\n"
    "    pass\n"
    "class Plain(torch.nn.Module):\n"
    "    def __init__(self, hp):\n"
    "        super().__init__()\n"
    "        self.hparams = hp\n"
    "    def export(self, path):\n"
    "        torch.save({'hp': self.hparams}, path)\n"
)
INVALID += [
    (
        "a LightningModule's hparams (an AttributeDict), its own or of one built here",
        LIT + "def save(p):\n"
        "    m = Child()\n"
        "    q = Plain({'a': 1})\n"
        "    torch.save({'hp': m.hparams, 'd': dict(m.hparams), 'q': q.hparams,\n"
        "                'i': m.hparams_initial, 'lr': m.hparams['lr']}, p)\n",
        [(6, "hp"), (19, "hp"), (20, "i")],
    ),
]

INVALID += [
    (
        "numpy arithmetic with an attribute the class only sets to numbers",
        "class Trainer:\n"
        "    def __init__(self):\n"
        "        self.scale = 2.0\n"
        "        self.count = 0\n"
        "    def save(self, path):\n"
        "        acc = np.mean(np.zeros(3))\n"
        "        self.count += 1\n"
        "        torch.save({'a': acc * self.scale, 'c': acc + self.count}, path)\n",
        [(8, "a"), (8, "c")],
    ),
    (
        "a dict's values or a list's items taken by .items() or enumerate()",
        "from sklearn.preprocessing import LabelEncoder\n"
        "def save(p, cols, data):\n"
        "    encs = {c: LabelEncoder().fit(data[c]) for c in cols}\n"
        "    arrs = [np.zeros(3) for _ in range(2)]\n"
        "    ckpt = {}\n"
        "    for name, enc in encs.items():\n"
        "        ckpt[name] = enc\n"
        "    for i, a in enumerate(arrs):\n"
        "        last = a\n"
        "    torch.save({'c': ckpt, 'last': last}, p)\n",
        [(7, None), (10, "last")],
    ),
]
VALID += [
    (
        "an attribute set to something else too, or grown by a tensor; a dict's keys paired",
        "from sklearn.preprocessing import LabelEncoder\n"
        "class Trainer:\n"
        "    def __init__(self):\n"
        "        self.scale = 2.0\n"
        "        self.other = 1.0\n"
        "    def set_other(self, v):\n"
        "        self.other = v\n"
        "    def save(self, path, cols, data):\n"
        "        acc = np.mean(np.zeros(3))\n"
        "        self.scale *= torch.ones(1)\n"
        "        encs = {c: LabelEncoder().fit(data[c]) for c in cols}\n"
        "        for k, v in encs:\n"
        "            first = v\n"
        "        for i, c in enumerate(encs):\n"
        "            key = c\n"
        "        torch.save({'a': acc * self.scale, 'b': acc * self.other, 'f': first,\n"
        "                    'k': key}, path)\n",
    ),
]

INVALID += [
    (
        "a save in the arm of an `if` a module constant decides to run",
        "SAVE_WHOLE = False\n"
        "def save(p):\n"
        "    m = torch.nn.Linear(2, 2)\n"
        "    if not SAVE_WHOLE:\n"
        "        torch.save(m, p)\n",
        [(5, None)],
    ),
]
VALID += [
    (
        "a save or a key in the arm of an `if` a module constant decides never runs",
        "SAVE_WHOLE = False\n"
        "DEBUG = False\n"
        "def save(p):\n"
        "    m = torch.nn.Linear(2, 2)\n"
        "    if SAVE_WHOLE:\n"
        "        torch.save(m, p)\n"
        "    else:\n"
        "        torch.save(m.state_dict(), p)\n"
        "    ckpt = {'a': 1}\n"
        "    if DEBUG:\n"
        "        ckpt['m'] = m\n"
        "    torch.save(ckpt, p)\n",
    ),
]

HPARAMS = (
    "class Act(L.LightningModule):\n"
    "    def __init__(self, norm_stats: dict = None, plain: dict = None):\n"
    "        super().__init__()\n"
    "        self.save_hyperparameters()\n"
    "def build():\n"
    "    stats = demo_stats()\n"
    "    plain = demo_stats()\n"
    "    plain['mean'] = plain['mean'].tolist()\n"
    "    return Act(norm_stats=stats, plain=plain)\n"
)


def test_a_helpers_dict_passed_whole_as_an_hparam() -> None:
    found = [f for f in analyze_text(HEADER + STATS + HPARAMS) if f.code == "CKPT011"]
    assert [f.attribute for f in found] == ["norm_stats"]
    assert "a container holding a numpy array" in found[0].message


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert _rows(source) == expected, name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name
