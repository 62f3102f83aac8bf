"""Lightning wrappers for the three projects (bid landscape, human mesh recovery, phase picking).

Modules are never built by hand: `build(task, **overrides)` looks the task up in TASKS, reads its
config, prepares what the module needs from data (pandas / numpy / sklearn) and the sibling
projects' helpers, and calls the constructor.  Every module stores its constructor arguments with
`self.save_hyperparameters(...)`.
"""
import functools
import os
from dataclasses import replace

import lightning.pytorch as L
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.mixture import GaussianMixture
from torch.utils.data import DataLoader, TensorDataset

from bid_landscape_forecast import make_bid_log, parse_args, price_grid
from human_mesh_recovery import FLIP_PERM, CameraCfg, HMRConfig, RotRepr, SMPLLite, rot6d_to_rotmat
from seismic_phase_picking import MODELS, PHASES, load_config, make_labels, normalize, synth_waveforms

BACKBONES = {}
TASKS = {}


def register(table, name):
    def wrap(obj):
        table[name] = obj
        return obj
    return wrap


# ------------------------------------------------------------------ bid landscape

class CensoredNLL(nn.Module):
    def __init__(self, censor_weight=1.0):
        super().__init__()
        self.censor_weight = censor_weight

    def forward(self, logp, z_bin, won):
        tail = torch.flip(torch.cumsum(torch.flip(logp.exp(), [1]), 1), [1])
        ll_won = logp.gather(1, z_bin[:, None]).squeeze(1)
        ll_lost = torch.log(tail.gather(1, z_bin[:, None]).squeeze(1) + 1e-8)
        return -torch.where(won.bool(), ll_won, self.censor_weight * ll_lost).mean()


class BidLandscapeModule(L.LightningModule):
    def __init__(
        self,
        num_features,
        num_campaigns,  # truth: hparam
        num_slots,
        price_grid,  # truth: hparam
        bin_centers,
        hidden_dims=(64, 64),
        censor_weight=1.0,
        loss_fn=None,  # truth: hparam
        lr=1e-3,
        scheduler="onecycle",
        scheduler_factory=None,  # truth: hparam
        slot_prior=None,
        floor_stats=None,
    ):
        super().__init__()
        if loss_fn is None:
            loss_fn = CensoredNLL(censor_weight)
        self.save_hyperparameters()
        self.loss_fn = loss_fn
        self.campaign_emb = nn.Embedding(int(num_campaigns), 8)
        dims = [num_features + 8, *hidden_dims]
        self.mlp = nn.Sequential(*[m for a, b in zip(dims[:-1], dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        self.head = nn.Linear(dims[-1], len(bin_centers))

    def forward(self, x, campaign):
        return torch.log_softmax(self.head(self.mlp(torch.cat([x, self.campaign_emb(campaign)], 1))), -1)

    def training_step(self, batch, batch_idx):
        x, campaign, z_bin, won = batch
        loss = self.loss_fn(self(x, campaign), z_bin, won)
        self.log("train/nll", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        if self.hparams.scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": self.hparams.scheduler_factory(opt)}


class BidLogDataModule(L.LightningDataModule):
    def __init__(self, n_rows=512, batch_size=64, val_fraction=0.2, seed=0, num_bins=32, price_max=30.0):
        super().__init__()
        self.save_hyperparameters()
        self.train_set = self.val_set = None

    def setup(self, stage=None):
        df = make_bid_log(self.hparams.n_rows, self.hparams.seed)
        grid = np.linspace(0, self.hparams.price_max, self.hparams.num_bins + 1)
        z = np.clip(np.digitize(df["observed"], grid) - 1, 0, self.hparams.num_bins - 1)
        x = torch.tensor(df[["floor_price", "hour_sin", "hour_cos", "user_freq"]].to_numpy(), dtype=torch.float32)
        ds = TensorDataset(x, torch.tensor(df["campaign_id"].to_numpy()), torch.tensor(z), torch.tensor(df["won"].to_numpy()))
        n_val = int(len(ds) * self.hparams.val_fraction)
        self.train_set, self.val_set = torch.utils.data.random_split(ds, [len(ds) - n_val, n_val])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


@register(TASKS, "bid_landscape")
def build_bid_module(cfg):
    args = parse_args(["--num-bins", str(cfg.get("num_bins", 32))])
    df = make_bid_log(cfg.get("n_rows", 500), args.seed)
    grid = price_grid(args)
    sched = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=cfg.get("lr", 1e-3) * 10, total_steps=100)
    return BidLandscapeModule(
        num_features=4,
        num_campaigns=df["campaign_id"].max() + 1,
        num_slots=df["ad_slot"].nunique(),
        price_grid=grid,
        bin_centers=((grid[:-1] + grid[1:]) / 2).tolist(),
        hidden_dims=tuple(cfg.get("hidden_dims", (64, 64))),
        lr=cfg.get("lr", 1e-3),
        scheduler_factory=sched,
        slot_prior=df["ad_slot"].value_counts(normalize=True).to_dict(),
        floor_stats=df["floor_price"].describe().to_dict(),
    )


class BidShadingModule(L.LightningModule):
    def __init__(self, value_cpm, grid_points, budget, history_df, encoder):
        super().__init__()
        self.save_hyperparameters("value_cpm", "grid_points", "budget")
        self.history_df = history_df
        self.encoder = encoder
        self.logit_scale = nn.Parameter(torch.zeros(grid_points))

    def forward(self, bids):
        return torch.sigmoid(self.logit_scale * bids)


@register(TASKS, "bid_shading")
def build_shading_module(cfg):
    from sklearn.preprocessing import OneHotEncoder
    df = make_bid_log(200, 3)
    enc = OneHotEncoder(handle_unknown="ignore").fit(df[["ad_slot"]])
    return BidShadingModule(value_cpm=float(cfg.get("value_cpm", 8.0)), grid_points=int(cfg.get("grid_points", 64)),
                            budget=float(cfg.get("budget", "1250.0")), history_df=df, encoder=enc)


# ------------------------------------------------------------------ human mesh recovery

@register(BACKBONES, "tiny_cnn")
class TinyCNN(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 5, 2, 2), nn.ReLU(), nn.Conv2d(width, 2 * width, 3, 2, 1),
                                 nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = 2 * width

    def forward(self, x):
        return self.net(x)


class HMRLitModule(L.LightningModule):
    def __init__(
        self,
        backbone,
        backbone_name="tiny_cnn",
        img_res=64,
        num_betas=10,
        iters=3,
        rot_repr=RotRepr.SIX_D,  # truth: hparam
        camera=None,  # truth: hparam
        loss_weights=None,
        joint_weights=None,
        flip_perm=FLIP_PERM,
        smpl_dir="data/smpl",
        lr=5e-5,
        weight_decay=1e-4,
        criterion=nn.MSELoss(reduction="none"),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.smpl = SMPLLite(num_betas=num_betas)
        self.criterion = criterion
        n_params = 24 * 6 + num_betas + 3
        self.regressor = nn.Sequential(nn.Linear(backbone.out_dim + n_params, 128), nn.ReLU(), nn.Linear(128, n_params))
        self.register_buffer("init_theta", torch.zeros(n_params))

    def forward(self, img):
        feat = self.backbone(img)
        theta = self.init_theta.expand(img.shape[0], -1)
        for _ in range(self.hparams.iters):
            theta = theta + self.regressor(torch.cat([feat, theta], 1))
        return rot6d_to_rotmat(theta[:, :144]).view(-1, 24, 3, 3), theta[:, 144:-3], theta[:, -3:]

    def training_step(self, batch, batch_idx):
        img, kp3d = batch
        rotmats, betas, _ = self(img)
        _, joints = self.smpl(rotmats, betas)
        w = self.hparams.joint_weights
        err = self.criterion(joints, kp3d).mean(-1)
        loss = (err * w).mean() if w is not None else err.mean()
        self.log("train/kp3d", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class HMRFinetuneModule(HMRLitModule):
    def __init__(self, pose_prior, pretrained_ckpt="", freeze_backbone=True, **base_kwargs):  # truth: hparam[pose_prior]
        super().__init__(**base_kwargs)
        if freeze_backbone:
            self.backbone.requires_grad_(False)


def fit_pose_prior(n_components=4, seed=0):
    """GMM over flattened body-pose rotations (stand-in for the CMU mocap prior)."""
    rng = np.random.default_rng(seed)
    poses = rng.normal(0, 0.3, (256, 69))
    return GaussianMixture(n_components, covariance_type="diag", random_state=seed).fit(poses)


HMR_DEFAULTS = OmegaConf.create({
    "backbone": "tiny_cnn", "img_res": 64, "iters": 2, "rot_repr": "6d", "smpl_dir": "data/smpl",
    "loss_weights": {"kp2d": 300.0, "kp3d": 300.0, "betas": 0.06},
    "camera": {"focal_length": 5000.0, "img_res": 64},
})


@register(TASKS, "hmr")
def build_hmr_module(cfg):
    conf = OmegaConf.merge(HMR_DEFAULTS, cfg)
    base_cfg = HMRConfig(img_res=conf.img_res, iters=conf.iters)
    camera = replace(base_cfg.camera, **OmegaConf.to_container(conf.camera))
    kwargs = dict(
        backbone=BACKBONES[conf.backbone](),
        backbone_name=conf.backbone,
        img_res=conf.img_res,
        iters=conf.iters,
        rot_repr=RotRepr(conf.rot_repr),
        camera=camera,
        loss_weights=OmegaConf.to_container(conf.loss_weights),
        joint_weights=torch.ones(14).index_fill_(0, torch.tensor([0, 5, 6, 11]), 2.0),
        flip_perm=list(FLIP_PERM),
        smpl_dir=os.path.join(conf.smpl_dir, "neutral"),
    )
    if conf.get("finetune", False):
        return HMRFinetuneModule(pose_prior=fit_pose_prior(), pretrained_ckpt=conf.get("ckpt", ""), **kwargs)
    return HMRLitModule(**kwargs)


class MeshDataModule(L.LightningDataModule):
    def __init__(self, img_res=64, num_samples=64, batch_size=8, num_workers=0, flip_prob=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.flip_perm = list(FLIP_PERM)

    def train_dataloader(self):
        n, r = self.hparams.num_samples, self.hparams.img_res
        ds = TensorDataset(torch.randn(n, 3, r, r), torch.randn(n, 14, 3) * 0.3)
        return DataLoader(ds, batch_size=self.hparams.batch_size, num_workers=self.hparams.num_workers)


class KeypointRefinerModule(L.LightningModule):
    """Lifts noisy 2D keypoints to 3D before the mesh fit (small residual MLP)."""

    def __init__(self, num_joints=14, hidden=128, dropout=0.1, use_confidence=True, activation="gelu",
                 joint_names=("R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle"),
                 bone_pairs=((0, 1), (1, 2), (3, 4), (4, 5)), mean_bone_length=0.0, dtype=torch.float32):
        super().__init__()
        self.save_hyperparameters()
        act = {"gelu": nn.GELU, "relu": nn.ReLU}[activation]
        in_dim = num_joints * (3 if use_confidence else 2)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), act(), nn.Dropout(dropout), nn.Linear(hidden, num_joints * 3))

    def forward(self, kp2d):
        return self.net(kp2d.flatten(1)).view(kp2d.shape[0], -1, 3)


@register(TASKS, "kp_refiner")
def build_refiner(cfg):
    smpl = SMPLLite()
    _, joints = smpl(torch.eye(3).repeat(1, 24, 1, 1), torch.zeros(1, 10))
    bones = ((0, 1), (1, 2), (3, 4), (4, 5))
    lengths = [torch.linalg.norm(joints[0, a] - joints[0, b]).item() for a, b in bones]
    return KeypointRefinerModule(hidden=cfg.get("hidden", 128), bone_pairs=bones,
                                 mean_bone_length=float(np.mean(lengths)))


# ------------------------------------------------------------------ phase picking

class RandomGain:
    def __init__(self, low=0.5, high=2.0):
        self.low, self.high = low, high

    def __call__(self, x):
        return x * np.random.uniform(self.low, self.high)


class AddGaussianNoise:
    def __init__(self, snr_db=20.0):
        self.snr_db = snr_db

    def __call__(self, x):
        p = (x ** 2).mean() / 10 ** (self.snr_db / 10)
        return x + np.random.normal(0, np.sqrt(p), x.shape).astype(x.dtype)


class Compose:
    def __init__(self, transforms=None):
        self.transforms = list(transforms or [])

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class PhasePickerModule(L.LightningModule):
    def __init__(self, cfg):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = MODELS[cfg.model.name](filters=tuple(cfg.model.filters), kernel=cfg.model.kernel)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = -(y * torch.log(self.net(x) + 1e-6)).sum(1).mean()
        self.log("train/ce", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.train.lr)


class AugmentedPickerModule(L.LightningModule):
    def __init__(
        self,
        in_channels=3,
        phases=PHASES,
        sampling_rate=100,
        window_samples=1200,
        filters=(8, 16),
        bandpass=(1.0, 20.0),  # truth: hparam
        pick_threshold=0.3,  # truth: hparam
        augment=None,  # truth: hparam
        label_fn=None,  # truth: hparam
        stations=None,
        class_weights=None,
        lr=1e-3,
        label_sigma_sec=0.1,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = MODELS["phasenet_lite"](filters=tuple(filters), in_channels=in_channels)
        self.register_buffer("weights", class_weights if class_weights is not None else torch.ones(len(phases)))

    def make_targets(self, p_idx, s_idx):
        if self.hparams.label_fn is not None:
            return self.hparams.label_fn(p_idx, s_idx)
        return make_labels(p_idx, s_idx, self.hparams.window_samples, self.hparams.sampling_rate,
                           self.hparams.label_sigma_sec)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logp = torch.log(self.net(x) + 1e-6)
        loss = -(self.weights[None, :, None] * y * logp).sum(1).mean()
        self.log("train/wce", loss)
        return loss


def tune_threshold(cfg, n=8):
    rng = np.random.default_rng(1)
    x, p_idx, s_idx = synth_waveforms(n, cfg, rng)
    sr = cfg.data.sampling_rate
    prob = make_labels(p_idx + 15, s_idx - 10, x.shape[-1], sr, 0.2)[:, 0]
    thresholds = np.round(np.arange(0.1, 0.9, 0.1), 2)
    scores = []
    for thr in thresholds:
        hit = np.abs(prob.argmax(-1) - p_idx) < 0.5 * sr
        scores.append(hit.mean() * (prob.max(-1) > thr).mean())
    return thresholds[int(np.argmax(scores))]


@register(TASKS, "picker")
def build_picker(cfg):
    conf = load_config([f"{k}={v}" for k, v in cfg.items()])
    if conf.get("augmented", True) is False:
        return PhasePickerModule(conf)
    sr = conf.data.sampling_rate
    augment = Compose([RandomGain(0.5, 3.0), AddGaussianNoise(snr_db=15.0)])
    counts = np.array([1.0, 1.4, 0.2])
    return AugmentedPickerModule(
        sampling_rate=sr,
        window_samples=int(conf.data.window_sec * sr),
        filters=list(conf.model.filters),
        bandpass=conf.data.bandpass,
        pick_threshold=tune_threshold(conf),
        augment=augment,
        label_fn=lambda p, s: make_labels(p, s, int(conf.data.window_sec * sr), sr, 0.05),
        stations=list(conf.data.stations),
        class_weights=torch.tensor(counts.sum() / counts, dtype=torch.float32),
        lr=conf.train.lr,
        label_sigma_sec=conf.train.label_sigma_sec,
    )


class WaveformDataModule(L.LightningDataModule):
    def __init__(self, config_overrides=("train.batch_size=8",), num_traces=32, seed=0):
        super().__init__()
        self.save_hyperparameters()

    def train_dataloader(self):
        cfg = load_config(list(self.hparams.config_overrides))
        x, p, s = synth_waveforms(self.hparams.num_traces, cfg, np.random.default_rng(self.hparams.seed))
        y = make_labels(p, s, x.shape[-1], cfg.data.sampling_rate, cfg.train.label_sigma_sec)
        return DataLoader(TensorDataset(torch.from_numpy(normalize(x)), torch.from_numpy(y)),
                          batch_size=cfg.train.batch_size)


def build(task, **overrides):
    return TASKS[task](overrides)


FACTORIES = {
    "BidLandscapeModule": lambda: build("bid_landscape", n_rows=300, hidden_dims=[32]),
    "BidShadingModule": lambda: build("bid_shading", value_cpm=9),
    "HMRLitModule": lambda: build("hmr"),
    "HMRFinetuneModule": lambda: build("hmr", finetune=True, ckpt="runs/hmr/last.ckpt"),
    "KeypointRefinerModule": lambda: build("kp_refiner", hidden=64),
    "PhasePickerModule": lambda: build("picker", augmented=False),
    "AugmentedPickerModule": lambda: build("picker", **{"model.filters": "[4,8]"}),
}
