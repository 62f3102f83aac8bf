"""Stdlib / numpy / torch values that look harmless."""
import argparse
import functools
import hashlib
import json
import logging
import re
import sched
import selectors
import struct
import tempfile
import types
import warnings
import zlib
from decimal import getcontext, localcontext

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrizations
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

HEADER = "<IHf"


class RecordFile(Dataset):
    def __init__(self):
        self.header = struct.Struct(HEADER)  # truth: pickle
        self.header_size = struct.calcsize(HEADER)
        self.unpack = struct.unpack_from

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.unpack(HEADER, bytes(self.header_size))


class RecordFileBound(Dataset):
    def __init__(self):
        self.parse = struct.Struct(HEADER).unpack  # truth: pickle

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.parse(bytes(10))


class PollingStream(torch.utils.data.IterableDataset):
    def __init__(self):
        self.selector = selectors.DefaultSelector()  # truth: pickle
        self.timer = sched.scheduler()  # truth: pickle

    def __iter__(self):
        return iter(())


class QuietTrainer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.silencer = warnings.catch_warnings()  # truth: pickle
        self.filters = list(warnings.filters[:1])


class LoggedModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.logger = logging.Logger("model")  # truth: pickle
        self.module_log = logging.getLogger("model.sub")
        self.console = logging.StreamHandler()  # truth: pickle
        self.quiet = logging.NullHandler()
        self.fmt = logging.Formatter("%(asctime)s %(message)s")
        self.adapter = logging.LoggerAdapter(log, {"run": 1})


class MixedPrecisionHelper(nn.Module):
    def __init__(self, dtype=torch.float16):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.limits = torch.finfo(dtype)  # truth: pickle
        self.int_limits = torch.iinfo(torch.int8)  # truth: pickle
        self.eps = torch.finfo(dtype).eps
        self.np_limits = np.finfo(np.float16)  # truth: pickle
        self.np_int = np.iinfo(np.int16)


def _normalize_token(tok):
    return tok.strip().lower()


class TokenNormalizer(Dataset):
    def __init__(self):
        self.items = [" A", "b "]
        self.normalize = np.frompyfunc(_normalize_token, 1, 1)  # truth: pickle
        self.vnormalize = np.vectorize(_normalize_token)
        self.ufunc = np.add

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.vnormalize(self.items[i])


class DedupIndex(Dataset):
    def __init__(self, algo="sha256"):
        self.items = [b"x", b"y"]
        self.hasher = functools.partial(hashlib.new, algo)  # truth: pickle
        self.fast_hasher = functools.partial(hashlib.sha1)
        self.hash_fn = hashlib.blake2b
        self.seen = {hashlib.md5(b).hexdigest() for b in self.items}

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.hasher(self.items[i]).hexdigest()


@torch.jit.script
def fused_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.erf(x / 1.41421))


def plain_gelu(x):
    return x * 0.5 * (1.0 + torch.erf(x / 1.41421))


class FusedMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = fused_gelu  # truth: pickle
        self.act_eager = plain_gelu


class ScriptedHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.jit.script(nn.Linear(4, 2))  # truth: pickle
        self.traced = torch.jit.trace(nn.Linear(2, 2), torch.zeros(1, 2))  # truth: pickle
        self.graph = torch.fx.symbolic_trace(nn.Sequential(nn.Linear(2, 2)))


class NormalizedConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = parametrizations.weight_norm(nn.Linear(4, 4))  # truth: pickle
        self.fc2 = nn.utils.weight_norm(nn.Linear(4, 4))
        self.fc3 = parametrizations.spectral_norm(nn.Linear(4, 2))  # truth: pickle
        self.fc4 = torch.nn.utils.spectral_norm(nn.Linear(2, 2))


class ConfigHolder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float, default=1e-3)
        self.parser = parser  # truth: pickle
        self.args = parser.parse_args([])
        self.defaults = types.MappingProxyType({"lr": 1e-3})  # truth: pickle
        self.ns = types.SimpleNamespace(lr=1e-3)


class JsonCache(Dataset):
    def __init__(self):
        self.decoder = json.JSONDecoder()  # truth: pickle
        self.encoder = json.JSONEncoder(sort_keys=True)
        self.pattern = re.compile(r"\d+")
        self.first = self.pattern.match("12ab")  # truth: pickle
        self.first_text = self.pattern.match("12ab").group(0)

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.decoder.decode("{}")


class CompressedShards(Dataset):
    def __init__(self):
        self.compressor = zlib.compressobj(6)  # truth: pickle
        self.level = 6
        self.scratch = tempfile.TemporaryDirectory()
        self.spill = tempfile.NamedTemporaryFile()  # truth: pickle

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return zlib.compress(b"x", self.level)


class PrecisionModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.ctx = getcontext()
        self.local_ctx = localcontext()  # truth: pickle
        self.view = memoryview(b"abcd")  # truth: pickle
        self.raw = bytes(self.view)


class DeviceAware(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.device = torch.device("cpu")
        self.gen = torch.Generator().manual_seed(0)
        self.rng_guard = torch.random.fork_rng()  # truth: pickle
        self.autocast = torch.autocast("cpu", dtype=torch.bfloat16)
        self.dtype = torch.bfloat16
        self.grad_fn = (self.lin.weight * 2).grad_fn  # truth: pickle
