"""Single-stage detector training: anchors, NMS config, VOC-style mAP computed with numpy."""
import collections
import dataclasses
import enum
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

CLASSES = ("person", "car", "bicycle", "dog")


class BoxFormat(enum.Enum):
    XYXY = "xyxy"
    CXCYWH = "cxcywh"


class NMSMode(enum.IntEnum):
    HARD = 0
    SOFT_LINEAR = 1
    SOFT_GAUSSIAN = 2


@dataclasses.dataclass
class NMSConfig:
    iou_threshold: float = 0.5
    score_threshold: float = 0.05
    max_detections: int = 100
    mode: NMSMode = NMSMode.HARD


@dataclasses.dataclass
class AnchorConfig:
    sizes: tuple = (32, 64, 128)
    aspect_ratios: tuple = (0.5, 1.0, 2.0)
    strides: tuple = (8, 16, 32)
    iou_fg: float = np.float32(0.5)


@dataclasses.dataclass
class DetectorConfig:
    num_classes: int = len(CLASSES)
    image_size: int = 128
    box_format: str = "xyxy"
    nms: NMSConfig = dataclasses.field(default_factory=NMSConfig)
    work_dir: str = "work_dirs/retina_tiny"


class TinyDetector(nn.Module):
    def __init__(self, num_classes=len(CLASSES), num_anchors=9):
        super().__init__()
        self.backbone = nn.Conv2d(3, 8, 3, padding=1)
        self.cls_head = nn.Conv2d(8, num_anchors * num_classes, 1)
        self.box_head = nn.Conv2d(8, num_anchors * 4, 1)

    def forward(self, x):
        f = self.backbone(x).relu()
        return self.cls_head(f), self.box_head(f)


def generate_anchors(sizes, ratios):
    anchors = []
    for s in sizes:
        for r in ratios:
            w, h = s * np.sqrt(r), s / np.sqrt(r)
            anchors.append([-w / 2, -h / 2, w / 2, h / 2])
    return np.array(anchors, dtype=np.float32)


def voc_ap(rec, prec):
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def fake_pr(seed):
    rng = np.random.default_rng(seed)
    tp = rng.random(12) > 0.4
    rec = np.cumsum(tp) / max(tp.sum(), 1)
    prec = np.cumsum(tp) / np.arange(1, tp.size + 1)
    return rec, prec


def evaluate_map(classes=CLASSES):
    ap_per_class = {}
    for k, name in enumerate(classes):
        rec, prec = fake_pr(k)
        ap_per_class[name] = voc_ap(rec, prec)
    return ap_per_class


def save_anchor_checkpoint(tmpdir):
    cfg = AnchorConfig()
    anchors = generate_anchors(cfg.sizes, cfg.aspect_ratios)
    model = TinyDetector(num_anchors=len(anchors))
    anchor_cfg = dataclasses.asdict(cfg)
    anchor_cfg["iou_fg"] = round(cfg.iou_fg, 2)  # truth: weights_only
    ckpt = {
        "model": model.state_dict(),
        "anchors": anchors,  # truth: weights_only
        "anchor_config": anchor_cfg,
        "num_anchors": anchors.shape[0],
    }
    path = os.path.join(tmpdir, "anchors.pt")
    torch.save(ckpt, path)
    return path


def save_anchor_buffers(tmpdir):
    cfg = AnchorConfig()
    anchors = generate_anchors(cfg.sizes, cfg.aspect_ratios)
    model = TinyDetector(num_anchors=len(anchors))
    model.register_buffer("anchors", torch.as_tensor(anchors))
    ckpt = {
        "model": model.state_dict(),
        "anchor_sizes": list(cfg.sizes),
        "aspect_ratios": cfg.aspect_ratios,
        "strides": cfg.strides,
        "iou_fg": float(cfg.iou_fg),
    }
    path = os.path.join(tmpdir, "anchor_buffers.pt")
    torch.save(ckpt, path)
    return path


def save_eval_results(tmpdir):
    ap_per_class = evaluate_map()
    results = {"model": TinyDetector().state_dict()}
    results["ap_per_class"] = {name: float(ap) for name, ap in ap_per_class.items()}
    results["mAP"] = np.mean(list(ap_per_class.values()))  # truth: weights_only
    results["mAP50"] = float(np.mean([ap for ap in ap_per_class.values()]))
    results["best_class"] = max(ap_per_class, key=ap_per_class.get)
    results["best_ap"] = max(ap_per_class.values())  # truth: weights_only
    path = os.path.join(tmpdir, "eval.pt")
    torch.save(results, path)
    return path


def save_eval_results_pandas(tmpdir):
    ap_per_class = evaluate_map()
    df = pd.DataFrame({"cls": list(ap_per_class), "ap": [float(v) for v in ap_per_class.values()]})
    df["gt_count"] = [5, 9, 2, 4]
    ckpt = {
        "model": TinyDetector().state_dict(),
        "per_class": df.to_dict("records"),
        "ap_table": df.set_index("cls")["ap"].to_dict(),
        "mAP": df["ap"].mean(),  # truth: weights_only
        "weighted_mAP": float(np.average(df["ap"], weights=df["gt_count"])),
        "num_gt": df["gt_count"].sum(),  # truth: weights_only
        "class_counts": collections.Counter({c: int(n) for c, n in zip(df["cls"], df["gt_count"])}),
    }
    path = os.path.join(tmpdir, "eval_pd.pt")
    torch.save(ckpt, path)
    return path


class DetectionTrainer:
    def __init__(self, cfg: DetectorConfig):
        self.cfg = cfg
        self.model = TinyDetector(cfg.num_classes)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=[8, 11], gamma=0.1)
        self.epoch = 0
        self.best_map = 0.0
        self.work_dir = Path(cfg.work_dir)

    def train_one_epoch(self):
        x = torch.randn(2, 3, 16, 16)
        cls_out, box_out = self.model(x)
        loss = cls_out.mean() + box_out.abs().mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        self.epoch += 1

    def meta(self):
        return {
            "epoch": self.epoch,
            "box_format": BoxFormat(self.cfg.box_format),
            "nms": self.cfg.nms,
            "work_dir": self.work_dir,
        }

    def save_checkpoint(self, filename, meta):
        ckpt = {
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "meta": meta,
        }
        torch.save(ckpt, filename)
        return filename


def save_detector_mmdet_style(tmpdir):
    trainer = DetectionTrainer(DetectorConfig())
    trainer.train_one_epoch()
    meta = trainer.meta()
    meta["box_format"] = meta["box_format"].value
    meta["nms"] = dataclasses.asdict(meta["nms"])
    meta["nms"]["mode"] = meta["nms"]["mode"].name
    meta["work_dir"] = str(meta["work_dir"])
    meta["lr"] = trainer.scheduler.get_last_lr()[0]
    meta["img_norm_cfg"] = dict(
        mean=np.array([123.675, 116.28, 103.53], dtype=np.float32),  # truth: weights_only
        std=[58.395, 57.12, 57.375],
        to_rgb=True,
    )
    return trainer.save_checkpoint(os.path.join(tmpdir, "epoch_1.pth"), meta)


def save_detector_clean_meta(tmpdir):
    trainer = DetectionTrainer(DetectorConfig())
    trainer.train_one_epoch()
    nms = trainer.cfg.nms
    meta = {
        "epoch": trainer.epoch,
        "box_format": BoxFormat.XYXY.value,
        "nms": {"iou_threshold": nms.iou_threshold, "score_threshold": nms.score_threshold,
                "max_detections": nms.max_detections, "mode": int(nms.mode)},
        "work_dir": trainer.work_dir.as_posix(),
        "classes": CLASSES,
    }
    return trainer.save_checkpoint(os.path.join(tmpdir, "epoch_clean.pth"), meta)


def save_detector_raw_meta(tmpdir):
    trainer = DetectionTrainer(DetectorConfig())
    trainer.train_one_epoch()
    ckpt = {"state_dict": trainer.model.state_dict(), "epoch": trainer.epoch}
    ckpt.update(
        box_format=BoxFormat.CXCYWH,  # truth: weights_only
        nms_mode=trainer.cfg.nms.mode,  # truth: weights_only
        iou_threshold=trainer.cfg.nms.iou_threshold,
        work_dir=trainer.work_dir / "latest",  # truth: weights_only
    )
    path = os.path.join(tmpdir, "raw_meta.pth")
    torch.save(ckpt, path)
    return path


def match_detections(scores, ious, iou_thr):
    order = np.argsort(-scores)
    tp = ious[order] >= iou_thr
    return tp, order


def save_pr_curves(tmpdir):
    rng = np.random.default_rng(7)
    scores, ious = rng.random(10), rng.random(10)
    thresholds = np.linspace(0.5, 0.95, 10)
    curves = collections.defaultdict(list)
    for thr in thresholds:
        tp, _ = match_detections(scores, ious, thr)
        curves["precision"].append(float(tp.mean()))
    ckpt = {"model": TinyDetector().state_dict()}
    ckpt["iou_thresholds"] = thresholds.tolist()
    ckpt["curves"] = curves  # truth: weights_only
    ckpt["curves_plain"] = dict(curves)
    ckpt["top_detection"] = match_detections(scores, ious, 0.5)[1][0]  # truth: weights_only
    ckpt["coco_thresholds"] = [t for t in thresholds if t <= 0.75]  # truth: weights_only
    ckpt["coco_thresholds_f"] = [round(float(t), 2) for t in thresholds]
    if curves["precision"]:
        best = int(np.argmax(curves["precision"]))
        ckpt["best_iou_thr"] = thresholds[best]  # truth: weights_only
        ckpt["best_precision"] = curves["precision"][best]
    else:
        ckpt["best_precision"] = None
    path = os.path.join(tmpdir, "pr.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "BoxFormat": lambda: BoxFormat.XYXY,
    "NMSMode": lambda: NMSMode.HARD,
    "DetectionTrainer": lambda: DetectionTrainer(DetectorConfig()),
}
