"""LightningModules for the three projects (search ranking, BC policies, sketch/handwriting
generation), each built the way its project does it: argparse for search, a registry + dataclass
config for the robot policies, OmegaConf for the sketch models."""
import argparse
import dataclasses
import enum
import functools
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.feature_extraction.text import TfidfVectorizer
from torch import nn

# =============================================================== search ranking (argparse)

CORPUS = ["red running shoe", "wireless earbuds case", "usb c cable braided", "trail shoe men", "phone case"]


def ranker_argparser():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--margin", type=float, default=0.5)
    p.add_argument("--out", type=Path, default=Path("runs"))
    p.add_argument("--run-name", default="ltr-pairwise")
    p.add_argument("--max-positions", type=int, default=10)
    return p


class LitSearchRanker(L.LightningModule):
    def __init__(
        self,
        vocab_size: int = 16,
        hidden: int = 32,
        lr: float = 1e-3,
        idf=None,  # truth: hparam
        position_bias=None,
        loss_fn=None,  # truth: hparam
        run_dir=None,  # truth: hparam
        run_name: str = "ltr",
        click_temperature: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.q = nn.Linear(vocab_size, hidden)
        self.d = nn.Linear(vocab_size, hidden)
        self.loss_fn = loss_fn or nn.MarginRankingLoss(margin=0.5)
        bias = torch.tensor(position_bias or [1.0] * 10)
        self.register_buffer("position_bias", bias)

    def forward(self, q, d):
        return (self.q(q) * self.d(d)).sum(-1)

    def training_step(self, batch, batch_idx):
        q, dp, dn = batch
        s_pos, s_neg = self(q, dp), self(q, dn)
        return self.loss_fn(s_pos, s_neg, torch.ones_like(s_pos))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def estimate_position_bias(n_pos, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"position": rng.integers(1, n_pos + 1, 500)})
    df["click"] = rng.random(500) < 0.6 / df["position"]
    ctr = df.groupby("position")["click"].mean()
    return ctr / ctr.iloc[0]


def build_ranker(argv=()):
    args = ranker_argparser().parse_args(list(argv))
    tfidf = TfidfVectorizer().fit(CORPUS)
    bias = estimate_position_bias(args.max_positions)
    return LitSearchRanker(
        vocab_size=len(tfidf.vocabulary_),
        hidden=args.hidden,
        lr=args.lr,
        idf=tfidf.idf_,
        position_bias=bias.tolist(),
        loss_fn=nn.MarginRankingLoss(margin=args.margin),
        run_dir=args.out / args.run_name,
        run_name=args.run_name,
        click_temperature=float(np.float32(0.7)),
    )


class LitClickModel(L.LightningModule):
    """Neural click model (position + attractiveness towers); the whole Namespace is the hparams."""

    def __init__(self, args):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(args)
        self.exam = nn.Embedding(args.max_positions + 1, 1)
        self.attr = nn.Linear(args.hidden, 1)

    def training_step(self, batch, batch_idx):
        pos, feats, click = batch
        logit = self.exam(pos).squeeze(-1) + self.attr(feats).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logit, click)


class LitQueryTower(L.LightningModule):
    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)
        self.tower = nn.Sequential(nn.Linear(args.vocab_size, args.hidden), nn.ReLU())

    def forward(self, x):
        return self.tower(x)


def build_click_model(argv=()):
    return LitClickModel(ranker_argparser().parse_args(list(argv)))


def build_query_tower(argv=()):
    args = ranker_argparser().parse_args(list(argv))
    plain = argparse.Namespace(**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()})
    plain.vocab_size = 16
    return LitQueryTower(plain)


class LitABGuardrail(L.LightningModule):
    """Shadow ranker trained on the treatment bucket; only lr / metric are hyperparameters."""

    def __init__(self, lr=1e-3, metric="ctr", baseline_ctr=None, treatment_ctr=None, backbone=None):
        super().__init__()
        self.save_hyperparameters("lr", "metric")
        self.baseline_ctr = float(baseline_ctr) if baseline_ctr is not None else 0.0
        self.backbone = backbone or nn.Linear(8, 8)
        self.head = nn.Linear(8, 1)


def build_ab_guardrail():
    clicks = np.random.default_rng(5).random((2, 300)) < 0.1
    base, treat = clicks.mean(axis=1)
    return LitABGuardrail(lr=3e-4, metric="ctr", baseline_ctr=base, treatment_ctr=treat,
                          backbone=nn.Sequential(nn.Linear(8, 8), nn.GELU()))


# =============================================================== robot BC (registry + dataclass)

class GripperMode(enum.Enum):
    BINARY = "binary"
    CONTINUOUS = "continuous"


@dataclass
class EpisodeSpec:
    horizon: int = 200
    control_hz: int = 10
    success_key: str = "cube_lifted"


@dataclass
class PolicyConfig:
    name: str = "bc_mlp"
    hidden: int = 128
    lr: float = 3e-4
    gripper: str = "binary"
    obs_keys: tuple = ("joint_pos", "ee_pose", "gripper_width")
    horizon: int = 200
    success_threshold: float = 0.8
    episode: EpisodeSpec = field(default_factory=EpisodeSpec)


POLICIES = {}


def register(name):
    def deco(cls):
        POLICIES[name] = cls
        return cls
    return deco


@register("bc_mlp")
class LitBCPolicy(L.LightningModule):
    def __init__(
        self,
        obs_dim: int = 12,
        act_dim: int = 8,
        hidden: int = 128,
        lr: float = 3e-4,
        action_mean=None,  # truth: hparam
        action_std=None,
        gripper_mode: GripperMode = GripperMode.BINARY,  # truth: hparam
        gripper_mode_name: str = "binary",
        episode=None,  # truth: hparam
        obs_keys=("joint_pos",),
        act_fn=nn.ReLU,  # truth: hparam
        backbone=None,
        success_threshold: float = 0.8,
    ):
        super().__init__()
        action_mean = np.asarray(action_mean if action_mean is not None else [0.0] * act_dim, dtype=np.float32)
        self.save_hyperparameters(ignore=["backbone"])
        action_std = torch.as_tensor(action_std if action_std is not None else [1.0] * act_dim)
        self.backbone = backbone or nn.Identity()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), act_fn(), nn.Linear(hidden, act_dim))
        self.register_buffer("act_mean", torch.from_numpy(action_mean))
        self.register_buffer("act_std", action_std)

    def training_step(self, batch, batch_idx):
        obs, act = batch
        pred = self.net(self.backbone(obs))
        return F.mse_loss(pred, (act - self.act_mean) / self.act_std)


@register("bc_mlp_small")
class LitBCPolicySmall(L.LightningModule):
    def __init__(self, obs_dim: int = 12, act_dim: int = 8, hidden: int = 64, lr: float = 1e-3,
                 action_low=None, action_high=None, gripper: str = "binary", episode_horizon: int = 200):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, act_dim))


def demo_action_stats(seed=0):
    acts = np.random.default_rng(seed).normal(size=(400, 8)).astype(np.float32)
    return acts.mean(0), acts.std(0) + 1e-6, acts.min(0), acts.max(0)


def build_policy(cfg: PolicyConfig):
    mean, std, lo, hi = demo_action_stats()
    cls = POLICIES[cfg.name]
    if cfg.name == "bc_mlp":
        return cls(
            hidden=cfg.hidden,
            lr=cfg.lr,
            action_mean=mean.tolist(),
            action_std=std.tolist(),
            gripper_mode=GripperMode(cfg.gripper),
            gripper_mode_name=GripperMode(cfg.gripper).value,
            episode=cfg.episode,
            obs_keys=tuple(cfg.obs_keys),
            act_fn=nn.SiLU,
            backbone=nn.LayerNorm(12),
            success_threshold=cfg.success_threshold,
        )
    return cls(hidden=cfg.hidden, lr=cfg.lr, action_low=lo.tolist(), action_high=[float(h) for h in hi],
               gripper=cfg.gripper, episode_horizon=dataclasses.asdict(cfg.episode)["horizon"])


# =============================================================== sketch / handwriting (OmegaConf)

SKETCH_CFG = OmegaConf.create({
    "model": {"enc_hidden": 32, "dec_hidden": 64, "z_size": 16, "num_mixture": 5, "hidden_sizes": [64, 64]},
    "train": {"lr": 1e-3, "kl_start": 0.01, "kl_rate": 0.995, "kl_target": 0.5, "max_seq_len": 60},
})


def kl_anneal(step, start=0.01, rate=0.99, target=0.5):
    return target - (target - start) * rate ** step


class LitSketchRNN(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        m = cfg.model
        self.enc = nn.LSTM(5, m.enc_hidden, batch_first=True, bidirectional=True)
        self.dec = nn.LSTM(5 + m.z_size, m.dec_hidden, batch_first=True)
        self.mdn = nn.Linear(m.dec_hidden, 6 * m.num_mixture + 3)


class LitSketchRNNPlain(L.LightningModule):
    def __init__(self, enc_hidden: int = 32, dec_hidden: int = 64, z_size: int = 16, num_mixture: int = 5,
                 lr: float = 1e-3, kl_target: float = 0.5, layer_sizes=(64,)):
        super().__init__()
        self.save_hyperparameters()
        self.enc = nn.LSTM(5, enc_hidden, batch_first=True, bidirectional=True)
        self.mdn = nn.Linear(dec_hidden, 6 * num_mixture + 3)


class LitHandwritingSynth(L.LightningModule):
    """Graves (2013) conditional handwriting: LSTM stack + soft window over characters + MDN."""

    def __init__(
        self,
        charset=("a", "b"),
        hidden_sizes=(64, 64),  # truth: hparam
        num_mixtures: int = 20,
        window_mixtures: int = 10,
        kl_schedule=None,  # truth: hparam
        stroke_scale=1.0,  # truth: hparam
        text_encoder=None,  # truth: hparam
        max_len: int = 60,
        pen_prior=(0.8, 0.15, 0.05),
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(len(charset) + 1, 16)
        self.rnn = nn.LSTM(3 + 16, hidden_sizes[0], batch_first=True)
        self.mdn = nn.Linear(hidden_sizes[-1], 6 * num_mixtures + 1)


def build_sketch_rnn(cfg=SKETCH_CFG):
    return LitSketchRNN(cfg)


def build_sketch_rnn_plain(cfg=SKETCH_CFG):
    flat = {**OmegaConf.to_container(cfg.model), **OmegaConf.to_container(cfg.train)}
    return LitSketchRNNPlain(enc_hidden=flat["enc_hidden"], dec_hidden=flat["dec_hidden"], z_size=flat["z_size"],
                             num_mixture=flat["num_mixture"], lr=flat["lr"], kl_target=flat["kl_target"],
                             layer_sizes=tuple(flat["hidden_sizes"]))


def build_handwriting(cfg=SKETCH_CFG, lines=("hello world", "sketch rnn")):
    charset = sorted(set("".join(lines)))
    idx = {c: i + 1 for i, c in enumerate(charset)}
    offsets = np.random.default_rng(0).normal(scale=6.0, size=(500, 2)).astype(np.float32)
    lengths = np.array([len(l) * 12 for l in lines])
    pen = np.random.default_rng(1).choice(3, size=400, p=[0.8, 0.15, 0.05])
    return LitHandwritingSynth(
        charset=tuple(charset),
        hidden_sizes=cfg.model.hidden_sizes,
        num_mixtures=cfg.model.num_mixture * 4,
        window_mixtures=10,
        kl_schedule=functools.partial(kl_anneal, start=cfg.train.kl_start, rate=cfg.train.kl_rate),
        stroke_scale=offsets.std(),
        text_encoder=lambda s: [idx.get(c, 0) for c in s],
        max_len=int(np.percentile(lengths, 99)),
        pen_prior=tuple((np.bincount(pen, minlength=3) / pen.size).tolist()),
        lr=cfg.train.lr,
    )


FACTORIES = {
    "LitSearchRanker": build_ranker,
    "LitClickModel": build_click_model,
    "LitQueryTower": build_query_tower,
    "LitABGuardrail": build_ab_guardrail,
    "LitBCPolicy": lambda: build_policy(PolicyConfig()),
    "LitBCPolicySmall": lambda: build_policy(PolicyConfig(name="bc_mlp_small", hidden=64)),
    "LitSketchRNN": build_sketch_rnn,
    "LitSketchRNNPlain": build_sketch_rnn_plain,
    "LitHandwritingSynth": build_handwriting,
    "GripperMode": lambda: GripperMode.CONTINUOUS,
}
