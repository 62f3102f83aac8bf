"""Lightning entry points for the DTI, diarization and change-detection projects.

Modules are looked up in LIT_REGISTRY by the `model.name` of an OmegaConf config
(or built from an argparse namespace by the older diarization scripts); the
builder functions below prepare the data-dependent arguments.
"""
import argparse
import enum
import functools
import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.preprocessing import StandardScaler

LIT_REGISTRY = {}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SMILES_CHARSET = "#()+-=@BCFHINOPS[]cnos0123456789l"
PROTEIN_CHARSET = "ACDEFGHIKLMNPQRSTVWXY"
FRAME_SHIFT = 0.01


def register(name):
    def deco(cls):
        LIT_REGISTRY[name] = cls
        return cls
    return deco


def optimizer_factory(name, **kwargs):
    return functools.partial(OPTIMIZERS[name], **kwargs)


# ----------------------------------------------------------------- drug-target interaction

class ProteinEncoding(enum.Enum):
    ONEHOT = "onehot"
    BLOSUM = "blosum"
    LEARNED = "learned"


class SmilesTokenizer:
    def __init__(self, charset=SMILES_CHARSET, max_len=32):
        self.vocab = {ch: i + 1 for i, ch in enumerate(charset)}
        self.max_len = max_len

    def __call__(self, smiles):
        ids = [self.vocab.get(ch, 0) for ch in smiles[:self.max_len]]
        return torch.tensor(ids + [0] * (self.max_len - len(ids)))


DTI_CFG = OmegaConf.create({
    "model": {"name": "deepdta", "embed_dim": 8, "n_filters": 8, "kernel_sizes": [4, 6],
              "protein_encoding": "learned"},
    "data": {"binder_kd_nm": 30.0, "max_prot_len": 24},
    "optim": {"lr": 1e-3, "weight_decay": 0.0},
})


def toy_dti_frame():
    rng = np.random.default_rng(0)
    smiles = ["CC(=O)Oc1ccccc1C(=O)O", "CN1CCCC1c2cccnc2", "CCN(CC)CC", "c1ccc2ccccc2c1"]
    df = pd.DataFrame({"smiles": smiles * 3, "target": ["MKTAYIAKQR"] * 6 + ["MSEQLKCLDN"] * 6})
    df["kd_nm"] = 10 ** rng.uniform(0, 4, size=len(df))
    df["pkd"] = -np.log10(df["kd_nm"] * 1e-9)
    return df


@register("deepdta")
class LitDeepDTA(pl.LightningModule):
    def __init__(
        self,
        drug_vocab_size: int,
        target_vocab_size: int,
        embed_dim: int = 16,
        n_filters: int = 8,
        kernel_sizes: tuple = (4, 6),
        lr: float = 1e-3,
        tokenizer=None,  # truth: hparam
        pkd_threshold: float = 7.0,  # truth: hparam
        max_smiles_len: int = 32,
        label_mean: float = 0.0,
        label_std: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = tokenizer
        self.drug_emb = nn.Embedding(drug_vocab_size + 1, embed_dim, padding_idx=0)
        self.prot_emb = nn.Embedding(target_vocab_size + 1, embed_dim, padding_idx=0)
        self.drug_conv = nn.Conv1d(embed_dim, n_filters, kernel_sizes[0])
        self.prot_conv = nn.Conv1d(embed_dim, n_filters, kernel_sizes[1])
        self.head = nn.Linear(2 * n_filters, 1)

    def forward(self, d, t):
        hd = F.relu(self.drug_conv(self.drug_emb(d).transpose(1, 2))).amax(-1)
        ht = F.relu(self.prot_conv(self.prot_emb(t).transpose(1, 2))).amax(-1)
        return self.head(torch.cat([hd, ht], -1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        d, t, y = batch
        loss = F.mse_loss(self(d, t), (y - self.hparams.label_mean) / self.hparams.label_std)
        self.log("train_mse", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@register("dti_binder")
class LitDTIClassifier(pl.LightningModule):
    def __init__(
        self,
        encoder: nn.Module,
        pos_weight: float = 1.0,
        class_balance: dict = None,
        protein_encoding: ProteinEncoding = ProteinEncoding.LEARNED,  # truth: hparam
        label_scaler=None,
        threshold: float = 0.5,
        hidden: int = 16,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "label_scaler"])
        self.encoder = encoder
        self.label_scaler = label_scaler
        self.classifier = nn.Linear(hidden, 1)
        self.register_buffer("pos_weight", torch.tensor([pos_weight]))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.classifier(self.encoder(x)).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logits, y, pos_weight=self.pos_weight)


def build_dti_module(cfg, df):
    lens = df["smiles"].str.len().to_numpy()
    tok = SmilesTokenizer(max_len=int(np.percentile(lens, 95)))
    cls = LIT_REGISTRY[cfg.model.name]
    return cls(
        drug_vocab_size=len(tok.vocab),
        target_vocab_size=len(PROTEIN_CHARSET),
        embed_dim=cfg.model.embed_dim,
        n_filters=cfg.model.n_filters,
        kernel_sizes=tuple(cfg.model.kernel_sizes),
        lr=cfg.optim.lr,
        tokenizer=tok,
        pkd_threshold=-np.log10(cfg.data.binder_kd_nm * 1e-9),
        max_smiles_len=tok.max_len,
        label_mean=float(df["pkd"].mean()),
        label_std=df["pkd"].std().item(),
    )


def build_binder_module(cfg, df):
    binder = df["pkd"] >= -np.log10(cfg.data.binder_kd_nm * 1e-9)
    n_pos = max(int(binder.sum()), 1)
    encoder = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
    return LIT_REGISTRY["dti_binder"](
        encoder=encoder,
        pos_weight=(len(binder) - n_pos) / n_pos,
        class_balance=binder.value_counts().to_dict(),
        protein_encoding=ProteinEncoding(cfg.model.protein_encoding),
        label_scaler=StandardScaler().fit(df[["pkd"]]),
    )


class DTIDataModule(pl.LightningDataModule):
    def __init__(self, csv_path: str = "data/davis.csv", batch_size: int = 8, max_smiles_len: int = 32,
                 split: tuple = (0.8, 0.1, 0.1), seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.frame = None

    def setup(self, stage=None):
        self.frame = toy_dti_frame()


# ----------------------------------------------------------------- speaker diarization

def diarization_args(argv=()):
    p = argparse.ArgumentParser()
    p.add_argument("--feat-dim", type=int, default=16)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--n-heads", type=int, default=2)
    p.add_argument("--max-speakers", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--rttm-dir", type=Path, default=Path("data/ami/rttm"))
    p.add_argument("--collar", type=float, default=0.25)
    return p.parse_args(list(argv))


@register("eend_sa")
class LitEEND(pl.LightningModule):
    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.proj = nn.Linear(args.feat_dim, args.hidden)
        self.encoder = nn.TransformerEncoderLayer(args.hidden, args.n_heads, dim_feedforward=32, batch_first=True)
        self.out = nn.Linear(args.hidden, args.max_speakers)

    def forward(self, x):
        return self.out(self.encoder(self.proj(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        losses = [F.binary_cross_entropy_with_logits(logits[..., list(p)], y)
                  for p in itertools.permutations(range(y.shape[-1]))]
        return torch.stack(losses).min()


@dataclass
class ClusteringConfig:
    method: str = "ahc"
    threshold: float = 0.6
    linkage: str = "average"


@register("eend_vc")
class LitEENDVectorClustering(pl.LightningModule):
    def __init__(
        self,
        embedding_model: nn.Module,
        num_speakers: int,  # truth: hparam
        local_speakers: int = 2,
        speaker_range=range(1, 8),  # truth: hparam
        postprocess=None,  # truth: hparam
        clustering: dict = None,
        collar: float = 0.25,
        frame_shift: float = FRAME_SHIFT,
        pit_permutations: list = None,
        emb_dim: int = 8,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["embedding_model"])
        self.embedding_model = embedding_model
        self.speaker_head = nn.Linear(emb_dim, num_speakers)

    def predict_step(self, batch, batch_idx):
        probs = torch.sigmoid(self.speaker_head(self.embedding_model(batch)))
        if self.hparams.postprocess is not None:
            probs = self.hparams.postprocess(probs)
        return probs


def build_eend_vc(spk_ids, argv=()):
    args = diarization_args(argv)
    embedding = nn.Sequential(nn.Linear(args.feat_dim, 8), nn.Tanh())
    return LIT_REGISTRY["eend_vc"](
        embedding_model=embedding,
        num_speakers=np.max(spk_ids) + 1,
        local_speakers=min(args.max_speakers, 2),
        postprocess=lambda p: (p > 0.5).float(),
        clustering=asdict(ClusteringConfig()),
        collar=args.collar,
        pit_permutations=list(itertools.permutations(range(2))),
    )


class LitDiarizationBase(pl.LightningModule):
    def __init__(self, lr: float = 1e-3, warmup_steps: int = 100, **kwargs):
        super().__init__()
        self.save_hyperparameters()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitOverlapDetector(LitDiarizationBase):
    def __init__(
        self,
        feat_dim: int = 16,
        hidden: int = 8,
        onset: float = 0.5,
        offset: float = 0.4,
        min_duration_s: float = 0.1,  # truth: hparam
        lr: float = 1e-3,
    ):
        super().__init__(lr=lr, warmup_steps=50)
        # snap to the frame grid so that train-time and inference-time binarisation agree
        self.hparams.min_duration_s = np.ceil(min_duration_s / FRAME_SHIFT) * FRAME_SHIFT
        self.hparams.onset = float(onset)
        self.rnn = nn.GRU(feat_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)


class DiarizationDataModule(pl.LightningDataModule):
    def __init__(self, manifest: str = "data/ami/train.lst", chunk_s: float = 8.0, batch_size: int = 4,
                 num_workers: int = 0, speakers_per_chunk: int = 3):
        super().__init__()
        self.save_hyperparameters()


# ----------------------------------------------------------------- aerial change detection

class DiffMode(enum.Enum):
    ABS = "abs"
    CONCAT = "concat"


CD_YAML = """
model:
  name: siam_unet
  base: 8
  activation: relu
  diff: abs
data:
  root: /data/LEVIR-CD
  bands: [red, green, blue]
  tile: 16
optim:
  name: adamw
  lr: 3e-4
  weight_decay: 0.01
"""


def band_stats(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(4, 3, 8, 8)).astype(np.float32)
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


@register("siam_unet")
class LitSiamUNet(pl.LightningModule):
    def __init__(
        self,
        in_channels: int = 3,
        base: int = 8,
        band_mean=None,  # truth: hparam
        band_std=None,
        activation=nn.ReLU,  # truth: hparam
        optimizer_factory=None,  # truth: hparam
        data_root: str = "/data/LEVIR-CD",  # truth: hparam
        cache_dir: str = "/tmp/levir_cache",
        pos_weight: float = 1.0,
        class_names: tuple = ("no_change", "change"),
        ignore_index: int = 255,
    ):
        super().__init__()
        data_root = Path(data_root)
        cache_dir = str(Path(cache_dir).expanduser())
        self.save_hyperparameters()
        self.optimizer_factory = optimizer_factory
        act = activation
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, base, 3, padding=1), act(),
                                     nn.Conv2d(base, base, 3, padding=1), act())
        self.head = nn.Conv2d(base, 1, 1)
        self.register_buffer("mean", torch.as_tensor(band_mean if band_mean is not None else [0.0] * in_channels))
        self.register_buffer("std", torch.as_tensor(band_std if band_std is not None else [1.0] * in_channels))

    def forward(self, pre, post):
        a = self.encoder((pre - self.mean[:, None, None]) / self.std[:, None, None])
        b = self.encoder((post - self.mean[:, None, None]) / self.std[:, None, None])
        return self.head(torch.abs(a - b))

    def configure_optimizers(self):
        return self.optimizer_factory(self.parameters())


class LitSiamUNetDiff(LitSiamUNet):
    def __init__(self, diff_mode: str = "abs", deep_supervision: bool = False, **kwargs):
        super().__init__(**kwargs)


def build_change_module(cfg):
    mean, std = band_stats()
    cls = LIT_REGISTRY[cfg.model.name]
    return cls(
        in_channels=len(cfg.data.bands),
        base=cfg.model.base,
        band_mean=mean,
        band_std=std.tolist(),
        activation=ACTIVATIONS[cfg.model.activation],
        optimizer_factory=optimizer_factory(cfg.optim.name, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay),
        data_root=cfg.data.root,
        cache_dir=Path.home() / ".cache" / "levir",
        pos_weight=float(np.float32(3.5)),
    )


def build_oscd_module(root=Path("/data/OSCD"), city="beirut"):
    mean, std = band_stats(seed=1)
    return LitSiamUNetDiff(
        diff_mode=DiffMode.CONCAT.value,
        deep_supervision=True,
        in_channels=3,
        band_mean=mean,
        band_std=[float(s) for s in std],
        optimizer_factory=optimizer_factory("sgd", lr=1e-2, momentum=0.9),
        data_root=root / city,
        cache_dir="/tmp/oscd_cache",
    )


class LitChangeFormer(pl.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.embed = nn.Conv2d(len(cfg.data.bands), cfg.model.base, 4, stride=4)
        self.attn = nn.MultiheadAttention(cfg.model.base, 2, batch_first=True)
        self.head = nn.Linear(cfg.model.base, 1)
        self.diff_mode = DiffMode(cfg.model.diff).value


class LitChangeLite(pl.LightningModule):
    def __init__(self, cfg: dict, tile: int = 16, mixed_precision: bool = False):
        super().__init__()
        self.save_hyperparameters("cfg", "tile")
        self.net = nn.Conv2d(6, 1, 3, padding=1)


class ChangeDetectionDataModule(pl.LightningDataModule):
    def __init__(self, root: str = "/data/LEVIR-CD", tile: int = 16, bands: list = None,
                 batch_size: int = 4, augment: bool = True):
        super().__init__()
        self.save_hyperparameters()


def _cd_cfg():
    return OmegaConf.create(CD_YAML)


FACTORIES = {
    "ProteinEncoding": lambda: ProteinEncoding.LEARNED,
    "DiffMode": lambda: DiffMode.ABS,
    "SmilesTokenizer": SmilesTokenizer,
    "LitDeepDTA": lambda: build_dti_module(DTI_CFG, toy_dti_frame()),
    "LitDTIClassifier": lambda: build_binder_module(DTI_CFG, toy_dti_frame()),
    "DTIDataModule": lambda: DTIDataModule(csv_path="data/kiba.csv", batch_size=16),
    "LitEEND": lambda: LIT_REGISTRY["eend_sa"](diarization_args(["--hidden", "16"])),
    "LitEENDVectorClustering": lambda: build_eend_vc(np.array([0, 2, 1, 2, 0])),
    "LitOverlapDetector": lambda: LitOverlapDetector(onset=np.float32(0.6), min_duration_s=0.12),
    "DiarizationDataModule": DiarizationDataModule,
    "LitSiamUNet": lambda: build_change_module(_cd_cfg()),
    "LitSiamUNetDiff": build_oscd_module,
    "LitChangeFormer": lambda: LitChangeFormer(_cd_cfg()),
    "LitChangeLite": lambda: LitChangeLite(OmegaConf.to_container(_cd_cfg(), resolve=True), tile=16,
                                           mixed_precision=True),
    "ChangeDetectionDataModule": lambda: ChangeDetectionDataModule(bands=list(_cd_cfg().data.bands)),
}
