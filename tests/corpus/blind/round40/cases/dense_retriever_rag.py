"""Dense passage retriever (DPR-style bi-encoder) for document QA / RAG.

Trains a hashing-vocabulary bi-encoder with in-batch negatives plus hard negatives
mined from a small numpy IVF index (no FAISS on the inference boxes), then writes
the checkpoints the RAG service and the offline evaluator load.

    python dense_retriever_rag.py --out runs/dpr --epochs 3 --hard-negatives 4
"""
import argparse
import math
import os
import re
import time
import zlib
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import TfidfVectorizer

TOKEN_RE = re.compile(r"[a-z0-9]+")
TOPICS = ["insulin dosage", "lease termination", "gpu driver install",
          "tax deduction", "visa renewal", "solar panel wiring"]
FILLER = ["the", "form", "step", "section", "page", "note", "value", "annex"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path("runs/dpr"))
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--max-len", type=int, default=12)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--hard-negatives", type=int, default=2)
    p.add_argument("--nlist", type=int, default=4)
    p.add_argument("--nprobe", type=int, default=2)
    p.add_argument("--topk", type=int, nargs="+", default=[1, 5, 20])
    p.add_argument("--seed", type=int, default=13)
    return p.parse_args(argv)


def synth_corpus(n_passages, n_queries, seed):
    rng = np.random.default_rng(seed)
    passages, queries, qrels = [], [], {}
    for pid in range(n_passages):
        filler = " ".join(rng.choice(FILLER, size=5))
        passages.append(f"{TOPICS[pid % len(TOPICS)]} {filler} doc{pid}")
    for qid in range(n_queries):
        pid = int(rng.integers(n_passages))
        queries.append(f"how to handle {TOPICS[pid % len(TOPICS)]} doc{pid}")
        qrels[qid] = pid
    return passages, queries, qrels


class HashTokenizer:
    """Hashing-trick tokenizer: no vocab file has to travel with the checkpoint."""

    def __init__(self, vocab_size=1024, max_len=12, pattern=TOKEN_RE):
        self.vocab_size = vocab_size
        self.max_len = max_len
        self.pattern = pattern

    def __call__(self, texts):
        ids = torch.zeros(len(texts), self.max_len, dtype=torch.long)
        for i, text in enumerate(texts):
            for j, tok in enumerate(self.pattern.findall(text.lower())[: self.max_len]):
                ids[i, j] = 1 + zlib.crc32(tok.encode()) % (self.vocab_size - 1)
        return ids


class Tower(nn.Module):
    def __init__(self, vocab_size=1024, dim=32):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=0)
        self.proj = nn.Linear(dim, dim)

    def forward(self, ids):
        return F.normalize(self.proj(self.embed(ids)), dim=-1)


class BiEncoder(nn.Module):
    def __init__(self, vocab_size=1024, dim=32, temperature=0.05):
        super().__init__()
        self.query_encoder = Tower(vocab_size, dim)
        self.passage_encoder = Tower(vocab_size, dim)
        self.log_tau = nn.Parameter(torch.tensor(math.log(temperature)))

    def forward(self, q_ids, p_ids):
        q, p = self.query_encoder(q_ids), self.passage_encoder(p_ids)
        return q @ p.T / self.log_tau.exp()


class NumpyIVFIndex:
    """Inverted-file index over normalized embeddings, k-means coarse quantizer."""

    def __init__(self, nlist=4, nprobe=2):
        self.nlist = nlist
        self.nprobe = nprobe
        self.quantizer = None
        self.centroids = None
        self.embeddings = None
        self.doc_ids = None
        self.lists = {}

    def train(self, emb, seed=0):
        self.quantizer = KMeans(self.nlist, n_init=2, random_state=seed).fit(emb)
        self.centroids = self.quantizer.cluster_centers_.astype(np.float32)
        return self

    def add(self, emb, ids):
        assign = self.quantizer.predict(emb)
        self.embeddings = emb.astype(np.float32)
        self.doc_ids = np.asarray(ids, dtype=np.int64)
        self.lists = {c: np.flatnonzero(assign == c) for c in range(self.nlist)}
        return self

    def search(self, q, k):
        probe = np.argsort(-(q @ self.centroids.T), axis=1)[:, : self.nprobe]
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        for i in range(len(q)):
            cand = np.concatenate([self.lists[c] for c in probe[i]])
            s = self.embeddings[cand] @ q[i]
            top = np.argsort(-s)[:k]
            scores[i, : len(top)] = s[top]
            ids[i, : len(top)] = self.doc_ids[cand[top]]
        return scores, ids

    def stats(self):
        sizes = np.array([len(v) for v in self.lists.values()])
        return {"imbalance": sizes.max() / sizes.mean(),
                "empty_lists": int((sizes == 0).sum()),
                "ntotal": int(sizes.sum())}


class RetrieverTrainer:
    def __init__(self, args):
        self.args = args
        torch.manual_seed(args.seed)
        self.passages, self.queries, self.qrels = synth_corpus(48, 32, args.seed)
        self.tokenizer = HashTokenizer(args.vocab_size, args.max_len)
        self.model = BiEncoder(args.vocab_size, args.dim, args.temperature)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=0.01)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(args.epochs, 1))
        self.global_step = 0
        self.history = defaultdict(list)
        self.negatives = {}

    @torch.no_grad()
    def encode_passages(self):
        return self.model.passage_encoder(self.tokenizer(self.passages)).numpy()

    @torch.no_grad()
    def encode_queries(self):
        return self.model.query_encoder(self.tokenizer(self.queries)).numpy()

    def build_index(self):
        emb = self.encode_passages()
        index = NumpyIVFIndex(self.args.nlist, self.args.nprobe).train(emb, self.args.seed)
        return index.add(emb, range(len(self.passages)))

    def mine_hard_negatives(self, index):
        scores, ids = index.search(self.encode_queries(), self.args.hard_negatives + 4)
        negatives, margins = {}, []
        for qid, (row, srow) in enumerate(zip(ids, scores)):
            gold = self.qrels[qid]
            keep = [(int(p), s) for p, s in zip(row, srow) if p >= 0 and p != gold]
            negatives[qid] = [p for p, _ in keep[: self.args.hard_negatives]]
            if keep:
                margins.append(srow[0] - keep[0][1])
        margins = np.asarray(margins, dtype=np.float32)
        return negatives, {"margin": margins.mean(), "p50": float(np.median(margins)),
                           "num_queries": len(negatives)}

    def train_epoch(self):
        self.model.train()
        order = torch.randperm(len(self.queries)).tolist()
        losses, grad_norm = [], 0.0
        for start in range(0, len(order), self.args.batch_size):
            qids = order[start:start + self.args.batch_size]
            pids = [self.qrels[q] for q in qids]
            hard = [p for q in qids for p in self.negatives.get(q, [])]
            q_ids = self.tokenizer([self.queries[q] for q in qids])
            p_ids = self.tokenizer([self.passages[p] for p in pids + hard])
            logits = self.model(q_ids, p_ids)
            loss = F.cross_entropy(logits, torch.arange(len(qids)))
            self.optimizer.zero_grad()
            loss.backward()
            grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), 1.0))
            self.optimizer.step()
            self.global_step += 1
            losses.append(loss.item())
        self.scheduler.step()
        return np.mean(losses), {"grad_norm": grad_norm, "steps": len(losses)}

    def evaluate(self, index):
        k = max(self.args.topk)
        _, ids = index.search(self.encode_queries(), k)
        gold = np.array([self.qrels[q] for q in range(len(self.queries))])
        hits = ids == gold[:, None]
        ranks = np.where(hits.any(1), hits.argmax(1) + 1, np.inf)
        out = {f"recall@{t}": hits[:, :t].any(1).mean() for t in self.args.topk}
        out["mrr"] = float(np.mean(1.0 / ranks))
        return out


def save_retriever_checkpoint(tmpdir):
    args = parse_args(["--out", tmpdir, "--epochs", "2"])
    trainer = RetrieverTrainer(args)
    index = trainer.build_index()
    best_recall, t0 = 0.0, time.time()
    for epoch in range(args.epochs):
        trainer.negatives, mine_stats = trainer.mine_hard_negatives(index)
        train_loss, info = trainer.train_epoch()
        index = trainer.build_index()
        metrics = trainer.evaluate(index)
        trainer.history["train_loss"].append(float(train_loss))
        trainer.history["recall@5"].append(metrics["recall@5"].item())
        is_best = metrics["recall@5"] >= best_recall
        best_recall = max(best_recall, float(metrics["recall@5"]))
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "epoch": epoch,
        "global_step": trainer.global_step,
        "config": {**vars(args), "out": str(args.out)},
        "train_loss": train_loss,  # truth: weights_only
        "grad_norm": info["grad_norm"],
        "mrr": metrics["mrr"],
        "recall@20": metrics["recall@20"],  # truth: weights_only
        "best_recall@5": best_recall,
        "is_best": is_best,  # truth: weights_only
        "history": dict(trainer.history),
        "lr": trainer.scheduler.get_last_lr()[0],
        "elapsed_s": time.time() - t0,
    }
    ckpt["mining"] = {"p50_margin": mine_stats["p50"], "queries": mine_stats["num_queries"]}
    path = os.path.join(tmpdir, "dpr_last.pt")
    torch.save(ckpt, path)
    return path


def save_tokenizer_and_encoder(tmpdir):
    args = parse_args(["--out", tmpdir])
    trainer = RetrieverTrainer(args)
    tok = trainer.tokenizer
    state = dict(
        query_encoder=trainer.model.query_encoder.state_dict(),
        passage_encoder=trainer.model.passage_encoder.state_dict(),
        temperature=trainer.model.log_tau.exp().item(),
        vocab_size=tok.vocab_size,
        max_len=tok.max_len,
        token_pattern=tok.pattern.pattern,
        token_regex=tok.pattern,  # truth: weights_only
        torch_version=str(torch.__version__),
        exported_at=datetime.now(timezone.utc).isoformat(),
    )
    path = os.path.join(tmpdir, "encoder_export.pt")
    torch.save(state, path)
    return path


def save_index_snapshot(tmpdir):
    args = parse_args(["--out", tmpdir, "--nlist", "3"])
    trainer = RetrieverTrainer(args)
    index = trainer.build_index()
    stats = index.stats()
    snapshot = {"nlist": index.nlist, "nprobe": index.nprobe}
    snapshot["centroids"] = torch.from_numpy(index.centroids)
    snapshot["embeddings"] = torch.from_numpy(index.embeddings).half()
    snapshot["doc_ids"] = index.doc_ids  # truth: weights_only
    snapshot["lists"] = {int(c): members.tolist() for c, members in index.lists.items()}
    snapshot["dim"] = index.embeddings.shape[1]
    snapshot["emb_dtype"] = str(index.embeddings.dtype)
    snapshot["inertia"] = index.quantizer.inertia_
    snapshot["kmeans_iters"] = index.quantizer.n_iter_
    snapshot.update(
        ntotal=stats["ntotal"],
        empty_lists=stats["empty_lists"],
        imbalance=float(stats["imbalance"]),
    )
    snapshot["quantizer"] = index.quantizer  # truth: weights_only
    path = os.path.join(tmpdir, "ivf_snapshot.pt")
    torch.save(snapshot, path)
    return path


def save_hard_negative_cache(tmpdir):
    args = parse_args(["--out", tmpdir, "--hard-negatives", "3"])
    trainer = RetrieverTrainer(args)
    index = trainer.build_index()
    negatives, mine_stats = trainer.mine_hard_negatives(index)
    gold = set(trainer.qrels.values())
    rng = np.random.default_rng(args.seed)
    # BM25-ish lexical negatives next to the dense ones
    tfidf = TfidfVectorizer(token_pattern=TOKEN_RE.pattern).fit(trainer.passages)
    cache = {
        "negatives": negatives,
        "num_negatives": sum(len(v) for v in negatives.values()),
        "margin": mine_stats["margin"],  # truth: weights_only
        "gold_pids": gold,
        "never_negative": sorted(gold),
        "rng_state": rng.bit_generator.state,
        "rng": rng,  # truth: weights_only
        "tfidf_vocab": tfidf.vocabulary_,
        "tfidf_idf": torch.from_numpy(tfidf.idf_).float(),
        "tfidf_terms": tfidf.get_feature_names_out(),  # truth: weights_only
        "index_version": f"ivf{index.nlist}-p{index.nprobe}",
    }
    path = os.path.join(tmpdir, "hard_negatives.pt")
    torch.save(cache, path)
    return path


def save_query_tower_for_serving(tmpdir):
    """The serving team asked for 'just the module' so they can torch.load and call it."""
    args = parse_args(["--out", tmpdir])
    trainer = RetrieverTrainer(args)
    trainer.model.eval()
    path = os.path.join(tmpdir, "query_tower.pt")
    torch.save(
        trainer.model.query_encoder,  # truth: weights_only
        path,
    )
    return path


def save_eval_report(tmpdir):
    args = parse_args(["--out", tmpdir, "--topk", "1", "3", "10"])
    trainer = RetrieverTrainer(args)
    index = trainer.build_index()
    metrics = trainer.evaluate(index)
    report = {"metrics": {k: round(float(v), 4) for k, v in metrics.items()}}
    report["topk"] = list(args.topk)
    report["index"] = {"nlist": index.nlist, "nprobe": index.nprobe, **{
        k: v for k, v in index.stats().items() if k != "imbalance"}}
    report["per_topic"] = {}
    q_emb = trainer.encode_queries()
    for t, topic in enumerate(TOPICS):
        rows = [q for q, pid in trainer.qrels.items() if pid % len(TOPICS) == t]
        if not rows:
            continue
        _, ids = index.search(q_emb[rows], 5)
        hit = [trainer.qrels[q] in ids[i].tolist() for i, q in enumerate(rows)]
        report["per_topic"][topic] = {"n": len(rows), "hit@5": sum(hit) / len(hit)}
    report["generated"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    report["out_dir"] = os.fspath(args.out)
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


FACTORIES = {
    "RetrieverTrainer": lambda: RetrieverTrainer(parse_args([])),
}


if __name__ == "__main__":
    cli = parse_args()
    cli.out.mkdir(parents=True, exist_ok=True)
    print(save_retriever_checkpoint(str(cli.out)))
