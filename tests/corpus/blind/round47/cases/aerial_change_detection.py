"""Bi-temporal change detection on aerial tiles (LEVIR-CD / OSCD layout).

Models come from a small registry (FC-EF, FC-Siam-diff); the experiment is
described by one YAML file that is read both through OmegaConf (training) and
through plain PyYAML (the catalogue tooling that fills in acquisition metadata).
An unsupervised change-vector-analysis baseline is kept next to the networks.
"""
import os
import time
from collections import OrderedDict, defaultdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from scipy import ndimage
from sklearn.metrics import cohen_kappa_score, f1_score
from sklearn.utils.class_weight import compute_class_weight
from torch.optim.swa_utils import SWALR, AveragedModel

CONFIG_YAML = """
experiment: levir_cd_fcsiamdiff
model:
  name: fc_siam_diff
  in_channels: 3
  base: 8
data:
  root: /data/LEVIR-CD
  tile: 16
  image_size: 32
  bands: [red, green, blue]
  pre_date: 2012-06-01
  post_date: 2016-09-15
  crs: EPSG:32611
  gsd: 0.5
  origin: [402150.0, 3771620.0]
optim:
  lr: 1e-3
  weight_decay: 0.0001
  epochs: 2
  batch_size: 4
"""

MODELS = {}


def register_model(name):
    def deco(cls):
        MODELS[name] = cls
        return cls
    return deco


def conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@register_model("fc_ef")
class FCEarlyFusion(nn.Module):
    def __init__(self, in_channels=3, base=8):
        super().__init__()
        self.body = nn.Sequential(conv_block(2 * in_channels, base), conv_block(base, base))
        self.head = nn.Conv2d(base, 1, 1)

    def forward(self, pre, post):
        return self.head(self.body(torch.cat([pre, post], dim=1)))


@register_model("fc_siam_diff")
class FCSiamDiff(nn.Module):
    def __init__(self, in_channels=3, base=8):
        super().__init__()
        self.encoder = nn.Sequential(conv_block(in_channels, base), conv_block(base, base))
        self.decoder = nn.Sequential(conv_block(base, base), nn.Conv2d(base, 1, 1))

    def forward(self, pre, post):
        return self.decoder(torch.abs(self.encoder(pre) - self.encoder(post)))


def load_config(overrides=()):
    cfg = OmegaConf.merge(OmegaConf.create(CONFIG_YAML), OmegaConf.from_dotlist(list(overrides)))
    raw = yaml.safe_load(CONFIG_YAML)
    return cfg, raw


def build_model(cfg):
    return MODELS[cfg.model.name](in_channels=cfg.model.in_channels, base=cfg.model.base)


def synth_pairs(n=6, size=32, seed=0):
    rng = np.random.default_rng(seed)
    pre = rng.uniform(0, 255, size=(n, 3, size, size)).astype(np.float32)
    post = pre + rng.normal(0, 4, size=pre.shape).astype(np.float32)
    masks = np.zeros((n, 1, size, size), dtype=np.float32)
    for i in range(n):
        r, c = rng.integers(0, size - 8, size=2)
        h, w = rng.integers(3, 8, size=2)
        masks[i, :, r:r + h, c:c + w] = 1.0
        post[i, :, r:r + h, c:c + w] += 60.0
    return pre, post, masks


def band_statistics(*stacks):
    x = np.concatenate(stacks, axis=0)
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


def normalise(x, mean, std):
    return (x - mean[None, :, None, None]) / std[None, :, None, None]


def confusion(pred, gt):
    return np.bincount(2 * gt.astype(np.int64).ravel() + pred.astype(np.int64).ravel(), minlength=4).reshape(2, 2)


def scores_from_confusion(cm, pred, gt):
    tn, fp, fn, tp = cm.ravel()
    return {
        "precision": float(tp / max(tp + fp, 1)),
        "recall": float(tp / max(tp + fn, 1)),
        "iou": tp / max(tp + fp + fn, 1),
        "oa": float((tp + tn) / cm.sum()),
        "f1": f1_score(gt.ravel(), pred.ravel(), zero_division=0),
        "kappa": cohen_kappa_score(gt.ravel(), pred.ravel()),
    }


def tile_windows(image_size, tile):
    return [(slice(r, r + tile), slice(c, c + tile))
            for r in range(0, image_size, tile) for c in range(0, image_size, tile)]


def otsu_threshold(values, bins=64):
    hist, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers) / np.maximum(w0, 1)
    m1 = ((hist * centers).sum() - np.cumsum(hist * centers)) / np.maximum(w1, 1)
    return centers[int(np.argmax(w0 * w1 * (m0 - m1) ** 2))]


def run_training(cfg, seed=0):
    torch.manual_seed(seed)
    pre, post, masks = synth_pairs(seed=seed, size=cfg.data.image_size)
    mean, std = band_statistics(pre, post)
    x1 = torch.from_numpy(normalise(pre, mean, std))
    x2 = torch.from_numpy(normalise(post, mean, std))
    y = torch.from_numpy(masks)
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    history = defaultdict(list)
    scores = {}
    for epoch in range(cfg.optim.epochs):
        model.train()
        for s in range(0, len(y), cfg.optim.batch_size):
            loss = F.binary_cross_entropy_with_logits(model(x1[s:s + 4], x2[s:s + 4]), y[s:s + 4])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            pred = (torch.sigmoid(model(x1, x2)) > 0.5).numpy().astype(np.int64)
        cm = confusion(pred, masks)
        scores = scores_from_confusion(cm, pred, masks.astype(np.int64))
        history["loss"].append(loss.item())
        for k, v in scores.items():
            history[k].append(float(v))
    return model, opt, history, scores, cm


def save_levir_checkpoint(tmpdir):
    cfg, _ = load_config(["model.name=fc_siam_diff", "optim.epochs=2"])
    model, opt, history, scores, cm = run_training(cfg)
    ckpt = OrderedDict()
    ckpt["model"] = model.state_dict()
    ckpt["model_name"] = cfg.model.name
    ckpt["model_cls"] = MODELS[cfg.model.name]  # truth: weights_only
    ckpt["optimizer"] = opt.state_dict()
    ckpt["cfg"] = OmegaConf.to_container(cfg, resolve=True)
    ckpt["cfg_yaml"] = OmegaConf.to_yaml(cfg)
    ckpt["data_cfg"] = cfg.data  # truth: weights_only
    ckpt["metric_history"] = history  # truth: weights_only
    ckpt["history"] = dict(history)
    ckpt["best"] = {"epoch": int(np.argmax(history["f1"])), "f1": max(history["f1"])}
    ckpt["val_iou"] = scores["iou"]  # truth: weights_only
    ckpt["val_f1"] = scores["f1"]
    ckpt["val_kappa"] = scores["kappa"]
    ckpt["val_precision"] = scores["precision"]
    ckpt["confusion"] = cm.tolist()
    path = os.path.join(tmpdir, f"{cfg.experiment}_last.pt")
    torch.save(ckpt, path)
    return path


def save_normalisation_stats(tmpdir):
    cfg, _ = load_config()
    pre, post, masks = synth_pairs(seed=1, size=cfg.data.image_size)
    mean, std = band_statistics(pre, post)
    labels = masks.astype(np.int64).ravel()
    weights = compute_class_weight("balanced", classes=np.array([0, 1]), y=labels)
    stats = {
        "bands": list(cfg.data.bands),
        "band_mean": mean,  # truth: weights_only
        "band_std": std.tolist(),
        "band_mean_t": torch.as_tensor(mean),
        "pixel_count": int(labels.size),
        "clip_range": np.percentile(pre, [2, 98]).tolist(),
        "class_weights": torch.tensor(weights, dtype=torch.float32),
        "pos_weight": float(weights[1] / weights[0]),
        "change_ratio": masks.sum() / masks.size,  # truth: weights_only
        "gsd_m": cfg.data.gsd,
        "tile": cfg.data.tile,
    }
    path = os.path.join(tmpdir, "levir_band_stats.pt")
    torch.save(stats, path)
    return path


def save_unsupervised_cva(tmpdir):
    cfg, raw = load_config()
    pre, post, masks = synth_pairs(n=2, seed=2, size=cfg.data.image_size)
    magnitude = np.sqrt(((post - pre) ** 2).sum(axis=1))
    th = otsu_threshold(magnitude)
    change = magnitude > th
    lab, n_comp = ndimage.label(change[0])
    sizes = ndimage.sum(change[0], lab, index=range(1, n_comp + 1)) if n_comp else np.zeros(1)
    windows = tile_windows(cfg.data.image_size, cfg.data.tile)
    x0, y0 = cfg.data.origin
    cva = {
        "method": "cva-otsu",
        "threshold": th,  # truth: weights_only
        "histogram_bins": 64,
        "n_components": n_comp,
        "largest_component_px": int(sizes.max()),
        "component_sizes": sorted(sizes.tolist(), reverse=True),
        "tile_windows": windows,  # truth: weights_only
        "tile_origins": [(w[0].start, w[1].start) for w in windows],
        "geo_transform": (x0, cfg.data.gsd, 0.0, y0, 0.0, -cfg.data.gsd),
        "crs": cfg.data.crs,
        "acquisition": {
            "pre": cfg.data.pre_date,
            "post": raw["data"]["post_date"],  # truth: weights_only
            "catalogue_lr": raw["optim"]["lr"],
        },
        "agreement": float((change == masks[:, 0].astype(bool)).mean()),
    }
    path = os.path.join(tmpdir, "cva_baseline.pt")
    torch.save(cva, path)
    return path


def save_tile_ranking(tmpdir):
    cfg, _ = load_config(["model.name=fc_ef", "optim.epochs=1"])
    model, _, _, _, _ = run_training(cfg, seed=3)
    pre, post, _ = synth_pairs(n=5, seed=4, size=cfg.data.image_size)
    mean, std = band_statistics(pre, post)
    with torch.no_grad():
        probs = torch.sigmoid(model(torch.from_numpy(normalise(pre, mean, std)),
                                    torch.from_numpy(normalise(post, mean, std))))
    tile_score = probs.mean(dim=(1, 2, 3))
    order = torch.sort(tile_score, descending=True)
    ranking = dict(
        model=model.state_dict(),
        ranked=order,  # truth: weights_only
        ranked_idx=order.indices.tolist(),
        ranked_scores=order.values,
        tile_ids=[f"tile_{i:04d}" for i in order.indices.tolist()],
        review_quota=max(1, len(tile_score) // 2),
        generated=time.strftime("%Y%m%d"),
    )
    path = os.path.join(tmpdir, "tile_ranking.pt")
    torch.save(ranking, path)
    return path


def save_swa_weights(tmpdir):
    cfg, _ = load_config(["optim.epochs=1"])
    model, opt, _, scores, _ = run_training(cfg, seed=5)
    swa = AveragedModel(model)
    swa.update_parameters(model)
    swa_sched = SWALR(opt, swa_lr=5e-4)
    swa_sched.step()
    payload = OrderedDict(
        swa_state=swa.state_dict(),
        n_averaged=int(swa.n_averaged),
        swa_scheduler=swa_sched.state_dict(),
        swa_lr=swa_sched.get_last_lr(),
        base_f1=scores["f1"],
        bn_updated=False,
    )
    path = os.path.join(tmpdir, "swa.pt")
    torch.save(payload, path)
    return path
