"""Row-anchor lane detection (UFLD-style) with an OmegaConf config and a model registry.

The config is YAML merged with command-line style dotlist overrides; models are registered by
name and built from `cfg.model`; a LaneTrainer owns model, EMA, optimizer and warmup scheduler and
validates with a CULane-style per-category F1.
"""
import copy
import functools
import os
import platform
import sys

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

BASE_CONFIG = """
model:
  name: ufld_tiny
  num_lanes: 4
  griding_num: 50
  row_anchors: [64, 72, 80, 88, 96, 104, 112, 120]
  width: 16
  aux_seg: false
data:
  img_h: 128
  img_w: 256
  crop_ratio: 0.6
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
  n_train: 32
optim:
  lr: 0.01
  weight_decay: 0.0001
  momentum: 0.9
  warmup_iters: 4
train:
  epochs: 1
  batch_size: 8
  ema_decay: 0.99
  exist_thresh: 0.5
"""

CATEGORIES = ("normal", "crowd", "night", "noline", "shadow", "arrow", "hlight", "curve")


class Registry:
    def __init__(self, name):
        self.name = name
        self._items = {}

    def register(self, key=None):
        def deco(cls):
            self._items[key or cls.__name__] = cls
            return cls
        return deco

    def get(self, key):
        if key not in self._items:
            raise KeyError(f"{key!r} is not registered in {self.name}: {sorted(self._items)}")
        return self._items[key]

    def build(self, cfg, **extra):
        kwargs = OmegaConf.to_container(cfg, resolve=True)
        cls = self.get(kwargs.pop("name"))
        kwargs.update(extra)
        return cls(**kwargs)


MODELS = Registry("models")


def conv_bn(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@MODELS.register("ufld_tiny")
class RowAnchorNet(nn.Module):
    def __init__(self, num_lanes=4, griding_num=50, row_anchors=(64, 96, 120), width=16, aux_seg=False):
        super().__init__()
        self.num_lanes, self.griding_num, self.n_rows = num_lanes, griding_num, len(row_anchors)
        self.backbone = nn.Sequential(conv_bn(3, width, 2), conv_bn(width, width * 2, 2), conv_bn(width * 2, width * 2, 2),
                                      nn.AdaptiveAvgPool2d((4, 8)))
        self.cls = nn.Linear(width * 2 * 32, (griding_num + 1) * self.n_rows * num_lanes)
        self.seg = nn.Conv2d(width * 2, num_lanes + 1, 1) if aux_seg else None

    def forward(self, x):
        f = self.backbone(x).flatten(1)
        return self.cls(f).view(-1, self.griding_num + 1, self.n_rows, self.num_lanes)


@MODELS.register("ufld_wide")
class WideRowAnchorNet(RowAnchorNet):
    def __init__(self, **kw):
        kw["width"] = kw.get("width", 16) * 2
        super().__init__(**kw)


def load_config(overrides=()):
    cfg = OmegaConf.create(BASE_CONFIG)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


def synthetic_batch(cfg, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.rand(n, 3, cfg.data.img_h, cfg.data.img_w, generator=g)
    labels = torch.randint(0, cfg.model.griding_num + 1, (n, len(cfg.model.row_anchors), cfg.model.num_lanes),
                           generator=g)
    return imgs, labels


class ModelEMA:
    def __init__(self, model=None, decay=0.99):
        model = model if model is not None else RowAnchorNet()
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.updates = 0

    @torch.no_grad()
    def update(self, model):
        self.updates += 1
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.shadow[k].copy_(v)


def warmup_factor(it, warm):
    return min(1.0, (it + 1) / warm)


class LaneTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else load_config()
        torch.manual_seed(0)
        self.model = MODELS.build(self.cfg.model)
        self.ema = ModelEMA(self.model, self.cfg.train.ema_decay)
        o = self.cfg.optim
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=o.lr, momentum=o.momentum,
                                         weight_decay=o.weight_decay)
        warm = o.warmup_iters
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, functools.partial(warmup_factor, warm=warm))
        self.global_step = 0
        self.best_f1 = 0.0

    def train_one_epoch(self):
        self.model.train()
        imgs, labels = synthetic_batch(self.cfg, self.cfg.data.n_train, seed=self.global_step)
        losses = []
        for i in range(0, len(imgs), self.cfg.train.batch_size):
            out = self.model(imgs[i:i + self.cfg.train.batch_size])
            loss = nn.functional.cross_entropy(out, labels[i:i + self.cfg.train.batch_size])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.ema.update(self.model)
            self.global_step += 1
            losses.append(loss.detach())
        return torch.stack(losses).mean()

    @torch.no_grad()
    def validate(self, n=16):
        """CULane-style: a lane matches when enough of its anchor rows hit the right grid cell."""
        self.model.eval()
        imgs, labels = synthetic_batch(self.cfg, n, seed=999)
        pred = self.model(imgs).argmax(1).numpy()
        gt = labels.numpy()
        hit = (np.abs(pred - gt) <= 2).mean(axis=1) > 0.5
        exists = gt.min(axis=1) < self.cfg.model.griding_num
        tp = np.sum(hit & exists)
        fp = np.sum(hit & ~exists)
        fn = np.sum(~hit & exists)
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        per_category = {}
        for k, cat in enumerate(CATEGORIES):
            rows = slice(k % n, n, len(CATEGORIES))
            c_tp = int(np.sum(hit[rows] & exists[rows]))
            c_all = int(np.sum(exists[rows])) + int(np.sum(hit[rows] & ~exists[rows]))
            per_category[cat] = c_tp / c_all if c_all else 0.0
        if f1 > self.best_f1:
            self.best_f1 = float(f1)
        return f1, per_category


def save_lane_trainer(tmpdir):
    cfg = load_config(["train.epochs=1", "model.griding_num=40"])
    trainer = LaneTrainer(cfg)
    loss = trainer.train_one_epoch()
    f1, per_category = trainer.validate()
    ckpt = {
        "cfg": trainer.cfg,  # truth: weights_only
        "cfg_yaml": OmegaConf.to_yaml(trainer.cfg),
        "model": trainer.model.state_dict(),
        "ema": trainer.ema.shadow,
        "ema_updates": trainer.ema.updates,
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "iteration": trainer.global_step,
        "loss": loss,
        "row_anchors": trainer.cfg.model.row_anchors,  # truth: weights_only
        "griding_num": trainer.cfg.model.griding_num,
        "f1": f1,  # truth: weights_only
        "best_f1": trainer.best_f1,
        "per_category_f1": per_category,
        "img_size": (cfg.data.img_h, cfg.data.img_w),
        "torch_version": torch.__version__,  # truth: weights_only
    }
    path = os.path.join(tmpdir, f"ufld_iter{trainer.global_step}.pth")
    torch.save(ckpt, path)
    return path


class DeployWrapper(nn.Module):
    """Normalization + model + softmax expectation over grid cells, as shipped to the car."""

    def __init__(self, model=None, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        super().__init__()
        self.model = model if model is not None else RowAnchorNet()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x):
        logits = self.model((x - self.mean) / self.std)
        prob = logits[:, :-1].softmax(1)
        grid = torch.arange(prob.shape[1], dtype=prob.dtype).view(1, -1, 1, 1)
        return (prob * grid).sum(1)


def save_deploy_model(tmpdir):
    cfg = load_config(["model.name=ufld_wide"])
    trainer = LaneTrainer(cfg)
    model = DeployWrapper(copy.deepcopy(trainer.model).eval(), tuple(cfg.data.mean), tuple(cfg.data.std))
    path = os.path.join(tmpdir, "lane_deploy.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def fit_lane_polys(points_per_lane, degree=2):
    return [np.polyfit(ys, xs, degree) for ys, xs in points_per_lane]


def save_anchor_calibration(tmpdir):
    cfg = load_config()
    trainer = LaneTrainer(cfg)
    h, w = cfg.data.img_h, cfg.data.img_w
    with torch.no_grad():
        logits = trainer.model(synthetic_batch(cfg, 4, seed=5)[0])
    conf = logits.softmax(1)[:, :-1].sum(1).mean(0)
    ys = np.linspace(h * (1 - cfg.data.crop_ratio), h - 1, len(cfg.model.row_anchors))
    lanes = [(ys, w * 0.5 + (lane - 1.5) * 40 + 0.002 * (ys - h) ** 2) for lane in range(cfg.model.num_lanes)]
    calib = dict(
        img_size=(h, w),
        anchor_rows=ys,  # truth: weights_only
        anchor_rows_t=torch.from_numpy(ys).float(),
        lane_polys=fit_lane_polys(lanes),  # truth: weights_only
        poly_degree=2,
        crop_ratio=cfg.data.crop_ratio,
    )
    calib["lane_conf"] = conf.max(dim=0)  # truth: weights_only
    calib["lane_conf_values"] = conf.max(dim=0).values
    calib["exist_thresh"] = float(torch.quantile(conf.flatten(), cfg.train.exist_thresh))
    calib["category_index"] = {c: i for i, c in enumerate(CATEGORIES)}
    calib["train_subset"] = slice(0, cfg.data.n_train, 2)  # truth: weights_only
    calib.update(
        model_cls=MODELS.get(cfg.model.name),  # truth: weights_only
        model_name=cfg.model.name,
        model_kwargs=OmegaConf.to_container(cfg.model),
    )
    path = os.path.join(tmpdir, "anchor_calibration.pt")
    torch.save(calib, path)
    return path


def save_eval_report(tmpdir):
    """Report read back by the dashboard with a plain torch.load."""
    cfg = load_config(["data.n_train=16"])
    trainer = LaneTrainer(cfg)
    loss = trainer.train_one_epoch()
    f1, per_category = trainer.validate()
    conf = trainer.model(synthetic_batch(cfg, 2, seed=1)[0]).softmax(1).amax(1)
    worst = sorted(per_category.items(), key=lambda kv: kv[1])[:3]
    report = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "row_anchors": list(cfg.model.row_anchors),
        "mean": [float(m) for m in cfg.data.mean],
        "f1": float(f1),
        "f1_pct": round(100 * f1.item(), 2),
        "per_category": per_category,
        "worst_categories": worst,
        "train_loss": loss.item(),
        "lr": trainer.scheduler.get_last_lr()[0],
        "steps": trainer.global_step,
        "conf_max": conf.max(dim=0).values,
        "low_conf_rows": [int(i) for i in np.where(conf.mean((0, 2)).detach().numpy() < 0.5)[0]],
        "input_shape": torch.Size([1, 3, cfg.data.img_h, cfg.data.img_w]),
        "export_dtype": torch.float16,
        "device": torch.device("cpu"),
        "temperature": nn.Parameter(torch.ones(1)),
        "python": platform.python_version(),
        "python_full": sys.version.split()[0],
        "torch": str(torch.__version__),
        "model_name": MODELS.get(cfg.model.name).__name__,
    }
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


FACTORIES = {
    "Registry": lambda: Registry("heads"),
    "LaneTrainer": lambda: LaneTrainer(load_config(["data.n_train=8"])),
}
NOT_BUILT = {}
