"""Anchor-based detector with a structured config: typed dataclasses (Enums, Paths, tuples,
default_factory lists and dicts) turned into an OmegaConf schema, merged with the experiment YAML,
then handed around as DictConfig, dataclass instance, or plain container depending on who asks."""
import dataclasses
import os
from dataclasses import dataclass, field
from enum import Enum, auto
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from omegaconf import OmegaConf, SCMode


class Backbone(Enum):
    RESNET18 = "resnet18"
    MOBILENET = "mobilenet_v3"


class BoxCoder(str, Enum):
    XYXY = "xyxy"
    CXCYWH = "cxcywh"


class LRSchedule(Enum):
    COSINE = auto()
    STEP = auto()


@dataclass
class ModelConfig:
    backbone: Backbone = Backbone.RESNET18
    box_coder: BoxCoder = BoxCoder.CXCYWH
    num_classes: int = 4
    width: int = 16
    anchor_sizes: Tuple[int, ...] = (16, 32, 64)
    aspect_ratios: List[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    pretrained_weights: Optional[Path] = None


@dataclass
class DataConfig:
    root: Path = Path("/data/coco-mini")
    image_dirs: List[Path] = field(default_factory=lambda: [Path("train2017"), Path("val2017")])
    image_size: Tuple[int, int] = (64, 64)
    label_map: Dict[str, int] = field(default_factory=lambda: {"person": 0, "car": 1, "bike": 2, "dog": 3})
    num_workers: int = 4


@dataclass
class OptimConfig:
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: LRSchedule = LRSchedule.COSINE
    milestones: List[int] = field(default_factory=lambda: [8, 11])
    warmup_iters: int = 100


@dataclass
class DetConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run_name: str = "${model.backbone}-${optim.schedule}"
    output_dir: Path = Path("runs/det")
    seed: int = 0


EXPERIMENT_YAML = """
model:
  backbone: mobilenet_v3
  box_coder: xyxy
  anchor_sizes: [8, 16, 32, 64]
optim:
  lr: 0.02
  schedule: STEP
  milestones: [16, 22]
data:
  image_size: [96, 96]
"""


def load_config(experiment_yaml: Optional[str] = None, overrides=()):
    schema = OmegaConf.structured(DetConfig)
    parts = [schema]
    if experiment_yaml:
        parts.append(OmegaConf.create(experiment_yaml))
    parts.append(OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.merge(*parts)


class TinyDetector(nn.Module):
    def __init__(self, num_classes=4, width=16, num_anchors=9):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
        self.cls_head = nn.Conv2d(width, num_anchors * num_classes, 1)
        self.box_head = nn.Conv2d(width, num_anchors * 4, 1)

    def forward(self, x):
        f = self.stem(x)
        return self.cls_head(f), self.box_head(f)


def build_detector(model_cfg) -> TinyDetector:
    num_anchors = len(model_cfg.anchor_sizes) * len(model_cfg.aspect_ratios)
    return TinyDetector(model_cfg.num_classes, model_cfg.width, num_anchors)


class DetectionExperiment:
    """Owns the config for the whole run; checkpoint writers read it off `self.cfg`."""

    def __init__(self, cfg):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.model = build_detector(cfg.model)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.optim.lr,
                                         momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay)
        if cfg.optim.schedule is LRSchedule.STEP:
            self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, list(cfg.optim.milestones))
        else:
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=20)
        self.iteration = 0
        self.best_map = 0.0

    def train_iters(self, n=2):
        h, w = self.cfg.data.image_size
        for _ in range(n):
            x = torch.randn(2, 3, h, w)
            cls_logits, boxes = self.model(x)
            loss = cls_logits.sigmoid().mean() + boxes.abs().mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.iteration += 1
        self.best_map = max(self.best_map, 0.1 * self.iteration)


FACTORIES = {
    "Backbone": lambda: Backbone.RESNET18,
    "BoxCoder": lambda: BoxCoder.XYXY,
    "LRSchedule": lambda: LRSchedule.COSINE,
    "TinyDetector": lambda: build_detector(load_config().model),
    "DetectionExperiment": lambda: DetectionExperiment(load_config(EXPERIMENT_YAML)),
}


# ----------------------------------------------------------------------------- checkpoint writers

def save_structured(tmpdir):
    exp = DetectionExperiment(load_config(EXPERIMENT_YAML))
    exp.train_iters()
    cfg = exp.cfg
    path = os.path.join(tmpdir, "det_structured.pth")
    torch.save({
        "model": exp.model.state_dict(),
        "optimizer": exp.optimizer.state_dict(),
        "iteration": exp.iteration,
        "config": exp.cfg,  # truth: weights_only
        "backbone": cfg.model.backbone,  # truth: weights_only
        "box_coder": cfg.model.box_coder.value,
        "anchor_sizes": cfg.model.anchor_sizes,  # truth: weights_only
        "aspect_ratios": list(cfg.model.aspect_ratios),
        "num_classes": cfg.model.num_classes,
    }, path)
    return path


def save_as_object(tmpdir):
    cfg = load_config(EXPERIMENT_YAML, ["seed=3"])
    exp = DetectionExperiment(cfg)
    exp.train_iters(1)
    ckpt = {"model": exp.model.state_dict(), "best_map": exp.best_map}
    ckpt["config"] = OmegaConf.to_object(cfg)  # truth: weights_only
    ckpt["seed"] = cfg.seed
    ckpt["run_name"] = cfg.run_name
    path = os.path.join(tmpdir, "det_object.pth")
    torch.save(ckpt, path)
    return path


def save_container_modes(tmpdir):
    cfg = load_config()
    exp = DetectionExperiment(cfg)
    path = os.path.join(tmpdir, "det_modes.pth")
    torch.save({
        "model": exp.model.state_dict(),
        "cfg_nodes": OmegaConf.to_container(cfg, structured_config_mode=SCMode.DICT_CONFIG),  # truth: weights_only
        "optim": OmegaConf.to_container(cfg.optim, structured_config_mode=SCMode.INSTANTIATE),  # truth: weights_only
        "milestones": OmegaConf.to_container(cfg.optim.milestones),
        "label_map": OmegaConf.to_container(cfg.data.label_map),
        "optim_flat": OmegaConf.to_container(cfg.optim, enum_to_str=True),
    }, path)
    return path


def save_data_manifest(tmpdir):
    cfg = load_config(overrides=["data.root=/mnt/fast/coco-mini"])
    path = os.path.join(tmpdir, "manifest.pth")
    torch.save({
        "image_dirs": OmegaConf.to_container(cfg.data.image_dirs),  # truth: weights_only
        "image_dirs_str": [os.fspath(p) for p in cfg.data.image_dirs],
        "root": str(cfg.data.root),
        "root_posix": cfg.data.root.as_posix(),
        "image_size": tuple(cfg.data.image_size),
        "classes": sorted(cfg.data.label_map, key=cfg.data.label_map.get),
        "num_workers": cfg.data.num_workers,
    }, path)
    return path


def save_merged_schedule(tmpdir):
    merged = load_config(EXPERIMENT_YAML)
    exp = DetectionExperiment(merged)
    exp.train_iters(1)
    path = os.path.join(tmpdir, "det_sched.pth")
    torch.save(dict(
        model=exp.model.state_dict(),
        scheduler=exp.scheduler.state_dict(),
        schedule=merged.optim.schedule,  # truth: weights_only
        schedule_name=merged.optim.schedule.name,
        run_name=merged.run_name,
        warmup_iters=merged.optim.warmup_iters,
    ), path)
    return path


def save_finetune_start(tmpdir):
    """Fine-tuning run: points at the COCO weights it started from."""
    cfg = load_config(overrides=["model.num_classes=2"])
    cfg.model.pretrained_weights = cfg.output_dir / "coco" / "best.pth"
    exp = DetectionExperiment(cfg)
    path = os.path.join(tmpdir, "finetune.pth")
    torch.save({
        "model": exp.model.state_dict(),
        "init_from": cfg.model.pretrained_weights,  # truth: weights_only
        "init_from_name": cfg.model.pretrained_weights.name,
        "output_dir": cfg.output_dir,  # truth: weights_only
        "model_cfg": OmegaConf.to_container(cfg.model, resolve=True, enum_to_str=True) | {"pretrained_weights": None},
    }, path)
    return path


def save_model_card(tmpdir):
    """The model's dataclass alone, for `torch.load(...)` in the deploy repo."""
    cfg = load_config(EXPERIMENT_YAML)
    path = os.path.join(tmpdir, "model_card.pth")
    torch.save(OmegaConf.to_object(cfg.model), path)  # truth: weights_only
    return path


def save_release(tmpdir):
    """Release checkpoint: every config value reduced to plain Python first."""
    cfg = load_config(EXPERIMENT_YAML)
    exp = DetectionExperiment(cfg)
    exp.train_iters(1)
    model_cfg = OmegaConf.to_object(cfg.model)
    release = {
        "model": exp.model.state_dict(),
        "backbone": model_cfg.backbone.value,
        "box_coder": str(model_cfg.box_coder.value),
        "anchor_sizes": list(model_cfg.anchor_sizes),
        "aspect_ratios": [float(r) for r in model_cfg.aspect_ratios],
        "schedule": cfg.optim.schedule.name.lower(),
        "image_size": list(cfg.data.image_size),
        "label_map": dict(cfg.data.label_map),
        "optim": OmegaConf.to_container(cfg.optim, resolve=True, enum_to_str=True),
        "output_dir": os.fspath(cfg.output_dir),
        "run_name": cfg.run_name,
        "best_map": exp.best_map,
    }
    release["model_fields"] = [f.name for f in dataclasses.fields(model_cfg)]
    path = os.path.join(tmpdir, "release.pth")
    torch.save(release, path)
    return path
