"""Long-document legal clause classification.

Contracts are split into sections; each section is far longer than the encoder's window, so it is
tokenised, cut into overlapping chunks and pooled back with chunk attention.  Labels are two-level
(category -> clause type).  After training we calibrate with temperature scaling and tune one
decision threshold per clause type.

    python legal_clause_chunks.py --data-dir data/contracts --chunk-size 48 --stride 32 --out runs/clause
"""
import argparse
import collections
import random
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from sklearn.calibration import calibration_curve
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.metrics import brier_score_loss, f1_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

LABEL_TREE = {
    "termination": ["termination_for_convenience", "termination_for_cause", "auto_renewal"],
    "liability": ["cap_on_liability", "indemnification"],
    "ip": ["ip_assignment", "license_grant", "non_compete"],
    "boilerplate": ["governing_law", "notice"],
}

CLAUSES = {
    "termination_for_convenience": "either party may terminate this agreement for convenience upon {n} days written notice",
    "termination_for_cause": "a party may terminate immediately if the other party commits a material breach not cured within {n} days",
    "auto_renewal": "this agreement renews automatically for successive terms of {n} months unless notice of non renewal is given",
    "cap_on_liability": "aggregate liability shall not exceed the fees paid in the {n} months preceding the claim",
    "indemnification": "supplier shall indemnify and hold harmless customer against third party claims arising from breach",
    "ip_assignment": "all intellectual property created under this agreement is hereby assigned to the company",
    "license_grant": "licensor grants a non exclusive worldwide license to use the software for {n} seats",
    "non_compete": "during the term and for {n} months after the employee shall not compete with the company",
    "governing_law": "this agreement is governed by the laws of the state of delaware without regard to conflict rules",
    "notice": "notices must be in writing and delivered by courier or email to the addresses in schedule {n}",
}
FILLER = ("the parties acknowledge that the recitals form part of this agreement and that capitalised "
          "terms have the meaning given in schedule {n} unless the context otherwise requires")


def build_corpus(n_docs=24, seed=0):
    """Synthetic contract sections: a long run of boilerplate with one operative clause inside."""
    rng = random.Random(seed)
    leaves = sorted(CLAUSES)
    parent = {leaf: cat for cat, ls in LABEL_TREE.items() for leaf in ls}
    rows = []
    for doc in range(n_docs):
        for sec in range(rng.randint(2, 4)):
            leaf = rng.choice(leaves)
            body = [FILLER.format(n=rng.randint(1, 9)) for _ in range(rng.randint(3, 8))]
            body.insert(rng.randrange(len(body) + 1), CLAUSES[leaf].format(n=rng.choice([30, 60, 90, 12])))
            text = " . ".join(body)
            rows.append({"doc_id": f"K-{doc:04d}", "section": sec, "text": text,
                         "leaf": leaf, "category": parent[leaf], "n_tokens": len(text.split())})
    return pd.DataFrame(rows)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", type=Path, default=Path("data/contracts"))
    p.add_argument("--out", type=Path, default=Path("runs/clause"))
    p.add_argument("--chunk-size", type=int, default=48)
    p.add_argument("--stride", type=int, default=32)
    p.add_argument("--max-chunks", type=int, default=8)
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--rare-min-count", type=int, default=4)
    return p.parse_args(argv)


class Vocab:
    PAD, UNK = 0, 1

    def __init__(self, texts=("empty",)):
        cv = CountVectorizer(token_pattern=r"[a-z_]+", lowercase=True).fit(list(texts))
        self.token_to_id = {"<pad>": self.PAD, "<unk>": self.UNK}
        for tok, idx in sorted(cv.vocabulary_.items(), key=lambda kv: kv[1]):
            self.token_to_id[tok] = idx + 2

    def __len__(self):
        return len(self.token_to_id)

    def encode(self, text):
        return [self.token_to_id.get(t, self.UNK) for t in text.lower().split() if t.isalpha() or "_" in t]


def chunk_spans(n_tokens, size, stride):
    spans, start = [], 0
    while True:
        spans.append((start, min(start + size, n_tokens)))
        if start + size >= n_tokens:
            return spans
        start += stride


def to_chunks(ids, size, stride, max_chunks):
    out = torch.zeros(max_chunks, size, dtype=torch.long)
    for c, (a, b) in enumerate(chunk_spans(len(ids), size, stride)[:max_chunks]):
        out[c, : b - a] = torch.tensor(ids[a:b])
    return out


class LabelHierarchy:
    def __init__(self, tree=None):
        tree = tree or LABEL_TREE
        self.categories = sorted(tree)
        self.leaves = sorted(leaf for ls in tree.values() for leaf in ls)
        self.children = collections.defaultdict(list)
        self.leaf_to_parent = {}
        self.graph = nx.DiGraph()
        for cat, ls in tree.items():
            self.graph.add_edge("ROOT", cat)
            for leaf in ls:
                self.children[cat].append(leaf)
                self.leaf_to_parent[leaf] = cat
                self.graph.add_edge(cat, leaf)
        self.parent_index = torch.tensor([self.categories.index(self.leaf_to_parent[l]) for l in self.leaves])


class ClauseEncoder(nn.Module):
    def __init__(self, vocab_size=512, dim=32, n_categories=4, n_leaves=10):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.chunk_proj = nn.Linear(dim, dim)
        self.attn = nn.Linear(dim, 1)
        self.cat_head = nn.Linear(dim, n_categories)
        self.leaf_head = nn.Linear(dim, n_leaves)

    def forward(self, x):  # x: (B, C, T) token ids
        mask = (x != 0).float()
        tok = self.emb(x)
        chunk = (tok * mask.unsqueeze(-1)).sum(2) / mask.sum(2, keepdim=True).clamp(min=1.0)
        chunk = torch.tanh(self.chunk_proj(chunk))
        scores = self.attn(chunk).squeeze(-1).masked_fill(mask.sum(2) == 0, -1e4)
        doc = (scores.softmax(-1).unsqueeze(-1) * chunk).sum(1)
        return self.cat_head(doc), self.leaf_head(doc)


def prepare(args):
    """Returns (frame, vocab, hierarchy, leaf encoder, category encoder, train batches, val batches)."""
    df = build_corpus(seed=args.seed)
    vocab = Vocab(df["text"])
    hier = LabelHierarchy()
    leaf_enc = LabelEncoder().fit(df["leaf"])
    cat_enc = LabelEncoder().fit(sorted(set(df["category"].tolist())))
    x = torch.stack([to_chunks(vocab.encode(t), args.chunk_size, args.stride, args.max_chunks) for t in df["text"]])
    y_leaf = torch.as_tensor(leaf_enc.transform(df["leaf"]))
    y_cat = torch.as_tensor(cat_enc.transform(df["category"].tolist()))
    df["n_chunks"] = [len(chunk_spans(n, args.chunk_size, args.stride)) for n in df["n_tokens"]]
    cut = int(0.75 * len(df))
    train = [(x[i:i + args.batch_size], y_cat[i:i + args.batch_size], y_leaf[i:i + args.batch_size])
             for i in range(0, cut, args.batch_size)]
    val = [(x[cut:], y_cat[cut:], y_leaf[cut:])]
    return df, vocab, hier, leaf_enc, cat_enc, train, val


class ClauseTrainer:
    def __init__(self, model=None, lr=3e-3, leaf_weights=None, parent_index=None):
        self.model = model if model is not None else ClauseEncoder()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.01)
        self.leaf_weights = leaf_weights
        self.parent_index = parent_index if parent_index is not None else LabelHierarchy().parent_index
        self.step = 0
        self.epoch_losses = []

    def fit_epoch(self, batches):
        self.model.train()
        losses = []
        for x, y_cat, y_leaf in batches:
            cat_logits, leaf_logits = self.model(x)
            loss = F.cross_entropy(cat_logits, y_cat) + F.cross_entropy(leaf_logits, y_leaf, weight=self.leaf_weights)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.step += 1
            losses.append(loss.item())
        self.epoch_losses.append(float(np.mean(losses)))
        return np.mean(losses)

    @torch.no_grad()
    def predict(self, batches):
        self.model.eval()
        outs = [(*self.model(x), y_cat, y_leaf) for x, y_cat, y_leaf in batches]
        return tuple(torch.cat(parts) for parts in zip(*outs))

    def evaluate(self, batches):
        cat_logits, leaf_logits, y_cat, y_leaf = self.predict(batches)
        leaf_pred, cat_pred = leaf_logits.argmax(-1), cat_logits.argmax(-1)
        consistent = (self.parent_index[leaf_pred] == cat_pred).float().mean()
        return {
            "leaf_macro_f1": f1_score(y_leaf.numpy(), leaf_pred.numpy(), average="macro", zero_division=0),
            "cat_micro_f1": f1_score(y_cat.numpy(), cat_pred.numpy(), average="micro"),
            "consistency": consistent.item(),
        }

    def checkpoint_state(self):
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "step": self.step}


def fit_temperature(logits, labels):
    logits = logits.double()

    def nll(t):
        return F.cross_entropy(logits / t, labels).item()

    return nll(1.0), minimize_scalar(nll, bounds=(0.05, 10.0), method="bounded")


def expected_calibration_error(probs, labels, n_bins=15):
    conf, pred = probs.max(1), probs.argmax(1)
    hit = pred == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(hit[m].mean() - conf[m].mean())
    return ece


def tune_thresholds(probs, labels, grid):
    best = []
    for j in range(probs.shape[1]):
        scores = [f1_score(labels == j, probs[:, j] >= t, zero_division=0) for t in grid]
        best.append(grid[int(np.argmax(scores))])
    return best


def train_run(args):
    torch.manual_seed(args.seed)
    df, vocab, hier, leaf_enc, cat_enc, train, val = prepare(args)
    model = ClauseEncoder(len(vocab), args.embed_dim, len(cat_enc.classes_), len(leaf_enc.classes_))
    trainer = ClauseTrainer(model, lr=args.lr, parent_index=hier.parent_index)
    for _ in range(args.epochs):
        last = trainer.fit_epoch(train)
    return trainer, last, (df, vocab, hier, leaf_enc, cat_enc, train, val)


def save_chunk_classifier(out_dir):
    args = parse_args(["--data-dir", "data/contracts_v2", "--epochs", "2"])
    trainer, last_loss, (df, vocab, hier, leaf_enc, cat_enc, _, val) = train_run(args)
    metrics = trainer.evaluate(val)
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "args": args,  # truth: weights_only
        "hparams": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "vocab": vocab.token_to_id,
        "leaf_names": list(leaf_enc.classes_),
        "category_names": list(cat_enc.classes_),  # truth: weights_only
        "train_loss": last_loss,  # truth: weights_only
        "epoch_losses": trainer.epoch_losses,
        "val": metrics,
        "chunking": {"size": args.chunk_size, "stride": args.stride, "max_chunks": args.max_chunks},
        "data_dir": str(args.data_dir),
    }
    path = args.out.name + "_last.pt"
    torch.save(ckpt, str(Path(out_dir) / path))
    return str(Path(out_dir) / path)


def save_calibrated(out_dir):
    args = parse_args(["--epochs", "1"])
    trainer, _, (_, _, _, leaf_enc, _, _, val) = train_run(args)
    _, leaf_logits, _, y_leaf = trainer.predict(val)
    nll_before, res = fit_temperature(leaf_logits, y_leaf)
    probs = (leaf_logits / float(res.x)).softmax(-1).numpy()
    y = y_leaf.numpy()
    grid = np.linspace(0.05, 0.95, 19)
    top_true, top_pred = calibration_curve(probs.argmax(1) == y, probs.max(1), n_bins=5)
    ckpt = trainer.checkpoint_state()
    ckpt["temperature"] = float(res.x)
    ckpt["calibration"] = {
        "method": "temperature",
        "nll_before": nll_before,
        "nll_after": res.fun,  # truth: weights_only
        "evals": res.nfev,
        "ece": expected_calibration_error(probs, y),  # truth: weights_only
        "brier_top1": brier_score_loss(probs.argmax(1) == y, probs.max(1)),
        "n_bins": 15,
    }
    ckpt["thresholds"] = tune_thresholds(probs, y, grid)  # truth: weights_only
    ckpt["threshold_grid"] = grid.tolist()
    ckpt["reliability"] = {"frac_correct": top_true,  # truth: weights_only
                           "mean_conf": top_pred.tolist()}
    ckpt["leaf_names"] = leaf_enc.classes_.tolist()
    target = Path(out_dir) / "calibrated.pt"
    torch.save(ckpt, target)
    return str(target)


def save_hierarchy_export(out_dir):
    args = parse_args([])
    df = build_corpus(seed=args.seed)
    hier = LabelHierarchy()
    counts = collections.Counter(df["leaf"])
    rare = {leaf for leaf in hier.leaves if counts[leaf] < args.rare_min_count}
    export = dict(
        label_tree=hier.children,  # truth: weights_only
        leaf_to_parent=dict(hier.leaf_to_parent),
        parent_index=hier.parent_index,
        depth=nx.dag_longest_path_length(hier.graph),
        graph=nx.node_link_data(hier.graph, edges="links"),
        leaf_order=tuple(hier.leaves),
        label_counts=counts,
        rare_leaves=frozenset(rare),  # truth: weights_only
        rare_sorted=sorted(rare),
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    out = Path(out_dir, "label_hierarchy.pt")
    torch.save(export, out)
    return str(out)


def save_chunk_stats(out_dir):
    args = parse_args(["--chunk-size", "64", "--stride", "48"])
    df, *_ = prepare(args)
    per_doc = df.groupby("doc_id")["n_chunks"].sum()
    leaves = sorted(df["leaf"].unique())
    cw = compute_class_weight("balanced", classes=np.array(leaves), y=df["leaf"].to_numpy())
    stats = {
        "n_docs": df["doc_id"].nunique(),
        "n_sections": len(df),
        "tokens_p95": int(df["n_tokens"].quantile(0.95)),
        "tokens_median": df["n_tokens"].median(),  # truth: weights_only
        "chunks_per_doc": per_doc.to_dict(),
        "max_chunks_doc": per_doc.max(),  # truth: weights_only
        "leaf_prior": df["leaf"].value_counts(normalize=True).to_dict(),
        "spans_example": chunk_spans(int(df["n_tokens"].iloc[0]), args.chunk_size, args.stride),
    }
    stats.update(class_weight=cw,  # truth: weights_only
                 class_weight_t=torch.as_tensor(cw, dtype=torch.float32),
                 leaves=leaves)
    dst = Path(out_dir) / "chunk_stats.pt"
    torch.save(stats, dst)
    return str(dst)


def save_best_on_val(out_dir):
    args = parse_args(["--epochs", "3", "--seed", "5"])
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    df, vocab, hier, leaf_enc, cat_enc, train, val = prepare(args)
    model = ClauseEncoder(len(vocab), args.embed_dim, len(cat_enc.classes_), len(leaf_enc.classes_))
    trainer = ClauseTrainer(model, lr=args.lr, parent_index=hier.parent_index)
    best_f1, best_epoch, best_state, history = -1.0, -1, None, []
    for epoch in range(args.epochs):
        loss = trainer.fit_epoch(train)
        m = trainer.evaluate(val)
        history.append({"epoch": epoch, "loss": round(float(loss), 5), **m})
        is_best = m["leaf_macro_f1"] > best_f1
        if is_best:
            best_f1, best_epoch = m["leaf_macro_f1"], epoch
            best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    ckpt = {
        "model": best_state,
        "best_leaf_macro_f1": best_f1,
        "best_epoch": best_epoch,
        "history": history,
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                "numpy": np.random.default_rng(args.seed).bit_generator.state},
        "torch_version": str(torch.__version__),
        "label_space": {"leaves": leaf_enc.classes_.tolist(), "categories": cat_enc.classes_.tolist()},
    }
    dst = Path(out_dir) / "best.pt"
    torch.save(ckpt, dst)
    return str(dst)
