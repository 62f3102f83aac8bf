# wav2vec2-style SSL pretraining, stripped down: conv feature encoder -> span masking ->
# transformer context net -> gumbel product quantizer -> contrastive loss w/ distractors + diversity
# loss. runs on fake 16 kHz audio for the smoke test.
import collections
import datetime
import enum
import functools
import math
import os
import random
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

G, V, D = 2, 16, 32  # codebook groups, entries per group, model dim


class Stage(enum.Enum):
    PRETRAIN = "pretrain"
    FINETUNE = "finetune"


@dataclass
class MaskCfg:
    p_start: float = 0.30
    p_end: float = 0.65
    warmup: int = 20
    span: int = 4
    min_masks: int = 1


def mask_prob_at(step, p_start=0.30, p_end=0.65, warmup=20):
    return np.interp(step, [0, warmup], [p_start, p_end])


def tau_at(step, start=2.0, end=0.5, decay=0.995):
    return max(end, start * decay ** step)


def linear_warmup(i, n=4):
    return min(1.0, (i + 1) / n)


def compute_mask(B, T, p, span, rng, min_masks=1):
    m = np.zeros((B, T), bool)
    n = max(min_masks, int(p * T / span + rng.random()))
    for b in range(B):
        for s in rng.choice(T - span, n, replace=False):
            m[b, s:s + span] = True
    return m


class FeatEnc(nn.Module):
    def __init__(self, d=D):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv1d(1, d, 10, 5), nn.GELU(), nn.Conv1d(d, d, 8, 4), nn.GELU(),
                                nn.Conv1d(d, d, 4, 2), nn.GELU())

    def forward(self, wav):
        return self.convs(wav[:, None]).transpose(1, 2)


class GumbelVQ(nn.Module):
    def __init__(self, d=D, groups=G, num_vars=V):
        super().__init__()
        self.groups, self.num_vars = groups, num_vars
        self.proj = nn.Linear(d, groups * num_vars)
        self.codevectors = nn.Parameter(torch.randn(groups * num_vars, d // groups))
        self.tau = 2.0

    def forward(self, x):
        B, T, _ = x.shape
        logits = self.proj(x).view(B * T * self.groups, self.num_vars)
        soft = logits.softmax(-1).view(B * T, self.groups, self.num_vars).mean(0)
        ppl = torch.exp(-(soft * torch.log(soft + 1e-7)).sum(-1)).sum()
        hard = F.gumbel_softmax(logits, tau=self.tau, hard=True)
        codes = hard.argmax(-1).view(B * T, self.groups)
        q = (hard.view(B * T, self.groups, self.num_vars, 1) * self.codevectors.view(1, self.groups, self.num_vars, -1)).sum(-2)
        return q.view(B, T, -1), ppl, codes


class W2V(nn.Module):
    def __init__(self, d=D):
        super().__init__()
        self.feature_extractor = FeatEnc(d)
        self.mask_emb = nn.Parameter(torch.zeros(d))
        self.ctx = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 2, 64, batch_first=True), 1)
        self.vq = GumbelVQ(d)
        self.final = nn.Linear(d, d)

    def forward(self, wav, mask):
        z = self.feature_extractor(wav)
        q, ppl, codes = self.vq(z)
        zm = torch.where(torch.from_numpy(mask[:, :z.shape[1]])[..., None], self.mask_emb, z)
        c = self.final(self.ctx(zm))
        return c, q, ppl, codes


def contrastive(c, q, mask, k=5, temp=0.1):
    B, T, _ = c.shape
    m = torch.from_numpy(mask[:, :T])
    cm, qm = c[m], q[m]
    neg_idx = torch.randint(0, len(qm), (len(qm), k))
    cands = torch.cat([qm[:, None], qm[neg_idx]], 1)
    sim = F.cosine_similarity(cm[:, None], cands, -1) / temp
    return F.cross_entropy(sim, torch.zeros(len(sim), dtype=torch.long))


class SSLTrainer:
    def __init__(self, lr=5e-4, steps=6, seed=0, mcfg=None):
        torch.manual_seed(seed)
        self.model = W2V()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=(0.9, 0.98))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, linear_warmup)
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)
        self.mcfg = mcfg or MaskCfg()
        self.rng = np.random.default_rng(seed)
        self.steps = steps
        self.step = 0
        self.loss_window = collections.deque(maxlen=50)
        self.ppl_hist, self.tau_hist, self.mask_hist = [], [], []
        self.best_loss = math.inf
        self.code_counts = np.zeros((G, V), np.int64)

    def train(self, B=2, L=1600):
        for _ in range(self.steps):
            wav = torch.randn(B, L)
            p = mask_prob_at(self.step, self.mcfg.p_start, self.mcfg.p_end, self.mcfg.warmup)
            self.model.vq.tau = tau_at(self.step)
            T = self.model.feature_extractor(wav).shape[1]
            mask = compute_mask(B, T, p, self.mcfg.span, self.rng, self.mcfg.min_masks)
            c, q, ppl, codes = self.model(wav, mask)
            loss = contrastive(c, q, mask) + 0.1 * (G * V - ppl) / (G * V)
            self.opt.zero_grad()
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
            self.sched.step()
            for g in range(G):
                self.code_counts[g] += np.bincount(codes[:, g].numpy(), minlength=V)
            self.loss_window.append(loss.item())
            self.ppl_hist.append(ppl.item())
            self.tau_hist.append(self.model.vq.tau)
            self.mask_hist.append(p)
            self.best_loss = min(self.best_loss, loss.item())
            self.step += 1
        return self


def usage_stats(counts):
    p = counts / counts.sum(-1, keepdims=True)
    H = -(p * np.log(p + 1e-12)).sum(-1)
    return np.exp(H), (counts == 0).mean(), H


# ---------------------------------------------------------------------------------------------

def save_pretrain(tmpdir):
    tr = SSLTrainer().train()
    ppl_np, dead_frac, H = usage_stats(tr.code_counts)
    ck = {
        "model": tr.model.state_dict(),
        "opt": tr.opt.state_dict(),
        "sched": tr.sched.state_dict(),
        "scaler": tr.scaler,  # truth: weights_only
        "scaler_state": tr.scaler.state_dict(),
        "step": tr.step,
        "tau": tr.model.vq.tau,
        "mask_prob": tr.mask_hist[-1],  # truth: weights_only
        "mask_probs": [float(p) for p in tr.mask_hist],
        "ppl": tr.ppl_hist[-1],
        "best_loss": tr.best_loss,
        "loss_window": tr.loss_window,  # truth: weights_only
        "recent_losses": list(tr.loss_window),
        "code_counts": tr.code_counts.tolist(),
        "code_counts_t": torch.from_numpy(tr.code_counts),
        "dead_code_frac": float(dead_frac),
        "codebook_ppl": ppl_np.tolist(),
        "entropy_nats": float(H.sum()),
    }
    p = os.path.join(tmpdir, "w2v_pretrain.pt")
    torch.save(ck, p)
    return p


def save_codebook(tmpdir):
    tr = SSLTrainer(steps=3, seed=1).train()
    usage = tr.code_counts
    flat = usage.reshape(-1)
    p_code = flat / flat.sum()
    ck = {"codevectors": tr.model.vq.codevectors.detach().clone(), "groups": G, "num_vars": V}
    ck["usage_per_group"] = [usage[g] for g in range(G)]  # truth: weights_only
    ck["usage_per_group_list"] = [usage[g].tolist() for g in range(G)]
    ck["top_codes"] = collections.Counter(dict(enumerate(flat.tolist()))).most_common(5)
    ck["active_codes"] = set(np.flatnonzero(flat))  # truth: weights_only
    ck["active_codes_py"] = sorted(int(i) for i in np.flatnonzero(flat))
    ck["n_active"] = int(np.count_nonzero(flat))
    ck["perplexity"] = math.exp(-sum(x * math.log(x) for x in p_code.tolist() if x > 0))
    ck["perplexity_np"] = float(np.exp(-(p_code * np.log(p_code + 1e-12)).sum()))
    ck["ppl_trace"] = torch.tensor(tr.ppl_hist)
    ck["tau_trace"] = tr.tau_hist
    p = os.path.join(tmpdir, "codebook.pt")
    torch.save(ck, p)
    return p


def save_mask_curriculum(tmpdir):
    mcfg = MaskCfg(warmup=10)
    rng = np.random.default_rng(3)
    spans, probs = [], {}
    for step in range(0, 30, 5):
        p = mask_prob_at(step, mcfg.p_start, mcfg.p_end, mcfg.warmup)
        m = compute_mask(4, 60, p, mcfg.span, rng)
        probs[step] = round(float(m.mean()), 4)
        spans += [mcfg.span] * int(m.sum() // mcfg.span)
    ck = dict(
        mask_cfg=mcfg,  # truth: weights_only
        mask_cfg_dict=asdict(mcfg),
        realised_mask_frac=probs,
        span_hist=collections.Counter(spans),
        schedule=functools.partial(mask_prob_at, warmup=mcfg.warmup),  # truth: weights_only
        schedule_name=mask_prob_at.__name__,
        final_tau=tau_at(30),
        final_p_np=np.clip(mask_prob_at(30, warmup=mcfg.warmup), 0.0, 0.65).item(),
        py_rng=random.getstate(),
    )
    p = os.path.join(tmpdir, "mask_curriculum.pt")
    torch.save(ck, p)
    return p


def save_finetune_init(tmpdir):
    tr = SSLTrainer(steps=2, seed=2).train()
    stage = Stage.FINETUNE
    ck = {"stage": stage}  # truth: weights_only
    ck["stage_name"] = stage.value
    ck["frozen_feature_encoder"] = tr.model.feature_extractor  # truth: weights_only
    ck["feature_encoder_state"] = tr.model.feature_extractor.state_dict()
    ck["context_state"] = {k: v for k, v in tr.model.state_dict().items() if not k.startswith("vq.")}
    ck["pretrain_steps"] = tr.step
    ck["tau_final"] = tr.tau_hist[-1]
    ck["created"] = datetime.datetime.now().timestamp()
    ck["created_iso"] = datetime.datetime.now().isoformat()
    ck["lr_lambda_free"] = tr.sched.state_dict()
    ck["best_loss"] = min(tr.loss_window)
    p = os.path.join(tmpdir, "finetune_init.pt")
    torch.save(ck, p)
    return p


def save_phone_probe(tmpdir):
    # linear probe on frozen features: everything here is plain python / tensors
    tr = SSLTrainer(steps=1, seed=4).train()
    with torch.no_grad():
        feats = tr.model.feature_extractor(torch.randn(8, 1600)).mean(1).numpy()
    labels = np.arange(8) % 2
    clf = LogisticRegression(max_iter=200).fit(feats, labels)
    acc = accuracy_score(labels, clf.predict(feats))
    ck = {
        "probe_weight": torch.from_numpy(clf.coef_).float(),
        "probe_bias": torch.from_numpy(clf.intercept_).float(),
        "probe_acc": acc,
        "probe_classes": clf.classes_.tolist(),
        "n_iter": int(clf.n_iter_[0]),
        "feat_dim": feats.shape[1],
        "seconds": time.perf_counter(),
    }
    p = os.path.join(tmpdir, "phone_probe.pt")
    torch.save(ck, p)
    return p


FACTORIES = {"Stage": lambda: Stage.PRETRAIN}
