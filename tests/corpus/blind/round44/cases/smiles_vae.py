"""SMILES VAE for molecular generation (GRU encoder / decoder, cyclical KL annealing).

Config: a YAML run file merged with structured defaults (OmegaConf); tokenizers come from a
registry keyed by TokenizerKind; a ridge property predictor on token counts is trained next to
the VAE; sampled strings are scored for validity / uniqueness / novelty.
"""
import collections
import enum
import functools
import hashlib
import os
import random
import re
import statistics
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from scipy.stats import pearsonr, spearmanr
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split

SMILES_REGEX = r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])"
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)

TRAIN_SMILES = [
    "CCO", "CC(=O)O", "c1ccccc1", "CCN(CC)CC", "CC(C)O", "OC1CCCCC1", "c1ccncc1", "CC(=O)Nc1ccc(O)cc1",
    "COc1ccccc1", "CCOC(=O)C", "Clc1ccccc1", "CC(C)(C)O", "N#CCC", "C1CCOC1", "CCS", "CC=O",
    "O=C(O)c1ccccc1", "Cc1ccccc1", "CCCCCC", "CN1CCCC1", "OCC(O)CO", "Brc1ccccc1", "CC(N)C(=O)O",
    "c1ccc2ccccc2c1", "CC1=CC(=O)C=CC1=O", "FC(F)(F)c1ccccc1", "CC(=O)OC1=CC=CC=C1C(=O)O", "C1CC1",
    "CCOCC", "NCCO", "O=S(=O)(O)O", "CC#N", "c1ccsc1", "c1cc[nH]c1", "CCCC(=O)O", "OC(=O)CC(O)(CC(=O)O)C(=O)O",
]

RUN_YAML = """
dataset:
  name: zinc250k-subset
  snapshot: 2024-03-01
  canonical: true
model:
  emb_dim: 32
  hidden: 64
  latent: 16
  layers: 1
  dropout: 0.1
train:
  lr: 3e-4
  batch_size: 12
  epochs: 2
  seed: 0
  kl:
    cycles: 4
    ratio: 0.5
    beta_max: 0.5
properties: [logp_proxy, hetero_frac, ring_count]
"""


class TokenizerKind(enum.Enum):
    CHAR = "char"
    REGEX = "regex"


@dataclass
class TokenizerConfig:
    kind: TokenizerKind = TokenizerKind.REGEX
    max_len: int = 48


@dataclass
class SamplingConfig:
    n_samples: int = 48
    temperature: float = 1.0
    greedy: bool = False


def load_config(text=RUN_YAML, overrides=()):
    base = OmegaConf.create(text)
    schema = OmegaConf.create({"tokenizer": OmegaConf.structured(TokenizerConfig),
                               "sampling": OmegaConf.structured(SamplingConfig)})
    return OmegaConf.merge(schema, base, OmegaConf.from_dotlist(list(overrides)))


TOKENIZERS = {}


def register_tokenizer(kind):
    def deco(cls):
        TOKENIZERS[kind] = cls
        return cls
    return deco


class SmilesTokenizer:
    def __init__(self, max_len=48):
        self.max_len = max_len
        self.counts = collections.Counter()
        self.itos = list(SPECIALS)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def split(self, smiles):
        raise NotImplementedError

    def fit(self, corpus):
        for s in corpus:
            self.counts.update(self.split(s))
        self.itos = list(SPECIALS) + sorted(self.counts)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        return self

    def encode(self, smiles):
        ids = [self.stoi.get(t, self.stoi[UNK]) for t in self.split(smiles)][: self.max_len - 2]
        ids = [self.stoi[BOS]] + ids + [self.stoi[EOS]]
        return ids + [self.stoi[PAD]] * (self.max_len - len(ids))

    def decode(self, ids):
        out = []
        for i in ids:
            tok = self.itos[i]
            if tok == EOS:
                break
            if tok not in SPECIALS:
                out.append(tok)
        return "".join(out)


@register_tokenizer(TokenizerKind.CHAR)
class CharTokenizer(SmilesTokenizer):
    def split(self, smiles):
        return list(smiles)


@register_tokenizer(TokenizerKind.REGEX)
class RegexTokenizer(SmilesTokenizer):
    def __init__(self, max_len=48, pattern=SMILES_REGEX):
        super().__init__(max_len)
        self.pattern = re.compile(pattern)

    def split(self, smiles):
        return self.pattern.findall(smiles)


def build_tokenizer(tok_cfg):
    return TOKENIZERS[tok_cfg.kind](max_len=tok_cfg.max_len)


class SmilesVAE(nn.Module):
    def __init__(self, vocab_size=40, emb_dim=32, hidden=64, latent=16, layers=1, dropout=0.1, pad_idx=0):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_idx)
        self.encoder = nn.GRU(emb_dim, hidden, layers, batch_first=True, bidirectional=True)
        self.to_mu = nn.Linear(2 * hidden, latent)
        self.to_logvar = nn.Linear(2 * hidden, latent)
        self.z_to_h = nn.Linear(latent, hidden * layers)
        self.decoder = nn.GRU(emb_dim + latent, hidden, layers, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)
        self.layers, self.hidden = layers, hidden

    def encode(self, x):
        _, h = self.encoder(self.emb(x))
        h = torch.cat([h[-2], h[-1]], dim=-1)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z, x_in):
        h0 = self.z_to_h(z).view(-1, self.layers, self.hidden).transpose(0, 1).contiguous()
        e = self.drop(self.emb(x_in))
        out, _ = self.decoder(torch.cat([e, z[:, None].expand(-1, e.size(1), -1)], dim=-1), h0)
        return self.out(out)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decode(z, x[:, :-1]), mu, logvar

    @torch.no_grad()
    def sample(self, z, bos, max_len, temperature=1.0):
        tokens = torch.full((z.size(0), 1), bos, dtype=torch.long)
        for _ in range(max_len - 1):
            logits = self.decode(z, tokens)[:, -1] / temperature
            tokens = torch.cat([tokens, torch.multinomial(F.softmax(logits, -1), 1)], dim=1)
        return tokens


def cyclical_beta(step, total_steps, cycles=4, ratio=0.5, beta_max=1.0):
    period = total_steps / cycles
    return beta_max * min(1.0, (step % period) / (period * ratio))


def beta_table(total_steps, kl_cfg):
    return np.array([cyclical_beta(s, total_steps, kl_cfg.cycles, kl_cfg.ratio, kl_cfg.beta_max)
                     for s in range(total_steps)])


def is_valid_smiles(s):
    """Cheap syntactic check (no RDKit on the sampling box): brackets, branches, ring closures."""
    if not s or s[0] in "=#()123456789":
        return False
    depth, rings = 0, collections.Counter()
    for ch in re.sub(r"\[[^\]]*]", "A", s):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0 or ch in "[]":
            return False
        if ch.isdigit():
            rings[ch] += 1
    return depth == 0 and all(n % 2 == 0 for n in rings.values())


def proxy_properties(s):
    heavy = sum(ch.isalpha() and ch not in "H" for ch in s)
    hetero = sum(s.count(a) for a in "NOSnos")
    return {"logp_proxy": 0.5 * (s.count("C") + s.count("c")) - 0.7 * hetero + 0.9 * s.count("Cl"),
            "hetero_frac": hetero / max(heavy, 1),
            "ring_count": sum(ch.isdigit() for ch in s) // 2}


def validity_metrics(samples, train_set):
    flags = [is_valid_smiles(s) for s in samples]
    valid = [s for s, ok in zip(samples, flags) if ok]
    unique = set(valid)
    return {"validity": np.mean(flags), "uniqueness": len(unique) / max(len(valid), 1),
            "novelty": len(unique - train_set) / max(len(unique), 1), "n_valid": len(valid), "flags": flags}


def token_count_features(tok, corpus):
    X = np.zeros((len(corpus), len(tok.itos)))
    for i, s in enumerate(corpus):
        for t in tok.split(s):
            X[i, tok.stoi.get(t, tok.stoi[UNK])] += 1
    return X


def train_vae(cfg, tok, corpus):
    torch.manual_seed(cfg.train.seed)
    data = torch.tensor([tok.encode(s) for s in corpus])
    lengths = np.array([len(tok.split(s)) for s in corpus])
    model = SmilesVAE(len(tok.itos), cfg.model.emb_dim, cfg.model.hidden, cfg.model.latent, cfg.model.layers,
                      cfg.model.dropout, tok.stoi[PAD])
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    steps_per_epoch = -(-len(corpus) // cfg.train.batch_size)
    betas = beta_table(cfg.train.epochs * steps_per_epoch, cfg.train.kl)
    history, step = [], 0
    for _ in range(cfg.train.epochs):
        for i in range(0, len(data), cfg.train.batch_size):
            x = data[i:i + cfg.train.batch_size]
            logits, mu, logvar = model(x)
            recon = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], ignore_index=tok.stoi[PAD])
            kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu ** 2 - logvar.exp(), dim=1))
            beta = betas[step]
            loss = recon + beta * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append({"step": step, "recon": recon.item(), "kl": kl.item(), "beta": float(beta),
                            "loss": loss.item()})
            step += 1
    return {"model": model, "opt": opt, "history": history, "beta": beta, "step": step, "lengths": lengths}


FACTORIES = {"TokenizerKind": lambda: TokenizerKind.REGEX}


def save_vae_checkpoint(tmpdir):
    cfg = load_config()
    tok = build_tokenizer(cfg.tokenizer).fit(TRAIN_SMILES)
    run = train_vae(cfg, tok, TRAIN_SMILES)
    ckpt = {
        "state_dict": run["model"].state_dict(),
        "optimizer": run["opt"].state_dict(),
        "config": cfg,  # truth: weights_only
        "config_yaml": OmegaConf.to_yaml(cfg),
        "vocab": tok.stoi,
        "itos": tok.itos,
        "token_counts": tok.counts,
        "max_len": run["lengths"].max() + 2,  # truth: weights_only
        "beta": run["beta"],  # truth: weights_only
        "step": run["step"],
        "history": run["history"],
    }
    path = os.path.join(tmpdir, "vae.ckpt")
    torch.save(ckpt, path)
    return path


def save_generation_eval(tmpdir):
    cfg = load_config(overrides=["sampling.temperature=0.8"])
    tok = build_tokenizer(cfg.tokenizer).fit(TRAIN_SMILES)
    run = train_vae(cfg, tok, TRAIN_SMILES)
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(cfg.sampling.n_samples, cfg.model.latent, generator=gen)
    ids = run["model"].sample(z, tok.stoi[BOS], 24, cfg.sampling.temperature)
    samples = [tok.decode(row.tolist()[1:]) for row in ids]
    metrics = validity_metrics(samples, set(TRAIN_SMILES))
    reference = [proxy_properties(s) for s in TRAIN_SMILES]
    ckpt = {
        "samples": samples,
        "validity": metrics["validity"],  # truth: weights_only
        "uniqueness": metrics["uniqueness"],
        "novelty": metrics["novelty"],
        "n_valid": metrics["n_valid"],
        "temperature": cfg.sampling.temperature,
        "sampling": OmegaConf.to_container(cfg.sampling),
        "tokenizer_kind": cfg.tokenizer.kind,  # truth: weights_only
        "latent_prior": torch.distributions.Normal(torch.zeros(cfg.model.latent), 1.0),  # truth: weights_only
        "z": z,
        "generator_state": gen.get_state(),
        "reference_props": {k: statistics.fmean(p[k] for p in reference) for k in cfg.properties},
    }
    path = os.path.join(tmpdir, "generation_eval.pt")
    torch.save(ckpt, path)
    return path


def save_property_predictor(tmpdir):
    cfg = load_config()
    tok = build_tokenizer(cfg.tokenizer).fit(TRAIN_SMILES)
    X = token_count_features(tok, TRAIN_SMILES)
    y = np.array([proxy_properties(s)["logp_proxy"] for s in TRAIN_SMILES])
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
    ridge = Ridge(alpha=1.0).fit(X_tr, y_tr)
    pred = ridge.predict(X_te)
    ckpt = {
        "regressor": ridge,  # truth: weights_only
        "coef": torch.from_numpy(ridge.coef_).float(),
        "intercept": float(ridge.intercept_),
        "r2": r2_score(y_te, pred),
        "mae": mean_absolute_error(y_te, pred),
        "pearson_r": pearsonr(y_te, pred)[0],  # truth: weights_only
        "spearman_rho": float(spearmanr(y_te, pred).statistic),
        "feature_vocab": tok.itos,
        "target": "logp_proxy",
        "target_stats": {"mean": float(y.mean()), "std": float(y.std())},
        "n_train": X_tr.shape[0],
    }
    path = os.path.join(tmpdir, "property_ridge.pt")
    torch.save(ckpt, path)
    return path


def save_vocab_artifact(tmpdir):
    cfg = load_config(overrides=["tokenizer.kind=CHAR"])
    tok = build_tokenizer(cfg.tokenizer).fit(TRAIN_SMILES)
    artifact = collections.defaultdict(dict)
    artifact["tokenizer"]["itos"] = tok.itos
    artifact["tokenizer"]["max_len"] = tok.max_len
    artifact["tokenizer"]["kind"] = cfg.tokenizer.kind.value
    artifact["meta"]["n_smiles"] = len(TRAIN_SMILES)
    artifact["meta"]["specials"] = list(SPECIALS)
    path = os.path.join(tmpdir, "vocab.pt")
    torch.save(artifact, path)  # truth: weights_only
    return path


def save_kl_schedule(tmpdir):
    cfg = load_config()
    raw = yaml.safe_load(RUN_YAML)
    tok = build_tokenizer(cfg.tokenizer).fit(TRAIN_SMILES)
    kl = cfg.train.kl
    total = cfg.train.epochs * 10
    schedule = functools.partial(cyclical_beta, total_steps=total, cycles=kl.cycles, ratio=kl.ratio,
                                 beta_max=kl.beta_max)
    state = {
        "schedule_fn": schedule,  # truth: weights_only
        "schedule": OmegaConf.to_container(kl),
        "betas": torch.tensor([schedule(s) for s in range(total)]),
        "tokenizer_regex": tok.pattern,  # truth: weights_only
        "tokenizer_regex_src": tok.pattern.pattern,
        "specials": set(SPECIALS),
        "data_snapshot": raw["dataset"]["snapshot"],  # truth: weights_only
        "snapshot_tag": cfg.dataset.snapshot,
        "dataset": raw["dataset"]["name"],
        "yaml_lr": raw["train"]["lr"],
    }
    path = os.path.join(tmpdir, "kl_schedule.pt")
    torch.save(state, path)
    return path


def save_resume_checkpoint(tmpdir):
    cfg = load_config(overrides=["train.epochs=1"])
    tok = build_tokenizer(cfg.tokenizer).fit(TRAIN_SMILES)
    run = train_vae(cfg, tok, TRAIN_SMILES)
    flags = [is_valid_smiles(s) for s in TRAIN_SMILES]
    ckpt = {
        "state_dict": run["model"].state_dict(),
        "optimizer": run["opt"].state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "model_cfg": dict(cfg.model),
        "properties": list(cfg.properties),
        "beta": float(run["beta"]),
        "max_len": int(run["lengths"].max()) + 2,
        "len_p95": float(np.percentile(run["lengths"], 95)),
        "train_validity": sum(flags) / len(flags),
        "best_loss": min(h["loss"] for h in run["history"]),
        "py_rng": random.getstate(),
        "torch_rng": torch.get_rng_state(),
        "np_rng": np.random.default_rng(cfg.train.seed).bit_generator.state,
        "data_sha1": hashlib.sha1("\n".join(TRAIN_SMILES).encode()).hexdigest(),
        "charset": set("".join(TRAIN_SMILES)),
        "tokenizer": {"kind": cfg.tokenizer.kind.value, "max_len": tok.max_len},
        "snapshot": str(yaml.safe_load(RUN_YAML)["dataset"]["snapshot"]),
    }
    path = os.path.join(tmpdir, "resume.ckpt")
    torch.save(ckpt, path)
    return path
