"""Lightning wrappers for the three projects (flow IDS, document restoration, SMILES VAE).

Every module is built the way the training entry points build it: an OmegaConf run config goes
through a `build_*` factory (or a name registry) that fits the preprocessing it needs first.
"""
import argparse
import functools
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image
from sklearn.linear_model import Ridge
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from doc_restoration_trainer import PerceptualLoss, SobelEdgeLoss, TinyUNet, synth_page
from ids_flow_training import BENIGN, LABEL, NUMERIC, FlowMLP, FlowPreprocessor, synth_flows
from smiles_vae import (PAD, TRAIN_SMILES, RegexTokenizer, SmilesVAE, cyclical_beta, proxy_properties,
                        token_count_features)

FLOW_CFG = OmegaConf.create({
    "data": {"rows": 400, "seed": 0, "val_frac": 0.2, "batch_size": 128},
    "model": {"hidden": [64, 32], "dropout": 0.1, "emb_dim": 8, "latent": 6},
    "optim": {"lr": 2e-3, "weight_decay": 1e-4},
    "loss": {"balanced": True, "gamma": 2.0},
    "anomaly": {"quantile": 0.995, "score": "weighted_mse"},
})

DOC_CFG = OmegaConf.create({
    "model": {"name": "unet-tiny", "kwargs": {"width": 16}},
    "loss": {"l1": 1.0, "perceptual": 0.1, "edge": 0.05, "taps": [1, 3]},
    "data": {"patch_size": 32, "patches_per_page": 8, "pages": 4, "batch_size": 16},
    "optim": {"lr": 2e-4, "warmup_steps": 200},
    "eval": {"psnr_target": 30.0},
    "paths": {"samples": "runs/docres/samples"},
})

VAE_CFG = OmegaConf.create({
    "model": {"emb_dim": 32, "hidden": 64, "latent": 16, "dropout": 0.1, "head_sizes": [32, 16]},
    "train": {"lr": 3e-4, "batch_size": 12, "total_steps": 400, "word_dropout": 0.1},
    "kl": {"cycles": 4, "ratio": 0.5, "beta_max": 0.5},
    "properties": ["logp_proxy", "hetero_frac"],
})


# ----------------------------------------------------------------------------- flow IDS

class LitFlowClassifier(pl.LightningModule):
    def __init__(
        self,
        cat_cardinalities,
        num_numeric,
        num_classes,
        hidden_dims=(128, 64),
        emb_dim=8,
        dropout=0.1,
        lr=2e-3,
        weight_decay=1e-4,
        class_weights=None,  # truth: hparam
        focal_gamma=2.0,
        alert_threshold=0.5,  # truth: hparam
        label_names=None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embs = nn.ModuleList(nn.Embedding(c, min(emb_dim, c)) for c in cat_cardinalities)
        width = sum(e.embedding_dim for e in self.embs) + num_numeric
        layers = []
        for h in hidden_dims:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.mlp = nn.Sequential(*layers, nn.Linear(width, num_classes))
        w = torch.ones(num_classes) if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_w", w)

    def forward(self, cats, nums):
        return self.mlp(torch.cat([e(cats[:, i]) for i, e in enumerate(self.embs)] + [nums], dim=1))

    def training_step(self, batch, batch_idx):
        cats, nums, y = batch
        logp = F.log_softmax(self(cats, nums), dim=1).gather(1, y[:, None]).squeeze(1)
        loss = (-self.class_w[y] * (1 - logp.exp()) ** self.hparams.focal_gamma * logp).mean()
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class LitFlowAutoencoder(pl.LightningModule):
    """Trained on benign flows only; the anomaly score is the reconstruction error."""

    def __init__(
        self,
        input_dim,
        latent_dim=8,
        encoder=None,
        lr=1e-3,
        score_quantile=0.995,
        feature_mean=None,
        scaler=None,  # truth: hparam
        score_fn=None,  # truth: hparam
        benign_label="Normal",
    ):
        super().__init__()
        if feature_mean is not None:
            feature_mean = torch.as_tensor(feature_mean, dtype=torch.float32)
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder or nn.Sequential(nn.Linear(input_dim, 32), nn.ReLU(), nn.Linear(32, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 32), nn.ReLU(), nn.Linear(32, input_dim))
        self.register_buffer("threshold", torch.tensor(float("inf")))

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def anomaly_score(self, x):
        score_fn = self.hparams.score_fn or (lambda a, b: ((a - b) ** 2).mean(dim=1))
        return score_fn(x, self(x))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = F.mse_loss(self(x), x)
        self.log("train/recon", loss)
        return loss

    def on_validation_epoch_end(self):
        pass

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitFlowBaseline(pl.LightningModule):
    """Plain cross-entropy baseline on the same features (no focal loss, no reweighting)."""

    def __init__(self, cat_cardinalities=(5, 7, 6), num_numeric=len(NUMERIC), num_classes=6, hidden_dims=(64, 32),
                 lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = FlowMLP(cat_cardinalities, num_numeric, num_classes, tuple(hidden_dims))

    def training_step(self, batch, batch_idx):
        cats, nums, y = batch
        return F.cross_entropy(self.net(cats, nums), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


class LitFlowFromArgs(LitFlowBaseline):
    """Entry point used by the sweep script: everything comes in through argparse."""

    def __init__(self, args):  # truth: hparam
        super().__init__(cat_cardinalities=args.cardinalities, num_numeric=args.num_numeric,
                         num_classes=args.num_classes, hidden_dims=tuple(args.hidden), lr=args.lr)
        self.save_hyperparameters(args)


class FlowDataModule(pl.LightningDataModule):
    def __init__(self, rows=2000, seed=0, val_frac=0.2, batch_size=256, balance="weighted", num_workers=0):
        super().__init__()
        self.save_hyperparameters()
        self.pre = FlowPreprocessor()
        self.labels = LabelEncoder()

    def setup(self, stage=None):
        df = synth_flows(self.hparams.rows, self.hparams.seed)
        self.pre.fit(df)
        y = torch.as_tensor(self.labels.fit_transform(df[LABEL]))
        cats, nums = self.pre.transform(df)
        self.train_set = TensorDataset(cats, nums, y)
        counts = torch.bincount(y).float()
        self.sample_weights = (1.0 / counts)[y]

    def train_dataloader(self):
        sampler = WeightedRandomSampler(self.sample_weights, len(self.sample_weights))
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, sampler=sampler,
                          num_workers=self.hparams.num_workers)


def make_score_fn(kind, feature_weights=None):
    if kind == "weighted_mse":
        w = torch.as_tensor(feature_weights, dtype=torch.float32)

        def weighted_mse(x, x_hat):
            return ((x - x_hat) ** 2 * w).mean(dim=1)
        return weighted_mse
    return None


def build_flow_classifier(cfg, df):
    pre = FlowPreprocessor().fit(df)
    le = LabelEncoder().fit(df[LABEL])
    y = le.transform(df[LABEL])
    weights = compute_class_weight("balanced", classes=np.arange(len(le.classes_)), y=y)
    benign_share = (df[LABEL] == BENIGN).mean()
    return LitFlowClassifier(
        cat_cardinalities=pre.cardinalities,
        num_numeric=len(pre.numeric),
        num_classes=len(le.classes_),
        hidden_dims=tuple(cfg.model.hidden),
        emb_dim=cfg.model.emb_dim,
        dropout=cfg.model.dropout,
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        class_weights=weights if cfg.loss.balanced else None,
        focal_gamma=cfg.loss.gamma,
        alert_threshold=1.0 - benign_share,
        label_names=le.classes_.tolist(),
    )


def build_flow_autoencoder(cfg, df):
    benign = df[df[LABEL] == BENIGN]
    pre = FlowPreprocessor().fit(benign)
    nums = pre.scaler.transform(pre._numeric(benign))
    return LitFlowAutoencoder(
        input_dim=nums.shape[1],
        latent_dim=cfg.model.latent,
        lr=cfg.optim.lr,
        score_quantile=cfg.anomaly.quantile,
        feature_mean=nums.mean(axis=0),
        scaler=pre.scaler,
        score_fn=make_score_fn(cfg.anomaly.score, 1.0 / (nums.std(axis=0) + 1e-6)),
        benign_label=BENIGN,
    )


def build_flow_from_args(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="flows.parquet")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 32])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--num-classes", type=int, default=6)
    p.add_argument("--num-numeric", type=int, default=len(NUMERIC))
    p.add_argument("--cardinalities", type=int, nargs="+", default=[5, 7, 6])
    return LitFlowFromArgs(p.parse_args(argv))


# ----------------------------------------------------------------------------- document restoration

BACKBONES = {}


def register_backbone(name):
    def deco(fn):
        BACKBONES[name] = fn
        return fn
    return deco


@register_backbone("unet-tiny")
def unet_tiny(width=16):
    return TinyUNet(width=width)


@register_backbone("dncnn")
def dncnn(depth=6, width=32):
    return DnCNN(depth, width)


class DnCNN(nn.Module):
    def __init__(self, depth=6, width=32):
        super().__init__()
        layers = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, x):
        return x - self.body(x)


class LitDocRestorer(pl.LightningModule):
    def __init__(
        self,
        backbone,
        perceptual,  # truth: hparam
        loss_weights=None,
        patch_size=64,
        lr=2e-4,
        warmup_steps=500,
        ema_decay=0.999,
        resample=Image.Resampling.BICUBIC,  # truth: hparam
        degradations=("gaussian_noise", "motion_blur"),
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.perceptual = perceptual
        self.edge = SobelEdgeLoss()
        self.loss_weights = dict(loss_weights or {"l1": 1.0, "perceptual": 0.1, "edge": 0.05})

    def training_step(self, batch, batch_idx):
        noisy, clean = batch
        pred = self.backbone(noisy)
        w = self.loss_weights
        loss = (w["l1"] * F.l1_loss(pred, clean) + w["perceptual"] * self.perceptual(pred, clean)
                + w["edge"] * self.edge(pred, clean))
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.backbone.parameters(), lr=self.hparams.lr)
        warm = torch.optim.lr_scheduler.LinearLR(opt, 0.01, total_iters=self.hparams.warmup_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": warm, "interval": "step"}}


class LitDocRestorerFromConfig(pl.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = BACKBONES[cfg.model.name](**cfg.model.kwargs)

    def training_step(self, batch, batch_idx):
        noisy, clean = batch
        return F.l1_loss(self.net(noisy), clean)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.optim.lr)


class LitDocRestorerResolved(pl.LightningModule):
    """Same as above, but the config is flattened to plain containers before it is stored."""

    def __init__(self, cfg):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.net = BACKBONES[cfg.model.name](**cfg.model.kwargs)

    def training_step(self, batch, batch_idx):
        noisy, clean = batch
        return F.l1_loss(self.net(noisy), clean)


MODEL_REGISTRY = {}


def register_model(name):
    def deco(cls):
        MODEL_REGISTRY[name] = cls
        return cls
    return deco


@register_model("dncnn")
class LitDnCNN(pl.LightningModule):
    def __init__(self, depth=8, width=32, residual=True, lr=1e-3, sample_dir=None, psnr_target=None,  # truth: hparam[sample_dir]
                 log_images_every=200):
        super().__init__()
        psnr_target = float(psnr_target) if psnr_target is not None else None
        self.save_hyperparameters()
        self.net = DnCNN(depth, width)

    def training_step(self, batch, batch_idx):
        noisy, clean = batch
        return F.mse_loss(self.net(noisy), clean)


class DocPatchDataModule(pl.LightningDataModule):
    def __init__(self, pages=4, patch_size=32, patches_per_page=8, batch_size=16, sigma=0.08, seed=0):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        rng = np.random.default_rng(self.hparams.seed)
        p = self.hparams.patch_size
        clean = []
        for _ in range(self.hparams.pages):
            page = synth_page(rng)
            for _ in range(self.hparams.patches_per_page):
                y, x = rng.integers(0, page.shape[0] - p), rng.integers(0, page.shape[1] - p)
                clean.append(page[y:y + p, x:x + p])
        clean = torch.as_tensor(np.stack(clean), dtype=torch.float32)[:, None]
        self.train_set = TensorDataset((clean + self.hparams.sigma * torch.randn_like(clean)).clamp(0, 1), clean)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


def build_restorer(cfg):
    backbone = BACKBONES[cfg.model.name](**cfg.model.kwargs)
    perceptual = PerceptualLoss(layers=tuple(cfg.loss.taps))
    return LitDocRestorer(
        backbone=backbone,
        perceptual=perceptual,
        loss_weights={"l1": cfg.loss.l1, "perceptual": cfg.loss.perceptual, "edge": cfg.loss.edge},
        patch_size=cfg.data.patch_size,
        lr=cfg.optim.lr,
        warmup_steps=cfg.optim.warmup_steps,
    )


def build_registered(name, cfg):
    psnr_goal = np.float64(cfg.eval.psnr_target)
    return MODEL_REGISTRY[name](depth=6, width=16, lr=cfg.optim.lr, sample_dir=Path(cfg.paths.samples),
                                psnr_target=psnr_goal)


# ----------------------------------------------------------------------------- SMILES VAE

class LitSmilesVAE(pl.LightningModule):
    def __init__(
        self,
        vocab,
        max_len,  # truth: hparam
        emb_dim=32,
        hidden=64,
        latent=16,
        dropout=0.1,
        lr=3e-4,
        beta_schedule=None,  # truth: hparam
        word_dropout=0.0,
        property_names=(),
        pad_token=PAD,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.vae = SmilesVAE(len(vocab), emb_dim, hidden, latent, 1, dropout, vocab[pad_token])
        self.beta_schedule = beta_schedule

    def training_step(self, batch, batch_idx):
        (x,) = batch
        logits, mu, logvar = self.vae(x)
        recon = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], ignore_index=self.hparams.vocab[PAD])
        kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu ** 2 - logvar.exp(), dim=1))
        beta = self.beta_schedule(self.global_step) if self.beta_schedule else 1.0
        self.log_dict({"recon": recon, "kl": kl, "beta": float(beta)})
        return recon + beta * kl

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitPropertyGuidedVAE(LitSmilesVAE):
    def __init__(self, predictor=None, guidance_weight=1.0, target_property="logp_proxy", **kwargs):  # truth: hparam[predictor]
        super().__init__(**kwargs)
        self.predictor = predictor
        self.prop_head = nn.Linear(self.hparams.latent, 1)


class LitSmilesVAEScript(pl.LightningModule):
    def __init__(self, args, vocab=None):  # truth: hparam[args]
        super().__init__()
        self.save_hyperparameters(args)
        self.vocab = vocab or {PAD: 0}
        self.vae = SmilesVAE(max(len(self.vocab), 4), args.emb_dim, args.hidden, args.latent)


class LitLatentPropertyRegressor(pl.LightningModule):
    def __init__(
        self,
        latent_dim,
        hidden_sizes,  # truth: hparam
        property_names,
        lr=1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        dims = [latent_dim, *hidden_sizes]
        self.mlp = nn.Sequential(*[m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())],
                                 nn.Linear(dims[-1], len(property_names)))


class LitPropertyHead(pl.LightningModule):
    def __init__(self, latent_dim, property_names, target_mean=None, lr=1e-3):
        super().__init__()
        self.save_hyperparameters("latent_dim", "property_names", "lr")
        self.head = nn.Linear(latent_dim, len(property_names))
        mean = np.zeros(len(property_names)) if target_mean is None else target_mean
        self.register_buffer("target_mean", torch.as_tensor(mean, dtype=torch.float32))


class SmilesDataModule(pl.LightningDataModule):
    def __init__(self, smiles, max_len=48, batch_size=12, val_frac=0.1, randomize=False):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = RegexTokenizer(max_len)

    def setup(self, stage=None):
        self.tokenizer.fit(self.hparams.smiles)
        self.train_set = TensorDataset(torch.tensor([self.tokenizer.encode(s) for s in self.hparams.smiles]))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


def _vae_kwargs(cfg, corpus):
    tok = RegexTokenizer().fit(corpus)
    lengths = np.array([len(tok.split(s)) for s in corpus])
    kl = cfg.kl
    return dict(
        vocab=tok.stoi,
        max_len=lengths.max() + 2,
        emb_dim=cfg.model.emb_dim,
        hidden=cfg.model.hidden,
        latent=cfg.model.latent,
        dropout=cfg.model.dropout,
        lr=cfg.train.lr,
        beta_schedule=functools.partial(cyclical_beta, total_steps=cfg.train.total_steps, cycles=kl.cycles,
                                        ratio=kl.ratio, beta_max=kl.beta_max),
        word_dropout=cfg.train.word_dropout,
        property_names=tuple(cfg.properties),
    )


def build_vae(cfg, corpus=TRAIN_SMILES):
    return LitSmilesVAE(**_vae_kwargs(cfg, corpus))


def build_guided_vae(cfg, corpus=TRAIN_SMILES):
    kwargs = _vae_kwargs(cfg, corpus)
    tok = RegexTokenizer().fit(corpus)
    X = token_count_features(tok, corpus)
    y = np.array([proxy_properties(s)["logp_proxy"] for s in corpus])
    return LitPropertyGuidedVAE(predictor=Ridge(alpha=1.0).fit(X, y), guidance_weight=0.5, **kwargs)


def build_vae_from_argv(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--smiles", type=Path, default=Path("data/zinc_subset.smi"))
    p.add_argument("--emb-dim", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    args = p.parse_args(argv)
    return LitSmilesVAEScript(args, vocab=RegexTokenizer().fit(TRAIN_SMILES).stoi)


def build_property_regressor(cfg):
    return LitLatentPropertyRegressor(latent_dim=cfg.model.latent, hidden_sizes=cfg.model.head_sizes,
                                      property_names=list(cfg.properties), lr=cfg.train.lr)


def build_property_head(cfg, corpus=TRAIN_SMILES):
    props = np.array([[proxy_properties(s)[k] for k in cfg.properties] for s in corpus])
    return LitPropertyHead(cfg.model.latent, list(cfg.properties), target_mean=props.mean(axis=0))


FACTORIES = {
    "LitFlowClassifier": lambda: build_flow_classifier(FLOW_CFG, synth_flows(FLOW_CFG.data.rows)),
    "LitFlowAutoencoder": lambda: build_flow_autoencoder(FLOW_CFG, synth_flows(FLOW_CFG.data.rows)),
    "LitFlowBaseline": lambda: LitFlowBaseline(hidden_dims=list(FLOW_CFG.model.hidden), lr=FLOW_CFG.optim.lr),
    "LitFlowFromArgs": lambda: build_flow_from_args(["--lr", "5e-4", "--hidden", "32", "16"]),
    "FlowDataModule": lambda: FlowDataModule(**OmegaConf.to_container(FLOW_CFG.data)),
    "LitDocRestorer": lambda: build_restorer(DOC_CFG),
    "LitDocRestorerFromConfig": lambda: LitDocRestorerFromConfig(DOC_CFG),
    "LitDocRestorerResolved": lambda: LitDocRestorerResolved(DOC_CFG),
    "LitDnCNN": lambda: build_registered("dncnn", DOC_CFG),
    "DocPatchDataModule": lambda: DocPatchDataModule(**{k: v for k, v in DOC_CFG.data.items()}),
    "LitSmilesVAE": lambda: build_vae(VAE_CFG),
    "LitPropertyGuidedVAE": lambda: build_guided_vae(VAE_CFG),
    "LitSmilesVAEScript": lambda: build_vae_from_argv(["--latent", "8"]),
    "LitLatentPropertyRegressor": lambda: build_property_regressor(VAE_CFG),
    "LitPropertyHead": lambda: build_property_head(VAE_CFG),
    "SmilesDataModule": lambda: SmilesDataModule(list(TRAIN_SMILES), max_len=48),
}
