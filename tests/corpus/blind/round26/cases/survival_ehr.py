"""DeepSurv-style Cox model and a discrete-time (DeepHit-like) head over EHR code sequences.

The config is OmegaConf (a YAML string here, a file plus CLI dotlist in the real project). The
code vocabulary is built on the training patients only; the baseline hazard is Breslow's; the
concordance index is Harrell's, computed with numpy.
"""
import os
import random
from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

CONFIG_YAML = """
data:
  n_patients: 40
  max_codes: 12
  cutoff: "2021-06-30"
  followup_days: 730
  test_frac: 0.25
vocab:
  min_count: 3
  specials: ["<pad>", "<unk>"]
model:
  emb_dim: 16
  hidden: 16
  n_bins: 4
optim:
  lr: 0.003
  weight_decay: 0.0001
  epochs: 3
seed: 7
"""

CODE_POOL = ["ICD10:I10", "ICD10:E11", "ICD10:N18", "ICD10:I50", "ICD10:J44", "ATC:C09",
             "ATC:A10", "LOINC:2160-0", "LOINC:4548-4", "ICD10:C34"]
RARE_CODE = "ICD10:Z99.2"


def load_config(overrides=()):  # the CLI passes sys.argv[1:] as a dotlist
    return OmegaConf.merge(OmegaConf.create(CONFIG_YAML), OmegaConf.from_dotlist(list(overrides)))


def make_ehr(cfg):
    rng = np.random.default_rng(cfg.seed)
    cutoff = pd.Timestamp(cfg.data.cutoff)
    rows = []
    for i in range(cfg.data.n_patients):
        codes = rng.choice(CODE_POOL, size=int(rng.integers(3, cfg.data.max_codes))).tolist()
        if i % 9 == 0:
            codes.append(RARE_CODE)
        risk = sum(c in ("ICD10:I50", "ICD10:C34", "ICD10:N18") for c in codes)
        duration = float(rng.exponential(cfg.data.followup_days / (1 + risk)))
        rows.append({
            "patient_id": f"E{i:04d}",
            "codes": codes,
            "duration": min(duration, float(cfg.data.followup_days)),
            "event": int(duration < cfg.data.followup_days and rng.random() < 0.8),
            "index_date": cutoff - pd.Timedelta(days=int(rng.integers(30, 900))),
        })
    return pd.DataFrame(rows)


def split_patients(df, cfg):
    rng = random.Random(cfg.seed)
    ids = sorted(df["patient_id"])
    rng.shuffle(ids)
    n_test = int(len(ids) * cfg.data.test_frac)
    test = df[df["patient_id"].isin(ids[:n_test])]
    return df[~df["patient_id"].isin(ids[:n_test])].reset_index(drop=True), test.reset_index(drop=True)


class CodeVocab:
    def __init__(self, specials=("<pad>", "<unk>"), min_count=1):
        self.specials = list(specials)
        self.min_count = min_count
        self.counts = Counter()
        self.stoi = {s: i for i, s in enumerate(self.specials)}
        self.rare = frozenset()

    def fit(self, sequences):
        for seq in sequences:
            self.counts.update(seq)
        for code, n in sorted(self.counts.items()):
            if n >= self.min_count:
                self.stoi.setdefault(code, len(self.stoi))
        self.rare = frozenset(c for c, n in self.counts.items() if n < self.min_count)
        return self

    def encode(self, seq):
        return [self.stoi.get(c, self.stoi["<unk>"]) for c in seq]

    def __len__(self):
        return len(self.stoi)


def encode_batch(df, vocab):
    seqs = [torch.tensor(vocab.encode(c), dtype=torch.long) for c in df["codes"]]
    return (pad_sequence(seqs, batch_first=True), torch.tensor([len(s) for s in seqs]),
            torch.tensor(df["duration"].to_numpy(), dtype=torch.float32),
            torch.tensor(df["event"].to_numpy(), dtype=torch.float32))


class EHRSurvNet(nn.Module):
    def __init__(self, vocab_size=16, emb_dim=16, hidden=16, n_out=1):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.gru = nn.GRU(emb_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_out)

    def forward(self, codes, lengths):
        packed = pack_padded_sequence(self.emb(codes), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return self.out(h[-1])


def cox_ph_loss(risk, durations, events):
    order = torch.argsort(durations, descending=True)
    risk, events = risk[order], events[order]
    return -((risk - torch.logcumsumexp(risk, dim=0)) * events).sum() / events.sum().clamp(min=1.0)


def concordance_index(durations, risk, events):
    d, r, e = np.asarray(durations), np.asarray(risk), np.asarray(events)
    comparable = (d[:, None] < d[None, :]) & (e[:, None] == 1)
    concordant = ((r[:, None] > r[None, :]) & comparable).sum()
    ties = ((r[:, None] == r[None, :]) & comparable).sum()
    return (concordant + 0.5 * ties) / max(comparable.sum(), 1)


def breslow_baseline(durations, events, risk):
    df = pd.DataFrame({"t": durations, "e": events, "w": np.exp(risk)})
    agg = df.groupby("t").agg(d=("e", "sum"), w=("w", "sum")).sort_index(ascending=False)
    return (agg["d"] / agg["w"].cumsum()).sort_index()


class SurvivalTrainer:
    def __init__(self, model, cfg):
        self.model = model
        self.cfg = cfg
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.history = defaultdict(list)
        self.last_cindex = None
        self.best_cindex = 0.0
        self.baseline_hazard = None

    def fit(self, batch):
        codes, lengths, t, e = batch
        for _ in range(self.cfg.optim.epochs):
            self.model.train()
            loss = cox_ph_loss(self.model(codes, lengths).squeeze(-1), t, e)
            self.opt.zero_grad(); loss.backward(); self.opt.step()
            self.history["train_loss"].append(loss.item())
        return self

    @torch.no_grad()
    def evaluate(self, batch):
        self.model.eval()
        codes, lengths, t, e = batch
        risk = self.model(codes, lengths).squeeze(-1).numpy()
        self.last_cindex = concordance_index(t.numpy(), risk, e.numpy())
        self.history["c_index"].append(float(self.last_cindex))
        self.best_cindex = max(self.best_cindex, float(self.last_cindex))
        return risk

    def fit_baseline(self, batch, risk):
        self.baseline_hazard = breslow_baseline(batch[2].numpy(), batch[3].numpy(), risk)


def build_run(cfg):
    torch.manual_seed(cfg.seed)
    train, test = split_patients(make_ehr(cfg), cfg)
    vocab = CodeVocab(cfg.vocab.specials, cfg.vocab.min_count).fit(train["codes"])
    model = EHRSurvNet(len(vocab), cfg.model.emb_dim, cfg.model.hidden)
    return train, test, vocab, SurvivalTrainer(model, cfg)


def save_deepsurv_checkpoint(tmpdir):
    cfg = load_config(["optim.epochs=2"])
    train, test, vocab, trainer = build_run(cfg)
    train_batch = encode_batch(train, vocab)
    trainer.fit(train_batch)
    trainer.fit_baseline(train_batch, trainer.evaluate(train_batch))
    trainer.evaluate(encode_batch(test, vocab))
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "c_index": trainer.last_cindex,  # truth: weights_only
        "best_c_index": trainer.best_cindex,
        "baseline_hazard": trainer.baseline_hazard,  # truth: weights_only
        "baseline_cumhaz": torch.tensor(trainer.baseline_hazard.cumsum().to_numpy()),
        "history": dict(trainer.history),
        "vocab": vocab.stoi,
        "vocab_size": len(vocab),
        "n_events_train": int(train["event"].sum()),
    }
    ckpt["config"] = OmegaConf.to_container(cfg, resolve=True)
    ckpt["optim_config"] = cfg.optim  # truth: weights_only
    path = os.path.join(tmpdir, "deepsurv.pt")
    torch.save(ckpt, path)
    return path


def make_time_bins(durations, events, n_bins):
    bins = np.quantile(durations[events == 1], np.linspace(0.0, 1.0, n_bins + 1))
    bins[0], bins[-1] = 0.0, durations.max() + 1e-6
    return bins


def deephit_nll(logits, bin_idx, events):
    pmf = torch.softmax(logits, dim=-1)
    surv = 1.0 - pmf.cumsum(-1) + pmf
    ll_event = torch.log(pmf.gather(1, bin_idx[:, None]).squeeze(1) + 1e-7)
    ll_cens = torch.log(surv.gather(1, bin_idx[:, None]).squeeze(1) + 1e-7)
    return -(events * ll_event + (1.0 - events) * ll_cens).mean()


def save_discrete_time_checkpoint(tmpdir):
    cfg = load_config()
    train, _, vocab, _ = build_run(cfg)
    durations, events = train["duration"].to_numpy(), train["event"].to_numpy()
    bins = make_time_bins(durations, events, cfg.model.n_bins)
    bin_idx = torch.as_tensor(np.clip(np.searchsorted(bins, durations, side="right") - 1, 0, len(bins) - 2))
    model = EHRSurvNet(len(vocab), cfg.model.emb_dim, cfg.model.hidden, n_out=cfg.model.n_bins)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    codes, lengths, _, e = encode_batch(train, vocab)
    losses = []
    for _ in range(cfg.optim.epochs):
        loss = deephit_nll(model(codes, lengths), bin_idx, e)
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    state = dict(model=model.state_dict(), n_bins=len(bins) - 1, losses=losses)
    state["time_bins"] = bins  # truth: weights_only
    state["time_bins_t"] = torch.as_tensor(bins, dtype=torch.float32)
    state["mean_bin_width"] = float(np.diff(bins).mean())
    state["censor_rate"] = 1.0 - events.mean()  # truth: weights_only
    state["event_rate"] = events.mean().item()
    state["bin_counts"] = np.bincount(bin_idx.numpy(), minlength=cfg.model.n_bins).tolist()
    state["horizon"] = pd.Timedelta(days=cfg.data.followup_days)  # truth: weights_only
    state["horizon_days"] = cfg.data.followup_days
    path = os.path.join(tmpdir, "deephit.pt")
    torch.save(state, path)
    return path


def save_vocab_artifacts(tmpdir):
    cfg = load_config(["vocab.min_count=4"])
    train, _, vocab, _ = build_run(cfg)
    prefixes = Counter(code.split(":")[0] for seq in train["codes"] for code in seq)
    artifacts = {
        "stoi": vocab.stoi,
        "counts": vocab.counts,
        "top_codes": vocab.counts.most_common(5),
        "prefix_counts": prefixes,
        "rare_codes": vocab.rare,  # truth: weights_only
        "rare_codes_sorted": sorted(vocab.rare),
        "specials": cfg.vocab.specials,  # truth: weights_only
        "specials_list": list(cfg.vocab.specials),
        "min_count": cfg.vocab.min_count,
        "cutoff": pd.Timestamp(cfg.data.cutoff),  # truth: weights_only
        "cutoff_iso": cfg.data.cutoff,
        "codes_per_patient": train["codes"].map(len).describe().to_dict(),
    }
    path = os.path.join(tmpdir, "vocab.pt")
    torch.save(artifacts, path)
    return path


def save_loss_curves(tmpdir):
    cfg = load_config()
    train, _, vocab, trainer = build_run(cfg)
    batch = encode_batch(train, vocab)
    trainer.fit(batch).evaluate(batch)
    path = os.path.join(tmpdir, "curves.pt")
    torch.save(trainer.history, path)  # truth: weights_only
    return path


def save_split_manifest(tmpdir):
    cfg = load_config()
    df = make_ehr(cfg)
    train, test = split_patients(df, cfg)
    manifest = {
        "train_ids": train["patient_id"].tolist(),
        "test_ids": sorted(test["patient_id"]),
        "index_dates": [d.isoformat() for d in test["index_date"]],
        "last_index_date": test["index_date"].max().strftime("%Y-%m-%d"),
        "followup_span_days": (df["index_date"].max() - df["index_date"].min()).days,
        "n_events": int(df["event"].sum()),
        "python_rng": random.Random(cfg.seed).getstate(),
        "numpy_rng": np.random.default_rng(cfg.seed).bit_generator.state,
        "torch_rng": torch.get_rng_state(),
    }
    path = os.path.join(tmpdir, "split.pt")
    torch.save(manifest, path)
    return path


FACTORIES = {
    "SurvivalTrainer": lambda: build_run(load_config())[3],
}
