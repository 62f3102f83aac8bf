"""Keyword spotting for Cortex-M class devices: MFCC front end + DS-CNN, quantization-aware training.

The float model trains for a few epochs, then conv/bn/relu are fused and fake-quant observers are
inserted (eager-mode QAT); the int8 model is exported for the MCU runtime together with the front
end tables (mel filterbank, DCT) the firmware needs.
"""
import dataclasses
import math
import os
import statistics
import time
from collections import Counter, deque, namedtuple
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
import torch
import torch.ao.quantization as tq
import torch.nn as nn
from sklearn.metrics import accuracy_score, confusion_matrix, roc_auc_score, roc_curve
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight

KEYWORDS = ("yes", "no", "up", "down", "_silence_", "_unknown_")


@dataclass
class FrontendConfig:
    sample_rate: int = 16000
    n_fft: int = 480          # 30 ms
    hop: int = 320            # 20 ms
    n_mels: int = 40
    n_mfcc: int = 10
    fmin: float = 20.0
    fmax: float = 4000.0


@dataclass
class TrainConfig:
    labels: tuple = KEYWORDS
    clips_per_label: int = 12
    width: int = 24
    epochs: int = 3
    qat_start_epoch: int = 1
    freeze_bn_epoch: int = 2
    lr: float = 2e-3
    backend: str = "qnnpack"
    seed: int = 0


@dataclass
class KWSConfig:
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def mel_filterbank(sr, n_fft, n_mels, fmin, fmax):
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    mel_to_hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)
    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    bins = np.floor((n_fft + 1) * mel_to_hz(mels) / sr).astype(int)
    fb = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for m in range(1, n_mels + 1):
        lo, mid, hi = bins[m - 1], bins[m], bins[m + 1]
        fb[m - 1, lo:mid] = (np.arange(lo, mid) - lo) / max(mid - lo, 1)
        fb[m - 1, mid:hi] = (hi - np.arange(mid, hi)) / max(hi - mid, 1)
    return fb


class MFCCFrontend:
    def __init__(self, cfg=None):
        self.cfg = cfg or FrontendConfig()
        c = self.cfg
        self.window = np.hanning(c.n_fft).astype(np.float32)
        self.mel_fb = mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax)
        self.dct = scipy.fft.dct(np.eye(c.n_mels), type=2, norm="ortho", axis=0)[: c.n_mfcc].astype(np.float32)

    def __call__(self, wav):
        frames = np.lib.stride_tricks.sliding_window_view(wav, self.cfg.n_fft)[:: self.cfg.hop]
        power = np.abs(np.fft.rfft(frames * self.window, axis=-1)) ** 2
        return np.log(power @ self.mel_fb.T + 1e-6) @ self.dct.T


def synth_clips(labels, per_label, sr, seed):
    """Chirps whose base pitch depends on the keyword, plus noise (stands in for Speech Commands)."""
    rng = np.random.default_rng(seed)
    t = np.arange(sr) / sr
    wavs, names = [], []
    for k, name in enumerate(labels):
        for _ in range(per_label):
            f0 = 200.0 + 150.0 * k + rng.normal(0, 10)
            amp = 0.0 if name == "_silence_" else 0.5
            wavs.append(amp * np.sin(2 * np.pi * (f0 + 200 * t) * t) + rng.normal(0, 0.05, sr))
            names.append(name)
    return np.stack(wavs).astype(np.float32), names


class DSBlock(nn.Module):
    def __init__(self, width=24):
        super().__init__()
        self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU()
        self.pw = nn.Conv2d(width, width, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU()

    def forward(self, x):
        return self.relu2(self.bn2(self.pw(self.relu1(self.bn1(self.dw(x))))))


class DSCNN(nn.Module):
    def __init__(self, n_classes=len(KEYWORDS), width=24, n_blocks=2):
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(1, width, (10, 4), stride=(2, 2), padding=(5, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU()
        self.blocks = nn.Sequential(*[DSBlock(width) for _ in range(n_blocks)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, n_classes)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(self.quant(x))))
        x = self.pool(self.blocks(x)).flatten(1)
        return self.dequant(self.fc(x))

    def fuse(self):
        tq.fuse_modules_qat(self, [["conv1", "bn1", "relu1"]], inplace=True)
        for block in self.blocks:
            tq.fuse_modules_qat(block, [["dw", "bn1", "relu1"], ["pw", "bn2", "relu2"]], inplace=True)
        return self


class KWSTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or KWSConfig()
        tc = self.cfg.train
        torch.manual_seed(tc.seed)
        torch.backends.quantized.engine = tc.backend
        self.frontend = MFCCFrontend(self.cfg.frontend)
        self.label_encoder = LabelEncoder().fit(list(tc.labels))
        self.model = DSCNN(len(tc.labels), tc.width)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=tc.lr)
        self.epoch = 0
        self.qat = False
        self.qconfig = None
        self.history = {"loss": [], "acc": []}
        self.recent_losses = deque(maxlen=5)

    def build_features(self):
        tc = self.cfg.train
        wavs, names = synth_clips(tc.labels, tc.clips_per_label, self.cfg.frontend.sample_rate, tc.seed)
        feats = np.stack([self.frontend(w) for w in wavs])
        mu, sd = feats.mean(), feats.std()
        x = torch.from_numpy((feats - mu) / sd).float().unsqueeze(1)
        y = torch.from_numpy(self.label_encoder.transform(names))
        return x, y, {"mean": float(mu), "std": float(sd), "frames": feats.shape[1]}

    def start_qat(self):
        self.model.train()
        self.model.fuse()
        self.qconfig = tq.get_default_qat_qconfig(self.cfg.train.backend)
        self.model.qconfig = self.qconfig
        tq.prepare_qat(self.model, inplace=True)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.train.lr / 4)
        self.qat = True

    def train_epoch(self, x, y):
        self.model.train()
        logits = self.model(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        acc = (logits.argmax(1) == y).float().mean().item()
        return {"loss": loss.item(), "acc": acc}

    def fit(self, x, y):
        tc = self.cfg.train
        for self.epoch in range(tc.epochs):
            if self.epoch == tc.qat_start_epoch:
                self.start_qat()
            if self.qat and self.epoch >= tc.freeze_bn_epoch:
                self.model.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)
            stats = self.train_epoch(x, y)
            for k, v in stats.items():
                self.history[k].append(v)
            self.recent_losses.append(stats["loss"])
        return self

    def export_int8(self):
        self.model.eval()
        self.model.apply(tq.disable_observer)
        return tq.convert(self.model, inplace=False)

    @torch.no_grad()
    def evaluate(self, model, x, y):
        probs = torch.softmax(model(x), dim=1)
        pred = probs.argmax(1).numpy()
        yes = int(self.label_encoder.transform(["yes"])[0])
        scores, is_yes = probs[:, yes].numpy(), (y.numpy() == yes)
        fpr, tpr, thr = roc_curve(is_yes, scores)
        best = np.argmax(tpr - fpr)
        return pred, probs, (fpr, tpr, thr, best)


def model_footprint(model, sample):
    """Flash (weights) and the largest activation seen, for the tflite-micro style arena estimate."""
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
             for m in model.modules() if len(list(m.children())) == 0]
    with torch.no_grad():
        model(sample)
    for h in hooks:
        h.remove()
    weight_bytes = 0
    for v in model.state_dict().values():
        if isinstance(v, torch.Tensor):
            weight_bytes += v.numel() * v.element_size()
    return weight_bytes, max(np.prod(s) for s in shapes)


def trained(cfg=None):
    trainer = KWSTrainer(cfg)
    x, y, stats = trainer.build_features()
    trainer.fit(x, y)
    return trainer, x, y, stats


def save_qat_checkpoint(tmpdir):
    trainer, x, y, stats = trained()
    cfg = trainer.cfg
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "epoch": trainer.epoch,
        "qat": trainer.qat,
        "config": dataclasses.asdict(cfg),
        "train_config": cfg.train,  # truth: weights_only
        "qconfig": trainer.qconfig,  # truth: weights_only
        "backend": torch.backends.quantized.engine,
        "labels": trainer.label_encoder.classes_,  # truth: weights_only
        "label_list": list(cfg.train.labels),
        "feature_stats": stats,
        "history": trainer.history,
        "recent_losses": trainer.recent_losses,  # truth: weights_only
        "input_shape": tuple(x.shape[1:]),
    }
    path = os.path.join(tmpdir, "kws_qat.pt")
    torch.save(ckpt, path)
    return path


def save_int8_export(tmpdir):
    trainer, x, y, stats = trained()
    qmodel = trainer.export_int8()
    flash, peak = model_footprint(qmodel, x[:1])
    weight_scales = {}
    for name, mod in qmodel.named_modules():
        if hasattr(mod, "weight") and callable(mod.weight):
            weight_scales[name] = mod.weight().q_scale()
    fe = trainer.frontend
    export = {
        "int8_state": qmodel.state_dict(),
        "int8_model": qmodel,  # truth: weights_only
        "input_qparams": (float(qmodel.quant.scale), int(qmodel.quant.zero_point)),
        "weight_scales": weight_scales,
        "mel_filterbank": fe.mel_fb,  # truth: weights_only
        "dct_matrix": torch.from_numpy(fe.dct),
        "window": torch.from_numpy(fe.window),
        "frontend": dataclasses.asdict(fe.cfg),
        "feature_stats": stats,
    }
    export["mcu"] = {
        "flash_kb": round(flash / 1024, 2),
        "peak_activation_elems": peak,  # truth: weights_only
        "fits_256k": flash / 1024 < 256,
        "engine": torch.backends.quantized.engine,
    }
    path = os.path.join(tmpdir, "kws_int8.pt")
    torch.save(export, path)
    return path


def save_eval_report(tmpdir):
    trainer, x, y, _ = trained()
    qmodel = trainer.export_int8()
    pred, probs, (fpr, tpr, thr, best) = trainer.evaluate(qmodel, x, y)
    y_np = y.numpy()
    cm = confusion_matrix(y_np, pred, labels=range(len(trainer.cfg.train.labels)))
    yes = int(trainer.label_encoder.transform(["yes"])[0])
    false_accepts = np.sum((pred == yes) & (y_np != yes))
    latencies = []
    for i in range(5):
        t0 = time.perf_counter()
        with torch.no_grad():
            qmodel(x[i:i + 1])
        latencies.append((time.perf_counter() - t0) * 1e3)
    report = {
        "accuracy": accuracy_score(y_np, pred),
        "confusion": cm,  # truth: weights_only
        "per_class_recall": (cm.diagonal() / np.maximum(cm.sum(axis=1), 1)).tolist(),
        "yes_auc": roc_auc_score(y_np == yes, probs[:, yes].numpy()),
        "threshold": thr[best],  # truth: weights_only
        "far": false_accepts / max(int(np.sum(y_np != yes)), 1),  # truth: weights_only
        "frr": float(1.0 - tpr[best]),
        "latency_ms_p50": statistics.median(latencies),
        "top2": torch.topk(probs.mean(0), 2),  # truth: weights_only
        "class_counts": Counter(y_np.tolist()),
        "class_weights": compute_class_weight("balanced", classes=np.unique(y_np), y=y_np),  # truth: weights_only
        "class_weights_t": torch.tensor(compute_class_weight("balanced", classes=np.unique(y_np), y=y_np)),
    }
    path = os.path.join(tmpdir, "kws_eval.pt")
    torch.save({"report": report, "labels": trainer.label_encoder.classes_.tolist()}, path)
    return path


def save_observer_stats(tmpdir):
    """Per-layer activation ranges for the firmware team; every value is a plain number or a tensor."""
    trainer, x, y, _ = trained()
    observers, fake_quant = {}, {}
    for name, mod in trainer.model.named_modules():
        if isinstance(mod, tq.FakeQuantizeBase):
            obs = mod.activation_post_process
            observers[name] = {"min": obs.min_val.item(), "max": obs.max_val.item()}
            fake_quant[name] = mod.calculate_qparams()
    scale, zp = trainer.model.quant.activation_post_process.calculate_qparams()
    stats = dict(
        observers=observers,
        fake_quant=fake_quant,
        input_scale=scale.item(),
        input_zero_point=int(zp.item()),
        dtype=torch.quint8,
        qscheme=torch.per_tensor_affine,
        engines=torch.backends.quantized.supported_engines,
        bn_frozen_at=trainer.cfg.train.freeze_bn_epoch,
        qat_epochs=list(range(trainer.cfg.train.qat_start_epoch, trainer.cfg.train.epochs)),
        dynamic_range_db=20 * math.log10(max(v["max"] - v["min"] for v in observers.values()) / scale.item()),
        rng=torch.get_rng_state(),
        noise_rng=np.random.default_rng(trainer.cfg.train.seed).bit_generator.state,
    )
    path = os.path.join(tmpdir, "observers.pt")
    torch.save(stats, path)
    return path


StreamState = namedtuple("StreamState", ["ring", "posteriors", "last_trigger_ms", "frame_idx"])


class StreamingDetector:
    """On-device loop: 1 s ring buffer of MFCC frames, posterior smoothing over the last k frames."""

    def __init__(self, frames=49, n_mfcc=10, n_classes=len(KEYWORDS), smooth=3):
        self.ring = torch.zeros(frames, n_mfcc)
        self.posteriors = deque(maxlen=smooth)
        self.n_classes = n_classes
        self.last_trigger_ms = -1
        self.frame_idx = 0

    def push(self, frame, probs):
        self.ring = torch.roll(self.ring, -1, dims=0)
        self.ring[-1] = frame
        self.posteriors.append(probs)
        self.frame_idx += 1
        return torch.stack(list(self.posteriors)).mean(0)

    def state(self):
        return StreamState(self.ring.clone(), torch.stack(list(self.posteriors)), self.last_trigger_ms,
                           self.frame_idx)


def save_stream_state(tmpdir):
    det = StreamingDetector()
    for i in range(4):
        det.push(torch.randn(10), torch.softmax(torch.randn(det.n_classes), 0))
    path = os.path.join(tmpdir, "stream.pt")
    torch.save(det.state(), path)  # truth: weights_only
    return path


FACTORIES = {}
