"""Samplers: outside the checker's scope, although some of them do not pickle."""
import threading

import torch
from torch.utils.data import Sampler


class LockedBucketSampler(Sampler):
    def __init__(self, lengths=(3, 1, 2, 5), batch_size=2):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.lock = threading.Lock()
        self.epoch = 0

    def set_epoch(self, epoch):
        with self.lock:
            self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.epoch)
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        return iter(order)

    def __len__(self):
        return len(self.lengths)


class StreamingSampler(Sampler):
    def __init__(self, n=8):
        self.n = n
        self.order = (i for i in range(n))

    def __iter__(self):
        return self.order

    def __len__(self):
        return self.n


class CleanSampler(Sampler):
    def __init__(self, n=8, seed=0):
        self.n = n
        self.seed = seed

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed)).tolist())

    def __len__(self):
        return self.n


NOT_BUILT = {
    "LockedBucketSampler": "Sampler: out of scope (holds a threading.Lock, does not pickle)",
    "StreamingSampler": "Sampler: out of scope (holds a generator, does not pickle)",
}
