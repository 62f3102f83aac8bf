"""LightningModules and DataModules for the three projects: buoy Hs forecasting, sea-state
classification, dialogue state tracking and dermoscopic lesion classification.

Modules are never built by hand: `build_module(name, cfg)` looks the class up in `MODULES` and
asks the matching entry of `BUILDERS` for its constructor arguments, which are derived from the
OmegaConf project config and from the (synthetic) training data.
"""
import argparse
import collections
import enum
import re
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from omegaconf import OmegaConf
from sklearn.metrics import roc_curve
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight

PROJECT_YAML = """
paths:
  ndbc_root: data/ndbc/stdmet
  multiwoz_root: data/multiwoz22
wave:
  features: [WVHT, DPD, APD, MWD, WSPD, PRES]
  lead_hours: [3, 6, 12, 24]
  hidden: 32
  loss: huber
  huber_delta: 0.5
  f_min: 0.03
  f_max: 0.5
  n_bins: 48
dst:
  emb_dim: 32
  hidden: 64
  schema:
    hotel: [area, pricerange, stars]
    restaurant: [food, area]
    train: [day, departure]
derm:
  dx: [akiec, bcc, mel, nv]
  image_size: 64
  lr: 0.0003
  label_smoothing: 0.1
  optimizer: adamw
"""
CFG = OmegaConf.create(PROJECT_YAML)


class SeaState(enum.Enum):
    """Douglas sea scale (subset) by significant wave height in metres."""
    SMOOTH = (0.1, 0.5)
    SLIGHT = (0.5, 1.25)
    MODERATE = (1.25, 2.5)
    ROUGH = (2.5, 4.0)
    VERY_ROUGH = (4.0, 6.0)


MODULES, BUILDERS = {}, {}
LOSSES = {"huber": lambda c: nn.HuberLoss(delta=c.huber_delta), "mse": lambda c: nn.MSELoss()}
OPTIMIZERS = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


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


def build_module(name, cfg=CFG):
    return MODULES[name](**BUILDERS[name](cfg))


def buoy_history(n=500, seed=0):
    rng = np.random.default_rng(seed)
    hs = np.clip(1.5 + 0.6 * np.sin(np.arange(n) / 20) + rng.normal(0, 0.3, n), 0.1, None)
    return pd.DataFrame({"WVHT": hs, "DPD": 8 + 3 * rng.random(n), "MWD": rng.uniform(0, 360, n)})


# ---------------------------------------------------------------- waves

@register("wave_lstm")
class WaveForecastModule(L.LightningModule):
    def __init__(
        self,
        n_features=6,
        lead_hours=(3, 6, 12),
        hidden=32,
        freq_bins=None,  # truth: hparam
        loss_fn=None,  # truth: hparam
        min_sea_state=SeaState.MODERATE,  # truth: hparam
        data_root="data/ndbc",  # truth: hparam
        target_mean=0.0,
        target_std=1.0,
        lr=1e-3,
        weight_decay=0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, len(lead_hours))
        self.loss_fn = loss_fn or nn.MSELoss()

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1]) * self.hparams.target_std + self.hparams.target_mean

    def training_step(self, batch, _):
        x, y = batch
        return self.loss_fn(self(x), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


@builder("wave_lstm")
def wave_lstm_kwargs(cfg):
    w = cfg.wave
    hist = buoy_history()
    return dict(
        n_features=len(w.features),
        lead_hours=tuple(w.lead_hours),
        hidden=w.hidden,
        freq_bins=np.linspace(w.f_min, w.f_max, w.n_bins),
        loss_fn=LOSSES[w.loss](w),
        data_root=Path(cfg.paths.ndbc_root),
        target_mean=float(hist["WVHT"].mean()),
        target_std=hist["WVHT"].std().item(),
        lr=3e-3,
    )


@register("sea_state")
class SeaStateClassifier(L.LightningModule):
    def __init__(self, n_bins=48, class_names=(), hs_edges=(), freq_range=(0.03, 0.5), class_prior=None,
                 hidden=64, lr=1e-3, n_records=0):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_bins, hidden), nn.ReLU(), nn.Linear(hidden, len(class_names)))
        self.register_buffer("log_prior", torch.log(class_prior) if class_prior is not None else torch.zeros(len(class_names)))

    def forward(self, spec):
        return self.net(spec) + self.log_prior


@builder("sea_state")
def sea_state_kwargs(cfg):
    hs = buoy_history(seed=3)["WVHT"].to_numpy()
    edges = [lo for lo, _ in (s.value for s in SeaState)] + [SeaState.VERY_ROUGH.value[1]]
    counts = np.histogram(hs, bins=edges)[0] + 1
    freqs = np.linspace(cfg.wave.f_min, cfg.wave.f_max, cfg.wave.n_bins)
    return {
        "n_bins": int(freqs.size),
        "class_names": [s.name.lower() for s in SeaState],
        "hs_edges": np.asarray(edges).tolist(),
        "freq_range": (float(freqs[0]), float(freqs[-1])),
        "class_prior": torch.tensor(counts / counts.sum(), dtype=torch.float32),
        "n_records": len(hs),
    }


@register("wave_baseline")
class WaveBaselineModule(L.LightningModule):
    """Older script-era module: takes the argparse namespace whole."""

    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)
        self.linear = nn.Linear(args.history, args.n_leads)


@builder("wave_baseline")
def wave_baseline_kwargs(cfg):
    p = argparse.ArgumentParser()
    p.add_argument("--history", type=int, default=24)
    p.add_argument("--n-leads", type=int, default=len(cfg.wave.lead_hours))
    p.add_argument("--stations", nargs="+", default=["46042", "46026"])
    p.add_argument("--lr", type=float, default=1e-3)
    return {"args": p.parse_args([])}


class WaveDataModule(L.LightningDataModule):
    def __init__(self, stations=("46042", "46026"), history_hours=24, batch_size=64, data_dir="data/ndbc",
                 val_fraction=0.2):
        super().__init__()
        self.save_hyperparameters()
        self.frames = {}

    def setup(self, stage=None):
        self.frames = {s: buoy_history(seed=i) for i, s in enumerate(self.hparams.stations)}


# ---------------------------------------------------------------- dialogue state tracking

class SlotTokenizer:
    def __init__(self, specials=("[PAD]", "[UNK]", "[SYS]", "[USR]")):
        self.stoi = {t: i for i, t in enumerate(specials)}
        self.rx = re.compile(r"\[\w+\]|[a-z0-9]+")

    def fit(self, texts):
        for text in texts:
            for tok in self.rx.findall(text.lower()):
                self.stoi.setdefault(tok, len(self.stoi))
        return self


SYNONYMS = {"center": "centre", "cheaply priced": "cheap", "mid priced": "moderate", "dont care": "dontcare"}


def make_normalizer(synonyms):
    def normalize(value):
        value = value.strip().lower()
        return synonyms.get(value, value)
    return normalize


@register("dst_picklist")
class DialogueStateModule(L.LightningModule):
    def __init__(
        self,
        vocab_size,
        slot_names,
        n_values,
        ontology,  # truth: hparam
        tokenizer,  # truth: hparam
        value_normalizer=None,  # truth: hparam
        schema=None,  # truth: hparam
        domains=frozenset({"hotel", "restaurant", "train"}),  # truth: hparam
        emb_dim=32,
        hidden=64,
        dropout=0.1,
        none_weight=1.0,
        max_turns=8,
        lr=2e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        norm = value_normalizer or str.lower
        self.value_table = {s: sorted({norm(v) for v in ontology[s.split("-")[0]]}) for s in slot_names}
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.rnn = nn.GRU(emb_dim, hidden, batch_first=True)
        self.heads = nn.ModuleDict({s: nn.Linear(hidden, n_values[s]) for s in slot_names})

    def forward(self, ids):
        _, h = self.rnn(self.emb(ids))
        return {s: head(h[-1]) for s, head in self.heads.items()}


@builder("dst_picklist")
def dst_kwargs(cfg):
    schema = cfg.dst.schema
    slots = tuple(f"{d}-{s}" for d in schema for s in schema[d])
    values = {"area": ["north", "south", "centre"], "pricerange": ["cheap", "moderate"], "stars": ["3", "4"],
              "food": ["italian", "indian"], "day": ["monday", "friday"], "departure": ["cambridge", "ely"]}
    ontology = collections.defaultdict(list)
    for d in schema:
        for s in schema[d]:
            ontology[d].extend(values[s])
    turns = [f"[USR] i need a {d} in the {v}" for d, vs in ontology.items() for v in vs]
    tok = SlotTokenizer().fit(turns)
    labels = pd.Series([v for vs in ontology.values() for v in vs] + ["none"] * 20)
    return dict(
        vocab_size=len(tok.stoi),
        slot_names=slots,
        n_values={s: len(values[s.split("-", 1)[1]]) + 2 for s in slots},
        ontology=ontology,
        tokenizer=tok,
        value_normalizer=make_normalizer(SYNONYMS),
        schema=schema,
        domains=frozenset(s.split("-")[0] for s in slots),
        emb_dim=cfg.dst.emb_dim,
        hidden=cfg.dst.hidden,
        none_weight=float(1.0 - (labels == "none").mean()),
        max_turns=int(labels.str.len().max()),
    )


class DSTDataModule(L.LightningDataModule):
    def __init__(self, tokenizer=None, root="data/multiwoz22", max_len=128, history_turns=3, batch_size=32,
                 domains=("hotel", "restaurant", "train")):
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer"])
        self.tokenizer = tokenizer or SlotTokenizer()


# ---------------------------------------------------------------- dermatology

def lesion_metadata(cfg, n=60, seed=0):
    rng = np.random.default_rng(seed)
    dx = [cfg.derm.dx[int(i)] for i in rng.integers(0, len(cfg.derm.dx), n)]
    return pd.DataFrame({"dx": dx, "age": rng.integers(20, 85, n), "pix": list(rng.random((n, 3)))})


class TinyBackbone(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.out_dim = width

    def forward(self, x):
        return self.body(x).flatten(1)


@register("lesion")
class LesionClassifier(L.LightningModule):
    def __init__(
        self,
        backbone,
        num_classes=4,
        class_names=("akiec", "bcc", "mel", "nv"),
        class_weights=None,  # truth: hparam
        pixel_mean=(0.485, 0.456, 0.406),  # truth: hparam
        optimizer_cls=torch.optim.Adam,  # truth: hparam
        lr=3e-4,
        weight_decay=1e-4,
        label_smoothing=0.0,
        image_size=64,
        mel_threshold=0.5,
        warmup_epochs=1,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.fc = nn.Linear(backbone.out_dim, num_classes)
        w = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.criterion = nn.CrossEntropyLoss(weight=w, label_smoothing=label_smoothing)

    def forward(self, x):
        return self.fc(self.backbone(x))

    def configure_optimizers(self):
        return self.hparams.optimizer_cls(self.parameters(), lr=self.hparams.lr,
                                          weight_decay=self.hparams.weight_decay)


@builder("lesion")
def lesion_kwargs(cfg):
    meta = lesion_metadata(cfg)
    le = LabelEncoder().fit(meta["dx"])
    y = le.transform(meta["dx"])
    scores = np.random.default_rng(1).random(len(y))
    fpr, tpr, thr = roc_curve(y == list(le.classes_).index("mel"), scores)
    pix = np.stack(meta["pix"].to_numpy()).astype(np.float32)
    return dict(
        backbone=TinyBackbone(),
        num_classes=len(le.classes_),
        class_names=list(le.classes_),
        class_weights=compute_class_weight("balanced", classes=np.unique(y), y=y),
        pixel_mean=tuple(pix.mean(0)),
        optimizer_cls=OPTIMIZERS[cfg.derm.optimizer],
        lr=cfg.derm.lr,
        label_smoothing=cfg.derm.label_smoothing,
        image_size=cfg.derm.image_size,
        mel_threshold=float(thr[np.argmax(tpr - fpr)]),
    )


class LesionConfigModule(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.backbone = TinyBackbone(cfg.get("width", 16))
        self.fc = nn.Linear(self.backbone.out_dim, len(cfg.dx))


class LesionPlainConfigModule(L.LightningModule):
    """Same module after the fix: the config is turned into plain containers first."""

    def __init__(self, cfg):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.fc = nn.Linear(16, len(cfg["dx"]))


class LesionEnsemble(L.LightningModule):
    def __init__(self, members, num_classes=4, temperature=1.0, member_names=()):
        super().__init__()
        self.save_hyperparameters("num_classes", "temperature", "member_names")
        self.members = nn.ModuleList(members)

    def forward(self, x):
        return torch.stack([m(x) for m in self.members]).mean(0) / self.hparams.temperature


class DermDataModule(L.LightningDataModule):
    def __init__(self, image_dir="data/isic2019", image_size=64, batch_size=32, fold=0, n_folds=5,
                 mean=(0.76, 0.55, 0.58)):
        super().__init__()
        self.save_hyperparameters()


def _ensemble():
    members = [nn.Sequential(TinyBackbone(8), nn.Linear(8, 4)) for _ in range(3)]
    logits = np.random.default_rng(2).normal(size=(32, 4))
    return LesionEnsemble(members, num_classes=4, temperature=float(np.clip(logits.std(), 0.5, 3.0)),
                          member_names=tuple(f"fold{i}" for i in range(3)))


FACTORIES = {
    "SeaState": lambda: SeaState.ROUGH,
    "WaveForecastModule": lambda: build_module("wave_lstm"),
    "SeaStateClassifier": lambda: build_module("sea_state"),
    "WaveBaselineModule": lambda: build_module("wave_baseline"),
    "DialogueStateModule": lambda: build_module("dst_picklist"),
    "DSTDataModule": lambda: DSTDataModule(SlotTokenizer().fit(["[USR] a hotel"])),
    "LesionClassifier": lambda: build_module("lesion"),
    "LesionConfigModule": lambda: LesionConfigModule(CFG.derm),
    "LesionPlainConfigModule": lambda: LesionPlainConfigModule(OmegaConf.to_container(CFG.derm, resolve=True)),
    "LesionEnsemble": _ensemble,
}
