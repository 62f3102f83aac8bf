"""I/O helpers shared by the datasets (no classes here)."""

import logging
import os
import sqlite3
import tempfile

import lmdb

PAD, UNK = "<pad>", "<unk>"


def open_index(path=None, map_size=1 << 20):
    """Open (or create) the LMDB index of a corpus."""
    env = lmdb.open(path or tempfile.mkdtemp(prefix="idx-"), map_size=map_size)
    return env


def open_log(path=os.devnull):
    return open(path, "a")


def iter_records(lines):
    """Split tab-separated lines lazily."""
    for line in lines:
        yield line.rstrip("\n").split("\t")


def load_vocab(words=(PAD, UNK, "the", "a")):
    return {w: i for i, w in enumerate(words)}


def connect(path=":memory:"):
    conn = sqlite3.connect(path)
    conn.execute("create table if not exists docs (id integer primary key, text text)")
    conn.executemany("insert into docs (text) values (?)", [("hello world",), ("good bye",)])
    return conn


def make_logger(name):
    return logging.getLogger(f"mlkit.data.{name}")


def scratch_dir():
    return tempfile.TemporaryDirectory(prefix="mlkit-")
