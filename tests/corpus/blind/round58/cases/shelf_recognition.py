"""Retail shelf-image product recognition (SKU retrieval from shelf crops).

Detector crops come in, an embedding network maps each crop to a normalised vector and a
nearest-neighbour lookup against the pack-shot gallery names the SKU (EAN-13). Training uses an
ArcFace margin head over SKU ids. Config is a YAML file read with OmegaConf and merged with
command-line dotlist overrides; backbones, heads and augmentations come from registries.
"""
import functools
import os
import statistics
import time
import types

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

DEFAULT_YAML = """
data:
  root: /mnt/planogram/crops
  image_size: [48, 48]
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
  n_skus: 12
  crops_per_sku: 6
  shelf_rows: 5
model:
  backbone: tiny_convnet
  embed_dim: 64
  head: arcface
  margin: 0.3
  scale: 30.0
optim:
  lr: 3e-4
  weight_decay: 0.05
  epochs: 2
  batch_size: 24
aug:
  name: color_jitter
  strength: 0.3
eval:
  topk: [1, 5]
seed: 17
"""

BACKBONES, HEADS, AUGMENTS = {}, {}, {}


def register(table, name):
    def deco(obj):
        table[name] = obj
        return obj
    return deco


@register(BACKBONES, "tiny_convnet")
class TinyConvNet(nn.Module):
    def __init__(self, embed_dim=64, width=16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.proj = nn.Linear(2 * width, embed_dim)

    def forward(self, x):
        return F.normalize(self.proj(self.features(x)), dim=1)


@register(BACKBONES, "wide_convnet")
class WideConvNet(TinyConvNet):
    def __init__(self, embed_dim=64):
        super().__init__(embed_dim=embed_dim, width=32)


@register(HEADS, "arcface")
class ArcFaceHead(nn.Module):
    def __init__(self, embed_dim=64, n_classes=12, margin=0.3, scale=30.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, embed_dim) * 0.01)
        self.margin, self.scale = margin, scale

    def forward(self, emb, labels):
        cos = emb @ F.normalize(self.weight, dim=1).T
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        target = torch.cos(theta + self.margin)
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        return F.cross_entropy(self.scale * torch.where(onehot, target, cos), labels)


@register(AUGMENTS, "color_jitter")
def color_jitter(img, strength=0.3, generator=None):
    scale = 1 + strength * (torch.rand(img.shape[0], 3, 1, 1, generator=generator) - 0.5)
    return (img * scale).clamp(0, 1)


@register(AUGMENTS, "hflip")
def hflip(img, strength=0.5, generator=None):
    return torch.where(torch.rand(img.shape[0], 1, 1, 1, generator=generator) < strength, img.flip(-1), img)


def load_config(overrides=()):
    base = OmegaConf.create(DEFAULT_YAML)
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


def synth_catalogue(cfg: DictConfig):
    """Planogram master data: one row per crop, EAN-13 codes as pandas reads them (int64)."""
    rng = np.random.default_rng(cfg.seed)
    eans = 4000000000000 + rng.choice(10 ** 9, cfg.data.n_skus, replace=False)
    brands = rng.choice(["Haribo", "Milka", "Ritter", "Lindt", "Kinder"], cfg.data.n_skus)
    df = pd.DataFrame({
        "ean": np.repeat(eans, cfg.data.crops_per_sku),
        "brand": np.repeat(brands, cfg.data.crops_per_sku),
        "row": rng.integers(0, cfg.data.shelf_rows, cfg.data.n_skus * cfg.data.crops_per_sku),
        "facing_px": rng.integers(40, 160, cfg.data.n_skus * cfg.data.crops_per_sku),
    })
    h, w = cfg.data.image_size
    images = torch.rand(len(df), 3, h, w, generator=torch.Generator().manual_seed(cfg.seed))
    return df, images


class ShelfTrainer:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.catalogue, images = synth_catalogue(cfg)
        codes, self.ean_index = pd.factorize(self.catalogue.ean)
        self.labels = torch.from_numpy(codes)
        mean = torch.tensor(list(cfg.data.mean)).view(1, 3, 1, 1)
        std = torch.tensor(list(cfg.data.std)).view(1, 3, 1, 1)
        self.images = (images - mean) / std
        self.backbone = BACKBONES[cfg.model.backbone](embed_dim=cfg.model.embed_dim)
        self.head = HEADS[cfg.model.head](cfg.model.embed_dim, len(self.ean_index),
                                          cfg.model.margin, cfg.model.scale)
        self.augment = functools.partial(AUGMENTS[cfg.aug.name], strength=cfg.aug.strength)
        params = list(self.backbone.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=cfg.optim.lr * 10, total_steps=cfg.optim.epochs * self.steps_per_epoch())
        self.epoch = 0

    def steps_per_epoch(self):
        return -(-len(self.labels) // self.cfg.optim.batch_size)

    def train_one_epoch(self):
        self.backbone.train()
        perm = torch.randperm(len(self.labels))
        losses, correct = [], 0
        for i in range(0, len(perm), self.cfg.optim.batch_size):
            b = perm[i: i + self.cfg.optim.batch_size]
            emb = self.backbone(self.augment(self.images[b]))
            loss = self.head(emb, self.labels[b])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.sched.step()
            losses.append(loss.item())
            correct += (emb @ F.normalize(self.head.weight, dim=1).T).argmax(1).eq(self.labels[b]).sum().item()
        self.epoch += 1
        return sum(losses) / len(losses), correct / len(perm)

    @torch.no_grad()
    def embed_all(self):
        self.backbone.eval()
        return self.backbone(self.images)

    def retrieval_metrics(self):
        """Leave-one-out recall@k and per-SKU AP against the rest of the gallery."""
        emb = self.embed_all().numpy()
        y = self.labels.numpy()
        sim = emb @ emb.T
        np.fill_diagonal(sim, -np.inf)
        order = np.argsort(-sim, axis=1)
        out = {}
        for k in self.cfg.eval.topk:
            out[f"recall@{k}"] = (y[order[:, :k]] == y[:, None]).any(1).mean()
        aps = []
        for i in range(len(y)):
            rel = (y[order[i]] == y[i]).astype(float)
            hits = np.cumsum(rel)
            aps.append((hits / np.arange(1, len(rel) + 1) * rel).sum() / max(rel.sum(), 1))
        return out, aps, sim


def save_trainer_run(tmpdir):
    cfg = load_config(["optim.epochs=2", "model.embed_dim=32"])
    trainer = ShelfTrainer(cfg)
    history = [trainer.train_one_epoch() for _ in range(cfg.optim.epochs)]
    metrics, aps, _ = trainer.retrieval_metrics()
    ckpt = {
        "backbone": trainer.backbone.state_dict(),
        "head": trainer.head.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "scheduler": trainer.sched.state_dict(),
        "epoch": trainer.epoch,
        "train_loss": [loss for loss, _ in history],
        "train_acc": history[-1][1],
        "recall_at_1": metrics["recall@1"],  # truth: weights_only
        "mean_ap": statistics.fmean(aps),
        "median_ap": statistics.median(aps),  # truth: weights_only
        "cfg": cfg,  # truth: weights_only
        "lr": cfg.optim.lr,
        "image_size": tuple(cfg.data.image_size),
        "normalize_mean": cfg.data.mean,  # truth: weights_only
        "normalize_std": list(cfg.data.std),
    }
    path = os.path.join(tmpdir, f"sku_embedder_e{trainer.epoch}.pt")
    torch.save(ckpt, path)
    return path


def sku_vocabulary(trainer):
    """ean -> class index, in factorize order (what the gallery export uses)."""
    return {ean: i for i, ean in enumerate(trainer.ean_index)}


def save_gallery_export(tmpdir):
    cfg = load_config(["optim.epochs=1", "data.n_skus=8"])
    trainer = ShelfTrainer(cfg)
    trainer.train_one_epoch()
    emb = trainer.embed_all()
    cat = trainer.catalogue
    per_row = {}
    for row, grp in cat.groupby("row"):
        per_row[int(row)] = grp.ean.nunique()
    ckpt = {"backbone": trainer.backbone.state_dict()}
    ckpt["gallery"] = {
        "embeddings": emb.half(),
        "labels": trainer.labels.clone(),
        "ean_to_idx": sku_vocabulary(trainer),
        "idx_to_ean_sorted": sorted(cat.ean.unique()),  # truth: weights_only
        "brands": dict(zip(cat.ean.tolist(), cat.brand.tolist())),
        "facings_per_row": per_row,
        "crop_counts": np.unique(trainer.labels.numpy(), return_counts=True)[1],  # truth: weights_only
        "crop_counts_t": torch.bincount(trainer.labels),
    }
    ckpt["gallery_meta"] = types.SimpleNamespace(n=len(cat), dim=emb.shape[1])  # truth: weights_only
    ckpt["max_facing_px"] = int(cat.facing_px.max())
    ckpt["median_facing_px"] = float(cat.facing_px.median())
    ckpt["model_cfg"] = cfg.model  # truth: weights_only
    ckpt["model_cfg_plain"] = dict(cfg.model)
    path = os.path.join(tmpdir, "sku_gallery.pt")
    torch.save(ckpt, path)
    return path


def build_from_registry(cfg):
    backbone_cls = BACKBONES[cfg.model.backbone]
    return backbone_cls, backbone_cls(embed_dim=cfg.model.embed_dim)


def save_registry_snapshot(tmpdir):
    """Snapshot written by the experiment launcher: enough to rebuild the model by name."""
    cfg = load_config(["model.backbone=wide_convnet", "aug.name=hflip"])
    backbone_cls, backbone = build_from_registry(cfg)
    trainer = ShelfTrainer(cfg)
    emb = trainer.embed_all()
    top_sim = (emb @ emb.T).fill_diagonal_(-1).max(1).values
    ckpt = dict(
        backbone=backbone.state_dict(),
        backbone_name=backbone_cls.__name__,
        backbone_cls=backbone_cls,  # truth: weights_only
        augment=trainer.augment,  # truth: weights_only
        augment_name=cfg.aug.name,
        augment_kwargs=dict(trainer.augment.keywords),
        embed_norm=emb.norm(dim=1).mean().item(),
        hardest_negative=top_sim.numpy().max(),  # truth: weights_only
        hardest_negative_t=top_sim.max(),
        registry=sorted(BACKBONES),
    )
    path = os.path.join(tmpdir, "sku_registry_snapshot.pt")
    torch.save(ckpt, path)
    return path


def save_deploy(tmpdir):
    """Edge deployment checkpoint (in-store camera box): plain containers and tensors only."""
    cfg = load_config(["optim.epochs=1", "data.n_skus=6", "seed=3"])
    trainer = ShelfTrainer(cfg)
    t0 = time.perf_counter()
    loss, acc = trainer.train_one_epoch()
    metrics, aps, sim = trainer.retrieval_metrics()
    report = {name: round(float(v), 4) for name, v in metrics.items()}
    report["map"] = float(np.mean(aps))
    report["train_loss"] = loss
    report["train_acc"] = acc
    swa = torch.optim.swa_utils.AveragedModel(trainer.backbone)
    swa.update_parameters(trainer.backbone)
    ckpt = {
        "swa_backbone": swa.state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "report": report,
        "ean_index": trainer.ean_index.tolist(),
        "ean_to_idx": dict(zip(trainer.ean_index, range(len(trainer.ean_index)))),
        "brands": sorted(set(trainer.catalogue.brand.tolist())),
        "facing_quantiles": trainer.catalogue.facing_px.quantile([0.1, 0.9]).tolist(),
        "input_shape": torch.Size([1, 3, *cfg.data.image_size]),
        "mean": torch.tensor(list(cfg.data.mean)),
        "std": [float(s) for s in cfg.data.std],
        "lr_final": trainer.sched.get_last_lr()[0],
        "scale": cfg.model.get("scale", 30.0),
        "dropout": cfg.model.get("dropout", 0.0),
        "embedding_dtype": torch.float16,
        "yaml": OmegaConf.to_yaml(cfg),
        "max_offdiag_sim": float(sim.max()),
        "seconds": time.perf_counter() - t0,
        "amp": torch.amp.GradScaler("cpu", enabled=False).state_dict(),
        "topk": list(cfg.eval.topk),
    }
    path = os.path.join(tmpdir, "sku_deploy.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "ShelfTrainer": lambda: ShelfTrainer(load_config(["data.n_skus=4"])),
}
