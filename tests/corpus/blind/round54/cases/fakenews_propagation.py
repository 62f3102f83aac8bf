"""Rumour / fake-news detection on propagation cascades (Twitter15/16, FakeNewsNet style).

A BiGCN-like model: one GCN runs top-down over the retweet tree, one bottom-up, and a
TF-IDF MLP encodes the source post; the three views are concatenated for a 4-way
classifier (non-rumor / false / true / unverified).  Early detection is evaluated by
cutting every cascade at a deadline (minutes after the source post).

    python fakenews_propagation.py --dataset twitter16 --epochs 30 --hidden 64
"""
import argparse
import copy
import dataclasses
import datetime as dt
import os
import statistics
import time
from collections import Counter, OrderedDict, defaultdict
from pathlib import Path

import networkx as nx
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.preprocessing import LabelEncoder
from torch.optim.swa_utils import SWALR, AveragedModel

LABELS = ("non-rumor", "false", "true", "unverified")
NODE_FEATURES = ("depth", "out_degree", "log_delay")
_VOCAB = ("breaking vaccine election fake hoax confirmed police report video viral claim "
          "official source leaked photo shocking debunked says president cure").split()


def build_arg_parser():
    p = argparse.ArgumentParser(description="BiGCN rumour detection")
    p.add_argument("--data-root", type=Path, default=Path("data/twitter16"))
    p.add_argument("--dataset", choices=["twitter15", "twitter16", "politifact"], default="twitter16")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--text-dim", type=int, default=48, help="TF-IDF max_features")
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--td-droprate", type=float, default=0.2)
    p.add_argument("--bu-droprate", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--deadlines", type=int, nargs="+", default=[15, 30, 60, 120, 240])
    return p


def parse_args(argv=None):
    return build_arg_parser().parse_args(argv)


@dataclasses.dataclass
class Cascade:
    news_id: str = "0"
    text: str = ""
    label: str = "non-rumor"
    edges: list = dataclasses.field(default_factory=list)   # (parent, child), node 0 is the source
    delays: list = dataclasses.field(default_factory=list)  # minutes after the source, per node


def synthetic_cascades(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        words = rng.choice(_VOCAB, size=int(rng.integers(6, 12)))
        size = int(rng.integers(4, 18))
        edges, delays = [], [0.0]
        for child in range(1, size):
            parent = int(rng.integers(0, child))
            edges.append((parent, child))
            delays.append(delays[parent] + rng.exponential(20.0 if label == "false" else 45.0))
        out.append(Cascade(f"{seed}-{i}", " ".join(words), label, edges, delays))
    return out


def to_graph(c):
    G = nx.DiGraph()
    G.add_node(0, delay=0.0)
    for (u, v) in c.edges:
        G.add_edge(u, v)
        G.nodes[v]["delay"] = c.delays[v]
    return G


def node_features(G, deadline=None):
    """Dense normalised adjacency (top-down), its transpose (bottom-up) and node features."""
    keep = [n for n in G.nodes if deadline is None or G.nodes[n]["delay"] <= deadline]
    H = G.subgraph(keep)
    depth = nx.shortest_path_length(H, 0)
    idx = {n: i for i, n in enumerate(sorted(H.nodes))}
    A = torch.eye(len(idx))
    for u, v in H.edges:
        A[idx[u], idx[v]] = 1.0
    deg_td = A.sum(1, keepdim=True)
    x = torch.tensor([[depth.get(n, 0), H.out_degree(n), np.log1p(H.nodes[n]["delay"])]
                      for n in sorted(H.nodes)], dtype=torch.float32)
    return A / deg_td, A.t() / A.t().sum(1, keepdim=True), x


class TextFeaturizer:
    def __init__(self, max_features=48):
        self.vectorizer = TfidfVectorizer(max_features=max_features, ngram_range=(1, 2), sublinear_tf=True)
        self.labels = LabelEncoder()
        self.max_features = max_features

    def fit(self, cascades):
        self.vectorizer.fit([c.text for c in cascades])
        self.labels.fit([c.label for c in cascades])
        return self

    def transform(self, cascades):
        X = self.vectorizer.transform([c.text for c in cascades]).toarray()
        return torch.from_numpy(X).float()

    def targets(self, cascades):
        return torch.as_tensor(self.labels.transform([c.label for c in cascades]))

    @property
    def dim(self):
        return len(self.vectorizer.vocabulary_)


class GCNLayer(nn.Module):
    def __init__(self, d_in=3, d_out=16):
        super().__init__()
        self.lin = nn.Linear(d_in, d_out)

    def forward(self, x, adj):
        return adj @ self.lin(x)


class BiGCN(nn.Module):
    def __init__(self, text_dim=48, hidden=32, num_classes=4, droprate=0.2):
        super().__init__()
        self.td1, self.td2 = GCNLayer(3, hidden), GCNLayer(hidden, hidden)
        self.bu1, self.bu2 = GCNLayer(3, hidden), GCNLayer(hidden, hidden)
        self.text = nn.Sequential(nn.Linear(text_dim, hidden), nn.ReLU(), nn.Dropout(droprate))
        self.head = nn.Linear(3 * hidden, num_classes)

    def forward(self, adj_td, adj_bu, x, text):
        td = self.td2(F.relu(self.td1(x, adj_td)), adj_td).mean(0)
        bu = self.bu2(F.relu(self.bu1(x, adj_bu)), adj_bu).mean(0)
        return self.head(torch.cat([td, bu, self.text(text)], -1))


class PropagationTrainer:
    """Plain training loop; one cascade per step (cascades are small)."""

    def __init__(self, args, cascades=None):
        torch.manual_seed(args.seed)
        self.args = args
        self.cascades = cascades if cascades is not None else synthetic_cascades(40, args.seed)
        self.featurizer = TextFeaturizer(args.text_dim).fit(self.cascades)
        self.graphs = [to_graph(c) for c in self.cascades]
        self.text = self.featurizer.transform(self.cascades)
        self.y = self.featurizer.targets(self.cascades)
        n = len(self.cascades)
        self.splits = {"train": list(range(0, int(0.7 * n))), "test": list(range(int(0.7 * n), n))}
        self.model = BiGCN(self.featurizer.dim, args.hidden, len(self.featurizer.labels.classes_))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=10, gamma=0.5)
        self.history = defaultdict(list)
        self.best_f1 = -1.0
        self.best_epoch = 0
        self.best_state = None
        self.epoch = 0

    def _logits(self, i, deadline=None):
        adj_td, adj_bu, x = node_features(self.graphs[i], deadline)
        return self.model(adj_td, adj_bu, x, self.text[i])

    def train_epoch(self):
        self.model.train()
        losses = []
        for i in self.splits["train"]:
            loss = F.cross_entropy(self._logits(i).unsqueeze(0), self.y[i:i + 1])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.scheduler.step()
        return np.mean(losses), len(losses)

    @torch.no_grad()
    def predict(self, split="test", deadline=None):
        self.model.eval()
        idx = self.splits[split]
        pred = np.array([int(self._logits(i, deadline).argmax()) for i in idx])
        return self.y[idx].numpy(), pred

    def evaluate(self, split="test", deadline=None):
        y, p = self.predict(split, deadline)
        return {"acc": float((y == p).mean()),
                "macro_f1": f1_score(y, p, average="macro", zero_division=0),
                "n": len(y)}

    def fit(self):
        for epoch in range(self.args.epochs):
            loss, _ = self.train_epoch()
            metrics = self.evaluate("test")
            self.history["train_loss"].append(loss)
            self.history["macro_f1"].append(metrics["macro_f1"])
            if metrics["macro_f1"] > self.best_f1:
                self.best_f1 = metrics["macro_f1"]
                self.best_state = copy.deepcopy(self.model.state_dict())
            self.epoch = epoch + 1
        self.best_epoch = int(np.argmax(self.history["macro_f1"]))
        return self


FACTORIES = {
    "PropagationTrainer": lambda: PropagationTrainer(parse_args(["--epochs", "1"])),
}


def _hparams(args):
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def save_bigcn_checkpoint(tmpdir):
    args = parse_args(["--epochs", "2", "--dataset", "twitter15"])
    trainer = PropagationTrainer(args).fit()
    vec = trainer.featurizer.vectorizer
    ckpt = {
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "best_model": trainer.best_state,
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "hparams": _hparams(args),
        "args": args,  # truth: weights_only
        "best_f1": trainer.best_f1,
        "best_epoch": trainer.best_epoch,
        "test": trainer.evaluate("test"),
        "label_names": list(trainer.featurizer.labels.classes_),  # truth: weights_only
    }
    ckpt["vocab_size"] = max(vec.vocabulary_.values()) + 1  # truth: weights_only
    ckpt["ngram_range"] = list(vec.ngram_range)
    ckpt["tfidf_idf"] = torch.from_numpy(vec.idf_).float()
    ckpt["feature_names"] = list(vec.get_feature_names_out())
    ckpt["node_features"] = list(NODE_FEATURES)
    path = os.path.join(tmpdir, f"bigcn_{args.dataset}_best.pt")
    torch.save(ckpt, path)
    return path


def save_training_history(tmpdir):
    t0 = time.perf_counter()
    trainer = PropagationTrainer(parse_args(["--epochs", "2"])).fit()
    extra_loss, n_steps = trainer.train_epoch()
    state = {"history": trainer.history}  # truth: weights_only
    state["history_plain"] = {k: [float(v) for v in vals] for k, vals in trainer.history.items()}
    state["extra_epoch_loss"] = extra_loss  # truth: weights_only
    state["steps_per_epoch"] = n_steps
    state["lr"] = trainer.scheduler.get_last_lr()[0]
    state["wall_time_s"] = time.perf_counter() - t0
    state["saved_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
    state["host_cpus"] = os.cpu_count()
    path = os.path.join(tmpdir, "history.pt")
    torch.save(state, path)
    return path


def cascade_statistics(cascades):
    graphs = [to_graph(c) for c in cascades]
    depths = [nx.dag_longest_path_length(G) for G in graphs]
    sizes = np.array([G.number_of_nodes() for G in graphs])
    first_reply = [min(c.delays[1:]) for c in cascades if len(c.delays) > 1]
    by_label = defaultdict(list)
    for c, d in zip(cascades, depths):
        by_label[c.label].append(d)
    return graphs, depths, sizes, first_reply, by_label


def save_cascade_statistics(tmpdir):
    cascades = synthetic_cascades(40, seed=3)
    graphs, depths, sizes, first_reply, by_label = cascade_statistics(cascades)
    stats = dict(
        n_cascades=len(graphs),
        max_depth=max(depths),
        mean_depth=float(np.mean(depths)),
        median_size=float(np.median(sizes)),
        total_nodes=int(sizes.sum()),
        density=statistics.fmean(nx.density(G) for G in graphs),
        degree_hist=nx.degree_histogram(graphs[0]),
        label_counts=Counter(c.label for c in cascades),
        depth_by_label={lab: sum(v) / len(v) for lab, v in by_label.items()},
        first_response=dt.timedelta(minutes=min(first_reply)),  # truth: weights_only
        first_response_min=statistics.median(first_reply),
    )
    stats["example_tree"] = nx.node_link_data(graphs[0], edges="edges")
    stats["example_graph"] = graphs[0]  # truth: weights_only
    stats["pagerank_source"] = nx.pagerank(graphs[0])[0]
    path = os.path.join(tmpdir, "cascade_stats.pt")
    torch.save(stats, path)
    return path


def save_early_detection(tmpdir):
    args = parse_args(["--epochs", "2"])
    trainer = PropagationTrainer(args).fit()
    results = {}
    for deadline in args.deadlines:
        results[deadline] = trainer.evaluate("test", deadline=deadline)["macro_f1"]
    scores = np.array([results[d] for d in args.deadlines])
    best = int(np.argmax(scores))
    y, p = trainer.predict("test")
    report = {
        "deadline_f1": results,
        "best_deadline_min": args.deadlines[best],
        "best_deadline_f1": results[args.deadlines[best]],
        "earliest_within_2pts": np.array(args.deadlines)[scores >= scores.max() - 0.02].min(),  # truth: weights_only
        "area_under_curve": np.trapezoid(scores, args.deadlines),  # truth: weights_only
        "macro": precision_recall_fscore_support(y, p, average="macro", zero_division=0),
        "per_class": precision_recall_fscore_support(y, p, average=None, zero_division=0),  # truth: weights_only
        "confusion": confusion_matrix(y, p).tolist(),
    }
    report["deadlines"] = tuple(args.deadlines)
    path = os.path.join(tmpdir, "early_detection.pt")
    torch.save(report, path)
    return path


def save_swa_snapshot(tmpdir):
    args = parse_args(["--epochs", "1"])
    trainer = PropagationTrainer(args).fit()
    swa = AveragedModel(trainer.model)
    swa_sched = SWALR(trainer.optimizer, swa_lr=args.lr / 2, anneal_epochs=1)
    for _ in range(2):
        trainer.train_epoch()
        swa.update_parameters(trainer.model)
        swa_sched.step()
    snapshot = OrderedDict()
    snapshot["swa_model"] = swa.state_dict()
    snapshot["base_model"] = trainer.model.state_dict  # truth: weights_only
    snapshot["n_averaged"] = int(swa.n_averaged)
    snapshot["swa_lr"] = swa_sched.get_last_lr()
    snapshot["swa_scheduler"] = swa_sched.state_dict()
    path = os.path.join(tmpdir, "swa.pt")
    torch.save(snapshot, path)
    return path


def save_inference_model(tmpdir):
    trainer = PropagationTrainer(parse_args(["--epochs", "1"])).fit()
    model = copy.deepcopy(trainer.model).eval()
    path = os.path.join(tmpdir, "bigcn_full.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_serving_bundle(tmpdir):
    args = parse_args(["--epochs", "1", "--hidden", "16"])
    trainer = PropagationTrainer(args).fit()
    vec, labels = trainer.featurizer.vectorizer, trainer.featurizer.labels
    y, p = trainer.predict("test")
    bundle = {
        "state_dict": trainer.model.state_dict(),
        "labels": labels.classes_.tolist(),
        "vocab": {w: int(i) for w, i in vec.vocabulary_.items()},
        "idf": vec.idf_.tolist(),
        "ngram_range": vec.ngram_range,
        "node_features": NODE_FEATURES,
        "hidden": args.hidden,
        "data_root": os.fspath(args.data_root),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(),
        "torch": str(torch.__version__),
        "test_acc": float((y == p).mean()),
        "support": Counter(y.tolist()),
        "dtype": torch.float32,
    }
    path = os.path.join(tmpdir, "serving.pt")
    torch.save(bundle, path)
    return path


if __name__ == "__main__":
    cli = parse_args(None)
    out = cli.data_root / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)
    print(save_bigcn_checkpoint(str(out)))
