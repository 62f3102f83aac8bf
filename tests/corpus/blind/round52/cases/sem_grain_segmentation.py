"""Phase segmentation of SEM micrographs (Ni-base superalloy cross-sections).

train_seg.py: argparse flags, numpy preprocessing of the 16-bit detector images, a small U-Net,
per-class IoU from a running confusion matrix, a particle-size analysis on the predicted masks,
and the checkpoint writers used by the sweep and by the analysis notebook.
"""
import argparse
import copy
import hashlib
import math
import os
import time
from collections import OrderedDict, deque
from datetime import datetime, timezone

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage
from torch.optim.swa_utils import AveragedModel

CLASSES = ("matrix", "gamma_prime", "carbide", "pore")
IGNORE_INDEX = 255
DETECTOR_LEVELS = (30000, 42000, 9000)  # mean BSE counts of gamma', carbides, pores


def build_parser():
    p = argparse.ArgumentParser("sem-seg")
    p.add_argument("--data-root", default="/data/sem/in718_batch07")
    p.add_argument("--tile", type=int, default=32)
    p.add_argument("--n-tiles", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--pixel-size-nm", type=float, default=4.88)
    p.add_argument("--base-ch", type=int, default=8)
    p.add_argument("--low-pct", type=float, default=0.5)
    p.add_argument("--high-pct", type=float, default=99.5)
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--out", default="runs/sem_unet")
    return p


def parse_args(argv=None):
    return build_parser().parse_args([] if argv is None else argv)


def synth_micrographs(n, tile, seed):
    """Stand-in for the TIFF reader: bright gamma' and carbide blobs, dark pores, on a grey matrix."""
    rng = np.random.default_rng(seed)
    raw = np.full((n, tile, tile), 21000, dtype=np.uint16)
    masks = np.zeros((n, tile, tile), dtype=np.int64)
    yy, xx = np.mgrid[:tile, :tile]
    for i in range(n):
        for _ in range(rng.integers(3, 7)):
            cy, cx = rng.integers(0, tile, 2)
            r = rng.integers(2, 5)
            blob = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            cls = int(rng.integers(1, len(CLASSES)))
            masks[i][blob] = cls
            raw[i][blob] = DETECTOR_LEVELS[cls - 1]
        raw[i] += rng.integers(0, 1500, (tile, tile)).astype(np.uint16)
    return raw, masks


def normalize(raw, lo_pct, hi_pct):
    lo, hi = np.percentile(raw, [lo_pct, hi_pct])
    x = np.clip((raw.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    return x.astype(np.float32), lo, hi


def class_weights(masks, num_classes):
    counts = np.bincount(masks.ravel(), minlength=num_classes)
    freq = counts / counts.sum()
    w = 1.0 / np.log(1.02 + freq)  # ENet weighting
    return freq, w / w.sum() * num_classes


class DoubleConv(nn.Sequential):
    def __init__(self, cin=1, cout=8):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )


class TinyUNet(nn.Module):
    def __init__(self, in_ch=1, num_classes=len(CLASSES), base=8):
        super().__init__()
        self.enc1 = DoubleConv(in_ch, base)
        self.enc2 = DoubleConv(base, base * 2)
        self.mid = DoubleConv(base * 2, base * 4)
        self.up2 = nn.ConvTranspose2d(base * 4, base * 2, 2, stride=2)
        self.dec2 = DoubleConv(base * 4, base * 2)
        self.up1 = nn.ConvTranspose2d(base * 2, base, 2, stride=2)
        self.dec1 = DoubleConv(base * 2, base)
        self.head = nn.Conv2d(base, num_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


def confusion(pred, target, k=len(CLASSES)):
    keep = target != IGNORE_INDEX
    return np.bincount(k * target[keep] + pred[keep], minlength=k * k).reshape(k, k)


def iou_from_confusion(cm):
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def run_epoch(model, opt, x, y, batch_size, train=True, weight=None):
    model.train(train)
    losses, cm = [], np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i:i + batch_size]).unsqueeze(1)
        yb = torch.from_numpy(y[i:i + batch_size])
        with torch.set_grad_enabled(train):
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, weight=weight, ignore_index=IGNORE_INDEX)
        if train:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        losses.append(loss.item())
        cm += confusion(logits.argmax(1).numpy().ravel(), yb.numpy().ravel())
    return float(np.mean(losses)), cm


def train(args):
    torch.manual_seed(args.seed)
    raw, masks = synth_micrographs(args.n_tiles, args.tile, args.seed)
    x, lo, hi = normalize(raw, args.low_pct, args.high_pct)
    freq, w = class_weights(masks[:8], len(CLASSES))
    model = TinyUNet(base=args.base_ch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    weight = torch.as_tensor(w, dtype=torch.float32)
    history, best_miou, best_epoch = [], -1.0, -1
    for epoch in range(args.epochs):
        tr_loss, _ = run_epoch(model, opt, x[:8], masks[:8], args.batch_size, weight=weight)
        va_loss, cm = run_epoch(model, opt, x[8:], masks[8:], args.batch_size, train=False)
        ious = iou_from_confusion(cm)
        miou = np.nanmean(ious)
        history.append({"epoch": epoch, "train_loss": tr_loss, "val_loss": va_loss,
                        "miou": round(float(miou), 4), "lr": sched.get_last_lr()[0]})
        if miou > best_miou:
            best_miou, best_epoch = miou, epoch
        sched.step()
    state = dict(raw=raw, lo=lo, hi=hi, freq=freq, weights=w, ious=ious, history=history,
                 best_miou=best_miou, best_epoch=best_epoch)
    return model, opt, sched, state


def particle_sizes(masks, cls_id, pixel_size_nm):
    """Connected components of one phase; equivalent circle diameters in nm."""
    lab, n = ndimage.label(masks == cls_id)
    if n == 0:
        return lab, 0, np.zeros(0)
    areas = ndimage.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
    return lab, n, 2.0 * np.sqrt(areas / np.pi) * pixel_size_nm


def file_digest(arr):
    return hashlib.sha1(arr.tobytes()).hexdigest()[:12]


class TileSampler:
    """Random crops out of full-frame micrographs; resumable mid-epoch."""

    def __init__(self, frame=(256, 256), tile=32, seed=0):
        self.frame = tuple(frame)
        self.tile = tile
        self.legacy = np.random.RandomState(seed)  # old augmentation code still draws from this
        self.rng = np.random.default_rng(seed)
        self.cursor = 0
        self.skip_labels = {IGNORE_INDEX}

    def next_window(self):
        y = int(self.legacy.randint(0, self.frame[0] - self.tile))
        x = int(self.rng.integers(0, self.frame[1] - self.tile))
        self.cursor += 1
        return y, x

    def state(self):
        return {"cursor": self.cursor, "pcg64": self.rng.bit_generator.state, "frame": list(self.frame)}


# ----------------------------------------------------------------------------- checkpoints


def save_unet_checkpoint(tmpdir):
    args = parse_args(["--epochs", "2"])
    model, opt, sched, st = train(args)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": args.epochs,
        "args": vars(args),
        "classes": list(CLASSES),
        "intensity_window": (st["lo"], st["hi"]),  # truth: weights_only
        "raw_dtype": st["raw"].dtype,  # truth: weights_only
        "raw_bits": st["raw"].dtype.itemsize * 8,
        "class_weights": torch.as_tensor(st["weights"], dtype=torch.float32),
        "pixel_freq": st["freq"].round(5).tolist(),
        "best_miou": st["best_miou"],  # truth: weights_only
        "best_epoch": st["best_epoch"],
        "history": st["history"],
        "lr": sched.get_last_lr()[0],
    }
    path = os.path.join(tmpdir, "unet_last.pt")
    torch.save(ckpt, path)
    return path


def save_best_by_miou(tmpdir):
    args = parse_args(["--epochs", "3", "--base-ch", "4"])
    torch.manual_seed(args.seed)
    raw, masks = synth_micrographs(10, args.tile, args.seed + 1)
    x, _, _ = normalize(raw, args.low_pct, args.high_pct)
    model = TinyUNet(base=args.base_ch)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    best = {"miou": -math.inf, "epoch": -1, "cm": None}
    per_class = OrderedDict((c, []) for c in CLASSES)
    recent = deque(maxlen=3)
    for epoch in range(args.epochs):
        loss, cm = run_epoch(model, opt, x, masks, args.batch_size)
        ious = iou_from_confusion(cm)
        for c, v in zip(CLASSES, ious):
            per_class[c].append(None if math.isnan(v) else round(float(v), 4))
        recent.append(loss)
        miou = float(np.nanmean(ious))
        if miou > best["miou"]:
            best = {"miou": miou, "epoch": epoch, "cm": cm.copy()}
    cm = best["cm"]
    path = os.path.join(tmpdir, "unet_best.pth")
    torch.save({
        "state_dict": model.state_dict(),
        "best_miou": best["miou"],
        "best_epoch": best["epoch"],
        "confusion": cm,  # truth: weights_only
        "confusion_rows": cm.tolist(),
        "per_class_iou": per_class,
        "recent_losses": recent,  # truth: weights_only
        "smoothed_loss": sum(recent) / len(recent),
        "pixel_accuracy": np.trace(cm) / cm.sum(),  # truth: weights_only
        "support": [int(s) for s in cm.sum(1)],
        "momentum": opt.param_groups[0]["momentum"],
    }, path)
    return path


def save_grain_statistics(tmpdir):
    """Particle statistics on the labelled masks, stored next to the model for the notebook."""
    args = parse_args([])
    raw, masks = synth_micrographs(4, args.tile, 3)
    phases = {}
    for cid, name in enumerate(CLASSES[1:], start=1):
        _, n, diam = particle_sizes(masks, cid, args.pixel_size_nm)
        phases[name] = {
            "count": n,
            "d50_nm": float(np.median(diam)) if n else None,
            "area_fraction": float((masks == cid).mean()),
        }
    _, n_gp, gp_diam = particle_sizes(masks, CLASSES.index("gamma_prime"), args.pixel_size_nm)
    hist, edges = np.histogram(gp_diam, bins=8)
    pore_lab, n_pores, _ = particle_sizes(masks, CLASSES.index("pore"), args.pixel_size_nm)
    boxes = ndimage.find_objects(pore_lab)
    payload = {
        "phase_stats": phases,
        "pore_fraction": (masks == CLASSES.index("pore")).mean(),  # truth: weights_only
        "gp_count": n_gp,
        "gp_size_hist": hist.tolist(),
        "gp_size_edges_nm": edges,  # truth: weights_only
        "first_pore_bbox": boxes[0] if boxes else None,  # truth: weights_only
        "pixel_size_nm": args.pixel_size_nm,
        "n_images": len(masks),
        "frame_digest": file_digest(raw),
        "analysed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "scale_bar_px": math.ceil(1000 / args.pixel_size_nm),
    }
    path = os.path.join(tmpdir, "grain_stats.pt")
    torch.save(payload, path)
    return path


def save_sampler_resume(tmpdir):
    args = parse_args(["--epochs", "1", "--base-ch", "4"])
    sampler = TileSampler(tile=args.tile, seed=args.seed)
    windows = [sampler.next_window() for _ in range(5)]
    model = TinyUNet(base=args.base_ch)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    t0 = time.perf_counter()
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    ckpt["sampler"] = sampler.state()
    ckpt["sampler"]["legacy_state"] = sampler.legacy.get_state()  # truth: weights_only
    ckpt["sampler"]["skip_labels"] = sorted(sampler.skip_labels)
    ckpt["last_windows"] = windows
    ckpt["torch_rng"] = torch.get_rng_state()
    ckpt["wall_s"] = time.perf_counter() - t0
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(ckpt, path)
    return path


def save_swa_weights(tmpdir):
    """Stochastic weight averaging over the last epochs; the averaged model goes to the evaluator."""
    args = parse_args(["--epochs", "2", "--base-ch", "4"])
    model, opt, _, st = train(args)
    swa = AveragedModel(model)
    swa.update_parameters(model)
    path = os.path.join(tmpdir, "unet_swa.pt")
    torch.save(swa, path)  # truth: weights_only
    return path


def save_inference_bundle(tmpdir):
    """What the microscope PC loads: weights plus everything needed to normalise new frames."""
    args = parse_args(["--epochs", "1", "--base-ch", "4"])
    model, _, _, st = train(args)
    export = copy.deepcopy(model).eval()
    meta = {
        "classes": list(CLASSES),
        "window": [float(st["lo"]), float(st["hi"])],
        "raw_dtype": str(st["raw"].dtype),
        "in_channels": export.enc1[0].in_channels,
        "base_channels": args.base_ch,
        "val_iou": {c: (None if math.isnan(v) else float(v)) for c, v in zip(CLASSES, st["ious"])},
        "best_miou": float(st["best_miou"]),
        "tile": args.tile,
        "torch": str(torch.__version__),
        "dtype": torch.float32,
        "input_size": torch.Size([1, 1, args.tile, args.tile]),
    }
    path = os.path.join(tmpdir, "sem_unet_deploy.pt")
    torch.save((export.state_dict(), meta), path)
    return path


FACTORIES = {
    "TileSampler": lambda: TileSampler(frame=(512, 384), tile=48, seed=3),
}


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    print(save_unet_checkpoint(args.out))


if __name__ == "__main__":
    main()
