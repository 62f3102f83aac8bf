"""Next-day wildfire spread forecasting from stacked satellite rasters.

Each sample is a square patch of 12 co-registered bands (topography, weather reanalysis, drought
and fuel indices, the previous-day active-fire mask); the target is the next-day fire mask, with
-1 where the VIIRS/MODIS product had no valid observation (clouds, missing swath).

    python wildfire_spread.py --epochs 20 --crop 32 --out-dir runs/firecast
"""
import argparse
import copy
import datetime as dt
import math
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage

BANDS = ("elevation", "th", "vs", "tmmn", "tmmx", "sph", "pr", "pdsi", "NDVI", "population", "erc",
         "PrevFireMask")
FIRE_BAND = BANDS.index("PrevFireMask")
WIND_DIR, WIND_SPEED = BANDS.index("th"), BANDS.index("vs")
NODATA = -1.0
CRS = "EPSG:4326"
PIXEL_DEG = 1.0 / 1112.0  # ~100 m at the equator


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="train a next-day fire spread segmenter")
    p.add_argument("--data-dir", type=Path, default=Path("data/ndws"))
    p.add_argument("--out-dir", type=Path, default=Path("runs/firecast"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--crop", type=int, default=16)
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--season", default="2020-06-01:2020-10-31")
    p.add_argument("--pos-weight", type=float, default=None, help="BCE weight of fire pixels")
    p.add_argument("--seed", type=int, default=13)
    return p.parse_args([] if argv is None else argv)


def synthetic_tiles(n, size, seed):
    """Stand-in for the TFRecord reader: smooth random fields plus a few growing fire blobs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(BANDS), size, size)).astype("float32")
    x = ndimage.gaussian_filter(x, sigma=(0, 0, 2, 2))
    prev = np.zeros((n, size, size), "float32")
    for i in range(n):
        cy, cx = rng.integers(2, size - 2, size=2)
        prev[i, cy - 1:cy + 2, cx - 1:cx + 2] = 1.0
    x[:, FIRE_BAND] = prev
    nxt = ndimage.binary_dilation(prev > 0, structure=np.ones((1, 3, 3))).astype("int8")
    cloud = rng.random((n, size, size)) < 0.03
    nxt[cloud] = -1
    return x, nxt


def band_statistics(x):
    """Per-band mean / std over valid pixels (the fire mask band is left as is)."""
    valid = np.where(x == NODATA, np.nan, x)
    mean = np.nanmean(valid, axis=(0, 2, 3))
    std = np.nanstd(valid, axis=(0, 2, 3))
    mean[FIRE_BAND], std[FIRE_BAND] = 0.0, 1.0
    return mean, std


def normalise(x, mean, std):
    return (x - mean[None, :, None, None]) / np.maximum(std[None, :, None, None], 1e-6)


def class_balance(y):
    valid = y[y >= 0]
    pos = np.count_nonzero(valid == 1)
    neg = np.count_nonzero(valid == 0)
    return neg, pos


class FireUNet(nn.Module):
    def __init__(self, in_ch=len(BANDS), width=8):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(in_ch, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU())
        self.dec = nn.Sequential(nn.Conv2d(3 * width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        up = F.interpolate(e2, size=e1.shape[-2:], mode="nearest")
        return self.head(self.dec(torch.cat([e1, up], 1))).squeeze(1)


def masked_bce(logits, target, pos_weight):
    keep = target >= 0
    w = torch.as_tensor(pos_weight, dtype=logits.dtype)
    return F.binary_cross_entropy_with_logits(logits[keep], target[keep].float(), pos_weight=w)


def run_epoch(model, opt, x, y, pos_weight, batch_size):
    model.train()
    losses = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i:i + batch_size])
        yb = torch.from_numpy(y[i:i + batch_size])
        loss = masked_bce(model(xb), yb, pos_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def predict(model, x):
    model.eval()
    return torch.sigmoid(model(torch.from_numpy(x))).numpy()


def confusion(prob, y, thr=0.5):
    keep = y >= 0
    pred, true = prob[keep] > thr, y[keep] == 1
    tp = np.sum(pred & true)
    fp = np.sum(pred & ~true)
    fn = np.sum(~pred & true)
    return tp, fp, fn


def evaluate(model, x, y):
    """(precision, recall, iou) of the fire class at 0.5."""
    tp, fp, fn = confusion(predict(model, x), y)
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    iou = tp / max(tp + fp + fn, 1)
    return precision, recall, iou


def setup(args):
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    x, y = synthetic_tiles(24, args.crop, args.seed)
    mean, std = band_statistics(x)
    x = normalise(x, mean, std).astype("float32")
    neg, pos = class_balance(y)
    pos_weight = args.pos_weight or neg / pos
    model = FireUNet(width=args.width)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    return model, opt, (x[:16], y[:16]), (x[16:], y[16:]), (mean, std), pos_weight


def save_training_checkpoint(tmpdir):
    args = parse_args(["--epochs", "1"])
    model, opt, (xt, yt), _, (mean, std), pos_weight = setup(args)
    losses = run_epoch(model, opt, xt, yt, pos_weight, args.batch_size)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    ckpt = {
        "epoch": args.epochs,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "args": args,  # truth: weights_only
        "config": config,
        "bands": list(BANDS),
        "band_mean": mean.tolist(),
        "band_std": std,  # truth: weights_only
        "pos_weight": pos_weight,  # truth: weights_only
        "train_loss": float(np.mean(losses)),
        "last_losses": losses[-3:],
        "crs": CRS,
        "nodata": NODATA,
    }
    path = Path(tmpdir) / "firecast_last.pt"
    torch.save(ckpt, path)
    return str(path)


def save_best_by_iou(tmpdir):
    args = parse_args(["--epochs", "3", "--pos-weight", "4.0"])
    model, opt, (xt, yt), (xv, yv), _, pos_weight = setup(args)
    best_iou, best_epoch, best_state = -1.0, -1, None
    history = []
    for epoch in range(args.epochs):
        run_epoch(model, opt, xt, yt, pos_weight, args.batch_size)
        precision, recall, iou = evaluate(model, xv, yv)
        history.append({"epoch": epoch, "iou": round(float(iou), 4), "recall": float(recall)})
        if iou >= best_iou:
            best_iou, best_epoch = iou, epoch
            best_state = copy.deepcopy(model.state_dict())
    prob = predict(model, xv)
    thresholds = np.linspace(0.1, 0.9, 9)
    ious = []
    for thr in thresholds:
        tp, fp, fn = confusion(prob, yv, thr)
        ious.append(tp / max(tp + fp + fn, 1))
    out = Path(tmpdir) / "firecast_best.pt"
    torch.save({
        "state_dict": best_state,
        "best_epoch": best_epoch,
        "best_iou": best_iou,  # truth: weights_only
        "pos_weight": pos_weight,
        "val_history": history,
        "threshold": float(thresholds[int(np.argmax(ious))]),
        "final_iou": round(iou, 4),  # truth: weights_only
        "threshold_grid": thresholds.tolist(),
        "iou_at_threshold": [float(v) for v in ious],
    }, out)
    return str(out)


def ignition_summary(mask):
    """Connected burning regions of one day's fire mask."""
    labels, n_regions = ndimage.label(mask > 0)
    sizes = np.bincount(labels.ravel())[1:]
    points = list(zip(*np.nonzero(mask > 0)))
    return labels, n_regions, sizes, points


def season_window(spec):
    start, end = (dt.date.fromisoformat(s) for s in spec.split(":"))
    return start, end


def save_season_export(tmpdir):
    args = parse_args(["--season", "2021-07-01:2021-09-30"])
    x, y = synthetic_tiles(4, args.crop, args.seed)
    start, end = season_window(args.season)
    labels, n_regions, sizes, points = ignition_summary(x[0, FIRE_BAND])
    wind_u = float(np.mean(x[0, WIND_SPEED] * np.cos(np.deg2rad(x[0, WIND_DIR]))))
    wind_v = float(np.mean(x[0, WIND_SPEED] * np.sin(np.deg2rad(x[0, WIND_DIR]))))
    export = dict(
        tile_id="ndws_0000",
        season_start=start,  # truth: weights_only
        season_end=end.isoformat(),
        season_days=(end - start).days,
        crs=CRS,
        transform=(PIXEL_DEG, 0.0, -121.5, 0.0, -PIXEL_DEG, 39.8),
        shape=tuple(x.shape[-2:]),
        n_regions=n_regions,
        largest_region_px=sizes.max(),  # truth: weights_only
        ignition_points=points,  # truth: weights_only
        ignition_points_px=np.argwhere(x[0, FIRE_BAND] > 0).tolist(),
        burned_fraction=float((y[0] == 1).mean()),
        wind_dir_deg=math.degrees(math.atan2(wind_v, wind_u)) % 360.0,
        cloud_fraction=float((y == -1).sum()) / y.size,
    )
    path = Path(tmpdir) / "season_export.pt"
    torch.save(export, path)
    return str(path)


def save_whole_model(tmpdir):
    args = parse_args()
    model = FireUNet(width=args.width)
    model.eval()
    path = Path(tmpdir) / "firecast_model.pt"
    torch.save(model, path)  # truth: weights_only
    return str(path)


def calibrate(prob, y, bins=10):
    """Reliability curve of the fire class and a linear recalibration fitted on it."""
    keep = y >= 0
    p, t = prob[keep], (y[keep] == 1).astype("float64")
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    conf = [float(p[idx == b].mean()) if np.any(idx == b) else 0.0 for b in range(bins)]
    acc = [float(t[idx == b].mean()) if np.any(idx == b) else 0.0 for b in range(bins)]
    slope_intercept = np.polyfit(conf, acc, deg=1)
    return conf, acc, slope_intercept


def save_inference_bundle(tmpdir):
    args = parse_args()
    model, opt, (xt, yt), (xv, yv), (mean, std), pos_weight = setup(args)
    run_epoch(model, opt, xt, yt, pos_weight, args.batch_size)
    conf, acc, coef = calibrate(predict(model, xv), yv)
    bundle = {"weights": model.state_dict()}
    bundle["normaliser"] = {
        "mean": torch.from_numpy(mean.astype("float32")),
        "std": torch.from_numpy(std.astype("float32")),
        "band_index": {name: i for i, name in enumerate(BANDS)},
    }
    bundle["input"] = {"dtype": torch.float32, "shape": torch.Size([len(BANDS), args.crop, args.crop])}
    bundle["calibration"] = {"confidence": conf, "accuracy": acc}
    bundle["calibration"]["coef"] = coef  # truth: weights_only
    bundle["created_unix"] = time.time()
    bundle["created_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
    bundle["timezone"] = dt.timezone.utc  # truth: weights_only
    bundle["rng"] = {"torch": torch.get_rng_state(), "python_seed": args.seed}
    bundle["rng"]["numpy"] = np.random.get_state()  # truth: weights_only
    path = Path(tmpdir) / "firecast_bundle.pt"
    torch.save(bundle, path)
    return str(path)


class ResumeState:
    """What the training loop keeps between epochs (the script saves it every N steps)."""

    def __init__(self, window=20, patience=5):
        self.step = 0
        self.loss_window = deque(maxlen=window)
        self.val_losses = []
        self.wait = 0
        self.patience = patience

    def observe(self, losses):
        self.step += len(losses)
        self.loss_window.extend(losses)

    def on_val(self, val_loss):
        if self.val_losses and val_loss >= min(self.val_losses):
            self.wait += 1
        else:
            self.wait = 0
        self.val_losses.append(val_loss)
        return self.wait >= self.patience


def save_resume_state(tmpdir):
    args = parse_args(["--epochs", "2"])
    model, opt, (xt, yt), (xv, yv), _, pos_weight = setup(args)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * 2 + 2)
    state = ResumeState()
    for _ in range(args.epochs):
        state.observe(run_epoch(model, opt, xt, yt, pos_weight, args.batch_size))
        sched.step()
        with torch.no_grad():
            val = masked_bce(model(torch.from_numpy(xv)), torch.from_numpy(yv), pos_weight).item()
        state.on_val(val)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    ckpt.update(
        step=state.step,
        lr=sched.get_last_lr()[0],
        grad_norm=grad_norm,
        loss_window=state.loss_window,  # truth: weights_only
        smoothed_loss=sum(state.loss_window) / len(state.loss_window),
        early_stop={"wait": state.wait, "patience": state.patience, "best": min(state.val_losses)},
        data_dir=str(args.data_dir),
    )
    path = args.out_dir.name + "_resume.pt"
    torch.save(ckpt, Path(tmpdir) / path)
    return str(Path(tmpdir) / path)


def main():
    args = parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for fn in (save_training_checkpoint, save_best_by_iou, save_inference_bundle):
        print(fn.__name__, fn(str(args.out_dir)))


if __name__ == "__main__":
    main()
