"""CKPT011: VALID and INVALID Lightning hyperparameters, as measured with lightning 2.6.

Each INVALID case is a class whose `save_hyperparameters()` stores a parameter that either
cannot be pickled (Lightning drops it when `fit` starts) or that the default `torch.load`
(weights_only=True since torch 2.6) refuses; VALID ones store plain data, leave the value out,
or do not store it at all. The finding sits on the parameter named by the table.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import Analyzer, analyze_text
from ckpt_lsp.analysis.assignments import Env
from ckpt_lsp.analysis.call_sites import UNKNOWN, CallSite
from ckpt_lsp.analysis.facts import module_facts
from ckpt_lsp.analysis.hparams import init_parameters, saved_hparams
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.fix import apply_edits, ignore_edit

HEADER = """\
import argparse, dataclasses, enum, functools, pathlib, threading
from pathlib import Path
from typing import Callable, Optional, Union
import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import StandardScaler


@dataclasses.dataclass
class Settings:
    depth: int = 2


class Mode(enum.Enum):
    FAST = 1


def make_head():
    return nn.Linear(4, 2)


"""


def hparam_findings(source: str, filename: str = "lit.py") -> list[tuple[str, str, str]]:
    text = HEADER + textwrap.dedent(source)
    return [
        (f.class_name, f.attribute, f.message)
        for f in analyze_text(text, filename)
        if f.code == "CKPT011"
    ]


# a registry a class decorator fills, and two classes registered in it (indented as the cases
# are: each case is dedented whole)
REGISTER = """
        MODELS = {}


        def register(name):
            def deco(cls):
                MODELS[name] = cls
                return cls
            return deco


"""
SEG_AND_MLP = """
        @register("unet")
        class Seg(L.LightningModule):
            def __init__(self, in_bands=4, band_mean=None, root=None):
                super().__init__()
                self.save_hyperparameters()


        @register("mlp")
        class Mlp(L.LightningModule):
            def __init__(self, in_bands=4, band_mean=None, hidden=8):
                super().__init__()
                self.save_hyperparameters()


"""

# a base whose `ignore=` is the class attribute of the class built
IGNORING_BASE = """
        class Base(L.LightningModule):
            hparams_ignore = ()

            def __init__(self, lr=3e-3):
                super().__init__()
                self.save_hyperparameters(ignore=list(self.hparams_ignore))

"""

# a frame with a string column and a number column, and a module storing what it is given
CUSTOMERS = """
        import pandas as pd


        def customers():
            rng = np.random.default_rng(0)
            return pd.DataFrame(
                {"contract": rng.choice(["monthly", "yearly"], 8), "year": rng.integers(2020, 2024, 8)}
            )


        class Lit(L.LightningModule):
            def __init__(self, names=(), lr=1e-3):
                super().__init__()
                self.save_hyperparameters()


"""

# a Registry object as detection codebases write it, filled by decorators and by calls
REGISTRY_CLASS = """
        class Registry:
            def __init__(self, name):
                self.name = name
                self._items = {}

            def register(self, key, obj=None):
                if obj is not None:
                    self._items[key] = obj
                    return obj
                return lambda o: self.register(key, o)

            def get(self, key):
                return self._items[key]

            def build(self, key, **kwargs):
                return self.get(key)(**kwargs)


        MODELS = Registry("models")
        ENCODERS = Registry("encoders")
        ENCODERS.register("id", nn.Identity)


        @ENCODERS.register("gru")
        class GRUEncoder(nn.Module):
            def __init__(self, hidden=8):
                super().__init__()
                self.rnn = nn.GRU(4, hidden)


"""

# (source, the parameter that must be reported)
INVALID = [
    # a class picked from a registry display by a config's key: a global the load refuses
    (
        """
        OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}


        class Lit(L.LightningModule):
            def __init__(self, optimizer_cls=None, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()


        def build(cfg):
            return Lit(optimizer_cls=OPTIMIZERS[cfg.optimizer], lr=cfg.lr)
        """,
        "optimizer_cls",
    ),
    # a column named by a config's field: its mask's count is a numpy int
    (
        """
        import pandas as pd


        class Lit(L.LightningModule):
            def __init__(self, pos_weight=1.0, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()


        def frame():
            rng = np.random.default_rng(0)
            return pd.DataFrame({"churned": rng.integers(0, 2, 8), "x": rng.normal(size=8)})


        def build(cfg):
            y = frame()[cfg.data.target]
            return Lit(pos_weight=(y == 0).sum() / max((y == 1).sum(), 1))
        """,
        "pos_weight",
    ),
    # a helper's dict spread into the constructor (`**_kwargs(cfg)`)
    (
        """
        def _kwargs(corpus):
            lengths = np.array([len(s) for s in corpus])
            return dict(max_len=lengths.max() + 2, lr=1e-3)


        class Lit(L.LightningModule):
            def __init__(self, max_len=10, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()


        def build(corpus=("ab", "c")):
            return Lit(**_kwargs(corpus))
        """,
        "max_len",
    ),
    # the sorted unique values of a column of numbers: numpy items
    (
        CUSTOMERS
        + """
        def build():
            return Lit(names=sorted(customers()["year"].unique()))
        """,
        "names",
    ),
    # an entry set in `self.hparams` after the call: what the checkpoint holds
    (
        """
        STEP = 0.02


        class Lit(L.LightningModule):
            def __init__(self, min_duration=0.1, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()
                self.hparams.min_duration = np.ceil(min_duration / STEP) * STEP
        """,
        "min_duration",
    ),
    # rebound to a Path before it is stored, whatever the caller passed
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, data_root: str = "/data/levir", lr=1e-3):
                super().__init__()
                data_root = Path(data_root)
                self.save_hyperparameters()
        """,
        "data_root",
    ),
    # refused by the default torch.load: builtins and project functions are globals too
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, reduce=max, n=2):
                super().__init__()
                self.save_hyperparameters()
        """,
        "reduce",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, n=2, head_factory=make_head):
                super().__init__()
                self.save_hyperparameters()
        """,
        "head_factory",
    ),
    # objects of library classes outside torch's allow-list: callbacks, distributions
    (
        """
        from lightning.pytorch.callbacks import EarlyStopping


        class Lit(L.LightningModule):
            def __init__(self, stopper=EarlyStopping(monitor="val_loss")):
                super().__init__()
                self.save_hyperparameters()
        """,
        "stopper",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, prior=torch.distributions.Normal(0.0, 1.0)):
                super().__init__()
                self.save_hyperparameters()
        """,
        "prior",
    ),
    # refused by the default torch.load: modules, losses, optimizers and their classes
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, loss: nn.Module, lr: float = 1e-3):
                super().__init__()
                self.save_hyperparameters()
        """,
        "loss",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, loss=nn.MSELoss(), lr=1e-3):
                super().__init__()
                self.save_hyperparameters()
        """,
        "loss",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, optimizer=torch.optim.Adam, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()
        """,
        "optimizer",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, optimizer=functools.partial(torch.optim.SGD, lr=0.1)):
                super().__init__()
                self.save_hyperparameters()
        """,
        "optimizer",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, activation=F.gelu, width=8):
                super().__init__()
                self.save_hyperparameters()
        """,
        "activation",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, act_layer=nn.ReLU):
                super().__init__()
                self.save_hyperparameters()
        """,
        "act_layer",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, class_weights=np.ones(3)):
                super().__init__()
                self.save_hyperparameters()
        """,
        "class_weights",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, temperature=np.float32(0.5)):
                super().__init__()
                self.save_hyperparameters()
        """,
        "temperature",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, args: argparse.Namespace):
                super().__init__()
                self.save_hyperparameters()
        """,
        "args",
    ),
    (
        """
        class LitData(L.LightningDataModule):
            def __init__(self, root=Path("data"), batch_size=32):
                super().__init__()
                self.save_hyperparameters()
        """,
        "root",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, settings=Settings()):
                super().__init__()
                self.save_hyperparameters()
        """,
        "settings",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, mode=Mode.FAST):
                super().__init__()
                self.save_hyperparameters()
        """,
        "mode",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, cfg: DictConfig):
                super().__init__()
                self.save_hyperparameters(cfg)
        """,
        "cfg",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, scaler: Optional[StandardScaler] = None, n: int = 2):
                super().__init__()
                self.save_hyperparameters(ignore="n")


        def build(scaler):
            return Lit(scaler=scaler)
        """,
        "scaler",
    ),
    # cannot be pickled: Lightning drops it when fit starts
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, transform=lambda x: x * 2):
                super().__init__()
                self.save_hyperparameters()
        """,
        "transform",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, scorer, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()


        def main():
            model = Lit(lambda y: y.mean(), lr=0.1)
        """,
        "scorer",
    ),
    # call sites: keyword, positional, through a variable
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, backbone=None, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()


        def main():
            net = nn.Sequential(nn.Linear(4, 4))
            return Lit(backbone=net)
        """,
        "backbone",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, lr, head=None):
                super().__init__()
                self.save_hyperparameters()


        FACTORIES = {"Lit": lambda: Lit(0.1, make_head())}
        """,
        "head",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, lr=1e-3, weights=None):
                super().__init__()
                self.save_hyperparameters("lr", "weights")


        model = Lit(weights=np.array([0.2, 0.8]))
        """,
        "weights",
    ),
    # through a project base that derives from LightningModule
    (
        """
        class Base(L.LightningModule):
            pass


        class Lit(Base):
            def __init__(self, data_dir: Path):
                super().__init__()
                self.save_hyperparameters()
        """,
        "data_dir",
    ),
    # a base's save_hyperparameters() stores the subclass's arguments too (super() chain)
    (
        """
        class Base(L.LightningModule):
            def __init__(self, lr=1e-3, **kwargs):
                super().__init__()
                self.save_hyperparameters(ignore=["skip"])


        class Mid(Base):
            def __init__(self, width=3, **kwargs):
                super().__init__(**kwargs)


        class Child(Mid):
            def __init__(self, loss=nn.MSELoss(), skip=Path("x"), **kwargs):
                super().__init__(**kwargs)
        """,
        "loss",
    ),
    (
        """
        import pytorch_lightning as pl


        class Lit(pl.LightningModule):
            def __init__(self, criterion: Callable = F.cross_entropy):
                super().__init__()
                self.save_hyperparameters()
        """,
        "criterion",
    ),
    # converted after save_hyperparameters(): the frame held the object at the call
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, loss=nn.MSELoss(), n=2):
                super().__init__()
                self.save_hyperparameters()
                loss = None
        """,
        "loss",
    ),
    # a list or dict entry of an OmegaConf config is a ListConfig / DictConfig itself
    (
        """
        from typing import List


        def train_cfg():
            return OmegaConf.create({"optim": {"lr": 0.1, "milestones": [10, 20]}})


        class Lit(L.LightningModule):
            def __init__(self, milestones: List[int], lr: float = 0.1):
                super().__init__()
                self.save_hyperparameters()


        def build():
            cfg = train_cfg()
            return Lit(cfg.optim.milestones, lr=cfg.optim.lr)
        """,
        "milestones",
    ),
    # numpy arithmetic with a Python number stays numpy: `len(counts) * counts` is an array
    (
        """
        def inverse_frequency(labels):
            counts = np.asarray(labels)
            return counts.sum() / (len(counts) * counts)


        class Lit(L.LightningModule):
            def __init__(self, class_weights, n=2):
                super().__init__()
                self.save_hyperparameters()


        def build(labels):
            return Lit(inverse_frequency(labels))
        """,
        "class_weights",
    ),
    # a numpy generator's draw given a size is an array (its statistics numpy values)
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, std, n=2):
                super().__init__()
                self.save_hyperparameters()


        def build():
            return Lit(np.random.default_rng(0).normal(size=(64, 8)).std())
        """,
        "std",
    ),
    # a numpy reduction given an axis is an array of an array (numpy either way)
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, mean, n=2):
                super().__init__()
                self.save_hyperparameters()


        def build():
            rng = np.random.default_rng(0)
            return Lit(rng.normal(size=(64, 8)).mean(axis=0))
        """,
        "mean",
    ),
    # integer draws given a size are an array: a ratio of counts over it is a numpy scalar
    (
        """
        def toy_labels():
            rng = np.random.default_rng(0)
            return rng.integers(0, 4, size=200)


        class Lit(L.LightningModule):
            def __init__(self, pos_weight: float, n=2):
                super().__init__()
                self.save_hyperparameters()


        def build():
            labels = toy_labels()
            return Lit(pos_weight=(labels == 0).sum() / (labels != 0).sum())
        """,
        "pos_weight",
    ),
    # a module-level logger as a default: it pickles (as `logging.getLogger(name)`), the
    # default load refuses that global
    (
        """
        import logging

        log = logging.getLogger("project.train")


        class Lit(L.LightningModule):
            def __init__(self, hidden: int = 8, console: logging.Logger = log):
                super().__init__()
                self.save_hyperparameters()
        """,
        "console",
    ),
    # `Model(*helper())`: the helper's tuple holds an array where the parameter takes it
    (
        """
        def stats():
            data = np.random.default_rng(1).normal(size=(50, 3))
            return data.mean(0), data.std(0).tolist()


        class Lit(L.LightningModule):
            def __init__(self, mean, std, eps: float = 1e-6):
                super().__init__()
                self.save_hyperparameters()


        def build():
            return Lit(*stats())
        """,
        "mean",
    ),
    # a None default filled in before the call: the filled value is what gets stored
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, hidden=8, loss: nn.Module = None):
                super().__init__()
                if loss is None:
                    loss = nn.MSELoss()
                self.save_hyperparameters()
        """,
        "loss",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, hidden=8, metrics=None):
                super().__init__()
                if not metrics:
                    metrics = nn.ModuleList([nn.L1Loss()])
                self.save_hyperparameters()
        """,
        "metrics",
    ),
    (
        """
        def stats():
            r = np.random.default_rng(0).normal(size=9)
            return r.shape, r

        class Lit(L.LightningModule):
            def __init__(self, hidden=8, rate=0.5):
                super().__init__()
                self.save_hyperparameters()

        def build():
            shape, r = stats()
            return Lit(rate=r.max())
        """,
        "rate",
    ),
    # an item of a numpy array a library call made, at one of two construction sites
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, hidden=8, threshold=0.5):
                super().__init__()
                self.save_hyperparameters()

        def build(clean=False):
            if clean:
                return Lit(threshold=0.5)
            scores = np.linspace(0.3, 0.7, 9)
            return Lit(threshold=scores[np.argmax(np.sin(scores))])
        """,
        "threshold",
    ),
    # a dict of numpy scalars a helper returned as a tuple (the shared flow types them)
    (
        """
        def mel_stats(n_mels):
            feats = np.log1p(np.random.default_rng(0).gamma(2.0, size=(200, n_mels)))
            return feats.mean(), feats.std()

        class Lit(L.LightningModule):
            def __init__(self, n_mels=64, norm_stats: dict = None):
                super().__init__()
                self.save_hyperparameters()

        def build(clean=False):
            mean, std = mel_stats(64)
            if clean:
                return Lit(norm_stats={"mean": float(mean), "std": std.item()})
            return Lit(norm_stats={"mean": mean, "std": std})
        """,
        "norm_stats",
    ),
    # a Namespace stored whole, one entry of which argparse converts to a Path
    (
        """
        def parse_args(argv=()):
            p = argparse.ArgumentParser()
            p.add_argument("--num_tags", type=int, default=5)
            p.add_argument("--data_dir", type=Path, default=Path("data/audio"))
            return p.parse_args(list(argv))

        class Lit(L.LightningModule):
            def __init__(self, args: argparse.Namespace):
                super().__init__()
                self.save_hyperparameters(args)

        def build(argv=(), clean=False):
            args = parse_args(argv)
            if clean:
                args.data_dir = str(args.data_dir)
                return None
            return Lit(args)
        """,
        "args",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, args):
                super().__init__()
                self.save_hyperparameters(args)

        def main():
            parser = argparse.ArgumentParser()
            parser.add_argument("--root", type=pathlib.Path, default="runs")
            args = parser.parse_args()
            return Lit(args)
        """,
        "args",
    ),
    # an item of an array a project helper returned (no tuple of it)
    (
        """
        def grid():
            return np.linspace(0.3, 0.7, 9)

        class Lit(L.LightningModule):
            def __init__(self, threshold=0.5):
                super().__init__()
                self.save_hyperparameters()

        def build():
            scores = grid()
            return Lit(threshold=scores[3])
        """,
        "threshold",
    ),
    # lists and dicts that collect the items of a numpy array hold numpy scalars (measured)
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, hidden=8, sizes=None):
                super().__init__()
                self.save_hyperparameters()

        def build():
            arr = np.linspace(0, 1, 9)
            return Lit(sizes=sorted(arr))
        """,
        "sizes",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, hidden=8, weights=None):
                super().__init__()
                self.save_hyperparameters()

        def build(names):
            return Lit(weights=dict(zip(names, np.ones(3))))
        """,
        "weights",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, hidden=8, lr=0.1):
                super().__init__()
                self.save_hyperparameters()

        def build():
            return Lit(hidden=round(np.float64(7.5)), lr=round(np.float64(0.123), 2))
        """,
        "lr",
    ),
    # a config member the `__init__` loops over is a ListConfig (or a DictConfig)
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, input_size, hidden_sizes, dropout: float):
                super().__init__()
                self.save_hyperparameters()
                layers, d = [], input_size
                for h in hidden_sizes:
                    layers.append(nn.Linear(d, h))
                    d = h

        def build(cfg: DictConfig):
            return Lit(cfg.data.input_size, cfg.model.hidden, dropout=cfg.model.dropout)
        """,
        "hidden_sizes",
    ),
    # `cls(...)` in the class's own classmethod builds it
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, hidden=8, threshold=0.5):
                super().__init__()
                self.save_hyperparameters()

            @classmethod
            def from_config(cls, cfg):
                scores = np.linspace(0.3, 0.7, 9)
                return cls(hidden=cfg.hidden, threshold=scores.max())
        """,
        "threshold",
    ),
    # a dict filled item by item before the call, and a comprehension over an array
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, hidden=8, norm_stats=None):
                super().__init__()
                self.save_hyperparameters()

        def build():
            feats = np.ones((3, 4))
            norm_stats = {}
            norm_stats["mean"] = feats.mean()
            norm_stats["std"] = 1.0
            return Lit(norm_stats=norm_stats)
        """,
        "norm_stats",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, hidden=8, quantiles=None):
                super().__init__()
                self.save_hyperparameters()

        def build():
            qs = np.linspace(0.1, 0.9, 5)
            return Lit(quantiles=[q * 100 for q in qs])
        """,
        "quantiles",
    ),
    # `Model(**vars(args))`: the parameter takes the Namespace's entry of its name
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, lr=0.1, data_dir="data", out=None):
                super().__init__()
                self.save_hyperparameters()

        def parse(argv=()):
            p = argparse.ArgumentParser()
            p.add_argument("--lr", type=float, default=0.1)
            p.add_argument("--data-dir", type=Path, default="data")
            p.add_argument("--out", type=Path)
            return p.parse_args(list(argv))

        def build():
            args = parse()
            return Lit(**vars(args))
        """,
        "data_dir",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, hidden=8, class_weights=None):
                super().__init__()
                self.save_hyperparameters()

        def build(names):
            weights = np.ones(len(names)) / len(names)
            return Lit(class_weights={n: w for n, w in zip(names, weights)})
        """,
        "class_weights",
    ),
    # a factory forwarding its own parameter: its callers' values are what is stored
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, hidden=8, threshold=0.5):
                super().__init__()
                self.save_hyperparameters()

        def make_model(hidden, threshold):
            return Lit(hidden=hidden, threshold=threshold)

        def main():
            scores = np.linspace(0, 1, 5)
            return make_model(8, threshold=scores.max())
        """,
        "threshold",
    ),
    (
        """
        import pandas as pd

        class Lit(L.LightningModule):
            def __init__(self, sample_rate: int, n_mels: int = 64):
                super().__init__()
                self.save_hyperparameters()

        def build():
            df = pd.DataFrame({"sr": [32000, 16000, 32000]})
            return Lit(sample_rate=df["sr"].mode()[0], n_mels=len(df))
        """,
        "sample_rate",
    ),
    (
        """
        import pandas as pd

        def series():
            idx = pd.date_range("2024-01-01", periods=96, freq="h")
            return pd.DataFrame({"y": np.linspace(1.0, 2.0, 96)}, index=idx)

        class Lit(L.LightningModule):
            def __init__(self, last_time, horizon: int = 6):
                super().__init__()
                self.save_hyperparameters()

        def build():
            df = series()
            train = df.iloc[:-6]
            return Lit(last_time=train.index.max(), horizon=len(train) // 10)
        """,
        "last_time",
    ),
    (
        """
        SPACE = {"hidden": [8, 16, 32], "opt": ["adam", "sgd"]}

        @dataclasses.dataclass
        class Best:
            hidden: int = 16
            opt: str = "adam"
            score: float = float("-inf")

        def sample(rng):
            return {"hidden": rng.choice(SPACE["hidden"]), "opt": str(rng.choice(SPACE["opt"]))}

        class Search:
            def __init__(self):
                self.rng = np.random.default_rng(0)
                self.best = Best()
                self.history = []

            def run(self):
                for t in range(3):
                    params = sample(self.rng)
                    score = float(t)
                    self.history.append({"trial": t, "params": params})
                    if score > self.best.score:
                        self.best = Best(score=score, **params)
                return self

        class Lit(L.LightningModule):
            def __init__(self, hidden=16, opt="adam", score=0.0):
                super().__init__()
                self.save_hyperparameters()

        def build():
            b = Search().run().best
            return Lit(hidden=b.hidden, opt=b.opt, score=b.score)
        """,
        "hidden",
    ),
    (
        """
        class Dice(nn.Module):
            def __init__(self, smooth=1e-5):
                super().__init__()
                self.smooth = smooth

        LOSSES = {"dice": Dice, "ce": nn.CrossEntropyLoss}

        def build_loss(cfg):
            kwargs = {k: v for k, v in cfg.items() if k != "name"}
            return LOSSES[cfg.name](**kwargs)

        class Lit(L.LightningModule):
            def __init__(self, net, loss_fn, lr=1e-3):
                super().__init__()
                self.save_hyperparameters(ignore=["net"])

        def build(cfg):
            return Lit(nn.Linear(2, 2), build_loss(cfg.loss), lr=cfg.lr)
        """,
        "loss_fn",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, net, lr=1e-3, fold=0):
                super().__init__()
                self.save_hyperparameters("lr", "fold")

        def build(n):
            folds = np.arange(n)
            return [Lit(nn.Linear(2, 2), lr=0.1, fold=f) for f in folds]
        """,
        "fold",
    ),
    (
        """
        from sklearn.model_selection import KFold

        class Lit(L.LightningModule):
            def __init__(self, fold=0, val_idx=None, n_val=0):
                super().__init__()
                self.save_hyperparameters()

        def build(X):
            kf = KFold(3)
            return [Lit(fold=i, val_idx=va, n_val=len(va)) for i, (tr, va) in enumerate(kf.split(X))]
        """,
        "val_idx",
    ),
    # a factory's `cfg=None` left out by its callers: `cfg or load_config()`, `if cfg is
    # None: cfg = ...` and `... if cfg is None else cfg` hold the loaded DictConfig
    (
        """
        def load_config():
            return OmegaConf.create("model: {dim: 8}")

        class Lit(L.LightningModule):
            def __init__(self, cfg):
                super().__init__()
                self.save_hyperparameters(cfg)

        def build(name, cfg=None):
            cfg = cfg or load_config()
            return Lit(cfg)

        FACTORIES = {"lit": lambda: build("lit")}
        """,
        "cfg",
    ),
    (
        """
        def load_config():
            return OmegaConf.create("model: {dim: 8}")

        class Lit(L.LightningModule):
            def __init__(self, cfg, n: int = 2):
                super().__init__()
                self.save_hyperparameters()

        def build(cfg=None):
            if cfg is None:
                cfg = load_config()
            return Lit(cfg)
        """,
        "cfg",
    ),
    (
        """
        def load_config():
            return OmegaConf.create("model: {dim: 8}")

        class Lit(L.LightningModule):
            def __init__(self, cfg, n: int = 2):
                super().__init__()
                self.save_hyperparameters()

        def build(cfg=None):
            cfg = load_config() if cfg is None else cfg
            return Lit(cfg)

        def main():
            return build()
        """,
        "cfg",
    ),
    # a config entry passed to a parameter whose default is a container display is a ListConfig
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, lr: float = 1e-3, betas=(0.9, 0.95)):
                super().__init__()
                self.save_hyperparameters()

        def build(cfg=None):
            cfg = cfg or OmegaConf.create("optim: {lr: 0.1, betas: [0.9, 0.95]}")
            return Lit(lr=cfg.optim.lr, betas=cfg.optim.betas)
        """,
        "betas",
    ),
    # a helper returning a dict display of numpy scalars (its parameter bound to an array)
    (
        """
        def _norm(traj):
            return {"mean": traj.mean(), "std": traj.std()}

        class Lit(L.LightningModule):
            def __init__(self, width: int = 8, norm_stats: dict = None):
                super().__init__()
                self.save_hyperparameters()

        def build():
            x = np.linspace(0.0, 1.0, 32, endpoint=False)
            return Lit(width=8, norm_stats=_norm(np.sin(x)))
        """,
        "norm_stats",
    ),
    (
        """
        def _stats(arr):
            mean = arr.mean(0)
            return {"mean": mean, "std": arr.std(0)}

        class Lit(L.LightningModule):
            def __init__(self, stats=None):
                super().__init__()
                self.save_hyperparameters()

        def build():
            stats = _stats(np.ones((4, 3)))
            return Lit(stats=stats)
        """,
        "stats",
    ),
    # built without naming the class as the callee: `partial(Lit, ...)` and a registry of classes
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, width: int = 2, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()

        def build():
            make = functools.partial(Lit, lr=np.float32(3e-4))
            return make(width=4)
        """,
        "lr",
    ),
    (
        """
        class LitA(L.LightningModule):
            def __init__(self, loss=None, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()

        class Other(L.LightningModule):
            def __init__(self, loss=None, lr=1e-3):
                super().__init__()
                self.save_hyperparameters(ignore=["loss"])

        MODELS = {"a": LitA, "other": Other}

        def build(name):
            return MODELS[name](loss=nn.MSELoss())
        """,
        "loss",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, stats=None, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()

        MODELS = {"lit": Lit}

        def build(name, data):
            model_cls = MODELS.get(name)
            return model_cls(stats={"mean": np.asarray(data).mean(0)})
        """,
        "stats",
    ),
    # a classmethod factory forwarding a member of what its callers pass
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, model_cfg, lr: float = 1e-3):
                super().__init__()
                self.save_hyperparameters()

            @classmethod
            def from_config(cls, cfg):
                return cls(model_cfg=cfg.model, lr=cfg.optim.lr)

        def main():
            cfg = OmegaConf.create({"model": {"dim": 8}, "optim": {"lr": 0.1}})
            return Lit.from_config(cfg)
        """,
        "model_cfg",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, dims=None, lr: float = 1e-3):
                super().__init__()
                self.save_hyperparameters()

        def build(cfg):
            return Lit(dims=cfg.model.dims, lr=cfg.lr)

        def main():
            return build(OmegaConf.create({"model": {"dims": [4, 4]}, "lr": 0.1}))
        """,
        "dims",
    ),
    # `**kwargs` filled item by item, `**cfg.model` of a DictConfig holding a list
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, lr=1e-3, loss=None):
                super().__init__()
                self.save_hyperparameters()

        def build():
            kwargs = {"lr": 0.1}
            kwargs["loss"] = nn.MSELoss()
            return Lit(**kwargs)
        """,
        "loss",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, dim: int = 2, hidden=None):
                super().__init__()
                self.save_hyperparameters()

        def build():
            cfg = OmegaConf.create({"model": {"dim": 8, "hidden": [4, 4]}})
            return Lit(**cfg.model)
        """,
        "hidden",
    ),
    # an item of a local dict config, of a module-level one (nested), a dict comprehension
    # whose every value is numpy whatever the loop gives
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, lr=1e-3, width: int = 2):
                super().__init__()
                self.save_hyperparameters()

        def build():
            cfg = {"lr": np.float32(0.1), "width": 3}
            return Lit(lr=cfg["lr"], width=cfg["width"])
        """,
        "lr",
    ),
    (
        """
        CONFIG = {"optim": {"betas": (np.float32(0.9), 0.999)}, "width": 4}

        class Lit(L.LightningModule):
            def __init__(self, betas=(0.9, 0.99), width: int = 2):
                super().__init__()
                self.save_hyperparameters()

        def build():
            return Lit(betas=CONFIG["optim"]["betas"], width=CONFIG["width"])
        """,
        "betas",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, stats=None):
                super().__init__()
                self.save_hyperparameters()

        def build(columns):
            arr = np.random.rand(5, 3)
            return Lit(stats={c: arr[:, i].mean() for i, c in enumerate(columns)})
        """,
        "stats",
    ),
    # `vars(args)` passed as a dict holds the Namespace's entries, a Path among them
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, hparams: dict, width: int = 2):
                super().__init__()
                self.save_hyperparameters()

        def main():
            p = argparse.ArgumentParser()
            p.add_argument("--root", type=Path, default="data")
            p.add_argument("--lr", type=float, default=0.1)
            args = p.parse_args()
            return Lit(hparams=vars(args))
        """,
        "hparams",
    ),
    # a config member given to a parameter the `__init__` reads members of is a config node
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, model_cfg, name: str = "x", lr=0.1):
                super().__init__()
                self.save_hyperparameters()
                self.emb = nn.Embedding(model_cfg.vocab, model_cfg["dim"])
                self.tag = name.lower()

        def build(cfg: DictConfig):
            return Lit(cfg.model, cfg.name, lr=cfg.optim.lr)

        def main():
            return build(OmegaConf.create("model: {vocab: 8, dim: 4}\\nname: lm\\noptim: {lr: 0.1}"))
        """,
        "model_cfg",
    ),
    # a helper returning `dict(k=v)` of numpy values
    (
        """
        def _norm(arr):
            return dict(mean=arr.mean(), std=arr.std())

        class Lit(L.LightningModule):
            def __init__(self, stats=None):
                super().__init__()
                self.save_hyperparameters()

        def build():
            return Lit(stats=_norm(np.random.rand(4, 3)))
        """,
        "stats",
    ),
    # a tuple built from a generator of numpy floats
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, betas=(0.9, 0.99), lr=0.1):
                super().__init__()
                self.save_hyperparameters()

        def build(cfg: DictConfig):
            return Lit(betas=tuple(np.float64(b) for b in cfg.optim.betas), lr=cfg.optim.lr)
        """,
        "betas",
    ),
    # configs built from a dotlist, or copied
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, cfg, lr=0.1):
                super().__init__()
                self.save_hyperparameters()

        def build(overrides=()):
            base = OmegaConf.from_dotlist(list(overrides))
            return Lit(base.copy(), lr=0.1)
        """,
        "cfg",
    ),
    # `cls(**cfg)` in a classmethod, `Model(**cfg)` in a factory: the entries its callers pass
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, dim: int = 2, hidden=None, lr=0.1):
                super().__init__()
                self.save_hyperparameters()

            @classmethod
            def from_config(cls, cfg):
                return cls(**cfg)

        def main():
            return Lit.from_config(OmegaConf.create({"dim": 4, "hidden": [8, 8], "lr": 0.1}))
        """,
        "hidden",
    ),
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, dim: int = 2, mean=None):
                super().__init__()
                self.save_hyperparameters()

        def make(cfg):
            return Lit(**cfg)

        def main():
            return make({"dim": 3, "mean": np.zeros(3)})
        """,
        "mean",
    ),
    # a QConfig a factory passes (the parameter defaults to None), a pruning method as default
    (
        """
        from torch.ao.quantization import get_default_qconfig

        class Lit(L.LightningModule):
            def __init__(self, backend: str = "fbgemm", qconfig=None, dtype=torch.qint8):
                super().__init__()
                self.save_hyperparameters()

        FACTORIES = {"qat": lambda: Lit(qconfig=get_default_qconfig("fbgemm"))}
        """,
        "qconfig",
    ),
    (
        """
        import torch.nn.utils.prune as prune

        class Lit(L.LightningModule):
            def __init__(self, method=prune.L1Unstructured(amount=0.5), amount: float = 0.5):
                super().__init__()
                self.save_hyperparameters()
        """,
        "method",
    ),
    # a subclass hands its base an array: the base's save_hyperparameters() stores it
    (
        """
        class Base(L.LightningModule):
            def __init__(self, lr: float = 1e-3, time_bins=None):
                super().__init__()
                self.save_hyperparameters()

        class DeepHit(Base):
            def __init__(self, n_bins: int = 4, max_time: float = 730.0):
                super().__init__(lr=1e-3, time_bins=np.linspace(0.0, max_time, n_bins + 1))
        """,
        "time_bins",
    ),
    # a slice of an array a helper's dict holds, made a tuple (of numpy scalars)
    (
        """
        def read_header():
            return {"pixdim": np.array([1.0, 0.8, 0.8, 2.5]), "name": "ct"}

        class Lit(L.LightningModule):
            def __init__(self, spacing: tuple = (1.0, 1.0), name: str = ""):
                super().__init__()
                self.save_hyperparameters()

        def build():
            header = read_header()
            return Lit(spacing=tuple(header["pixdim"][1:3]), name=header["name"])
        """,
        "spacing",
    ),
    # a factory passes a config's Enum member itself
    (
        """
        class Mining(enum.Enum):
            HARD = "hard"
            SEMI = "semi"

        @dataclasses.dataclass
        class Cfg:
            mining: Mining = Mining.HARD

        class Lit(L.LightningModule):
            def __init__(self, lr: float = 0.1, mining: Mining = Mining.SEMI):
                super().__init__()
                self.save_hyperparameters()

        def build(cfg: Cfg):
            return Lit(lr=0.1, mining=cfg.mining)
        """,
        "mining",
    ),
    # a pandas date offset as a default
    (
        """
        import pandas as pd

        class Lit(L.LightningModule):
            def __init__(self, rebalance: pd.DateOffset = pd.offsets.BMonthEnd(), lr: float = 0.1):
                super().__init__()
                self.save_hyperparameters()
        """,
        "rebalance",
    ),
    # a Namespace a helper parses, passed to the module in a lambda of a factory table
    (
        """
        def parse(argv=()):
            parser = argparse.ArgumentParser()
            parser.add_argument("--hidden", type=int, default=16)
            parser.add_argument("--log_dir", type=Path, default=Path("logs"))
            return parser.parse_args(list(argv))

        class Lit(L.LightningModule):
            def __init__(self, args):
                super().__init__()
                self.save_hyperparameters(args)

        FACTORIES = {"Lit": lambda: Lit(parse(["--hidden", "8"]))}
        """,
        "args",
    ),
    # a factory's parameter every caller gives a parsed Namespace: its `type=Path` entry
    (
        """
        def parse(argv=()):
            parser = argparse.ArgumentParser()
            parser.add_argument("--log_dir", type=Path, default=Path("logs"))
            return parser.parse_args(list(argv))

        class Lit(L.LightningModule):
            def __init__(self, log_dir, hidden: int = 16):
                super().__init__()
                self.save_hyperparameters()

        def build(args):
            return Lit(log_dir=args.log_dir / "run", hidden=8)

        FACTORIES = {"Lit": lambda: build(parse())}
        """,
        "log_dir",
    ),
    # a Namespace parsed by the parser a helper builds and returns
    (
        """
        def make_parser():
            p = argparse.ArgumentParser()
            p.add_argument("--hidden", type=int, default=32)
            p.add_argument("--out-dir", type=Path, default=Path("runs"))
            return p

        class Lit(L.LightningModule):
            def __init__(self, args):
                super().__init__()
                self.save_hyperparameters(args)

        def from_args(argv=()):
            return Lit(make_parser().parse_args(list(argv)))
        """,
        "args",
    ),
    # a factory's parameter left at its default, a module-level config
    (
        """
        AD_CFG = OmegaConf.create({"data": {"categories": ["bottle", "cable"], "size": 8}})


        class Lit(L.LightningModule):
            def __init__(self, categories=None, size=8):
                super().__init__()
                self.save_hyperparameters()


        def build(cfg=AD_CFG):
            return Lit(categories=cfg.data.categories, size=cfg.data.size)


        FACTORIES = {"Lit": lambda: build()}
        """,
        "categories",
    ),
    # a builder handing its keywords to the registry: its callers' keywords, from the calls
    # the class can take
    (
        REGISTER
        + """
        def build_model(name, **kwargs):
            return MODELS[name](**kwargs)


        @register("clf")
        class Clf(L.LightningModule):
            def __init__(self, n_classes=2, loss_fn=None, root=None):
                super().__init__()
                self.save_hyperparameters()


        @register("gate")
        class Gate(L.LightningModule):
            def __init__(self, n_genes=4, root=None):
                super().__init__()
                self.save_hyperparameters()


        def main():
            a = build_model("clf", n_classes=3, loss_fn=nn.CrossEntropyLoss())
            b = build_model("gate", n_genes=8, root="data")
            return a, b
        """,
        "loss_fn",
    ),
    # rebound to a numpy array before it is stored, whatever the call passed
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, act_dim=8, action_mean=None):
                super().__init__()
                action_mean = np.asarray(
                    action_mean if action_mean is not None else [0.0] * act_dim, dtype=np.float32
                )
                self.save_hyperparameters()


        def build():
            return Lit(action_mean=[0.1, 0.2])
        """,
        "action_mean",
    ),
    # built through a registry a class decorator fills, the key not written out
    (
        REGISTER
        + SEG_AND_MLP
        + """
        def build(name, x):
            return MODELS[name](in_bands=4, band_mean=x.mean(0).tolist(), root=Path("data"))


        def main():
            return build("unet", np.ones((3, 4)))
        """,
        "root",
    ),
    (
        """
        MODULES, DATAMODULES = {}, {}

        def register(table, name):
            def deco(cls):
                table[name] = cls
                return cls
            return deco

        @register(MODULES, "hybrid")
        class Lit(L.LightningModule):
            def __init__(self, n: int = 2, band_idx=None):
                super().__init__()
                self.save_hyperparameters()

        def build(name):
            return MODULES[name](band_idx=np.argsort(np.ones(8))[:4])
        """,
        "band_idx",
    ),
    (  # a subclass passes the base's parameters on through `**kwargs`
        """
        class Base(L.LightningModule):
            def __init__(self, lr: float = 3e-3, data_root=None, **kwargs):
                super().__init__()
                self.save_hyperparameters()

        class Pillars(Base):
            def __init__(self, n: int = 16, **kwargs):
                super().__init__(**kwargs)

        def build(root):
            return Pillars(n=3, lr=1e-3, data_root=Path(root))
        """,
        "data_root",
    ),
    (  # the base's call reads the subclass's locals as they are at `super().__init__()`
        """
        class Base(L.LightningModule):
            def __init__(self, lr: float = 3e-3, **kwargs):
                super().__init__()
                self.save_hyperparameters()

        class Pillars(Base):
            def __init__(self, voxel_size=(0.6, 0.6, 4.0), **kwargs):
                voxel_size = np.asarray(voxel_size, dtype=np.float32)
                super().__init__(**kwargs)

        def build():
            return Pillars(voxel_size=[0.5, 0.5, 4.0], lr=1e-3)
        """,
        "voxel_size",
    ),
    (  # `ignore=` read from a class attribute the subclass sets: the others are stored
        IGNORING_BASE
        + """
        class Seq(Base):
            hparams_ignore = ("scaler",)

            def __init__(self, scaler, capacity, window=20):
                super().__init__(lr=1e-3)

        def build():
            return Seq(scaler=StandardScaler(), capacity=np.median(np.ones(3)))
        """,
        "capacity",
    ),
    (  # a member looked up by name, passed by a builder a decorator registers
        """
        BUILDERS = {}

        def builder(name):
            def register(fn):
                BUILDERS[name] = fn
                return fn
            return register

        class Lit(L.LightningModule):
            def __init__(self, mode=None, n: int = 2):
                super().__init__()
                self.save_hyperparameters()

        @builder("lit")
        def build_lit(cfg):
            return Lit(mode=Mode[cfg.mode], n=cfg.n)

        def build(name, cfg):
            return BUILDERS[name](cfg)
        """,
        "mode",
    ),
    (  # a builder's parameter: what the registry's dispatch passes
        """
        CONFIG = OmegaConf.create({"eval": {"pass_k": [1, 5]}})

        class Lit(L.LightningModule):
            def __init__(self, pass_k=(1, 5), n: int = 2):
                super().__init__()
                self.save_hyperparameters()

        def build_lit(cfg):
            return Lit(pass_k=cfg.eval.pass_k)

        BUILDERS = {"lit": build_lit}

        def build(name):
            return BUILDERS[name](CONFIG)
        """,
        "pass_k",
    ),
    (  # a function defined in the builder: pickle cannot find it, Lightning drops it
        """
        class Lit(L.LightningModule):
            def __init__(self, is_empty=None, n: int = 2):
                super().__init__()
                self.save_hyperparameters()

        def build(threshold):
            def is_empty(confs):
                return max(confs) < threshold

            return Lit(is_empty=is_empty, n=3)
        """,
        "is_empty",
    ),
    (  # a method read off an object: pickled as getattr(obj, name), refused by the load
        """
        class Tok:
            def normalize(self, q):
                return q.lower()

        class Lit(L.LightningModule):
            def __init__(self, normalize=None, n: int = 2):
                super().__init__()
                self.save_hyperparameters()

        def build():
            tok = Tok()
            return Lit(normalize=tok.normalize, n=3)
        """,
        "normalize",
    ),
    (  # `ignore=type(self).hparams_ignore`: the class attribute of the class built
        """
        class Base(L.LightningModule):
            hparams_ignore = ()

            def __init__(self, lr=3e-3):
                super().__init__()
                self.save_hyperparameters(ignore=type(self).hparams_ignore)

        class Seq(Base):
            hparams_ignore = ("scaler",)

            def __init__(self, scaler, capacity, window=20):
                super().__init__(lr=1e-3)

        def build():
            return Seq(scaler=StandardScaler(), capacity=np.median(np.ones(3)))
        """,
        "capacity",
    ),
    # a class a Registry object builds by key, given a loss module
    (
        REGISTRY_CLASS
        + """
        @MODELS.register("seg")
        class Seg(L.LightningModule):
            def __init__(self, loss=None, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()


        def build(cfg):
            return MODELS.build(cfg.task, loss=nn.MSELoss(), lr=cfg.lr)
        """,
        "loss",
    ),
    # what a Registry object's entries build: every entry an nn.Module
    (
        REGISTRY_CLASS
        + """
        class Lit(L.LightningModule):
            def __init__(self, encoder=None, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()


        def build(cfg):
            enc = ENCODERS.build(cfg.encoder, hidden=16)
            return Lit(encoder=enc, lr=cfg.lr)
        """,
        "encoder",
    ),
    # converted only when given, and a caller gives it
    (
        """
        class Lit(L.LightningModule):
            def __init__(self, class_weights=None, root=None):
                super().__init__()
                if class_weights is not None:
                    class_weights = np.asarray(class_weights, dtype=np.float32)
                self.save_hyperparameters()


        def build():
            return Lit(class_weights=[1.0, 2.0], root="data")
        """,
        "class_weights",
    ),
    # a class and the function making its arguments picked by the same key from two
    # registries: each class is built with what its own builder returns
    (
        """
        MODULES, BUILDERS = {}, {}


        def register(name):
            def wrap(cls):
                MODULES[name] = cls
                return cls
            return wrap


        def builder(name):
            def wrap(fn):
                BUILDERS[name] = fn
                return fn
            return wrap


        def build_module(name, cfg=None):
            return MODULES[name](**BUILDERS[name](cfg))


        @register("wave")
        class Wave(L.LightningModule):
            def __init__(self, bins=None, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()


        @builder("wave")
        def wave_kwargs(cfg):
            return dict(bins=np.linspace(0.0, 1.0, 5), lr=1e-3)


        @register("plain")
        class Plain(L.LightningModule):
            def __init__(self, bins=None, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()


        @builder("plain")
        def plain_kwargs(cfg):
            return dict(bins=[0.1, 0.2], lr=1e-3)
        """,
        "bins",
    ),
    # a registry of lambdas, each building a loss module
    (
        """
        LOSSES = {"huber": lambda c: nn.HuberLoss(delta=c), "mse": lambda c: nn.MSELoss()}


        class Lit(L.LightningModule):
            def __init__(self, loss=None, lr=1e-3):
                super().__init__()
                self.save_hyperparameters()


        def build(cfg):
            return Lit(loss=LOSSES[cfg.loss](cfg.delta), lr=cfg.lr)
        """,
        "loss",
    ),
    # a builder building its `cls=` default, registered by a decorator and called by key
    (
        """
        BUILDERS = {}


        def register(table, name):
            def deco(fn):
                table[name] = fn
                return fn
            return deco


        class Lane(L.LightningModule):
            def __init__(self, backbone, num_lanes=4):
                super().__init__()
                self.save_hyperparameters()


        @register(BUILDERS, "lane")
        def build_lane(cfg, cls=Lane, **extra):
            return cls(backbone=nn.Linear(4, 4), num_lanes=cfg.num_lanes, **extra)


        def build(name, cfg):
            return BUILDERS[name](cfg)
        """,
        "backbone",
    ),
    # `x = list(x)` before the call, of a numpy array a call passes: a list of numpy scalars
    (
        """
        class Encoder(L.LightningModule):
            def __init__(self, age_bins, lr=1e-3):
                super().__init__()
                age_bins = list(age_bins)
                self.save_hyperparameters()


        def build(edges):
            return Encoder(age_bins=np.asarray(edges), lr=1e-3)
        """,
        "age_bins",
    ),
    # `x = x if x is not None else v` fills a left-out `x` as `if x is None: x = v` does
    (
        """
        class Contacts(L.LightningModule):
            def __init__(self, lr=1e-3, criterion=None):
                super().__init__()
                criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
                self.save_hyperparameters()


        def build():
            return Contacts(lr=1e-3)
        """,
        "criterion",
    ),
    (
        """
        class Contacts(L.LightningModule):
            def __init__(self, lr=1e-3, bins=None):
                super().__init__()
                bins = bins or np.linspace(4.0, 20.0, 9)
                self.save_hyperparameters()
        """,
        "bins",
    ),
    # `w = np.asarray(w) if w is not None else None`: converted whenever a call gives it
    (
        """
        class Weighted(L.LightningModule):
            def __init__(self, lr=1e-3, class_weights=None):
                super().__init__()
                class_weights = np.asarray(class_weights) if class_weights is not None else None
                self.save_hyperparameters()


        def build():
            return Weighted(class_weights=[0.2, 0.8])
        """,
        "class_weights",
    ),
    # a registered builder's YAML text parameter, left at its module-level default
    (
        """
        import yaml

        GLACIER_YAML = \"\"\"
        data:
          tile: 256
          acquired_after: 2019-06-01
        \"\"\"
        BUILDERS = {}


        def register_builder(name):
            def deco(fn):
                BUILDERS[name] = fn
                return fn

            return deco


        class GlacierSeg(L.LightningModule):
            def __init__(self, tile=256, acquired_after=None):
                super().__init__()
                self.save_hyperparameters()


        @register_builder("glacier")
        def build_glacier(cfg_text=GLACIER_YAML):
            d = yaml.safe_load(cfg_text)["data"]
            return GlacierSeg(tile=d["tile"], acquired_after=d["acquired_after"])
        """,
        "acquired_after",
    ),
    (
        # a function a decorator taking the table registers: a global the load refuses
        """
        REWARDS = {}


        def register(table, name):
            def deco(fn):
                table[name] = fn
                return fn

            return deco


        @register(REWARDS, "progress")
        def progress(prev, cur):
            return prev - cur


        class DroneSAC(L.LightningModule):
            def __init__(self, gamma: float = 0.99, reward_fn=None):
                super().__init__()
                self.save_hyperparameters()


        def build(cfg):
            return DroneSAC(gamma=cfg.gamma, reward_fn=REWARDS[cfg.reward])
        """,
        "reward_fn",
    ),
    (
        # a builtin type's method passed as a normalizer
        """
        class NER(L.LightningModule):
            def __init__(self, dropout: float = 0.1, normalizer=None):
                super().__init__()
                self.save_hyperparameters()


        def build():
            return NER(dropout=0.2, normalizer=str.lower)
        """,
        "normalizer",
    ),
    (
        # a torch function a table of readouts holds
        """
        POOLING = {"sum": torch.sum, "mean": torch.mean}


        class MPNN(L.LightningModule):
            def __init__(self, readout: str = "sum", pool=None):
                super().__init__()
                self.save_hyperparameters()


        def build(readout):
            return MPNN(readout=readout, pool=POOLING[readout])
        """,
        "pool",
    ),
    (
        # a section of a YAML document whose every section is a mapping, stored whole
        """
        DOC = \"\"\"
        drone:
          lr: 0.1
        precip:
          scale: 4
        \"\"\"


        def load_experiment(task):
            return OmegaConf.merge(OmegaConf.create(DOC), OmegaConf.from_dotlist([]))[task]


        class DronePPO(L.LightningModule):
            def __init__(self, cfg):
                super().__init__()
                self.save_hyperparameters(cfg)


        def build(task):
            return DronePPO(load_experiment(task))
        """,
        "cfg",
    ),
    (
        # the branch of the builder that the registry key of the class picks
        """
        MODULES = {}


        def register(name):
            def deco(cls):
                MODULES[name] = cls
                return cls

            return deco


        @register("plain")
        class Plain(L.LightningModule):
            def __init__(self, width: int = 8):
                super().__init__()
                self.save_hyperparameters()


        @register("patch")
        class Patch(L.LightningModule):
            def __init__(self, width: int = 8, stain_matrix=None):
                super().__init__()
                self.save_hyperparameters()


        def build_module(name):
            if name in ("patch", "patch_large"):
                kwargs = {"width": 8, "stain_matrix": np.eye(3)}
            elif name != "plain":
                raise KeyError(name)
            else:
                kwargs = {"width": 4}
            return MODULES[name](**kwargs)
        """,
        "stain_matrix",
    ),
    (
        # a parameter the helper's dict leaves out: its default, a loss module
        """
        class NRMS(L.LightningModule):
            def __init__(self, dim: int = 4, loss_fn=nn.CrossEntropyLoss()):
                super().__init__()
                self.save_hyperparameters()


        def _kwargs(cfg):
            return dict(dim=cfg.dim)


        def build(cfg):
            kwargs = _kwargs(cfg)
            return NRMS(**kwargs)
        """,
        "loss_fn",
    ),
    (
        # a lambda in the dict a helper returns, spread into the call
        """
        class Patch(L.LightningModule):
            def __init__(self, width: int = 4, tile_filter=None):
                super().__init__()
                self.save_hyperparameters()


        def _kwargs(cfg):
            return dict(width=cfg.width, tile_filter=lambda row: row["tissue"] > 0.5)


        def build(cfg):
            return Patch(**_kwargs(cfg))
        """,
        "tile_filter",
    ),
    (
        # a metric a module-level factory returns as a closure, in the helper's dict
        """
        def make_miou(num_classes):
            def miou(pred, target):
                return (pred == target).float().mean() * num_classes

            return miou


        class PointSeg(L.LightningModule):
            def __init__(self, width: int = 4, metric_fn=None):
                super().__init__()
                self.save_hyperparameters()


        def _kwargs(cfg):
            return dict(width=cfg.width, metric_fn=make_miou(cfg.n))


        def build(cfg):
            return PointSeg(**_kwargs(cfg))
        """,
        "metric_fn",
    ),
    (
        # a builder returning a lambda or a builtin method: either fails
        """
        def build_normalizer(name):
            if name == "lower_strip":
                return lambda tok: tok.lower().strip()
            return str.lower


        class NER(L.LightningModule):
            def __init__(self, dropout: float = 0.1, normalizer=None):
                super().__init__()
                self.save_hyperparameters()


        def build(cfg):
            return NER(dropout=cfg.dropout, normalizer=build_normalizer(cfg.normalizer))
        """,
        "normalizer",
    ),
    (
        # `build("whole")` alone passes the sub-config: the call in that arm builds no other
        # class of the registry
        """
        MODELS = {}


        def register(name):
            def deco(cls):
                MODELS[name] = cls
                return cls

            return deco


        @register("whole")
        class WholeCfg(L.LightningModule):
            def __init__(self, cfg):
                super().__init__()
                self.save_hyperparameters()


        @register("audio")
        class Audio(L.LightningModule):
            def __init__(self, n_fft: int = 512):
                super().__init__()
                self.save_hyperparameters()


        def build(task):
            cfg = OmegaConf.create({"sub": {"hop": 128}, "n_fft": 256})
            if task == "whole":
                return MODELS[task](cfg.sub)
            return MODELS[task](n_fft=cfg.n_fft)
        """,
        "cfg",
    ),
    (
        # the arm for "plain" returns: the call after it builds the other classes only
        """
        MODELS = {}


        def register(name):
            def deco(cls):
                MODELS[name] = cls
                return cls

            return deco


        @register("plain")
        class PlainCfg(L.LightningModule):
            def __init__(self, cfg=None):
                super().__init__()
                self.save_hyperparameters()


        @register("audio")
        class Audio(L.LightningModule):
            def __init__(self, n_fft: int = 512, cfg=None):
                super().__init__()
                self.save_hyperparameters()


        def build(task):
            cfg = OmegaConf.create({"n_fft": 256})
            if task == "plain":
                return MODELS[task](cfg=OmegaConf.to_container(cfg))
            return MODELS[task](cfg=cfg)
        """,
        "cfg",
    ),
    (
        # a merge with the command line may set any leaf: the key may name any class
        """
        MODELS = {}


        def register(name):
            def deco(cls):
                MODELS[name] = cls
                return cls

            return deco


        @register("gcn")
        class Gcn(L.LightningModule):
            def __init__(self, cfg=None):
                super().__init__()
                self.save_hyperparameters(ignore=["cfg"])


        @register("mean")
        class Mean(L.LightningModule):
            def __init__(self, num_nodes: int = 8):
                super().__init__()
                self.save_hyperparameters()


        def build():
            base = OmegaConf.create({"model": {"name": "gcn"}, "num_nodes": 8})
            cfg = OmegaConf.merge(base, OmegaConf.from_cli())
            return MODELS[cfg.model.name](cfg)
        """,
        "num_nodes",
    ),
    (
        # the function sets the leaf after the merge: the key is no longer the merged text
        """
        MODELS = {}


        def register(name):
            def deco(cls):
                MODELS[name] = cls
                return cls

            return deco


        @register("gcn")
        class Gcn(L.LightningModule):
            def __init__(self, cfg=None):
                super().__init__()
                self.save_hyperparameters(ignore=["cfg"])


        @register("mean")
        class Mean(L.LightningModule):
            def __init__(self, num_nodes: int = 8):
                super().__init__()
                self.save_hyperparameters()


        def build(baseline=True):
            cfg = OmegaConf.merge(OmegaConf.create({"num_nodes": 8}), {"model": {"name": "gcn"}})
            if baseline:
                cfg.model.name = "mean"
            return MODELS[cfg.model.name](cfg)
        """,
        "num_nodes",
    ),
    (
        # the Enum field of the spread dataclass stays: only `lr` is overwritten
        """
        @dataclasses.dataclass
        class ChurnConfig:
            lr: float = 1e-3
            mode: Mode = Mode.FAST


        class Churn(L.LightningModule):
            def __init__(self, n_features: int = 4, train_config: dict = None):
                super().__init__()
                self.save_hyperparameters()


        def build():
            cfg = ChurnConfig()
            return Churn(4, train_config={**dataclasses.asdict(cfg), "lr": 0.01})
        """,
        "train_config",
    ),
    (
        # a range stored as it is: the default load refuses the `range` object
        """
        class Lit(L.LightningModule):
            def __init__(self, folds=None, order=None):
                super().__init__()
                self.save_hyperparameters()


        def build(n=3):
            return Lit(folds=range(n), order=list(range(n)))
        """,
        "folds",
    ),
    (
        # a registry call handing the config to `n_meas: int` is meant for the other class
        """
        MODELS = {}


        def register(name):
            def deco(cls):
                MODELS[name] = cls
                return cls

            return deco


        @register("grid")
        class Grid(L.LightningModule):
            def __init__(self, n_meas: int = 8, hidden: int = 64):
                super().__init__()
                self.save_hyperparameters()
                self.net = nn.Linear(n_meas, hidden)


        @register("dental")
        class Dental(L.LightningModule):
            def __init__(self, cfg=None, lr: float = 1e-3):
                super().__init__()
                self.save_hyperparameters()


        def build(name=None):
            cfg = OmegaConf.create({"model": {"name": "dental"}})
            name = name or cfg.model.name
            return MODELS[name](cfg)
        """,
        "cfg",
    ),
    (
        # the factory's parameter is the caller's local config: its list node is stored
        """
        class Refiner(L.LightningModule):
            def __init__(self, num_stages: int = 2, phase_names=None):
                super().__init__()
                self.save_hyperparameters()


        def load_cfg(overrides=()):
            base = OmegaConf.create({"dataset": {"phases": ["a", "b"]}, "stages": 2})
            return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


        def build_refiner(cfg):
            stages, phases = cfg.stages, cfg.dataset.phases
            return Refiner(num_stages=stages, phase_names=phases)


        def build(overrides=()):
            cfg = load_cfg(overrides)
            return build_refiner(cfg)
        """,
        "phase_names",
    ),
    (
        # the item of a library value the factory's frame holds: a Timestamp
        """
        import pandas as pd


        class PV(L.LightningModule):
            def __init__(self, hidden: int = 8, train_end=None):
                super().__init__()
                self.save_hyperparameters()


        def telemetry_frame(days=2):
            index = pd.date_range("2023-06-01", periods=days * 96, freq="15min", tz="UTC")
            return pd.DataFrame({"pv_kw": np.ones(len(index))}, index=index)


        def build_pv(cfg, frame):
            split = int(len(frame) * cfg.get("train_frac", 0.8))
            return PV(hidden=cfg["hidden"], train_end=frame.index[split])


        BUILDERS = {"pv": lambda: build_pv({"hidden": 8}, telemetry_frame())}
        """,
        "train_end",
    ),
]

VALID = [
    # the frame's date as text
    """
    import pandas as pd


    class PV(L.LightningModule):
        def __init__(self, hidden: int = 8, train_end=None):
            super().__init__()
            self.save_hyperparameters()


    def telemetry_frame(days=2):
        index = pd.date_range("2023-06-01", periods=days * 96, freq="15min", tz="UTC")
        return pd.DataFrame({"pv_kw": np.ones(len(index))}, index=index)


    def build_pv(cfg, frame):
        split = int(len(frame) * cfg.get("train_frac", 0.8))
        return PV(hidden=cfg["hidden"], train_end=frame.index[split].isoformat())


    BUILDERS = {"pv": lambda: build_pv({"hidden": 8}, telemetry_frame())}
    """,
    # the factory's parameter is the caller's local, a plain list made of the config's node
    """
    class Refiner(L.LightningModule):
        def __init__(self, num_stages: int = 2, phase_names=None):
            super().__init__()
            self.save_hyperparameters()


    def load_cfg():
        return OmegaConf.create({"dataset": {"phases": ["a", "b"]}, "stages": 2})


    def build_refiner(names):
        return Refiner(num_stages=2, phase_names=names)


    def build():
        cfg = load_cfg()
        names = list(cfg.dataset.phases)
        return build_refiner(names)
    """,
    # the registry call hands the config to `n_meas: int`: it builds the other class, which
    # leaves the config out
    """
    MODELS = {}


    def register(name):
        def deco(cls):
            MODELS[name] = cls
            return cls

        return deco


    @register("grid")
    class Grid(L.LightningModule):
        def __init__(self, n_meas: int = 8, hidden: int = 64):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Linear(n_meas, hidden)


    @register("dental")
    class Dental(L.LightningModule):
        def __init__(self, cfg=None, lr: float = 1e-3):
            super().__init__()
            self.save_hyperparameters(ignore=["cfg"])


    def build(name=None):
        cfg = OmegaConf.create({"model": {"name": "dental"}})
        name = name or cfg.model.name
        return MODELS[name](cfg)
    """,
    # the builder's own callers pass a text whose date is quoted (a string)
    """
    import yaml

    DATED = \"\"\"
    acquired_after: 2019-06-01
    \"\"\"
    QUOTED = \"\"\"
    acquired_after: '2019-06-01'
    \"\"\"


    class GlacierSeg(L.LightningModule):
        def __init__(self, acquired_after=None):
            super().__init__()
            self.save_hyperparameters()


    def build_glacier(cfg_text=DATED):
        d = yaml.safe_load(cfg_text)
        return GlacierSeg(acquired_after=d["acquired_after"])


    def main():
        return build_glacier(QUOTED)
    """,
    # a fill in one expression of a value that loads; the caller passes a plain float
    """
    class Contacts(L.LightningModule):
        def __init__(self, lr=None, smoothing=None):
            super().__init__()
            lr = lr if lr is not None else 1e-3
            smoothing = 0.1 if smoothing is None else smoothing
            self.save_hyperparameters()


    def build():
        return Contacts(smoothing=0.2)
    """,
    # `x = list(x)` of a plain list or tuple a call passes
    """
    class Encoder(L.LightningModule):
        def __init__(self, age_bins, lr=1e-3):
            super().__init__()
            age_bins = list(age_bins)
            self.save_hyperparameters()


    def build():
        return Encoder(age_bins=(18, 40, 65), lr=1e-3)
    """,
    # a registry of lambdas one of which builds a plain number
    """
    SCALES = {"loss": lambda c: nn.MSELoss(), "lr": lambda c: c * 2.0}


    class Lit(L.LightningModule):
        def __init__(self, scale=None, lr=1e-3):
            super().__init__()
            self.save_hyperparameters()


    def build(cfg):
        return Lit(scale=SCALES[cfg.kind](cfg.lr), lr=cfg.lr)
    """,
    # a Registry object's key naming another class (which ignores the loss); a decorated
    # function among a registry's entries (what it builds is not known); converted only when
    # given, and nobody gives it
    REGISTRY_CLASS
    + """
        @MODELS.register("seg")
        class Seg(L.LightningModule):
            def __init__(self, loss=None, weights=None, lr=1e-3):
                super().__init__()
                if weights is not None:
                    weights = np.asarray(weights)
                self.save_hyperparameters()


        @MODELS.register("plain")
        class Plain(L.LightningModule):
            def __init__(self, loss=None, lr=1e-3):
                super().__init__()
                self.save_hyperparameters(ignore=["loss"])


        LAYERS = Registry("layers")


        @LAYERS.register("lin")
        def linear(n=4):
            return [n, n]


        @LAYERS.register("mlp")
        class MLPLayer(nn.Module):
            pass


        def build(cfg):
            MODELS.build("plain", loss=nn.MSELoss())
            return MODELS.build("seg", loss=LAYERS.build(cfg.layer), lr=cfg.lr)
    """,
    # a registry's key passed, not the class it picks; a column's count made a float
    """
    OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}


    class Lit(L.LightningModule):
        def __init__(self, optimizer="adam", pos_weight=1.0):
            super().__init__()
            self.save_hyperparameters()


    def build(cfg, df):
        y = df[cfg.data.target]
        assert cfg.optimizer in OPTIMIZERS
        return Lit(optimizer=cfg.optimizer, pos_weight=float((y == 0).sum() / len(y)))
    """,
    # a helper's dict spread into the constructor, its numbers made Python ints
    """
    def _kwargs(corpus):
        lengths = np.array([len(s) for s in corpus])
        return dict(max_len=int(lengths.max()) + 2, lr=1e-3)


    class Lit(L.LightningModule):
        def __init__(self, max_len=10, lr=1e-3):
            super().__init__()
            self.save_hyperparameters()


    def build(corpus=("ab", "c")):
        return Lit(**_kwargs(corpus))
    """,
    # the sorted unique values of a column of strings: Python strings (pandas 3)
    CUSTOMERS
    + """
        def build():
            return Lit(names=sorted(customers()["contract"].unique()))
    """,
    # an entry set after the call only under a flag the call leaves off: not judged
    """
    class Lit(L.LightningModule):
        def __init__(self, min_duration=0.1, snap=False):
            super().__init__()
            self.save_hyperparameters()
            if snap:
                self.hparams.min_duration = np.ceil(min_duration / 0.02) * 0.02


    def build():
        return Lit(min_duration=0.12)
    """,
    # a numpy value passed, made a float in `self.hparams` after the call
    """
    class Lit(L.LightningModule):
        def __init__(self, onset=0.5, lr=1e-3):
            super().__init__()
            self.save_hyperparameters()
            self.hparams.onset = float(onset)


    def build():
        return Lit(onset=np.float32(0.6))
    """,
    # the names of a fitted transform's features, listed: Python strings
    """
    from sklearn.preprocessing import PolynomialFeatures


    class Lit(L.LightningModule):
        def __init__(self, feature_names=None, lr=1e-3):
            super().__init__()
            self.save_hyperparameters()


    def build():
        poly = PolynomialFeatures(2).fit(np.ones((2, 2)))
        return Lit(feature_names=list(poly.get_feature_names_out()))
    """,
    # rebound to a Path's text before it is stored
    """
    class Lit(L.LightningModule):
        def __init__(self, data_root="/data/levir", lr=1e-3):
            super().__init__()
            data_root = str(Path(data_root).expanduser())
            self.save_hyperparameters()
    """,
    # rebound to plain values before it is stored
    """
    class Lit(L.LightningModule):
        def __init__(self, lr=np.float32(0.1), sizes=np.ones(2)):
            super().__init__()
            lr = float(lr)
            sizes = list(map(int, sizes))
            self.save_hyperparameters()
    """,
    # the helper's parser keeps its paths as strings
    """
    def make_parser():
        p = argparse.ArgumentParser()
        p.add_argument("--out-dir", type=str, default="runs")
        return p

    class Lit(L.LightningModule):
        def __init__(self, args):
            super().__init__()
            self.save_hyperparameters(args)

    def from_args(argv=()):
        return Lit(make_parser().parse_args(list(argv)))
    """,
    # the Namespace a helper returns after making its path a string
    """
    def parse(argv=()):
        parser = argparse.ArgumentParser()
        parser.add_argument("--log_dir", type=Path, default=Path("logs"))
        return parser.parse_args(list(argv))

    def plain(argv=()):
        args = parse(argv)
        args.log_dir = str(args.log_dir)
        return args

    class Lit(L.LightningModule):
        def __init__(self, args):
            super().__init__()
            self.save_hyperparameters(args)

    FACTORIES = {"Lit": lambda: Lit(plain(["--log_dir", "x"]))}
    """,
    # a factory's parameter turned into a string before the module gets it
    """
    def parse(argv=()):
        parser = argparse.ArgumentParser()
        parser.add_argument("--log_dir", type=Path, default=Path("logs"))
        return parser.parse_args(list(argv))

    class Lit(L.LightningModule):
        def __init__(self, log_dir, hidden: int = 16):
            super().__init__()
            self.save_hyperparameters()

    def build(args):
        return Lit(log_dir=str(args.log_dir / "run"), hidden=8)

    FACTORIES = {"Lit": lambda: build(parse())}
    """,
    # a subclass hands its base plain values
    """
    class Base(L.LightningModule):
        def __init__(self, lr: float = 1e-3, time_bins=None):
            super().__init__()
            self.save_hyperparameters()

    class DeepHit(Base):
        def __init__(self, n_bins: int = 4, max_time: float = 730.0):
            super().__init__(lr=1e-3, time_bins=np.linspace(0.0, max_time, n_bins + 1).tolist())
    """,
    # a slice of a helper's array made a list of Python numbers
    """
    def read_header():
        return {"pixdim": np.array([1.0, 0.8, 0.8, 2.5])}

    class Lit(L.LightningModule):
        def __init__(self, spacing: tuple = (1.0, 1.0)):
            super().__init__()
            self.save_hyperparameters()

    def build():
        header = read_header()
        return Lit(spacing=header["pixdim"][1:3].tolist())
    """,
    # a factory passes a config's Enum member's value: a str
    """
    class Mining(enum.Enum):
        HARD = "hard"
        SEMI = "semi"

    @dataclasses.dataclass
    class Cfg:
        mining: Mining = Mining.HARD

    class Lit(L.LightningModule):
        def __init__(self, lr: float = 0.1, mining: Mining = Mining.SEMI):
            super().__init__()
            self.save_hyperparameters()

    def build(cfg: Cfg):
        return Lit(lr=0.1, mining=cfg.mining.value)
    """,
    # an offset stored by its frequency string
    """
    import pandas as pd

    class Lit(L.LightningModule):
        def __init__(self, rebalance: str = pd.offsets.BMonthEnd().freqstr, lr: float = 0.1):
            super().__init__()
            self.save_hyperparameters()
    """,
    # `Model(*helper())` of plain values, and `Model(*args)` of unknown ones
    """
    def stats():
        data = np.random.default_rng(1).normal(size=(50, 3))
        return data.mean(0).tolist(), float(data.std())


    class Lit(L.LightningModule):
        def __init__(self, mean, std, eps: float = 1e-6):
            super().__init__()
            self.save_hyperparameters()


    def build(*args):
        return Lit(*stats()), Lit(*args)
    """,
    # a logger left out of the hyperparameters, or stored by its name
    """
    import logging

    log = logging.getLogger("project.train")


    class Lit(L.LightningModule):
        def __init__(self, console: logging.Logger = log, name: str = log.name):
            super().__init__()
            self.save_hyperparameters(ignore=["console"])
    """,
    # a reduction given an axis, then converted, loads
    """
    class Lit(L.LightningModule):
        def __init__(self, mean, total, n=2):
            super().__init__()
            self.save_hyperparameters()


    def build():
        data = np.random.default_rng(0).normal(size=(64, 8))
        labels = np.random.default_rng(0).integers(0, 4, size=200)
        return Lit(data.mean(axis=0).tolist(), int((labels == 0).sum()))
    """,
    # a draw without a size is a Python number
    """
    class Lit(L.LightningModule):
        def __init__(self, noise, low, pick):
            super().__init__()
            self.save_hyperparameters()


    def build():
        rng = np.random.default_rng(0)
        return Lit(rng.normal(), rng.uniform(0.0, 1.0), rng.choice(5))
    """,
    # Python numbers of numpy values (`len`, `float`) with Python numbers stay Python numbers
    """
    LABELS = np.asarray([0, 1, 1])


    class Lit(L.LightningModule):
        def __init__(self, n_pairs, total, scale=np.float32(0.5)):
            super().__init__()
            scale = float(scale)
            self.save_hyperparameters()


    def build():
        return Lit(len(LABELS) * 2, float(LABELS.sum()) * 2, scale=np.float32(2))
    """,
    # an OmegaConf entry made plain, or one annotated as a number, loads
    """
    from typing import List


    CFG = OmegaConf.create({"optim": {"lr": 0.1, "milestones": [10, 20]}})


    class Lit(L.LightningModule):
        def __init__(self, milestones: List[int], lr: float = 0.1):
            super().__init__()
            self.save_hyperparameters()


    def build():
        return Lit(list(CFG.optim.milestones), lr=CFG["optim"].lr)
    """,
    # `list(config)` holds the config's entries (plain numbers here), not the config
    """
    from typing import List


    MILESTONES = OmegaConf.create([10, 20])


    class Lit(L.LightningModule):
        def __init__(self, milestones: List[int]):
            super().__init__()
            self.save_hyperparameters()


    def build():
        return Lit(list(MILESTONES))
    """,
    # converted before save_hyperparameters(): the frame holds the new value at the call
    """
    class Lit(L.LightningModule):
        def __init__(self, loss=nn.MSELoss(), scale=np.float32(0.5), n=2):
            super().__init__()
            if loss is not None:
                loss = None
            scale = float(scale)
            self.save_hyperparameters()
    """,
    # plain constants of numpy and math load; so do None defaults of a module-level dict
    """
    DEFAULTS = {"depth": 2, "names": ["a", "b"]}


    class Lit(L.LightningModule):
        def __init__(self, scale=np.pi, eps=1e-8, cfg=DEFAULTS):
            super().__init__()
            self.save_hyperparameters()
    """,
    # plain data loads
    """
    class Lit(L.LightningModule):
        def __init__(self, lr: float = 1e-3, layers=(64, 64), name="run", extra={"a": [1, 2]}):
            super().__init__()
            self.save_hyperparameters()
    """,
    # left out with ignore=, as a list, a tuple or a string
    """
    class Lit(L.LightningModule):
        def __init__(self, backbone: nn.Module, loss=nn.MSELoss(), lr=1e-3):
            super().__init__()
            self.save_hyperparameters(ignore=["backbone", "loss"])
    """,
    """
    class Lit(L.LightningModule):
        def __init__(self, backbone: nn.Module, lr=1e-3):
            super().__init__()
            self.save_hyperparameters(ignore="backbone")
    """,
    # only the named ones are stored
    """
    class Lit(L.LightningModule):
        def __init__(self, backbone: nn.Module, lr=1e-3):
            super().__init__()
            self.save_hyperparameters("lr")
    """,
    # no save_hyperparameters at all
    """
    class Lit(L.LightningModule):
        def __init__(self, backbone: nn.Module, transform=lambda x: x):
            super().__init__()
            self.backbone = backbone
    """,
    # not a Lightning class
    """
    class Plain(nn.Module):
        def __init__(self, loss=nn.MSELoss()):
            super().__init__()
            self.save_hyperparameters()
    """,
    # None by default and no caller passes anything else
    """
    class Lit(L.LightningModule):
        def __init__(self, scaler: Optional[StandardScaler] = None):
            super().__init__()
            self.save_hyperparameters()
    """,
    # str or Path: a str default loads, and no caller passes a Path
    """
    class Lit(L.LightningModule):
        def __init__(self, root: Union[str, Path] = "data"):
            super().__init__()
            self.save_hyperparameters()


    def main(args):
        return Lit(root=args.root)
    """,
    # the loadable forms of the usual slips
    """
    class Lit(L.LightningModule):
        def __init__(self, cfg=None, root="x", lr=0.1, weights=None):
            super().__init__()
            self.save_hyperparameters()


    def main(args):
        return Lit(
            cfg=OmegaConf.to_container(OmegaConf.create({"a": 1})),
            root=str(Path("data")),
            lr=float(np.mean([0.1, 0.2])),
            weights=np.ones(2).tolist(),
        )
    """,
    # a Namespace passed to save_hyperparameters(args) is stored by its entries
    """
    class Lit(L.LightningModule):
        def __init__(self, args: argparse.Namespace):
            super().__init__()
            self.save_hyperparameters(args)
    """,
    # torch dtypes, devices and tensors load
    """
    class Lit(L.LightningModule):
        def __init__(self, dtype=torch.float32, device=torch.device("cpu"), w=torch.ones(2)):
            super().__init__()
            self.save_hyperparameters()
    """,
    # an ignore= that is not a literal: nothing is claimed
    """
    IGNORED = ["loss"]


    class Lit(L.LightningModule):
        def __init__(self, loss=nn.MSELoss()):
            super().__init__()
            self.save_hyperparameters(ignore=IGNORED)
    """,
    # a subclass that calls its base's __init__ without super(): its frame is not collected
    """
    class Base(L.LightningModule):
        def __init__(self, lr=1e-3):
            super().__init__()
            self.save_hyperparameters()


    class Child(Base):
        def __init__(self, loss=nn.MSELoss(), lr=1e-3):
            Base.__init__(self, lr=lr)
    """,
    # suppressed on the parameter's line
    """
    class Lit(L.LightningModule):
        def __init__(
            self,
            loss=nn.MSELoss(),  # ckpt: ignore[CKPT011]
        ):
            super().__init__()
            self.save_hyperparameters()
    """,
    # filled in with a value that loads, or left out of what is stored
    """
    class Lit(L.LightningModule):
        def __init__(self, hidden=8, lr=None):
            super().__init__()
            if lr is None:
                lr = 1e-3
            self.save_hyperparameters()
    """,
    """
    class Lit(L.LightningModule):
        def __init__(self, hidden=8, loss=None):
            super().__init__()
            if loss is None:
                loss = nn.MSELoss()
            self.save_hyperparameters(ignore=["loss"])
    """,
    # filled in after the call: the None that was passed is what is stored
    """
    class Lit(L.LightningModule):
        def __init__(self, hidden=8, loss=None):
            super().__init__()
            self.save_hyperparameters()
            if loss is None:
                loss = nn.MSELoss()
    """,
    # the unpacked helper result converted, or an element that is a Python number
    """
    def stats():
        r = np.random.default_rng(0).normal(size=9)
        return len(r), r

    class Lit(L.LightningModule):
        def __init__(self, hidden=8, rate=0.5):
            super().__init__()
            self.save_hyperparameters()

    def build():
        n, r = stats()
        return Lit(hidden=n, rate=float(r.max()))
    """,
    # an item of a helper's tuple result is no numpy value for being next to one
    """
    def stats():
        r = np.random.default_rng(0).normal(size=9)
        return len(r), r

    class Lit(L.LightningModule):
        def __init__(self, hidden=8):
            super().__init__()
            self.save_hyperparameters()

    def build():
        res = stats()
        return Lit(hidden=res[0])
    """,
    # a Namespace whose Path entry is made a string first, one that may leave None, one
    # handed to a helper first (which may convert it), and one of a parser setting defaults
    """
    def parse_args(argv=()):
        p = argparse.ArgumentParser()
        p.add_argument("--data_dir", type=Path, default=Path("data/audio"))
        p.add_argument("--out", type=Path)
        return p.parse_args(list(argv))

    def prepare(args):
        args.data_dir = str(args.data_dir)

    def parse_other(argv=()):
        p = argparse.ArgumentParser()
        p.add_argument("--data_dir", type=Path, default="data")
        p.set_defaults(data_dir=None)
        return p.parse_args(list(argv))

    class Lit(L.LightningModule):
        def __init__(self, args: argparse.Namespace):
            super().__init__()
            self.save_hyperparameters(args)

    def build(argv=()):
        args = parse_args(argv)
        args.data_dir = str(args.data_dir)
        return Lit(args)

    def build_prepared(argv=()):
        args = parse_args(argv)
        prepare(args)
        return Lit(args)

    def build_other():
        return Lit(parse_other())
    """,
    # a Namespace whose only converted entry may be None
    """
    class Lit(L.LightningModule):
        def __init__(self, args):
            super().__init__()
            self.save_hyperparameters(args)

    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--out", type=Path)
        parser.add_argument("--lr", type=float, default="0.1")
        return Lit(parser.parse_args())
    """,
    # items of a helper's tuple by index; plain lists of an array's items; round(x) is an int
    """
    def pair():
        return 3, np.ones(3)

    class Lit(L.LightningModule):
        def __init__(self, hidden=8, sizes=None, shape=None, lr=0.1):
            super().__init__()
            self.save_hyperparameters()

    def build(names):
        p = pair()
        arr = np.linspace(0, 1, 9)
        Lit(hidden=p[0], sizes=list(arr.tolist()), shape=tuple(arr.shape))
        return Lit(hidden=round(arr.mean()), sizes=dict(zip(names, arr.tolist())))
    """,
    # a config member used as a number, or a loop over a list of the member's values
    """
    class Lit(L.LightningModule):
        def __init__(self, hidden, sizes, name: str = "x"):
            super().__init__()
            self.save_hyperparameters()
            for s in sizes:
                pass
            for c in name:
                pass

    def build(cfg: DictConfig):
        return Lit(cfg.model.hidden, list(cfg.model.sizes), name=cfg.model.name)
    """,
    # a filled dict whose item is converted or taken out, and comprehensions of plain items
    """
    def pair():
        return 3, np.ones(3)

    class Lit(L.LightningModule):
        def __init__(self, hidden=8, stats=None, sizes=None):
            super().__init__()
            self.save_hyperparameters()

    def build(flag):
        feats = np.ones((3, 4))
        stats = {}
        stats["mean"] = feats.mean()
        stats["mean"] = float(stats["mean"])
        other = {}
        other["std"] = feats.std()
        other.pop("std")
        later = {}
        if flag:
            later["m"] = feats.max()
        Lit(stats=stats, sizes=[float(x) for x in feats.ravel()])
        Lit(stats=other, sizes=[v for v in pair()])
        return Lit(stats=later)
    """,
    # `Model(**vars(args))` once the Path entry is a string
    """
    class Lit(L.LightningModule):
        def __init__(self, lr=0.1, data_dir="data"):
            super().__init__()
            self.save_hyperparameters()

    def main():
        p = argparse.ArgumentParser()
        p.add_argument("--lr", type=float, default=0.1)
        p.add_argument("--data-dir", type=Path, default="data")
        args = p.parse_args()
        args.data_dir = args.data_dir.as_posix()
        return Lit(**vars(args))
    """,
    # dict comprehensions keeping converted items, or the positions of an array's items
    """
    class Lit(L.LightningModule):
        def __init__(self, hidden=8, weights=None, index=None):
            super().__init__()
            self.save_hyperparameters()

    def build(names):
        arr = np.linspace(0, 1, 5)
        return Lit(
            weights={n: float(w) for n, w in zip(names, arr)},
            index={n: i for i, n in enumerate(arr.tolist())},
        )
    """,
    # a factory converting what it forwards, and one whose parameter no caller fills
    """
    class Lit(L.LightningModule):
        def __init__(self, hidden=8, threshold=0.5):
            super().__init__()
            self.save_hyperparameters()

    def make_clean(threshold):
        threshold = float(threshold)
        return Lit(threshold=threshold)

    def make_default(hidden, threshold=0.5):
        return Lit(hidden=hidden, threshold=threshold)

    def main():
        scores = np.linspace(0, 1, 5)
        make_default(np.int64(8).item())
        return make_clean(scores.max())
    """,
    # a pandas column's reductions made Python values, its count of uniques, a list of it
    """
    import pandas as pd

    class Lit(L.LightningModule):
        def __init__(self, sample_rate: int, tags=(), n: int = 0):
            super().__init__()
            self.save_hyperparameters()

    def build():
        df = pd.DataFrame({"sr": [32000, 16000], "tag": ["a", "b"]})
        train = df.iloc[:1]
        return Lit(sample_rate=int(df["sr"].mode()[0]), tags=df["tag"].unique().tolist(),
                   n=train["sr"].nunique())
    """,
    # a registry holding a plain type, one changed later; a draw from a number; a comprehension
    # target that shadows a numpy local; a best config left to defaults or converted
    """
    LOSSES = {"ce": nn.CrossEntropyLoss, "w": float}
    HEADS = {"w": nn.LayerNorm}
    HEADS["w"] = float

    @dataclasses.dataclass
    class Best:
        hidden: int = 16

    @dataclasses.dataclass
    class Converted:
        hidden: int = 16

        def __post_init__(self):
            self.hidden = int(self.hidden)

    class Lit(L.LightningModule):
        def __init__(self, loss_fn=None, head=None, seed=0, fold=0, hidden=16, width=8):
            super().__init__()
            self.save_hyperparameters()

    def build(name, n):
        rng = np.random.default_rng(0)
        f = np.int64(3)
        best = Best()
        conv = Converted(hidden=rng.choice([8, 16]))
        return [Lit(loss_fn=LOSSES[name](), head=HEADS[name](2), seed=rng.choice(100),
                    fold=f, hidden=best.hidden, width=conv.hidden) for f in range(n)]
    """,
    # a factory's `cfg=None` every caller passes (plain data), or converted before it is stored
    """
    def load_config():
        return OmegaConf.create("model: {dim: 8}")

    class Lit(L.LightningModule):
        def __init__(self, cfg, n: int = 2):
            super().__init__()
            self.save_hyperparameters()

    class LitPlain(L.LightningModule):
        def __init__(self, cfg, betas=(0.9, 0.95), n: int = 2):
            super().__init__()
            self.save_hyperparameters()

    def build(cfg=None):
        cfg = cfg or load_config()
        return Lit(cfg)

    def build_plain(cfg=None):
        if cfg is None:
            cfg = OmegaConf.to_container(load_config())
        return LitPlain(cfg, betas=list(cfg["optim"]["betas"]))

    def main():
        return build({"model": {"dim": 8}}), build_plain()
    """,
    # a helper's dict of plain numbers, and a config entry given to a scalar parameter
    """
    def _norm(traj):
        return {"mean": float(traj.mean()), "std": traj.std().item()}

    class Lit(L.LightningModule):
        def __init__(self, lr=1e-3, norm_stats: dict = None):
            super().__init__()
            self.save_hyperparameters()

    def build(cfg=None):
        cfg = cfg or OmegaConf.create("optim: {lr: 0.1}")
        return Lit(lr=cfg.optim.lr, norm_stats=_norm(np.linspace(0.0, 1.0, 8)))
    """,
    # a partial and a registry of classes given plain values; a partial of another callable
    """
    class Lit(L.LightningModule):
        def __init__(self, width: int = 2, lr=1e-3, loss=None):
            super().__init__()
            self.save_hyperparameters(ignore=["loss"])

    MODELS = {"lit": Lit, "linear": nn.Linear}

    def build(name):
        make = functools.partial(Lit, lr=float(np.float32(3e-4)))
        other = functools.partial(torch.optim.AdamW, lr=np.float32(3e-4))
        return make(width=4), MODELS[name](4, loss=nn.MSELoss()), other
    """,
    # forwarded members that are plain: a DictConfig's number, a plain dict's list, spread
    # entries that are numbers and a loss left out by `ignore=`
    """
    class Lit(L.LightningModule):
        def __init__(self, dim: int = 2, lr: float = 1e-3, hidden=None, loss=None):
            super().__init__()
            self.save_hyperparameters(ignore=["loss"])

        @classmethod
        def from_config(cls, cfg):
            return cls(dim=cfg.model.dim, lr=cfg.optim.lr)

    def build(cfg):
        return Lit(hidden=cfg["model"]["hidden"])

    def spread():
        cfg = OmegaConf.create({"model": {"dim": 8, "lr": 0.1}})
        kwargs = {"lr": 0.1}
        kwargs["loss"] = nn.MSELoss()
        kwargs["dim"] = 4
        return Lit(**cfg.model), Lit(**kwargs)

    def main():
        return Lit.from_config(OmegaConf.create({"model": {"dim": 8}, "optim": {"lr": 0.1}})), build(
            {"model": {"hidden": [4, 4]}}
        )
    """,
    # plain items of dict configs; a module-level config the module changes; a comprehension
    # of plain values
    """
    CONFIG = {"optim": {"betas": (0.9, 0.999)}, "width": 4}
    CHANGED = {"lr": np.float32(0.1)}
    CHANGED["lr"] = 0.1

    class Lit(L.LightningModule):
        def __init__(self, lr=1e-3, betas=(0.9, 0.99), width: int = 2, stats=None):
            super().__init__()
            self.save_hyperparameters()

    def build(columns):
        cfg = {"lr": 0.1, "width": 3}
        arr = np.random.rand(5, 3)
        return (
            Lit(lr=cfg["lr"], width=cfg["width"], betas=CONFIG["optim"]["betas"]),
            Lit(lr=CHANGED["lr"], stats={c: float(arr[:, i].mean()) for i, c in enumerate(columns)}),
        )
    """,
    # `vars(args)` of plain entries, or once the Path entry is a string
    """
    class Lit(L.LightningModule):
        def __init__(self, hparams: dict, width: int = 2):
            super().__init__()
            self.save_hyperparameters()

    def main():
        p = argparse.ArgumentParser()
        p.add_argument("--lr", type=float, default=0.1)
        return Lit(hparams=vars(p.parse_args()))

    def other():
        p = argparse.ArgumentParser()
        p.add_argument("--root", type=Path, default="data")
        args = p.parse_args()
        args.root = str(args.root)
        return Lit(hparams=vars(args))
    """,
    # config members read as numbers and strings (a method called), or converted first
    """
    class Lit(L.LightningModule):
        def __init__(self, vocab, name: str = "x", model_cfg=None, lr=0.1):
            super().__init__()
            self.save_hyperparameters()
            self.emb = nn.Embedding(vocab.real, 4)
            self.tag = name.lower()
            self.dim = model_cfg["dim"]

        @classmethod
        def plain(cls, cfg: DictConfig):
            return cls(cfg.model.vocab, cfg.name, OmegaConf.to_container(cfg.model), lr=cfg.optim.lr)
    """,
    # tuples and lists built from generators of plain numbers
    """
    class Lit(L.LightningModule):
        def __init__(self, betas=(0.9, 0.99), sizes=None):
            super().__init__()
            self.save_hyperparameters()

    def build(cfg: DictConfig):
        arr = np.array([0.9, 0.99])
        return Lit(betas=tuple(float(b) for b in arr), sizes=list(int(s) for s in cfg.sizes))
    """,
    # a config loaded in a branch that returns before the call: the call stores the caller's
    """
    def load_config():
        return OmegaConf.create("model: {dim: 8}")

    class Lit(L.LightningModule):
        def __init__(self, cfg, n: int = 2):
            super().__init__()
            self.save_hyperparameters()

    def build(cfg=None):
        if cfg is None:
            cfg = load_config()
            return Lit(OmegaConf.to_container(cfg))
        return Lit(cfg)

    def main():
        return build({"model": {"dim": 8}}), build()
    """,
    # entries spread from plain dicts and plain config entries
    """
    class Lit(L.LightningModule):
        def __init__(self, dim: int = 2, hidden=None, lr=0.1):
            super().__init__()
            self.save_hyperparameters()

        @classmethod
        def from_config(cls, cfg):
            return cls(**cfg)

    def main():
        a = Lit.from_config({"dim": 4, "hidden": [8, 8]})
        b = Lit.from_config(OmegaConf.create({"dim": 4, "lr": 0.1}))
        return a, b
    """,
    # a quantized dtype and the backend's name load; the qconfig is rebuilt from the name
    """
    from torch.ao.quantization import get_default_qconfig

    class Lit(L.LightningModule):
        def __init__(self, backend: str = "fbgemm", dtype=torch.qint8, sparsity: float = 0.5):
            super().__init__()
            self.save_hyperparameters()
            self.qconfig = get_default_qconfig(backend)

    def main():
        return Lit(backend="qnnpack", dtype=torch.quint8, sparsity=0.7)
    """,
    # iterating a Series gives Python values: a dict zipped from two columns loads
    """
    import pandas as pd

    class Lit(L.LightningModule):
        def __init__(self, population: dict = None, hidden: int = 3):
            super().__init__()
            self.save_hyperparameters()

    def build(regions):
        rng = np.random.default_rng(0)
        table = pd.DataFrame({"region": regions, "population": rng.integers(1, 9, len(regions))})
        return Lit(population=dict(zip(table["region"], table["population"])))
    """,
    # the subclass converts its parameter before the base's `save_hyperparameters()` reads it
    """
    class Base(L.LightningModule):
        def __init__(self, lr: float = 3e-3, **kwargs):
            super().__init__()
            self.save_hyperparameters()

    class Windowed(Base):
        def __init__(self, window=None, **kwargs):
            window = int(window)
            super().__init__(**kwargs)

    def build():
        return Windowed(window=np.int64(8), lr=1e-3)
    """,
    # the subclass's `hparams_ignore` drops the estimator the base would store
    IGNORING_BASE
    + """
        class Seq(Base):
            hparams_ignore = ("scaler",)

            def __init__(self, scaler, capacity=1.0, window=20):
                super().__init__(lr=1e-3)

        def build():
            return Seq(scaler=StandardScaler(), capacity=2.0)
        """,
    # a registry dispatch whose key names another builder passes nothing to this one
    """
    CONFIG = OmegaConf.create({"eval": {"pass_k": [1, 5]}})

    class Lit(L.LightningModule):
        def __init__(self, pass_k=(1, 5), n: int = 2):
            super().__init__()
            self.save_hyperparameters()

    def build_lit(cfg):
        return Lit(pass_k=tuple(cfg.eval.pass_k))

    def build_other(cfg):
        return None

    BUILDERS = {"lit": build_lit, "other": build_other}

    def build():
        return BUILDERS["other"](CONFIG)
    """,
    # a module-level function passed: pickled by reference, and not a parameter stored whole
    """
    def is_empty(confs):
        return max(confs) < 0.5

    class Lit(L.LightningModule):
        def __init__(self, n: int = 2, is_empty=None):
            super().__init__()
            self.save_hyperparameters(ignore=["is_empty"])

    def build():
        def unused():
            return None

        return Lit(n=3, is_empty=is_empty)
    """,
    # a table a decorator fills that another statement also stores a plain value in
    """
    REWARDS = {}


    def register(table, name):
        def deco(fn):
            table[name] = fn
            return fn

        return deco


    @register(REWARDS, "progress")
    def progress(prev, cur):
        return prev - cur


    REWARDS["sparse"] = None


    class DroneSAC(L.LightningModule):
        def __init__(self, gamma: float = 0.99, reward_fn=None):
            super().__init__()
            self.save_hyperparameters()


    def build(cfg):
        return DroneSAC(gamma=cfg.gamma, reward_fn=REWARDS["sparse"])
    """,
    # a table of torch dtypes: globals the default load allows
    """
    DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


    class MPNN(L.LightningModule):
        def __init__(self, precision: str = "fp32", dtype=None):
            super().__init__()
            self.save_hyperparameters()


    def build(precision):
        return MPNN(precision=precision, dtype=DTYPES[precision])
    """,
    # a section of a YAML document converted to a plain dict before it is stored
    """
    DOC = \"\"\"
    drone:
      lr: 0.1
    precip:
      scale: 4
    \"\"\"


    def load_experiment(task):
        return OmegaConf.merge(OmegaConf.create(DOC), OmegaConf.from_dotlist([]))[task]


    class Precip(L.LightningModule):
        def __init__(self, cfg):
            super().__init__()
            self.save_hyperparameters(cfg)


    def build(task):
        return Precip(OmegaConf.to_container(load_experiment(task)))
    """,
    # the branch the registry key of the class picks passes plain values
    """
    MODULES = {}


    def register(name):
        def deco(cls):
            MODULES[name] = cls
            return cls

        return deco


    @register("plain")
    class Plain(L.LightningModule):
        def __init__(self, width: int = 8):
            super().__init__()
            self.save_hyperparameters()


    @register("patch")
    class Patch(L.LightningModule):
        def __init__(self, width: int = 8, stain_matrix=None):
            super().__init__()
            self.save_hyperparameters()


    def build_module(name):
        if name == "patch":
            kwargs = {"width": 8, "stain_matrix": np.eye(3).tolist()}
        elif name == "plain":
            kwargs = {"width": 4, "stain_matrix": np.eye(3)}
        else:
            raise KeyError(name)
        return MODULES[name](**kwargs)
    """,
    # a helper's dict that names the parameter with a plain value
    """
    class NRMS(L.LightningModule):
        def __init__(self, dim: int = 4, loss_fn=nn.CrossEntropyLoss()):
            super().__init__()
            self.save_hyperparameters()


    def _kwargs(cfg):
        return dict(dim=cfg.dim, loss_fn="cross_entropy")


    def build(cfg):
        kwargs = _kwargs(cfg)
        return NRMS(**kwargs)
    """,
    # the arm the registry key takes converts the config; another arm passes it whole
    """
    MODULES = {}


    def register(name):
        def deco(cls):
            MODULES[name] = cls
            return cls

        return deco


    DOC = \"\"\"
    mil:
      dim: 4
    \"\"\"


    def load():
        return OmegaConf.create(DOC)


    @register("plain")
    class PlainMIL(L.LightningModule):
        def __init__(self, cfg):
            super().__init__()
            self.save_hyperparameters(cfg)


    def build_module(name):
        if name == "plain":
            kwargs = {"cfg": OmegaConf.to_container(load())}
        elif name == "mil":
            kwargs = {"cfg": load()}
        else:
            raise KeyError(name)
        return MODULES[name](**kwargs)
    """,
    # a builder returning a lambda or a plain name, asked for the name: it loads
    """
    def build_normalizer(name):
        if name == "lower_strip":
            return lambda tok: tok.lower().strip()
        return "lower"


    class NER(L.LightningModule):
        def __init__(self, dropout: float = 0.1, normalizer=None):
            super().__init__()
            self.save_hyperparameters()


    def build(cfg):
        return NER(dropout=cfg.dropout, normalizer=build_normalizer("lower"))
    """,
    # the key the merge display sets picks one class: the others are never built with `cfg`
    """
    MODELS = {}


    def register(name):
        def deco(cls):
            MODELS[name] = cls
            return cls

        return deco


    @register("gcn")
    class Gcn(L.LightningModule):
        def __init__(self, cfg=None):
            super().__init__()
            self.save_hyperparameters(ignore=["cfg"])


    @register("mean")
    class Mean(L.LightningModule):
        def __init__(self, num_nodes: int = 8):
            super().__init__()
            self.save_hyperparameters()


    def build():
        base = OmegaConf.create({"model": {"name": "mean"}, "num_nodes": 8})
        cfg = OmegaConf.merge(base, {"model": {"name": "gcn"}})
        return MODELS[cfg.model.name](cfg)
    """,
    # the spread dataclass's Enum field is overwritten with its value: plain data
    """
    @dataclasses.dataclass
    class ChurnConfig:
        lr: float = 1e-3
        mode: Mode = Mode.FAST


    class Churn(L.LightningModule):
        def __init__(self, n_features: int = 4, train_config: dict = None):
            super().__init__()
            self.save_hyperparameters()


    def build():
        cfg = ChurnConfig()
        return Churn(4, train_config={**dataclasses.asdict(cfg), "mode": cfg.mode.value})
    """,
    # what iterating a range gives is Python ints: a list of them, a vocabulary built with them
    """
    class Lit(L.LightningModule):
        def __init__(self, vocab: dict = None, order=None, pairs=None):
            super().__init__()
            self.save_hyperparameters()


    def build(names=("a", "b")):
        return Lit(
            vocab=dict(zip(names, range(len(names)))),
            order=list(range(3)),
            pairs=list(zip(names, range(2))),
        )
    """,
]


@pytest.mark.parametrize(("source", "parameter"), INVALID)
def test_invalid_parameter_is_reported(source: str, parameter: str) -> None:
    found = hparam_findings(source)
    assert [attr for _, attr, _ in found] == [parameter], found


@pytest.mark.parametrize("source", VALID)
def test_valid_hparams_are_not_reported(source: str) -> None:
    assert hparam_findings(source) == []


def test_messages_say_what_fails_and_the_fix() -> None:
    dropped = hparam_findings(INVALID[25][0])[0][2]
    inherited = hparam_findings(INVALID[30][0])[0][2]
    assert "`Base.__init__`'s `save_hyperparameters()` also stores `loss`" in inherited
    assert "cannot be pickled" in dropped and "TypeError" in dropped
    assert "ignore=[...]" in dropped and "line" in dropped
    refused = hparam_findings(INVALID[11][0])[0][2]
    assert "weights_only=True" in refused and "UnpicklingError" in refused
    container = hparam_findings(INVALID[22][0])[0][2]
    assert "OmegaConf.to_container(cfg)" in container


def test_the_finding_sits_on_the_parameter() -> None:
    source = HEADER + textwrap.dedent(
        """
        class Lit(L.LightningModule):
            def __init__(
                self,
                encoder: nn.Module,
                lr: float = 1e-3,
            ):
                super().__init__()
                self.save_hyperparameters()
        """
    )
    (finding,) = [f for f in analyze_text(source, "lit.py") if f.code == "CKPT011"]
    row = source.splitlines().index("        encoder: nn.Module,") + 1
    assert (finding.location.row, finding.location.column) == (row, 9)
    assert finding.end_location.column == 9 + len("encoder")
    assert (finding.class_name, finding.attribute, finding.severity) == ("Lit", "encoder", "error")


def _project(tmp_path: Path, files: dict[str, str]) -> tuple[Analyzer, dict[str, Path]]:
    index = ProjectIndex(tmp_path)
    paths = {}
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        index.register(path, textwrap.dedent(text))
        paths[name] = path
    return Analyzer(index=index, batch=True), paths


MODEL = """
import lightning as L


class Lit(L.LightningModule):
    def __init__(self, loss=None, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
"""


def test_call_sites_in_other_files_count(tmp_path: Path) -> None:
    train = """
    from torch import nn
    from proj.model import Lit


    def main():
        return Lit(loss=nn.MSELoss())
    """
    analyzer, paths = _project(tmp_path, {"proj/model.py": MODEL, "proj/train.py": train})
    analyzer.index.touched = set()
    found = analyzer.analyze(str(paths["proj/model.py"]), textwrap.dedent(MODEL)).findings
    assert [(f.code, f.attribute) for f in found] == [("CKPT011", "loss")]
    assert found[0].related and found[0].related[0][1] == 7
    # the answer read every module: the CLI cache re-checks it when any of them changes
    assert str(paths["proj/train.py"]) in analyzer.index.touched


def test_a_call_through_a_package_reexport_counts(tmp_path: Path) -> None:
    files = {
        "proj/model.py": MODEL,
        "proj/__init__.py": "from proj.model import Lit\n",
        "run.py": "import proj\n\nmodel = proj.Lit(loss=lambda x: x)\n",
    }
    analyzer, paths = _project(tmp_path, files)
    found = analyzer.analyze(str(paths["proj/model.py"]), textwrap.dedent(MODEL)).findings
    assert [(f.code, f.attribute) for f in found] == [("CKPT011", "loss")]


def test_a_call_of_another_class_of_the_same_name_does_not_count(tmp_path: Path) -> None:
    other = """
    from torch import nn
    from proj.other import Lit


    def main():
        return Lit(loss=nn.MSELoss())
    """
    files = {
        "proj/model.py": MODEL,
        "proj/other.py": "class Lit:\n    def __init__(self, loss=None, lr=1):\n        pass\n",
        "proj/train.py": other,
    }
    analyzer, paths = _project(tmp_path, files)
    found = analyzer.analyze(str(paths["proj/model.py"]), textwrap.dedent(MODEL)).findings
    assert found == []


def _init(source: str) -> ast.FunctionDef:
    tree = ast.parse(textwrap.dedent(source))
    return next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))


@pytest.mark.parametrize(
    ("call", "stored"),
    [
        ("self.save_hyperparameters()", ["a", "b", "c"]),
        ("self.save_hyperparameters(ignore=['a', 'c'])", ["b"]),
        ("self.save_hyperparameters(ignore=('a',))", ["b", "c"]),
        ("self.save_hyperparameters(ignore='b')", ["a", "c"]),
        ("self.save_hyperparameters(ignore=None, logger=False)", ["a", "b", "c"]),
        ("self.save_hyperparameters('c', 'a')", ["c", "a"]),
        ("self.save_hyperparameters('c', 'a', ignore='a')", ["c"]),
        ("self.save_hyperparameters(b)", "container b"),
        ("self.save_hyperparameters(ignore=NAMES)", None),
        ("self.save_hyperparameters(*names)", None),
        ("self.save_hyperparameters(**options)", None),
        ("self.save_hyperparameters(vars(b))", None),
        ("helper.save_hyperparameters()", None),
        ("def inner():\n                self.save_hyperparameters()", None),
    ],
)
def test_what_save_hyperparameters_stores(call: str, stored: object) -> None:
    func = _init(
        f"""
        def __init__(self, a, b=1, *args, c=2, **kwargs):
            {call}
        """
    )
    saved = saved_hparams(func)
    if stored is None:
        assert saved is None
    elif isinstance(stored, str):
        assert saved is not None and saved.container is not None
        assert f"container {saved.container.arg}" == stored
    else:
        assert saved is not None and [p.arg for p in saved.stored] == stored


@pytest.mark.parametrize(
    ("call", "passed"),
    [
        ("Lit(1, 2)", {"a": "1", "b": "2", "c": None}),
        ("Lit(a=1, c=3)", {"a": "1", "b": None, "c": "3"}),
        ("Lit(1, *rest)", {"a": "1", "b": "?", "c": None}),
        ("Lit(1, **options)", {"a": "1", "b": "?", "c": "?"}),
        ("Lit(*everything)", {"a": "?", "b": "?", "c": None}),
        ("Lit(**{'a': 1, 'c': x})", {"a": "1", "b": None, "c": "x"}),
        ("Lit(**dict(b=2))", {"a": None, "b": "2", "c": None}),
        ("Lit(**CONFIG)", {"a": "[1]", "b": None, "c": None}),
        ("Lit(**options)", {"a": "?", "b": "?", "c": "?"}),
    ],
)
def test_what_a_call_passes(call: str, passed: dict[str, object]) -> None:
    func = _init("def __init__(self, a, b=1, *, c=2):\n    pass\n")
    node = ast.parse(call, mode="eval").body
    assert isinstance(node, ast.Call)
    facts = module_facts("m.py", "m", "CONFIG = {'a': [1]}\n")
    site = CallSite(facts, node, Env(), 0, False)
    params = init_parameters(func)
    got = {}
    for name in passed:
        value = site.argument(params, 2, name)
        got[name] = "?" if value is UNKNOWN else None if value is None else ast.unparse(value)
    assert got == passed


@pytest.mark.parametrize(
    "signature",
    [
        "def __init__(self, loss=nn.MSELoss(), lr=1e-3):",
        "def __init__(\n                self,\n                loss=nn.MSELoss(),\n                lr=1e-3,\n            ):",
        "def __init__(\n                self,\n                loss=nn.Sequential(\n"
        "                    nn.Linear(2, 2),\n                ),\n            ):",
    ],
)
def test_the_ignore_comment_the_server_offers_silences_the_finding(signature: str) -> None:
    source = HEADER + textwrap.dedent(
        f"""
        class Lit(L.LightningModule):
            {signature}
                super().__init__()
                self.save_hyperparameters()
        """
    )
    (finding,) = [f for f in analyze_text(source, "lit.py") if f.code == "CKPT011"]
    lines = source.split("\n")
    edit = ignore_edit(finding, lambda row: lines[row - 1])
    assert edit is not None
    fixed = apply_edits(source, [edit])
    assert [f for f in analyze_text(fixed, "lit.py") if f.code == "CKPT011"] == []
    ast.parse(fixed)


def test_a_subclass_that_keeps_the_init_passes_its_arguments_to_it(tmp_path: Path) -> None:
    model = """
    import lightning as L


    class Lit(L.LightningModule):
        def __init__(self, loss=None, lr=1e-3):
            super().__init__()
            self.save_hyperparameters()


    class Tuned(Lit):
        pass
    """
    train = """
    from torch import nn
    from proj.model import Tuned


    class Again(Tuned):
        def training_step(self, batch, batch_idx):
            return None


    def main():
        return Again(loss=nn.L1Loss())
    """
    analyzer, paths = _project(tmp_path, {"proj/model.py": model, "proj/train.py": train})
    found = analyzer.analyze(str(paths["proj/model.py"]), textwrap.dedent(model)).findings
    assert [(f.code, f.class_name, f.attribute) for f in found] == [("CKPT011", "Lit", "loss")]


def test_a_namespace_finding_names_the_entry_and_its_fix() -> None:
    source = next(src for src, param in INVALID if 'parser.add_argument("--root"' in src)
    message = hparam_findings(source)[0][2]
    assert "whose `root` is a `pathlib` path" in message
    assert "make that entry of `args` plain data" in message
    assert "OmegaConf.to_container" not in message


REGISTERED = (
    REGISTER
    + SEG_AND_MLP
    + """
        def build(x, small):
            a = MODELS["mlp"](band_mean=np.ones(4))
            b = MODELS[x](in_bands=4, band_mean=np.ones(4), hidden=16)
            cls = MODELS["mlp" if small else "mlp"]
            c = cls(4, band_mean=np.ones(4))
            d = MODELS[x](np.ones(4), in_bands=4, root=Path("x"))
            return a, b, c, d


        def build_any(name):
            cls = MODELS[name]
            if cls is Mlp:
                return cls(Path("x"))
            return cls(4)
        """
)


def test_a_registry_call_builds_only_the_classes_its_key_and_keywords_allow() -> None:
    """`MODELS["mlp"](...)` (or either key of a conditional) builds no other class, nor does a
    call passing a keyword only another class takes (`hidden=`), or one its positional
    arguments already gave (`in_bands`), or one under `if cls is Mlp:`: only `Mlp` is
    reported."""
    found = [(cls, attr) for cls, attr, _ in hparam_findings(REGISTERED)]
    assert sorted(found) == [("Mlp", "band_mean"), ("Mlp", "in_bands")]


REGISTERED_MODEL = """
import enum

import lightning as L
import numpy as np


class Precision(enum.Enum):
    FP32 = "32"


class Lit(L.LightningModule):
    def __init__(self, precision: Precision = Precision.FP32, scale=np.float64(2.0), lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
"""


@pytest.mark.parametrize(
    ("loader", "reported"),
    [
        # a project context manager registering a module-level list at every load
        (
            "from contextlib import contextmanager\n\nimport torch\n\n"
            "from proj.model import Lit, Precision\n\n"
            "SAFE = [Precision]\n\n\n"
            "@contextmanager\ndef project_globals(extra=None):\n"
            "    allow = [*SAFE, *(extra or ())]\n"
            "    with torch.serialization.safe_globals(allow):\n        yield\n\n\n"
            "def restore(path):\n    with project_globals():\n"
            "        return Lit.load_from_checkpoint(path)\n",
            ["scale"],
        ),
        # the numpy scalar's globals registered too: nothing is left refused
        (
            "import numpy as np\nimport torch\n\nfrom proj.model import Precision\n\n"
            "torch.serialization.add_safe_globals(\n"
            "    [Precision, np.dtype, np.dtypes.Float64DType, np._core.multiarray.scalar]\n)\n",
            [],
        ),
        # another type registered: the Enum member is still refused
        (
            "import argparse\n\nimport torch\n\n"
            "torch.serialization.add_safe_globals([argparse.Namespace])\n",
            ["precision", "scale"],
        ),
    ],
)
def test_a_type_the_project_registers_as_safe_is_not_reported(
    tmp_path: Path, loader: str, reported: list[str]
) -> None:
    files = {"proj/model.py": REGISTERED_MODEL, "proj/load.py": loader}
    analyzer, paths = _project(tmp_path, files)
    found = analyzer.analyze(
        str(paths["proj/model.py"]), textwrap.dedent(REGISTERED_MODEL)
    ).findings
    assert [f.attribute for f in found if f.code == "CKPT011"] == reported


LISTING_BASE = """
import lightning as L
import torch

from proj.serialization import project_globals


class Base(L.LightningModule):
    @classmethod
    def checkpoint_safe_globals(cls):
        return ()

    @classmethod
    def restore(cls, path):
        with project_globals(extra=cls.checkpoint_safe_globals()):
            return cls.load_from_checkpoint(path)
"""

LISTING_MODELS = """
from proj.base import Base
from proj.modes import Mode, Size


class Listed(Base):
    @classmethod
    def checkpoint_safe_globals(cls):
        return (Mode,)

    def __init__(self, mode: Mode = Mode.ADD, size: Size = Size.S, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()


class Unlisted(Base):
    def __init__(self, mode: Mode = Mode.ADD, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
"""


def test_types_a_class_lists_for_the_project_loader_are_not_reported(tmp_path: Path) -> None:
    files = {
        "proj/serialization.py": (
            "from contextlib import contextmanager\n\nimport torch\n\n\n"
            "@contextmanager\ndef project_globals(extra=None):\n"
            "    allow = [*(extra or ())]\n"
            "    with torch.serialization.safe_globals(allow):\n        yield\n"
        ),
        "proj/base.py": LISTING_BASE,
        # the Enums are defined in one module and imported through a package that re-exports
        "proj/modes/kinds.py": (
            "import enum\n\n\nclass Mode(enum.Enum):\n    ADD = 1\n\n\n"
            "class Size(enum.Enum):\n    S = 1\n"
        ),
        "proj/modes/__init__.py": "from proj.modes.kinds import Mode, Size\n",
        "proj/models.py": LISTING_MODELS,
    }
    analyzer, paths = _project(tmp_path, files)
    found = analyzer.analyze(str(paths["proj/models.py"]), textwrap.dedent(LISTING_MODELS))
    reported = [(f.class_name, f.attribute) for f in found.findings if f.code == "CKPT011"]
    assert reported == [("Listed", "size"), ("Unlisted", "mode")]


def test_a_registration_added_in_another_class_of_the_file_excuses_the_value() -> None:
    # the model's class text is the same both times: its memoized findings must not be kept
    loader = (
        "\n\nclass Loader:\n    def restore(self, path):\n"
        "        with torch.serialization.safe_globals([{}]):\n"
        "            return torch.load(path)\n"
    )
    model = textwrap.dedent(REGISTERED_MODEL).replace("scale=np.float64(2.0), ", "")
    model = "import torch\n" + model
    analyzer = Analyzer()
    before = analyzer.analyze("lit.py", model + loader.format("")).findings
    after = analyzer.analyze("lit.py", model + loader.format("Precision")).findings
    assert [f.attribute for f in before if f.code == "CKPT011"] == ["precision"]
    assert [f.attribute for f in after if f.code == "CKPT011"] == []


def test_following_call_sites_gives_up_when_the_file_budget_is_spent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each call site's function is walked: the budget is checked there, not only between
    classes, so a class built at hundreds of sites cannot hold a file for minutes."""
    from ckpt_lsp import budget
    from ckpt_lsp.analysis import hparam_values
    from ckpt_lsp.analysis.analyzer import Analyzer

    asked: list[float | None] = []

    def spent(deadline: float | None) -> None:
        asked.append(deadline)
        raise budget.OutOfTime

    monkeypatch.setattr(hparam_values, "check_deadline", spent)
    source = HEADER + textwrap.dedent(
        """
        class Lit(L.LightningModule):
            def __init__(self, loss=None):
                super().__init__()
                self.save_hyperparameters()


        def build():
            loss = nn.MSELoss()
            return Lit(loss=loss)
        """
    )
    result = Analyzer(None).analyze("lit.py", source, budget_s=60.0)
    assert asked and asked[0] is not None
    assert result.error is not None and result.error.message.startswith("skipped: too slow")
