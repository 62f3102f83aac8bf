"""Recipe recommendation with graph embeddings.

Users, recipes and ingredients form one graph. LightGCN propagates SVD-initialised user/recipe
embeddings over the symmetrically normalised user-recipe adjacency and is trained with BPR;
DeepWalk-style walks over the ingredient co-occurrence graph (PPMI + SVD) give ingredient vectors
for cold-start recipes. Configuration is YAML through OmegaConf, with dotlist overrides:

    python recipe_graph_rec.py model.emb_dim=64 train.epochs=50
"""
import statistics
import sys
from collections import defaultdict, deque

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy.sparse.csgraph import connected_components
from sklearn.decomposition import TruncatedSVD

CONFIG_YAML = """
data:
  n_users: 90
  n_recipes: 60
  n_ingredients: 30
  interactions_per_user: 10
  min_rating: 4
  seed: 11
model:
  emb_dim: 16
  n_layers: 2
  init: svd
train:
  lr: 0.01
  epochs: 2
  batch_size: 256
  reg: 1.0e-4
  patience: 3
walks:
  walk_length: 8
  walks_per_node: 4
  window: 3
eval:
  k_list: [5, 10]
  holdout: 2
run:
  name: lightgcn-${model.emb_dim}d-${model.n_layers}l
  out_dir: checkpoints/recipes
"""

CUISINES = ["italian", "mexican", "indian", "japanese", "french"]
INGREDIENTS = [f"ing_{i:02d}" for i in range(30)]


def load_config(overrides=()):
    return OmegaConf.merge(OmegaConf.create(CONFIG_YAML), OmegaConf.from_dotlist(list(overrides)))


# ----------------------------------------------------------------------------- data

def make_interactions(cfg):
    d = cfg.data
    rng = np.random.default_rng(d.seed)
    cuisine = rng.integers(0, len(CUISINES), size=d.n_recipes)
    taste = rng.dirichlet(np.ones(len(CUISINES)) * 0.5, size=d.n_users)
    rows = []
    start = pd.Timestamp("2023-01-01")
    for u in range(d.n_users):
        p = taste[u][cuisine] + 1e-3
        picked = rng.choice(d.n_recipes, size=d.interactions_per_user, replace=False, p=p / p.sum())
        for r in picked:
            rating = int(np.clip(np.round(3 + 2 * taste[u][cuisine[r]] + rng.normal(0, 0.7)), 1, 5))
            rows.append((u, int(r), rating, start + pd.Timedelta(minutes=int(rng.integers(0, 525600)))))
    df = pd.DataFrame(rows, columns=["user_id", "recipe_id", "rating", "ts"])
    # recipe -> ingredient incidence, biased towards each cuisine's pantry
    inc = sp.lil_matrix((d.n_recipes, d.n_ingredients), dtype=np.float32)
    for r in range(d.n_recipes):
        pantry = (np.arange(d.n_ingredients) % len(CUISINES)) == cuisine[r]
        w = np.where(pantry, 4.0, 1.0)
        for i in rng.choice(d.n_ingredients, size=rng.integers(4, 9), replace=False, p=w / w.sum()):
            inc[r, i] = 1.0
    recipes = pd.DataFrame({"recipe_id": np.arange(d.n_recipes), "cuisine": [CUISINES[c] for c in cuisine],
                            "n_ingredients": np.asarray(inc.sum(axis=1)).ravel().astype(int)})
    return df, recipes, inc.tocsr()


def leave_last_out(df, holdout, min_rating):
    pos = df[df.rating >= min_rating].sort_values("ts")
    test = pos.groupby("user_id").tail(holdout)
    train = pos.drop(test.index)
    test = test[test.user_id.isin(train.user_id)]
    return train.reset_index(drop=True), test.reset_index(drop=True)


def build_adjacency(train_df, n_users, n_recipes):
    R = sp.csr_matrix((np.ones(len(train_df), np.float32), (train_df.user_id, train_df.recipe_id)),
                      shape=(n_users, n_recipes))
    A = sp.bmat([[None, R], [R.T, None]], format="csr")
    deg = np.asarray(A.sum(axis=1)).ravel()
    d_inv = np.where(deg > 0, deg ** -0.5, 0.0)
    A_hat = sp.diags(d_inv) @ A @ sp.diags(d_inv)
    return R, A_hat.tocsr()


def to_torch_sparse(A):
    coo = A.tocoo()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data).float(), coo.shape).coalesce()


def svd_init(R, dim, seed=0):
    svd = TruncatedSVD(n_components=dim, random_state=seed).fit(R)
    scale = np.sqrt(svd.singular_values_)
    users = svd.transform(R) / np.maximum(scale, 1e-6)
    items = svd.components_.T * scale
    return users.astype(np.float32), items.astype(np.float32), svd.explained_variance_ratio_.sum()


# ----------------------------------------------------------------------------- model

class LightGCN(nn.Module):
    def __init__(self, n_users=8, n_items=8, dim=16, n_layers=2):
        super().__init__()
        self.n_users, self.n_items, self.n_layers = n_users, n_items, n_layers
        self.user_emb = nn.Embedding(n_users, dim)
        self.item_emb = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user_emb.weight, std=0.1)
        nn.init.normal_(self.item_emb.weight, std=0.1)

    def init_from(self, users, items):
        with torch.no_grad():
            self.user_emb.weight.copy_(torch.from_numpy(users))
            self.item_emb.weight.copy_(torch.from_numpy(items))

    def propagate(self, A):
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])
        layers = [x]
        for _ in range(self.n_layers):
            x = torch.sparse.mm(A, x)
            layers.append(x)
        out = torch.stack(layers).mean(0)
        return out[: self.n_users], out[self.n_users:]

    def bpr_loss(self, A, u, pos, neg, reg):
        users, items = self.propagate(A)
        su = (users[u] * items[pos]).sum(-1)
        sn = (users[u] * items[neg]).sum(-1)
        l2 = (self.user_emb(u).pow(2).sum() + self.item_emb(pos).pow(2).sum() + self.item_emb(neg).pow(2).sum())
        return -F.logsigmoid(su - sn).mean() + reg * l2 / len(u)


def evaluate_topk(users, items, train_df, test_df, k_list):
    scores = (users @ items.T).numpy()
    scores[train_df.user_id.to_numpy(), train_df.recipe_id.to_numpy()] = -np.inf
    held = test_df.groupby("user_id").recipe_id.apply(set)
    metrics, per_user = {}, []
    kmax = max(k_list)
    for u, truth in held.items():
        top = np.argsort(-scores[u])[:kmax]
        gains = np.isin(top, list(truth)).astype(float)
        ideal = np.sum(1.0 / np.log2(np.arange(2, min(len(truth), kmax) + 2)))
        per_user.append((gains / np.log2(np.arange(2, kmax + 2))).sum() / ideal)
        for k in k_list:
            metrics.setdefault(f"recall@{k}", []).append(gains[:k].sum() / len(truth))
            metrics.setdefault(f"ndcg@{k}", []).append(
                (gains[:k] / np.log2(np.arange(2, k + 2))).sum() / ideal)
    return {name: float(np.mean(v)) for name, v in metrics.items()}, np.asarray(per_user)


def random_walks(adj, walk_length, walks_per_node, rng):
    adj = adj.tocsr()
    walks = []
    for _ in range(walks_per_node):
        for start in rng.permutation(adj.shape[0]):
            walk = [start]
            for _ in range(walk_length - 1):
                nbrs = adj.indices[adj.indptr[walk[-1]]: adj.indptr[walk[-1] + 1]]
                if len(nbrs) == 0:
                    break
                walk.append(rng.choice(nbrs))
            walks.append(walk)
    return walks


def ppmi_svd(walks, n_nodes, dim, window):
    counts = np.zeros((n_nodes, n_nodes))
    for walk in walks:
        for i, a in enumerate(walk):
            for b in walk[max(0, i - window): i]:
                counts[a, b] += 1
                counts[b, a] += 1
    total = counts.sum()
    pmi = np.log(np.maximum(counts * total, 1e-12) / np.outer(counts.sum(1) + 1e-12, counts.sum(0) + 1e-12))
    ppmi = np.maximum(pmi, 0.0)
    u, s, _ = np.linalg.svd(ppmi)
    return (u[:, :dim] * np.sqrt(s[:dim])).astype(np.float32)


# ----------------------------------------------------------------------------- training

class RecTrainer:
    def __init__(self, cfg, model, A_hat):
        self.cfg = cfg
        self.model = model
        self.A = A_hat
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
        self.history = defaultdict(list)
        self.recent = deque(maxlen=cfg.train.patience)
        self.best = {"epoch": -1, "ndcg@10": 0.0}
        self.bad_epochs = 0
        self.epoch = 0

    def train_epoch(self, train_df, rng):
        self.model.train()
        order = rng.permutation(len(train_df))
        losses = []
        for s in range(0, len(order), self.cfg.train.batch_size):
            b = train_df.iloc[order[s: s + self.cfg.train.batch_size]]
            u = torch.as_tensor(b.user_id.to_numpy())
            pos = torch.as_tensor(b.recipe_id.to_numpy())
            neg = torch.as_tensor(rng.integers(0, self.model.n_items, size=len(b)))
            loss = self.model.bpr_loss(self.A, u, pos, neg, self.cfg.train.reg)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        return sum(losses) / len(losses)

    def fit(self, train_df, test_df):
        rng = np.random.default_rng(self.cfg.data.seed)
        for epoch in range(self.cfg.train.epochs):
            loss = self.train_epoch(train_df, rng)
            with torch.no_grad():
                users, items = self.model.propagate(self.A)
            metrics, per_user = evaluate_topk(users, items, train_df, test_df, self.cfg.eval.k_list)
            self.history["bpr"].append(loss)
            for name, value in metrics.items():
                self.history[name].append(value)
            self.recent.append(metrics["ndcg@10"])
            if metrics["ndcg@10"] > self.best["ndcg@10"]:
                self.best = {"epoch": epoch, **metrics}
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
            self.epoch = epoch + 1
            self.per_user_ndcg = per_user
            if self.bad_epochs >= self.cfg.train.patience:
                break
        return self.best

    def checkpoint(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch, "best": dict(self.best)}


def run_training(cfg):
    torch.manual_seed(cfg.data.seed)
    df, recipes, inc = make_interactions(cfg)
    train_df, test_df = leave_last_out(df, cfg.eval.holdout, cfg.data.min_rating)
    R, A_hat = build_adjacency(train_df, cfg.data.n_users, cfg.data.n_recipes)
    model = LightGCN(cfg.data.n_users, cfg.data.n_recipes, cfg.model.emb_dim, cfg.model.n_layers)
    explained = None
    if cfg.model.init == "svd":
        users, items, explained = svd_init(R, cfg.model.emb_dim, seed=cfg.data.seed)
        model.init_from(users, items)
    trainer = RecTrainer(cfg, model, to_torch_sparse(A_hat))
    trainer.fit(train_df, test_df)
    return trainer, dict(df=df, recipes=recipes, inc=inc, train=train_df, test=test_df, explained=explained)


FACTORIES = {
    "RecTrainer": lambda: RecTrainer(load_config(), LightGCN(), to_torch_sparse(sp.eye(16, format="csr"))),
}


# ----------------------------------------------------------------------------- checkpoints

def save_lightgcn(tmpdir):
    cfg = load_config(["train.epochs=2"])
    trainer, _ = run_training(cfg)
    ckpt = trainer.checkpoint()
    ckpt["cfg"] = cfg  # truth: weights_only
    ckpt["resolved_cfg"] = OmegaConf.to_container(cfg, resolve=True)
    ckpt["history"] = trainer.history  # truth: weights_only
    ckpt["recent_ndcg"] = list(trainer.recent)
    ckpt["run_name"] = cfg.run.name
    ckpt["k_list"] = cfg.eval.k_list  # truth: weights_only
    path = f"{tmpdir}/{cfg.run.name}.pt"
    torch.save(ckpt, path)
    return path


def save_embeddings(tmpdir):
    cfg = load_config(["model.emb_dim=8"])
    trainer, data = run_training(cfg)
    with torch.no_grad():
        users, items = trainer.model.propagate(trainer.A)
    user_ids = data["train"].user_id.unique()
    export = {
        "user_vectors": users,
        "item_vectors": items.half(),
        "user_ids": user_ids,  # truth: weights_only
        "user_index": {int(u): row for row, u in enumerate(user_ids)},
        "recipe_index": {int(r): i for i, r in enumerate(sorted(data["train"].recipe_id.unique()))},
        "item_norm_mean": torch.linalg.vector_norm(items, dim=1).mean().item(),
        "dim": cfg.model.emb_dim,
        "svd_explained": data["explained"],  # truth: weights_only
        "cuisines": data["recipes"].set_index("recipe_id").cuisine.to_dict(),
    }
    path = f"{tmpdir}/embeddings.pt"
    torch.save(export, path)
    return path


def save_cold_start(tmpdir):
    cfg = load_config()
    _, recipes, inc = make_interactions(cfg)
    cooc = (inc.T @ inc).tolil()
    cooc.setdiag(0)
    cooc = cooc.tocsr()
    cooc.eliminate_zeros()
    rng = np.random.default_rng(cfg.data.seed)
    walks = random_walks(cooc, cfg.walks.walk_length, cfg.walks.walks_per_node, rng)
    vectors = ppmi_svd(walks, cfg.data.n_ingredients, 8, cfg.walks.window)
    visited = {int(n) for walk in walks for n in walk}
    usage = np.asarray(inc.sum(axis=0)).ravel()
    staples = frozenset(INGREDIENTS[i] for i in np.argsort(-usage)[:5])
    ckpt = {
        "ingredient_vectors": torch.from_numpy(vectors),
        "cooccurrence": cooc,  # truth: weights_only
        "visited": visited,
        "coverage": len(visited) / cfg.data.n_ingredients,
        "pantry_staples": staples,  # truth: weights_only
        "walk_len_mean": statistics.fmean(map(len, walks)),
        "n_components": connected_components(cooc, directed=False)[0],
        "density": cooc.nnz / (cooc.shape[0] * (cooc.shape[0] - 1)),
        "max_degree": int(cooc.sum(axis=1).max()),
        "recipe_sizes": recipes.n_ingredients.tolist(),
    }
    path = f"{tmpdir}/ingredient_walks.pt"
    torch.save(ckpt, path)
    return path


def save_popularity_baseline(tmpdir):
    cfg = load_config()
    df, recipes, _ = make_interactions(cfg)
    train_df, test_df = leave_last_out(df, cfg.eval.holdout, cfg.data.min_rating)
    pop = train_df.groupby("recipe_id").size().sort_values(ascending=False)
    by_cuisine = train_df.merge(recipes, on="recipe_id").groupby("cuisine")["rating"].mean()
    item_scores = torch.zeros(cfg.data.n_recipes)
    item_scores[torch.as_tensor(pop.index.to_numpy())] = torch.as_tensor(pop.to_numpy(), dtype=torch.float32)
    metrics, _ = evaluate_topk(torch.ones(cfg.data.n_users, 1), item_scores[:, None], train_df, test_df,
                               list(cfg.eval.k_list))
    baseline = {
        "popularity": pop,  # truth: weights_only
        "top_recipes": pop.index[:10].tolist(),
        "counts": pop.to_dict(),
        "cuisine_rating": by_cuisine.round(3).to_dict(),
        "best_cuisine": by_cuisine.idxmax(),
        "global_mean": train_df.rating.mean(),  # truth: weights_only
        "n_interactions": len(train_df),
        "n_users": train_df.user_id.nunique(),
        "metrics": metrics,
        "span_days": (train_df.ts.max() - train_df.ts.min()).days,
        "cutoff": test_df.ts.min().isoformat(),
    }
    path = f"{tmpdir}/popularity.pt"
    torch.save(baseline, path)
    return path


def save_eval_report(tmpdir):
    cfg = load_config(["eval.k_list=[5,10,20]"])
    trainer, data = run_training(cfg)
    with torch.no_grad():
        users, items = trainer.model.propagate(trainer.A)
    metrics, per_user = evaluate_topk(users, items, data["train"], data["test"], cfg.eval.k_list)
    report = {
        "metrics": metrics,
        "k_list": list(cfg.eval.k_list),
        "per_user_ndcg": torch.from_numpy(per_user).float(),
        "p90_ndcg": float(np.percentile(per_user, 90)),
        "n_eval_users": int(per_user.size),
        "zero_hit_users": int((per_user == 0).sum()),
        "eval_cfg": OmegaConf.to_container(cfg.eval),
        "best": trainer.best,
        "epochs_run": trainer.epoch,
        "python": sys.version.split()[0],
    }
    path = f"{tmpdir}/eval_report.pt"
    torch.save(report, path)
    return path


def save_early_stop_state(tmpdir):
    cfg = load_config(["train.epochs=3", "train.patience=2"])
    trainer, _ = run_training(cfg)
    state = {
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "early_stopping": {
            "patience": cfg.train.patience,
            "bad_epochs": trainer.bad_epochs,
            "window": trainer.recent,  # truth: weights_only
            "best": trainer.best,
        },
        "model_cfg": cfg.model,  # truth: weights_only
        "rng_state": np.random.default_rng(cfg.data.seed).bit_generator.state,
    }
    path = f"{tmpdir}/early_stop.pt"
    torch.save(state, path)
    return path


if __name__ == "__main__":
    config = load_config(sys.argv[1:])
    print(OmegaConf.to_yaml(config))
