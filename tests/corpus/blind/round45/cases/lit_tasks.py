"""Lightning modules and data modules for the three projects (query autocompletion, camera traps,
load forecasting), built the way the training entry point builds them: a YAML config per task, a
model registry, and per-task `make_*` builders that fit encoders / scalers on the data first.
"""
import argparse
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import LabelEncoder, StandardScaler
from torch.utils.data import DataLoader, TensorDataset

MODEL_REGISTRY = {}

TASK_CONFIGS = {
    "qac": """
model: {name: qac_lm, emb_dim: 24, hidden: 48, dropout: 0.1, lr: 3e-3, max_len: 32}
ranker: {name: qac_ranker, hidden: 16, lr: 1e-3, candidate_k: 10, listwise: true}
eval: {ks: [1, 5, 10]}
data: {specials: ["<pad>", "<bos>", "<eos>"], min_count: 2, batch_size: 64}
""",
    "cameratrap": """
model: {name: cameratrap, width: 16, lr: 1e-3, label_smoothing: 0.05, freeze_backbone: false}
seq: {name: cameratrap_seq, max_frames: 3, aggregation: attention, lr: 5e-4}
data: {image_size: [32, 32], batch_size: 32, md_threshold: 0.15, val_locations: [B01, B02], species: [empty, impala, zebra, wildebeest, hyena]}
""",
    "load": """
model: {name: load_mlp, hidden: 64, horizon: 24, quantiles: [0.1, 0.5, 0.9], lr: 1e-3, weight_decay: 1.0e-4}
features: {lags: [1, 24, 168], tz: Europe/Berlin, holidays: ["2023-01-01", "2023-04-07", "2023-04-10", "2023-05-01"]}
train: {train_end: "2023-03-31", batch_size: 128, max_epochs: 20}
""",
}


def register_model(name):
    def deco(cls):
        MODEL_REGISTRY[name] = cls
        return cls
    return deco


def task_config(task, **overrides):
    cfg = OmegaConf.create(TASK_CONFIGS[task])
    return OmegaConf.merge(cfg, OmegaConf.create(overrides)) if overrides else cfg


# ----------------------------------------------------------------------------- shared helpers

class QueryTokenizer:
    def __init__(self, alphabet="abcdefghijklmnopqrstuvwxyz0123456789 ", specials=("<pad>", "<bos>", "<eos>")):
        self.itos = list(specials) + list(alphabet)
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    def normalize(self, q):
        return "".join(c for c in q.lower() if c in self.stoi)

    def encode(self, q, max_len):
        ids = [1] + [self.stoi[c] for c in self.normalize(q)][: max_len - 2] + [2]
        return ids + [0] * (max_len - len(ids))


class FrameEncoder(nn.Module):
    def __init__(self, width=16, out_dim=32):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.proj = nn.Linear(width, out_dim)
        self.out_dim = out_dim

    def forward(self, x):
        return self.proj(self.conv(x).flatten(1))


def query_log(n=300, seed=0):
    rng = np.random.default_rng(seed)
    queries = ["weather", "weather radar", "wordle", "youtube", "yahoo mail", "netflix", "news",
               "nba scores", "amazon", "amazon prime", "translate", "tiktok", "pizza near me"]
    pop = rng.zipf(1.6, len(queries)).astype(float)
    picks = rng.choice(len(queries), size=n, p=pop / pop.sum())
    ts = pd.Timestamp("2024-03-01") + pd.to_timedelta(rng.integers(0, 14 * 24 * 3600, n), unit="s")
    return pd.DataFrame({"query": [queries[i] for i in picks], "ts": ts})


def trap_metadata(species, n=80, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "seq_id": [f"SEQ{i // 3:03d}" for i in range(n)],
        "location": [f"B{(i // 9) % 6 + 1:02d}" for i in range(n)],
        "species": rng.choice(species, size=n, p=[0.5, 0.2, 0.15, 0.1, 0.05]),
        "md_conf": rng.uniform(0, 1, n),
    })


def hourly_load(days=120, tz="Europe/Berlin", seed=0):
    idx = pd.date_range("2023-01-01", periods=24 * days, freq="h", tz=tz)
    rng = np.random.default_rng(seed)
    load = 50 + 12 * np.sin(2 * np.pi * (idx.hour.to_numpy() - 6) / 24) + rng.normal(0, 2, len(idx))
    return pd.DataFrame({"load": load, "temp": rng.normal(8, 5, len(idx))}, index=idx)


# ----------------------------------------------------------------------------- query autocompletion

@register_model("qac_lm")
class LitQueryLM(pl.LightningModule):
    def __init__(
        self, vocab_size: int, emb_dim: int = 32, hidden: int = 64, dropout: float = 0.1,
        lr: float = 3e-3, max_len: int = 32, eval_ks: tuple = (1, 5, 10),
        specials: tuple = ("<pad>", "<bos>", "<eos>"),
        popularity_prior=None,  # truth: hparam
        normalize=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.lstm = nn.LSTM(emb_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)
        if popularity_prior is not None:
            self.register_buffer("log_prior", torch.log(torch.as_tensor(popularity_prior, dtype=torch.float32)))

    def forward(self, ids):
        return self.head(self.lstm(self.emb(ids))[0])

    def training_step(self, batch, _):
        (ids,) = batch
        return F.cross_entropy(self(ids[:, :-1]).transpose(1, 2), ids[:, 1:], ignore_index=0)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@register_model("qac_ranker")
class LitPrefixRanker(pl.LightningModule):
    """Listwise re-ranker over trie candidates (features: popularity, LM score, length, recency)."""

    def __init__(
        self, feature_names=("log_pop", "lm_score", "prefix_len", "recency"), hidden: int = 16,
        lr: float = 1e-3, candidate_k: int = 10, listwise: bool = True, feature_stats=None,
        baseline_mrr=None,  # truth: hparam
        snapshot_day=None,  # truth: hparam
        trie=None, temperature: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["trie"])
        self.trie = trie
        self.scorer = nn.Sequential(nn.Linear(len(feature_names), hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, feats):
        return self.scorer(feats).squeeze(-1) / self.hparams.temperature


def make_qac_lm(cfg, log):
    tok = QueryTokenizer(specials=tuple(cfg.data.specials))
    counts = log["query"].value_counts()
    counts = counts[counts >= cfg.data.min_count]
    return MODEL_REGISTRY[cfg.model.name](
        vocab_size=len(tok.itos), emb_dim=cfg.model.emb_dim, hidden=cfg.model.hidden,
        dropout=cfg.model.dropout, lr=cfg.model.lr, max_len=cfg.model.max_len, eval_ks=tuple(cfg.eval.ks),
        specials=tuple(cfg.data.specials),
        popularity_prior=(counts / counts.sum()).to_numpy(),
        normalize=tok.normalize,
    )


def make_qac_ranker(cfg, log):
    feats = np.column_stack([np.log1p(log["query"].map(log["query"].value_counts())),
                             np.random.default_rng(0).normal(-3, 1, len(log)),
                             log["query"].str.len(), (log["ts"].max() - log["ts"]).dt.total_seconds() / 86400])
    scaler = StandardScaler().fit(feats)
    rr = 1.0 / np.random.default_rng(1).integers(1, 6, size=50)
    trie = {q: int(n) for q, n in log["query"].value_counts().items()}
    return MODEL_REGISTRY[cfg.ranker.name](
        hidden=cfg.ranker.hidden, lr=cfg.ranker.lr, candidate_k=cfg.ranker.candidate_k,
        listwise=cfg.ranker.listwise,
        feature_stats={"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()},
        baseline_mrr=rr.mean(),
        snapshot_day=log["ts"].max().date(),
        trie=trie, temperature=float(np.float32(0.7)),
    )


class QueryLogDataModule(pl.LightningDataModule):
    def __init__(self, queries=None, tokenizer=None, batch_size=64, max_len=32, val_frac=0.1, min_count=1):
        super().__init__()
        self.save_hyperparameters(ignore=["queries", "tokenizer"])
        self.queries = list(queries) if queries is not None else query_log(40)["query"].tolist()
        self.tokenizer = tokenizer or QueryTokenizer()

    def train_dataloader(self):
        ids = torch.tensor([self.tokenizer.encode(q, self.hparams.max_len) for q in self.queries])
        return DataLoader(TensorDataset(ids), batch_size=self.hparams.batch_size, shuffle=True)


# ----------------------------------------------------------------------------- camera traps

@register_model("cameratrap")
class LitCameraTrap(pl.LightningModule):
    def __init__(
        self, backbone: nn.Module, num_classes: int,
        class_names,  # truth: hparam
        class_weights=None, empty_index: int = 0, lr: float = 1e-3, label_smoothing: float = 0.05,
        image_size=(32, 32),
        md_threshold=0.15,  # truth: hparam
        train_locations=None, freeze_backbone: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, num_classes)
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.ones(num_classes))

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, _):
        x, y = batch
        return F.cross_entropy(self(x), y, weight=self.class_weights, label_smoothing=self.hparams.label_smoothing)


@register_model("cameratrap_seq")
class LitSequenceClassifier(pl.LightningModule):
    """Classifies a capture sequence (burst of frames) with attention pooling over frame embeddings."""

    def __init__(
        self,
        frame_encoder: nn.Module,  # truth: hparam
        num_classes: int = 5, max_frames: int = 3, aggregation: str = "attention",
        criterion=None,  # truth: hparam
        is_empty=None,  # truth: hparam
        lr: float = 5e-4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.frame_encoder = frame_encoder
        self.criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
        self.attn = nn.Linear(frame_encoder.out_dim, 1)
        self.head = nn.Linear(frame_encoder.out_dim, num_classes)

    def forward(self, frames):  # (B, T, 3, H, W)
        b, t = frames.shape[:2]
        z = self.frame_encoder(frames.flatten(0, 1)).view(b, t, -1)
        w = torch.softmax(self.attn(z), 1) if self.hparams.aggregation == "attention" else torch.full((b, t, 1), 1 / t)
        return self.head((w * z).sum(1))


def make_cameratrap(cfg, meta):
    enc = LabelEncoder().fit(list(cfg.data.species))
    y = enc.transform(meta["species"])
    counts = np.bincount(y, minlength=len(enc.classes_))
    weights = counts.sum() / np.maximum(counts, 1) / len(counts)
    empty_conf = meta.loc[meta["species"] == "empty", "md_conf"]
    val_locs = set(cfg.data.val_locations)
    return MODEL_REGISTRY[cfg.model.name](
        backbone=FrameEncoder(cfg.model.width), num_classes=len(enc.classes_),
        class_names=list(enc.classes_),
        class_weights=torch.tensor(weights, dtype=torch.float32),
        empty_index=int(enc.transform(["empty"])[0]),
        lr=cfg.model.lr, label_smoothing=cfg.model.label_smoothing, image_size=tuple(cfg.data.image_size),
        md_threshold=np.percentile(empty_conf, 95),
        train_locations=sorted(set(meta["location"]) - val_locs),
        freeze_backbone=cfg.model.freeze_backbone,
    )


def make_sequence_classifier(cfg, meta):
    threshold = cfg.data.md_threshold

    def is_empty(frame_confs):
        return max(frame_confs) < threshold

    counts = meta["species"].value_counts().reindex(list(cfg.data.species), fill_value=0).to_numpy()
    weight = torch.tensor(1.0 / np.sqrt(np.maximum(counts, 1)), dtype=torch.float32)
    return MODEL_REGISTRY[cfg.seq.name](
        frame_encoder=FrameEncoder(16), num_classes=len(cfg.data.species),
        max_frames=cfg.seq.max_frames, aggregation=cfg.seq.aggregation,
        criterion=nn.CrossEntropyLoss(weight=weight / weight.mean()),
        is_empty=is_empty, lr=cfg.seq.lr,
    )


class CameraTrapDataModule(pl.LightningDataModule):
    def __init__(self, metadata=None, image_size=(32, 32), batch_size=32, md_threshold=0.15,
                 val_locations=("B01",), num_workers=0):
        super().__init__()
        self.save_hyperparameters(ignore=["metadata"])
        self.metadata = metadata if metadata is not None else trap_metadata(["empty", "a", "b", "c", "d"], 20)

    def setup(self, stage=None):
        keep = self.metadata[(self.metadata["md_conf"] >= self.hparams.md_threshold)
                             | (self.metadata["species"] == "empty")]
        self.val_meta = keep[keep["location"].isin(self.hparams.val_locations)]
        self.train_meta = keep.drop(self.val_meta.index)


# ----------------------------------------------------------------------------- load forecasting

class BaseForecaster(pl.LightningModule):
    def __init__(self, quantiles=(0.1, 0.5, 0.9), lr: float = 1e-3, weight_decay: float = 1e-4):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("q", torch.tensor(list(quantiles), dtype=torch.float32))

    def pinball(self, pred, y):
        err = y.unsqueeze(-1) - pred
        return torch.maximum(self.q * err, (self.q - 1) * err).mean()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


@register_model("load_mlp")
class LitLoadMLP(BaseForecaster):
    def __init__(
        self, n_features: int, horizon: int = 24, hidden: int = 64, lags=(1, 24, 168),
        target_scale=1.0,  # truth: hparam
        target_mean=0.0, holidays=(),
        train_end=None,  # truth: hparam
        tz: str = "UTC", **kwargs,
    ):
        super().__init__(**kwargs)
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.GELU(), nn.Linear(hidden, horizon * len(self.q)))

    def forward(self, x):
        return self.net(x).view(x.shape[0], self.hparams.horizon, -1)

    def training_step(self, batch, _):
        x, y = batch
        return self.pinball(self(x), y)


@register_model("load_from_cfg")
class LitLoadFromConfig(BaseForecaster):
    """The variant the sweep launcher builds: the whole resolved config goes in."""

    def __init__(
        self,
        cfg,  # truth: hparam
    ):
        super().__init__(quantiles=tuple(cfg.model.quantiles), lr=cfg.model.lr)
        self.save_hyperparameters(cfg)
        self.net = nn.Linear(len(cfg.features.lags) + 4, cfg.model.horizon * len(cfg.model.quantiles))


class LitWeatherForecaster(pl.LightningModule):
    """Load + temperature forecast, built from the argparse namespace of `train_weather.py`."""

    def __init__(
        self,
        args,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(args)
        self.encoder = nn.GRU(2, args.hidden, batch_first=True)
        self.head = nn.Linear(args.hidden, args.horizon)


class LitPeakForecaster(pl.LightningModule):
    """Daily-peak classifier: is tomorrow's peak above the training set's high quantile?"""

    def __init__(
        self,
        params,  # truth: hparam
        n_features: int = 8,
    ):
        super().__init__()
        self.save_hyperparameters(params)
        self.clf = nn.Sequential(nn.Linear(n_features, params["hidden"]), nn.ReLU(), nn.Linear(params["hidden"], 1))


class LitLoadBaseline(pl.LightningModule):
    """Seasonal-naive + linear correction, configured from a plain dict of the model section."""

    def __init__(self, params):
        super().__init__()
        self.save_hyperparameters(params)
        self.correction = nn.Linear(len(params["lags"]), 1)


def make_load_mlp(cfg, frame):
    scaler = StandardScaler().fit(frame[["load"]])
    cutoff = pd.Timestamp(cfg.train.train_end, tz=cfg.features.tz)
    return MODEL_REGISTRY[cfg.model.name](
        n_features=len(cfg.features.lags) + 6, horizon=cfg.model.horizon, hidden=cfg.model.hidden,
        lags=tuple(cfg.features.lags),
        target_scale=scaler.scale_[0],
        target_mean=float(scaler.mean_[0]),
        holidays=list(cfg.features.holidays),
        train_end=cutoff,
        tz=str(frame.index.tz), quantiles=list(cfg.model.quantiles), lr=cfg.model.lr,
        weight_decay=cfg.model.weight_decay,
    )


def weather_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--weather-csv", type=Path, default=Path("data/dwd_hourly.csv"))
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--horizon", type=int, default=24)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--station", default="10382")
    return p.parse_args(argv)


def make_peak_params(frame):
    daily_peak = frame["load"].resample("D").max()
    return {"hidden": 16, "lr": 1e-3, "peak_quantile": 0.9,
            "peak_threshold": daily_peak.quantile(0.9), "n_days": int(daily_peak.size)}


def make_baseline_params(cfg):
    params = OmegaConf.to_container(cfg.model, resolve=True)
    params["lags"] = list(cfg.features.lags)
    params["season_length"] = 24 * 7
    return params


class LoadDataModule(pl.LightningDataModule):
    def __init__(self, frame=None, lags=(1, 24, 168), horizon=24, batch_size=128, val_days=14, tz="Europe/Berlin"):
        super().__init__()
        self.save_hyperparameters(ignore=["frame"])
        self.frame = frame if frame is not None else hourly_load(30, tz)

    def setup(self, stage=None):
        cut = self.frame.index[-1] - pd.Timedelta(days=self.hparams.val_days)
        self.train_frame, self.val_frame = self.frame[:cut], self.frame[cut:]


# ----------------------------------------------------------------------------- entry point

def build_module(task, which="model"):
    cfg = task_config(task)
    if task == "qac":
        log = query_log()
        return make_qac_lm(cfg, log) if which == "model" else make_qac_ranker(cfg, log)
    if task == "cameratrap":
        meta = trap_metadata(list(cfg.data.species))
        return make_cameratrap(cfg, meta) if which == "model" else make_sequence_classifier(cfg, meta)
    frame = hourly_load(tz=cfg.features.tz)
    if which == "model":
        return make_load_mlp(cfg, frame)
    if which == "cfg":
        return MODEL_REGISTRY["load_from_cfg"](cfg)
    if which == "peak":
        return LitPeakForecaster(make_peak_params(frame), n_features=8)
    return LitLoadBaseline(make_baseline_params(cfg))


FACTORIES = {
    "LitQueryLM": lambda: build_module("qac"),
    "LitPrefixRanker": lambda: build_module("qac", "ranker"),
    "LitCameraTrap": lambda: build_module("cameratrap"),
    "LitSequenceClassifier": lambda: build_module("cameratrap", "seq"),
    "LitLoadMLP": lambda: build_module("load"),
    "LitLoadFromConfig": lambda: build_module("load", "cfg"),
    "LitWeatherForecaster": lambda: LitWeatherForecaster(weather_args([])),
    "LitPeakForecaster": lambda: build_module("load", "peak"),
    "LitLoadBaseline": lambda: build_module("load", "baseline"),
    "QueryLogDataModule": lambda: QueryLogDataModule(query_log(50)["query"].tolist(), QueryTokenizer(), batch_size=16),
    "CameraTrapDataModule": lambda: CameraTrapDataModule(
        trap_metadata(["empty", "impala", "zebra", "wildebeest", "hyena"]), image_size=(32, 32),
        md_threshold=0.15, val_locations=("B01", "B02")),
    "LoadDataModule": lambda: LoadDataModule(hourly_load(30), lags=(1, 24, 168), horizon=24),
}
