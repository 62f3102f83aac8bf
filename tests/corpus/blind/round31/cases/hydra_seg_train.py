"""Semantic segmentation trained the Hydra way: a defaults YAML, `key=value` overrides from the
command line, one composed DictConfig that the Trainer keeps as `self.cfg` and that every checkpoint
writer reaches for.  (No hydra import: `compose()` does what `@hydra.main` would hand us.)"""
import os
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

DEFAULTS_YAML = """
experiment: seg_${model.name}_${data.name}
seed: 17
data:
  name: cityscapes-mini
  root: /datasets/cityscapes
  num_classes: 5
  class_names: [road, sidewalk, building, vegetation, sky]
  ignore_index: 255
  crop_size: [32, 32]
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
  augment:
    - {name: random_crop, size: "${data.crop_size}"}
    - {name: hflip, p: 0.5}
    - {name: color_jitter, brightness: 0.2, contrast: 0.2}
model:
  name: unet_small
  in_channels: 3
  widths: [8, 16]
  dropout: 0.1
optim:
  name: adamw
  lr: 3.0e-4
  weight_decay: 0.01
  betas: [0.9, 0.999]
sched:
  name: poly
  power: 0.9
  max_steps: 50
trainer:
  max_epochs: 1
  grad_clip: 1.0
  out_dir: outputs/${experiment}
"""


def compose(overrides=()):
    """Defaults + dotlist overrides, struct mode on (typos in overrides raise)."""
    cfg = OmegaConf.merge(OmegaConf.create(DEFAULTS_YAML), OmegaConf.from_dotlist(list(overrides)))
    OmegaConf.set_struct(cfg, True)
    return cfg


def eval_view(cfg):
    """The part of the config that evaluation scripts need."""
    return cfg.data


class TinyUNet(nn.Module):
    def __init__(self, in_channels=3, widths=(8, 16), num_classes=5, dropout=0.1):
        super().__init__()
        c1, c2 = widths
        self.enc1 = nn.Sequential(nn.Conv2d(in_channels, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(c1, c2, 3, padding=1, stride=2), nn.BatchNorm2d(c2), nn.ReLU())
        self.up = nn.ConvTranspose2d(c2, c1, 2, stride=2)
        self.dec = nn.Sequential(nn.Conv2d(2 * c1, c1, 3, padding=1), nn.ReLU(), nn.Dropout2d(dropout))
        self.head = nn.Conv2d(c1, num_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        d = self.dec(torch.cat([self.up(e2), e1], dim=1))
        return self.head(d)


def build_model(cfg: DictConfig) -> nn.Module:
    return TinyUNet(cfg.model.in_channels, tuple(cfg.model.widths), cfg.data.num_classes, cfg.model.dropout)


def fake_batch(cfg, n=2):
    h, w = cfg.data.crop_size
    x = torch.randn(n, cfg.model.in_channels, h, w)
    y = torch.randint(0, cfg.data.num_classes, (n, h, w))
    return x, y


def mean_iou(logits, target, num_classes):
    pred = logits.argmax(1)
    ious = []
    for c in range(num_classes):
        inter = ((pred == c) & (target == c)).sum()
        union = ((pred == c) | (target == c)).sum()
        if union > 0:
            ious.append(inter.float() / union.float())
    return torch.stack(ious).mean().item() if ious else 0.0


class SegTrainer:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.optim.lr,
                                           weight_decay=cfg.optim.weight_decay, betas=tuple(cfg.optim.betas))
        self.scheduler = torch.optim.lr_scheduler.PolynomialLR(self.optimizer, total_iters=cfg.sched.max_steps,
                                                               power=cfg.sched.power)
        self.epoch = 0
        self.global_step = 0
        self.best_miou = 0.0
        self.history = []

    def fit(self, steps=2):
        self.model.train()
        for _ in range(steps):
            x, y = fake_batch(self.cfg)
            loss = F.cross_entropy(self.model(x), y, ignore_index=self.cfg.data.ignore_index)
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.trainer.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.global_step += 1
            self.history.append(loss.item())
        self.epoch += 1
        miou = self.validate()
        if miou > self.best_miou:
            self.best_miou = miou
        return miou

    @torch.no_grad()
    def validate(self):
        self.model.eval()
        x, y = fake_batch(self.cfg, n=4)
        return mean_iou(self.model(x), y, self.cfg.data.num_classes)


FACTORIES = {
    "SegTrainer": lambda: SegTrainer(compose()),
}


# ----------------------------------------------------------------------------- checkpoint writers

def save_last(tmpdir):
    trainer = SegTrainer(compose(["optim.lr=1e-3"]))
    trainer.fit()
    path = os.path.join(tmpdir, "last.ckpt")
    torch.save({
        "epoch": trainer.epoch,
        "global_step": trainer.global_step,
        "state_dict": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "cfg": trainer.cfg,  # truth: weights_only
        "cfg_yaml": OmegaConf.to_yaml(trainer.cfg),
        "loss_history": trainer.history,
    }, path)
    return path


def save_best(tmpdir):
    cfg = compose()
    trainer = SegTrainer(cfg)
    miou = trainer.fit()
    ckpt = {"state_dict": trainer.model.state_dict(), "best_miou": trainer.best_miou, "last_miou": miou}
    ckpt["resolved_config"] = OmegaConf.to_container(cfg, resolve=True)
    ckpt["class_names"] = cfg.data.class_names  # truth: weights_only
    ckpt["num_classes"] = cfg.data.num_classes
    ckpt["ignore_index"] = cfg.data.ignore_index
    ckpt["normalize"] = {"mean": list(cfg.data.mean), "std": OmegaConf.to_container(cfg.data.std)}
    path = os.path.join(tmpdir, "best.ckpt")
    torch.save(ckpt, path)
    return path


def save_for_inference(tmpdir):
    """What the serving code reads: weights, the model sub-config and the preprocessing."""
    trainer = SegTrainer(compose(["model.dropout=0.0"]))
    model_cfg = trainer.cfg.model
    data_cfg = eval_view(trainer.cfg)
    package = {
        "weights": trainer.model.state_dict(),
        "arch": model_cfg,  # truth: weights_only
        "input_size": tuple(trainer.cfg.data.crop_size),
        "mean": OmegaConf.to_container(data_cfg.mean),
        "std": [float(s) for s in data_cfg.std],
        "data": data_cfg,  # truth: weights_only
        "labels": {i: name for i, name in enumerate(data_cfg.class_names)},
    }
    path = os.path.join(tmpdir, "inference.pt")
    torch.save(package, path)
    return path


def save_run_snapshot(tmpdir):
    cfg = compose(["experiment=ablation_nodrop", "model.dropout=0.0"])
    trainer = SegTrainer(cfg)
    trainer.fit(steps=1)
    meta = {
        "experiment": cfg.experiment,
        "run_dir": Path(cfg.trainer.out_dir),  # truth: weights_only
        "run_dir_str": os.fspath(Path(cfg.trainer.out_dir)),
        "started_at": time.time(),
    }
    extra = {"host": os.uname().nodename, "torch": str(torch.__version__), "seed": cfg.seed}
    path = os.path.join(tmpdir, "snapshot.pt")
    torch.save({**meta, **extra, "state_dict": trainer.model.state_dict()}, path)
    return path


def save_optimizer_bundle(tmpdir):
    cfg = compose()
    trainer = SegTrainer(cfg)
    trainer.fit(steps=1)
    hparams = {"optimizer": cfg.optim.name, "lr": cfg.optim.lr}
    hparams.update(weight_decay=cfg.optim.weight_decay)
    hparams.update(betas=cfg.optim.betas)  # truth: weights_only
    hparams.update(sched_power=cfg.sched.power, max_steps=cfg.sched.max_steps)
    path = os.path.join(tmpdir, "optim.pt")
    torch.save({"optimizer": trainer.optimizer.state_dict(), "hparams": hparams}, path)
    return path


def save_config_sidecar(tmpdir):
    """Written next to every run directory so `resume.py` can rebuild the trainer."""
    cfg = compose(["trainer.max_epochs=3"])
    path = os.path.join(tmpdir, "config.pt")
    torch.save(OmegaConf.masked_copy(cfg, ["model", "optim", "sched"]), path)  # truth: weights_only
    return path


def save_portable(tmpdir):
    """The 'share it with the other team' checkpoint: nothing but plain Python inside."""
    cfg = compose(["data.crop_size=[48,48]"])
    trainer = SegTrainer(cfg)
    trainer.fit(steps=1)
    path = os.path.join(tmpdir, "portable.pt")
    torch.save({
        "state_dict": trainer.model.state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True),
        "augment": OmegaConf.to_container(cfg.data.augment, resolve=True),
        "widths": list(cfg.model.widths),
        "class_names": [str(c) for c in cfg.data.class_names],
        "out_dir": str(Path(cfg.trainer.out_dir)),
        "experiment": cfg.experiment,
        "best_miou": trainer.best_miou,
        "global_step": trainer.global_step,
    }, path)
    return path


# ----------------------------------------------------------------------------- Lightning variant

class LitSegmenter(pl.LightningModule):
    """The Lightning port of the same recipe: Hydra hands `cfg` straight to the module."""

    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = build_model(cfg)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y, ignore_index=self.hparams.data.ignore_index)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.optim.lr)


class LitSegmenterPlain(pl.LightningModule):
    """Same, but the config is flattened into plain containers before Lightning sees it."""

    def __init__(
        self,
        cfg,
        compile_model: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
        self.net = build_model(OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg)
        self.compile_model = compile_model

    def forward(self, x):
        return self.net(x)


def main(argv=()):
    cfg = compose(argv)
    module = LitSegmenter(cfg)
    plain = LitSegmenterPlain(cfg)
    return module, plain


FACTORIES.update({
    "TinyUNet": lambda: build_model(compose()),
    "LitSegmenter": lambda: LitSegmenter(compose()),
    "LitSegmenterPlain": lambda: LitSegmenterPlain(compose()),
})
