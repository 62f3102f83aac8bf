"""Insect pest detection on yellow sticky-trap photos from field scouting rounds.

Config in YAML (OmegaConf), annotations in a pandas table exported from the labelling tool,
anchors from k-means over box sizes, a head chosen from a registry, and a per-class AP loop.
"""
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from sklearn.cluster import KMeans
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import LabelEncoder

CONFIG_YAML = """
experiment: trap-det-lite
data:
  root: /mnt/scouting/sticky_traps_2024
  image_size: 32
  grid: 8
  classes: [aphid, thrips, whitefly, leafminer, spider_mite]
  val_fields: [F03, F11]
  min_box_px: 1.5
model:
  head: anchor_head
  width: 16
  num_anchors: 3
train:
  epochs: 2
  lr: 0.002
  momentum: 0.937
  batch_size: 4
  seed: 7
eval:
  iou_thr: 0.5
  recall_target: 0.9
"""

FIELD_META = """
campaign: spring-2024
survey:
  start: 2024-03-04
  end: 2024-05-27
  trap_height_cm: 40
crop: greenhouse_tomato
"""

HEADS = {}


def register_head(name):
    def wrap(cls):
        HEADS[name] = cls
        return cls
    return wrap


def load_config(overrides=()):
    cfg = OmegaConf.create(CONFIG_YAML)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


def fake_annotations(classes, n_images=24, seed=0):
    """Same columns as the CVAT export: one row per box, pixel units."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_images):
        field = f"F{rng.integers(1, 13):02d}"
        for _ in range(rng.integers(1, 6)):
            label = classes[rng.integers(len(classes))]
            size = {"aphid": 3.0, "thrips": 2.0, "whitefly": 2.5, "leafminer": 4.0, "spider_mite": 1.2}[label]
            w, h = rng.normal(size, 0.4, 2).clip(0.8)
            rows.append({"image_id": f"trap_{i:04d}", "field_id": field, "label": label,
                         "cx": rng.uniform(2, 30), "cy": rng.uniform(2, 30), "w": w, "h": h})
    return pd.DataFrame(rows)


def preprocess(df, cfg):
    df = df[(df.w >= cfg.data.min_box_px) | (df.h >= cfg.data.min_box_px)].copy()
    enc = LabelEncoder().fit(list(cfg.data.classes))
    df["label_id"] = enc.transform(df["label"])
    is_val = df["field_id"].isin(list(cfg.data.val_fields))
    return df[~is_val].reset_index(drop=True), df[is_val].reset_index(drop=True), enc


def fit_anchors(df, k, seed):
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(df[["w", "h"]].to_numpy())
    order = np.argsort(km.cluster_centers_.prod(1))
    return km, km.cluster_centers_[order]


class Backbone(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2),
        )

    def forward(self, x):
        return self.net(x)


@register_head("anchor_head")
class AnchorHead(nn.Module):
    def __init__(self, width=16, num_anchors=3, num_classes=5):
        super().__init__()
        self.na, self.nc = num_anchors, num_classes
        self.pred = nn.Conv2d(width, num_anchors * (5 + num_classes), 1)

    def forward(self, f):
        b, _, h, w = f.shape
        return self.pred(f).view(b, self.na, 5 + self.nc, h, w)


@register_head("center_head")
class CenterHead(nn.Module):
    def __init__(self, width=16, num_anchors=1, num_classes=5):
        super().__init__()
        self.na, self.nc = 1, num_classes
        self.heat = nn.Conv2d(width, num_classes, 1)
        self.box = nn.Conv2d(width, 5, 1)

    def forward(self, f):
        return torch.cat([self.box(f), self.heat(f)], 1).unsqueeze(1)


class TrapDetector(nn.Module):
    def __init__(self, head="anchor_head", width=16, num_anchors=3, num_classes=5):
        super().__init__()
        self.backbone = Backbone(width)
        self.head = HEADS[head](width, num_anchors, num_classes)

    def forward(self, x):
        return self.head(self.backbone(x))


def render_targets(df, image_ids, grid, img_size, nc):
    """Objectness + class per grid cell; images are noise with bright dots where the insects sit."""
    imgs = torch.rand(len(image_ids), 3, img_size, img_size) * 0.2
    obj = torch.zeros(len(image_ids), grid, grid)
    cls = torch.zeros(len(image_ids), grid, grid, dtype=torch.long)
    cell = img_size / grid
    for i, img_id in enumerate(image_ids):
        for r in df[df.image_id == img_id].itertuples():
            gx, gy = min(int(r.cx // cell), grid - 1), min(int(r.cy // cell), grid - 1)
            obj[i, gy, gx], cls[i, gy, gx] = 1.0, r.label_id
            imgs[i, :, int(r.cy), int(r.cx)] = 1.0
    return imgs, obj, cls


def train_detector(cfg, train_df):
    torch.manual_seed(cfg.train.seed)
    nc = len(cfg.data.classes)
    model = TrapDetector(cfg.model.head, cfg.model.width, cfg.model.num_anchors, nc)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.train.lr, momentum=cfg.train.momentum, nesterov=True)
    ids = sorted(train_df.image_id.unique())
    imgs, obj, cls = render_targets(train_df, ids, cfg.data.grid, cfg.data.image_size, nc)
    history = defaultdict(list)
    for epoch in range(cfg.train.epochs):
        for i in range(0, len(ids), cfg.train.batch_size):
            out = model(imgs[i:i + cfg.train.batch_size])
            o, t_obj, t_cls = out[:, 0], obj[i:i + cfg.train.batch_size], cls[i:i + cfg.train.batch_size]
            l_obj = F.binary_cross_entropy_with_logits(o[:, 4], t_obj)
            l_cls = F.cross_entropy(o[:, 5:], t_cls, reduction="none")[t_obj > 0].mean()
            loss = l_obj + torch.nan_to_num(l_cls)
            opt.zero_grad()
            loss.backward()
            opt.step()
            history["loss"].append(loss.item())
        history["epoch"].append(epoch)
    return model, opt, history


@torch.no_grad()
def evaluate(model, df, cfg, classes):
    ids = sorted(df.image_id.unique())
    imgs, obj, cls = render_targets(df, ids, cfg.data.grid, cfg.data.image_size, len(classes))
    out = model.eval()(imgs)[:, 0]
    probs = torch.sigmoid(out[:, 4:5]) * out[:, 5:].softmax(1)
    ap = {}
    for k, name in enumerate(classes):
        y_true = ((obj > 0) & (cls == k)).flatten().numpy()
        if y_true.any():
            ap[name] = average_precision_score(y_true, probs[:, k].flatten().numpy())
    scores = torch.sigmoid(out[:, 4]).flatten().numpy()
    return ap, scores, obj.flatten().numpy()


def pipeline(overrides=()):
    cfg = load_config(overrides)
    df = fake_annotations(list(cfg.data.classes), seed=cfg.train.seed)
    train_df, val_df, enc = preprocess(df, cfg)
    km, anchors = fit_anchors(train_df, cfg.model.num_anchors, cfg.train.seed)
    model, opt, history = train_detector(cfg, train_df)
    return cfg, df, train_df, val_df, enc, km, anchors, model, opt, history


# ----------------------------------------------------------------------------- checkpoints


def save_detector_checkpoint(tmpdir):
    cfg, df, train_df, val_df, enc, km, anchors, model, opt, history = pipeline()
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": cfg.train.epochs}
    ckpt["cfg"] = cfg  # truth: weights_only
    ckpt["config"] = OmegaConf.to_container(cfg, resolve=True)
    ckpt["anchors"] = anchors  # truth: weights_only
    ckpt["anchors_t"] = torch.tensor(anchors, dtype=torch.float32)
    ckpt["classes"] = enc.classes_.tolist()
    ckpt["num_classes"] = len(enc.classes_)
    ckpt["head"] = cfg.model.head
    ckpt["image_size"] = cfg.data.image_size
    ckpt["val_fields"] = list(cfg.data.val_fields)
    ckpt["final_loss"] = history["loss"][-1]
    path = os.path.join(tmpdir, "trapdet_last.pt")
    torch.save(ckpt, path)
    return path


def save_map_best(tmpdir):
    cfg, df, train_df, val_df, enc, km, anchors, model, opt, history = pipeline(["train.epochs=1"])
    classes = list(enc.classes_)
    ap, scores, is_obj = evaluate(model, val_df, cfg, classes)
    per_class = {str(c): round(v, 4) for c, v in ap.items()}
    pos = np.sort(scores[is_obj > 0])[::-1]
    k = max(int(np.ceil(cfg.eval.recall_target * len(pos))) - 1, 0)
    summary = {
        "map": np.mean(list(ap.values())),  # truth: weights_only
        "ap": per_class,
        "n_val_boxes": len(val_df),
        "n_val_images": val_df.image_id.nunique(),
        "conf_at_recall": pos[k] if len(pos) else 0.0,  # truth: weights_only
        "class_names": classes,  # truth: weights_only
        "present": sorted(ap),  # truth: weights_only
        "worst_class": min(per_class, key=per_class.get) if per_class else None,
    }
    path = os.path.join(tmpdir, "trapdet_best.pt")
    torch.save({"state_dict": model.state_dict(), "summary": summary}, path)
    return path


def save_anchor_fit(tmpdir):
    """Anchor statistics kept for the data report and for re-fitting on the next season."""
    cfg, df, train_df, *_ = pipeline(["train.epochs=1"])
    km, anchors = fit_anchors(train_df, cfg.model.num_anchors, cfg.train.seed)
    wh = train_df[["w", "h"]]
    report = {
        "kmeans": km,  # truth: weights_only
        "inertia": km.inertia_,
        "iterations": km.n_iter_,
        "anchors_wh": anchors.round(3).tolist(),
        "box_stats": wh.describe().to_dict(),
        "class_counts": train_df["label"].value_counts(),  # truth: weights_only
        "class_counts_dict": train_df["label"].value_counts().to_dict(),
        "images_per_field": train_df.groupby("field_id")["image_id"].nunique().to_dict(),
        "largest_box_px": float(train_df["w"].max()),
        "n_boxes": int(train_df.shape[0]),
        "columns": list(train_df.columns),
    }
    path = os.path.join(tmpdir, "anchors.pt")
    torch.save(report, path)
    return path


def save_dataset_manifest(tmpdir):
    cfg = load_config()
    meta = yaml.safe_load(FIELD_META)
    df = fake_annotations(list(cfg.data.classes), seed=1)
    train_df, val_df, enc = preprocess(df, cfg)
    root = Path(cfg.data.root)
    manifest = {
        "data_root": root,  # truth: weights_only
        "data_root_str": root.as_posix(),
        "campaign": meta["campaign"],
        "survey_start": meta["survey"]["start"],  # truth: weights_only
        "survey_days": (meta["survey"]["end"] - meta["survey"]["start"]).days,
        "trap_height_cm": meta["survey"]["trap_height_cm"],
        "val_images": val_df["image_id"].unique(),  # truth: weights_only
        "train_images": sorted(train_df["image_id"].unique().tolist()),
        "label_map": {c: i for i, c in enumerate(enc.classes_.tolist())},
        "splits": {"train": len(train_df), "val": len(val_df)},
        "image_files": [str(root / f"{i}.jpg") for i in train_df["image_id"].head(3)],
    }
    path = os.path.join(tmpdir, "manifest.pt")
    torch.save(manifest, path)
    return path


def save_loss_curves(tmpdir):
    cfg, df, train_df, val_df, enc, km, anchors, model, opt, history = pipeline(["train.epochs=1"])
    path = os.path.join(tmpdir, "curves.pt")
    torch.save(history, path)  # truth: weights_only
    return path


def save_deploy_weights(tmpdir):
    cfg, df, train_df, val_df, enc, km, anchors, model, opt, history = pipeline(["train.epochs=1"])
    ap, scores, _ = evaluate(model, val_df, cfg, enc.classes_.tolist())
    thr = float(np.quantile(scores, 0.95))
    deploy = dict(
        weights=model.state_dict(),
        head=type(model.head).__name__,
        anchors=anchors.astype(np.float32).tolist(),
        classes=[str(c) for c in enc.classes_],
        score_thr=thr,
        iou_thr=cfg.eval.iou_thr,
        map50=float(np.mean(list(ap.values()))) if ap else 0.0,
        input_hw=(cfg.data.image_size, cfg.data.image_size),
        grid=cfg.data.grid,
        config=OmegaConf.to_container(cfg.model),
        loss_curve=history["loss"],
    )
    path = os.path.join(tmpdir, "trapdet_deploy.pt")
    torch.save(deploy, path)
    return path
