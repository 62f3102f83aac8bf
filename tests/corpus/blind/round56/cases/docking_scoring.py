"""Protein-ligand docking: a learned scoring function re-ranks poses from a docking run.

train_score.py-style script: argparse options, featurisation of (receptor, ligand pose) pairs into
interaction fingerprints, an MLP that regresses binding affinity (pKd) and a pose classifier
(RMSD < 2 A).  Checkpoints are written by the `save_*` entry points below.
"""
import argparse
import math
import os
import random
import time
from collections import OrderedDict, defaultdict
from pathlib import Path

import numpy as np
import scipy.stats as st
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, mean_absolute_error

ELEMENTS = ("C", "N", "O", "S", "P", "F", "Cl", "Br", "I", "Zn", "Fe", "Mg")
METALS = frozenset({"Zn", "Fe", "Mg", "Mn", "Ca"})
CUTOFFS = (4.0, 6.0, 8.0, 12.0)


def build_parser():
    p = argparse.ArgumentParser(description="train a pose scoring function")
    p.add_argument("--receptor", type=Path, default=Path("data/pdbbind/1a30_protein.pdb"))
    p.add_argument("--pose-dir", default="data/poses/vina")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rmsd-cut", type=float, default=2.0)
    p.add_argument("--box-size", type=float, nargs=3, default=[22.5, 22.5, 22.5])
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--exhaustiveness", type=int, default=8)
    return p


# ------------------------------------------------------------------ featurisation

def synthetic_complexes(n, rng):
    """Fake docked complexes: receptor atoms, ligand pose atoms, affinity, pose rmsd."""
    out = []
    for i in range(n):
        rec = rng.normal(0, 6, size=(40, 3))
        lig = rng.normal(0, 2, size=(12, 3)) + rng.normal(0, 1, size=3)
        rec_el = rng.choice(len(ELEMENTS), size=40)
        lig_el = rng.choice(6, size=12)
        out.append({
            "id": f"cplx{i:04d}",
            "rec": rec, "lig": lig, "rec_el": rec_el, "lig_el": lig_el,
            "pkd": float(rng.uniform(3, 11)),
            "rmsd": float(abs(rng.normal(2.0, 1.5))),
        })
    return out


def interaction_fingerprint(cplx):
    """Counts of (ligand element, receptor element) contacts within each distance shell."""
    d = np.linalg.norm(cplx["lig"][:, None, :] - cplx["rec"][None, :, :], axis=-1)
    feats = []
    lo = 0.0
    for hi in CUTOFFS:
        shell = (d >= lo) & (d < hi)
        counts = np.zeros((6, len(ELEMENTS)))
        li, ri = np.nonzero(shell)
        np.add.at(counts, (cplx["lig_el"][li], cplx["rec_el"][ri]), 1.0)
        feats.append(counts.ravel())
        lo = hi
    return np.concatenate(feats)


def featurise(complexes):
    X = np.stack([interaction_fingerprint(c) for c in complexes]).astype(np.float32)
    y = np.array([c["pkd"] for c in complexes], dtype=np.float32)
    rmsd = np.array([c["rmsd"] for c in complexes], dtype=np.float32)
    return X, y, rmsd


def box_center(complexes):
    return np.mean(np.concatenate([c["lig"] for c in complexes]), axis=0)


class FeatureScaler:
    """Log-scales contact counts and standardises columns (fit on the training split)."""

    def __init__(self):
        self.mu = None
        self.sd = None

    def fit(self, X):
        Z = np.log1p(X)
        self.mu = Z.mean(0)
        self.sd = Z.std(0) + 1e-6
        return self

    def transform(self, X):
        return (np.log1p(X) - self.mu) / self.sd

    def state(self):
        return {"mu": torch.from_numpy(self.mu.astype(np.float32)),
                "sd": torch.from_numpy(self.sd.astype(np.float32))}


# ------------------------------------------------------------------ model

class ScoringMLP(nn.Module):
    def __init__(self, n_in=288, hidden=64, layers=2):
        super().__init__()
        blocks, d = [], n_in
        for _ in range(layers):
            blocks += [nn.Linear(d, hidden), nn.SiLU(), nn.Dropout(0.1)]
            d = hidden
        self.trunk = nn.Sequential(*blocks)
        self.affinity = nn.Linear(hidden, 1)
        self.pose = nn.Linear(hidden, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.affinity(h).squeeze(-1), self.pose(h).squeeze(-1)


def enrichment_factor(scores, actives, frac=0.1):
    order = np.argsort(-scores)
    top = order[: max(1, int(len(order) * frac))]
    return actives[top].mean() / max(actives.mean(), 1e-9)


def run_epochs(model, opt, X, y, good_pose, epochs):
    xt, yt, gt = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(good_pose.astype(np.float32))
    losses = []
    for _ in range(epochs):
        opt.zero_grad()
        aff, pose = model(xt)
        loss = F.mse_loss(aff, yt) + F.binary_cross_entropy_with_logits(pose, gt)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def evaluate(model, X, y, good_pose):
    model.eval()
    with torch.no_grad():
        aff, pose = model(torch.from_numpy(X))
    aff, pose = aff.numpy(), torch.sigmoid(pose).numpy()
    return {
        "pearson": st.pearsonr(aff, y)[0],
        "spearman": st.spearmanr(aff, y).statistic,
        "mae": mean_absolute_error(y, aff),
        "pose_auc": roc_auc_score(good_pose, pose),
        "ef10": enrichment_factor(pose, good_pose.astype(float)),
    }


def setup(argv):
    args = build_parser().parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    complexes = synthetic_complexes(48, rng)
    X, y, rmsd = featurise(complexes)
    scaler = FeatureScaler().fit(X[:36])
    Xs = scaler.transform(X).astype(np.float32)
    good = rmsd < args.rmsd_cut
    model = ScoringMLP(Xs.shape[1], args.hidden, args.layers)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    return args, complexes, Xs, y, good, scaler, model, opt


# ------------------------------------------------------------------ checkpoints

def save_scoring_checkpoint(tmpdir):
    args, complexes, X, y, good, scaler, model, opt = setup(["--epochs", "4", "--hidden", "32"])
    losses = run_epochs(model, opt, X[:36], y[:36], good[:36], args.epochs)
    val = evaluate(model, X[36:], y[36:], good[36:])
    hparams = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": args.epochs,
        "args": args,  # truth: weights_only
        "hparams": hparams,
        "scaler": scaler.state(),
        "train_loss": losses[-1],
        "loss_curve": losses,
        "val_pearson": val["pearson"],  # truth: weights_only
        "val_spearman": float(val["spearman"]),
        "val_mae": val["mae"],
        "pose_auc": val["pose_auc"],
        "ef10": val["ef10"],  # truth: weights_only
        "box_center": box_center(complexes[:36]),  # truth: weights_only
        "box_size": list(args.box_size),
        "receptor": str(args.receptor),
        "elements": list(ELEMENTS),
        "metal_elements": METALS,  # truth: weights_only
        "cutoffs": CUTOFFS,
        "torch_version": str(torch.__version__),
        "saved_at": time.time(),
    }
    path = os.path.join(tmpdir, "scoring_last.pt")
    torch.save(ckpt, path)
    return path


def save_best_by_rmse(tmpdir):
    """Keeps the pose with best predicted score per complex and records the success rate."""
    args, complexes, X, y, good, scaler, model, opt = setup(["--epochs", "2"])
    run_epochs(model, opt, X, y, good, args.epochs)
    with torch.no_grad():
        _, logit = model(torch.from_numpy(X))
    rmsd = np.array([c["rmsd"] for c in complexes])
    top_idx = int(torch.argmax(logit))
    success = (rmsd[logit.numpy() > 0] < args.rmsd_cut)
    per_bin = defaultdict(list)
    for r, s in zip(rmsd.tolist(), torch.sigmoid(logit).tolist()):
        per_bin[min(int(r), 4)].append(s)
    ckpt = {"state_dict": model.state_dict()}
    ckpt["top_pose"] = complexes[top_idx]["id"]
    ckpt["top_rmsd"] = rmsd[top_idx]  # truth: weights_only
    ckpt["success_rate"] = float(success.mean()) if success.size else 0.0
    ckpt["n_success"] = int(success.sum())
    ckpt["score_by_rmsd_bin"] = {b: sum(v) / len(v) for b, v in sorted(per_bin.items())}
    ckpt["rmsd_bins"] = per_bin  # truth: weights_only
    ckpt["rmsd_cut"] = args.rmsd_cut
    ckpt["exhaustiveness"] = args.exhaustiveness
    path = os.path.join(tmpdir, "best_rmsd.pt")
    torch.save(ckpt, path)
    return path


class DockingTrainer:
    """Cross-validated trainer; keeps per-fold metrics and the best fold."""

    def __init__(self, hidden=32, lr=2e-3, folds=3, seed=3):
        self.hidden = hidden
        self.lr = lr
        self.folds = folds
        self.seed = seed
        self.fold_metrics = []
        self.best_fold = None
        self.best_pearson = -1.0
        self.started = time.time()

    def fit(self, X, y, good):
        n = len(X)
        idx = np.random.default_rng(self.seed).permutation(n)
        for k, test in enumerate(np.array_split(idx, self.folds)):
            train = np.setdiff1d(idx, test)
            model = ScoringMLP(X.shape[1], self.hidden)
            opt = torch.optim.Adam(model.parameters(), lr=self.lr)
            run_epochs(model, opt, X[train], y[train], good[train], 2)
            m = evaluate(model, X[test], y[test], good[test])
            self.fold_metrics.append({"fold": k, "pearson": float(m["pearson"]), "mae": m["mae"]})
            if m["pearson"] > self.best_pearson:
                self.best_pearson = m["pearson"]
                self.best_fold = k
                self.best_state = {k2: v.detach().clone() for k2, v in model.state_dict().items()}
        return self

    def cv_summary(self):
        pears = [m["pearson"] for m in self.fold_metrics]
        return {
            "cv_pearson_mean": sum(pears) / len(pears),
            "cv_pearson_std": statistics_std(pears),
            "folds": self.folds,
        }

    def mae_spread(self):
        maes = np.array([m["mae"] for m in self.fold_metrics])
        return maes.min(), maes.max()


def statistics_std(xs):
    mu = sum(xs) / len(xs)
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / max(len(xs) - 1, 1))


def save_cv_trainer(tmpdir):
    args, complexes, X, y, good, scaler, model, opt = setup([])
    trainer = DockingTrainer(hidden=16).fit(X, y, good)
    lo, hi = trainer.mae_spread()
    ckpt = OrderedDict(
        state_dict=trainer.best_state,
        best_fold=trainer.best_fold,
        best_pearson=trainer.best_pearson,  # truth: weights_only
        fold_metrics=trainer.fold_metrics,
        mae_min=float(lo),
        mae_max=float(hi),
        wall=time.time() - trainer.started,
    )
    ckpt.update(trainer.cv_summary())
    path = os.path.join(tmpdir, "cv.pt")
    torch.save(ckpt, path)
    return path


def save_vina_rescoring_table(tmpdir):
    """Per-ligand Vina vs learned scores, kept next to the weights for later analysis."""
    rng = np.random.default_rng(5)
    complexes = synthetic_complexes(20, rng)
    X, y, rmsd = featurise(complexes)
    vina = -0.6 * y + rng.normal(0, 0.7, size=len(y))
    rank_vina = st.rankdata(vina)
    rows = [{"id": c["id"], "vina": round(float(v), 3), "pkd": c["pkd"]} for c, v in zip(complexes, vina)]
    elem_counts = np.bincount(np.concatenate([c["lig_el"] for c in complexes]), minlength=6)
    random.seed(5)
    ckpt = {
        "rows": rows,
        "vina_rank": rank_vina.astype(int).tolist(),
        "vina_mean": float(np.mean(vina)),
        "vina_min": vina.min(),  # truth: weights_only
        "ligand_elements": dict(zip(ELEMENTS[:6], elem_counts.tolist())),
        "element_hist": elem_counts,  # truth: weights_only
        "kendall_tau": st.kendalltau(vina, y).statistic,  # truth: weights_only
        "rmse": math.sqrt(float(np.mean((vina + 0.6 * y) ** 2))),
        "features": torch.from_numpy(X[:4]),
        "feature_dtype": torch.float32,
        "py_rng": random.getstate(),
        "np_rng": rng.bit_generator.state,
    }
    path = os.path.join(tmpdir, "rescoring.pt")
    torch.save(ckpt, path)
    return path


def save_full_model(tmpdir):
    """Exports the whole scorer for the docking pipeline (`torch.save(model)`)."""
    args, complexes, X, y, good, scaler, model, opt = setup(["--layers", "1"])
    model.eval()
    path = os.path.join(tmpdir, "scorer_full.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_export_bundle(tmpdir):
    """Inference bundle: weights, normalisation stats and the search box, no optimizer."""
    args, complexes, X, y, good, scaler, model, opt = setup(["--hidden", "24"])
    center = box_center(complexes)
    bundle = {
        "weights": {k: v.half() for k, v in model.state_dict().items()},
        "norm": scaler.state(),
        "box": {"center": center.round(3).tolist(), "size": tuple(args.box_size)},
        "n_features": X.shape[1],
        "input_shape": torch.Size([1, X.shape[1]]),
        "device": torch.device("cpu"),
        "elements": {e: i for i, e in enumerate(ELEMENTS)},
        "metals": sorted(METALS),
        "pose_threshold": torch.tensor(0.5),
        "version": "dockscore-0.3",
    }
    path = os.path.join(tmpdir, "bundle.pt")
    torch.save(bundle, path)
    return path


FACTORIES = {
    "ScoringMLP": lambda: ScoringMLP(288, 16, 1),
}
