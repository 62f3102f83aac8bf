"""Lightning ports of the antibody-affinity, speech-emotion and Wi-Fi footfall models.

Every module calls save_hyperparameters so that `Module.load_from_checkpoint(path)` can rebuild
it; the builders at the bottom of each section are what the sweep scripts call.
"""
import argparse
import enum
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader, TensorDataset

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
EMOTIONS = ("neutral", "happy", "sad", "angry")


# ============================================================================ antibody affinity

def toy_antibody_frame(n=96, seed=0):
    rng = np.random.default_rng(seed)
    aa = np.array(list(AMINO_ACIDS))
    heavy = ["C" + "".join(rng.choice(aa, size=int(rng.integers(8, 16)))) + "W" for _ in range(n)]
    light = ["C" + "".join(rng.choice(aa, size=int(rng.integers(6, 10)))) + "T" for _ in range(n)]
    kd_nm = 10 ** rng.normal(1.0, 0.8, size=n)
    frame = pd.DataFrame({"heavy_cdr3": heavy, "light_cdr3": light, "kd_nm": kd_nm,
                          "antigen": rng.choice(["HER2", "PD-L1", "RBD"], size=n),
                          "cluster": rng.integers(0, 10, size=n)})
    frame["pkd"] = 9.0 - np.log10(frame["kd_nm"])
    return frame


class AminoAcidTokenizer:
    def __init__(self, alphabet=AMINO_ACIDS, max_len=24):
        self.alphabet = alphabet
        self.max_len = max_len
        self.stoi = {aa: i + 2 for i, aa in enumerate(alphabet)}  # 0 = pad, 1 = unknown

    def __len__(self):
        return len(self.alphabet) + 2

    def __call__(self, seqs):
        ids = [[self.stoi.get(ch, 1) for ch in s[: self.max_len]] for s in seqs]
        return torch.tensor([x + [0] * (self.max_len - len(x)) for x in ids], dtype=torch.long)


def make_kd_transform(unit="nM"):
    scale = {"nM": 1e-9, "pM": 1e-12, "uM": 1e-6}[unit]

    def to_pkd(kd):
        return -torch.log10(kd * scale)

    return to_pkd


class AffinityRegressor(pl.LightningModule):
    """CNN over heavy+light CDR3; trains on standardized pKd."""

    def __init__(
        self,
        vocab_size: int = 22,
        embed_dim: int = 32,
        hidden: int = 64,
        kernel_sizes: tuple = (3, 5, 7),
        lr: float = 1e-3,
        pkd_mean: float = 0.0,  # truth: hparam
        pkd_std: float = 1.0,
        loss_fn: nn.Module = None,
        target_transform=None,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["loss_fn"])
        self.loss_fn = loss_fn if loss_fn is not None else nn.MSELoss()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, hidden, k, padding=k // 2) for k in kernel_sizes)
        self.head = nn.Linear(2 * hidden * len(kernel_sizes), 1)

    def encode(self, tokens):
        x = self.embed(tokens).transpose(1, 2)
        return torch.cat([F.relu(c(x)).amax(dim=2) for c in self.convs], dim=1)

    def forward(self, heavy, light):
        return self.head(torch.cat([self.encode(heavy), self.encode(light)], dim=1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        heavy, light, kd = batch
        target = self.hparams.target_transform(kd) if self.hparams.target_transform else kd
        target = (target - self.hparams.pkd_mean) / self.hparams.pkd_std
        loss = self.loss_fn(self(heavy, light), target)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def build_affinity_regressor(frame, cfg):
    """Standardization stats come from the training frame; Huber is robust to ELISA outliers."""
    return AffinityRegressor(
        embed_dim=cfg["embed_dim"],
        hidden=cfg["hidden"],
        kernel_sizes=tuple(cfg["kernel_sizes"]),
        lr=cfg["lr"],
        pkd_mean=frame["pkd"].mean(),
        pkd_std=float(frame["pkd"].std()),
        loss_fn=nn.HuberLoss(delta=1.0),
        target_transform=make_kd_transform(cfg.get("kd_unit", "nM")),
    )


class PairedChainAffinity(pl.LightningModule):
    """Transformer over the concatenated heavy/light CDRs with an antigen embedding."""

    def __init__(
        self,
        tokenizer: AminoAcidTokenizer,  # truth: hparam
        antigen_vocab: dict,
        d_model: int = 64,
        n_heads: int = 4,
        holdout_clusters: list = None,
        lr: float = 5e-4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = tokenizer
        self.tok_embed = nn.Embedding(len(tokenizer), d_model, padding_idx=0)
        self.antigen_embed = nn.Embedding(len(antigen_vocab), d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.head = nn.Linear(d_model, 1)

    def forward(self, tokens, antigen):
        h = self.encoder(self.tok_embed(tokens) + self.antigen_embed(antigen)[:, None])
        mask = (tokens != 0).unsqueeze(-1).float()
        return self.head((h * mask).sum(1) / mask.sum(1).clamp(min=1.0)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        tokens, antigen, pkd = batch
        loss = F.mse_loss(self(tokens, antigen), pkd)
        self.log("train/mse", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_paired_chain(frame):
    holdout = sorted(set(frame["cluster"]))[-2:]
    return PairedChainAffinity(
        tokenizer=AminoAcidTokenizer(max_len=40),
        antigen_vocab={a: i for i, a in enumerate(sorted(frame["antigen"].unique()))},
        d_model=64,
        holdout_clusters=holdout,
    )


class EpitopeContrastive(pl.LightningModule):
    """CLIP-style antibody/antigen contrastive pretraining; both encoders are passed in."""

    def __init__(
        self,
        antibody_encoder: nn.Module,
        antigen_encoder: nn.Module,
        args: argparse.Namespace,  # truth: hparam
        enc_dim: int = 64,
        proj_dim: int = 32,
        temperature: float = 0.07,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["antibody_encoder", "antigen_encoder"])
        self.antibody_encoder = antibody_encoder
        self.antigen_encoder = antigen_encoder
        self.ab_proj = nn.Linear(enc_dim, proj_dim)
        self.ag_proj = nn.Linear(enc_dim, proj_dim)

    def training_step(self, batch, batch_idx):
        ab, ag = batch
        za = F.normalize(self.ab_proj(self.antibody_encoder(ab)), dim=-1)
        zg = F.normalize(self.ag_proj(self.antigen_encoder(ag)), dim=-1)
        logits = za @ zg.T / self.hparams.temperature
        target = torch.arange(len(ab), device=logits.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        self.log("train/infonce", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.args.lr)


def pretrain_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--antigen-db", type=Path, default=Path("data/antigens.fasta"))
    return p.parse_args(argv)


def build_contrastive(argv=None, ab_len=40, ag_len=64):
    args = pretrain_args(argv)
    ab = nn.Sequential(nn.Embedding(22, 16), nn.Flatten(), nn.Linear(16 * ab_len, 64))
    ag = nn.Sequential(nn.Embedding(22, 16), nn.Flatten(), nn.Linear(16 * ag_len, 64))
    return EpitopeContrastive(ab, ag, args, enc_dim=64, proj_dim=32, temperature=0.05)


class AntibodyDataModule(pl.LightningDataModule):
    def __init__(self, table: pd.DataFrame, data_dir: str = "data/abaff", batch_size: int = 32,
                 val_clusters: tuple = (), max_len: int = 24, num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters(ignore=["table"])
        self.table = table
        self.tokenizer = AminoAcidTokenizer(max_len=max_len)

    def setup(self, stage=None):
        is_val = self.table["cluster"].isin(self.hparams.val_clusters).to_numpy()
        def tensors(df):
            kd = torch.tensor(df["kd_nm"].to_numpy(), dtype=torch.float32)
            return TensorDataset(self.tokenizer(df["heavy_cdr3"]), self.tokenizer(df["light_cdr3"]), kd)
        self.train_set, self.val_set = tensors(self.table[~is_val]), tensors(self.table[is_val])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size)


def build_antibody_datamodule(frame, root=Path("data")):
    return AntibodyDataModule(frame, data_dir=str(root / "abaff"), batch_size=32,
                              val_clusters=tuple(sorted(set(frame["cluster"]))[:2]))


# ============================================================================ speech emotion

SER_YAML = """
features: {sample_rate: 16000, n_fft: 400, hop_length: 160, n_mels: 40}
model: {channels: [16, 32], attn_dim: 32, dropout: 0.2}
optim: {lr: 1.0e-3, weight_decay: 1.0e-4}
targets: [arousal, valence]
emotions: [neutral, happy, sad, angry]
"""


def load_ser_config(overrides=()):
    return OmegaConf.merge(OmegaConf.create(SER_YAML), OmegaConf.from_dotlist(list(overrides)))


class ConvEncoder(nn.Module):
    def __init__(self, channels=(16, 32)):
        super().__init__()
        layers, c_in = [], 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.out_dim = c_in

    def forward(self, mel):
        return self.body(mel.unsqueeze(1)).mean(dim=(2, 3))


class SERModule(pl.LightningModule):
    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.encoder = ConvEncoder(tuple(cfg.model.channels))
        self.head = nn.Linear(self.encoder.out_dim, len(cfg.emotions))

    def forward(self, mel):
        return self.head(self.encoder(mel))

    def training_step(self, batch, batch_idx):
        mel, y = batch
        loss = F.cross_entropy(self(mel), y)
        self.log("train/ce", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.optim.lr,
                                 weight_decay=self.hparams.optim.weight_decay)


class ProsodyRegressor(pl.LightningModule):
    """Arousal/valence regression head on a (possibly pretrained) encoder; CCC loss."""

    def __init__(
        self,
        encoder: nn.Module,
        mel_config,  # truth: hparam
        n_mels: int = 40,
        targets: list = ("arousal", "valence"),
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters("lr", "n_mels", "mel_config", "targets")
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, len(targets))

    @staticmethod
    def ccc_loss(pred, gold):
        mp, mg = pred.mean(0), gold.mean(0)
        cov = ((pred - mp) * (gold - mg)).mean(0)
        ccc = 2 * cov / (pred.var(0, unbiased=False) + gold.var(0, unbiased=False) + (mp - mg) ** 2)
        return (1 - ccc).mean()

    def training_step(self, batch, batch_idx):
        mel, dims = batch
        loss = self.ccc_loss(torch.tanh(self.head(self.encoder(mel))), dims)
        self.log("train/ccc_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def build_prosody(cfg):
    encoder = ConvEncoder(tuple(cfg.model.channels))
    return ProsodyRegressor(encoder, mel_config=cfg.features, n_mels=cfg.features.n_mels,
                            targets=list(cfg.targets), lr=cfg.optim.lr)


class Pooling(enum.Enum):
    MEAN = "mean"
    ATTENTIVE = "attentive"
    STATS = "stats"


class EmotionBase(pl.LightningModule):
    def __init__(
        self,
        num_classes: int = 4,
        lr: float = 1e-3,
        label_smoothing: float = 0.0,
        class_weights=None,  # truth: hparam
        **kwargs,
    ):
        super().__init__()
        self.save_hyperparameters()
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)

    def training_step(self, batch, batch_idx):
        mel, y = batch
        loss = self.criterion(self(mel), y)
        self.log("train/ce", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class ConvAttentionEmotion(EmotionBase):
    def __init__(
        self,
        n_mels: int = 40,
        channels: tuple = (16, 32),
        pooling: Pooling = Pooling.ATTENTIVE,  # truth: hparam
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = ConvEncoder(channels)
        self.attn = nn.Linear(self.encoder.out_dim, 1)
        self.classifier = nn.Linear(self.encoder.out_dim, self.hparams.num_classes)

    def forward(self, mel):
        return self.classifier(self.encoder(mel))


def build_emotion_classifier(labels, n_mels=40):
    y = np.asarray([EMOTIONS.index(lab) for lab in labels])
    weights = compute_class_weight("balanced", classes=np.arange(len(EMOTIONS)), y=y)
    return ConvAttentionEmotion(n_mels=n_mels, channels=(16, 32), num_classes=len(EMOTIONS),
                                label_smoothing=0.1, class_weights=weights)


class SpeechDataModule(pl.LightningDataModule):
    def __init__(self, feature_cfg: dict, test_speakers: list, batch_size: int = 16, num_workers: int = 0,
                 clip_seconds: float = 0.5):
        super().__init__()
        self.save_hyperparameters("feature_cfg", "test_speakers", "batch_size", "clip_seconds")
        self.num_workers = num_workers

    def setup(self, stage=None):
        n_frames = int(self.hparams.clip_seconds * self.hparams.feature_cfg["sample_rate"]
                       / self.hparams.feature_cfg["hop_length"])
        mel = torch.randn(32, self.hparams.feature_cfg["n_mels"], n_frames)
        self.train_set = TensorDataset(mel, torch.randint(0, len(EMOTIONS), (32,)))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.num_workers)


def build_speech_datamodule(cfg, speakers):
    test = np.sort(np.unique(speakers))[-2:]
    return SpeechDataModule(OmegaConf.to_container(cfg.features, resolve=True), test_speakers=test.tolist(),
                            batch_size=16)


# ============================================================================ Wi-Fi footfall

HOLIDAYS = ("2024-03-29", "2024-04-01")


def toy_footfall(stores=("S01", "S02", "S03"), days=10, seed=0):
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2024-03-18", periods=24 * days, freq="h")
    rows = []
    for k, store in enumerate(stores):
        base = 20 * (1 + 0.3 * k) * np.exp(-0.5 * ((hours.hour - 15) / 3.0) ** 2)
        rows.append(pd.DataFrame({"store_id": store, "hour": hours, "footfall": rng.poisson(base)}))
    return pd.concat(rows, ignore_index=True)


class FootfallForecaster(pl.LightningModule):
    def __init__(
        self,
        lookback: int = 48,
        horizon: int = 24,
        hidden: int = 64,
        freq: str = "h",
        train_end=None,  # truth: hparam
        holidays: tuple = (),
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.mlp = nn.Sequential(nn.Linear(lookback, hidden), nn.ReLU(), nn.Linear(hidden, horizon))

    def forward(self, window):
        return self.mlp(window)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.l1_loss(self(x), y)
        self.log("train/mae", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class MultiStoreForecaster(FootfallForecaster):
    """One network for all stores, with a learned store embedding added to the window encoding."""

    def __init__(
        self,
        store_ids,  # truth: hparam
        store_emb_dim: int = 8,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.store_index = {s: i for i, s in enumerate(store_ids)}
        self.store_emb = nn.Embedding(len(store_ids), store_emb_dim)
        self.mix = nn.Linear(store_emb_dim, self.hparams.horizon)

    def forward(self, window, store_idx):
        return self.mlp(window) + self.mix(self.store_emb(store_idx))

    def training_step(self, batch, batch_idx):
        x, s, y = batch
        loss = F.l1_loss(self(x, s), y)
        self.log("train/mae", loss)
        return loss


def build_forecaster(frame, lookback=48, horizon=24):
    hours = pd.DatetimeIndex(frame["hour"].unique()).sort_values()
    return FootfallForecaster(lookback=lookback, horizon=horizon, freq=pd.infer_freq(hours),
                              train_end=frame["hour"].max(), holidays=HOLIDAYS)


def build_multistore(frame, lookback=48, horizon=24):
    return MultiStoreForecaster(store_ids=frame["store_id"].unique(), store_emb_dim=8,
                                lookback=lookback, horizon=horizon, train_end=frame["hour"].max(),
                                holidays=HOLIDAYS)


FORECASTERS = {}


def register(name):
    def deco(cls):
        FORECASTERS[name] = cls
        return cls
    return deco


@register("tcn")
class TCNForecaster(pl.LightningModule):
    def __init__(
        self,
        channels=(32, 32),  # truth: hparam
        kernel_size: int = 3,
        dropout: float = 0.1,
        horizon: int = 24,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        layers, c_in = [], 1
        for i, c in enumerate(channels):
            d = 2 ** i
            layers += [nn.Conv1d(c_in, c, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2),
                       nn.ReLU(), nn.Dropout(dropout)]
            c_in = c
        self.tcn = nn.Sequential(*layers)
        self.out = nn.Linear(c_in, horizon)

    def forward(self, x):
        return self.out(self.tcn(x.unsqueeze(1))[:, :, -1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.l1_loss(self(x), y)
        self.log("train/mae", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@dataclass
class QuantileConfig:
    quantiles: tuple = (0.1, 0.5, 0.9)
    lookback: int = 168
    horizon: int = 24
    hidden: int = 64
    lr: float = 1e-3


@register("quantile_mlp")
class QuantileMLP(pl.LightningModule):
    def __init__(
        self,
        config: QuantileConfig,  # truth: hparam
        n_stores: int = 1,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.config = config
        out = config.horizon * len(config.quantiles)
        self.net = nn.Sequential(nn.Linear(config.lookback, config.hidden), nn.ReLU(), nn.Linear(config.hidden, out))
        self.register_buffer("q", torch.tensor(config.quantiles))

    def forward(self, x):
        return self.net(x).view(x.shape[0], self.config.horizon, -1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        err = y.unsqueeze(-1) - self(x)
        loss = torch.maximum(self.q * err, (self.q - 1) * err).mean()
        self.log("train/pinball", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.config.lr)


FORECAST_YAML = """
model:
  name: tcn
  params:
    channels: [16, 16, 32]
    kernel_size: 3
    dropout: 0.1
data:
  horizon: 24
  lookback: 168
optim:
  lr: 5.0e-4
"""


def load_forecast_config(overrides=()):
    return OmegaConf.merge(OmegaConf.create(FORECAST_YAML), OmegaConf.from_dotlist(list(overrides)))


def build_from_config(cfg):
    cls = FORECASTERS[cfg.model.name]
    if cls is QuantileMLP:
        quantiles = tuple(cfg.model.get("quantiles", (0.1, 0.5, 0.9)))
        qcfg = QuantileConfig(quantiles=quantiles, horizon=cfg.data.horizon, lookback=cfg.data.lookback,
                              lr=cfg.optim.lr)
        return QuantileMLP(qcfg, n_stores=cfg.get("n_stores", 1))
    return cls(**cfg.model.params, horizon=cfg.data.horizon, lr=cfg.optim.lr)


class FootfallDataModule(pl.LightningDataModule):
    def __init__(self, csv_path: str, lookback: int = 168, horizon: int = 24, stores: tuple = (),
                 batch_size: int = 64, calendar: dict = None):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        n = 64
        self.train_set = TensorDataset(torch.randn(n, self.hparams.lookback), torch.randn(n, self.hparams.horizon))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


def build_footfall_datamodule(frame, data_root=Path("data") / "wifi"):
    return FootfallDataModule(
        csv_path=str(data_root / "hourly_devices.csv"),
        stores=tuple(sorted(frame["store_id"].unique())),
        calendar={"holidays": list(HOLIDAYS), "open_hour": 8, "close_hour": 21,
                  "weekday_names": list(pd.date_range("2024-03-18", periods=7, freq="D").day_name())},
    )


FACTORIES = {
    "AminoAcidTokenizer": AminoAcidTokenizer,
    "AffinityRegressor": lambda: build_affinity_regressor(
        toy_antibody_frame(), {"embed_dim": 32, "hidden": 48, "kernel_sizes": [3, 5, 7], "lr": 1e-3}),
    "PairedChainAffinity": lambda: build_paired_chain(toy_antibody_frame()),
    "EpitopeContrastive": lambda: build_contrastive([]),
    "AntibodyDataModule": lambda: build_antibody_datamodule(toy_antibody_frame()),
    "SERModule": lambda: SERModule(load_ser_config(["optim.lr=5e-4"])),
    "ProsodyRegressor": lambda: build_prosody(load_ser_config()),
    "ConvEncoder": lambda: ConvEncoder((16, 32)),
    "Pooling": lambda: Pooling.ATTENTIVE,
    "ConvAttentionEmotion": lambda: build_emotion_classifier(["neutral"] * 10 + ["happy"] * 6 + ["sad"] * 5 + ["angry"] * 3),
    "SpeechDataModule": lambda: build_speech_datamodule(load_ser_config(), [f"spk{i:02d}" for i in range(8)]),
    "FootfallForecaster": lambda: build_forecaster(toy_footfall()),
    "MultiStoreForecaster": lambda: build_multistore(toy_footfall()),
    "TCNForecaster": lambda: build_from_config(load_forecast_config()),
    "QuantileMLP": lambda: build_from_config(load_forecast_config(["model.name=quantile_mlp",
                                                                    "model.quantiles=[0.05,0.5,0.95]"])),
    "FootfallDataModule": lambda: build_footfall_datamodule(toy_footfall()),
}

NOT_BUILT = {
    "EmotionBase": "abstract: has no forward; built through ConvAttentionEmotion",
}
