"""Single-stage traffic-sign detector (GTSDB-style), trained with a plain torch loop.

Loosely follows the yolov5 train.py layout: argparse options, a hyp dict, label statistics
computed with pandas, k-means anchors, an EMA copy of the model, fitness-based best checkpoint.
"""
import argparse
import math
import random
import time
from copy import deepcopy
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

SIGN_CLASSES = ["prohibitory", "danger", "mandatory", "other"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HYP = {"lr0": 0.01, "momentum": 0.937, "weight_decay": 5e-4, "box": 0.05, "obj": 1.0, "cls": 0.5,
       "anchor_t": 4.0, "warmup_epochs": 1}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="train a traffic-sign detector")
    p.add_argument("--data-root", default="data/gtsdb")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-anchors", type=int, default=3)
    p.add_argument("--conf-thres", type=float, default=0.25)
    p.add_argument("--iou-thres", type=float, default=0.45)
    p.add_argument("--project", default="runs/train")
    p.add_argument("--name", default="exp")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def synth_annotations(n_images=24, seed=0):
    """GTSDB-like gt.txt: one row per sign, pixel boxes on 64x64 crops."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_images):
        for _ in range(rng.integers(1, 4)):
            w, h = rng.integers(6, 24, size=2)
            x1, y1 = rng.integers(0, 64 - 24, size=2)
            rows.append({"filename": f"{i:05d}.ppm", "x1": int(x1), "y1": int(y1),
                         "x2": int(x1 + w), "y2": int(y1 + h), "class_id": int(rng.integers(0, 4))})
    df = pd.DataFrame(rows)
    df["w"] = df.x2 - df.x1
    df["h"] = df.y2 - df.y1
    return df


def kmeans_anchors(wh, k=3, iters=20, seed=0):
    rng = np.random.default_rng(seed)
    centers = wh[rng.choice(len(wh), k, replace=False)].astype(np.float32)
    for _ in range(iters):
        d = ((wh[:, None, :] - centers[None]) ** 2).sum(-1)
        assign = d.argmin(1)
        for j in range(k):
            if (assign == j).any():
                centers[j] = wh[assign == j].mean(0)
    return centers[np.argsort(centers.prod(1))]


def anchor_fitness(wh, anchors, thr=4.0):
    r = wh[:, None] / anchors[None]
    x = np.minimum(r, 1 / r).min(2)
    best = x.max(1)
    return (best > 1 / thr).mean(), best.mean()


def labels_to_class_weights(df, nc):
    weights = np.bincount(df.class_id.to_numpy(), minlength=nc).astype(np.float64)
    weights[weights == 0] = 1
    weights = 1 / weights
    weights /= weights.sum()
    return torch.from_numpy(weights).float()


def labels_to_image_weights(df, nc, class_weights):
    counts = df.groupby("filename").class_id.apply(lambda s: np.bincount(s, minlength=nc))
    return (class_weights.numpy().reshape(1, nc) * np.stack(counts.to_list())).sum(1)


class TinyDetector(nn.Module):
    def __init__(self, nc=4, na=3, width=16):
        super().__init__()
        self.nc, self.na, self.no = nc, na, nc + 5
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1), nn.BatchNorm2d(width), nn.SiLU(),
            nn.Conv2d(width, width * 2, 3, 2, 1), nn.BatchNorm2d(width * 2), nn.SiLU(),
            nn.Conv2d(width * 2, width * 4, 3, 2, 1), nn.BatchNorm2d(width * 4), nn.SiLU(),
        )
        self.head = nn.Conv2d(width * 4, na * self.no, 1)
        self.register_buffer("stride", torch.tensor([8.0]))
        self.register_buffer("anchors", torch.ones(na, 2))

    def forward(self, x):
        p = self.head(self.backbone(x))
        b, _, gy, gx = p.shape
        return p.view(b, self.na, self.no, gy, gx).permute(0, 1, 3, 4, 2).contiguous()


class ModelEMA:
    """Exponential moving average of the weights (yolov5 keeps a deepcopy in eval mode)."""

    def __init__(self, model, decay=0.9999, tau=2000, updates=0):
        self.ema = deepcopy(model).eval()
        self.updates = updates
        self.base_decay = decay
        self.tau = tau
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def decay(self):
        return self.base_decay * (1 - math.exp(-self.updates / self.tau))

    def update(self, model):
        self.updates += 1
        d = self.decay()
        msd = model.state_dict()
        with torch.no_grad():
            for k, v in self.ema.state_dict().items():
                if v.dtype.is_floating_point:
                    v.mul_(d).add_(msd[k].detach(), alpha=1 - d)


def make_batch(df, files, img_size, nc):
    imgs = torch.rand(len(files), 3, img_size, img_size)
    targets = []
    for bi, f in enumerate(files):
        for r in df[df.filename == f].itertuples():
            cx, cy = (r.x1 + r.x2) / 2 / img_size, (r.y1 + r.y2) / 2 / img_size
            targets.append([bi, r.class_id, cx, cy, r.w / img_size, r.h / img_size])
    return imgs, torch.tensor(targets, dtype=torch.float32)


def compute_loss(pred, targets, model, hyp):
    b, na, gy, gx, no = pred.shape
    obj_t = torch.zeros(b, na, gy, gx)
    lbox, lcls = torch.zeros(()), torch.zeros(())
    for t in targets:
        bi, c = int(t[0]), int(t[1])
        i, j = min(int(t[3] * gy), gy - 1), min(int(t[2] * gx), gx - 1)
        a = int(torch.argmin(((model.anchors / model.stride) - t[4:6] * gx).abs().sum(1)))
        obj_t[bi, a, i, j] = 1.0
        lbox = lbox + F.l1_loss(pred[bi, a, i, j, :4].sigmoid(), t[2:6])
        lcls = lcls + F.cross_entropy(pred[bi, a, i, j, 5:][None], torch.tensor([c]))
    lobj = F.binary_cross_entropy_with_logits(pred[..., 4], obj_t)
    n = max(len(targets), 1)
    loss = hyp["box"] * lbox / n + hyp["obj"] * lobj + hyp["cls"] * lcls / n
    return loss, torch.stack([lbox / n, lobj, lcls / n]).detach()


def compute_ap(recall, precision):
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(np.concatenate(([1.0], precision, [0.0])))))
    x = np.linspace(0, 1, 101)
    return np.trapezoid(np.interp(x, mrec, mpre), x)


def evaluate(model, df, files, opt):
    """Returns (mp, mr, map50, map, per_class_ap) the way val.py does."""
    model.eval()
    imgs, targets = make_batch(df, files, opt.img_size, len(SIGN_CLASSES))
    with torch.no_grad():
        conf = model(imgs)[..., 4].sigmoid().flatten(1).max(1).values.numpy()
    ap, p, r = np.zeros(len(SIGN_CLASSES)), np.zeros(len(SIGN_CLASSES)), np.zeros(len(SIGN_CLASSES))
    for ci in range(len(SIGN_CLASSES)):
        has = np.array([((targets[:, 0] == bi) & (targets[:, 1] == ci)).any().item() for bi in range(len(files))])
        if not has.any():
            continue
        order = np.argsort(-conf)
        tp = np.cumsum(has[order])
        recall = tp / has.sum()
        precision = tp / np.arange(1, len(order) + 1)
        ap[ci], p[ci], r[ci] = compute_ap(recall, precision), precision[-1], recall[-1]
    model.train()
    return p.mean(), r.mean(), ap.mean(), ap.mean() * 0.6, dict(zip(SIGN_CLASSES, ap))


def fitness(x):
    w = np.array([0.0, 0.0, 0.1, 0.9])
    return (x[:, :4] * w).sum(1)


def train(opt):
    set_seed(opt.seed)
    df = synth_annotations(seed=opt.seed)
    files = sorted(df.filename.unique())
    val_files = files[-6:]
    anchors = kmeans_anchors(df[["w", "h"]].to_numpy(np.float32), k=opt.num_anchors, seed=opt.seed)
    model = TinyDetector(nc=len(SIGN_CLASSES), na=opt.num_anchors)
    model.anchors.copy_(torch.from_numpy(anchors))
    ema = ModelEMA(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=HYP["lr0"], momentum=HYP["momentum"], nesterov=True)
    lf = (lambda x: (1 - x / opt.epochs) * 0.99 + 0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lf)
    best_fitness, results, t0 = 0.0, (0, 0, 0, 0, 0, 0, 0), time.time()
    mloss_hist = []
    for epoch in range(opt.epochs):
        mloss = torch.zeros(3)
        for i in range(0, len(files) - 6, opt.batch_size):
            imgs, targets = make_batch(df, files[i:i + opt.batch_size], opt.img_size, len(SIGN_CLASSES))
            loss, items = compute_loss(model(imgs), targets, model, HYP)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ema.update(model)
            mloss = (mloss * i + items) / (i + 1)
        scheduler.step()
        mp, mr, map50, map_, per_class = evaluate(ema.ema, df, val_files, opt)
        results = (mp, mr, map50, map_, *mloss.tolist())
        fi = fitness(np.array(results).reshape(1, -1))
        if fi > best_fitness:
            best_fitness = fi
        mloss_hist.append(mloss.sum().item())
    return {"model": model, "ema": ema, "optimizer": optimizer, "scheduler": scheduler, "df": df,
            "anchors": anchors, "best_fitness": best_fitness, "results": results, "per_class": per_class,
            "epoch": opt.epochs - 1, "hours": (time.time() - t0) / 3600, "mloss_hist": mloss_hist}


def save_last(tmpdir):
    """yolov5-style last.pt: the whole (EMA) model objects, not their state dicts."""
    opt = parse_args([])
    out = train(opt)
    ckpt = {
        "epoch": out["epoch"],
        "best_fitness": out["best_fitness"],  # truth: weights_only
        "model": deepcopy(out["model"]).half(),  # truth: weights_only
        "ema": deepcopy(out["ema"].ema).half(),  # truth: weights_only
        "updates": out["ema"].updates,
        "optimizer": out["optimizer"].state_dict(),
        "opt": vars(opt),
        "hyp": dict(HYP),
        "date": datetime.now().isoformat(),
    }
    path = str(Path(tmpdir) / "last.pt")
    torch.save(ckpt, path)
    return path


def save_best_weights(tmpdir):
    opt = parse_args(["--epochs", "1"])
    out = train(opt)
    mp, mr, map50, map_ = out["results"][:4]
    anchor_recall, mean_best = anchor_fitness(out["df"][["w", "h"]].to_numpy(np.float32), out["anchors"])
    ckpt = {
        "state_dict": out["ema"].ema.state_dict(),
        "anchors": out["anchors"],  # truth: weights_only
        "img_size": opt.img_size,
        "class_names": list(SIGN_CLASSES),
        "map50": map50,  # truth: weights_only
        "precision": float(mp),
        "recall": mr.item(),
        "per_class_ap": {name: round(float(ap), 4) for name, ap in out["per_class"].items()},
        "anchor_recall": float(anchor_recall),
        "mean_best_ratio": mean_best,  # truth: weights_only
        "best_epoch": int(np.argmax(out["mloss_hist"])),
    }
    path = str(Path(tmpdir) / "best.pt")
    torch.save(ckpt, path)
    return path


def save_resume_state(tmpdir):
    opt = parse_args(["--epochs", "1", "--seed", "3"])
    out = train(opt)
    ckpt = {"epoch": out["epoch"], "model": out["model"].state_dict()}
    ckpt["optimizer"] = out["optimizer"].state_dict()
    ckpt["scheduler"] = out["scheduler"].state_dict()
    ckpt["ema"] = {"state_dict": out["ema"].ema.state_dict(), "updates": out["ema"].updates,
                   "decay": out["ema"].decay()}
    ckpt["rng"] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # truth: weights_only
        "torch": torch.get_rng_state(),
    }
    ckpt["results"] = out["results"]  # truth: weights_only
    ckpt["train_hours"] = round(out["hours"], 5)
    ckpt["loss_history"] = out["mloss_hist"]
    ckpt["class_weights"] = labels_to_class_weights(out["df"], len(SIGN_CLASSES))
    path = str(Path(tmpdir) / f"resume_{opt.name}.pt")
    torch.save(ckpt, path)
    return path


def save_label_cache(tmpdir):
    """Cached label statistics so the next run skips parsing gt.txt."""
    opt = parse_args([])
    df = synth_annotations(n_images=30, seed=opt.seed)
    nc = len(SIGN_CLASSES)
    cw = labels_to_class_weights(df, nc)
    per_image = df.groupby("filename")
    cache = {
        "hash": str(hash(tuple(sorted(df.filename.unique())))),
        "labels": {f: g[["class_id", "x1", "y1", "x2", "y2"]].values.tolist() for f, g in per_image},
        "shapes": np.full((per_image.ngroups, 2), opt.img_size),  # truth: weights_only
        "nf": per_image.ngroups,
        "max_objects": per_image.size().max(),  # truth: weights_only
        "class_counts": df.class_id.value_counts().sort_index().tolist(),
        "image_weights": labels_to_image_weights(df, nc, cw),  # truth: weights_only
        "wh_quantiles": df[["w", "h"]].quantile([0.1, 0.5, 0.9]).to_dict(),
        "largest_box": df[["w", "h"]].max().max(),  # truth: weights_only
        "version": 0.6,
    }
    path = str(Path(tmpdir) / "labels.cache.pt")
    torch.save(cache, path)
    return path


def save_export_bundle(tmpdir):
    """What the on-board inference service loads: weights plus pre/post-processing constants."""
    opt = parse_args(["--epochs", "1", "--conf-thres", "0.3"])
    out = train(opt)
    model = out["ema"].ema.float()
    df = out["df"]
    bundle = dict(
        weights=model.state_dict(),
        anchors=torch.from_numpy(out["anchors"]).float(),
        stride=model.stride.clone(),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        conf_thres=opt.conf_thres,
        iou_thres=opt.iou_thres,
        names=dict(enumerate(SIGN_CLASSES)),
        num_train_images=df.filename.nunique(),
        min_box=int(df[["w", "h"]].min().min()),
        aspect=df.eval("w / h").describe().to_dict(),
        input_shape=(1, 3, opt.img_size, opt.img_size),
        letterbox=max(opt.img_size, df[["w", "h"]].max().max()),
        has_small_signs=any(df.w < 8),
        dtype=torch.float16,
        exported=time.strftime("%Y-%m-%d %H:%M"),
    )
    path = str(Path(tmpdir) / "export.pt")
    torch.save(bundle, path)
    return path


FACTORIES = {"ModelEMA": lambda: ModelEMA(TinyDetector(), decay=0.999)}
