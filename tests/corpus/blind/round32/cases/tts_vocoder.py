"""Multi-speaker TTS acoustic model + HiFi-GAN style vocoder: training and checkpointing.

Toy sizes so that it runs on a CPU in a second; the layout follows the usual
train.py of a vocoder repo (trainer object, EMA generator, resume checkpoints).
"""
import argparse
import collections
import copy
import dataclasses
import datetime
import enum
import os
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler

SYMBOLS = ["_", "~", " "] + list("abcdefghijklmnopqrstuvwxyz") + list("!',-.?")


@dataclasses.dataclass
class AudioConfig:
    sample_rate: int = 22050
    n_fft: int = 256
    hop_length: int = 64
    win_length: int = 256
    n_mels: int = 40
    fmin: float = 0.0
    fmax: float = 8000.0


class SpeakerEncoding(enum.Enum):
    LOOKUP = "lookup"
    D_VECTOR = "d_vector"


def parse_args(argv=None):
    p = argparse.ArgumentParser("train_vocoder")
    p.add_argument("--data-root", type=Path, default=Path("data/LibriTTS/train-clean-100"))
    p.add_argument("--out-dir", default="runs/hifigan")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--betas", type=float, nargs=2, default=[0.8, 0.99])
    p.add_argument("--lr-decay", type=float, default=0.999)
    p.add_argument("--segment-frames", type=int, default=8)
    p.add_argument("--speaker-dim", type=int, default=32)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=1234)
    return p.parse_args(argv)


def synthetic_corpus(n_utts=16, seed=0, cfg=None):
    """metadata.csv-like table plus waveforms and frame-level f0 (nan = unvoiced)."""
    cfg = cfg or AudioConfig()
    rng = np.random.default_rng(seed)
    speakers = rng.choice(["p225", "p226", "p231", "p240"], size=n_utts)
    n_frames = rng.integers(12, 24, size=n_utts)
    meta = pd.DataFrame({
        "utt_id": [f"{s}_{i:03d}" for i, s in enumerate(speakers)],
        "speaker": speakers,
        "n_frames": n_frames,
        "duration": n_frames * cfg.hop_length / cfg.sample_rate,
        "text": ["hello world"] * n_utts,
    })
    wavs = [rng.normal(0.0, 0.1, size=int(t) * cfg.hop_length).astype(np.float32) for t in n_frames]
    f0 = [np.where(rng.random(int(t)) > 0.3, rng.normal(180.0, 30.0, size=int(t)), np.nan) for t in n_frames]
    return meta, wavs, f0


class MelSpectrogram(nn.Module):
    def __init__(self, cfg=None):
        super().__init__()
        cfg = cfg or AudioConfig()
        self.cfg = dataclasses.asdict(cfg)
        n_freq = cfg.n_fft // 2 + 1
        fb = torch.rand(cfg.n_mels, n_freq).softmax(-1)  # stands in for librosa.filters.mel
        self.register_buffer("mel_basis", fb)
        self.register_buffer("window", torch.hann_window(cfg.win_length))

    def forward(self, wav):
        spec = torch.stft(wav, self.cfg["n_fft"], self.cfg["hop_length"], self.cfg["win_length"],
                          self.window, center=False, return_complex=True).abs()
        return torch.log(torch.clamp(self.mel_basis @ spec, min=1e-5))


def mels_for(wavs, cfg=None):
    mel_fn = MelSpectrogram(cfg)
    with torch.no_grad():
        return [mel_fn(F.pad(torch.from_numpy(w), (96, 96), mode="constant")).numpy() for w in wavs]


def compute_mel_stats(mels):
    cat = np.concatenate(mels, axis=1)
    return {"mean": cat.mean(axis=1), "std": cat.std(axis=1) + 1e-5, "n_frames": cat.shape[1]}


def compute_pitch_stats(f0s):
    voiced = np.concatenate([f[~np.isnan(f)] for f in f0s])
    return {
        "f0_mean": np.nanmean(voiced),
        "f0_std": float(np.std(voiced)),
        "f0_min": voiced.min().item(),
        "f0_max": voiced.max().item(),
        "voiced_ratio": len(voiced) / sum(len(f) for f in f0s),
    }


def mel_cepstral_distortion(mel_a, mel_b):
    """Crude MCD on log-mels (dB scale), frame-averaged."""
    diff = (mel_a - mel_b) * (10.0 / np.log(10.0))
    return np.mean(np.sqrt(2.0 * np.sum(diff ** 2, axis=0)))


class SpeakerTable:
    def __init__(self, meta):
        names = sorted(meta["speaker"].unique().tolist())
        self.name_to_id = {n: i for i, n in enumerate(names)}
        self.utt_counts = collections.Counter(meta["speaker"].tolist())
        self.ids = np.unique(meta["speaker"].map(self.name_to_id).to_numpy())
        self.minutes = meta.groupby("speaker")["duration"].sum() / 60.0

    def __len__(self):
        return len(self.name_to_id)


class AcousticModel(nn.Module):
    """FastSpeech-flavoured toy: symbols + speaker embedding -> mel frames."""

    def __init__(self, n_symbols=len(SYMBOLS), n_speakers=4, spk_dim=32, d_model=64, n_mels=40):
        super().__init__()
        self.embed = nn.Embedding(n_symbols, d_model)
        self.speaker_embedding = nn.Embedding(n_speakers, spk_dim)
        self.encoder = nn.GRU(d_model + spk_dim, d_model, batch_first=True)
        self.mel_out = nn.Linear(d_model, n_mels)

    def forward(self, tokens, speaker):
        x = self.embed(tokens)
        s = self.speaker_embedding(speaker)[:, None].expand(-1, x.size(1), -1)
        h, _ = self.encoder(torch.cat([x, s], -1))
        return self.mel_out(h).transpose(1, 2)


class Generator(nn.Module):
    def __init__(self, n_mels=40, channels=32, upsample=(8, 8)):
        super().__init__()
        self.pre = nn.Conv1d(n_mels, channels, 7, padding=3)
        ups, ch = [], channels
        for r in upsample:
            ups.append(nn.ConvTranspose1d(ch, ch // 2, 2 * r, r, padding=r // 2))
            ch //= 2
        self.ups = nn.ModuleList(ups)
        self.post = nn.Conv1d(ch, 1, 7, padding=3)

    def forward(self, mel):
        x = self.pre(mel)
        for up in self.ups:
            x = up(F.leaky_relu(x, 0.1))
        return torch.tanh(self.post(F.leaky_relu(x, 0.1))).squeeze(1)


class PeriodDiscriminator(nn.Module):
    def __init__(self, period=3):
        super().__init__()
        self.period = period
        self.convs = nn.ModuleList([nn.Conv2d(1, 8, (5, 1), (3, 1), padding=(2, 0)),
                                    nn.Conv2d(8, 16, (5, 1), (3, 1), padding=(2, 0))])
        self.out = nn.Conv2d(16, 1, (3, 1), padding=(1, 0))

    def forward(self, wav):
        b, t = wav.shape
        if t % self.period:
            wav = F.pad(wav, (0, self.period - t % self.period), mode="reflect")
        x = wav.view(b, 1, -1, self.period)
        for c in self.convs:
            x = F.leaky_relu(c(x), 0.1)
        return self.out(x).flatten(1)


class EMA:
    def __init__(self, model, decay=0.999):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.num_updates = 0

    @torch.no_grad()
    def update(self, model):
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)

    def state_dict(self):
        return {"decay": self.decay, "shadow": self.shadow, "num_updates": self.num_updates}


class EarlyStopping:
    def __init__(self, patience=5, min_delta=1e-3):
        self.patience = patience
        self.min_delta = min_delta
        self.best = float("inf")
        self.bad_epochs = 0
        self.recent = collections.deque(maxlen=patience)

    def step(self, value):
        self.recent.append(value)
        if value < self.best - self.min_delta:
            self.best = value
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs > self.patience


class VocoderTrainer:
    def __init__(self, args, audio_cfg=None):
        self.args = args
        self.audio = audio_cfg or AudioConfig()
        self.mel_fn = MelSpectrogram(self.audio)
        self.generator = Generator(self.audio.n_mels)
        self.discriminator = PeriodDiscriminator()
        self.opt_g = torch.optim.AdamW(self.generator.parameters(), args.lr, betas=tuple(args.betas))
        self.opt_d = torch.optim.AdamW(self.discriminator.parameters(), args.lr, betas=tuple(args.betas))
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.opt_g, gamma=args.lr_decay)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.opt_d, gamma=args.lr_decay)
        self.ema = EMA(self.generator, args.ema_decay)
        self.stopper = EarlyStopping()
        self.global_step = 0
        self.epoch = 0
        self.best_mel_l1 = float("inf")
        self.best_mcd = np.inf
        self.history = collections.defaultdict(list)
        self.started = datetime.datetime.now()

    def _segments(self, wavs):
        seg = self.args.segment_frames * self.audio.hop_length
        out = []
        for w in wavs:
            start = random.randint(0, max(0, len(w) - seg))
            out.append(torch.from_numpy(w[start:start + seg]))
        return torch.stack(out)

    def train_epoch(self, wavs):
        self.generator.train()
        wav = self._segments(wavs[: self.args.batch_size])
        mel = self.mel_fn(F.pad(wav, (96, 96)))
        fake = self.generator(mel)[:, : wav.size(1)]
        d_real, d_fake = self.discriminator(wav), self.discriminator(fake.detach())
        loss_d = ((d_real - 1) ** 2).mean() + (d_fake ** 2).mean()
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        mel_fake = self.mel_fn(F.pad(fake, (96, 96)))
        loss_mel = F.l1_loss(mel_fake, mel)
        loss_adv = ((self.discriminator(fake) - 1) ** 2).mean()
        loss_g = loss_adv + 45.0 * loss_mel
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        self.sched_g.step()
        self.sched_d.step()
        self.ema.update(self.generator)
        self.global_step += 1
        self.epoch += 1
        logs = {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "loss_mel": loss_mel.item()}
        for k, v in logs.items():
            self.history[k].append(v)
        return logs

    @torch.no_grad()
    def validate(self, wavs):
        self.generator.eval()
        l1s, mcds = [], []
        for w in wavs[:4]:
            wav = torch.from_numpy(w)[None]
            mel = self.mel_fn(F.pad(wav, (96, 96)))
            fake = self.generator(mel)[:, : wav.size(1)]
            mel_fake = self.mel_fn(F.pad(fake, (96, 96)))
            l1s.append(F.l1_loss(mel_fake, mel).item())
            mcds.append(mel_cepstral_distortion(mel_fake[0].numpy(), mel[0].numpy()))
        mel_l1 = sum(l1s) / len(l1s)
        mcd = np.mean(mcds)
        is_best = mel_l1 < self.best_mel_l1
        self.best_mel_l1 = min(self.best_mel_l1, mel_l1)
        self.best_mcd = min(self.best_mcd, mcd)
        self.history["val_mel_l1"].append(mel_l1)
        self.history["val_mcd"].append(float(mcd))
        self.stopper.step(mel_l1)
        return {"mel_l1": mel_l1, "mcd": mcd, "is_best": is_best}

    def state_dict(self):
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "sched_d": self.sched_d.state_dict(),
            "ema": self.ema.state_dict(),
            "step": self.global_step,
            "epoch": self.epoch,
        }


def _trained_trainer(epochs=2):
    args = parse_args([])
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    _, wavs, _ = synthetic_corpus()
    trainer = VocoderTrainer(args)
    for _ in range(epochs):
        trainer.train_epoch(wavs)
        trainer.validate(wavs)
    return trainer


def save_vocoder_resume(tmpdir):
    t0 = time.time()
    trainer = _trained_trainer()
    ckpt = trainer.state_dict()
    ckpt["best_mel_l1"] = trainer.best_mel_l1
    ckpt["best_mcd"] = trainer.best_mcd  # truth: weights_only
    ckpt["history"] = trainer.history  # truth: weights_only
    ckpt["early_stopping"] = {
        "best": trainer.stopper.best,
        "bad_epochs": trainer.stopper.bad_epochs,
        "recent": trainer.stopper.recent,  # truth: weights_only
        "patience": trainer.stopper.patience,
    }
    ckpt["rng"] = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # truth: weights_only
    }
    ckpt["hparams"] = {**vars(trainer.args), "data_root": str(trainer.args.data_root)}
    ckpt["audio"] = dataclasses.asdict(trainer.audio)
    ckpt["started"] = trainer.started.isoformat()
    ckpt["wall_time"] = time.time() - t0
    path = os.path.join(tmpdir, f"g_{trainer.global_step:08d}.pt")
    torch.save(ckpt, path)
    return path


def save_vocoder_best(tmpdir):
    trainer = _trained_trainer(epochs=1)
    _, wavs, _ = synthetic_corpus(seed=1)
    val = trainer.validate(wavs)
    generator = copy.deepcopy(trainer.generator)
    generator.load_state_dict(trainer.ema.shadow)
    state = {
        "generator": generator.state_dict(),
        "val_mel_l1": val["mel_l1"],
        "val_mcd": val["mcd"],  # truth: weights_only
        "is_best": bool(val["is_best"]),
        "args": trainer.args,  # truth: weights_only
        "started": trainer.started.strftime("%Y-%m-%d %H:%M:%S"),
        "history": {k: list(v) for k, v in trainer.history.items()},
        "step": trainer.global_step,
    }
    path = os.path.join(tmpdir, "best_generator.pt")
    torch.save(state, path)
    return path


def save_generator_for_inference(tmpdir):
    cfg = AudioConfig()
    _, wavs, _ = synthetic_corpus(cfg=cfg)
    stats = compute_mel_stats(mels_for(wavs, cfg))
    generator = Generator(cfg.n_mels).eval()
    torch.save({
        "generator": generator.state_dict(),
        "mel_mean": torch.from_numpy(stats["mean"]),
        "mel_std": stats["std"],  # truth: weights_only
        "n_frames": stats["n_frames"],
        "sample_rate": cfg.sample_rate,
        "hop_length": cfg.hop_length,
        "audio_config": cfg,  # truth: weights_only
    }, os.path.join(tmpdir, "generator_infer.pt"))
    return os.path.join(tmpdir, "generator_infer.pt")


def save_generator_export(tmpdir):
    trainer = _trained_trainer(epochs=1)
    trainer.generator.load_state_dict(trainer.ema.shadow)
    trainer.generator.eval()
    out = Path(tmpdir) / "generator_full.pt"
    torch.save(trainer.generator, out)  # truth: weights_only
    return str(out)


def save_mel_normalizer(tmpdir):
    """Clean: every statistic is turned into a tensor, list or Python number."""
    cfg = AudioConfig()
    meta, wavs, f0 = synthetic_corpus(cfg=cfg)
    mels = mels_for(wavs, cfg)
    scaler = StandardScaler().fit(np.concatenate(mels, axis=1).T)
    pitch = compute_pitch_stats(f0)
    normalizer = dict(
        mean=torch.as_tensor(scaler.mean_, dtype=torch.float32),
        scale=scaler.scale_.tolist(),
        n_seen=int(scaler.n_samples_seen_),
        pitch={k: v for k, v in pitch.items() if k != "f0_mean"},
        f0_mean=float(pitch["f0_mean"]),
        total_hours=float(meta["duration"].sum()) / 3600.0,
        n_utts=len(meta),
        frames_per_utt=meta["n_frames"].describe().round(2).to_dict(),
        audio=dataclasses.asdict(cfg),
    )
    path = os.path.join(tmpdir, "mel_normalizer.pt")
    torch.save(normalizer, path)
    return path


def save_acoustic_model(tmpdir):
    args = parse_args([])
    meta, wavs, f0 = synthetic_corpus()
    table = SpeakerTable(meta)
    pitch = compute_pitch_stats(f0)
    model = AcousticModel(n_speakers=len(table), spk_dim=args.speaker_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, len(SYMBOLS), (2, 10))
    speakers = torch.tensor([table.name_to_id[s] for s in meta["speaker"][:2]])
    loss = model(tokens, speakers).pow(2).mean()
    loss.backward()
    optimizer.step()
    ckpt = dict(
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        symbols=list(SYMBOLS),
        speaker_map=table.name_to_id,
        speaker_counts=table.utt_counts,
        speaker_ids=set(table.ids),  # truth: weights_only
        speaker_minutes=table.minutes,  # truth: weights_only
        speaker_minutes_dict=table.minutes.round(3).to_dict(),
        speaker_encoding=SpeakerEncoding.LOOKUP.value,
        pitch=dict(
            mean=pitch["f0_mean"],  # truth: weights_only
            std=pitch["f0_std"],
            lo=pitch["f0_min"],
            hi=pitch["f0_max"],
        ),
        loss=loss.item(),
    )
    path = os.path.join(tmpdir, "acoustic.pt")
    torch.save(ckpt, path)
    return path


def save_speaker_adaptation(tmpdir):
    args = parse_args([])
    meta, _, _ = synthetic_corpus(seed=3)
    table = SpeakerTable(meta)
    model = AcousticModel(n_speakers=len(table) + 1, spk_dim=args.speaker_dim)
    new_id = len(table)
    ref_utts = meta.loc[meta["speaker"] == "p240", "utt_id"].tolist()
    d_vector = model.speaker_embedding.weight[: len(table)].detach().mean(0)
    adapt = {}
    adapt["speaker_embedding"] = model.speaker_embedding.weight.detach()[new_id].clone()
    adapt["d_vector"] = d_vector.numpy()  # truth: weights_only
    adapt["init_from"] = SpeakerEncoding.D_VECTOR.name
    adapt["ref_utts"] = sorted(ref_utts)
    adapt["ref_dir"] = str(args.data_root / "p240")
    adapt["speaker_id"] = new_id
    adapt["n_ref"] = len(ref_utts)
    path = os.path.join(tmpdir, "adapt_p240.pt")
    torch.save(adapt, path)
    return path


FACTORIES = {
    "SpeakerTable": lambda: SpeakerTable(synthetic_corpus()[0]),
    "EMA": lambda: EMA(Generator()),
    "VocoderTrainer": lambda: VocoderTrainer(parse_args([])),
    "SpeakerEncoding": lambda: SpeakerEncoding.LOOKUP,
}
