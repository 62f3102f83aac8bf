"""Datasets and the small I/O helpers they share."""

from .io_utils import connect, iter_records, load_vocab, open_index, open_log
