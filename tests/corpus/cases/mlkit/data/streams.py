"""Streaming (iterable) datasets."""

import multiprocessing as mp
import queue
import threading
from operator import itemgetter

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .io_utils import iter_records

ROWS = ["0\tcat", "1\tdog", "2\tbird"]


def _tokenize(row):
    return row.split("\t")


class ShardStream(IterableDataset):
    """Yields samples shard by shard."""

    def __init__(self, n_shards=3):
        self.n_shards = n_shards
        self.shards = self._shard_iter()  # truth: pickle

    def _shard_iter(self):
        for s in range(self.n_shards):
            yield from range(s * 10, s * 10 + 3)

    def __iter__(self):
        info = get_worker_info()
        start = 0 if info is None else info.id
        return iter(range(start, self.n_shards * 10, 1 if info is None else info.num_workers))


class PrefetchStream(IterableDataset):
    """Reads ahead in a thread so the GPU never waits."""

    def __init__(self, source=ROWS, depth=8):
        self.source = list(source)
        self.buffer = queue.Queue(maxsize=depth)  # truth: pickle
        self.stop_event = threading.Event()  # truth: pickle
        self.filler = threading.Thread(target=self._fill, daemon=True)  # truth: pickle

    def _fill(self):
        for row in self.source:
            if self.stop_event.is_set():
                return
            self.buffer.put(row)

    def __iter__(self):
        return iter(self.source)


class RecordStream(IterableDataset):
    def __init__(self, rows=ROWS):
        self.rows = list(rows)
        self.records = iter_records(self.rows)  # truth: pickle
        self.position = iter(self.rows)
        self.tokens = map(_tokenize, self.rows)
        self.indexed = zip(range(len(self.rows)), self.rows)
        self.first_field = itemgetter(0)

    def __iter__(self):
        for fields in map(_tokenize, self.rows):
            yield self.first_field(fields)


class FilteredStream(IterableDataset):
    def __init__(self, rows=ROWS, min_len=4):
        self.rows = list(rows)
        self.kept = filter(lambda r: len(r) >= min_len, self.rows)  # truth: pickle
        self.lengths = map(len, self.rows)
        self.longest = max(self.rows, key=lambda r: len(r))
        self.by_label = sorted(self.rows, key=lambda r: r.split("\t")[1])

    def __iter__(self):
        return (r for r in self.rows if len(r) >= 4)


class MultiprocStream(IterableDataset):
    """Workers push decoded rows into a multiprocessing queue."""

    def __init__(self):
        self.results = mp.Queue()  # truth: pickle
        self.decoded = mp.Value("i", 0)  # truth: pickle
        self.n_workers = mp.cpu_count()

    def __iter__(self):
        yield torch.zeros(1)


class BufferedStream(IterableDataset):
    """Materialises its generator before the loader sees it."""

    def __init__(self, rows=ROWS):
        self.samples = (_tokenize(r) for r in rows)
        self.samples = list(self.samples)

    def __iter__(self):
        return iter(self.samples)
