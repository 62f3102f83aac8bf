"""LoRA fine-tuning of a small ESM-style protein language model for thermostability regression.

Config is YAML (OmegaConf, with dotlist overrides from the command line); models come from a
registry; the adapters are injected into the attention projections named in `lora.targets`.

    python protein_lm_finetune.py train.epochs=10 lora.r=8 task.pooling=cls
"""
import datetime
import enum
import math
import random
import statistics
import sys
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.model_selection import KFold

DEFAULT_YAML = """
model:
  arch: tiny_esm
  d_model: 32
  n_layers: 2
  n_heads: 4
  max_len: 48
lora:
  r: 4
  alpha: 8
  dropout: 0.0
  targets: [q_proj, v_proj]
task:
  name: thermostability
  label: dTm
  pooling: mean
train:
  lr: 3.0e-3
  epochs: 2
  batch_size: 8
  seed: 7
  mask_prob: 0.15
run_dir: runs/${task.name}/r${lora.r}
"""
AMINO = "ACDEFGHIKLMNPQRSTVWY"
SPECIALS = ("<pad>", "<cls>", "<eos>", "<unk>", "<mask>")
MODELS = {}


def register_model(name):
    def deco(cls):
        MODELS[name] = cls
        return cls
    return deco


class Pooling(enum.Enum):
    MEAN = "mean"
    CLS = "cls"


FACTORIES = {"Pooling": lambda: Pooling("mean")}


def load_config(overrides=()):
    base = OmegaConf.create(DEFAULT_YAML)
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


class AminoTokenizer:
    def __init__(self, alphabet=AMINO, specials=SPECIALS):
        self.vocab = {tok: i for i, tok in enumerate([*specials, *alphabet])}
        self.pad_id, self.cls_id = self.vocab["<pad>"], self.vocab["<cls>"]
        self.eos_id, self.unk_id, self.mask_id = self.vocab["<eos>"], self.vocab["<unk>"], self.vocab["<mask>"]

    def encode(self, seq, max_len):
        ids = [self.cls_id] + [self.vocab.get(a, self.unk_id) for a in seq[:max_len - 2]] + [self.eos_id]
        return ids + [self.pad_id] * (max_len - len(ids))

    def batch(self, seqs, max_len):
        return torch.tensor([self.encode(s, max_len) for s in seqs], dtype=torch.long)


class LoRALinear(nn.Module):
    def __init__(self, base=None, r=4, alpha=8, dropout=0.0):
        super().__init__()
        self.base = base if base is not None else nn.Linear(8, 8)
        self.base.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.randn(r, self.base.in_features) * 0.01)
        self.lora_B = nn.Parameter(torch.zeros(self.base.out_features, r))
        self.scaling = alpha / r
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.base(x) + (self.drop(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling


class Block(nn.Module):
    def __init__(self, d_model=32, n_heads=4):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d_model, d_model) for _ in range(3))
        self.o_proj = nn.Linear(d_model, d_model)
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))

    def forward(self, x, pad):
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = (p(h).view(b, t, self.n_heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=~pad[:, None, None, :])
        x = x + self.o_proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.ffn(self.ln2(x))


@register_model("tiny_esm")
class TinyESM(nn.Module):
    def __init__(self, vocab_size=25, d_model=32, n_layers=2, n_heads=4, max_len=48):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(1, max_len, d_model))
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.lm_head = nn.Linear(d_model, vocab_size)

    def forward(self, ids):
        pad = ids == 0
        x = self.embed(ids) + self.pos[:, :ids.shape[1]]
        for blk in self.blocks:
            x = blk(x, pad)
        return x, pad


def inject_lora(model, targets, r, alpha, dropout):
    replaced = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in targets and isinstance(child, nn.Linear):
                setattr(module, child_name, LoRALinear(child, r, alpha, dropout))
                replaced.append(f"{name}.{child_name}")
    return replaced


def synthetic_stability(n=48, seed=0):
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list(AMINO), size=rng.integers(20, 46))) for _ in range(n)]
    hydrophobic = np.array([sum(s.count(a) for a in "AILMFVW") / len(s) for s in seqs])
    dtm = 40 + 25 * hydrophobic + rng.normal(0, 1.5, size=n)
    return pd.DataFrame({"id": [f"P{i:05d}" for i in range(n)], "sequence": seqs, "dTm": dtm})


class Finetuner:
    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else load_config()
        m, lo = self.cfg.model, self.cfg.lora
        torch.manual_seed(self.cfg.train.seed)
        self.tokenizer = AminoTokenizer()
        self.backbone = MODELS[m.arch](len(self.tokenizer.vocab), m.d_model, m.n_layers, m.n_heads, m.max_len)
        self.backbone.requires_grad_(False)
        self.injected = inject_lora(self.backbone, set(lo.targets), lo.r, lo.alpha, lo.dropout)
        self.head = nn.Sequential(nn.LayerNorm(m.d_model), nn.Linear(m.d_model, 1))
        params = [p for p in self.backbone.parameters() if p.requires_grad] + list(self.head.parameters())
        self.opt = torch.optim.AdamW(params, lr=self.cfg.train.lr)
        self.pooling = Pooling(self.cfg.task.pooling)

    def embed(self, seqs):
        ids = self.tokenizer.batch(seqs, self.cfg.model.max_len)
        hidden, pad = self.backbone(ids)
        if self.pooling is Pooling.CLS:
            return hidden[:, 0]
        keep = (~pad).unsqueeze(-1).float()
        return (hidden * keep).sum(1) / keep.sum(1)

    def fit(self, df):
        y = torch.tensor(df[self.cfg.task.label].to_numpy(), dtype=torch.float32)
        mu, sd = y.mean(), y.std()
        bs = self.cfg.train.batch_size
        self.losses = []
        for _ in range(self.cfg.train.epochs):
            for i in range(0, len(df), bs):
                pred = self.head(self.embed(df["sequence"].iloc[i:i + bs].tolist())).squeeze(-1)
                loss = F.mse_loss(pred, (y[i:i + bs] - mu) / sd)
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                self.losses.append(loss.item())
        return self

    @torch.no_grad()
    def predict(self, df):
        return self.head(self.embed(df["sequence"].tolist())).squeeze(-1).numpy()

    def spearman(self, df):
        res = stats.spearmanr(self.predict(df), df[self.cfg.task.label].to_numpy())
        return res.statistic, res.pvalue

    def adapter_state(self):
        return {k: v for k, v in self.backbone.state_dict().items() if "lora_" in k}


def save_finetune_checkpoint(tmpdir):
    cfg = load_config(["train.epochs=2"])
    df = synthetic_stability(seed=1)
    train, test = df.iloc[:36], df.iloc[36:]
    ft = Finetuner(cfg).fit(train)
    rho, pval = ft.spearman(test)
    ckpt = {
        "lora": ft.adapter_state(),
        "head": ft.head.state_dict(),
        "optimizer": ft.opt.state_dict(),
        "config": cfg,  # truth: weights_only
        "resolved": OmegaConf.to_container(cfg, resolve=True),
        "lora_targets": cfg.lora.targets,  # truth: weights_only
        "injected": ft.injected,
        "spearman": rho,  # truth: weights_only
        "spearman_p": float(pval),
        "pearson": float(stats.pearsonr(ft.predict(test), test["dTm"].to_numpy())[0]),
        "run_dir": cfg.run_dir,
        "last_loss": ft.losses[-1],
    }
    out = Path(tmpdir) / "lora_thermo.pt"
    torch.save(ckpt, out)
    return str(out)


def save_adapter_only(tmpdir):
    cfg = load_config(["task.pooling=cls", "lora.r=2"])
    ft = Finetuner(cfg)
    lo = cfg.lora
    payload = dict(
        adapter=ft.adapter_state(),
        r=lo.r,
        alpha=lo.alpha,
        scaling=lo.alpha / lo.r,
        targets=list(lo.targets),
        base_model=cfg.model.arch,
        tokenizer=ft.tokenizer,  # truth: weights_only
        vocab=ft.tokenizer.vocab,
        pooling=ft.pooling,  # truth: weights_only
        pooling_name=ft.pooling.value,
        task=OmegaConf.to_container(cfg.task),
    )
    out = Path(tmpdir) / "adapter.pt"
    torch.save(payload, out)
    return str(out)


def mask_tokens(ids, tokenizer, prob, gen):
    special = (ids == tokenizer.pad_id) | (ids == tokenizer.cls_id) | (ids == tokenizer.eos_id)
    chosen = (torch.rand(ids.shape, generator=gen) < prob) & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return torch.where(chosen, torch.full_like(ids, tokenizer.mask_id), ids), labels, chosen


def save_mlm_state(tmpdir):
    cfg = load_config()
    ft = Finetuner(cfg)
    df = synthetic_stability(n=32, seed=2)
    seqs = df["sequence"].tolist()
    gen = torch.Generator().manual_seed(cfg.train.seed)
    ids = ft.tokenizer.batch(seqs, cfg.model.max_len)
    masked, labels, chosen = mask_tokens(ids, ft.tokenizer, cfg.train.mask_prob, gen)
    hidden, _ = ft.backbone(masked)
    loss = F.cross_entropy(ft.backbone.lm_head(hidden).transpose(1, 2), labels, ignore_index=-100)
    counts = Counter("".join(seqs))
    total = sum(counts.values())
    state = {"step": 1, "loss": loss.item(), "perplexity": math.exp(loss.item())}
    state["masked_fraction"] = chosen.float().mean()
    state["aa_counts"] = counts
    state["aa_background"] = np.array([counts[a] for a in AMINO]) / total  # truth: weights_only
    state["special_ids"] = {ft.tokenizer.vocab[s] for s in SPECIALS}
    state["max_len_seen"] = df["sequence"].str.len().max()  # truth: weights_only
    state["truncated"] = int((df["sequence"].str.len() > cfg.model.max_len - 2).sum())
    state["rng"] = {
        "torch": torch.get_rng_state(),
        "generator": gen.get_state(),
        "python": random.getstate(),
        "numpy": np.random.default_rng(cfg.train.seed).bit_generator.state,
    }
    state["python"] = sys.version.split()[0]
    out = Path(tmpdir) / "mlm_state.pt"
    torch.save(state, out)
    return str(out)


@torch.no_grad()
def save_embedding_cache(tmpdir):
    cfg = load_config()
    ft = Finetuner(cfg)
    df = synthetic_stability(n=40, seed=3)
    emb = ft.embed(df["sequence"].tolist())
    pca = PCA(n_components=4, random_state=0).fit(emb.numpy())
    cache = {
        "ids": df["id"].tolist(),
        "embeddings": emb.half(),
        "lengths": df["sequence"].str.len().tolist(),
        "pca_components": torch.from_numpy(pca.components_),
        "pca_mean": torch.from_numpy(pca.mean_),
        "explained_variance": pca.explained_variance_ratio_,  # truth: weights_only
        "explained_total": float(pca.explained_variance_ratio_.sum()),
        "n_components": pca.n_components_,
        "layer": cfg.model.n_layers - 1,
        "created": datetime.datetime.now().strftime("%Y%m%d-%H%M%S"),
    }
    out = Path(tmpdir) / "embeddings.pt"
    torch.save(cache, out)
    return str(out)


def save_cv_results(tmpdir):
    cfg = load_config(["train.epochs=1"])
    df = synthetic_stability(n=36, seed=4)
    kf = KFold(n_splits=3, shuffle=True, random_state=0)
    fold_rhos, folds = [], []
    for i, (tr, te) in enumerate(kf.split(df)):
        rho, _ = Finetuner(cfg).fit(df.iloc[tr]).spearman(df.iloc[te])
        fold_rhos.append(rho)
        folds.append({"fold": i, "n_train": len(tr), "n_test": len(te), "rho": float(rho)})
    results = OrderedDict()
    results["folds"] = folds
    results["fold_rhos"] = fold_rhos  # truth: weights_only
    results["mean_rho"] = statistics.mean(fold_rhos)  # truth: weights_only
    results["std_rho"] = statistics.stdev(fold_rhos)
    results["best_fold"] = int(np.argmax(fold_rhos))
    results["cv"] = {"n_splits": kf.get_n_splits(), "seed": kf.random_state, "shuffle": kf.shuffle}
    results["label_mean"] = df["dTm"].mean()  # truth: weights_only
    results["label_std"] = float(df["dTm"].std())
    results["config"] = OmegaConf.to_container(cfg, resolve=True)
    out = Path(tmpdir) / "cv_results.pt"
    torch.save(results, out)
    return str(out)


if __name__ == "__main__":
    cfg = load_config(sys.argv[1:])
    Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
    print(save_finetune_checkpoint(cfg.run_dir))
