"""Land-cover segmentation on 4-band (B, G, R, NIR) Sentinel-2 tiles.

Tiles come with a pandas metadata table (tile id, grid position, cloud cover, acquisition
time, CRS and the GDAL geotransform pieces). A tiny U-Net-ish model is trained; the save_*
functions are how the pipeline writes normalisation stats, best-IoU checkpoints and reports.
"""
import collections
import datetime
import enum
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix, jaccard_score, f1_score
from sklearn.utils.class_weight import compute_class_weight

BANDS = ("B02", "B03", "B04", "B08")
CLASS_NAMES = ("water", "forest", "cropland", "urban", "bare")
N_CLASSES = len(CLASS_NAMES)
IGNORE = 255


class Split(enum.Enum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


def make_tiles(n=12, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(1200.0, 300.0, size=(n, len(BANDS), size, size)).astype(np.float32)
    masks = rng.integers(0, N_CLASSES, size=(n, size, size))
    masks[:, :2, :2] = IGNORE  # nodata corner
    meta = pd.DataFrame({
        "tile_id": np.arange(n),
        "row": np.arange(n) // 4,
        "col": np.arange(n) % 4,
        "cloud_cover": rng.uniform(0, 0.4, n).round(3),
        "acquired": pd.date_range("2023-05-01", periods=n, freq="D"),
        "crs": ["EPSG:32633"] * n,
        "origin_x": 500000.0 + (np.arange(n) % 4) * size * 10.0,
        "origin_y": 4600000.0 - (np.arange(n) // 4) * size * 10.0,
        "res": [10.0] * n,
    })
    return images, masks, meta


def band_statistics(images):
    """Per-band mean and std over all pixels: two numpy arrays."""
    return images.mean(axis=(0, 2, 3)), images.std(axis=(0, 2, 3))


def class_frequencies(masks):
    valid = masks[masks != IGNORE]
    return np.bincount(valid, minlength=N_CLASSES) / valid.size


def geotransform_of(row):
    """GDAL order: (origin_x, pixel_w, 0, origin_y, 0, -pixel_h)."""
    return (row["origin_x"], row["res"], 0.0, row["origin_y"], 0.0, -row["res"])


def iou_per_class(pred, target):
    keep = target != IGNORE
    cm = confusion_matrix(target[keep], pred[keep], labels=list(range(N_CLASSES)))
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union, cm


class TinyUNet(nn.Module):
    def __init__(self, in_ch=len(BANDS), n_classes=N_CLASSES, width=8):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(width, width * 2, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(width * 2, width, 2, stride=2)
        self.head = nn.Conv2d(width * 2, n_classes, 1)

    def forward(self, x):
        e = self.enc(x)
        d = self.up(self.down(e))
        return self.head(torch.cat([e, d], 1))


def normalise(images, mean, std):
    return (images - mean[None, :, None, None]) / std[None, :, None, None]


class EarlyStopper:
    def __init__(self, patience=3, min_delta=1e-4):
        self.patience = patience
        self.min_delta = min_delta
        self.best = -np.inf
        self.best_epoch = None
        self.counter = 0

    def step(self, score, epoch):
        if score > self.best + self.min_delta:
            self.best, self.best_epoch, self.counter = score, epoch, 0
            return False
        self.counter += 1
        return self.counter >= self.patience

    def state(self):
        return {"best": float(self.best), "best_epoch": self.best_epoch, "counter": self.counter}


class SegEvaluator:
    def __init__(self, ignore_index=IGNORE):
        self.ignore_index = ignore_index

    @torch.no_grad()
    def predict(self, model, x):
        model.eval()
        return model(torch.from_numpy(x)).argmax(1).numpy()

    def evaluate(self, model, x, y):
        pred = self.predict(model, x)
        iou, cm = iou_per_class(pred, y)
        keep = y != self.ignore_index
        return {
            "miou": float(np.nanmean(iou)),
            "pixel_acc": float((pred[keep] == y[keep]).mean()),
            "per_class_iou": {n: round(v, 4) for n, v in zip(CLASS_NAMES, np.nan_to_num(iou).tolist())},
            "macro_f1": f1_score(y[keep], pred[keep], average="macro"),
        }


class SegTrainer:
    def __init__(self, lr=1e-2, epochs=2):
        self.model = TinyUNet()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=1, gamma=0.5)
        self.epochs = epochs
        self.evaluator = SegEvaluator()
        self.stopper = EarlyStopper(patience=2)
        self.epoch = 0
        self.last_iou = None

    def fit(self, x, y, xv, yv, class_weights=None):
        w = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        for epoch in range(self.epochs):
            self.model.train()
            logits = self.model(torch.from_numpy(x))
            loss = F.cross_entropy(logits, torch.from_numpy(y), weight=w, ignore_index=IGNORE)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.sched.step()
            pred = self.evaluator.predict(self.model, xv)
            iou, _ = iou_per_class(pred, yv)
            self.last_iou = iou
            self.epoch = epoch
            if self.stopper.step(np.nanmean(iou), epoch):
                break
        return self


# --------------------------------------------------------------------------- normalisation stats, line by line

def save_band_norm_ckpt(tmpdir):
    images, masks, meta = make_tiles()
    mean, std = band_statistics(images)
    class_freq = class_frequencies(masks)
    model = TinyUNet()
    ckpt = {"model": model.state_dict()}
    ckpt["band_mean"] = mean  # truth: weights_only
    ckpt["band_std"] = torch.from_numpy(std)
    ckpt["band_names"] = list(BANDS)
    ckpt["class_freq"] = class_freq.tolist()
    ckpt["class_weights"] = torch.tensor(1.0 / (class_freq + 1e-6), dtype=torch.float32)
    ckpt["tile_meta"] = meta  # truth: weights_only
    ckpt["tile_meta_records"] = meta.drop(columns=["acquired"]).to_dict("records")
    ckpt["n_tiles"] = len(meta)
    ckpt["mean_cloud"] = meta["cloud_cover"].mean()  # truth: weights_only
    ckpt["max_cloud"] = float(meta["cloud_cover"].max())
    ckpt["grid_shape"] = (int(meta["row"].max()) + 1, int(meta["col"].max()) + 1)
    path = os.path.join(tmpdir, "norm_stats.pt")
    torch.save(ckpt, path)
    return path


# --------------------------------------------------------------------------- best-IoU checkpoint

def save_best_iou_ckpt(tmpdir):
    images, masks, meta = make_tiles(seed=1)
    mean, std = band_statistics(images[:8])
    x = normalise(images, mean, std).astype(np.float32)
    trainer = SegTrainer().fit(x[:8], masks[:8], x[8:], masks[8:])
    metrics = trainer.evaluator.evaluate(trainer.model, x[8:], masks[8:])
    first = meta.iloc[0]
    state = {
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "scheduler": trainer.sched.state_dict(),
        "best_miou": trainer.stopper.best,  # truth: weights_only
        "stopper": trainer.stopper.state(),
        "metrics": metrics,
        "last_iou": dict(zip(CLASS_NAMES, np.nan_to_num(trainer.last_iou).tolist())),
        "class_names": CLASS_NAMES,
        "ignore_index": IGNORE,
        "geotransform": geotransform_of(first),  # truth: weights_only
        "crs": first["crs"],
        "norm": {"mean": mean.tolist(), "std": [float(s) for s in std]},
    }
    path = os.path.join(tmpdir, f"best_miou_e{trainer.epoch}.pt")
    torch.save(state, path)
    return path


# --------------------------------------------------------------------------- tile inference state

def save_tile_inference_state(tmpdir):
    images, masks, meta = make_tiles(seed=2)
    out_dir = Path(tmpdir) / "predictions"
    out_dir.mkdir(exist_ok=True)
    gts = {}
    for r in meta.itertuples():
        gts[int(r.tile_id)] = tuple(float(v) for v in (r.origin_x, r.res, 0.0, r.origin_y, 0.0, -r.res))
    xs = [gt[0] for gt in gts.values()]
    ys = [gt[3] for gt in gts.values()]
    bbox = (min(xs), min(ys) - 16 * 10.0, max(xs) + 16 * 10.0, max(ys))
    ckpt = dict(
        model=TinyUNet().state_dict(),
        geotransforms=gts,
        bbox=bbox,
        crs="EPSG:32633",
        nodata=np.nan,
        input_dtype=images.dtype,  # truth: weights_only
        input_dtype_name=str(images.dtype),
        acquired_last=meta["acquired"].max(),  # truth: weights_only
        acquired_last_iso=meta["acquired"].max().isoformat(),
        split_name=Split.TEST.value,
        out_dir=out_dir,  # truth: weights_only
        out_dir_str=str(out_dir),
        tile_size=images.shape[-1],
        tile_ids=meta["tile_id"].tolist(),
    )
    path = os.path.join(tmpdir, "inference_state.pt")
    torch.save(ckpt, path)
    return path


# --------------------------------------------------------------------------- class balance report

def save_class_balance_report(tmpdir):
    _, masks, _ = make_tiles(seed=3)
    rng = np.random.default_rng(0)
    pred = np.where(rng.random(masks.shape) < 0.7, masks, rng.integers(0, N_CLASSES, masks.shape))
    keep = masks != IGNORE
    y, p = masks[keep], pred[keep]
    report = {}
    report["pixel_counts"] = collections.Counter(y.tolist())
    report["pixel_counts_raw"] = collections.Counter(y)  # truth: weights_only
    report["valid_fraction"] = float(keep.mean())
    report["n_valid"] = int(keep.sum())
    report["balanced_weights"] = compute_class_weight("balanced", classes=np.arange(N_CLASSES), y=y)  # truth: weights_only
    report["balanced_weights_t"] = torch.tensor(
        compute_class_weight("balanced", classes=np.arange(N_CLASSES), y=y), dtype=torch.float32
    )
    report["miou_sklearn"] = jaccard_score(y, p, average="macro")
    report["iou_sklearn"] = jaccard_score(y, p, average=None)  # truth: weights_only
    report["f1_weighted"] = f1_score(y, p, average="weighted")
    report["rarest_class"] = CLASS_NAMES[int(np.argmin(np.bincount(y, minlength=N_CLASSES)))]
    report["per_class_pixels"] = {name: int((y == i).sum()) for i, name in enumerate(CLASS_NAMES)}
    path = os.path.join(tmpdir, "class_balance.pt")
    torch.save(report, path)
    return path


# --------------------------------------------------------------------------- callback that dumps the stopper

def save_stopper_snapshot(tmpdir):
    stopper = EarlyStopper(patience=5)
    for epoch, score in enumerate([0.31, 0.35, 0.34, 0.36]):
        stopper.step(score, epoch)
    path = os.path.join(tmpdir, "stopper.pt")
    torch.save(stopper, path)  # truth: weights_only
    return path


# --------------------------------------------------------------------------- export for the tiling service (clean)

def save_serving_export(tmpdir):
    images, masks, meta = make_tiles(seed=4)
    mean, std = band_statistics(images)
    freq = class_frequencies(masks)
    model = TinyUNet()
    per_band = meta.describe().loc[["mean", "std"], ["cloud_cover"]].to_dict()
    ckpt = {
        "model": model.state_dict(),
        "bands": list(BANDS),
        "band_mean": mean.tolist(),
        "band_std": torch.as_tensor(std),
        "class_names": list(CLASS_NAMES),
        "class_freq": {n: float(f) for n, f in zip(CLASS_NAMES, freq)},
        "dominant_class": CLASS_NAMES[int(freq.argmax())],
        "cloud_stats": per_band,
        "n_clear_tiles": int((meta["cloud_cover"] < 0.2).sum()),
        "clear_tile_ids": meta.loc[meta["cloud_cover"] < 0.2, "tile_id"].tolist(),
        "crs": str(meta["crs"].iloc[0]),
        "res_m": float(meta["res"].iloc[0]),
        "split": Split.TEST.value,
        "exported": datetime.date.today().isoformat(),
        "n_params": sum(p.numel() for p in model.parameters()),
        "input_shape": torch.Size([1, len(BANDS), 16, 16]),
        "dtype": torch.float32,
        "ignore_index": IGNORE,
    }
    path = os.path.join(tmpdir, "serving.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "Split": lambda: Split.VAL,
}
