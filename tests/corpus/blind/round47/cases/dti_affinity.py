"""DeepDTA-style drug-target binding affinity regression (Davis / KIBA layout).

Two 1D-CNN branches (SMILES characters, protein residues) feed a small MLP that
predicts pKd. Checkpoints are read back by the evaluation notebook and by the
virtual-screening job, so they carry preprocessing state next to the weights.
"""
import argparse
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats
from sklearn.metrics import mean_squared_error, roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

SMILES_CHARSET = "#%()+-./0123456789=@ABCDEFGHIKLMNOPRSTUVWXYZ[\\]abcdefghilmnorstuy"
PROTEIN_CHARSET = "ACDEFGHIKLMNPQRSTVWXY"
SMILES_VOCAB = {ch: i + 1 for i, ch in enumerate(SMILES_CHARSET)}
PROTEIN_VOCAB = {ch: i + 1 for i, ch in enumerate(PROTEIN_CHARSET)}

_DRUGS = [
    "CC(=O)Oc1ccccc1C(=O)O",
    "CN1CCC[C@H]1c2cccnc2",
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "O=C(O)c1ccccc1O",
    "CCN(CC)CC",
    "c1ccc2ccccc2c1",
]
_TARGETS = [
    "MKTAYIAKQRQISFVKSHFSRQ",
    "MSEQLKCLDNLKAGLPVLAAAE",
    "MGSSHHHHHHSSGLVPRGSHMA",
    "MPKKRKVEDPLLEHHHHHH",
]


@dataclass
class DTIConfig:
    dataset: str = "davis"
    embed_dim: int = 8
    n_filters: int = 8
    drug_kernel: int = 4
    prot_kernel: int = 6
    max_smiles_len: int = 32
    max_prot_len: int = 24
    lr: float = 1e-3
    epochs: int = 2
    batch_size: int = 8
    tags: list = field(default_factory=lambda: ["deepdta", "cnn"])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train DeepDTA on Davis/KIBA")
    p.add_argument("--dataset", default="davis", choices=["davis", "kiba"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-smiles-len", type=int, default=32)
    p.add_argument("--max-prot-len", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="runs/deepdta")
    return p.parse_args(argv)


def load_davis_like(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i, smi in enumerate(_DRUGS):
        for j, seq in enumerate(_TARGETS):
            rows.append({"drug_id": f"D{i:03d}", "target_id": f"T{j:03d}", "smiles": smi,
                         "sequence": seq, "kd_nm": float(10 ** rng.uniform(0, 4))})
    df = pd.DataFrame(rows)
    df["pkd"] = -np.log10(df["kd_nm"] / 1e9)
    return df


def encode(text, vocab, max_len):
    ids = [vocab.get(ch, 0) for ch in text[:max_len]]
    return ids + [0] * (max_len - len(ids))


def to_tensors(df, max_smiles_len, max_prot_len, label="pkd"):
    d = torch.tensor([encode(s, SMILES_VOCAB, max_smiles_len) for s in df["smiles"]])
    t = torch.tensor([encode(s, PROTEIN_VOCAB, max_prot_len) for s in df["sequence"]])
    y = torch.tensor(df[label].to_numpy(), dtype=torch.float32)
    return d, t, y


class CNNBranch(nn.Module):
    def __init__(self, vocab_size, embed_dim, n_filters, kernel):
        super().__init__()
        self.emb = nn.Embedding(vocab_size + 1, embed_dim, padding_idx=0)
        self.conv = nn.Conv1d(embed_dim, n_filters, kernel)

    def forward(self, x):
        h = F.relu(self.conv(self.emb(x).transpose(1, 2)))
        return h.max(dim=-1).values


class DeepDTA(nn.Module):
    def __init__(self, cfg: DTIConfig):
        super().__init__()
        self.drug = CNNBranch(len(SMILES_VOCAB), cfg.embed_dim, cfg.n_filters, cfg.drug_kernel)
        self.prot = CNNBranch(len(PROTEIN_VOCAB), cfg.embed_dim, cfg.n_filters, cfg.prot_kernel)
        self.head = nn.Sequential(nn.Linear(2 * cfg.n_filters, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, d, t):
        return self.head(torch.cat([self.drug(d), self.prot(t)], dim=-1)).squeeze(-1)


def concordance_index(y, f):
    order = np.argsort(y)
    y, f = y[order], f[order]
    num, den = 0.0, 0.0
    for i in range(len(y)):
        for j in range(i):
            if y[i] > y[j]:
                den += 1
                num += (f[i] > f[j]) + 0.5 * (f[i] == f[j])
    return num / den if den else 0.0


def train(model, d, t, y, epochs, lr, batch_size):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        perm = torch.randperm(len(y))
        losses = []
        for s in range(0, len(y), batch_size):
            idx = perm[s:s + batch_size]
            loss = F.mse_loss(model(d[idx], t[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history.append({"epoch": epoch, "train_mse": sum(losses) / len(losses)})
    return opt, history


@torch.no_grad()
def evaluate(model, d, t, y):
    pred = model(d, t).numpy()
    true = y.numpy()
    binder = true >= np.median(true)
    return {
        "mse": mean_squared_error(true, pred),
        "ci": concordance_index(true, pred),
        "pearson": stats.pearsonr(true, pred)[0],
        "spearman": float(stats.spearmanr(true, pred).statistic),
        "auc": roc_auc_score(binder, pred),
    }


def describe_affinities(df):
    return {
        "mean": df["pkd"].mean(),
        "std": float(df["pkd"].std()),
        "n_pairs": len(df),
        "n_drugs": df["drug_id"].nunique(),
        "kd_max": df["kd_nm"].max(),
        "frac_binders": (df["pkd"] >= 7.0).mean(),
        "kd_quantiles": df["kd_nm"].quantile([0.1, 0.5, 0.9]).tolist(),
    }


def save_deepdta_run(tmpdir):
    args = parse_args(["--epochs", "2", "--out-dir", tmpdir])
    torch.manual_seed(args.seed)
    df = load_davis_like(args.seed)
    cfg = DTIConfig(max_smiles_len=args.max_smiles_len, max_prot_len=args.max_prot_len, lr=args.lr)
    d, t, y = to_tensors(df, args.max_smiles_len, args.max_prot_len)
    model = DeepDTA(cfg)
    opt, history = train(model, d, t, y, args.epochs, args.lr, args.batch_size)
    metrics = evaluate(model, d, t, y)
    ckpt = {
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": opt.state_dict(),
        "epoch": args.epochs,
        "args": vars(args),
        "history": history,
        "smiles_vocab": SMILES_VOCAB,
        "max_len": {"smiles": args.max_smiles_len, "protein": args.max_prot_len},
        "val_mse": metrics["mse"],
        "val_ci": metrics["ci"],  # truth: weights_only
        "val_pearson": metrics["pearson"],  # truth: weights_only
        "val_spearman": metrics["spearman"],
        "val_auc": metrics["auc"],
    }
    path = os.path.join(args.out_dir, f"deepdta_{args.dataset}_e{args.epochs}.pt")
    torch.save(ckpt, path)
    return path


def save_label_normalised(tmpdir):
    df = load_davis_like(1)
    scaler = StandardScaler().fit(df[["pkd"]])
    df["pkd_z"] = scaler.transform(df[["pkd"]]).ravel()
    cfg = DTIConfig(epochs=1)
    d, t, y = to_tensors(df, cfg.max_smiles_len, cfg.max_prot_len, label="pkd_z")
    model = DeepDTA(cfg)
    train(model, d, t, y, cfg.epochs, cfg.lr, cfg.batch_size)
    aff = describe_affinities(df)
    ckpt = {"state_dict": model.state_dict(), "config": asdict(cfg)}
    ckpt["label_scaler"] = scaler  # truth: weights_only
    ckpt["label_transform"] = {
        "kind": "standard",
        "center": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "n_features": scaler.n_features_in_,
    }
    ckpt["affinity_stats"] = {}
    ckpt["affinity_stats"]["mean"] = aff["mean"]  # truth: weights_only
    ckpt["affinity_stats"]["std"] = aff["std"]
    ckpt["affinity_stats"]["n_pairs"] = aff["n_pairs"]
    ckpt["affinity_stats"]["n_drugs"] = aff["n_drugs"]
    ckpt["affinity_stats"]["kd_quantiles"] = aff["kd_quantiles"]
    ckpt["affinity_stats"]["frac_binders"] = aff["frac_binders"]  # truth: weights_only
    ckpt["kd_max_nm"] = float(aff["kd_max"])
    path = os.path.join(tmpdir, "deepdta_zscore.pt")
    torch.save(ckpt, path)
    return path


def save_cold_drug_cv(tmpdir):
    df = load_davis_like(2)
    cfg = DTIConfig(epochs=1)
    gkf = GroupKFold(n_splits=3)
    fold_scores, test_drugs = [], []
    for fold, (tr, te) in enumerate(gkf.split(df, groups=df["drug_id"])):
        torch.manual_seed(fold)
        model = DeepDTA(cfg)
        train(model, *to_tensors(df.iloc[tr], cfg.max_smiles_len, cfg.max_prot_len), cfg.epochs, cfg.lr, cfg.batch_size)
        m = evaluate(model, *to_tensors(df.iloc[te], cfg.max_smiles_len, cfg.max_prot_len))
        fold_scores.append({"fold": fold, "ci": m["ci"], "mse": m["mse"]})
        test_drugs.append(sorted(df["drug_id"].iloc[te].unique().tolist()))
    summary = {f"mean_{k}": float(np.mean([s[k] for s in fold_scores])) for k in ("ci", "mse")}
    summary["std_ci"] = float(np.std([s["ci"] for s in fold_scores]))
    ckpt = {
        "protocol": "cold-drug",
        "fold_scores": fold_scores,  # truth: weights_only
        "fold_mse": [s["mse"] for s in fold_scores],
        "summary": summary,
        "splitter": gkf,  # truth: weights_only
        "splitter_params": {"n_splits": gkf.n_splits, "groups": "drug_id"},
        "test_drugs": test_drugs,
        "best_fold": int(np.argmax([s["ci"] for s in fold_scores])),
        "best_fold_ci": max(s["ci"] for s in fold_scores),  # truth: weights_only
        "fold_sizes": [len(x) for x in test_drugs],
        "state_dict": model.state_dict(),
    }
    path = os.path.join(tmpdir, "cold_drug_cv.pt")
    torch.save(ckpt, path)
    return path


def screen_library(model, df, target_seq, cfg, k=3):
    library = df.drop_duplicates("drug_id")
    d = torch.tensor([encode(s, SMILES_VOCAB, cfg.max_smiles_len) for s in library["smiles"]])
    t = torch.tensor([encode(target_seq, PROTEIN_VOCAB, cfg.max_prot_len)] * len(library))
    with torch.no_grad():
        scores = model(d, t)
    return library["drug_id"].unique(), torch.topk(scores, k=k)


def save_screening_export(tmpdir):
    cfg = DTIConfig()
    df = load_davis_like(3)
    model = DeepDTA(cfg)
    drug_ids, top = screen_library(model, df, _TARGETS[0], cfg)
    cutoff_nm = 100.0
    export = dict(
        model=model.state_dict(),
        target_sequence=_TARGETS[0],
        top_hits=top,  # truth: weights_only
        top_indices=top.indices.tolist(),
        top_scores=top.values,
        ranked_drug_ids=[drug_ids[i] for i in top.indices.tolist()],
        library_ids=drug_ids,  # truth: weights_only
        library_size=len(drug_ids),
        cutoff_nm=cutoff_nm,
        cutoff_pkd=-math.log10(cutoff_nm * 1e-9),
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    export.update(hit_threshold=-np.log10(cutoff_nm * 1e-9))  # truth: weights_only
    path = os.path.join(tmpdir, "screen_T000.pt")
    torch.save(export, path)
    return path


def save_config_snapshot(tmpdir):
    cfg = DTIConfig(dataset="kiba", epochs=1)
    df = load_davis_like(4)
    smiles_lens = df["smiles"].str.len().to_numpy()
    prot_lens = df["sequence"].str.len().to_numpy()
    model = DeepDTA(cfg)
    snapshot = {
        "state_dict": model.state_dict(),
        "config": cfg,  # truth: weights_only
        "config_dict": asdict(cfg),
        "protein_alphabet": PROTEIN_CHARSET,
        "smiles_len_p95": int(np.percentile(smiles_lens, 95)),
        "protein_len_p95": np.percentile(prot_lens, 95),  # truth: weights_only
        "protein_len_max": int(prot_lens.max()),
        "param_count": sum(p.numel() for p in model.parameters()),
        "torch_version": str(torch.__version__),
        "numpy_version": np.__version__,
        "dtype": torch.float32,
        "device": torch.device("cpu"),
    }
    path = os.path.join(tmpdir, "deepdta_kiba_snapshot.pt")
    torch.save(snapshot, path)
    return path


def save_serving_weights(tmpdir):
    cfg = DTIConfig()
    model = DeepDTA(cfg)
    model.eval()
    path = os.path.join(tmpdir, "deepdta_serving.pt")
    torch.save(model.state_dict(), path)
    return path


FACTORIES = {
    "CNNBranch": lambda: CNNBranch(len(SMILES_VOCAB), 8, 8, 4),
    "DeepDTA": lambda: DeepDTA(DTIConfig()),
}
