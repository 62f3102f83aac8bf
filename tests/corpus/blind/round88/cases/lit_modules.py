"""Lightning wrappers for the three projects, and the builders the `train_*.py` entry points call.

- order-book forecasting: an abstract classifier base with DeepLOB / TransLOB encoders, and a return
  regressor configured straight from the research YAML;
- traffic signs: a plain classifier, a teacher->student distillation module, a (T, alpha) sweep
  module and a dataclass-configured student;
- recipes: LightGCN, a two-tower baseline and an ingredient GraphSAGE.
"""
import functools
import itertools
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader, TensorDataset

from lob_midprice import compute_features, label_midprice_moves, simulate_lob
from recipe_graph_rec import LightGCN, build_adjacency, leave_last_out, load_config, make_interactions, to_torch_sparse
from traffic_sign_kd import SIGN_NAMES, AugPolicy, KDConfig, StudentNet, TeacherNet, make_synthetic_signs


# ============================================================================ order book

class LOBForecasterBase(L.LightningModule):
    """Down / stationary / up classifier over windows of book features; subclasses give `encode`."""

    def __init__(self,
                 n_features: int = 11,
                 n_classes: int = 3,
                 lr: float = 1e-3,
                 class_weights=None,  # truth: hparam
                 label_names=("down", "stationary", "up")):
        super().__init__()
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        self.save_hyperparameters()
        self.loss = nn.CrossEntropyLoss(weight=class_weights)

    def encode(self, x):
        raise NotImplementedError

    def forward(self, x):
        return self.head(self.encode(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train/ce", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


class DeepLOBModule(LOBForecasterBase):
    def __init__(self,
                 conv_channels: int = 16,
                 lstm_hidden: int = 32,
                 tick_size: float = 0.01,  # truth: hparam
                 **kwargs):
        super().__init__(**kwargs)
        self.conv = nn.Sequential(nn.Conv1d(self.hparams.n_features, conv_channels, 3, padding=1), nn.LeakyReLU(0.01))
        self.lstm = nn.LSTM(conv_channels, lstm_hidden, batch_first=True)
        self.head = nn.Linear(lstm_hidden, self.hparams.n_classes)

    def encode(self, x):
        out, _ = self.lstm(self.conv(x.transpose(1, 2)).transpose(1, 2))
        return out[:, -1]


class TransLOBModule(LOBForecasterBase):
    def __init__(self, d_model: int = 32, n_heads: int = 4, n_layers: int = 2, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.proj = nn.Linear(self.hparams.n_features, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers)
        self.head = nn.Linear(d_model, self.hparams.n_classes)

    def encode(self, x):
        return self.encoder(self.proj(x))[:, -1]


LOB_ENCODERS = {"deeplob": DeepLOBModule, "translob": TransLOBModule}


def build_lob_module(name, n_events=600, levels=5, horizon=10, **overrides):
    book = simulate_lob(n_events, levels, seed=3)
    feats = compute_features(book, levels)
    labels, _, _ = label_midprice_moves(feats["mid"], horizon)
    labels = labels[labels >= 0]
    kwargs = dict(
        n_features=feats.shape[1] - 2,
        class_weights=compute_class_weight("balanced", classes=np.arange(3), y=labels),
        lr=3e-4 if name == "translob" else 1e-3,
    )
    if name == "deeplob":
        kwargs["tick_size"] = np.diff(np.unique(book["bid_px_1"].to_numpy())).min()
    kwargs.update(overrides)
    return LOB_ENCODERS[name](**kwargs)


REGRESSOR_YAML = """
model:
  n_features: 11
  hidden: 64
  dropout: 0.1
optim:
  lr: 5.0e-4
  weight_decay: 0.01
target:
  horizon: 10
  clip_bps: 25.0
"""


class MidPriceRegressor(L.LightningModule):
    """Regresses the k-step mid-price return in bps (Huber loss)."""

    def __init__(self, cfg: DictConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters(cfg)
        self.net = nn.Sequential(nn.Linear(cfg.model.n_features, cfg.model.hidden), nn.GELU(),
                                 nn.Dropout(cfg.model.dropout), nn.Linear(cfg.model.hidden, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        y = y.clamp(-self.hparams.target.clip_bps, self.hparams.target.clip_bps)
        return F.huber_loss(self.net(x[:, -1]).squeeze(-1), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.optim.lr,
                                 weight_decay=self.hparams.optim.weight_decay)


class LOBDataModule(L.LightningDataModule):
    def __init__(self, frame: pd.DataFrame, seq_len: int = 32, horizon: int = 10, batch_size: int = 64,
                 val_frac: float = 0.2):
        super().__init__()
        self.save_hyperparameters(ignore=["frame"])
        self.frame = frame

    def setup(self, stage=None):
        x = torch.tensor(self.frame.to_numpy(dtype=np.float32))
        n = len(x) - self.hparams.seq_len
        windows = torch.stack([x[i: i + self.hparams.seq_len] for i in range(n)])
        cut = int(n * (1 - self.hparams.val_frac))
        self.train_set = TensorDataset(windows[:cut])
        self.val_set = TensorDataset(windows[cut:])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)


# ============================================================================ traffic signs

class SignClassifier(L.LightningModule):
    def __init__(self,
                 backbone: str = "student",
                 num_classes: int = len(SIGN_NAMES),
                 width: int = 8,
                 lr: float = 0.05,
                 label_smoothing: float = 0.1,
                 class_names=None,  # truth: hparam
                 mean=(0.3403, 0.3121, 0.3214),  # truth: hparam
                 std=(0.2724, 0.2608, 0.2669),
                 policy: str = "trivialaugment"):
        super().__init__()
        mean = np.asarray(mean, dtype=np.float32)  # broadcast against HWC uint8 frames at inference
        self.save_hyperparameters()
        net_cls = StudentNet if backbone == "student" else TeacherNet
        self.net = net_cls(num_classes, width)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y, label_smoothing=self.hparams.label_smoothing)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class KDLightning(L.LightningModule):
    def __init__(self,
                 student: nn.Module,
                 teacher: nn.Module,  # truth: hparam
                 temperature: float = 4.0,
                 alpha: float = 0.7,
                 lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters(ignore=["student"])
        self.student = student
        self.teacher = teacher.eval()
        self.teacher.requires_grad_(False)

    def training_step(self, batch, batch_idx):
        x, y = batch
        T, a = self.hparams.temperature, self.hparams.alpha
        s = self.student(x)
        with torch.no_grad():
            t = self.teacher(x)
        soft = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T * T
        return a * soft + (1 - a) * F.cross_entropy(s, y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.student.parameters(), lr=self.hparams.lr, momentum=0.9, nesterov=True)


class KDSweepModule(L.LightningModule):
    """One point of the (temperature, alpha) grid; the sweep script hands over a plain dict."""

    def __init__(self,
                 config: dict,  # truth: hparam
                 student_width: int = 8):
        super().__init__()
        self.save_hyperparameters(config)
        self.student = StudentNet(config["num_classes"], student_width)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.student(x) / self.hparams.temperature, y)


@dataclass
class DistillConfig:
    temperature: float = 4.0
    alpha: float = 0.7
    lr: float = 0.05
    width: int = 8
    num_classes: int = len(SIGN_NAMES)


class DistilledStudent(L.LightningModule):
    def __init__(self, cfg: DistillConfig):  # truth: hparam
        super().__init__()
        self.save_hyperparameters()
        self.cfg = cfg
        self.net = StudentNet(cfg.num_classes, cfg.width)

    def configure_optimizers(self):
        return torch.optim.SGD(self.net.parameters(), lr=self.cfg.lr)


class QuantAwareStudent(L.LightningModule):
    """Same config, flattened: the export tool reads plain hyper_parameters."""

    def __init__(self, cfg: DistillConfig, observer: str = "minmax", bits: int = 8):
        super().__init__()
        self.save_hyperparameters({**asdict(cfg), "observer": observer, "bits": bits})
        self.net = StudentNet(cfg.num_classes, cfg.width)


class SignDataModule(L.LightningDataModule):
    def __init__(self, root: str = "data/gtsrb", image_size: int = 16, batch_size: int = 64,
                 policy: str = "trivialaugment", n_train: int = 480):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        cfg = KDConfig(image_size=self.hparams.image_size, n_train=self.hparams.n_train)
        self.train_set, _ = make_synthetic_signs(cfg, cfg.n_train, cfg.seed)


def build_sign_classifier(cfg: KDConfig, backbone="student"):
    ds, y = make_synthetic_signs(cfg, 128, cfg.seed)
    x = ds.tensors[0]
    le = LabelEncoder().fit([SIGN_NAMES[i] for i in range(cfg.num_classes)])
    return SignClassifier(backbone=backbone, num_classes=cfg.num_classes, width=cfg.student_width,
                          lr=cfg.lr, class_names=le.classes_,
                          mean=tuple(x.mean(dim=(0, 2, 3)).tolist()), std=tuple(x.std(dim=(0, 2, 3)).tolist()),
                          policy=cfg.policy.value)


def build_kd_module(cfg: KDConfig):
    teacher = TeacherNet(cfg.num_classes, cfg.teacher_width)
    return KDLightning(StudentNet(cfg.num_classes, cfg.student_width), teacher,
                       temperature=cfg.temperature, alpha=cfg.alpha, lr=cfg.lr)


def sweep_configs():
    for t, a in itertools.product(np.linspace(1.0, 8.0, 4), (0.5, 0.9)):
        yield {"temperature": t, "alpha": a, "num_classes": len(SIGN_NAMES), "lr": 0.05}


# ============================================================================ recipes

def sample_negatives(users, n_items, k=4):
    return torch.randint(0, n_items, (len(users), k))


class LightGCNModule(L.LightningModule):
    def __init__(self,
                 num_users: int,
                 num_recipes: int,  # truth: hparam
                 emb_dim: int = 16,
                 n_layers: int = 2,
                 adj: torch.Tensor = None,
                 reg: float = 1e-4,
                 lr: float = 1e-2):
        super().__init__()
        reg = float(reg)
        self.save_hyperparameters(ignore=["adj"])
        self.model = LightGCN(num_users, num_recipes, emb_dim, n_layers)
        self.adj = adj

    def training_step(self, batch, batch_idx):
        u, pos, neg = batch
        return self.model.bpr_loss(self.adj, u, pos, neg, self.hparams.reg)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class TwoTowerRecipeModule(L.LightningModule):
    def __init__(self,
                 n_users: int = 90,
                 n_recipes: int = 60,
                 dim: int = 32,
                 loss_fn: nn.Module = nn.BCEWithLogitsLoss(),  # truth: hparam
                 score_fn=lambda u, v: (u * v).sum(-1),  # truth: hparam
                 neg_sampler=functools.partial(sample_negatives, k=4),  # truth: hparam
                 temperature: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.user_tower = nn.Sequential(nn.Embedding(n_users, dim), nn.Linear(dim, dim))
        self.item_tower = nn.Sequential(nn.Embedding(n_recipes, dim), nn.Linear(dim, dim))

    def training_step(self, batch, batch_idx):
        u, i, y = batch
        logits = self.hparams.score_fn(self.user_tower(u), self.item_tower(i)) / self.hparams.temperature
        return self.hparams.loss_fn(logits, y.float())


class IngredientSAGE(L.LightningModule):
    def __init__(self,
                 n_ingredients: int,
                 emb_dim: int = 16,
                 aggregator: str = "mean",
                 dropout: float = 0.1,
                 cooccurrence=None,
                 vocab_path: Path = Path("data/ingredients.txt")):  # truth: hparam
        super().__init__()
        self.save_hyperparameters("n_ingredients", "emb_dim", "aggregator", "dropout", "vocab_path")
        self.emb = nn.Embedding(n_ingredients, emb_dim)
        self.lin = nn.Linear(2 * emb_dim, emb_dim)
        self.cooc = to_torch_sparse(cooccurrence) if cooccurrence is not None else None

    def forward(self, idx):
        h = self.emb.weight
        neigh = torch.sparse.mm(self.cooc, h) if self.cooc is not None else h
        return F.normalize(self.lin(torch.cat([h, neigh], -1)), dim=-1)[idx]


class RecipeDataModule(L.LightningDataModule):
    def __init__(self, data_dir="data/recipes", batch_size: int = 256, min_rating: int = 4, holdout: int = 2):
        super().__init__()
        data_dir = str(data_dir)
        self.save_hyperparameters()


def build_lightgcn(overrides=()):
    cfg = load_config(overrides)
    df, _, _ = make_interactions(cfg)
    train_df, _ = leave_last_out(df, cfg.eval.holdout, cfg.data.min_rating)
    n_users, n_recipes = df.user_id.nunique(), df.recipe_id.max() + 1
    _, A_hat = build_adjacency(train_df, n_users, n_recipes)
    return LightGCNModule(num_users=n_users, num_recipes=n_recipes, emb_dim=cfg.model.emb_dim,
                          n_layers=cfg.model.n_layers, adj=to_torch_sparse(A_hat),
                          reg=np.float32(cfg.train.reg), lr=cfg.train.lr)


def build_ingredient_sage(data_root="data"):
    cfg = load_config()
    _, _, inc = make_interactions(cfg)
    cooc = (inc.T @ inc).tocsr()
    return IngredientSAGE(n_ingredients=inc.shape[1], emb_dim=cfg.model.emb_dim, cooccurrence=cooc,
                          vocab_path=Path(data_root) / "ingredients.txt")


# ============================================================================ registry

MODELS = {
    "deeplob": lambda: build_lob_module("deeplob"),
    "translob": lambda: build_lob_module("translob", d_model=16, n_heads=2, n_layers=1),
    "midprice_regressor": lambda: MidPriceRegressor(OmegaConf.create(REGRESSOR_YAML)),
    "sign_classifier": lambda: build_sign_classifier(KDConfig()),
    "sign_kd": lambda: build_kd_module(KDConfig(temperature=3.0)),
    "sign_sweep": lambda: KDSweepModule(next(sweep_configs())),
    "sign_student": lambda: DistilledStudent(DistillConfig(temperature=2.0)),
    "sign_student_qat": lambda: QuantAwareStudent(DistillConfig(), bits=4),
    "lightgcn": lambda: build_lightgcn(),
    "two_tower": lambda: TwoTowerRecipeModule(dim=16),
    "ingredient_sage": lambda: build_ingredient_sage(),
}

FACTORIES = {
    "DeepLOBModule": MODELS["deeplob"],
    "TransLOBModule": MODELS["translob"],
    "MidPriceRegressor": MODELS["midprice_regressor"],
    "SignClassifier": MODELS["sign_classifier"],
    "KDLightning": MODELS["sign_kd"],
    "KDSweepModule": MODELS["sign_sweep"],
    "DistilledStudent": MODELS["sign_student"],
    "QuantAwareStudent": MODELS["sign_student_qat"],
    "LightGCNModule": MODELS["lightgcn"],
    "TwoTowerRecipeModule": MODELS["two_tower"],
    "IngredientSAGE": MODELS["ingredient_sage"],
    "LOBDataModule": lambda: LOBDataModule(compute_features(simulate_lob(200, 3, seed=1), 3), seq_len=16),
    "SignDataModule": lambda: SignDataModule(root=os.fspath(Path("data") / "gtsrb"), policy=AugPolicy.RANDAUG.value),
    "RecipeDataModule": lambda: RecipeDataModule(data_dir=Path("data") / "recipes", batch_size=128),
}

NOT_BUILT = {
    "LOBForecasterBase": "abstract: encode() and head come from DeepLOBModule / TransLOBModule, which are built",
}
