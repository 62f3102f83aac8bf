"""CKPT010 weights-only: values the default load refuses that are no instance of a data class —
a `range`, a `slice`, a numpy dtype (`arr.dtype`), a type saved as a value (`np.float32`,
`float`), the module an `AveragedModel` wraps (`ema.module`) — and a helper's `dict(k=v)` result
read by key (`run["scaler"]`). VALID and INVALID."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import argparse
import collections
import copy
import datetime
from types import SimpleNamespace
from collections import OrderedDict
import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def train():
    net = nn.Linear(2, 2)
    ema = AveragedModel(net)
    scaler = torch.amp.GradScaler("cpu")
    gen = torch.Generator().manual_seed(0)
    started = datetime.datetime.now()
    return dict(net=net, ema=ema, scaler=scaler, gen=gen, steps=3,
                elapsed=datetime.datetime.now() - started)


def stats():
    return OrderedDict(mean=np.mean([1.0, 2.0]), n=2)


"""

REGISTRY = (
    "MODELS = {}\n"
    "def register(name):\n"
    "    def deco(cls):\n        MODELS[name] = cls\n        return cls\n    return deco\n"
    '@register("small")\nclass Small(nn.Module):\n    pass\n'
    '@register("large")\nclass Large(nn.Module):\n    pass\n'
)

INVALID = [
    (
        "a class picked from a registry its decorator fills",
        REGISTRY + 'def save(p, name="small"):\n    torch.save({"cls": MODELS[name]}, p)\n',
        [(14, "cls")],
    ),
    (
        "a class picked from a registry display",
        'ACTS = {"relu": nn.ReLU, "gelu": nn.GELU}\n'
        'def save(p, name="relu"):\n    torch.save({"act": ACTS[name]}, p)\n',
        [(3, "act")],
    ),
    (
        "counts of a confusion matrix unpacked, a fraction over an array's size",
        "def save(p):\n    cm = np.array([[3, 1], [2, 4]])\n    tn, fp, fn, tp = cm.ravel()\n"
        "    lo, hi = np.percentile(np.arange(10.0), [5, 95])\n"
        '    torch.save({"iou": tp / max(tp + fp + fn, 1), "lo": lo, "ratio": cm.sum() / cm.size}, p)\n',
        [(5, "iou"), (5, "lo"), (5, "ratio")],
    ),
    (
        "library functions read, not called",
        "import math\nimport torch.nn.functional as F\n"
        'def save(p):\n    torch.save({"loss": F.l1_loss, "agg": math.sqrt}, p)\n',
        [(4, "loss"), (4, "agg")],
    ),
    (
        "an EMA copy frozen in place, a network address, a Pillow filter",
        "import ipaddress\nfrom PIL import Image\n"
        "def save(p):\n    ema = copy.deepcopy(nn.Linear(2, 2)).requires_grad_(False)\n"
        '    net = ipaddress.ip_network("10.0.0.0/16")\n'
        '    torch.save({"ema": ema, "net": net, "resample": Image.Resampling.BICUBIC}, p)\n',
        [(6, "ema"), (6, "net"), (6, "resample")],
    ),
    (
        "an assignment's pairs and a cluster count from scipy",
        "from scipy.optimize import linear_sum_assignment\n"
        "from scipy.cluster.hierarchy import fcluster, linkage\n"
        "def save(p):\n    rows, cols = linear_sum_assignment(-np.eye(3))\n"
        "    x = np.arange(10.0).reshape(5, 2)\n"
        "    clusters = fcluster(linkage(x, 'average'), t=2.0, criterion='distance')\n"
        '    torch.save({"map": list(zip(rows, cols)), "k": clusters.max()}, p)\n',
        [(7, "map"), (7, "k")],
    ),
    (
        "an item of a dataclass field's tuple of Enum members",
        "import dataclasses, enum\n"
        "class Kind(enum.Enum):\n    NOISE = 'noise'\n    BLUR = 'blur'\n"
        "@dataclasses.dataclass\nclass Config:\n    kinds: tuple = (Kind.NOISE, Kind.BLUR)\n"
        'def save(p):\n    torch.save({"first": Config().kinds[0]}, p)\n',
        [(9, "first")],
    ),
    (
        "the mean of cross-validation scores",
        "from sklearn.linear_model import Ridge\nfrom sklearn.model_selection import cross_val_score\n"
        "def save(p):\n"
        "    cv = cross_val_score(Ridge(), np.arange(12.0).reshape(6, 2), np.arange(6.0), cv=3)\n"
        '    torch.save({"cv": cv.mean(), "scores": cv}, p)\n',
        [(5, "cv"), (5, "scores")],
    ),
    (
        "a t-test's p-value from a helper, and the parameters of an optimizer's result",
        "from scipy import optimize, stats\n"
        "def summary(a, b):\n    t, p = stats.ttest_ind(b, a, equal_var=False)\n"
        '    return {"t": t, "p": p, "n": len(a)}\n'
        "def save(path):\n    rev = summary(np.ones(4), np.arange(4.0))\n"
        "    res = optimize.minimize(lambda t: float(t[0] ** 2 + t[1] ** 2), x0=np.array([0.3, 0.1]))\n"
        "    beta, gamma = res.x\n"
        '    torch.save({"p": rev["p"], "significant": rev["p"] < 0.05, "r0": beta / gamma}, path)\n',
        [(9, "p"), (9, "significant"), (9, "r0")],
    ),
    (
        "records of a module-level namedtuple sorted by a field",
        "from collections import namedtuple\n"
        "Segment = namedtuple('Segment', ['start', 'end'])\n"
        "def segments(n):\n    found = []\n    for i in range(n):\n"
        "        found.append(Segment(float(i), float(i + 1)))\n"
        "    return sorted(found, key=lambda s: s.start)\n"
        'def save(p):\n    torch.save({"segments": segments(3)}, p)\n',
        [(9, "segments")],
    ),
    ("a range", 'def save(p):\n    torch.save({"steps": range(0, 4)}, p)\n', [(2, "steps")]),
    ("a slice", 'def save(p):\n    torch.save({"window": slice(2, 8)}, p)\n', [(2, "window")]),
    (
        "an array's dtype",
        'def save(p):\n    a = np.arange(3.0)\n    torch.save({"dtype": a.dtype}, p)\n',
        [(3, "dtype")],
    ),
    (
        "a converted array's dtype",
        "def save(p):\n"
        "    a = np.ones(3)\n"
        '    torch.save({"dtype": a.astype(np.float32).dtype}, p)\n',
        [(3, "dtype")],
    ),
    (
        "a numpy scalar's dtype",
        'def save(p):\n    m = np.mean([1.0])\n    torch.save({"dtype": m.dtype}, p)\n',
        [(3, "dtype")],
    ),
    (
        "a pandas column's dtype",
        'def save(p):\n    df = pd.DataFrame({"a": [1.5]})\n    torch.save({"d": df["a"].dtype}, p)\n',
        [(3, "d")],
    ),
    ("a numpy type", 'def save(p):\n    torch.save({"dtype": np.float32}, p)\n', [(2, "dtype")]),
    ("a builtin type", 'def save(p):\n    torch.save({"cast": float}, p)\n', [(2, "cast")]),
    (
        "the module an AveragedModel wraps",
        "def save(p):\n    ema = AveragedModel(nn.Linear(2, 2))\n    torch.save(ema.module, p)\n",
        [(3, None)],
    ),
    (
        "a helper's dict(k=v) read by key",
        "def save(p):\n"
        "    run = train()\n"
        "    torch.save({\n"
        '        "scaler": run["scaler"],\n'
        '        "gen": run["gen"],\n'
        '        "elapsed": run["elapsed"],\n'
        "    }, p)\n",
        [(4, "scaler"), (5, "gen"), (6, "elapsed")],
    ),
    (
        "the module of a helper's AveragedModel",
        'def save(p):\n    run = train()\n    torch.save(run["ema"].module, p)\n',
        [(3, None)],
    ),
    (
        "a helper's OrderedDict(k=v) read by key",
        'def save(p):\n    s = stats()\n    torch.save({"mean": s["mean"]}, p)\n',
        [(3, "mean")],
    ),
    (
        "a local dict(k=v) read by key",
        'def save(p):\n    held = dict(a=np.arange(3), b=1)\n    torch.save({"a": held["a"]}, p)\n',
        [(3, "a")],
    ),
]

INVALID += [
    (
        "the module DistributedDataParallel wraps",
        "from torch.nn.parallel import DistributedDataParallel as DDP\n"
        "def save(p):\n"
        "    ddp = DDP(nn.Linear(2, 2))\n"
        "    torch.save(ddp.module, p)\n",
        [(4, None)],
    ),
]

INVALID += [
    (
        "a clustering's fitted arrays and a pipeline",
        "from sklearn.cluster import KMeans\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "def save(p, x):\n"
        "    km = KMeans(2).fit(x)\n"
        '    torch.save({"c": km.cluster_centers_, "l": km.labels_, "y": km.predict(x),\n'
        '                "pipe": make_pipeline(StandardScaler())}, p)\n',
        [(6, "c"), (6, "l"), (6, "y"), (7, "pipe")],
    ),
    (
        "a numpy datetime, a difference of two and a compiled pattern",
        "import re\n"
        "def save(p):\n"
        '    t0 = np.datetime64("2024-01-01")\n'
        '    t1 = np.datetime64("2024-01-02")\n'
        '    torch.save({"t": t0, "d": t1 - t0, "r": re.compile("a+")}, p)\n',
        [(5, "t"), (5, "d"), (5, "r")],
    ),
    (
        "names a function imports itself",
        "def save(p):\n"
        "    import numpy\n"
        "    from pathlib import PurePosixPath as Posix\n"
        '    torch.save({"m": numpy.float64(1.0), "p": Posix("x")}, p)\n',
        [(4, "m"), (4, "p")],
    ),
]

INVALID += [
    (
        "the state_dict method saved with its call forgotten, of a module and an optimizer",
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(2, 2)\n"
        "def save(p):\n    net = Net()\n    opt = torch.optim.SGD(net.parameters(), lr=0.1)\n"
        '    torch.save({"model": net.state_dict, "opt": opt.state_dict,'
        ' "ema": train()["ema"].state_dict}, p)\n',
        [(8, "model"), (8, "opt"), (8, "ema")],
    ),
]

INVALID += [
    (
        "max of a running best started at a constant, and an array compared with a min of a "
        "cap: numpy",
        "def save(p):\n    parser = argparse.ArgumentParser()\n"
        '    parser.add_argument("--cap", type=float, default=0.9)\n'
        "    args = parser.parse_args([])\n"
        "    conf = np.asarray([0.2, 0.8, 0.95])\n"
        "    best = 0.5\n    best = max(best, conf.max())\n"
        "    keep = conf >= min(np.quantile(conf, 0.5), args.cap)\n"
        '    torch.save({"best": best, "kept": keep.mean()}, p)\n',
        [(9, "best"), (9, "kept")],
    ),
]

INVALID += [
    (
        "an array compared with an Enum member or a string, counted",
        "import enum\nclass Stage(enum.IntEnum):\n    W = 0\n    N1 = 1\n"
        "def save(p):\n    stages = np.asarray([0, 1, 1, 0])\n"
        "    labels = np.asarray(['a', 'noise'])\n"
        '    torch.save({"waso": (stages == Stage.W).sum() * 30 / 60.0,'
        ' "kept": (labels != "noise").mean()}, p)\n',
        [(8, "waso"), (8, "kept")],
    ),
]

INVALID += [
    (
        "an encoder's categories, fitted here and kept on an object",
        "from sklearn.preprocessing import OneHotEncoder\n"
        "class Pipe:\n    def __init__(self):\n"
        "        self.onehot = OneHotEncoder(handle_unknown='ignore')\n"
        "    def fit(self, rows):\n        self.onehot.fit(rows)\n        return self\n"
        "def save(p):\n    rows = [['a'], ['b']]\n    enc = OneHotEncoder().fit(rows)\n"
        "    pipe = Pipe().fit(rows)\n"
        '    torch.save({"cats": enc.categories_, "piped": pipe.onehot.categories_}, p)\n',
        [(12, "cats"), (12, "piped")],
    ),
]

INVALID += [
    (
        "a reduction of a ufunc's result over an array (an array, not a scalar)",
        "def errors(n=6):\n    rng = np.random.default_rng(1)\n"
        "    theo = rng.uniform(400, 1600, n)\n"
        "    return (theo * (1 + rng.normal(2e-6, 3e-6, n)) - theo) / theo * 1e6\n"
        'def save(p):\n    torch.save({"tol": 3 * np.abs(errors()).std(),'
        ' "rms": np.sqrt(np.square(errors())).mean()}, p)\n',
        [(6, "tol"), (6, "rms")],
    ),
]

INVALID += [
    (
        "time zones: `timezone.utc`, a fixed offset and a ZoneInfo",
        "from zoneinfo import ZoneInfo\n"
        "def save(p, name):\n"
        "    tz = ZoneInfo(name)\n"
        '    torch.save({"utc": datetime.timezone.utc, "tz": tz,'
        ' "fixed": datetime.timezone(datetime.timedelta(hours=1))}, p)\n',
        [(4, "utc"), (4, "tz"), (4, "fixed")],
    ),
    (
        "a numpy array divided by a value of no known kind (a Counter's total)",
        "def save(p, seqs):\n    counts = collections.Counter(''.join(seqs))\n"
        "    total = sum(counts.values())\n"
        '    torch.save({"bg": np.array([counts[a] for a in "ACD"]) / total}, p)\n',
        [(4, "bg")],
    ),
    (
        "a torchmetrics metric saved whole (an nn.Module), by its package or its subpackage",
        "import torchmetrics\nfrom torchmetrics.classification import BinaryAUROC\n"
        "def save(p):\n    auroc = BinaryAUROC()\n"
        '    torch.save({"auroc": auroc, "f1": torchmetrics.F1Score(task="binary")}, p)\n',
        [(5, "auroc"), (5, "f1")],
    ),
    (
        "an array compared item by item with a parameter, its mean, and the mean of those",
        "def predict(m, x):\n    return m(torch.from_numpy(x)).argmax(-1).numpy()\n"
        "def save(p, m, xs, labels):\n"
        "    accs = [(predict(m, x) == labels).mean() for x in xs]\n"
        '    torch.save({"acc": sum(accs) / len(accs), "hit": predict(m, xs[0]) >= labels}, p)\n',
        [(5, "acc"), (5, "hit")],
    ),
    (
        "a slice of a reduction that kept a stack's axes (no numpy scalar slices), its mean",
        "def jacobian_det(j):\n    return np.linalg.det(np.moveaxis(j, (0, 1), (-2, -1)))[1:-1, 1:-1]\n"
        "def save(p):\n    jac = jacobian_det(np.ones((3, 3, 5, 5)))\n"
        '    torch.save({"jac": jac, "folding": (jac <= 0).mean()}, p)\n',
        [(5, "jac"), (5, "folding")],
    ),
    (
        "a fitted pipeline's steps and a column transformer's parts, looked up by name",
        "from sklearn.compose import ColumnTransformer\nfrom sklearn.pipeline import Pipeline\n"
        "from sklearn.preprocessing import OneHotEncoder, StandardScaler\n"
        "def save(p, df):\n"
        '    pre = ColumnTransformer([("num", StandardScaler(), ["a"]), ("cat", OneHotEncoder(), ["c"])])\n'
        "    pre.fit(df)\n"
        '    pipe = Pipeline([("s", StandardScaler())]).fit(df[["a"]])\n'
        '    torch.save({"cats": pre.named_transformers_["cat"].categories_,'
        ' "mean": pipe.named_steps["s"].mean_, "steps": pipe.named_steps}, p)\n',
        [(8, "cats"), (8, "mean"), (8, "steps")],
    ),
    (
        "a module-level set of dates and tuple of numpy values the module never changes",
        "HOLIDAYS = {datetime.date(2024, 3, 29), datetime.date(2024, 4, 1)}\n"
        "SCALES = (np.float32(0.5), np.float32(2.0))\n"
        'def save(p):\n    torch.save({"holidays": HOLIDAYS, "scales": SCALES}, p)\n',
        [(4, "holidays"), (4, "scales")],
    ),
    (
        "scipy.ndimage's measurements of labelled regions: sums, centres and boxes",
        "from scipy import ndimage\n"
        "def save(p):\n    mask = np.eye(6, dtype=int)\n    labels, n = ndimage.label(mask)\n"
        "    areas = ndimage.sum_labels(mask, labels, index=range(1, n + 1))\n"
        '    torch.save({"areas": areas, "centres": ndimage.center_of_mass(mask, labels, [1]),'
        ' "boxes": ndimage.find_objects(labels), "n": n}, p)\n',
        [(6, "areas"), (6, "centres"), (6, "boxes")],
    ),
    (
        "a duration times or over a number is a duration",
        "def save(p, z):\n    start = datetime.datetime(2024, 1, 1)\n"
        '    torch.save({"w": datetime.timedelta(minutes=5) * len(z),'
        ' "h": 3 * datetime.timedelta(hours=1), "d": (datetime.datetime.now() - start) / 2}, p)\n',
        [(3, "w"), (3, "h"), (3, "d")],
    ),
    (
        "the index pairs `zip(*np.nonzero(mask))` gives, as a list",
        "def save(p):\n    mask = np.eye(3)\n"
        '    torch.save({"points": list(zip(*np.nonzero(mask > 0)))}, p)\n',
        [(3, "points")],
    ),
]

INVALID += [
    (
        "sklearn's stop words, a struct_time, a uname result and a date parsed from text",
        "import platform, time\n"
        "from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS\n"
        'def save(p, cutoff="2024-03-01"):\n'
        '    torch.save({"sw": ENGLISH_STOP_WORDS, "t": time.localtime(), "u": platform.uname(),'
        ' "d": datetime.date.fromisoformat(cutoff)}, p)\n',
        [(4, "sw"), (4, "t"), (4, "u"), (4, "d")],
    ),
    (
        "the value counts of a column of a frame the function is given",
        "def save(p, df):\n"
        '    torch.save({"counts": df["disposition"].value_counts(),'
        ' "plain": df["disposition"].value_counts().to_dict()}, p)\n',
        [(2, "counts")],
    ),
    (
        "a scipy sparse matrix, a networkx graph, a distribution's quantile, an Index's slice",
        "import networkx as nx\nimport scipy.sparse as sp\nfrom scipy.stats import chi2\n"
        "def save(p, df, dof):\n"
        '    counts = df["track"].value_counts()\n'
        '    torch.save({"y": sp.csr_matrix(np.eye(3)), "g": nx.from_pandas_edgelist(df, "f", "t"),'
        ' "thr": chi2.ppf(0.95, dof), "top": counts.index[:20]}, p)\n',
        [(6, "y"), (6, "g"), (6, "thr"), (6, "top")],
    ),
    (
        "a Python float metric divided by a numpy value; a metric's per-class array",
        "from sklearn.metrics import f1_score, log_loss\n"
        "def save(p, y, prob):\n"
        "    ne = log_loss(y, prob) / np.log(2.0)\n"
        '    torch.save({"ne": ne, "ne4": round(ne, 4),'
        ' "f1": f1_score(y, prob > 0.5, average=None) * 100}, p)\n',
        [(4, "ne"), (4, "ne4"), (4, "f1")],
    ),
    (
        "arrays `np.r_` and `np.c_` build, and an item of one's complex phasors",
        "def solve(n):\n    x = np.r_[np.zeros(n - 1), np.ones(n)]\n"
        '    return {"va": np.r_[0.0, x[: n - 1]], "vm": x[n - 1 :]}\n'
        "def save(p, slack=0):\n    result = solve(4)\n"
        '    v = result["vm"] * np.exp(1j * result["va"])\n'
        '    torch.save({"slack": v[slack], "vm": result["vm"], "c": np.c_[v, v]}, p)\n',
        [(7, "slack"), (7, "vm"), (7, "c")],
    ),
    (
        "library and builtin functions read as values, and an item of a table of them",
        "POOLING = {'sum': torch.sum, 'mean': torch.mean}\n"
        "def save(p, readout='sum'):\n"
        "    torch.save({'pool': POOLING[readout], 'reduce': np.mean, 'norm': str.lower,"
        " 'key': len}, p)\n",
        [(3, "pool"), (3, "reduce"), (3, "norm"), (3, "key")],
    ),
    (
        "an item of a table that a decorator taking the table fills with functions",
        "REWARDS = {}\n"
        "def register(table, name):\n"
        "    def deco(fn):\n        table[name] = fn\n        return fn\n    return deco\n"
        "@register(REWARDS, 'progress')\ndef progress(prev, cur):\n    return prev - cur\n"
        "def save(p, reward='progress'):\n"
        "    torch.save({'reward_fn': REWARDS[reward]}, p)\n",
        [(11, "reward_fn")],
    ),
    (
        "a section of a YAML document whose every section is a mapping, by a key not known",
        "from omegaconf import OmegaConf\n"
        'DOC = """\ndrone:\n  lr: 0.1\nprecip:\n  scale: 4\n"""\n'
        "def load(task):\n    return OmegaConf.create(DOC)[task]\n"
        "def save(p, task='drone'):\n    torch.save({'cfg': load(task)}, p)\n",
        [(11, "cfg")],
    ),
    (
        "the class of a model, saved to rebuild it",
        "def save(p):\n    model = nn.Linear(2, 2)\n"
        "    torch.save({'state': model.state_dict(), 'model_class': type(model)}, p)\n",
        [(3, "model_class")],
    ),
    (
        "a list in the YAML text a table holds under the task name a call passes",
        "from omegaconf import OmegaConf\n"
        'TASKS = {"nowcast": """\n  loss: {name: bmse, weights: [1.0, 2.0]}\n""",\n'
        '         "news": """\n  loss: {name: ce, weights: 1.0}\n"""}\n'
        "def task_config(task):\n    return OmegaConf.create(TASKS[task])\n"
        "def save(p):\n"
        "    torch.save({'w': task_config('nowcast').loss.weights}, p)\n",
        [(11, "w")],
    ),
    (
        "a filter's coefficients through a helper's tuple, and a RandomState's draws",
        "import scipy.signal\n"
        "def highpass(cutoff=80.0):\n"
        "    b, a = scipy.signal.butter(4, cutoff / 8000.0, btype='highpass')\n"
        "    return b, a\n"
        "def save(p):\n    b, a = highpass()\n    rs = np.random.RandomState(3)\n"
        "    bank = rs.randn(4, 8).astype(np.float32)\n"
        "    front = {}\n    front['b'] = b\n"
        "    torch.save({**front, 'dtype': bank.dtype, 'noise': rs.rand(3),"
        " 'draw': rs.rand()}, p)\n",
        [(10, "b"), (11, "dtype"), (11, "noise")],
    ),
    (
        "a `type=Path` argument whose default is a path expression",
        "from pathlib import Path\n"
        "ROOT = Path(__file__).resolve().parent / 'data'\n"
        "def parse_args(argv=None):\n"
        "    p = argparse.ArgumentParser()\n"
        "    p.add_argument('--noise-dir', type=Path, default=Path('data') / 'noise')\n"
        "    p.add_argument('--root', type=Path, default=ROOT)\n"
        "    p.add_argument('--home', type=Path, default=Path.home() / 'cache')\n"
        "    return p.parse_args(argv)\n"
        "def save(p):\n    args = parse_args([])\n"
        "    torch.save({'noise_dir': args.noise_dir, 'root': args.root,"
        " 'home': args.home}, p)\n",
        [(11, "noise_dir"), (11, "root"), (11, "home")],
    ),
    (
        "sums, products and comparisons of scipy sparse matrices; a filter a helper returns",
        "import scipy.sparse as sp\nimport scipy.signal\nimport scipy.stats\n"
        "def laplacian(adj):\n    a = sp.coo_matrix(adj)\n"
        "    d = np.asarray(a.sum(1)).flatten()\n"
        "    return (sp.eye(adj.shape[0]) - sp.diags(d) @ a @ sp.diags(d)).tocoo()\n"
        "def bandpass(order):\n"
        "    return scipy.signal.butter(order, [0.1, 0.3], btype='bandpass')\n"
        "def save(p, adj):\n    a = sp.csr_matrix(adj)\n    b, den = bandpass(4)\n"
        "    torch.save({'lap': laplacian(adj), 'mask': (a + a.T) > 0, 'scaled': 0.5 * a,"
        " 'ba': (b, den), 'kurt': scipy.stats.kurtosis(np.ones(4))}, p)\n",
        [(13, "lap"), (13, "mask"), (13, "scaled"), (13, "ba"), (13, "kurt")],
    ),
]

VALID = [
    (
        "a torchmetrics metric's value and state dict",
        "from torchmetrics.classification import BinaryAUROC\n"
        "def save(p):\n    auroc = BinaryAUROC()\n"
        "    auroc.update(torch.tensor([0.2, 0.8]), torch.tensor([0, 1]))\n"
        '    torch.save({"auroc": auroc.compute(), "state": auroc.state_dict()}, p)\n',
    ),
    (
        "membership in an array is a bool, and a compared array's mean made a float",
        "def predict(m, x):\n    return m(torch.from_numpy(x)).argmax(-1).numpy()\n"
        "def save(p, m, xs, labels, k):\n    pred = predict(m, xs[0])\n"
        '    torch.save({"seen": k in pred, "none": pred is None,'
        ' "acc": float((pred == labels).mean())}, p)\n',
    ),
    (
        "a column transformer's categories and a step's mean as lists",
        "from sklearn.compose import ColumnTransformer\nfrom sklearn.pipeline import Pipeline\n"
        "from sklearn.preprocessing import OneHotEncoder, StandardScaler\n"
        "def save(p, df):\n"
        '    pre = ColumnTransformer([("num", StandardScaler(), ["a"]), ("cat", OneHotEncoder(), ["c"])])\n'
        "    pre.fit(df)\n"
        '    pipe = Pipeline([("s", StandardScaler())]).fit(df[["a"]])\n'
        '    torch.save({"cats": [c.tolist() for c in pre.named_transformers_["cat"].categories_],'
        ' "mean": pipe.named_steps["s"].mean_.tolist()}, p)\n',
    ),
    (
        "a slice of each item of an array of strings is a str",
        "def save(p):\n    labels = np.array(['B-PER', 'I-LOC', 'O'])\n"
        '    torch.save({"types": {label[2:] for label in labels if label != "O"}}, p)\n',
    ),
    (
        "module-level dates as text, a list of names, and a set the module empties first",
        "HOLIDAYS = {datetime.date(2024, 3, 29)}\nNAMES = ['a', 'b']\nSEEN = {datetime.date(2024, 1, 1)}\n"
        "SEEN.clear()\n"
        "def save(p):\n"
        '    torch.save({"h": sorted(d.isoformat() for d in HOLIDAYS), "n": NAMES, "s": SEEN}, p)\n',
    ),
    (
        "scipy.ndimage's measurements as Python numbers",
        "from scipy import ndimage\n"
        "def save(p):\n    mask = np.eye(6, dtype=int)\n    labels, n = ndimage.label(mask)\n"
        "    areas = ndimage.sum_labels(mask, labels, index=range(1, n + 1))\n"
        "    centres = ndimage.center_of_mass(mask, labels, [1])\n"
        '    torch.save({"areas": areas.tolist(), "centres": [tuple(float(v) for v in c) for c in centres],'
        ' "n_boxes": len(ndimage.find_objects(labels))}, p)\n',
    ),
    (
        "a duration over a duration is a float; a scaled one in seconds",
        "def save(p, z):\n    start = datetime.datetime(2024, 1, 1)\n"
        '    torch.save({"r": (datetime.datetime.now() - start) / datetime.timedelta(seconds=1),'
        ' "s": (datetime.timedelta(minutes=5) * len(z)).total_seconds()}, p)\n',
    ),
    (
        "a sliced reduction's mean made a Python float",
        "def jacobian_det(j):\n    return np.linalg.det(np.moveaxis(j, (0, 1), (-2, -1)))[1:-1, 1:-1]\n"
        "def save(p):\n    jac = jacobian_det(np.ones((3, 3, 5, 5)))\n"
        '    torch.save({"folding": float((jac <= 0).mean()), "jac": jac.tolist()}, p)\n',
    ),
    (
        "a numpy array over a tensor is a tensor; over a Counter's total, as a list",
        "def save(p, seqs, w):\n    counts = collections.Counter(''.join(seqs))\n"
        "    total = sum(counts.values())\n    bg = np.array([counts[a] for a in 'ACD'])\n"
        '    torch.save({"t": bg / torch.tensor(2.0), "f": bg / w.float(),'
        ' "bg": (bg / total).tolist()}, p)\n',
    ),
    (
        "a time zone's name, and the index pairs as Python ints",
        "from zoneinfo import ZoneInfo\n"
        "def save(p, name):\n    mask = np.eye(3)\n"
        '    torch.save({"tz": str(ZoneInfo(name)), "utc": str(datetime.timezone.utc),'
        ' "points": [(int(r), int(c)) for r, c in zip(*np.nonzero(mask))]}, p)\n',
    ),
    (
        "the phasors of an array `np.r_` builds as Python complex numbers, and as a list",
        "def save(p):\n    x = np.r_[0.0, np.ones(3)]\n    v = x * np.exp(1j * x)\n"
        '    torch.save({"phasors": [complex(z) for z in v], "x": np.r_[0.0, x].tolist()}, p)\n',
    ),
    (
        "metrics that are Python floats, alone, scaled, rounded, and the best of them",
        "from sklearn.metrics import f1_score, log_loss\n"
        "def save(p, y, prob):\n"
        "    f1 = f1_score(y, prob > 0.5)\n"
        '    torch.save({"f1": f1, "pct": round(f1 * 100, 2), "ll": log_loss(y, prob) / 2,'
        ' "best": max(f1, 0.5)}, p)\n',
    ),
    (
        "a sparse matrix's dense tensor, a graph's edges, a quantile made a float, an Index's "
        "first label and its slice listed",
        "import networkx as nx\nimport scipy.sparse as sp\nfrom scipy.stats import chi2\n"
        "def save(p, df, dof):\n"
        '    counts = df["track"].value_counts()\n'
        '    g = nx.from_pandas_edgelist(df, "f", "t")\n'
        '    torch.save({"y": torch.from_numpy(sp.csr_matrix(np.eye(3)).toarray()),'
        ' "e": sorted(g.edges()), "thr": float(chi2.ppf(0.95, dof)), "first": counts.index[0],'
        ' "top": counts.index[:20].tolist()}, p)\n',
    ),
    (
        "stop words sorted, a struct_time's timestamp, a uname's dict, a date's text",
        "import platform, time\n"
        "from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS\n"
        'def save(p, cutoff="2024-03-01"):\n'
        '    torch.save({"sw": sorted(ENGLISH_STOP_WORDS), "t": time.mktime(time.localtime()),'
        ' "u": platform.uname()._asdict(),'
        ' "d": datetime.date.fromisoformat(cutoff).isoformat()}, p)\n',
    ),
    (
        "an encoder's categories as lists",
        "from sklearn.preprocessing import OneHotEncoder\n"
        "def save(p):\n    enc = OneHotEncoder().fit([['a'], ['b']])\n"
        '    torch.save({"cats": [c.tolist() for c in enc.categories_]}, p)\n',
    ),
    (
        "a numpy scalar compared with a plain Enum member is a Python bool",
        "import enum\nclass Mode(enum.Enum):\n    A = 1\n"
        "def save(p):\n    top = np.int64(3)\n"
        '    torch.save({"is_a": top == Mode.A}, p)\n',
    ),
    (
        "min of a configured cap and a numpy rate is whichever is smaller (here the cap)",
        "def save(p):\n    parser = argparse.ArgumentParser()\n"
        '    parser.add_argument("--cap", type=float, default=0.35)\n'
        "    args = parser.parse_args([])\n"
        "    rate = np.mean([0.5, 0.7])\n"
        '    torch.save({"target": min(args.cap, rate)}, p)\n',
    ),
    (
        "state_dict called, or its method kept and called at the save",
        "def save(p):\n    net = nn.Linear(2, 2)\n    sd = net.state_dict\n"
        '    torch.save({"model": net.state_dict(), "m2": sd(),'
        ' "opt": torch.optim.SGD(net.parameters(), lr=0.1).state_dict()}, p)\n',
    ),
    (
        "a registry's key and a class's name saved, not the class",
        REGISTRY + 'def save(p, name="small"):\n'
        '    torch.save({"name": name, "cls": MODELS[name].__name__}, p)\n',
    ),
    (
        "a registry that also holds a number is no registry of classes",
        'ACTS = {"relu": nn.ReLU, "slope": 0.1}\n'
        'def save(p, name="slope"):\n    torch.save({"act": ACTS[name]}, p)\n',
    ),
    (
        "a helper's tuple of a float and arrays unpacked: the float loads",
        "def evaluate():\n    return 0.5, np.zeros((2, 2)), np.ones(2)\n"
        "def save(p):\n    f1, cm, per_class = evaluate()\n"
        '    torch.save({"f1": f1, "cm": cm.tolist(), "n": cm.size}, p)\n',
    ),
    (
        "a library function's name, math's constants, a function's result",
        "import math\nimport torch.nn.functional as F\n"
        "def save(p):\n"
        '    torch.save({"loss": F.l1_loss.__name__, "pi": math.pi, "r": math.sqrt(2.0)}, p)\n',
    ),
    (
        "an EMA copy's weights, an address and a filter as text",
        "import ipaddress\nfrom PIL import Image\n"
        "def save(p):\n    ema = copy.deepcopy(nn.Linear(2, 2)).requires_grad_(False)\n"
        '    net = ipaddress.ip_network("10.0.0.0/16")\n'
        '    torch.save({"ema": ema.state_dict(), "net": str(net), "f": Image.BICUBIC}, p)\n',
    ),
    (
        "an assignment's pairs and a cluster count as Python ints",
        "from scipy.optimize import linear_sum_assignment\n"
        "from scipy.cluster.hierarchy import fcluster, linkage\n"
        "def save(p):\n    rows, cols = linear_sum_assignment(-np.eye(3))\n"
        "    x = np.arange(10.0).reshape(5, 2)\n"
        "    clusters = fcluster(linkage(x, 'average'), t=2.0, criterion='distance')\n"
        "    pairs = [(int(r), int(c)) for r, c in zip(rows, cols)]\n"
        '    torch.save({"map": pairs, "k": int(clusters.max()), "n": len(set(clusters.tolist()))}, p)\n',
    ),
    (
        "the values of a dataclass field's tuple of Enum members",
        "import dataclasses, enum\n"
        "class Kind(enum.Enum):\n    NOISE = 'noise'\n    BLUR = 'blur'\n"
        "@dataclasses.dataclass\nclass Config:\n    kinds: tuple = (Kind.NOISE, Kind.BLUR)\n"
        'def save(p):\n    torch.save({"first": Config().kinds[0].value, "all": [k.value for k in Config().kinds]}, p)\n',
    ),
    (
        "cross-validation scores as a list and their mean as a float",
        "from sklearn.linear_model import Ridge\nfrom sklearn.model_selection import cross_val_score\n"
        "def save(p):\n"
        "    cv = cross_val_score(Ridge(), np.arange(12.0).reshape(6, 2), np.arange(6.0), cv=3)\n"
        '    torch.save({"cv": float(cv.mean()), "scores": cv.tolist()}, p)\n',
    ),
    (
        "a t-test's p-value and an optimizer's parameters as Python floats",
        "from scipy import optimize, stats\n"
        "def summary(a, b):\n    t, p = stats.ttest_ind(b, a, equal_var=False)\n"
        '    return {"t": t, "p": p, "n": len(a)}\n'
        "def save(path):\n    rev = summary(np.ones(4), np.arange(4.0))\n"
        "    res = optimize.minimize(lambda t: float(t[0] ** 2 + t[1] ** 2), x0=np.array([0.3, 0.1]))\n"
        "    beta, gamma = res.x\n"
        '    torch.save({"p": float(rev["p"]), "n": rev["n"], "r0": float(beta / gamma)}, path)\n',
    ),
    (
        "records sorted by a field, saved as tuples",
        "from collections import namedtuple\n"
        "Segment = namedtuple('Segment', ['start', 'end'])\n"
        "def segments(n):\n    found = []\n    for i in range(n):\n"
        "        found.append(Segment(float(i), float(i + 1)))\n"
        "    return sorted(found, key=lambda s: s.start)\n"
        'def save(p):\n    torch.save({"segments": [tuple(s) for s in segments(3)]}, p)\n',
    ),
    ("a list of a range", 'def save(p):\n    torch.save({"s": list(range(4))}, p)\n'),
    (
        "a dtype's name",
        'def save(p):\n    a = np.ones(3)\n    torch.save({"d": a.dtype.name}, p)\n',
    ),
    (
        "a dtype as a string",
        'def save(p):\n    a = np.ones(3)\n    torch.save({"d": str(a.dtype)}, p)\n',
    ),
    ("a torch dtype", 'def save(p):\n    torch.save({"d": torch.float32}, p)\n'),
    (
        "a tensor's dtype",
        'def save(p):\n    t = torch.ones(2)\n    torch.save({"d": t.dtype}, p)\n',
    ),
    (
        "what a fitted estimator gives that loads",
        "from sklearn.cluster import KMeans\n"
        "def save(p, x):\n"
        "    km = KMeans(2).fit(x)\n"
        '    torch.save({"i": km.inertia_, "c": km.cluster_centers_.tolist(),\n'
        '                "y": torch.from_numpy(km.predict(x))}, p)\n',
    ),
    (
        "a datetime's string and a pattern's source",
        "import re\n"
        "def save(p):\n"
        '    torch.save({"t": str(np.datetime64("2024-01-01")), "r": re.compile("a").pattern}, p)\n',
    ),
    ("a complex number type", 'def save(p):\n    torch.save({"c": complex}, p)\n'),
    ("the set type", 'def save(p):\n    torch.save({"c": set}, p)\n'),
    (
        "a loop over a range",
        'def save(p):\n    for i in range(3):\n        torch.save({"i": i}, p)\n',
    ),
    (
        "the wrapped module's weights",
        'def save(p):\n    run = train()\n    torch.save(run["ema"].module.state_dict(), p)\n',
    ),
    (
        "a helper's plain values read by key",
        "def save(p):\n"
        "    run = train()\n"
        '    torch.save({"steps": run["steps"], "s": run["elapsed"].total_seconds(),\n'
        '                "net": run["net"].state_dict(), "g": run["gen"].get_state()}, p)\n',
    ),
    (
        "a key the helper's dict may not hold as written",
        'def save(p):\n    s = stats()\n    torch.save({"n": s["n"], "m": float(s["mean"])}, p)\n',
    ),
    (
        "a key replaced before the save",
        "def save(p):\n"
        "    run = train()\n"
        '    run["scaler"] = run["scaler"].state_dict()\n'
        '    torch.save({"scaler": run["scaler"]}, p)\n',
    ),
    (
        "globals the default load allows, read as values: a dtype, set, Counter, a constant",
        "def save(p):\n"
        "    torch.save({'dtype': torch.float32, 'kind': set, 'counts': collections.Counter,"
        " 'fill': np.inf}, p)\n",
    ),
    (
        "an item of a table a decorator fills, when another statement stores a string in it",
        "REWARDS = {}\n"
        "def register(table, name):\n"
        "    def deco(fn):\n        table[name] = fn\n        return fn\n    return deco\n"
        "@register(REWARDS, 'progress')\ndef progress(prev, cur):\n    return prev - cur\n"
        "REWARDS['sparse'] = 'sparse'\n"
        "def save(p, reward='sparse'):\n"
        "    torch.save({'reward_fn': REWARDS[reward]}, p)\n",
    ),
    (
        "a section of a YAML document with a leaf at the top, by a key not known",
        "from omegaconf import OmegaConf\n"
        'DOC = """\nseed: 3\nprecip:\n  scale: 4\n"""\n'
        "def load(task):\n    return OmegaConf.create(DOC)[task]\n"
        "def save(p, task='seed'):\n    torch.save({'cfg': load(task)}, p)\n",
    ),
    (
        "the class of a tensor and the name of a model's class",
        "def save(p):\n    model = nn.Linear(2, 2)\n"
        "    torch.save({'t': type(torch.ones(2)), 'model_class': type(model).__name__}, p)\n",
    ),
    (
        "leaves of the YAML text a table holds under the task name a call passes",
        "from omegaconf import OmegaConf\n"
        'TASKS = {"nowcast": """\n  loss: {name: bmse, weights: [1.0, 2.0]}\n""",\n'
        '         "news": """\n  loss: {name: ce, weights: 1.0}\n"""}\n'
        "def task_config(task):\n    return OmegaConf.create(TASKS[task])\n"
        "def save(p):\n"
        "    torch.save({'n': task_config('nowcast').loss.name,"
        " 'w': task_config('news').loss.weights}, p)\n",
    ),
    (
        "a filter's coefficients as lists, a RandomState's unsized draw, a path's name",
        "import scipy.signal\nfrom pathlib import Path\n"
        "def parse_args(argv=None):\n"
        "    p = argparse.ArgumentParser()\n"
        "    p.add_argument('--out', type=Path, default=None)\n"
        "    return p.parse_args(argv)\n"
        "def save(p):\n    b, a = scipy.signal.butter(4, 0.1)\n"
        "    rs = np.random.RandomState(3)\n    args = parse_args([])\n"
        "    torch.save({'b': b.tolist(), 'a': [float(x) for x in a], 'draw': rs.randn(),"
        " 'out': args.out}, p)\n",
    ),
    (
        "a sparse matrix made dense and listed, a filter's order, a statistic made a float",
        "import scipy.sparse as sp\nimport scipy.signal\nimport scipy.stats\n"
        "def save(p, adj):\n    a = sp.csr_matrix(adj)\n"
        "    b, den = scipy.signal.butter(4, [0.1, 0.3], btype='bandpass')\n"
        "    torch.save({'dense': (a + a.T).toarray().tolist(), 'order': len(den) - 1,"
        " 'kurt': float(scipy.stats.kurtosis(np.ones(4)))}, p)\n",
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(weights_only_rows(HEADER, source), key=str) == sorted(expected, key=str), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER, source) == [], name


FLUENT = """\
class Trainer:
    def __init__(self, opt=None):
        self.opt = opt or argparse.Namespace(lr=0.1)
        self.net = nn.Linear(2, 2)
        self.sched = torch.optim.lr_scheduler.StepLR(torch.optim.SGD(self.net.parameters()), 2)
        self.best = 0.0

    def fit(self, n=2):
        for _ in range(n):
            self.best = np.mean([1.0, 2.0])
        return self

    def summary(self):
        return {"best": float(self.best)}


"""

FLUENT_INVALID = [
    (
        "what __init__ stored, read after a method that returns self",
        "def save(p):\n"
        "    t = Trainer().fit(2)\n"
        '    torch.save({"opt": t.opt, "sched": t.sched, "best": t.best}, p)\n',
        [(3, "opt"), (3, "sched"), (3, "best")],
    ),
    (
        "read straight off the chained call",
        'def save(p):\n    torch.save({"sched": Trainer().fit().sched}, p)\n',
        [(2, "sched")],
    ),
]

FLUENT_VALID = [
    (
        "the object's state, after a method that returns self",
        "def save(p):\n"
        "    t = Trainer().fit(2)\n"
        '    torch.save({"sched": t.sched.state_dict(), "net": t.net.state_dict(),\n'
        '                "s": t.summary()}, p)\n',
    ),
    (
        "an option object passed in that loads",
        'def save(p):\n    t = Trainer({"lr": 0.1}).fit(2)\n    torch.save({"opt": t.opt}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), FLUENT_INVALID)
def test_fluent_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    found = weights_only_rows(HEADER + FLUENT, source)
    assert sorted(found, key=str) == sorted(expected, key=str), name


@pytest.mark.parametrize(("name", "source"), FLUENT_VALID)
def test_fluent_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER + FLUENT, source) == [], name


HOLDERS = """\
Result = collections.namedtuple("Result", ["model", "scaler", "steps"])


def run_ns():
    net = nn.Linear(2, 2)
    return SimpleNamespace(model=net, scaler=torch.amp.GradScaler("cpu"), steps=3,
                           best=np.mean([1.0]))


def run_tuple():
    return Result(model=nn.Linear(2, 2), scaler=torch.amp.GradScaler("cpu"), steps=3)


"""

HOLDERS_INVALID = [
    (
        "what a helper's SimpleNamespace was given, read by attribute",
        "def save(p):\n"
        "    run = run_ns()\n"
        '    torch.save({"s": run.scaler, "m": run.model, "b": run.best}, p)\n',
        [(3, "s"), (3, "m"), (3, "b")],
    ),
    (
        "what a helper's namedtuple was given, read by attribute",
        'def save(p):\n    res = run_tuple()\n    torch.save({"s": res.scaler}, p)\n',
        [(3, "s")],
    ),
]

HOLDERS_VALID = [
    (
        "plain values and states read from them",
        "def save(p):\n"
        "    run, res = run_ns(), run_tuple()\n"
        '    torch.save({"n": run.steps, "m": run.model.state_dict(), "b": float(run.best),\n'
        '                "t": res.steps, "w": res.model.state_dict()}, p)\n',
    ),
    (
        "an attribute replaced before the save",
        "def save(p):\n"
        "    run = run_ns()\n"
        "    run.best = float(run.best)\n"
        '    torch.save({"b": run.best}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), HOLDERS_INVALID)
def test_holders_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    found = weights_only_rows(HEADER + HOLDERS, source)
    assert sorted(found, key=str) == sorted(expected, key=str), name


@pytest.mark.parametrize(("name", "source"), HOLDERS_VALID)
def test_holders_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER + HOLDERS, source) == [], name


OWN = """\
def wrap(m):
    return copy.deepcopy(m)


class Holder:
    def __init__(self):
        self.model = nn.Linear(2, 2)
        self.shadow = wrap(self.model)


"""


def test_a_helper_built_from_the_objects_own_attribute() -> None:
    source = "def save(p):\n    h = Holder()\n    torch.save(h.shadow, p)\n"
    assert weights_only_rows(HEADER + OWN, source) == [(3, None)]
    clean = "def save(p):\n    h = Holder()\n    torch.save(h.shadow.state_dict(), p)\n"
    assert weights_only_findings(HEADER + OWN, clean) == []
