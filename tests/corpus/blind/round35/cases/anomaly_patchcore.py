# PatchCore-ish industrial anomaly detection, research script.
# random-init conv backbone -> mid-level patch features -> greedy coreset memory bank -> kNN distance
# image score = max patch score; pixel map = upsampled patch scores. per-category thresholds.
import collections
import datetime
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.metrics import precision_recall_curve, roc_auc_score
from sklearn.neighbors import NearestNeighbors
from sklearn.random_projection import SparseRandomProjection

CFG = OmegaConf.create({
    "data": {"root": "/datasets/mvtec_ad", "categories": ["bottle", "carpet", "screw"],
             "image_size": 32, "n_train": 6, "n_test": 8},
    "model": {"layers": ["block2", "block3"], "width": 12},
    "coreset": {"ratio": 0.1, "proj_dim": 16},
    "knn": 3,
    "seed": 0,
    "threshold_quantile": 0.99,
})
DEFECTS = {"bottle": [1, 2], "carpet": [3, 4, 5], "screw": [6, 2]}   # 1 broken_large 2 contamination ...


def make_images(cat, n, anomalous, rng, size=32):
    base = {"bottle": 0.2, "carpet": 0.5, "screw": 0.8}[cat]
    x = base + 0.05 * rng.standard_normal((n, 3, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), np.uint8)
    defect = np.zeros(n, np.int64)
    if anomalous:
        for i in range(n):
            if i % 2 == 0:
                continue  # half of the test set stays good
            r, c = rng.integers(4, size - 12, 2)
            x[i, :, r:r + 8, c:c + 8] += 0.8
            masks[i, r:r + 8, c:c + 8] = 1
            defect[i] = DEFECTS[cat][i % len(DEFECTS[cat])]
    return x.astype(np.float32), masks, defect


class PatchFeatures(nn.Module):
    def __init__(self, layers=("block2", "block3"), width=12):
        super().__init__()
        self.layers = tuple(layers)
        self.blocks = nn.ModuleDict({
            "block1": nn.Sequential(nn.Conv2d(3, width, 3, 1, 1), nn.ReLU()),
            "block2": nn.Sequential(nn.Conv2d(width, width, 3, 2, 1), nn.ReLU()),
            "block3": nn.Sequential(nn.Conv2d(width, width, 3, 2, 1), nn.ReLU()),
        })
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        feats, h = {}, x
        for name, blk in self.blocks.items():
            h = blk(h)
            feats[name] = h
        sel = [feats[l] for l in self.layers]
        size = sel[0].shape[-2:]
        sel = [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in sel]
        return F.avg_pool2d(torch.cat(sel, 1), 3, 1, 1)


def to_patches(fmap):
    c = fmap.shape[1]
    return fmap.permute(0, 2, 3, 1).reshape(-1, c).numpy()


def greedy_coreset(feats, ratio, proj_dim=16, seed=0):
    rng = np.random.default_rng(seed)
    n = len(feats)
    m = max(1, int(n * ratio))
    proj = SparseRandomProjection(n_components=proj_dim, random_state=seed).fit(feats)
    z = proj.transform(feats)
    idx = [int(rng.integers(n))]
    dmin = np.linalg.norm(z - z[idx[0]], axis=1)
    for _ in range(m - 1):
        i = int(np.argmax(dmin))
        idx.append(i)
        dmin = np.minimum(dmin, np.linalg.norm(z - z[i], axis=1))
    return np.asarray(idx), dmin, proj


def auroc(labels, scores):
    order = np.argsort(-scores, kind="mergesort")
    y = labels[order].astype(np.float64)
    tps, fps = np.cumsum(y), np.cumsum(1 - y)
    tpr = np.r_[0, tps / max(tps[-1], 1)]
    fpr = np.r_[0, fps / max(fps[-1], 1)]
    return np.trapezoid(tpr, fpr)


def fit_category(cat, cfg=CFG, extractor=None):
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    extractor = extractor or PatchFeatures(cfg.model.layers, cfg.model.width)
    x, _, _ = make_images(cat, cfg.data.n_train, False, rng, cfg.data.image_size)
    with torch.no_grad():
        fmap = extractor(torch.from_numpy(x))
    feats = to_patches(fmap)
    idx, dmin, proj = greedy_coreset(feats, cfg.coreset.ratio, cfg.coreset.proj_dim, cfg.seed)
    bank = feats[idx]
    index = NearestNeighbors(n_neighbors=cfg.knn).fit(bank)
    return dict(extractor=extractor, bank=bank, idx=idx, coverage=dmin.max(), nn=index,
                fmap_hw=tuple(fmap.shape[-2:]), n_patches=len(feats))


@torch.no_grad()
def score_images(fitted, x, k=CFG.knn):
    fmap = fitted["extractor"](torch.from_numpy(x))
    n, _, h, w = fmap.shape
    d, _ = fitted["nn"].kneighbors(to_patches(fmap), n_neighbors=k)
    patch = d[:, 0].reshape(n, 1, h, w)
    amap = F.interpolate(torch.from_numpy(patch), size=x.shape[-2:], mode="bilinear", align_corners=False)
    amap = amap.squeeze(1).numpy()
    return amap.reshape(n, -1).max(1), amap


def evaluate_category(cat, fitted, cfg=CFG):
    rng = np.random.default_rng(cfg.seed + 1)
    x, masks, defect = make_images(cat, cfg.data.n_test, True, rng, cfg.data.image_size)
    img_scores, amap = score_images(fitted, x)
    y = (defect > 0).astype(int)
    prec, rec, thr = precision_recall_curve(y, img_scores)
    f1 = 2 * prec * rec / np.clip(prec + rec, 1e-8, None)
    best = np.argmax(f1[:-1])
    return {
        "image_auroc": roc_auc_score(y, img_scores),
        "pixel_auroc": auroc(masks.ravel(), amap.ravel()),
        "f1_max": f1[best],
        "threshold": thr[best],
        "pr": (prec, rec, thr),
        "defect_ids": defect[defect > 0],
    }


def normal_scores(cat, fitted, n=8, cfg=CFG):
    rng = np.random.default_rng(cfg.seed + 2)
    x, _, _ = make_images(cat, n, False, rng, cfg.data.image_size)
    return score_images(fitted, x)[0]


# ---------------------------------------------------------------------------------------------

def save_memory_bank(tmpdir):
    cat = "bottle"
    fitted = fit_category(cat)
    bank, idx = fitted["bank"], fitted["idx"]
    ckpt = {
        "category": cat,
        "extractor": fitted["extractor"].state_dict(),
        "memory_bank": bank,  # truth: weights_only
        "coreset_idx": idx.tolist(),
        "coreset_ratio": len(idx) / fitted["n_patches"],
        "coreset_radius": fitted["coverage"],  # truth: weights_only
        "feature_hw": fitted["fmap_hw"],
        "feature_dim": bank.shape[1],
        "nn_index": fitted["nn"],  # truth: weights_only
        "layers": list(fitted["extractor"].layers),
    }
    path = os.path.join(tmpdir, f"patchcore_{cat}.pt")
    torch.save(ckpt, path)
    return path


def save_eval_results(tmpdir):
    results = {}
    for cat in CFG.data.categories:
        results[cat] = evaluate_category(cat, fit_category(cat))
    img = [r["image_auroc"] for r in results.values()]
    ckpt = {
        "per_category": {c: {"image_auroc": r["image_auroc"], "pixel_auroc": float(r["pixel_auroc"])}
                         for c, r in results.items()},
        "mean_image_auroc": sum(img) / len(img),
        "mean_pixel_auroc": np.mean([r["pixel_auroc"] for r in results.values()]),  # truth: weights_only
        "worst_category": min(results, key=lambda c: results[c]["image_auroc"]),
        "f1_max": {c: round(float(r["f1_max"]), 4) for c, r in results.items()},
        "pr_bottle": results["bottle"]["pr"],  # truth: weights_only
        "pr_bottle_lists": [a.tolist() for a in results["bottle"]["pr"]],
    }
    path = os.path.join(tmpdir, "eval_mvtec.pt")
    torch.save(ckpt, path)
    return path


def save_thresholds(tmpdir):
    thresholds = collections.defaultdict(float)
    for cat in CFG.data.categories:
        fitted = fit_category(cat)
        thresholds[cat] = np.quantile(normal_scores(cat, fitted), CFG.threshold_quantile)
    path = os.path.join(tmpdir, "thresholds.pt")
    torch.save(thresholds, path)  # truth: weights_only
    return path


def save_calibration_report(tmpdir):
    thr, seen_defects, n_imgs = {}, set(), 0
    for cat in CFG.data.categories:
        fitted = fit_category(cat)
        s = normal_scores(cat, fitted)
        thr[cat] = float(np.quantile(s, CFG.threshold_quantile))
        res = evaluate_category(cat, fitted)
        seen_defects |= set(np.unique(res["defect_ids"]))
        n_imgs += len(s)
    report = {"thresholds": thr, "quantile": CFG.threshold_quantile, "n_normal_images": n_imgs}
    report["defect_types"] = seen_defects  # truth: weights_only
    report["defect_types_sorted"] = sorted(int(d) for d in seen_defects)
    report["calibrated_on"] = datetime.date.today()  # truth: weights_only
    report["calibrated_at"] = time.time()
    path = os.path.join(tmpdir, "calibration.pt")
    torch.save(report, path)
    return path


def save_run_state(tmpdir):
    rng = np.random.default_rng(CFG.seed)
    _ = rng.integers(0, 100, 5)
    run = dict(
        config=CFG,  # truth: weights_only
        config_yaml=OmegaConf.to_yaml(CFG),
        config_dict=OmegaConf.to_container(CFG, resolve=True),
        categories=CFG.data.categories,  # truth: weights_only
        categories_done=list(CFG.data.categories),
        sampler_rng=rng,  # truth: weights_only
        sampler_state=rng.bit_generator.state,
        data_root=str(Path(CFG.data.root) / "bottle"),
        started=datetime.datetime.now().isoformat(),
    )
    path = os.path.join(tmpdir, "run_state.pt")
    torch.save(run, path)
    return path


def save_deploy_bundle(tmpdir):
    bundle = {"categories": {}, "image_size": CFG.data.image_size, "layers": list(CFG.model.layers)}
    for cat in CFG.data.categories:
        fitted = fit_category(cat)
        s = normal_scores(cat, fitted)
        bundle["categories"][cat] = {
            "extractor": fitted["extractor"].state_dict(),
            "memory_bank": torch.from_numpy(fitted["bank"]).half(),
            "threshold": np.quantile(s, CFG.threshold_quantile).item(),
            "score_range": (float(s.min()), float(s.max())),
        }
    bundle.update(knn=int(CFG.knn), bank_dtype=torch.float16, device=torch.device("cpu"),
                  norm=torch.tensor([0.485, 0.456, 0.406]), created=time.strftime("%Y-%m-%d"))
    path = os.path.join(tmpdir, "deploy.pt")
    torch.save(bundle, path)
    return path
