"""LightningModules for OCR, document layout, protein LMs and image-to-image translation.

The training scripts build them from a config (see FACTORIES) and rely on
`load_from_checkpoint(path)` getting back what `save_hyperparameters` stored.
"""
import dataclasses
import enum
import functools
import string
from collections import deque
from pathlib import Path
from typing import Optional

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from sklearn.preprocessing import LabelEncoder
from torch import nn

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


class Region(enum.Enum):
    TEXT = "text"
    TABLE = "table"
    FIGURE = "figure"


@dataclasses.dataclass
class OCRConfig:
    height: int = 16
    hidden: int = 8
    charset: str = string.digits + string.ascii_lowercase


class LitCRNN(L.LightningModule):
    def __init__(
        self,
        charset: str = OCRConfig.charset,
        height: int = 16,
        hidden: int = 8,
        blank_idx: int = 0,
        lr: float = 1e-3,
        decoder: str = "greedy",
        ocr_cfg: Optional[OCRConfig] = None,  # truth: hparam
        ctc_loss: nn.Module = nn.CTCLoss(zero_infinity=True),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.rnn = nn.GRU(height, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, len(charset) + 1)

    def forward(self, x):
        return self.fc(self.rnn(x)[0])


class LitCRNNClean(L.LightningModule):
    def __init__(
        self,
        charset: str,
        height: int = 16,
        hidden: int = 8,
        mean_width: float = 0.0,
        width_buckets: tuple = (32, 64, 128),
        ocr_cfg: Optional[dict] = None,
        dtype: torch.dtype = torch.float32,
        backbone: Optional[nn.Module] = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone or nn.Identity()
        self.fc = nn.Linear(hidden, len(charset) + 1)


class LitLayoutDetector(L.LightningModule):
    def __init__(
        self,
        num_classes: int = 3,
        score_thresh: float = 0.5,
        anchor_sizes: tuple = (8, 16, 32),
        region_encoder: Optional[LabelEncoder] = None,  # truth: hparam
        ignore_region: Region = Region.FIGURE,  # truth: hparam
        data_dir: Path = Path("data/publaynet"),  # truth: hparam
        class_weights: Optional[torch.Tensor] = None,
        iou_thresh=np.float32(0.5),  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters()
        self.head = nn.Conv2d(4, num_classes + 4, 1)


class LitLayoutClean(L.LightningModule):
    def __init__(
        self,
        classes: list,
        data_dir: str = "data/publaynet",
        score_thresh: float = 0.5,
        class_weights: Optional[torch.Tensor] = None,
        ignore_region: str = Region.FIGURE.value,
        region_encoder: Optional[LabelEncoder] = None,
    ):
        super().__init__()
        self.save_hyperparameters("classes", "data_dir", "score_thresh", "class_weights", "ignore_region")
        self.encoder = region_encoder
        self.head = nn.Conv2d(4, len(classes) + 4, 1)


class LitProteinMLM(L.LightningModule):
    def __init__(
        self,
        vocab: list = list(AMINO_ACIDS),
        d_model: int = 8,
        n_layers: int = 1,
        mask_prob: float = 0.15,  # truth: hparam
        aa_freqs: Optional[dict] = None,  # truth: hparam
        recent_losses: deque = deque(maxlen=50),  # truth: hparam
        lr: float = 3e-4,
        warmup_steps: int = 100,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(len(vocab) + 4, d_model)
        self.head = nn.Linear(d_model, len(vocab) + 4)


class LitProteinFromConfig(L.LightningModule):
    def __init__(
        self,
        cfg: DictConfig,  # truth: hparam
    ):
        super().__init__()
        self.save_hyperparameters(cfg)
        self.embed = nn.Embedding(len(AMINO_ACIDS) + 4, cfg.model.d_model)


class LitProteinClean(L.LightningModule):
    def __init__(
        self,
        cfg: dict,
        aa_freqs: Optional[dict] = None,
        max_len: int = 1024,
        lr: float = 3e-4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(len(AMINO_ACIDS) + 4, cfg["model"]["d_model"])


class LitPix2Pix(L.LightningModule):
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,  # truth: hparam
        lambda_l1: float = 100.0,
        betas: tuple = (0.5, 0.999),
        norm_layer=functools.partial(nn.InstanceNorm2d, affine=False),  # truth: hparam
        gan_mode: str = "lsgan",
        pool_size: int = 50,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["generator"])
        self.generator = generator
        self.discriminator = discriminator
        self.automatic_optimization = False


class LitStyleTransfer(L.LightningModule):
    def __init__(
        self,
        style_weights: dict,
        content_weight: float = 1.0,
        tv_weight: float = 1e-6,
        style_image: str = "starry_night.jpg",
        image_size: int = 256,
        mean: Optional[torch.Tensor] = None,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Conv2d(3, 3, 3, padding=1)


def _char_widths():
    rng = np.random.default_rng(0)
    return rng.integers(4, 12, size=20)


def _aa_frequencies(seqs):
    counts = np.array([[s.count(a) for a in AMINO_ACIDS] for s in seqs]).sum(0)
    return dict(zip(AMINO_ACIDS, counts / counts.sum()))


SEQS = ["MKTAYIAK", "MKVLAAGI", "GSHMLEDP"]
PLM_YAML = """
model: {d_model: 8, n_layers: 1}
optim: {lr: 3.0e-4, warmup_steps: 100}
data: {max_len: 1024, mask_prob: 0.15}
"""


def _build_layout():
    regions = ["text", "table", "figure"]
    enc = LabelEncoder().fit(regions)
    return LitLayoutDetector(num_classes=len(regions), region_encoder=enc,
                             class_weights=torch.tensor([1.0, 2.0, 2.0]))


def _build_layout_clean():
    regions = ["text", "table", "figure"]
    enc = LabelEncoder().fit(regions)
    return LitLayoutClean(classes=[str(c) for c in enc.classes_], region_encoder=enc,
                          class_weights=torch.ones(len(regions)))


def _build_protein():
    probs = np.array([0.1, 0.15, 0.2])
    return LitProteinMLM(mask_prob=probs[1], aa_freqs=_aa_frequencies(SEQS))


def _build_protein_clean():
    cfg = OmegaConf.create(PLM_YAML)
    freqs = {k: float(v) for k, v in _aa_frequencies(SEQS).items()}
    return LitProteinClean(cfg=OmegaConf.to_container(cfg, resolve=True), aa_freqs=freqs,
                           max_len=int(cfg.data.max_len), lr=cfg.optim.lr)


def _build_pix2pix():
    gen = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 3, 3, padding=1))
    disc = nn.Sequential(nn.Conv2d(6, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3))
    return LitPix2Pix(gen, disc)


def _build_style():
    weights = {"relu1_2": 1e5, "relu2_2": 1e5, "relu3_3": 1e5}
    mean = torch.tensor(np.array([0.485, 0.456, 0.406], dtype=np.float32))
    return LitStyleTransfer(style_weights=weights, mean=mean, image_size=int(np.int64(8)))


FACTORIES = {
    "LitCRNN": lambda: LitCRNN(ocr_cfg=OCRConfig()),
    "LitCRNNClean": lambda: LitCRNNClean(
        charset=OCRConfig.charset,
        mean_width=_char_widths().mean().item(),
        ocr_cfg=dataclasses.asdict(OCRConfig()),
        backbone=nn.Conv2d(1, 1, 3),
    ),
    "LitLayoutDetector": _build_layout,
    "LitLayoutClean": _build_layout_clean,
    "LitProteinMLM": _build_protein,
    "LitProteinFromConfig": lambda: LitProteinFromConfig(OmegaConf.create(PLM_YAML)),
    "LitProteinClean": _build_protein_clean,
    "LitPix2Pix": _build_pix2pix,
    "LitStyleTransfer": _build_style,
}
NOT_BUILT = {
    "Region": "an Enum; its members are its instances",
}
