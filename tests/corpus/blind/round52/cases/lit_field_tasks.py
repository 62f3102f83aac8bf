"""Lightning side of the three field projects: SEM phase segmentation, meeting summarisation and
sticky-trap pest detection.  Modules are looked up in a registry and built from YAML configs by the
`build_*` functions that the train CLI calls."""
import dataclasses
import enum
import functools
from collections import Counter
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.cluster import KMeans
from sklearn.preprocessing import LabelEncoder


class Registry:
    def __init__(self, name="registry"):
        self.name = name
        self._items = {}

    def register(self, key=None):
        def deco(obj):
            self._items[key or obj.__name__] = obj
            return obj
        return deco

    def get(self, key):
        if key not in self._items:
            raise KeyError(f"{key!r} is not in the {self.name} registry: {sorted(self._items)}")
        return self._items[key]

    def build(self, key, **kwargs):
        return self.get(key)(**kwargs)


MODELS = Registry("models")
LOSSES = Registry("losses")
AUGMENTS = Registry("augments")

SEM_YAML = """
task: sem_seg
model:
  num_classes: 4
  base_channels: 8
  lr: 3.0e-4
  weight_decay: 1.0e-4
  pretrained: ~/weights/sem_unet_ssl_in718.pt
  intensity_window: [0.012, 0.97]
  pixel_size_nm: 4.88
loss:
  name: dice_ce
  dice_weight: 0.5
data:
  root: /data/sem/in718_batch07
  classes: [matrix, gamma_prime, carbide, pore]
  tile: 32
  batch_size: 4
"""

SUM_YAML = """
task: summarizer
decoding: beam
model:
  emb_dim: 32
  hidden: 48
  lr: 2.0e-3
  label_smoothing: 0.1
  max_src_len: 96
  max_tgt_len: 24
generation:
  max_new_tokens: 24
  num_beams: 4
  length_penalty: 0.6
data:
  min_freq: 1
  dir: /data/ami/transcripts
"""

TRAP_YAML = """
task: trap_det
model:
  head: anchor_head
  width: 16
  num_anchors: 3
optim:
  lr: 0.002
  momentum: 0.937
augment:
  name: hflip
  params: {p: 0.5}
eval:
  iou_thr: 0.5
  score_quantile: 0.05
data:
  root: /mnt/scouting/sticky_traps_2024
  image_size: 32
  val_fields: [F03, F11]
"""

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>", "<turn>")
TAGS = ("O", "B-ACTION", "I-ACTION", "B-DECISION", "I-DECISION")
PESTS = ("aphid", "thrips", "whitefly", "leafminer", "spider_mite")


def load_yaml(text):
    return OmegaConf.create(text)


# ------------------------------------------------------------------------- shared pieces

class Decoding(enum.Enum):
    GREEDY = "greedy"
    BEAM = "beam"


@dataclasses.dataclass
class GenerationConfig:
    max_new_tokens: int = 16
    num_beams: int = 1
    length_penalty: float = 1.0


class Vocab:
    def __init__(self, itos=SPECIALS):
        self.itos = list(itos)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def from_texts(cls, texts, min_freq=1):
        c = Counter(w for t in texts for w in t.lower().split())
        return cls(list(SPECIALS) + sorted(w for w, n in c.items() if n >= min_freq))

    def __len__(self):
        return len(self.itos)


def gnmt_length_penalty(alpha):
    def penalty(length):
        return ((5.0 + length) / 6.0) ** alpha
    return penalty


@AUGMENTS.register("hflip")
def hflip(img, boxes, p=0.5):
    if torch.rand(()) < p:
        img = img.flip(-1)
        boxes = boxes.clone()
        boxes[:, 0] = img.shape[-1] - boxes[:, 0]
    return img, boxes


def build_augment(spec):
    return functools.partial(AUGMENTS.get(spec.name), **spec.params)


@LOSSES.register("dice_ce")
class DiceCELoss(nn.Module):
    def __init__(self, num_classes=4, dice_weight=0.5, ignore_index=255):
        super().__init__()
        self.num_classes, self.dice_weight, self.ignore_index = num_classes, dice_weight, ignore_index

    def forward(self, logits, target):
        ce = F.cross_entropy(logits, target, ignore_index=self.ignore_index)
        probs = logits.softmax(1)
        onehot = F.one_hot(target.clamp(0, self.num_classes - 1), self.num_classes).permute(0, 3, 1, 2)
        inter = (probs * onehot).sum((0, 2, 3))
        dice = 1 - (2 * inter + 1) / (probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)
        return ce + self.dice_weight * dice.mean()


def conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


# ------------------------------------------------------------------------- SEM segmentation

@MODELS.register("sem_seg")
class SemSegModule(pl.LightningModule):
    def __init__(
        self,
        num_classes: int = 4,
        base_channels: int = 8,
        lr: float = 3e-4,
        weight_decay: float = 1e-4,
        loss: nn.Module = None,  # truth: hparam
        class_weights=None,  # truth: hparam
        intensity_window=(0.0, 1.0),  # truth: hparam
        pretrained: str = None,  # truth: hparam
        classes=("matrix", "gamma_prime", "carbide", "pore"),
        ignore_index: int = 255,
        pixel_size_nm: float = 5.0,
        tile: int = 32,
        compute_dtype=torch.float32,
    ):
        super().__init__()
        if class_weights is not None:
            class_weights = np.asarray(class_weights, dtype=np.float32)
        if pretrained:
            pretrained = Path(pretrained).expanduser()
        self.save_hyperparameters()
        self.net = nn.Sequential(conv_block(1, base_channels), conv_block(base_channels, base_channels),
                                 nn.Conv2d(base_channels, num_classes, 1))
        self.criterion = loss if loss is not None else nn.CrossEntropyLoss(ignore_index=ignore_index)

    def forward(self, x):
        lo, hi = self.hparams.intensity_window
        return self.net(((x - lo) / (hi - lo)).clamp(0, 1))

    def training_step(self, batch, _):
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


@MODELS.register("phase_fraction")
class PhaseFractionRegressor(pl.LightningModule):
    """Predicts area fractions of each phase for a whole frame (no masks needed)."""

    def __init__(
        self,
        backbone: nn.Module = None,
        num_phases: int = 3,
        lr: float = 1e-3,
        target_mean=None,
        target_std: float = 1.0,
        warmup_epochs: int = 2,
        freeze_backbone: bool = False,
        phase_names=("gamma_prime", "carbide", "pore"),
    ):
        super().__init__()
        if target_mean is not None:
            target_mean = torch.as_tensor(target_mean, dtype=torch.float32)
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone if backbone is not None else conv_block(1, 8)
        self.head = nn.Linear(8, num_phases)

    def forward(self, x):
        f = self.backbone(x).mean((2, 3))
        return self.head(f) * self.hparams.target_std + self.hparams.target_mean


def sem_class_weights(n_tiles=6, tile=32, k=4, seed=0):
    rng = np.random.default_rng(seed)
    masks = rng.choice(k, size=(n_tiles, tile, tile), p=[0.82, 0.12, 0.04, 0.02])
    freq = np.bincount(masks.ravel(), minlength=k) / masks.size
    w = 1.0 / np.log(1.02 + freq)
    return w / w.sum() * k


def build_sem_module(cfg):
    loss_kw = {k: v for k, v in cfg.loss.items() if k != "name"}
    loss = LOSSES.build(cfg.loss.name, num_classes=cfg.model.num_classes, **loss_kw)
    weights = sem_class_weights(k=cfg.model.num_classes)
    return MODELS.build(cfg.task, loss=loss, class_weights=weights.tolist(), classes=tuple(cfg.data.classes),
                        tile=cfg.data.tile, **cfg.model)


def build_phase_regressor():
    fractions = np.array([[0.12, 0.04, 0.02], [0.18, 0.03, 0.01], [0.09, 0.05, 0.03]], dtype=np.float32)
    return MODELS.build("phase_fraction", backbone=conv_block(1, 8), num_phases=fractions.shape[1],
                        target_mean=fractions.mean(0), target_std=float(fractions.std()),
                        phase_names=("gamma_prime", "carbide", "pore"))


class SemDataModule(pl.LightningDataModule):
    def __init__(self, root="/data/sem/in718_batch07", tile=32, batch_size=4, val_fraction=0.25, seed=0):
        super().__init__()
        self.save_hyperparameters()

# ------------------------------------------------------------------------- summarisation

@MODELS.register("summarizer")
class SummarizerModule(pl.LightningModule):
    def __init__(
        self,
        vocab,  # truth: hparam
        emb_dim: int = 32,
        hidden: int = 48,
        lr: float = 2e-3,
        label_smoothing: float = 0.1,
        decoding=Decoding.GREEDY,
        generation: GenerationConfig = None,  # truth: hparam
        length_penalty=None,  # truth: hparam
        max_src_len: int = 64,
        max_tgt_len: int = 16,
        warmup_steps: int = 100,
        pad_id: int = 0,
        specials=SPECIALS,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.vocab = vocab
        self.emb = nn.Embedding(len(vocab), emb_dim, padding_idx=pad_id)
        self.encoder = nn.GRU(emb_dim, hidden, batch_first=True)
        self.decoder = nn.GRU(emb_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, len(vocab))

    def forward(self, src, tgt_in):
        _, h = self.encoder(self.emb(src))
        dec, _ = self.decoder(self.emb(tgt_in), h)
        return self.out(dec)

    def rerank(self, beams):
        lp = self.hparams.length_penalty
        return max(beams, key=lambda b: b[1] / lp(len(b[0])))


class SummarizerFromConfig(pl.LightningModule):
    """Hydra-style entry point: the whole experiment config goes into the checkpoint."""

    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
        vocab=None,
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        vocab_size = len(vocab) if vocab is not None else 512
        self.emb = nn.Embedding(vocab_size, cfg.model.emb_dim)
        self.rnn = nn.GRU(cfg.model.emb_dim, cfg.model.hidden, batch_first=True)
        self.out = nn.Linear(cfg.model.hidden, vocab_size)


@MODELS.register("action_items")
class ActionItemTagger(pl.LightningModule):
    """Tags action items / decisions in transcript tokens (BIO)."""

    def __init__(
        self,
        encoder: nn.Module = None,
        vocab_size: int = 512,
        tag_names=TAGS,
        hidden: int = 48,
        dropout: float = 0.2,
        lr: float = 1e-3,
        class_weight=None,
        max_len: int = 256,
        use_speaker_emb: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.emb = nn.Embedding(vocab_size, hidden)
        self.encoder = encoder if encoder is not None else nn.GRU(hidden, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.cls = nn.Linear(hidden, len(tag_names))


MEETINGS = [
    "bob will fix the login bug before friday",
    "we decided to move the release to monday",
    "today we talk about cover crops and soil carbon with our guest",
]


def build_summarizer(cfg):
    vocab = Vocab.from_texts(MEETINGS, min_freq=cfg.data.min_freq)
    gen = GenerationConfig(**cfg.generation)
    return MODELS.build(cfg.task, vocab=vocab, generation=gen, decoding=cfg.decoding,
                        length_penalty=gnmt_length_penalty(cfg.generation.length_penalty), **cfg.model)


def build_tagger():
    vocab = Vocab.from_texts(MEETINGS)
    tag_counts = Counter({"O": 900, "B-ACTION": 30, "I-ACTION": 45, "B-DECISION": 12, "I-DECISION": 20})
    freq = np.array([tag_counts[t] for t in TAGS], dtype=np.float64)
    return MODELS.build("action_items", encoder=nn.GRU(48, 48, batch_first=True), vocab_size=len(vocab),
                        tag_names=list(TAGS), class_weight=torch.tensor(freq.sum() / freq, dtype=torch.float32),
                        dropout=float(np.float32(0.25)))


class TranscriptDataModule(pl.LightningDataModule):
    def __init__(self, data_dir="/data/ami/transcripts", max_src_len=96, batch_size=8, lowercase=True):
        super().__init__()
        self.save_hyperparameters()
        self.texts = list(MEETINGS)

# ------------------------------------------------------------------------- trap pest detection

@MODELS.register("trap_det")
class TrapDetModule(pl.LightningModule):
    def __init__(
        self,
        backbone: nn.Module = None,
        num_classes=5,  # truth: hparam
        anchors=None,  # truth: hparam
        label_encoder=None,  # truth: hparam
        augment=None,  # truth: hparam
        score_thr=0.05,  # truth: hparam
        image_size: int = 32,
        width: int = 16,
        lr: float = 2e-3,
        momentum: float = 0.937,
        iou_thr: float = 0.5,
        class_names=(),
        head: str = "anchor_head",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone if backbone is not None else conv_block(3, width)
        na = len(anchors) if anchors is not None else 3
        self.pred = nn.Conv2d(width, na * (5 + int(num_classes)), 1)

    def forward(self, x):
        return self.pred(self.backbone(x))

    def training_step(self, batch, _):
        img, boxes = batch
        if self.hparams.augment is not None:
            img, boxes = self.hparams.augment(img, boxes)
        return self(img).pow(2).mean()


@MODELS.register("insect_counter")
class InsectCounter(pl.LightningModule):
    """Density-map counting for traps too crowded to box every insect."""

    def __init__(self, backbone: nn.Module = None, num_classes: int = 5, class_prior=None,
                 lr: float = 1e-3, sigma: float = 1.5, count_scale: float = 1.0):
        super().__init__()
        self.save_hyperparameters("lr", "sigma", "num_classes", "count_scale")
        self.backbone = backbone if backbone is not None else conv_block(3, 16)
        self.density = nn.Conv2d(16, num_classes, 1)
        prior = torch.as_tensor(class_prior if class_prior is not None else np.full(num_classes, 1 / num_classes))
        self.register_buffer("prior", prior.float())


def trap_boxes(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "image_id": [f"trap_{i % 12:04d}" for i in range(n)],
        "label": rng.choice(PESTS, n),
        "w": rng.normal(2.5, 0.6, n).clip(0.8),
        "h": rng.normal(2.2, 0.5, n).clip(0.8),
    })


def build_trap_module(cfg):
    df = trap_boxes()
    enc = LabelEncoder().fit(df["label"])
    df["label_id"] = enc.transform(df["label"])
    km = KMeans(n_clusters=cfg.model.num_anchors, n_init=4, random_state=0).fit(df[["w", "h"]].to_numpy())
    val_scores = np.random.default_rng(1).random(256, dtype=np.float32)
    return MODELS.build(
        cfg.task,
        backbone=conv_block(3, cfg.model.width),
        num_classes=df["label_id"].max() + 1,
        anchors=km.cluster_centers_,
        label_encoder=enc,
        augment=build_augment(cfg.augment),
        score_thr=np.quantile(val_scores, cfg.eval.score_quantile),
        image_size=cfg.data.image_size,
        width=cfg.model.width,
        lr=cfg.optim.lr,
        momentum=cfg.optim.momentum,
        iou_thr=cfg.eval.iou_thr,
        class_names=enc.classes_.tolist(),
        head=cfg.model.head,
    )


def build_counter():
    df = trap_boxes(seed=2)
    prior = df["label"].value_counts(normalize=True).reindex(PESTS, fill_value=0.0).to_numpy()
    return MODELS.build("insect_counter", backbone=conv_block(3, 16), num_classes=len(PESTS), class_prior=prior,
                        count_scale=float(df.groupby("image_id").size().mean()))


class TrapDataModule(pl.LightningDataModule):
    def __init__(self, root="/mnt/scouting/sticky_traps_2024", image_size=32, batch_size=4,
                 val_fields=("F03", "F11"), num_workers=0):
        super().__init__()
        self.save_hyperparameters()
        self.boxes = trap_boxes()

FACTORIES = {
    "Decoding": lambda: Decoding.BEAM,
    "SemSegModule": lambda: build_sem_module(load_yaml(SEM_YAML)),
    "PhaseFractionRegressor": build_phase_regressor,
    "SummarizerModule": lambda: build_summarizer(load_yaml(SUM_YAML)),
    "SummarizerFromConfig": lambda: SummarizerFromConfig(load_yaml(SUM_YAML), vocab=Vocab.from_texts(MEETINGS)),
    "ActionItemTagger": build_tagger,
    "TrapDetModule": lambda: build_trap_module(load_yaml(TRAP_YAML)),
    "InsectCounter": build_counter,
}
