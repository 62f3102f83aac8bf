"""Checkpoints that collect metrics in a history dict, and a defaultdict saved whole."""

import collections
import os

import numpy as np
import torch


def save_history(out_dir):
    history = {"loss": [], "acc": []}  # truth: weights_only
    for x in ([1.0, 2.0], [3.0]):
        history["acc"].append(np.mean(x))
        history["loss"].append(float(x[0]))
    path = os.path.join(out_dir, "h.pt")
    torch.save({"history": history}, path)
    return path


def save_whole_defaultdict(out_dir):
    ck = collections.defaultdict(dict)
    ck["lr"] = np.float64(0.1)
    path = os.path.join(out_dir, "d.pt")
    torch.save(ck, path)  # truth: weights_only
    return path
