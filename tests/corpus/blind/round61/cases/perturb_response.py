"""Perturbation response prediction on a (synthetic) Perturb-seq screen.

Predicts the post-perturbation expression profile of a cell from its control
profile and the identity/dose of the perturbation.  Layout follows the usual
scGen / GEARS style scripts: argparse, pandas + sklearn preprocessing, a small
MLP, a trainer object and a couple of checkpoint writers.
"""
import argparse
import os
from collections import Counter, defaultdict
from datetime import datetime

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy.stats import pearsonr
from sklearn.decomposition import PCA
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.preprocessing import LabelEncoder, StandardScaler


def build_parser():
    p = argparse.ArgumentParser(description="perturbation response MLP")
    p.add_argument("--n-cells", type=int, default=360)
    p.add_argument("--n-genes", type=int, default=48)
    p.add_argument("--n-perts", type=int, default=6)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--pca-dims", type=int, default=12)
    p.add_argument("--de-top-k", type=int, default=10)
    p.add_argument("--holdout", nargs="*", default=["KLF1"])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default="runs/perturb")
    return p


# --------------------------------------------------------------------------- data

PERT_POOL = ["ctrl", "KLF1", "GATA1", "SPI1", "CEBPA", "TAL1", "RUNX1", "MYB"]


def make_synthetic_screen(n_cells, n_genes, n_perts, seed):
    rng = np.random.default_rng(seed)
    genes = [f"ENSG{10000 + i}" for i in range(n_genes)]
    perts = PERT_POOL[: n_perts + 1]
    base = rng.gamma(2.0, 1.5, size=n_genes)
    effects = {p: rng.normal(0, 0.8, size=n_genes) * (p != "ctrl") for p in perts}
    rows, obs = [], []
    for i in range(n_cells):
        pert = perts[i % len(perts)]
        dose = 0.0 if pert == "ctrl" else float(rng.choice([0.1, 1.0, 10.0]))
        mu = np.exp(np.log(base) + effects[pert] * np.log1p(dose))
        rows.append(rng.poisson(mu))
        obs.append({"perturbation": pert, "dose": dose, "cell_type": "K562" if i % 3 else "HEK293"})
    counts = pd.DataFrame(np.stack(rows), columns=genes)
    return counts, pd.DataFrame(obs)


def normalize_log1p(counts, target_sum=1e4):
    lib = counts.sum(axis=1).to_numpy()[:, None]
    return np.log1p(counts.to_numpy() / np.maximum(lib, 1) * target_sum)


def highly_variable(expr, n_top):
    mean = expr.mean(axis=0)
    disp = expr.var(axis=0) / np.maximum(mean, 1e-8)
    order = np.argsort(-disp)
    return order[:n_top], disp


def rank_de_genes(expr, obs, control_mean, top_k):
    """Top-k |mean shift| genes per perturbation (indices into the gene axis)."""
    out = {}
    for pert, idx in obs.groupby("perturbation").groups.items():
        if pert == "ctrl":
            continue
        shift = np.abs(expr[np.asarray(idx)].mean(axis=0) - control_mean)
        out[pert] = np.argsort(-shift)[:top_k].tolist()
    return out


def preprocess(args):
    counts, obs = make_synthetic_screen(args.n_cells, args.n_genes, args.n_perts, args.seed)
    expr = normalize_log1p(counts)
    scaler = StandardScaler().fit(expr)
    encoder = LabelEncoder().fit(obs["perturbation"])
    pca = PCA(n_components=args.pca_dims, random_state=args.seed).fit(scaler.transform(expr))
    ctrl = obs["perturbation"].eq("ctrl").to_numpy()
    control_mean = expr[ctrl].mean(axis=0)
    de = rank_de_genes(expr, obs, control_mean, args.de_top_k)
    return counts.columns, expr, obs, scaler, encoder, pca, control_mean, de


# -------------------------------------------------------------------------- model

class PerturbMLP(nn.Module):
    def __init__(self, n_genes=48, n_perts=7, hidden=64, latent=16):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_genes, hidden), nn.GELU(), nn.Linear(hidden, latent))
        self.pert_emb = nn.Embedding(n_perts, latent)
        self.dose_gate = nn.Linear(1, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.GELU(), nn.Linear(hidden, n_genes))

    def forward(self, x_ctrl, pert, dose):
        z = self.encoder(x_ctrl)
        z = z + self.pert_emb(pert) * torch.sigmoid(self.dose_gate(torch.log1p(dose)[:, None]))
        return x_ctrl + self.decoder(z)


class PerturbTrainer:
    def __init__(self, model, expr, obs, encoder, control_mean, de_genes, lr=3e-3, holdout=()):
        self.model = model
        self.expr = torch.tensor(expr, dtype=torch.float32)
        self.pert_idx = torch.tensor(encoder.transform(obs["perturbation"]), dtype=torch.long)
        self.dose = torch.tensor(obs["dose"].to_numpy(), dtype=torch.float32)
        self.ctrl = torch.tensor(control_mean, dtype=torch.float32)
        self.de_genes = de_genes
        self.pert_names = obs["perturbation"].to_numpy(dtype=str)
        self.holdout = set(holdout)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        self.history = defaultdict(list)
        self.best_score = -1.0
        self.best_epoch = 0
        self.epoch = 0

    def _train_mask(self):
        return torch.tensor([p not in self.holdout for p in self.pert_names])

    def train_epoch(self, batch_size=64):
        self.model.train()
        mask = self._train_mask()
        idx = torch.nonzero(mask).squeeze(1)
        idx = idx[torch.randperm(len(idx))]
        losses = []
        for start in range(0, len(idx), batch_size):
            b = idx[start:start + batch_size]
            x0 = self.ctrl.expand(len(b), -1)
            pred = self.model(x0, self.pert_idx[b], self.dose[b])
            loss = nn.functional.mse_loss(pred, self.expr[b])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.epoch += 1
        return float(np.mean(losses)), len(losses)

    @torch.no_grad()
    def evaluate(self):
        self.model.eval()
        x0 = self.ctrl.expand(len(self.expr), -1)
        pred = self.model(x0, self.pert_idx, self.dose).numpy()
        true = self.expr.numpy()
        ctrl = self.ctrl.numpy()
        deltas_true, deltas_pred, per_pert = [], [], defaultdict(list)
        for pert, genes in self.de_genes.items():
            rows = self.pert_names == pert
            dt = true[rows].mean(axis=0) - ctrl
            dp = pred[rows].mean(axis=0) - ctrl
            deltas_true.append(dt[genes])
            deltas_pred.append(dp[genes])
            per_pert[pert].append(r2_score(true[rows][:, genes], pred[rows][:, genes]))
        dt, dp = np.concatenate(deltas_true), np.concatenate(deltas_pred)
        return {
            "pearson_delta": pearsonr(dt, dp)[0],
            "mse_de": mean_squared_error(dt, dp),
            "r2_all": r2_score(true, pred),
            "per_pert": per_pert,
        }

    def fit(self, epochs):
        for _ in range(epochs):
            loss, steps = self.train_epoch()
            metrics = self.evaluate()
            self.history["loss"].append(loss)
            self.history["pearson_delta"].append(float(metrics["pearson_delta"]))
            score = metrics["pearson_delta"]
            if score > self.best_score:
                self.best_score = score
                self.best_epoch = self.epoch
        return metrics


def _setup(argv=()):
    args = build_parser().parse_args(list(argv))
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    genes, expr, obs, scaler, encoder, pca, control_mean, de = preprocess(args)
    model = PerturbMLP(len(genes), len(encoder.classes_), args.hidden, args.latent)
    trainer = PerturbTrainer(model, expr, obs, encoder, control_mean, de, lr=args.lr, holdout=args.holdout)
    return args, genes, expr, obs, scaler, encoder, pca, control_mean, de, trainer


# --------------------------------------------------------------------- checkpoints

def save_full_run(tmpdir):
    args, genes, expr, obs, scaler, encoder, pca, control_mean, de, trainer = _setup()
    metrics = trainer.fit(args.epochs)
    path = os.path.join(tmpdir, "perturb_mlp.pt")
    torch.save(
        {
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "epoch": trainer.epoch,
            "args": args,  # truth: weights_only
            "gene_names": genes,  # truth: weights_only
            "perturbations": encoder.classes_,  # truth: weights_only
            "val": {
                "pearson_delta": metrics["pearson_delta"],  # truth: weights_only
                "mse_de": metrics["mse_de"],
                "r2_all": metrics["r2_all"],
            },
            "best_epoch": trainer.best_epoch,
            "best_score": trainer.best_score,  # truth: weights_only
        },
        path,
    )
    return path


def save_portable(tmpdir):
    """The 'shareable' variant that the README tells people to load with plain torch.load."""
    args, genes, expr, obs, scaler, encoder, pca, control_mean, de, trainer = _setup(["--epochs", "2"])
    metrics = trainer.fit(args.epochs)
    ckpt = {
        "model": trainer.model.state_dict(),
        "hparams": vars(args),
        "gene_names": genes.tolist(),
        "perturbations": encoder.classes_.tolist(),
        "control_mean": torch.from_numpy(control_mean).float(),
        "scaler": {"mean": torch.tensor(scaler.mean_), "scale": torch.tensor(scaler.scale_)},
        "de_genes": de,
        "history": dict(trainer.history),
        "best_score": float(trainer.best_score),
        "n_cells_per_pert": Counter(obs["perturbation"].tolist()),
        "dose_levels": sorted(obs["dose"].unique().tolist()),
        "metrics": {k: float(v) for k, v in metrics.items() if k != "per_pert"},
    }
    ckpt["holdout"] = sorted(trainer.holdout)
    ckpt["created"] = datetime.now().isoformat(timespec="seconds")
    ckpt["torch"] = str(torch.__version__)
    path = os.path.join(tmpdir, "perturb_mlp_portable.pt")
    torch.save(ckpt, path)
    return path


def _preprocessing_state(scaler, pca, expr, n_top):
    hvg, disp = highly_variable(expr, n_top)
    explained = pca.explained_variance_ratio_
    return {
        "scaler_mean": torch.as_tensor(scaler.mean_, dtype=torch.float32),
        "hvg_idx": hvg.tolist(),
        "disp_max": float(disp.max()),
        "explained_total": explained.sum(),
        "n_components": pca.n_components_,
    }


def save_preprocessing(tmpdir):
    args, genes, expr, obs, scaler, encoder, pca, control_mean, de, trainer = _setup(["--epochs", "1"])
    state = _preprocessing_state(scaler, pca, expr, n_top=24)
    dose = obs.loc[obs["perturbation"] != "ctrl", "dose"]
    bundle = dict(
        pca=pca,  # truth: weights_only
        components=torch.from_numpy(pca.components_.copy()),
        explained_total=state["explained_total"],  # truth: weights_only
        hvg_idx=state["hvg_idx"],
        n_hvg=int(len(state["hvg_idx"])),
        disp_max=state["disp_max"],
        scaler_mean=state["scaler_mean"],
        dose_range=(dose.min(), dose.max()),  # truth: weights_only
        n_doses=dose.nunique(),
        control_mean=control_mean,  # truth: weights_only
        lib_size_median=float(np.median(expr.sum(axis=1))),
    )
    bundle.update(n_components=state["n_components"], gene_order=list(genes))
    path = os.path.join(tmpdir, "preprocessing.pt")
    torch.save(bundle, path)
    return path


def save_eval_report(tmpdir):
    args, genes, expr, obs, scaler, encoder, pca, control_mean, de, trainer = _setup(["--epochs", "2"])
    metrics = trainer.fit(args.epochs)
    report = {"epoch": trainer.epoch, "n_eval_perts": len(de)}
    summary = {}
    for pert, scores in metrics["per_pert"].items():
        summary[pert] = round(float(np.mean(scores)), 4)
    report["per_pert_r2"] = metrics["per_pert"]  # truth: weights_only
    report["per_pert_summary"] = summary
    report["holdout"] = frozenset(trainer.holdout)  # truth: weights_only
    report["worst_pert"] = min(summary, key=summary.get)
    report.update(
        {
            "r2_all": metrics["r2_all"],
            "pearson_last": trainer.history["pearson_delta"][-1],
            "rng": np.random.get_state(),  # truth: weights_only
            "torch_rng": torch.get_rng_state(),
        }
    )
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


FACTORIES = {
    "PerturbTrainer": lambda: _setup(["--epochs", "1"])[-1],
}
