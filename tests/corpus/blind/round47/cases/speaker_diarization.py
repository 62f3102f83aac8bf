"""Speaker diarization: an EEND-style end-to-end model and an x-vector + AHC back-end.

Frame-level features (10 ms shift) go through a small self-attention encoder that
predicts per-speaker activity; training uses permutation-invariant BCE. The
clustering back-end embeds 1.5 s windows with a TDNN and clusters them with
average-linkage AHC whose stopping threshold is tuned on a dev session.
"""
import datetime
import itertools
import os
import random
from collections import Counter, defaultdict, deque, namedtuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import silhouette_score

SAMPLE_RATE = 16000
FRAME_SHIFT = 0.01
FEAT_DIM = 16
Segment = namedtuple("Segment", ["start", "end", "speaker"])


def synth_session(n_frames=200, n_speakers=3, seed=0, turn=20):
    rng = np.random.default_rng(seed)
    labels = np.zeros((n_frames, n_speakers), dtype=np.float32)
    for s in range(0, n_frames, turn):
        spk = rng.integers(n_speakers)
        labels[s:s + turn, spk] = 1.0
        if rng.random() < 0.25:
            labels[s + turn // 2:s + turn, (spk + 1) % n_speakers] = 1.0
    labels[:10] = 0.0
    centers = rng.normal(size=(n_speakers, FEAT_DIM)).astype(np.float32)
    feats = rng.normal(scale=0.5, size=(n_frames, FEAT_DIM)).astype(np.float32) + labels @ centers
    return feats, labels


def labels_to_segments(labels, frame_shift=FRAME_SHIFT, min_frames=3):
    segments = []
    for spk in range(labels.shape[1]):
        active = labels[:, spk] > 0.5
        start = None
        for i, on in enumerate(list(active) + [False]):
            if on and start is None:
                start = i
            elif not on and start is not None:
                if i - start >= min_frames:
                    segments.append(Segment(round(start * frame_shift, 2), round(i * frame_shift, 2), f"spk{spk}"))
                start = None
    return sorted(segments, key=lambda s: s.start)


def rttm_lines(segments, uri):
    return [f"SPEAKER {uri} 1 {s.start:.2f} {s.end - s.start:.2f} <NA> <NA> {s.speaker} <NA> <NA>"
            for s in segments]


def frame_der(ref, hyp):
    overlap = ref.T @ hyp
    rows, cols = linear_sum_assignment(-overlap)
    mapped = np.zeros_like(ref)
    for r, c in zip(rows, cols):
        mapped[:, r] = hyp[:, c]
    n_ref, n_hyp = ref.sum(1), hyp.sum(1)
    n_correct = (ref * mapped).sum(1)
    miss = np.maximum(n_ref - n_hyp, 0).sum()
    fa = np.maximum(n_hyp - n_ref, 0).sum()
    conf = (np.minimum(n_ref, n_hyp) - n_correct).sum()
    total = max(n_ref.sum(), 1.0)
    return {
        "der": (miss + fa + conf) / total,
        "miss": float(miss / total),
        "false_alarm": float(fa / total),
        "confusion": float(conf / total),
        "speaker_map": list(zip(rows, cols)),
    }


class EENDEncoder(nn.Module):
    def __init__(self, feat_dim=FEAT_DIM, d_model=16, n_heads=2, n_speakers=3):
        super().__init__()
        self.proj = nn.Linear(feat_dim, d_model)
        self.encoder = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=32, batch_first=True)
        self.out = nn.Linear(d_model, n_speakers)

    def forward(self, x):
        return self.out(self.encoder(self.proj(x)))


def pit_loss(logits, labels):
    n_spk = labels.shape[-1]
    best, best_perm = None, None
    for perm in itertools.permutations(range(n_spk)):
        loss = F.binary_cross_entropy_with_logits(logits[..., list(perm)], labels)
        if best is None or loss < best:
            best, best_perm = loss, perm
    return best, best_perm


class DiarizationTrainer:
    def __init__(self, model, lr=1e-3, window=5):
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=10, gamma=0.5)
        self.epoch = 0
        self.der_window = deque(maxlen=window)
        self.best_der = float("inf")
        self.log = defaultdict(list)

    def train_epoch(self, sessions):
        self.model.train()
        perm_counts = Counter()
        losses = []
        for feats, labels in sessions:
            x = torch.from_numpy(feats).unsqueeze(0)
            y = torch.from_numpy(labels).unsqueeze(0)
            loss, perm = pit_loss(self.model(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            perm_counts[perm] += 1
            losses.append(loss.item())
        self.scheduler.step()
        self.epoch += 1
        mean_loss = sum(losses) / len(losses)
        self.log["train_loss"].append(mean_loss)
        return mean_loss, perm_counts

    @torch.no_grad()
    def validate(self, feats, labels, threshold=0.5):
        self.model.eval()
        probs = torch.sigmoid(self.model(torch.from_numpy(feats).unsqueeze(0)))[0].numpy()
        res = frame_der(labels, (probs > threshold).astype(np.float32))
        self.der_window.append(float(res["der"]))
        self.best_der = min(self.best_der, float(res["der"]))
        self.log["val_der"].append(float(res["der"]))
        return res

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_der": self.best_der,
        }


def _make_trainer(seed=0, **kw):
    torch.manual_seed(seed)
    return DiarizationTrainer(EENDEncoder(), **kw)


def save_eend_checkpoint(tmpdir):
    trainer = _make_trainer(window=3)
    sessions = [synth_session(seed=s) for s in range(2)]
    dev_feats, dev_labels = synth_session(seed=10)
    for _ in range(2):
        mean_loss, perm_counts = trainer.train_epoch(sessions)
        val = trainer.validate(dev_feats, dev_labels)
    ckpt = trainer.state_dict()
    ckpt["train_loss"] = mean_loss
    ckpt["der_window"] = trainer.der_window  # truth: weights_only
    ckpt["recent_der"] = list(trainer.der_window)
    ckpt["log"] = dict(trainer.log)
    ckpt.update({
        "val_der": val["der"],  # truth: weights_only
        "val_miss": val["miss"],
        "val_false_alarm": val["false_alarm"],
        "val_confusion": val["confusion"],
        "speaker_map": val["speaker_map"],  # truth: weights_only
        "perm_counts": perm_counts,
        "lr": trainer.scheduler.get_last_lr()[0],
    })
    path = os.path.join(tmpdir, f"eend_epoch{trainer.epoch:03d}.pt")
    torch.save(ckpt, path)
    return path


class TDNN(nn.Module):
    def __init__(self, feat_dim=FEAT_DIM, hidden=16, emb_dim=8):
        super().__init__()
        self.frame = nn.Sequential(nn.Conv1d(feat_dim, hidden, 3, dilation=1), nn.ReLU(),
                                   nn.Conv1d(hidden, hidden, 3, dilation=2), nn.ReLU())
        self.segment = nn.Linear(2 * hidden, emb_dim)

    def forward(self, x):
        h = self.frame(x.transpose(1, 2))
        return self.segment(torch.cat([h.mean(-1), h.std(-1)], dim=-1))


def sliding_windows(feats, win=30, shift=15):
    starts = list(range(0, len(feats) - win + 1, shift))
    return starts, np.stack([feats[s:s + win] for s in starts])


def ahc(emb, threshold):
    z = linkage(emb, method="average", metric="cosine")
    return fcluster(z, t=threshold, criterion="distance")


def window_labels(labels, starts, win):
    return [int(labels[s:s + win].sum(0).argmax()) for s in starts]


def save_xvector_clustering(tmpdir, min_speakers=1, max_speakers=6):
    torch.manual_seed(1)
    tdnn = TDNN()
    feats, labels = synth_session(seed=3)
    starts, windows = sliding_windows(feats)
    with torch.no_grad():
        emb = tdnn(torch.from_numpy(windows)).numpy()
    ref = window_labels(labels, starts, 30)
    thresholds = np.linspace(0.05, 0.8, 8)
    ders = []
    for th in thresholds:
        hyp = ahc(emb, th)
        agree = sum(int(a == b) for a, b in zip(ref, hyp.tolist()))
        ders.append(1.0 - agree / len(ref))
    best_th = thresholds[int(np.argmin(ders))]
    clusters = ahc(emb, best_th)
    centroids = np.stack([emb[clusters == k].mean(0) for k in np.unique(clusters)])
    backend = {
        "embedding_extractor": tdnn.state_dict(),
        "ahc_threshold": best_th,  # truth: weights_only
        "threshold_grid": thresholds.tolist(),
        "der_curve": ders,
        "centroids": torch.from_numpy(centroids),
        "n_clusters_est": clusters.max(),  # truth: weights_only
        "n_clusters": len(set(clusters.tolist())),
        "linkage": "average",
        "window": {"length_s": 30 * FRAME_SHIFT, "shift_s": 15 * FRAME_SHIFT},
        "speaker_search": range(min_speakers, max_speakers + 1),  # truth: weights_only
        "speaker_bounds": (min_speakers, max_speakers),
    }
    if len(set(clusters.tolist())) > 1:
        backend["silhouette"] = silhouette_score(emb, clusters, metric="cosine")
    path = os.path.join(tmpdir, "xvector_ahc_backend.pt")
    torch.save(backend, path)
    return path


def save_session_annotations(tmpdir, uri="ES2002a"):
    trainer = _make_trainer(seed=2)
    feats, labels = synth_session(seed=5)
    trainer.train_epoch([(feats, labels)])
    with torch.no_grad():
        probs = torch.sigmoid(trainer.model(torch.from_numpy(feats).unsqueeze(0)))[0]
    hyp = labels_to_segments((probs > 0.5).numpy().astype(np.float32))
    ref = labels_to_segments(labels)
    speech = sum(s.end - s.start for s in ref)
    speaker_time = Counter()
    for s in ref:
        speaker_time[s.speaker] += s.end - s.start
    record = {
        "uri": uri,
        "hyp_segments": hyp,  # truth: weights_only
        "hyp_rttm": rttm_lines(hyp, uri),
        "ref_segments": [s._asdict() for s in ref],
        "speakers": sorted({s.speaker for s in ref}),
        "speaker_time": speaker_time,
        "dominant_speaker": speaker_time.most_common(1)[0][0],
        "total_speech": datetime.timedelta(seconds=speech),  # truth: weights_only
        "total_speech_s": speech,
        "recorded_on": datetime.date(2005, 3, 14).isoformat(),
        "frame_shift": FRAME_SHIFT,
        "sample_rate": SAMPLE_RATE,
    }
    path = os.path.join(tmpdir, f"{uri}.annotations.pt")
    torch.save(record, path)
    return path


def build_enrollment_bank(tdnn, sessions):
    bank = defaultdict(list)
    for feats, labels in sessions:
        starts, windows = sliding_windows(feats)
        with torch.no_grad():
            emb = tdnn(torch.from_numpy(windows))
        for row, spk in zip(emb, window_labels(labels, starts, 30)):
            bank[f"spk{spk}"].append(row)
    return bank


def save_enrollment_bank(tmpdir):
    torch.manual_seed(3)
    bank = build_enrollment_bank(TDNN(), [synth_session(seed=s) for s in (6, 7)])
    path = os.path.join(tmpdir, "enrollment_bank.pt")
    torch.save(bank, path)  # truth: weights_only
    return path


def save_enrollment_centroids(tmpdir):
    torch.manual_seed(3)
    bank = build_enrollment_bank(TDNN(), [synth_session(seed=s) for s in (6, 7)])
    centroids = {spk: F.normalize(torch.stack(rows).mean(0), dim=0) for spk, rows in bank.items()}
    path = os.path.join(tmpdir, "enrollment_centroids.pt")
    torch.save(centroids, path)
    return path


def save_resume_state(tmpdir):
    random.seed(0)
    np.random.seed(0)
    trainer = _make_trainer(seed=4)
    feats, labels = synth_session(seed=8)
    trainer.train_epoch([(feats, labels)])
    n_active = int(labels.sum(0).astype(bool).sum())
    state = {
        "trainer": trainer.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),  # truth: weights_only
            "python": random.getstate(),
        },
        "sampler_state": np.random.default_rng(0).bit_generator.state,
        "pit_permutations": list(itertools.permutations(range(n_active))),
        "num_speakers": n_active,
        "overlap_ratio": (labels.sum(1) > 1).mean(),  # truth: weights_only
        "speech_ratio": float((labels.sum(1) > 0).mean()),
        "frames": labels.shape[0],
        "feature": {"type": "logmel", "dim": FEAT_DIM, "shift_ms": int(FRAME_SHIFT * 1000)},
        "saved_at": datetime.datetime.now().timestamp(),
    }
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(state, path)
    return path


FACTORIES = {
    "DiarizationTrainer": lambda: _make_trainer(window=3),
}
