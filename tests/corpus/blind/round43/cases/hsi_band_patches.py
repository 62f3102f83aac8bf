"""Hyperspectral pixel classification on an Indian-Pines-like cube.

Pipeline: drop the water-absorption bands, rank the rest by mutual information with the labels,
standardise + PCA, cut k x k patches around labelled pixels (stratified split), train a small
HybridSN (3-D then 2-D convolutions) or a per-pixel spectral MLP picked from a registry.
"""
import collections
import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from sklearn.decomposition import PCA
from sklearn.feature_selection import mutual_info_classif
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

CONFIG_YAML = """
dataset: synthetic_pines
cube: {height: 20, width: 20, bands: 64, n_classes: 5, seed: 3}
bands:
  water_absorption: [[20, 24], [40, 43]]
  mi_top_k: 24
  pca_variance: 0.98
  max_components: 12
patches: {patch_size: 5, train_ratio: 0.3, pad_mode: reflect}
model: {name: hybridsn, dropout: 0.2}
optim: {lr: 0.002, weight_decay: 0.0001, epochs: 2, batch_size: 64}
"""

CLASS_NAMES = ["corn-notill", "grass-pasture", "soybean-mintill", "woods", "hay-windrowed", "alfalfa"]


@dataclass
class HSIConfig:
    height: int = 20
    width: int = 20
    bands: int = 64
    n_classes: int = 5
    seed: int = 3
    water_absorption: list = field(default_factory=lambda: [(20, 24), (40, 43)])
    mi_top_k: int = 24
    pca_variance: float = 0.98
    max_components: int = 12
    patch_size: int = 5
    train_ratio: float = 0.3
    pad_mode: str = "reflect"
    model_name: str = "hybridsn"
    dropout: float = 0.2
    lr: float = 2e-3
    weight_decay: float = 1e-4
    epochs: int = 2
    batch_size: int = 64

    @classmethod
    def from_yaml(cls, text):
        raw = yaml.safe_load(text)
        flat = {**raw["cube"], **raw["bands"], **raw["patches"], **raw["optim"]}
        flat["water_absorption"] = [tuple(w) for w in flat["water_absorption"]]
        flat["model_name"], flat["dropout"] = raw["model"]["name"], raw["model"]["dropout"]
        return cls(**flat)


def synth_cube(cfg):
    """(H, W, B) float32 reflectance cube, (H, W) int labels (0 = unlabelled), band centres in nm."""
    rng = np.random.default_rng(cfg.seed)
    wl = np.linspace(400.0, 2500.0, cfg.bands)
    base = rng.random((cfg.n_classes, cfg.bands))
    kernel = np.ones(5) / 5.0
    endmembers = np.stack([np.convolve(e, kernel, mode="same") for e in base]) + 0.1
    gt = np.zeros((cfg.height, cfg.width), dtype=np.int64)
    blocks = np.array_split(np.arange(cfg.width), cfg.n_classes)
    for c, cols in enumerate(blocks, start=1):
        gt[2:-2, cols] = c
    abundance = np.eye(cfg.n_classes + 1)[gt][..., 1:] + 0.05 * rng.random((cfg.height, cfg.width, cfg.n_classes))
    cube = abundance @ endmembers + 0.02 * rng.standard_normal((cfg.height, cfg.width, cfg.bands))
    for a, b in cfg.water_absorption:
        cube[..., a:b] *= 0.05
    return cube.astype(np.float32), gt, wl


class BandSelector:
    def __init__(self, water_absorption=((20, 24),), top_k=24, variance=0.98, max_components=12):
        self.water_absorption = [tuple(w) for w in water_absorption]
        self.top_k, self.variance, self.max_components = top_k, variance, max_components
        self.candidates = self.keep = self.mi_scores = None
        self.scaler = StandardScaler()
        self.pca = PCA(n_components=variance, svd_solver="full")

    def fit(self, cube, gt):
        drop = np.zeros(cube.shape[-1], dtype=bool)
        for a, b in self.water_absorption:
            drop[a:b] = True
        X, y = cube[gt > 0], gt[gt > 0]
        self.candidates = np.flatnonzero(~drop)
        self.mi_scores = mutual_info_classif(X[:, self.candidates], y, random_state=0)
        order = np.argsort(self.mi_scores)[::-1]
        self.keep = np.sort(self.candidates[order[: self.top_k]])
        Z = self.scaler.fit_transform(X[:, self.keep])
        self.pca.fit(Z)
        if self.pca.n_components_ > self.max_components:
            self.pca = PCA(n_components=self.max_components).fit(Z)
        return self

    def transform(self, cube):
        h, w, b = cube.shape
        flat = self.scaler.transform(cube.reshape(-1, b)[:, self.keep])
        return self.pca.transform(flat).reshape(h, w, -1).astype(np.float32)


class PatchSampler:
    def __init__(self, patch_size=5, train_ratio=0.3, pad_mode="reflect", seed=0):
        self.patch_size, self.train_ratio, self.pad_mode = patch_size, train_ratio, pad_mode
        self.rng = np.random.default_rng(seed)

    def split(self, gt):
        coords = np.argwhere(gt > 0)
        labels = gt[coords[:, 0], coords[:, 1]] - 1
        train_idx, test_idx = train_test_split(np.arange(len(coords)), train_size=self.train_ratio,
                                               stratify=labels, random_state=int(self.rng.integers(2**31)))
        return coords, labels, train_idx, test_idx

    def extract(self, cube, coords):
        r = self.patch_size // 2
        padded = np.pad(cube, ((r, r), (r, r), (0, 0)), mode=self.pad_mode)
        patches = np.stack([padded[i:i + self.patch_size, j:j + self.patch_size] for i, j in coords])
        return torch.from_numpy(patches).permute(0, 3, 1, 2).contiguous()


MODELS = {}


def register(name):
    def deco(cls):
        MODELS[name] = cls
        return cls
    return deco


@register("hybridsn")
class HybridSN(nn.Module):
    def __init__(self, n_components=12, n_classes=5, patch_size=5, dropout=0.2):
        super().__init__()
        self.conv3d = nn.Sequential(nn.Conv3d(1, 4, (3, 3, 3), padding=1), nn.ReLU(),
                                    nn.Conv3d(4, 8, (3, 3, 3), padding=1), nn.ReLU())
        self.conv2d = nn.Sequential(nn.Conv2d(8 * n_components, 32, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(32, n_classes))

    def forward(self, x):  # (N, C, k, k)
        z = self.conv3d(x.unsqueeze(1))
        z = self.conv2d(z.flatten(1, 2))
        return self.head(z.mean((2, 3)))


@register("spectral_mlp")
class SpectralMLP(nn.Module):
    def __init__(self, n_components=12, n_classes=5, patch_size=5, dropout=0.2, hidden=(64, 32)):
        super().__init__()
        dims = [n_components, *hidden]
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*layers, nn.Linear(dims[-1], n_classes))
        self.center = patch_size // 2

    def forward(self, x):
        return self.body(x[:, :, self.center, self.center])


def build_model(cfg, n_components):
    return MODELS[cfg.model_name](n_components, cfg.n_classes, cfg.patch_size, cfg.dropout)


class HSITrainer:
    def __init__(self, model=None, lr=2e-3, weight_decay=1e-4, batch_size=64, seed=0):
        self.model = model if model is not None else HybridSN()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=10, gamma=0.5)
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.history = {"loss": [], "oa": []}

    def train_epoch(self, X, y):
        self.model.train()
        perm = torch.randperm(len(X), generator=self.gen)
        losses = []
        for i in range(0, len(X), self.batch_size):
            idx = perm[i:i + self.batch_size]
            loss = F.cross_entropy(self.model(X[idx]), y[idx])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            losses.append(loss.item())
        self.sched.step()
        self.history["loss"].append(float(np.mean(losses)))
        return self.history["loss"][-1]

    @torch.no_grad()
    def evaluate(self, X, y, n_classes):
        self.model.eval()
        pred = self.model(X).argmax(1).numpy()
        y = y.numpy()
        cm = confusion_matrix(y, pred, labels=list(range(n_classes)))
        oa = np.trace(cm) / cm.sum()
        per_class = cm.diagonal() / np.maximum(cm.sum(1), 1)
        self.history["oa"].append(oa)
        return oa, float(per_class.mean()), cohen_kappa_score(y, pred), per_class, cm


def run_pipeline(cfg):
    cube, gt, wl = synth_cube(cfg)
    selector = BandSelector(cfg.water_absorption, cfg.mi_top_k, cfg.pca_variance, cfg.max_components).fit(cube, gt)
    reduced = selector.transform(cube)
    sampler = PatchSampler(cfg.patch_size, cfg.train_ratio, cfg.pad_mode, seed=cfg.seed)
    coords, labels, train_idx, test_idx = sampler.split(gt)
    X = sampler.extract(reduced, coords)
    y = torch.as_tensor(labels)
    torch.manual_seed(cfg.seed)
    trainer = HSITrainer(build_model(cfg, reduced.shape[-1]), cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.seed)
    for _ in range(cfg.epochs):
        trainer.train_epoch(X[train_idx], y[train_idx])
        trainer.evaluate(X[test_idx], y[test_idx], cfg.n_classes)
    return {"cube": cube, "gt": gt, "wl": wl, "selector": selector, "sampler": sampler, "trainer": trainer,
            "X_test": X[test_idx], "y_test": y[test_idx], "n_train": len(train_idx)}


def save_hybridsn(out_dir):
    cfg = HSIConfig.from_yaml(CONFIG_YAML)
    run = run_pipeline(cfg)
    sel, tr = run["selector"], run["trainer"]
    ckpt = {
        "model_state": tr.model.state_dict(),
        "optim_state": tr.opt.state_dict(),
        "sched_state": tr.sched.state_dict(),
        "config": cfg,  # truth: weights_only
        "epoch": cfg.epochs,
        "kept_bands": sel.keep.tolist(),
        "wavelengths_nm": run["wl"][sel.keep],  # truth: weights_only
        "pca": {
            "components": torch.from_numpy(sel.pca.components_).float(),
            "mean": torch.from_numpy(sel.pca.mean_).float(),
            "n_components": sel.pca.n_components_,  # truth: weights_only
            "explained": float(sel.pca.explained_variance_ratio_.sum()),
        },
        "scaler": {"mean": sel.scaler.mean_.tolist(), "scale": sel.scaler.scale_.tolist()},
        "n_train": run["n_train"],
    }
    path = f"{out_dir}/{cfg.model_name}_e{cfg.epochs}.pth"
    torch.save(ckpt, path)
    return path


def save_patch_split(out_dir):
    cfg = HSIConfig(patch_size=7, train_ratio=0.25)
    cube, gt, _ = synth_cube(cfg)
    np.random.seed(cfg.seed)  # legacy global seeding, used by the flip/rotate augmentation
    sampler = PatchSampler(cfg.patch_size, cfg.train_ratio, cfg.pad_mode, seed=cfg.seed)
    coords, labels, train_idx, test_idx = sampler.split(gt)
    split = {}
    split["train_idx"] = torch.from_numpy(train_idx)
    split["test_idx"] = test_idx  # truth: weights_only
    split["coords"] = torch.as_tensor(coords)
    split["patch_size"] = sampler.patch_size
    split["pad_mode"] = sampler.pad_mode
    split["class_counts"] = dict(collections.Counter(labels[train_idx].tolist()))
    split["pixel_counts"] = np.bincount(gt.ravel(), minlength=cfg.n_classes + 1)  # truth: weights_only
    split["sampler_rng"] = sampler.rng.bit_generator.state
    split["legacy_rng"] = np.random.get_state()  # truth: weights_only
    split["cube_dtype"] = cube.dtype  # truth: weights_only
    split["cube_shape"] = cube.shape
    split["ignore_index"] = 0
    split["train_fraction"] = len(train_idx) / len(coords)
    torch.save(split, f"{out_dir}/split_p{cfg.patch_size}.pt")
    return f"{out_dir}/split_p{cfg.patch_size}.pt"


def save_eval_report(out_dir):
    cfg = HSIConfig.from_yaml(CONFIG_YAML)
    cfg.epochs = 3
    run = run_pipeline(cfg)
    tr = run["trainer"]
    oa, aa, kappa, per_class, cm = tr.evaluate(run["X_test"], run["y_test"], cfg.n_classes)
    report = {
        "OA": oa,  # truth: weights_only
        "AA": aa,
        "kappa": kappa,
        "per_class_acc": per_class.tolist(),
        "confusion": torch.as_tensor(cm),
        "class_names": CLASS_NAMES[: cfg.n_classes],
    }
    ckpt = {"state_dict": tr.model.state_dict(), "metrics": report}
    ckpt["epochs_to_best"] = int(np.argmax(tr.history["oa"])) + 1
    ckpt["best_oa"] = float(max(tr.history["oa"]))
    ckpt["loss_curve"] = tr.history["loss"]
    ckpt["lr_now"] = tr.sched.get_last_lr()[0]
    torch.save(ckpt, out_dir + "/eval_report.pt")
    return out_dir + "/eval_report.pt"


def save_band_ranking(out_dir):
    cfg = HSIConfig(mi_top_k=16)
    cube, gt, wl = synth_cube(cfg)
    sel = BandSelector(cfg.water_absorption, cfg.mi_top_k, cfg.pca_variance, cfg.max_components).fit(cube, gt)
    order = np.argsort(sel.mi_scores)[::-1]
    groups = np.array_split(np.arange(cfg.bands), 8)
    snr = {f"g{i}": float(cube[..., g].mean() / cube[..., g].std()) for i, g in enumerate(groups)}
    ranking = {
        "mi_scores": torch.tensor(sel.mi_scores, dtype=torch.float32),
        "top_bands": sorted(sel.candidates[order[: cfg.mi_top_k]]),  # truth: weights_only
        "band_groups": [(int(g[0]), int(g[-1]) + 1) for g in groups],
        "water_windows": [slice(a, b) for a, b in cfg.water_absorption],  # truth: weights_only
        "top_k": cfg.mi_top_k,
        "center_wavelength": float(wl[sel.keep].mean()),
        "snr_by_group": snr,
        "mean_snr_db": float(10 * np.log10(cube.mean() / cube.std())),
    }
    torch.save(ranking, f"{out_dir}/band_ranking.pt")
    return f"{out_dir}/band_ranking.pt"


def save_spectral_mlp(out_dir):
    cfg = dataclasses.replace(HSIConfig(), model_name="spectral_mlp", epochs=1)
    run = run_pipeline(cfg)
    tr, sel = run["trainer"], run["selector"]
    reduced = sel.transform(run["cube"])
    mu, sd = reduced.mean((0, 1)), reduced.std((0, 1))
    ckpt = {
        "arch": cfg.model_name,
        "registry_keys": sorted(MODELS),
        "state_dict": tr.model.state_dict(),
        "in_bands": int(reduced.shape[-1]),
        "hidden": list(tr.model.body[0].weight.shape),
        "normalization": {"mean": torch.from_numpy(mu), "std": torch.from_numpy(sd)},
        "dtype": torch.float32,
        "device": torch.device("cpu"),
        "history": [{"epoch": e, "loss": l} for e, l in enumerate(tr.history["loss"])],
        "config": dataclasses.asdict(cfg),
        "labels": list(range(1, cfg.n_classes + 1)),
        "class_names": CLASS_NAMES[: cfg.n_classes],
        "rng_state": tr.gen.get_state(),
    }
    torch.save(ckpt, f"{out_dir}/spectral_mlp.pt")
    return f"{out_dir}/spectral_mlp.pt"
