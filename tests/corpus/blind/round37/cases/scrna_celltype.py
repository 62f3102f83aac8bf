"""Cell-type annotation on a log-normalised expression matrix.

HVG selection (Seurat-style dispersion bins), a small MLP classifier, label transfer from a
reference atlas to a query batch, and batch-effect statistics.  scanpy-free: numpy, pandas and
scikit-learn only, so it runs on the cluster image without the anndata stack.
"""
import argparse
import datetime
import os
import time
from collections import Counter, defaultdict, deque
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, balanced_accuracy_score, f1_score, silhouette_score
from sklearn.preprocessing import LabelEncoder, StandardScaler

CELL_TYPES = ("T", "B", "NK", "Mono")


# ----------------------------------------------------------------------------- data helpers

def simulate_counts(n_cells=160, n_genes=80, n_batches=3, seed=0):
    rng = np.random.default_rng(seed)
    types = rng.choice(CELL_TYPES, size=n_cells)
    lam = np.full((n_cells, n_genes), 1.5)
    for j, t in enumerate(CELL_TYPES):
        lam[types == t, j * 5:(j + 1) * 5] += 6.0  # marker genes
    counts = rng.poisson(lam).astype(np.float32)
    obs = pd.DataFrame({
        "cell_type": types,
        "batch": rng.choice([f"donor{i}" for i in range(n_batches)], size=n_cells),
        "pct_mito": rng.uniform(0, 0.2, size=n_cells),
    })
    obs["n_counts"] = counts.sum(1)
    obs["n_genes"] = (counts > 0).sum(1)
    var_names = pd.Index([f"G{i:03d}" for i in range(n_genes - 3)] + ["MT-CO1", "MT-ND1", "MT-ATP6"])
    return counts, obs, var_names


def normalize_log1p(counts, target_sum=1e4):
    size = counts.sum(1, keepdims=True)
    return np.log1p(counts / np.maximum(size, 1.0) * target_sum).astype(np.float32)


def highly_variable_genes(X, var_names, n_top=24, n_bins=5):
    """Returns (mask, table).  The mask is a bool ndarray over var_names."""
    mean, var = X.mean(0), X.var(0)
    disp = np.log(var / np.maximum(mean, 1e-12) + 1e-12)
    df = pd.DataFrame({"mean": mean, "dispersion": disp}, index=var_names)
    df["bin"] = pd.cut(df["mean"], bins=n_bins, labels=False)
    grp = df.groupby("bin")["dispersion"]
    df["disp_norm"] = (df["dispersion"] - grp.transform("mean")) / grp.transform("std").fillna(1.0)
    df.loc[df.index.str.startswith("MT-"), "disp_norm"] = -np.inf
    top = df["disp_norm"].nlargest(n_top).index
    return df.index.isin(top), df


def batch_effect_stats(Z, batches):
    """Centroid distance of each batch to the global centroid, and silhouette on batch labels."""
    centroids = pd.DataFrame(Z).groupby(np.asarray(batches)).mean()
    dist = np.linalg.norm(centroids.values - Z.mean(0), axis=1)
    sil = silhouette_score(Z, batches)
    return dict(zip(centroids.index, dist)), sil, centroids


def knn_batch_mixing(Z, batches, k=10):
    """kBET-ish acceptance: fraction of cells whose k-NN batch mix is close to the global mix."""
    batches = np.asarray(batches)
    d = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1)
    nn_idx = np.argsort(d, axis=1)[:, 1:k + 1]
    global_frac = pd.Series(batches).value_counts(normalize=True)
    accept = []
    for i in range(len(Z)):
        local = pd.Series(batches[nn_idx[i]]).value_counts(normalize=True)
        tv = 0.5 * (local.reindex(global_frac.index, fill_value=0) - global_frac).abs().sum()
        accept.append(tv < 0.25)
    return np.array(accept)


# ----------------------------------------------------------------------------- model + training

class CellTypeMLP(nn.Module):
    def __init__(self, n_in=24, n_hidden=32, n_out=4, dropout=0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(n_hidden, n_out))

    def forward(self, x):
        return self.net(x)


class EarlyStopping:
    def __init__(self, patience=4, min_delta=1e-4):
        self.patience = patience
        self.min_delta = min_delta
        self.best = None
        self.bad_epochs = 0
        self.window = deque(maxlen=patience)

    def step(self, value):
        self.window.append(value)
        if self.best is None or value > self.best + self.min_delta:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs > self.patience

    def state_dict(self):
        return {"best": self.best, "bad_epochs": self.bad_epochs, "window": list(self.window)}


class CellTypeTrainer:
    def __init__(self, n_in=24, n_out=4, lr=3e-3, epochs=6):
        self.model = CellTypeMLP(n_in=n_in, n_out=n_out)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=1e-4)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=epochs)
        self.epochs = epochs
        self.history = defaultdict(list)
        self.best_f1 = -1.0
        self.best_epoch = None
        self.best_state = None
        self.stopper = EarlyStopping()

    def fit(self, X, y, X_val, y_val):
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y).long()
        for epoch in range(self.epochs):
            self.model.train()
            self.opt.zero_grad()
            loss = F.cross_entropy(self.model(Xt), yt)
            loss.backward()
            self.opt.step()
            self.sched.step()
            m = self.evaluate(X_val, y_val)
            self.history["loss"].append(loss.item())
            self.history["macro_f1"].append(m["macro_f1"])
            self.history["lr"].append(self.sched.get_last_lr()[0])
            if m["macro_f1"] > self.best_f1:
                self.best_f1, self.best_epoch = m["macro_f1"], epoch
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if self.stopper.step(m["macro_f1"]):
                break
        return self

    @torch.no_grad()
    def evaluate(self, X, y):
        self.model.eval()
        logits = self.model(torch.from_numpy(X))
        pred = logits.argmax(1).numpy()
        conf = logits.softmax(1).max(1).values
        return {
            "macro_f1": f1_score(y, pred, average="macro"),
            "balanced_acc": balanced_accuracy_score(y, pred),
            "acc": (pred == y).mean(),
            "mean_conf": conf.mean().item(),
            "pred": pred,
        }


def prepare(seed=0, n_top=24):
    counts, obs, var_names = simulate_counts(seed=seed)
    X = normalize_log1p(counts)
    hvg_mask, hvg_table = highly_variable_genes(X, var_names, n_top=n_top)
    scaler = StandardScaler().fit(X[:, hvg_mask])
    Xh = scaler.transform(X[:, hvg_mask]).astype(np.float32)
    le = LabelEncoder().fit(obs["cell_type"])
    y = le.transform(obs["cell_type"])
    return Xh, y, obs, var_names, hvg_mask, hvg_table, scaler, le


# ----------------------------------------------------------------------------- checkpoints

def save_hvg_classifier(tmpdir):
    Xh, y, obs, var_names, hvg_mask, hvg_table, scaler, le = prepare()
    split = int(0.75 * len(y))
    trainer = CellTypeTrainer(n_in=Xh.shape[1], n_out=len(le.classes_)).fit(
        Xh[:split], y[:split], Xh[split:], y[split:])
    metrics = trainer.evaluate(Xh[split:], y[split:])

    ckpt = {
        "model": trainer.model.state_dict(),
        "best_state": trainer.best_state,
        "optimizer": trainer.opt.state_dict(),
        "scheduler": trainer.sched.state_dict(),
        "hvg_mask": hvg_mask,  # truth: weights_only
        "hvg_genes": var_names[hvg_mask].tolist(),
        "n_hvg": int(hvg_mask.sum()),
        "classes": le.classes_.tolist(),
        "label_encoder": le,  # truth: weights_only
    }
    ckpt["gene_mean"] = torch.from_numpy(scaler.mean_).float()
    ckpt["gene_scale"] = torch.as_tensor(scaler.scale_, dtype=torch.float32)
    ckpt["best_f1"] = trainer.best_f1
    ckpt["best_epoch"] = trainer.best_epoch
    ckpt["val_balanced_acc"] = metrics["balanced_acc"]
    ckpt["val_acc"] = metrics["acc"]  # truth: weights_only
    ckpt["val_mean_conf"] = metrics["mean_conf"]
    ckpt["history"] = trainer.history  # truth: weights_only
    ckpt["early_stopping"] = trainer.stopper.state_dict()
    ckpt["dispersion_top"] = hvg_table["disp_norm"].nlargest(5).round(3).to_dict()
    ckpt["n_cells"] = len(obs)

    path = os.path.join(tmpdir, "celltype_mlp.pt")
    torch.save(ckpt, path)
    return path


def save_batch_report(tmpdir):
    Xh, y, obs, *_ = prepare(seed=1)
    pca = PCA(n_components=8, random_state=0).fit(Xh)
    Z = pca.transform(Xh)
    dist_by_batch, sil, centroids = batch_effect_stats(Z, obs["batch"].to_numpy())
    accept = knn_batch_mixing(Z, obs["batch"].to_numpy())
    pred_clusters = np.argmax(Z[:, :4], axis=1)

    report = {}
    report["silhouette_batch"] = sil
    report["ari_cluster_vs_type"] = adjusted_rand_score(y, pred_clusters)
    report["centroid_dist"] = {b: round(float(d), 4) for b, d in dist_by_batch.items()}
    report["worst_batch"] = max(dist_by_batch, key=dist_by_batch.get)
    report["worst_batch_dist"] = float(max(dist_by_batch.values()))
    report["centroids"] = centroids  # truth: weights_only
    report["kbet_accept"] = accept.mean()  # truth: weights_only
    report["kbet_n_rejected"] = int((~accept).sum())
    report.update(
        batch_sizes=obs["batch"].value_counts().to_dict(),
        batch_frac=obs["batch"].value_counts(normalize=True).to_dict(),
        pca_var_ratio=pca.explained_variance_ratio_.round(4).tolist(),
        n_pcs=pca.n_components_,
        pca_components=torch.tensor(pca.components_, dtype=torch.float32),
    )
    path = os.path.join(tmpdir, "batch_report.pt")
    torch.save({"report": report, "created": time.time()}, path)
    return path


def save_label_transfer(tmpdir):
    Xh, y, obs, var_names, hvg_mask, _, scaler, le = prepare(seed=2)
    ref = obs["batch"].to_numpy() != "donor2"
    trainer = CellTypeTrainer(n_in=Xh.shape[1], n_out=len(le.classes_), epochs=4)
    trainer.fit(Xh[ref], y[ref], Xh[ref], y[ref])
    m = trainer.evaluate(Xh[~ref], y[~ref])
    pred = m["pred"]

    transferred = le.inverse_transform(pred)
    out = dict(
        state_dict=trainer.model.state_dict(),
        label_map=dict(zip(le.classes_, range(len(le.classes_)))),
        label_names={i: c for i, c in enumerate(le.classes_.tolist())},
        query_pred_counts=Counter(transferred.tolist()),
        query_codes_seen=set(np.unique(pred)),  # truth: weights_only
        ref_codes=sorted(set(y[ref].tolist())),
        code_q10=float(np.quantile(pred, 0.1)),
        query_f1=m["macro_f1"],
        query_balanced_acc=round(m["balanced_acc"], 4),
        query_cells=int((~ref).sum()),
    )
    path = os.path.join(tmpdir, "label_transfer.pt")
    torch.save(out, path)
    return path


def build_parser():
    p = argparse.ArgumentParser("celltype")
    p.add_argument("--h5ad", type=Path, default=Path("data/pbmc3k.h5ad"))
    p.add_argument("--out", type=str, default="runs/celltype")
    p.add_argument("--n-top-genes", type=int, default=24)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    return p


def save_resume(tmpdir):
    args = build_parser().parse_args(["--epochs", "3"])
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = datetime.datetime.now()
    Xh, y, *_ = prepare(seed=args.seed, n_top=args.n_top_genes)
    trainer = CellTypeTrainer(n_in=Xh.shape[1], lr=args.lr, epochs=args.epochs).fit(Xh, y, Xh, y)

    state = {"epoch": args.epochs, "model": trainer.model.state_dict()}
    state["optimizer"] = trainer.opt.state_dict()
    state["scheduler"] = trainer.sched  # truth: weights_only
    state["args"] = args  # truth: weights_only
    state["args_plain"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    state["h5ad"] = os.fspath(args.h5ad)
    state["out"] = args.out
    state["rng"] = {
        "numpy_legacy": np.random.get_state(),  # truth: weights_only
        "numpy_gen": rng.bit_generator.state,
        "torch": torch.get_rng_state(),
    }
    state["history"] = dict(trainer.history)
    state["elapsed_s"] = (datetime.datetime.now() - t0).total_seconds()
    state["finished_at"] = datetime.datetime.now().isoformat(timespec="seconds")
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(state, path)
    return path


def save_qc_thresholds(tmpdir):
    """Clean: every statistic is turned into a Python scalar before it goes in."""
    counts, obs, var_names = simulate_counts(seed=3)
    mito = var_names.str.startswith("MT-")
    pct_mito = counts[:, mito].sum(1) / np.maximum(counts.sum(1), 1)
    qc = {
        "min_genes": int(np.percentile(obs["n_genes"], 5)),
        "max_counts": float(obs["n_counts"].quantile(0.98)),
        "pct_mito_median": float(np.median(pct_mito)),
        "pct_mito_cut": round(float(np.percentile(pct_mito, 95)), 4),
        "mito_genes": var_names[mito].tolist(),
        "n_cells_pass": int((obs["n_genes"] > 10).sum()),
        "per_batch_median_counts": obs.groupby("batch")["n_counts"].median().to_dict(),
        "cell_type_counts": dict(Counter(obs["cell_type"].tolist())),
        "counts_shape": tuple(counts.shape),
        "dtype": str(counts.dtype),
        "summary": obs[["n_counts", "n_genes"]].describe().round(2).to_dict(),
    }
    path = os.path.join(tmpdir, "qc.pt")
    torch.save(qc, path)
    return path
