"""Image classification with the classic argparse + YAML setup: `--config exp.yaml` gives the
defaults, command-line flags win, a `TrainConfig` dataclass (with `field(default_factory=...)`)
is built from both, and a `ClassifierTrainer` keeps `self.args` and `self.cfg` for its checkpoints."""
import argparse
import copy
import dataclasses
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import List, Optional

import lightning.pytorch as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf


class LossKind(Enum):
    CE = "cross_entropy"
    FOCAL = "focal"
    SOFT_TARGET = "soft_target"

    def __str__(self):
        return self.value


class Scheduler(Enum):
    COSINE = "cosine"
    ONECYCLE = "onecycle"


class Precision(str, Enum):
    FP32 = "32"
    BF16 = "bf16-mixed"


EXPERIMENT_YAML = """
arch: resnet_tiny
num_classes: 10
epochs: 2
batch_size: 8
lr: 0.1
momentum: 0.9
weight_decay: 5.0e-4
label_smoothing: 0.1
augment:
  randaugment_n: 2
  randaugment_m: 9
  mixup_alpha: 0.2
  cutmix_alpha: 1.0
"""


@dataclass
class AugmentConfig:
    randaugment_n: int = 2
    randaugment_m: int = 9
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    crop_scale: tuple = (0.08, 1.0)
    interpolations: List[str] = field(default_factory=lambda: ["bilinear", "bicubic"])


@dataclass
class OptimizerConfig:
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True


@dataclass
class TrainConfig:
    arch: str = "resnet_tiny"
    num_classes: int = 10
    epochs: int = 2
    batch_size: int = 8
    label_smoothing: float = 0.0
    loss: LossKind = LossKind.CE
    scheduler: Scheduler = Scheduler.COSINE
    precision: Precision = Precision.FP32
    data_dir: Path = Path("/data/imagenette")
    output_dir: Path = Path("runs/cls")
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    tags: List[str] = field(default_factory=list)


def build_parser():
    p = argparse.ArgumentParser("train_cls")
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--data-dir", type=Path, default=Path("/data/imagenette"))
    p.add_argument("--output-dir", type=Path, default=Path("runs/cls"))
    p.add_argument("--arch", default="resnet_tiny")
    p.add_argument("--loss", type=LossKind, choices=list(LossKind), default=LossKind.CE)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--tags", nargs="*", default=[])
    return p


def parse_args(argv=()):
    return build_parser().parse_args(list(argv))


def read_yaml(text=EXPERIMENT_YAML):
    return yaml.safe_load(text)


def plain(v):
    if isinstance(v, Path):
        return os.fspath(v)
    if isinstance(v, Enum):
        return v.value
    return v


def make_train_config(args, yaml_cfg) -> TrainConfig:
    """CLI flags override the YAML; both override the dataclass defaults."""
    aug = AugmentConfig(**yaml_cfg.get("augment", {}))
    opt = OptimizerConfig(lr=args.lr or yaml_cfg.get("lr", 0.1), momentum=yaml_cfg.get("momentum", 0.9),
                          weight_decay=yaml_cfg.get("weight_decay", 5e-4))
    return TrainConfig(
        arch=args.arch or yaml_cfg["arch"],
        num_classes=yaml_cfg.get("num_classes", 10),
        epochs=args.epochs or yaml_cfg.get("epochs", 2),
        batch_size=args.batch_size or yaml_cfg.get("batch_size", 8),
        label_smoothing=yaml_cfg.get("label_smoothing", 0.0),
        loss=args.loss,
        precision=Precision.BF16 if args.amp else Precision.FP32,
        data_dir=args.data_dir,
        output_dir=args.output_dir,
        optimizer=opt,
        augment=aug,
        tags=list(args.tags),
    )


def as_omegaconf(yaml_cfg):
    return OmegaConf.create(yaml_cfg)


class SmallResNet(nn.Module):
    def __init__(self, num_classes=10, width=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                   nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        h = self.stem(x)
        h = F.relu(h + self.block(h))
        return self.fc(h.mean((2, 3)))


class ClassifierTrainer:
    def __init__(self, args, cfg: TrainConfig):
        self.args = args
        self.cfg = cfg
        self.model = SmallResNet(cfg.num_classes)
        o = cfg.optimizer
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=o.lr, momentum=o.momentum,
                                         weight_decay=o.weight_decay, nesterov=o.nesterov)
        self.epoch = 0
        self.best_acc1 = 0.0

    def run_epoch(self, steps=2):
        self.model.train()
        for _ in range(steps):
            x = torch.randn(self.cfg.batch_size, 3, 16, 16)
            y = torch.randint(0, self.cfg.num_classes, (self.cfg.batch_size,))
            loss = F.cross_entropy(self.model(x), y, label_smoothing=self.cfg.label_smoothing)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.epoch += 1
        with torch.no_grad():
            x = torch.randn(16, 3, 16, 16)
            y = torch.randint(0, self.cfg.num_classes, (16,))
            acc1 = (self.model(x).argmax(1) == y).float().mean().item()
        self.best_acc1 = max(self.best_acc1, acc1)
        return acc1


def make_trainer(argv=("--lr", "0.05", "--tags", "baseline", "sweep3")):
    args = parse_args(argv)
    return ClassifierTrainer(args, make_train_config(args, read_yaml()))


FACTORIES = {
    "LossKind": lambda: LossKind.FOCAL,
    "Scheduler": lambda: Scheduler.ONECYCLE,
    "Precision": lambda: Precision.BF16,
    "ClassifierTrainer": make_trainer,
}


# ----------------------------------------------------------------------------- checkpoint writers

def save_with_namespace(tmpdir):
    trainer = make_trainer()
    acc1 = trainer.run_epoch()
    path = os.path.join(tmpdir, "checkpoint.pth.tar")
    torch.save({
        "epoch": trainer.epoch,
        "arch": trainer.args.arch,
        "state_dict": trainer.model.state_dict(),
        "best_acc1": trainer.best_acc1,
        "acc1": acc1,
        "optimizer": trainer.optimizer.state_dict(),
        "args": trainer.args,  # truth: weights_only
    }, path)
    return path


def save_with_vars(tmpdir):
    trainer = make_trainer(["--loss", "focal", "--output-dir", "/scratch/cls"])
    args = trainer.args
    path = os.path.join(tmpdir, "checkpoint_vars.pth")
    torch.save({
        "state_dict": trainer.model.state_dict(),
        "args": {k: plain(v) for k, v in vars(args).items()},
        "data_dir": args.data_dir,  # truth: weights_only
        "loss": args.loss,  # truth: weights_only
        "loss_name": str(args.loss),
        "best_path": args.output_dir / "model_best.pth",  # truth: weights_only
        "best_path_str": str(args.output_dir / "model_best.pth"),
        "run_name": args.output_dir.name,
    }, path)
    return path


def save_yaml_merged(tmpdir):
    args = parse_args(["--epochs", "5", "--batch-size", "16"])
    yaml_cfg = read_yaml()
    cli = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "output_dir": args.output_dir,  # truth: weights_only
    }
    config = {**yaml_cfg, **cli}
    path = os.path.join(tmpdir, "merged.pth")
    torch.save({"config": config, "yaml": copy.deepcopy(yaml_cfg), "augment": yaml_cfg["augment"]}, path)
    return path


def save_dataclass_config(tmpdir):
    trainer = make_trainer()
    trainer.run_epoch(1)
    path = os.path.join(tmpdir, "dc.pth")
    torch.save({
        "state_dict": trainer.model.state_dict(),
        "train_cfg": trainer.cfg,  # truth: weights_only
        "optimizer_cfg": trainer.cfg.optimizer,  # truth: weights_only
        "optimizer_hparams": dataclasses.asdict(trainer.cfg.optimizer),
        "augment": dataclasses.asdict(trainer.cfg.augment),
        "tags": trainer.cfg.tags,
    }, path)
    return path


def save_hparams_update(tmpdir):
    trainer = make_trainer(["--amp"])
    cfg = trainer.cfg
    hparams = {"lr": cfg.optimizer.lr, "batch_size": cfg.batch_size, "epochs": cfg.epochs}
    hparams.update(loss=cfg.loss.value, arch=cfg.arch)
    hparams.update(scheduler=cfg.scheduler)  # truth: weights_only
    ckpt = {"state_dict": trainer.model.state_dict(), "hparams": hparams}
    ckpt["hparams"]["precision"] = cfg.precision  # truth: weights_only
    ckpt["hparams"]["precision_str"] = cfg.precision.value
    ckpt["hparams"]["crop_scale"] = cfg.augment.crop_scale
    path = os.path.join(tmpdir, "hparams.pth")
    torch.save(ckpt, path)
    return path


def save_omegaconf_view(tmpdir):
    """Later scripts switched to OmegaConf for `${...}` interpolation but kept the YAML file."""
    conf = as_omegaconf(read_yaml())
    path = os.path.join(tmpdir, "omega.pth")
    torch.save({
        "conf": conf,  # truth: weights_only
        "augment": conf.augment,  # truth: weights_only
        "conf_plain": OmegaConf.to_container(conf),
        "lr": conf.lr,
    }, path)
    return path


def save_clean(tmpdir):
    trainer = make_trainer(["--amp", "--loss", "soft_target"])
    trainer.run_epoch(1)
    cfg = trainer.cfg
    cfg_dict = dataclasses.asdict(cfg)
    path = os.path.join(tmpdir, "clean.pth")
    torch.save({
        "state_dict": trainer.model.state_dict(),
        "config": {k: plain(v) for k, v in cfg_dict.items()},
        "args": {k: plain(v) for k, v in vars(trainer.args).items()},
        "loss": cfg.loss.name,
        "precision": cfg.precision.value,
        "data_dir": str(cfg.data_dir),
        "output_dir": cfg.output_dir.as_posix(),
        "scheduler": cfg.scheduler.value,
        "yaml": read_yaml(),
        "best_acc1": trainer.best_acc1,
    }, path)
    return path


# ----------------------------------------------------------------------------- Lightning port

class LitClassifier(pl.LightningModule):
    """Takes the parsed Namespace, like the Lightning 1.x examples did."""

    def __init__(
        self,
        args,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(args)
        self.net = SmallResNet(10)

    def forward(self, x):
        return self.net(x)


class LitClassifierV2(pl.LightningModule):
    """Second version: one plain dict of hyperparameters, plus a few typed extras."""

    def __init__(
        self,
        hparams: dict,
        loss: LossKind = LossKind.CE,  # truth: hparam
        precision: str = Precision.FP32.value,
        data_dir: Optional[str] = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = SmallResNet(hparams.get("num_classes", 10))

    def forward(self, x):
        return self.net(x)


class LitClassifierV3(pl.LightningModule):
    """Third version: the trainer config dataclass goes straight in."""

    def __init__(
        self,
        cfg: TrainConfig,  # truth: hparam
        aug_cfg: dict,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = SmallResNet(cfg.num_classes)


def build_lightning(argv=("--data-dir", "/data/imagenette2-160")):
    args = parse_args(argv)
    yaml_cfg = read_yaml()
    cfg = make_train_config(args, yaml_cfg)
    v1 = LitClassifier(args)
    v2 = LitClassifierV2({**yaml_cfg, "workers": args.workers}, loss=args.loss,
                         data_dir=os.fspath(args.data_dir))
    v3 = LitClassifierV3(cfg, dataclasses.asdict(cfg.augment))
    return v1, v2, v3


FACTORIES.update({
    "LitClassifier": lambda: build_lightning()[0],
    "LitClassifierV2": lambda: build_lightning()[1],
    "LitClassifierV3": lambda: build_lightning()[2],
})
