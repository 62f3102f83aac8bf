"""CTC speech recognition training: log-mel features, global CMVN, SpecAugment, WER with numpy."""
import dataclasses
import datetime
import os
import statistics
import time

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
VOCAB = list("_ abcdefghijklmnopqrstuvwxyz'")


@dataclasses.dataclass
class SpecAugmentConfig:
    freq_mask_param: int = 15
    time_mask_param: int = 35
    num_freq_masks: int = 2
    num_time_masks: int = 2
    p: float = 1.0


@dataclasses.dataclass
class FeatureConfig:
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 40
    preemphasis: float = 0.97


class CTCModel(nn.Module):
    def __init__(self, n_mels=40, hidden=32, vocab_size=len(VOCAB)):
        super().__init__()
        self.rnn = nn.GRU(n_mels, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, vocab_size)

    def forward(self, feats):
        out, _ = self.rnn(feats)
        return self.proj(out).log_softmax(-1)


def fake_logmels(n_utts=4, frames=50, n_mels=40, seed=0):
    rng = np.random.default_rng(seed)
    return [np.log(rng.gamma(2.0, 1.0, size=(frames + 7 * i, n_mels)) + 1e-6).astype(np.float32)
            for i in range(n_utts)]


def compute_cmvn_stats(feats):
    """Global mean/variance normalisation stats, Kaldi style."""
    stacked = np.concatenate(feats, axis=0)
    return {
        "mean": stacked.mean(axis=0),
        "std": stacked.std(axis=0) + 1e-5,
        "frames": stacked.shape[0],
    }


def edit_distance(ref, hyp):
    d = np.zeros((len(ref) + 1, len(hyp) + 1), dtype=np.int32)
    d[:, 0] = np.arange(len(ref) + 1)
    d[0, :] = np.arange(len(hyp) + 1)
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            cost = 0 if ref[i - 1] == hyp[j - 1] else 1
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + cost)
    return d[-1, -1]


def word_error_rate(refs, hyps):
    errors = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
    words = sum(len(r.split()) for r in refs)
    return errors / max(words, 1)


REFS = ["the cat sat", "a dog ran home", "hello world"]
HYPS = ["the cat sad", "a dog ran", "hello world"]


def save_cmvn_checkpoint(tmpdir):
    feats = fake_logmels()
    stats = compute_cmvn_stats(feats)
    model = CTCModel()
    ckpt = {
        "model": model.state_dict(),
        "normalizer": {
            "mean": stats["mean"],  # truth: weights_only
            "std": torch.from_numpy(stats["std"]),
            "frames": stats["frames"],
        },
        "feature_config": dataclasses.asdict(FeatureConfig()),
    }
    path = os.path.join(tmpdir, "cmvn.pt")
    torch.save(ckpt, path)
    return path


def save_cmvn_as_lists(tmpdir):
    stats = compute_cmvn_stats(fake_logmels(seed=1))
    model = CTCModel()
    ckpt = dict(
        model=model.state_dict(),
        cmvn_mean=stats["mean"].tolist(),
        cmvn_std=torch.tensor(stats["std"]),
        num_frames=int(stats["frames"]),
        sample_rate=SAMPLE_RATE,
        vocab=VOCAB,
        specaug=dataclasses.asdict(SpecAugmentConfig()),
    )
    path = os.path.join(tmpdir, "cmvn_lists.pt")
    torch.save(ckpt, path)
    return path


class ASRTrainer:
    def __init__(self, lr=1e-3, patience=2):
        self.model = CTCModel()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="min", patience=patience)
        self.augment = SpecAugmentConfig()
        self.epoch = 0
        self.best_wer = float("inf")
        self.wer_history = []
        self.epoch_times = []

    def validate(self):
        return word_error_rate(REFS, HYPS)

    def end_epoch(self, wer, as_float=True):
        start = time.perf_counter()
        self.epoch += 1
        self.scheduler.step(float(wer) if as_float else wer)
        self.wer_history.append(wer)
        if wer < self.best_wer:
            self.best_wer = wer
        self.epoch_times.append(time.perf_counter() - start)

    def save_checkpoint(self, path, extra=None):
        state = {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "best_wer": self.best_wer,
            "mean_epoch_time": statistics.mean(self.epoch_times),
        }
        if extra:
            state.update(extra)
        torch.save(state, path)
        return path


def save_asr_trainer(tmpdir):
    trainer = ASRTrainer()
    wer = trainer.validate()
    trainer.end_epoch(float(wer))
    return trainer.save_checkpoint(os.path.join(tmpdir, "asr_epoch1.pt"),
                                   extra={"wer_history": [float(w) for w in trainer.wer_history]})


def save_asr_trainer_numpy_wer(tmpdir):
    trainer = ASRTrainer()
    wer = trainer.validate()
    trainer.end_epoch(wer, as_float=False)
    state = {
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "best_wer": trainer.best_wer,  # truth: weights_only
        "wer_history": trainer.wer_history,  # truth: weights_only
        "augment": trainer.augment,  # truth: weights_only
    }
    path = os.path.join(tmpdir, "asr_np.pt")
    torch.save(state, path)
    return path


def per_utterance_errors(refs, hyps):
    return [edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps)]


def save_eval_report(tmpdir):
    errs = per_utterance_errors(REFS, HYPS)
    lengths = [len(r.split()) for r in REFS]
    report = {"num_utts": len(errs)}
    report["total_errors"] = sum(errs)  # truth: weights_only
    report["total_words"] = sum(lengths)
    report["utt_wer"] = [int(e) / n for e, n in zip(errs, lengths)]
    report["median_utt_errors"] = statistics.median(int(e) for e in errs)
    report["evaluated_at"] = datetime.datetime.now(datetime.timezone.utc)  # truth: weights_only
    report["evaluated_at_iso"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    ckpt = {"model": CTCModel().state_dict(), "report": report}
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(ckpt, path)
    return path


def save_averaged_model(tmpdir):
    model = CTCModel()
    swa = torch.optim.swa_utils.AveragedModel(model)
    swa.update_parameters(model)
    path = os.path.join(tmpdir, "swa.pt")
    torch.save(swa, path)  # truth: weights_only
    return path


def save_averaged_weights(tmpdir):
    model = CTCModel()
    swa = torch.optim.swa_utils.AveragedModel(model)
    swa.update_parameters(model)
    duration_s = np.array([1.2, 3.4, 2.2])
    ckpt = {"swa": swa.module.state_dict(), "n_averaged": swa.n_averaged}
    ckpt["total_hours"] = round(float(duration_s.sum()) / 3600, 4)
    ckpt["sample_rates"] = {SAMPLE_RATE, 8000}
    torch.save(ckpt, os.path.join(tmpdir, "swa_weights.pt"))
    return os.path.join(tmpdir, "swa_weights.pt")


def sample_augmentation(rng, cfg: SpecAugmentConfig):
    return {
        "speed_perturb": [0.9, 1.0, 1.1],
        "gain_db": rng.uniform(-6.0, 6.0),
        "noise_snr_db": rng.integers(5, 20),
        "freq_mask_param": cfg.freq_mask_param,
        "time_masks": min(cfg.num_time_masks, 2),
    }


def save_augmentation_state(tmpdir, orig_sr=8000):
    rng = np.random.default_rng(1234)
    aug = sample_augmentation(rng, SpecAugmentConfig())
    ckpt = {
        "model": CTCModel().state_dict(),
        "augmentation": {
            "speed_perturb": aug["speed_perturb"],
            "gain_db": aug["gain_db"],
            "noise_snr_db": aug["noise_snr_db"],  # truth: weights_only
            "time_masks": aug["time_masks"],
        },
        "rng_state": rng.bit_generator.state,
        "resample_ratio": SAMPLE_RATE / orig_sr,
        "resample_gcd": np.gcd(SAMPLE_RATE, orig_sr),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "aug.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {"ASRTrainer": lambda: ASRTrainer()}
