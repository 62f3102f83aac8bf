"""Ship detection in Sentinel-1 style SAR chips: CA-CFAR proposals + a small
centre-heatmap CNN (CenterNet-like), trained from an argparse script.

Layout follows the usual `train.py` of SSDD / HRSID baselines: parse args,
preprocess intensity chips to dB, fit anchors, train, evaluate AP50, write
`last.pt` / `best.pt` next to the run directory.
"""
import argparse
import datetime
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.cluster import KMeans


# ----------------------------------------------------------------- preprocessing

def to_db(intensity, eps=1e-6):
    return 10.0 * np.log10(np.maximum(intensity, eps))


def box_filter(img, k):
    pad = k // 2
    p = np.pad(img, pad, mode="reflect")
    c = p.cumsum(0).cumsum(1)
    c = np.pad(c, ((1, 0), (1, 0)))
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / float(k * k)


def lee_filter(img, k=5):
    """Classic Lee speckle filter on an intensity image."""
    mean = box_filter(img, k)
    sq = box_filter(img ** 2, k)
    var = np.maximum(sq - mean ** 2, 0.0)
    noise = var.mean()
    w = var / (var + noise + 1e-12)
    return mean + w * (img - mean)


def ca_cfar(img, guard=2, train=6, pfa=1e-3):
    """Cell-averaging CFAR. Returns (detection mask, threshold map, alpha)."""
    n_train = (2 * (guard + train) + 1) ** 2 - (2 * guard + 1) ** 2
    alpha = n_train * (pfa ** (-1.0 / n_train) - 1.0)
    outer = box_filter(img, 2 * (guard + train) + 1) * (2 * (guard + train) + 1) ** 2
    inner = box_filter(img, 2 * guard + 1) * (2 * guard + 1) ** 2
    noise = (outer - inner) / n_train
    thr = alpha * noise
    return img > thr, thr, alpha


def make_synthetic_chips(n, size=64, seed=0):
    """Gamma speckle clutter with a few bright elongated ships per chip."""
    rng = np.random.default_rng(seed)
    chips, boxes = [], []
    for _ in range(n):
        img = rng.gamma(shape=4.0, scale=0.25, size=(size, size))
        bxs = []
        for _ in range(rng.integers(1, 4)):
            h, w = rng.integers(3, 8), rng.integers(8, 18)
            if rng.random() < 0.5:
                h, w = w, h
            y0, x0 = rng.integers(0, size - h), rng.integers(0, size - w)
            img[y0:y0 + h, x0:x0 + w] += rng.uniform(6.0, 12.0)
            bxs.append([x0, y0, x0 + w, y0 + h])
        chips.append(img.astype(np.float32))
        boxes.append(np.asarray(bxs, dtype=np.float32))
    return np.stack(chips), boxes


def heatmap_targets(boxes, size, stride=4):
    out = size // stride
    hm = np.zeros((len(boxes), 1, out, out), dtype=np.float32)
    yy, xx = np.mgrid[0:out, 0:out]
    for i, bxs in enumerate(boxes):
        for x0, y0, x1, y1 in bxs / stride:
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            sigma = max((x1 - x0 + y1 - y0) / 6.0, 0.8)
            hm[i, 0] = np.maximum(hm[i, 0], np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2)))
    return hm


# ----------------------------------------------------------------- model

class ShipNet(nn.Module):
    def __init__(self, width=16, in_ch=1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(width, width * 2, 3, 2, 1), nn.BatchNorm2d(width * 2), nn.ReLU(),
                                  nn.Conv2d(width * 2, width * 2, 3, 1, 1), nn.ReLU())
        self.heat = nn.Conv2d(width * 2, 1, 1)
        self.wh = nn.Conv2d(width * 2, 2, 1)

    def forward(self, x):
        f = self.body(self.stem(x))
        return self.heat(f), self.wh(f)


def focal_heatmap_loss(logits, target, alpha=2.0, beta=4.0):
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos = torch.where(target > 0.95, torch.ones_like(target), pos)
    neg = 1 - pos
    pos_loss = -((1 - p) ** alpha) * torch.log(p) * pos
    neg_loss = -((1 - target) ** beta) * (p ** alpha) * torch.log(1 - p) * neg
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def parse_args(argv=None):
    ap = argparse.ArgumentParser("train_sar_ships")
    ap.add_argument("--data-root", type=Path, default=Path("data/ssdd"))
    ap.add_argument("--out", type=Path, default=Path("runs/sar"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--chip", type=int, default=64)
    ap.add_argument("--n-chips", type=int, default=12)
    ap.add_argument("--pfa", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--polarization", choices=["VV", "VH"], default="VV")
    return ap.parse_args(argv)


def setup(argv):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    chips, boxes = make_synthetic_chips(args.n_chips, args.chip, args.seed)
    db = to_db(np.stack([lee_filter(c) for c in chips]))
    x = torch.from_numpy(((db - db.mean()) / db.std()).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(heatmap_targets(boxes, args.chip))
    model = ShipNet(args.width)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    return args, model, opt, x, y, boxes


def train_one_epoch(model, opt, x, y, bs=4):
    model.train()
    total, n = 0.0, 0
    for i in range(0, len(x), bs):
        heat, _ = model(x[i:i + bs])
        loss = focal_heatmap_loss(heat, y[i:i + bs])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(x[i:i + bs])
        n += len(x[i:i + bs])
    return total / n


def average_precision(scores, tp, n_gt):
    order = np.argsort(-scores)
    tp = tp[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
    rec = ctp / max(n_gt, 1)
    prec = ctp / np.maximum(ctp + cfp, 1e-9)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1])


@torch.no_grad()
def evaluate(model, x, boxes, stride=4, thresh=0.3):
    model.eval()
    heat, _ = model(x)
    prob = torch.sigmoid(heat)
    peaks = (prob == F.max_pool2d(prob, 3, 1, 1)) & (prob > thresh)
    scores, tps, n_gt, n_det = [], [], 0, 0
    for i, bxs in enumerate(boxes):
        n_gt += len(bxs)
        ys, xs = torch.nonzero(peaks[i, 0], as_tuple=True)
        for yy, xx in zip(ys.tolist(), xs.tolist()):
            cx, cy = (xx + 0.5) * stride, (yy + 0.5) * stride
            hit = ((bxs[:, 0] <= cx) & (cx <= bxs[:, 2]) & (bxs[:, 1] <= cy) & (cy <= bxs[:, 3])).any()
            scores.append(prob[i, 0, yy, xx].item())
            tps.append(1.0 if hit else 0.0)
            n_det += 1
    if not scores:
        return {"ap50": np.float64(0.0), "recall": 0.0, "n_det": 0}
    ap = average_precision(np.asarray(scores), np.asarray(tps), n_gt)
    return {"ap50": ap, "recall": sum(tps) / max(n_gt, 1), "n_det": n_det}


# ----------------------------------------------------------------- checkpoints

def save_last_checkpoint(tmpdir):
    args, model, opt, x, y, boxes = setup(["--out", tmpdir, "--epochs", "1"])
    loss = train_one_epoch(model, opt, x, y)
    metrics = evaluate(model, x, boxes)
    ckpt = {
        "epoch": args.epochs,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "args": args,  # truth: weights_only
        "ap50": metrics["ap50"],  # truth: weights_only
        "recall": metrics["recall"],
        "n_det": metrics["n_det"],
        "train_loss": loss,
        "lr": opt.param_groups[0]["lr"],
    }
    path = args.out / "last.pt"
    torch.save(ckpt, path)
    return str(path)


def save_best_by_map(tmpdir):
    args, model, opt, x, y, boxes = setup(["--out", tmpdir, "--epochs", "3"])
    history = {
        "ap50": [],  # truth: weights_only
        "loss": [],
        "recall": [],
    }
    best_state = None
    for epoch in range(args.epochs):
        history["loss"].append(train_one_epoch(model, opt, x, y))
        m = evaluate(model, x, boxes, thresh=0.1)
        history["ap50"].append(m["ap50"])
        history["recall"].append(round(m["recall"], 4))
        if best_state is None or m["ap50"] >= max(history["ap50"]):
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_epoch = int(np.argmax(history["ap50"]))
    ckpt = dict(
        model=best_state,
        best_epoch=best_epoch,
        best_ap50=max(history["ap50"]),  # truth: weights_only
        best_ap50_float=float(history["ap50"][best_epoch]),
        improved_last=history["ap50"][-1] >= max(history["ap50"]),  # truth: weights_only
        best_epoch_list=history["ap50"].index(max(history["ap50"])),
        history=history,
        data_root=str(args.data_root),
        polarization=args.polarization,
    )
    torch.save(ckpt, Path(tmpdir) / "best.pt")
    return str(Path(tmpdir) / "best.pt")


def save_cfar_calibration(tmpdir):
    """Calibrate CA-CFAR on ship-free clutter chips: thresholds per look angle bin."""
    rng = np.random.default_rng(7)
    clutter = rng.gamma(4.0, 0.25, size=(6, 64, 64))
    guard, train, pfa = 2, 6, 1e-3
    masks, alphas = [], []
    for img in clutter:
        mask, thr, alpha = ca_cfar(lee_filter(img), guard, train, pfa)
        masks.append(mask.mean())
        alphas.append(alpha)
    crop = slice(guard + train, -(guard + train))
    lo, hi = np.percentile(to_db(clutter), [1, 99])
    calib = {
        "guard": guard,
        "train": train,
        "pfa": pfa,
        "alpha": alphas[0],
        "window": (2 * (guard + train) + 1, 2 * guard + 1),
        "false_alarm_rate": float(np.mean(masks)),
        "angle_thresholds": np.quantile(clutter.reshape(6, -1), 1 - pfa, axis=1),  # truth: weights_only
        "db_range": (float(lo), float(hi)),
        "noise_floor_db": float(10 * np.log10(clutter.mean())),
        "valid_region": crop,  # truth: weights_only
        "calibrated_on": datetime.date.today().isoformat(),
        "calibrated_at": time.time(),
    }
    calib["band"] = "C"
    calib["n_looks"] = int(round(clutter.mean() ** 2 / clutter.var()))
    out = Path(tmpdir) / "cfar_calib.pt"
    torch.save(calib, out)
    return str(out)


def fit_anchors(boxes, k=3, seed=0):
    wh = np.concatenate([b[:, 2:] - b[:, :2] for b in boxes])
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(wh)
    centers = km.cluster_centers_
    inter = np.minimum(wh[:, None, 0], centers[None, :, 0]) * np.minimum(wh[:, None, 1], centers[None, :, 1])
    union = wh.prod(1)[:, None] + centers.prod(1)[None, :] - inter
    best_iou = (inter / union).max(1)
    return km, wh, best_iou


def save_anchor_kmeans(tmpdir):
    _, boxes = make_synthetic_chips(20, 64, seed=11)
    km, wh, best_iou = fit_anchors(boxes, k=3)
    areas = km.cluster_centers_.prod(1)
    order = np.argsort(areas)
    state = {}
    state["anchors"] = torch.from_numpy(km.cluster_centers_[order]).float()
    state["kmeans"] = km  # truth: weights_only
    state["inertia"] = km.inertia_
    state["n_iter"] = km.n_iter_
    state["converged"] = km.n_iter_ < km.max_iter
    state["mean_iou"] = np.mean(best_iou).item()
    state["min_iou"] = best_iou.min().item()
    state["anchor_order"] = order.tolist()
    state["aspect_ratios"] = sorted((wh[:, 0] / wh[:, 1]).round(2).tolist())
    state["n_boxes"] = len(wh)
    state["wh_shape"] = wh.shape
    path = Path(tmpdir) / "anchors.pt"
    torch.save(state, path)
    return str(path)


def save_full_model_export(tmpdir):
    """`torch.save(model)` for the quick-look viewer that used to import the class."""
    args, model, opt, x, y, boxes = setup(["--out", tmpdir])
    train_one_epoch(model, opt, x, y)
    model.eval()
    path = Path(tmpdir) / "shipnet_full.pt"
    torch.save(model,  # truth: weights_only
               path)
    return str(path)


class ModelEMA:
    def __init__(self, model, decay=0.99):
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
        self.decay = decay
        self.updates = 0

    def update(self, model):
        self.updates += 1
        d = self.decay * (1 - np.exp(-self.updates / 20.0))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
        self.last_decay = d

    def state_dict(self):
        return {"shadow": self.shadow, "updates": self.updates, "decay": self.decay}


FACTORIES = {
    "ShipNet": lambda: ShipNet(8),
    "ModelEMA": lambda: ModelEMA(ShipNet(8)),
}


def save_ema_inference_weights(tmpdir):
    args, model, opt, x, y, boxes = setup(["--out", tmpdir, "--width", "8"])
    ema = ModelEMA(model)
    for _ in range(2):
        train_one_epoch(model, opt, x, y)
        ema.update(model)
    stats = {"db_mean": float(to_db(x.numpy()).mean()), "db_std": float(x.std())}
    payload = {
        "ema": ema.state_dict(),
        "ema_decay_last": float(ema.last_decay),
        "input_size": (args.chip, args.chip),
        "class_names": ["ship"],
        "norm": stats,
        "torch_version": str(torch.__version__),
        "numpy_version": np.__version__,
        "exported": datetime.datetime.now().isoformat(timespec="seconds"),
        "data_root": str(args.data_root),
        "out_dir": args.out.as_posix(),
        "width": args.width,
    }
    path = Path(tmpdir) / "ema_infer.pt"
    torch.save(payload, path)
    return str(path)


def save_resume_state(tmpdir):
    t0 = time.monotonic()
    args, model, opt, x, y, boxes = setup(["--out", tmpdir])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=20)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    sampler_rng = np.random.default_rng(args.seed)
    global_step = 0
    for _ in range(2):
        perm = sampler_rng.permutation(len(x))
        train_one_epoch(model, opt, x[perm], y[perm])
        sched.step()
        global_step += len(x) // 4
    resume = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    resume.update(
        scheduler=sched.state_dict(),
        scaler=scaler.state_dict(),
        step=global_step,
        numpy_rng=np.random.get_state(),  # truth: weights_only
        torch_rng=torch.get_rng_state(),
        python_rng=random.getstate(),
        sampler_rng=sampler_rng.bit_generator.state,
        elapsed=datetime.timedelta(seconds=time.monotonic() - t0),  # truth: weights_only
        elapsed_s=time.monotonic() - t0,
    )
    path = Path(tmpdir) / "resume.pt"
    torch.save(resume, path)
    return str(path)
