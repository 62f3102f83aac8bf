"""Nucleus tracking in time-lapse fluorescence microscopy.

Pipeline: a tiny U-Net-ish segmenter -> connected components per frame -> detections
(centroid, area, intensity) -> frame-to-frame linking by Hungarian assignment with a distance
gate -> division detection -> lineage graph -> CTC-style track metrics.  A small MLP scores
candidate links so the gate can be learned.
"""
import datetime
import itertools
import time
from collections import Counter, OrderedDict, defaultdict, namedtuple
from dataclasses import asdict, dataclass

import networkx as nx
import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

Detection = namedtuple("Detection", "frame label y x area intensity")
Track = namedtuple("Track", "track_id start end parent")
LINK_FEATURES = ["dist", "d_area", "int_ratio"]


@dataclass
class TrackerConfig:
    max_disp: float = 7.0
    min_area: int = 6
    division_radius: float = 9.0
    seg_threshold: float = 0.5
    px_size_um: tuple = (0.65, 0.65)
    frame_interval_s: float = 300.0


# ----------------------------------------------------------------------------- data

def simulate_movie(n_frames=8, size=48, n_cells=5, seed=0, divide_at=4):
    """Gaussian nuclei doing a random walk; cell 0 divides at `divide_at`."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(8, size - 8, (n_cells, 2))
    yy, xx = np.mgrid[:size, :size]
    frames, masks = [], []
    for t in range(n_frames):
        if t == divide_at:
            pos = np.vstack([pos, pos[0] + [4.0, 4.0]])
            pos[0] -= [3.0, 3.0]
        pos = np.clip(pos + rng.normal(0, 1.2, pos.shape), 4, size - 4)
        img = np.zeros((size, size), np.float32)
        for cy, cx in pos:
            img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.2 ** 2)).astype(np.float32)
        masks.append(img > 0.35)
        frames.append(img + rng.normal(0, 0.05, img.shape).astype(np.float32))
    return np.stack(frames), np.stack(masks)


class TinySegNet(nn.Module):
    def __init__(self, in_channels=1, width=8):
        super().__init__()
        self.width = width
        self.enc = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.down = nn.Conv2d(width, width * 2, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(width * 2, width, 2, stride=2)
        self.head = nn.Conv2d(width * 2, 1, 1)

    def forward(self, x):
        e = self.enc(x)
        u = self.up(F.relu(self.down(e)))
        return self.head(torch.cat([e, u], 1))


class LinkScorer(nn.Module):
    def __init__(self, n_features=3, hidden=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, f):
        return self.net(f).squeeze(-1)


def train_segmenter(frames, masks, epochs=3, width=8):
    net = TinySegNet(width=width)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.from_numpy(frames[:, None])
    y = torch.from_numpy(masks[:, None].astype(np.float32))
    for _ in range(epochs):
        loss = F.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        prob = torch.sigmoid(net(x))
    pred = prob > 0.5
    inter = (pred & y.bool()).sum((1, 2, 3)).float()
    union = (pred | y.bool()).sum((1, 2, 3)).float().clamp(min=1)
    dice = (2 * inter / (pred.sum((1, 2, 3)) + y.sum((1, 2, 3))).clamp(min=1)).mean().item()
    return net, opt, dice, (inter / union).tolist()


# ----------------------------------------------------------------------------- tracking helpers

def segment(mask, min_area):
    lab, n = ndi.label(mask)
    if n:
        areas = ndi.sum_labels(mask, lab, range(1, n + 1))
        for i, a in enumerate(areas, start=1):
            if a < min_area:
                lab[lab == i] = 0
        lab, n = ndi.label(lab > 0)
    return lab, n


def detect(t, frame, lab, n):
    if n == 0:
        return []
    idx = range(1, n + 1)
    cents = ndi.center_of_mass(frame, lab, idx)
    areas = ndi.sum_labels(np.ones_like(lab), lab, idx)
    ints = ndi.mean(frame, lab, idx)
    return [Detection(t, i, c[0], c[1], a, m) for i, c, a, m in zip(idx, cents, areas, ints)]


def link(prev, curr, max_disp):
    """Hungarian assignment on centroid distance; pairs beyond the gate are dropped."""
    if not prev or not curr:
        return [], np.zeros((0, 0)), (np.array([], int), np.array([], int))
    a = np.array([(d.y, d.x) for d in prev])
    b = np.array([(d.y, d.x) for d in curr])
    cost = cdist(a, b)
    gated = np.where(cost > max_disp, 1e6, cost)
    rows, cols = linear_sum_assignment(gated)
    keep = cost[rows, cols] <= max_disp
    return list(zip(rows[keep], cols[keep])), cost, (rows, cols)


def build_tracks(dets, cfg):
    ids = itertools.count(1)
    tracks, lineage = {}, nx.DiGraph()
    open_ids = {}
    for d in dets[0]:
        tid = next(ids)
        tracks[tid], open_ids[d.label] = [d], tid
        lineage.add_node(tid)
    for t in range(1, len(dets)):
        pairs, cost, _ = link(dets[t - 1], dets[t], cfg.max_disp)
        matched = {int(j): open_ids[dets[t - 1][int(i)].label] for i, j in pairs}
        new_open = {}
        for j, d in enumerate(dets[t]):
            if j in matched:
                tracks[matched[j]].append(d)
                new_open[d.label] = matched[j]
                continue
            tid = next(ids)
            tracks[tid], new_open[d.label] = [d], tid
            lineage.add_node(tid)
            if cost.size:
                i = int(np.argmin(cost[:, j]))
                if cost[i, j] <= cfg.division_radius:
                    lineage.add_edge(open_ids[dets[t - 1][i].label], tid)
        open_ids = new_open
    return tracks, lineage


def run_tracking(cfg=None, seed=0, n_frames=8):
    cfg = cfg or TrackerConfig()
    frames, masks = simulate_movie(n_frames=n_frames, seed=seed)
    dets, labs = [], []
    for t in range(len(frames)):
        lab, n = segment(masks[t], cfg.min_area)
        labs.append(lab)
        dets.append(detect(t, frames[t], lab, n))
    tracks, lineage = build_tracks(dets, cfg)
    return cfg, frames, masks, labs, dets, tracks, lineage


def track_table(tracks, lineage):
    out = []
    for tid, ds in tracks.items():
        parents = list(lineage.predecessors(tid))
        out.append(Track(tid, ds[0].frame, ds[-1].frame, parents[0] if parents else 0))
    return out


def link_training_pairs(dets, radius):
    feats, labels = [], []
    for t in range(1, len(dets)):
        pairs, cost, _ = link(dets[t - 1], dets[t], radius)
        true = {(int(i), int(j)) for i, j in pairs}
        for i, p in enumerate(dets[t - 1]):
            for j, c in enumerate(dets[t]):
                if cost[i, j] < 2 * radius:
                    feats.append([cost[i, j], abs(c.area - p.area) / p.area, c.intensity / p.intensity])
                    labels.append(1.0 if (i, j) in true else 0.0)
    return np.asarray(feats, np.float32), np.asarray(labels, np.float32)


def evaluate_tracks(tracks, n_frames, n_true):
    lengths = [len(v) for v in tracks.values()]
    fn = max(0, n_true * n_frames - sum(lengths))
    fp = sum(1 for L in lengths if L == 1)
    idsw = max(0, len(tracks) - n_true - 1)
    mota = 1.0 - (fn + fp + idsw) / (n_true * n_frames)
    return lengths, mota, idsw, fn, fp


# ----------------------------------------------------------------------------- checkpoints

def save_segmenter(tmpdir):
    cfg = TrackerConfig()
    frames, masks = simulate_movie(seed=1)
    net, opt, dice, ious = train_segmenter(frames, masks)
    lab0, n0 = ndi.label(masks[0])
    ckpt = OrderedDict()
    ckpt["state_dict"] = net.state_dict()
    ckpt["optimizer"] = opt.state_dict()
    ckpt["arch"] = {"in_channels": 1, "width": net.width, "depth": 2}
    ckpt["norm"] = {
        "mean": float(frames.mean()),
        "std": frames.std(),  # truth: weights_only
    }
    ckpt["input_dtype"] = frames.dtype  # truth: weights_only
    ckpt["input_shape"] = frames.shape[1:]
    ckpt["px_size_um"] = cfg.px_size_um
    ckpt["dice"] = dice
    ckpt["iou_per_frame"] = ious
    ckpt["n_objects_t0"] = n0
    ckpt["bboxes_t0"] = ndi.find_objects(lab0)  # truth: weights_only
    ckpt["bbox_list"] = [(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in ndi.find_objects(lab0)]
    ckpt["area_hist"] = np.bincount(lab0.ravel())[1:].tolist()
    ckpt["max_label_value"] = np.iinfo(np.uint16).max
    ckpt["seg_threshold"] = cfg.seg_threshold
    ckpt["foreground_frac"] = masks.mean(dtype=np.float64).item()
    path = f"{tmpdir}/segmenter.pth"
    torch.save(ckpt, path)
    return path


def save_tracker_state(tmpdir):
    cfg, frames, masks, labs, dets, tracks, lineage = run_tracking(seed=2)
    state = defaultdict(dict)
    state["linker"]["max_disp"] = cfg.max_disp
    state["linker"]["division_radius"] = cfg.division_radius
    state["linker"]["method"] = "hungarian"
    for tid, ds in tracks.items():
        state["tracks"][tid] = [(d.frame, float(d.y), float(d.x)) for d in ds]
    state["meta"]["n_frames"] = len(frames)
    state["meta"]["created"] = datetime.datetime.now().isoformat()
    path = f"{tmpdir}/tracker_state.pt"
    torch.save(state, path)  # truth: weights_only
    return path


def save_link_model(tmpdir):
    cfg, frames, masks, labs, dets, tracks, lineage = run_tracking(seed=3)
    feats, labels = link_training_pairs(dets, cfg.max_disp)
    mu, sd = feats.mean(axis=0), feats.std(axis=0) + 1e-6
    scorer = LinkScorer(len(LINK_FEATURES))
    opt = torch.optim.Adam(scorer.parameters(), lr=1e-2)
    x = torch.from_numpy((feats - mu) / sd)
    y = torch.from_numpy(labels)
    for _ in range(40):
        loss = F.binary_cross_entropy_with_logits(scorer(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pairs, cost, (rows, cols) = link(dets[0], dets[1], cfg.max_disp)
    steps = [np.hypot(b.y - a.y, b.x - a.x) for ds in tracks.values() for a, b in zip(ds, ds[1:])]
    ckpt = {
        "model": scorer.state_dict(),
        "feature_names": LINK_FEATURES,
        "feature_mean": mu,  # truth: weights_only
        "feature_std": torch.from_numpy(sd),
        "gating_radius": cfg.max_disp,
        "median_step": np.median(steps),  # truth: weights_only
        "p95_step": float(np.percentile(steps, 95)),
        "assignment_t0": pairs,  # truth: weights_only
        "assignment_rows": rows.tolist(),
        "assignment_cost": float(cost[rows, cols].sum()),
        "pos_fraction": labels.mean().item(),
        "final_loss": loss.detach(),
        "lineage": lineage,  # truth: weights_only
        "lineage_edges": list(lineage.edges()),
        "divisions": sorted(n for n in lineage if lineage.out_degree(n) >= 1),
    }
    torch.save(ckpt, f"{tmpdir}/link_scorer.pt")
    return f"{tmpdir}/link_scorer.pt"


def save_tracking_results(tmpdir):
    cfg, frames, masks, labs, dets, tracks, lineage = run_tracking(seed=4)
    lengths, mota, idsw, fn, fp = evaluate_tracks(tracks, len(frames), n_true=5)
    per_frame = []
    for t, ds in enumerate(dets):
        per_frame.append({"t": t, "n_det": len(ds), "mean_area": float(np.mean([d.area for d in ds])),
                          "time_s": t * cfg.frame_interval_s})
    ckpt = {"config": asdict(cfg), "per_frame": per_frame}
    ckpt.update(
        track_lengths=Counter(lengths),
        mean_track_length=np.mean(lengths),  # truth: weights_only
        longest_track=max(lengths),
        tracks={tid: [(d.frame, round(float(d.y), 2), round(float(d.x), 2)) for d in ds]
                for tid, ds in tracks.items()},
        final_tracks=track_table(tracks, lineage),  # truth: weights_only
        centroids_t0=ndi.center_of_mass(frames[0], labs[0], range(1, len(dets[0]) + 1)),  # truth: weights_only
        n_detections=sum(len(ds) for ds in dets),
        mota=mota,
        id_switches=idsw,
        false_negatives=fn,
        false_positives=fp,
        lineage=nx.node_link_data(lineage, edges="links"),
    )
    ckpt["created"] = time.time()
    torch.save(ckpt, f"{tmpdir}/tracking_results.pt")
    return f"{tmpdir}/tracking_results.pt"


def save_whole_scorer(tmpdir):
    scorer = LinkScorer()
    path = f"{tmpdir}/scorer_full.pt"
    torch.save(scorer, path)  # truth: weights_only
    return path


def save_inference_bundle(tmpdir):
    """Everything the napari plugin needs, stored as plain containers and tensors."""
    cfg, frames, masks, labs, dets, tracks, lineage = run_tracking(seed=5, n_frames=6)
    net = TinySegNet()
    areas = [d.area for ds in dets for d in ds]
    bundle = {
        "segmenter": net.state_dict(),
        "linker": LinkScorer().state_dict(),
        "cfg": asdict(cfg),
        "movie_shape": frames.shape,
        "dtype": str(frames.dtype),
        "px_area_um2": cfg.px_size_um[0] * cfg.px_size_um[1],
        "area_range": (float(min(areas)), float(max(areas))),
        "n_tracks": len(tracks),
        "division_parents": [int(n) for n in lineage if lineage.out_degree(n) > 0],
        "lineage_adj": nx.to_dict_of_lists(lineage),
        "label_counts": [int(lab.max()) for lab in labs],
        "exported": datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S"),
        "device": torch.device("cpu"),
        "dtype_torch": torch.float32,
    }
    torch.save(bundle, f"{tmpdir}/bundle.pt")
    return f"{tmpdir}/bundle.pt"
