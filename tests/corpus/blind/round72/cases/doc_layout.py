"""Document layout analysis: a small anchor-free detector for PubLayNet-style page regions.

Configuration comes from YAML (OmegaConf), backbones and heads from registries, pages from a
synthetic renderer (white page, grey blocks for text/title/list/table/figure).
"""
import os
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from scipy import stats

DEFAULT_YAML = """
experiment: publaynet_tiny
data:
  root: /datasets/publaynet
  img_size: [128, 96]
  classes: [text, title, list, table, figure]
  pixel_mean: [0.92, 0.92, 0.92]
  pixel_std: [0.18, 0.18, 0.18]
model:
  backbone: tiny_res
  width: 16
  stride: 8
  anchor_sizes: [16, 32, 64]
train:
  lr: 0.002
  epochs: 2
  batch_size: 4
  iou_thresholds: [0.5, 0.75]
"""

BACKBONES = {}
HEADS = {}


def register(registry, name):
    def deco(cls):
        registry[name] = cls
        return cls
    return deco


@register(BACKBONES, "tiny_conv")
class TinyConvBackbone(nn.Module):
    def __init__(self, width=16, stride=8):
        super().__init__()
        layers, c = [], 3
        for _ in range(int(np.log2(stride))):
            layers += [nn.Conv2d(c, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        self.body = nn.Sequential(*layers)
        self.out_channels = width

    def forward(self, x):
        return self.body(x)


@register(BACKBONES, "tiny_res")
class TinyResBackbone(TinyConvBackbone):
    def __init__(self, width=16, stride=8):
        super().__init__(width, stride)
        self.refine = nn.Conv2d(width, width, 3, 1, 1)

    def forward(self, x):
        f = self.body(x)
        return f + F.relu(self.refine(f))


@register(HEADS, "fcos")
class FCOSHead(nn.Module):
    def __init__(self, in_ch=16, num_classes=5):
        super().__init__()
        self.cls = nn.Conv2d(in_ch, num_classes, 3, 1, 1)
        self.box = nn.Conv2d(in_ch, 4, 3, 1, 1)
        self.ctr = nn.Conv2d(in_ch, 1, 3, 1, 1)

    def forward(self, f):
        return self.cls(f), F.relu(self.box(f)), self.ctr(f)


class LayoutDetector(nn.Module):
    def __init__(self, backbone="tiny_conv", width=16, stride=8, num_classes=5, head="fcos"):
        super().__init__()
        self.backbone = BACKBONES[backbone](width, stride)
        self.head = HEADS[head](self.backbone.out_channels, num_classes)
        self.stride = stride

    def forward(self, images):
        return self.head(self.backbone(images))


def load_config(overrides=()):
    base = OmegaConf.create(yaml.safe_load(DEFAULT_YAML))
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


def build_detector(cfg):
    return LayoutDetector(cfg.model.backbone, cfg.model.width, cfg.model.stride, len(cfg.data.classes))


def render_page(rng, h=128, w=96, n_classes=5):
    img = np.ones((3, h, w), np.float32)
    boxes, labels, y = [], [], 4
    while y < h - 16:
        cls = int(rng.integers(0, n_classes))
        bh = int(rng.integers(6, 12 if cls in (0, 1, 2) else 40))
        x0, x1 = 4, int(rng.integers(w // 2, w - 4))
        y1 = min(y + bh, h - 2)
        img[:, y:y1, x0:x1] = 0.3 + 0.1 * cls
        boxes.append([x0, y, x1, y1])
        labels.append(cls)
        y = y1 + int(rng.integers(3, 8))
    return img, np.array(boxes, np.float32), np.array(labels, np.int64)


def make_targets(boxes, labels, h, w, stride, n_classes):
    gh, gw = h // stride, w // stride
    cls_t = torch.zeros(n_classes, gh, gw)
    box_t = torch.zeros(4, gh, gw)
    ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    cx, cy = (xs.float() + 0.5) * stride, (ys.float() + 0.5) * stride
    for (x0, y0, x1, y1), c in zip(boxes, labels):
        inside = (cx > x0) & (cx < x1) & (cy > y0) & (cy < y1)
        cls_t[c][inside] = 1.0
        box_t[:, inside] = torch.stack([cx - x0, cy - y0, x1 - cx, y1 - cy])[:, inside] / stride
    return cls_t, box_t


def box_iou(a, b):
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def average_precision(scores, matched, n_gt):
    if n_gt == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores))
    tp = np.asarray(matched, float)[order]
    prec = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    rec = np.cumsum(tp) / n_gt
    return np.trapezoid(prec, rec) if len(tp) else 0.0


def decode(cls_logits, boxes, stride, thresh=0.3):
    prob = cls_logits.sigmoid()
    score, label = prob.max(0)
    keep = score > thresh
    ys, xs = torch.nonzero(keep, as_tuple=True)
    cx, cy = (xs.float() + 0.5) * stride, (ys.float() + 0.5) * stride
    l, t, r, b = (boxes[:, ys, xs] * stride)
    out = torch.stack([cx - l, cy - t, cx + r, cy + b], 1)
    return out.numpy(), score[keep].numpy(), label[keep].numpy()


class LayoutTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else load_config()
        self.model = build_detector(self.cfg)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=self.cfg.train.lr, momentum=0.9)
        self.class_names = list(self.cfg.data.classes)
        self.epoch = 0
        self.best_map = 0.0

    def _batch(self, rng, n):
        h, w = self.cfg.data.img_size
        imgs, targets = [], []
        for _ in range(n):
            img, boxes, labels = render_page(rng, h, w, len(self.class_names))
            imgs.append(torch.from_numpy(img))
            targets.append((boxes, labels))
        return torch.stack(imgs), targets

    def train_epoch(self, steps=3, seed=0):
        rng = np.random.default_rng(seed + self.epoch)
        h, w = self.cfg.data.img_size
        self.model.train()
        for _ in range(steps):
            imgs, targets = self._batch(rng, self.cfg.train.batch_size)
            cls_p, box_p, _ = self.model(imgs)
            tgt = [make_targets(b, l, h, w, self.cfg.model.stride, len(self.class_names)) for b, l in targets]
            cls_t = torch.stack([t[0] for t in tgt])
            box_t = torch.stack([t[1] for t in tgt])
            pos = cls_t.amax(1, keepdim=True)
            loss = F.binary_cross_entropy_with_logits(cls_p, cls_t) + (F.l1_loss(box_p, box_t, reduction="none") * pos).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.epoch += 1
        return loss.item()

    @torch.no_grad()
    def validate(self, n_pages=6, iou_thr=0.5):
        self.model.eval()
        rng = np.random.default_rng(1234)
        imgs, targets = self._batch(rng, n_pages)
        cls_p, box_p, _ = self.model(imgs)
        per_class = defaultdict(lambda: {"scores": [], "matched": [], "n_gt": 0})
        for i, (gt_boxes, gt_labels) in enumerate(targets):
            boxes, scores, labels = decode(cls_p[i], box_p[i], self.cfg.model.stride, thresh=0.05)
            for c in range(len(self.class_names)):
                g = gt_boxes[gt_labels == c]
                p, s = boxes[labels == c], scores[labels == c]
                per_class[c]["n_gt"] += len(g)
                iou = box_iou(p, g) if len(p) and len(g) else np.zeros((len(p), len(g)))
                per_class[c]["scores"] += s.tolist()
                per_class[c]["matched"] += (iou.max(1) >= iou_thr).tolist() if len(g) else [False] * len(p)
        aps = {self.class_names[c]: average_precision(v["scores"], v["matched"], v["n_gt"])
               for c, v in per_class.items()}
        return np.mean(list(aps.values())), aps


FACTORIES = {
    "FCOSHead": lambda: FCOSHead(16, 5),
}


def save_publaynet_detector(tmpdir):
    cfg = load_config(["train.epochs=2", "model.width=16"])
    trainer = LayoutTrainer(cfg)
    for _ in range(cfg.train.epochs):
        last_loss = trainer.train_epoch()
    map50, aps = trainer.validate(iou_thr=0.5)
    map75, _ = trainer.validate(iou_thr=0.75)
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "epoch": trainer.epoch,
        "cfg": cfg,  # truth: weights_only
        "cfg_resolved": OmegaConf.to_container(cfg, resolve=True),
        "label_map": {name: i for i, name in enumerate(trainer.class_names)},
        "last_loss": last_loss,
        "map50": map50,  # truth: weights_only
        "map75": float(map75),
        "per_class_ap": {k: float(v) for k, v in aps.items()},
        "anchor_sizes": cfg.model.anchor_sizes,  # truth: weights_only
        "img_size": tuple(cfg.data.img_size),
        "pixel_mean": np.asarray(cfg.data.pixel_mean, np.float32),  # truth: weights_only
        "pixel_std": torch.tensor(list(cfg.data.pixel_std)),
    }
    path = os.path.join(tmpdir, "publaynet_fcos.pth")
    torch.save(ckpt, path)
    return path


def _reading_order_stats(n_pages=20, seed=3):
    rng = np.random.default_rng(seed)
    taus, sizes, counts = [], Counter(), []
    for _ in range(n_pages):
        img, boxes, labels = render_page(rng)
        true_order = np.arange(len(boxes))
        noisy = boxes[:, 1] + rng.normal(0, 4, len(boxes))  # predicted y-centre
        taus.append(stats.kendalltau(true_order, np.argsort(np.argsort(noisy))).statistic)
        sizes[tuple(img.shape[1:])] += 1
        counts.append(len(boxes))
    return taus, sizes, counts


def save_reading_order(tmpdir):
    taus, sizes, counts = _reading_order_stats()
    scorer = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    summary = {"tau_mean": float(np.mean(taus)), "tau_min": min(taus)}  # truth: weights_only
    ckpt = {"scorer": scorer.state_dict(), "summary": summary}
    ckpt["page_sizes"] = sizes
    ckpt["max_regions"] = int(np.max(counts))
    ckpt["median_regions"] = np.median(counts)  # truth: weights_only
    ckpt["features"] = ["x0", "y0", "x1", "y1", "cx", "cy", "w", "h"]
    path = os.path.join(tmpdir, "reading_order.pt")
    torch.save(ckpt, path)
    return path


def otsu_threshold(profile):
    hist, edges = np.histogram(profile, bins=32)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    return centres[np.argmax(w0 * w1 * (m0 - m1) ** 2)]


def save_table_structure(tmpdir):
    cfg = load_config(["data.root=/datasets/pubtabnet"])
    rng = np.random.default_rng(11)
    table = np.ones((64, 96), np.float32)
    for r in range(0, 64, 12):
        table[r, :] = 0.0
    for c in rng.choice(96, 5, replace=False):
        table[:, c] = 0.0
    row_profile, col_profile = table.mean(1), table.mean(0)
    run = {"run_id": str(uuid.uuid4()), "data_root": Path(cfg.data.root)}  # truth: weights_only
    ckpt = dict(
        row_threshold=float(otsu_threshold(row_profile)),
        col_threshold=otsu_threshold(col_profile),  # truth: weights_only
        n_rows=int((row_profile < 0.5).sum()),
        n_cols=(col_profile < 0.5).sum().item(),
        split_seed=np.random.default_rng(11).bit_generator.state,
        run=run,
        dataset=cfg.data.root,
    )
    path = os.path.join(tmpdir, "table_structure.pt")
    torch.save(ckpt, path)
    return path


def save_backbone_for_transfer(tmpdir):
    cfg = load_config(["model.backbone=tiny_conv"])
    trainer = LayoutTrainer(cfg)
    trainer.train_epoch(steps=1)
    path = os.path.join(tmpdir, "backbone.pt")
    torch.save(trainer.model.backbone, path)  # truth: weights_only
    return path


def save_docbank_finetune(tmpdir):
    cfg = load_config(["data.classes=[paragraph,title,equation,table,figure,caption,footer]"])
    trainer = LayoutTrainer(cfg)
    history = defaultdict(list)
    for _ in range(2):
        history["loss"].append(trainer.train_epoch(steps=2))
    map50, aps = trainer.validate()
    ckpt = {
        "model": trainer.model.state_dict(),
        "classes": list(cfg.data.classes),
        "history": dict(history),
        "loss_curve": history,  # truth: weights_only
        "map50": map50.item(),
        "ap_min_class": min(aps, key=aps.get),
        "config_yaml": OmegaConf.to_yaml(cfg),
        "config_hash": uuid.uuid5(uuid.NAMESPACE_URL, OmegaConf.to_yaml(cfg)).hex,
        "init_from": os.fspath(Path(cfg.data.root) / "init.pth"),
    }
    path = os.path.join(tmpdir, "docbank.pt")
    torch.save(ckpt, path)
    return path
