"""Automatic playlist continuation (RecSys Challenge 2018 style) on a Million-Playlist-like dump.

Pipeline: interactions -> label-encoded track ids -> session model picked from MODEL_REGISTRY
(GRU4Rec or item2vec) -> R-precision / NDCG / clicks on held-out playlist tails.  Cold-start
playlists (title only) go through a TF-IDF + SVD title model.
"""
import os
import re
from collections import Counter

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import LabelEncoder

CONFIG_YAML = """
data:
  snapshot_date: 2017-11-01
  n_playlists: 48
  n_tracks: 90
  max_len: 12
  holdout: 4
model:
  name: gru4rec
  emb_dim: 16
  hidden_sizes: [32, 16]
  dropout: 0.1
train:
  lr: 0.003
  epochs: 2
  batch_size: 16
  seed: 13
eval:
  ks: [10, 50]
"""

META_YAML = """
challenge: recsys2018
snapshot_date: 2017-11-01
tracks_total: 2262292
playlists_total: 1000000
"""

TITLE_WORDS = ["chill", "vibes", "workout", "rock", "party", "summer", "the", "road", "trip", "throwback",
               "sad", "songs", "study", "my", "favorite", "country", "jams", "indie", "morning", "gym"]

MODEL_REGISTRY = {}


def register(name):
    def deco(cls):
        MODEL_REGISTRY[name] = cls
        return cls
    return deco


def load_config(overrides=None):
    cfg = OmegaConf.create(CONFIG_YAML)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    return cfg


def normalize_title(name):
    name = name.lower()
    name = re.sub(r"[^\w\s]", " ", name)
    return re.sub(r"\s+", " ", name).strip()


def make_interactions(cfg):
    """A synthetic MPD slice: one row per (playlist, position, track)."""
    rng = np.random.default_rng(cfg.train.seed)
    pop = rng.zipf(1.6, size=cfg.data.n_tracks).astype(float)
    pop /= pop.sum()
    rows = []
    t0 = pd.Timestamp("2016-01-01")
    for pid in range(cfg.data.n_playlists):
        n = int(rng.integers(cfg.data.holdout + 3, cfg.data.max_len + 6))
        tracks = rng.choice(cfg.data.n_tracks, size=n, replace=False, p=pop)
        title = " ".join(rng.choice(TITLE_WORDS, size=int(rng.integers(1, 4))))
        for pos, tid in enumerate(tracks):
            rows.append({
                "pid": pid, "pos": pos, "track_id": int(tid) * 7 + 1000,
                "track_uri": f"spotify:track:{int(tid):06x}", "artist_uri": f"spotify:artist:{int(tid) % 17:03d}",
                "duration_ms": int(rng.integers(120_000, 420_000)), "playlist_name": title.title() + "!",
                "added_at": t0 + pd.Timedelta(days=int(rng.integers(0, 600)), hours=int(rng.integers(0, 24))),
            })
    return pd.DataFrame(rows)


def encode_tracks(df):
    uri_enc = LabelEncoder().fit(df["track_uri"])
    id_enc = LabelEncoder().fit(df["track_id"])
    df = df.assign(tid=uri_enc.transform(df["track_uri"]) + 1)  # 0 is padding
    return df, uri_enc, id_enc


def split_sessions(df, max_len, holdout):
    seqs, tails = [], []
    for _, g in df.sort_values(["pid", "pos"]).groupby("pid"):
        items = g["tid"].tolist()
        seqs.append(items[:-holdout][-max_len:])
        tails.append(items[-holdout:])
    return seqs, tails


def pad_batch(seqs, max_len):
    out = torch.zeros(len(seqs), max_len, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = s[-max_len:]
        out[i, max_len - len(s):] = torch.tensor(s)
    return out


@register("gru4rec")
class GRU4Rec(nn.Module):
    def __init__(self, n_items=100, emb_dim=16, hidden_sizes=(32, 16), dropout=0.1):
        super().__init__()
        self.emb = nn.Embedding(n_items + 1, emb_dim, padding_idx=0)
        self.grus = nn.ModuleList()
        d = emb_dim
        for h in hidden_sizes:
            self.grus.append(nn.GRU(d, h, batch_first=True))
            d = h
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d, n_items + 1)

    def forward(self, x):
        h = self.drop(self.emb(x))
        for gru in self.grus:
            h, _ = gru(h)
        return self.out(h[:, -1])


@register("item2vec")
class Item2Vec(nn.Module):
    def __init__(self, n_items=100, emb_dim=16, **_):
        super().__init__()
        self.emb = nn.Embedding(n_items + 1, emb_dim, padding_idx=0)
        self.ctx = nn.Embedding(n_items + 1, emb_dim, padding_idx=0)

    def forward(self, center, context, negatives):
        c = self.emb(center)
        pos = F.logsigmoid((c * self.ctx(context)).sum(-1))
        neg = F.logsigmoid(-(c[:, None] * self.ctx(negatives)).sum(-1)).sum(-1)
        return -(pos + neg).mean()


def build_model(model_cfg, n_items):
    kwargs = OmegaConf.to_container(model_cfg, resolve=True)
    cls = MODEL_REGISTRY[kwargs.pop("name")]
    return cls(n_items=n_items, **kwargs)


def train_session_model(model, seqs, train_cfg, max_len):
    opt = torch.optim.Adam(model.parameters(), lr=train_cfg.lr)
    history = []
    for _ in range(train_cfg.epochs):
        total = 0.0
        for start in range(0, len(seqs), train_cfg.batch_size):
            batch = [s for s in seqs[start:start + train_cfg.batch_size] if len(s) > 1]
            x = pad_batch([s[:-1] for s in batch], max_len)
            y = torch.tensor([s[-1] for s in batch])
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        history.append(total / len(seqs))
    return history, opt


def r_precision(ranked, truth):
    truth = set(truth)
    return len(truth & set(ranked[: len(truth)])) / len(truth)


def ndcg_at_k(ranked, truth, k):
    gains = [1.0 / np.log2(i + 2) for i, t in enumerate(ranked[:k]) if t in truth]
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(k, len(truth))))
    return sum(gains) / ideal


def clicks(ranked, truth):
    for i, t in enumerate(ranked):
        if t in truth:
            return i // 10
    return 51


@torch.no_grad()
def evaluate(model, seqs, tails, ks, max_len):
    model.eval()
    scores = model(pad_batch(seqs, max_len))
    scores[:, 0] = -torch.inf
    ranked = scores.topk(max(ks), dim=1).indices.tolist()
    out = {"r_precision": np.mean([r_precision(r, t) for r, t in zip(ranked, tails)]),
           "clicks": np.mean([clicks(r, t) for r, t in zip(ranked, tails)])}
    for k in ks:
        out[f"ndcg@{k}"] = np.mean([ndcg_at_k(r, set(t), k) for r, t in zip(ranked, tails)])
    return out


def skipgram_pairs(seqs, window, rng, n_neg, n_items):
    centers, contexts = [], []
    for s in seqs:
        for i, c in enumerate(s):
            for j in range(max(0, i - window), min(len(s), i + window + 1)):
                if j != i:
                    centers.append(c)
                    contexts.append(s[j])
    negatives = rng.integers(1, n_items + 1, size=(len(centers), n_neg))
    return torch.tensor(centers), torch.tensor(contexts), torch.from_numpy(negatives)


# ------------------------------------------------------------------------ checkpoints

def save_item2vec(tmpdir):
    cfg = load_config(["model.name=item2vec"])
    df, uri_enc, id_enc = encode_tracks(make_interactions(cfg))
    n_items = len(uri_enc.classes_)
    seqs, _ = split_sessions(df, cfg.data.max_len, cfg.data.holdout)
    model = build_model(cfg.model, n_items)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    center, context, neg = skipgram_pairs(seqs, 2, np.random.default_rng(0), 4, n_items)
    for _ in range(cfg.train.epochs):
        loss = model(center, context, neg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    counts = df["track_uri"].value_counts()
    track_vocab = dict(zip(uri_enc.classes_, range(1, n_items + 1)))
    ckpt = dict(
        model=model.state_dict(),
        config=cfg,  # truth: weights_only
        track_vocab=track_vocab,
        artist_of_track=df.drop_duplicates("track_uri").set_index("track_uri")["artist_uri"].to_dict(),
        mpd_track_ids=id_enc.classes_.tolist(),
        mpd_id_counts=Counter(df["track_id"].to_numpy()),  # truth: weights_only
        popularity=counts.to_dict(),
        pop_top=counts.index[:20],  # truth: weights_only
        pop_top_uris=counts.index[:20].tolist(),
        window=2,
        final_loss=loss.item(),
    )
    path = os.path.join(tmpdir, "item2vec.pt")
    torch.save(ckpt, path)
    return path


def save_session_model(tmpdir):
    cfg = load_config()
    df, uri_enc, _ = encode_tracks(make_interactions(cfg))
    torch.manual_seed(cfg.train.seed)
    seqs, tails = split_sessions(df, cfg.data.max_len, cfg.data.holdout)
    model = build_model(cfg.model, len(uri_enc.classes_))
    history, opt = train_session_model(model, seqs, cfg.train, cfg.data.max_len)
    scores = evaluate(model, seqs, tails, list(cfg.eval.ks), cfg.data.max_len)
    ckpt = {
        "arch": cfg.model.name,
        "state_dict": model.state_dict(),
        "optimizer": opt.state_dict(),
        "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
        "hidden_sizes": cfg.model.hidden_sizes,  # truth: weights_only
        "max_len": cfg.data.max_len,
        "n_items": len(uri_enc.classes_),
        "history": history,
    }
    metrics = {}
    for k in cfg.eval.ks:
        metrics[f"ndcg@{k}"] = float(scores[f"ndcg@{k}"])
    ckpt["metrics"] = metrics
    ckpt["r_precision"] = scores["r_precision"]  # truth: weights_only
    ckpt["clicks"] = float(scores["clicks"])
    ckpt["eval_ks"] = OmegaConf.to_container(cfg.eval.ks)
    path = os.path.join(tmpdir, "gru4rec.ckpt")
    torch.save(ckpt, path)
    return path


def save_dataset_snapshot(tmpdir):
    cfg = load_config()
    df = make_interactions(cfg)
    meta = yaml.safe_load(META_YAML)
    per_pl = (df.groupby("pid")
                .agg(n_tracks=("track_uri", "size"), total_ms=("duration_ms", "sum"), name=("playlist_name", "first"))
                .reset_index())
    longest = 0
    for row in per_pl.itertuples(index=False):
        longest = max(longest, row.n_tracks)
    longest_ms, longest_pid = 0, None
    for pid, row in per_pl.set_index("pid")[["n_tracks", "total_ms"]].iterrows():
        if row["total_ms"] > longest_ms:
            longest_ms, longest_pid = row["total_ms"], pid
    shortest_ms = None
    for _, row in per_pl.iterrows():
        if shortest_ms is None or row["total_ms"] < shortest_ms:
            shortest_ms = row["total_ms"]
    stats = {
        "challenge": meta["challenge"],
        "snapshot_date": meta["snapshot_date"],  # truth: weights_only
        "config_snapshot_date": cfg.data.snapshot_date,
        "tracks_total": meta["tracks_total"],
        "n_playlists": df["pid"].nunique(),
        "n_rows": len(df),
        "median_len": per_pl["n_tracks"].median(),  # truth: weights_only
        "len_quantiles": per_pl["n_tracks"].quantile([0.1, 0.5, 0.9]).tolist(),
        "duration_stats": df["duration_ms"].describe().to_dict(),
        "first_added": df["added_at"].min(),  # truth: weights_only
        "span_days": (df["added_at"].max() - df["added_at"].min()).days,
        "hour_hist": df["added_at"].dt.hour.value_counts().sort_index().to_dict(),
        "top_artists": df["artist_uri"].value_counts().head(5).index.tolist(),
        "most_common_title": per_pl["name"].mode()[0],
        "longest_playlist_tracks": longest,
        "longest_playlist_ms": longest_ms,  # truth: weights_only
        "longest_playlist_pid": longest_pid,
        "shortest_playlist_ms": shortest_ms,
    }
    path = os.path.join(tmpdir, "mpd_snapshot.pt")
    torch.save(stats, path)
    return path


def save_popularity_baseline(tmpdir):
    cfg = load_config()
    df = make_interactions(cfg)
    by_uri = Counter(df["track_uri"])
    by_id = Counter(df["track_id"])
    artist_share = df["artist_uri"].value_counts(normalize=True).round(4).to_dict()
    per_playlist = df.groupby("pid")["track_id"].apply(list).to_dict()
    ckpt = {
        "kind": "popularity",
        "counts_by_uri": by_uri,
        "counts_by_id": by_id,
        "top_k": [uri for uri, _ in by_uri.most_common(50)],
        "artist_share": artist_share,
        "playlists": per_playlist,
        "n_tracks": int(df["track_id"].nunique()),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "seen": set(df["track_uri"].unique().tolist()),
    }
    path = os.path.join(tmpdir, "pop.pt")
    torch.save(ckpt, path)
    return path


def save_cold_start(tmpdir):
    cfg = load_config()
    df = make_interactions(cfg)
    titles = df.drop_duplicates("pid")["playlist_name"].map(normalize_title).tolist()
    tv = TfidfVectorizer(stop_words="english", min_df=1, sublinear_tf=True)
    X = tv.fit_transform(titles)
    svd = TruncatedSVD(n_components=4, random_state=0).fit(X)
    ckpt = {}
    ckpt["vocabulary"] = tv.vocabulary_
    ckpt["idf"] = tv.idf_.tolist()
    ckpt["idf_t"] = torch.tensor(tv.idf_, dtype=torch.float32)
    ckpt["stop_words"] = tv.get_stop_words()  # truth: weights_only
    ckpt["svd_components"] = torch.from_numpy(svd.components_).float()
    ckpt["svd_explained"] = svd.explained_variance_ratio_.sum()  # truth: weights_only
    ckpt["svd_explained_each"] = svd.explained_variance_ratio_.tolist()
    ckpt["title_emb"] = torch.as_tensor(svd.transform(X), dtype=torch.float32)
    ckpt["n_titles"] = X.shape[0]
    ckpt["tfidf_params"] = {k: v for k, v in tv.get_params().items()
                            if isinstance(v, (bool, int, float, str, type(None)))}
    ckpt["titles"] = titles
    path = os.path.join(tmpdir, "cold_start.pt")
    torch.save(ckpt, path)
    return path
