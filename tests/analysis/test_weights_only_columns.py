"""CKPT010 weights-only: the families blind rounds 25-26 found missing. Column arithmetic and
masks (`(df["status"] == "done").mean()`), rows picked by an array of positions, a quantile at
one level, pandas date offsets and torch distributions, an argparse `type=` Enum, an Enum's
members listed, an item of a list of numpy values, `math` results as Python numbers, a
dataclass's positional fields, a method's return annotation, a helper annotated `-> dict`,
array items set through a tuple target. VALID and INVALID; every refusal here was measured
(torch 2.13) by the blind rounds' oracle."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import argparse
import dataclasses
import math
import statistics
import time
from collections import Counter
from enum import Enum
import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import StandardScaler


class Status(str, Enum):
    PENDING = "pending"
    DONE = "done"


@dataclasses.dataclass
class Trial:
    trial_id: int = 0
    status: Status = Status.PENDING


@dataclasses.dataclass
class Result:
    sharpe: float
    drawdown: float


@dataclasses.dataclass
class Split:
    fold: int
    train_idx: np.ndarray


def board():
    return pd.DataFrame({"status": ["done", "pending"], "score": [0.5, 0.7], "pid": ["a", "b"]})


def events():
    return pd.DataFrame({"date": ["2024-01-05", "2024-02-01"], "y": [1.0, 2.0]})


def folds(n):
    out = []
    for k in range(2):
        out.append(Split(k, np.arange(n)))
    return out


def sharpe_ratio(r, periods=252):
    return np.sqrt(periods) * r.mean() / (r.std() + 1e-12)


def evaluate(ranks) -> dict:
    ranks = np.asarray(ranks)
    return {"hits": (ranks <= 1).mean(), "mrr": float(np.mean(1.0 / ranks))}


class Search:
    def __init__(self):
        self.trials = []
        self.accs = []
        self.best = None

    def run(self) -> Trial:
        for _ in range(2):
            self.report(Trial(len(self.trials)))
        return self.best

    def report(self, trial):
        self.trials.append(trial)
        self.best = trial

    def step(self, values):
        self.accs.append(np.mean(values))


def parser():
    p = argparse.ArgumentParser()
    p.add_argument("--status", type=Status, default=Status.DONE)
    p.add_argument("--maybe", type=Status, default=None)
    return p


"""

BIDS = (
    "def bids(n=12):\n    rng = np.random.default_rng(0)\n"
    '    df = pd.DataFrame({"campaign": rng.integers(0, 3, n), "slot": ["top", "side"] * (n // 2),'
    ' "bid": rng.gamma(3.0, 1.5, n), "market": rng.gamma(3.0, 1.5, n)})\n'
    '    df["won"] = (df["bid"] > df["market"]).astype(int)\n    return df\n'
)

INVALID = [
    (
        "a column of an array whose dtype is given by position as text holds numbers",
        'def save(p):\n    df = pd.DataFrame({"w": np.ones(4, "float32"), "k": ["a", "b", "a", "b"]})\n'
        '    torch.save({"top": df["w"].max()}, p)\n',
        [(3, "top")],
    ),
    (
        "a column's summary (`describe()`) is a Series",
        "def report(r) -> pd.DataFrame:\n"
        '    return pd.DataFrame({"meas_id": np.arange(len(r)), "rn": r})\n'
        'def save(p):\n    df = report(np.ones(4))\n    torch.save({"summary": df["rn"].describe()}, p)\n',
        [(5, "summary")],
    ),
    (
        "the rows a sliced or computed array of positions picks, then a column's statistic",
        "def synth(n=20):\n    rng = np.random.default_rng(0)\n"
        '    return pd.DataFrame({"pkd": rng.normal(8, 1, n), "cluster": rng.integers(0, 4, n)})\n'
        "def save(p):\n    df = synth()\n    idx = np.random.default_rng(1).permutation(len(df))\n"
        "    train = df.iloc[idx[5:]].reset_index(drop=True)\n"
        '    torch.save({"std": train["pkd"].std(), "head": df.iloc[np.arange(3)]["pkd"].max()}, p)\n',
        [(8, "std"), (8, "head")],
    ),
    (
        "the cells and column of a named aggregation's statistics",
        "def arms(n=40):\n    rng = np.random.default_rng(0)\n"
        '    return pd.DataFrame({"arm": rng.choice(["a", "b"], n), "clicked": rng.integers(0, 2, n)})\n'
        'def save(p):\n    agg = arms().groupby("arm").agg(ctr=("clicked", "mean"), n=("clicked", "size"))\n'
        '    torch.save({"lift": agg.loc["b", "ctr"] / agg.loc["a", "ctr"] - 1.0,'
        ' "top": agg["ctr"].max(), "n": agg.loc["a", "n"]}, p)\n',
        [(6, "lift"), (6, "top"), (6, "n")],
    ),
    (
        "a frame indexed by dates, copied and cleaned: its last date, gap and dates as a list",
        "def telemetry(days):\n"
        '    index = pd.date_range("2023-06-01", periods=days * 96, freq="15min", tz="UTC")\n'
        '    return pd.DataFrame({"pv": np.ones(len(index))}, index=index)\n'
        "def save(p):\n    feats = telemetry(2).copy().dropna()\n"
        '    torch.save({"last": feats.index[-1],'
        ' "step": feats.index.to_series().diff().median(),'
        ' "window": feats.index[-4:].to_pydatetime().tolist(), "freq": feats.index.freq}, p)\n',
        [(6, "last"), (6, "step"), (6, "window"), (6, "freq")],
    ),
    (
        "the mean of the rows of a column a mask keeps, in a helper given the column",
        "def b_value(mags, mc):\n    above = mags[mags >= mc]\n"
        "    return math.log10(math.e) / (above.mean() - mc)\n"
        "def save(p):\n    rng = np.random.default_rng(0)\n    rows = []\n"
        "    for i in range(4):\n"
        '        rows.append({"magnitude": round(float(rng.gamma(2.0, 0.6) + 1.0), 2), "station": "A",'
        ' "p_idx": int(rng.integers(100, 250))})\n'
        "    cat = pd.DataFrame(rows)\n"
        '    torch.save({"b": b_value(cat["magnitude"], 2.0),'
        ' "top": cat["magnitude"][cat["station"] == "A"].mean()}, p)\n',
        [(10, "b"), (10, "top")],
    ),
    (
        "dict records whose columns a helper's frame `columns=` picks and orders",
        "def table():\n    rows = []\n    for q in range(3):\n"
        '        rows.append({"store": "s", "qty": int(q), "price": float(q)})\n'
        '    return pd.DataFrame(rows, columns=["qty", "store"])\n'
        "def save(p):\n"
        '    torch.save({"q": table()["qty"].max()}, p)\n',
        [(7, "q")],
    ),
    (
        "a date index's items, and a date column of tuple records",
        "def save(p):\n    dates = pd.date_range('2024-01-01', periods=3, freq='W')\n"
        "    rows = []\n    for d, q in zip(dates, np.arange(3)):\n"
        "        rows.append((d, int(q)))\n"
        '    df = pd.DataFrame(rows, columns=["date", "qty"])\n'
        '    torch.save({"end": df["date"].max(), "days": [d for d in dates]}, p)\n',
        [(7, "end"), (7, "days")],
    ),
    (
        "the number columns of a frame built from tuple records and its column names",
        "def save(p):\n    rows = []\n    for q in range(3):\n"
        '        rows.append(("s1", int(q), float(q) * 2.0))\n'
        '    df = pd.DataFrame(rows, columns=["store", "qty", "price"])\n'
        '    torch.save({"q": df["qty"].max(), "p": df["price"].min()}, p)\n',
        [(6, "q"), (6, "p")],
    ),
    (
        "a column made of Python numbers from each cell: its reductions are numpy",
        "def save(p):\n    df = board()\n"
        '    df["n"] = df["pid"].map(lambda s: len(s.split()))\n'
        '    torch.save({"n": df["n"].max(), "m": df["pid"].apply(len).sum()}, p)\n',
        [(4, "n"), (4, "m")],
    ),
    (
        "rows picked by a column mask keep the frame: its column's unique values, the rows",
        "def split(df, thr):\n    df = df[df.score >= thr].copy()\n"
        '    held = df["pid"].isin(["a"])\n'
        "    return df[~held].reset_index(drop=True), df[held]\n"
        "def save(p):\n    tr, va = split(board(), 0.1)\n"
        '    done = board()[board()["status"] == "done"]\n'
        '    torch.save({"ids": va["pid"].unique(), "rows": done,'
        ' "m": statistics.mean(tr["score"].to_numpy())}, p)\n',
        [(8, "ids"), (8, "rows"), (8, "m")],
    ),
    (
        "the mean size of a frame's groups",
        'def sessions():\n    return pd.DataFrame({"session": [1, 2, 1, 3], "q": ["a", "b", "c", "d"]})\n'
        'def save(p):\n    sizes = sessions().groupby("session").size()\n'
        '    torch.save({"per_session": sizes.mean()}, p)\n',
        [(5, "per_session")],
    ),
    (
        "a draw from a column of numbers' unique values, listed (numpy items)",
        'def cells():\n    return pd.DataFrame({"cell": ["a", "b", "c"], "n": [1, 2, 3]})\n'
        "def save(p):\n    rng = np.random.default_rng(0)\n"
        '    torch.save({"n": list(rng.choice(cells()["n"].unique(), 2, replace=False))}, p)\n',
        [(5, "n")],
    ),
    (
        "the last date of a column built as a start plus day offsets",
        "def signups(n):\n    rng = np.random.default_rng(0)\n"
        '    return pd.DataFrame({"day": pd.Timestamp("2021-01-01")\n'
        '        + pd.to_timedelta(rng.integers(0, 900, size=n), unit="D"), "n": rng.integers(0, 5, n)})\n'
        'def save(p):\n    df = signups(8)\n    torch.save({"cutoff": df["day"].max()}, p)\n',
        [(7, "cutoff")],
    ),
    (
        "the bin edges `qcut` hands back beside the bins",
        "def save(p):\n    b = board()\n"
        '    _, edges = pd.qcut(b["score"], q=2, retbins=True)\n'
        '    torch.save({"edges": edges}, p)\n',
        [(4, "edges")],
    ),
    (
        "a two-sample test's statistic and p-value",
        "from scipy import stats\n"
        "def save(p):\n    b = board()\n"
        '    ks = stats.ks_2samp(b["score"], b["score"] * 2)\n'
        '    stat, pvalue = stats.mannwhitneyu(b["score"], b["score"] * 2)\n'
        '    torch.save({"ks": ks.statistic, "p": pvalue, "stat": float(stat)}, p)\n',
        [(6, "ks"), (6, "p")],
    ),
    (
        "the last of a rolling mean of a column",
        'def save(p):\n    b = board()\n    torch.save({"w": b["score"].rolling(2).mean().iloc[-1]}, p)\n',
        [(3, "w")],
    ),
    (
        "a fitted scaler's feature names",
        'def save(p):\n    s = StandardScaler().fit(board()[["score"]])\n    torch.save({"f": s.feature_names_in_}, p)\n',
        [(3, "f")],
    ),
    (
        "a Counter of a column as numpy strings",
        'def save(p):\n    b = board()\n    torch.save({"c": Counter(b["pid"].to_numpy(dtype=str))}, p)\n',
        [(3, "c")],
    ),
    (
        "a tensor's Python number times a numpy scalar",
        'def save(p):\n    loss = torch.tensor(0.5)\n    torch.save({"w": loss.item() * np.float32(0.5)}, p)\n',
        [(3, "w")],
    ),
    (
        "a column compared, averaged",
        'def save(p):\n    b = board()\n    torch.save({"frac": (b["status"] == "done").mean()}, p)\n',
        [(3, "frac")],
    ),
    (
        "a boolean column",
        'def save(p):\n    b = board()\n    torch.save({"mask": b["score"] > 0.6}, p)\n',
        [(3, "mask")],
    ),
    (
        "a ratio of columns",
        'def save(p):\n    b = board()\n    torch.save({"r": b["score"] / b["score"].cumsum()}, p)\n',
        [(3, "r")],
    ),
    (
        "a column times a number",
        'def save(p):\n    b = board()\n    torch.save({"pct": b["score"] * 100}, p)\n',
        [(3, "pct")],
    ),
    (
        "a column's quantile at one level",
        'def save(p):\n    b = board()\n    torch.save({"var": b["score"].quantile(0.05)}, p)\n',
        [(3, "var")],
    ),
    (
        "a column of rows picked by positions",
        "def save(p):\n"
        "    b = board()\n"
        "    split = Split(0, np.arange(1))\n"
        '    torch.save({"ids": b.iloc[split.train_idx]["pid"].unique()}, p)\n',
        [(4, "ids")],
    ),
    (
        "rows picked by a list",
        'def save(p):\n    b = board()\n    torch.save({"u": b.iloc[[0]]["pid"].unique()}, p)\n',
        [(3, "u")],
    ),
    (
        "a pandas date offset",
        'def save(p):\n    torch.save({"freq": pd.offsets.BMonthEnd()}, p)\n',
        [(2, "freq")],
    ),
    (
        "a DateOffset",
        'def save(p):\n    torch.save({"step": pd.DateOffset(months=1)}, p)\n',
        [(2, "step")],
    ),
    (
        "a torch distribution",
        "def save(p):\n"
        '    torch.save({"policy": torch.distributions.Categorical(logits=torch.zeros(3))}, p)\n',
        [(2, "policy")],
    ),
    (
        "an argparse Enum with a member default",
        'def save(p):\n    args = parser().parse_args([])\n    torch.save({"s": args.status}, p)\n',
        [(3, "s")],
    ),
    (
        "an Enum's members listed",
        'def save(p):\n    torch.save({"all": list(Status)}, p)\n',
        [(2, "all")],
    ),
    (
        "the last of a list of numpy values",
        "def save(p):\n"
        "    s = Search()\n"
        "    s.step([1.0, 2.0])\n"
        '    torch.save({"last": s.accs[-1], "up": s.accs[-1] > s.accs[0]}, p)\n',
        [(4, "last"), (4, "up")],
    ),
    (
        "numpy divided by a math result",
        "def save(p):\n"
        "    accs = np.asarray([0.5, 0.7])\n"
        '    torch.save({"ci": 1.96 * accs.std() / math.sqrt(len(accs))}, p)\n',
        [(3, "ci")],
    ),
    (
        "numpy over the seconds elapsed",
        "def save(p):\n"
        "    t0 = time.time()\n"
        '    torch.save({"rate": np.mean([2.0, 3.0]) / (time.time() - t0)}, p)\n',
        [(3, "rate")],
    ),
    (
        "numpy over a count",
        'def save(p):\n    n = len([1, 2])\n    torch.save({"mean": np.sum([2.0, 3.0]) / n}, p)\n',
        [(3, "mean")],
    ),
    (
        "a column sorted by its index",
        'def save(p):\n    b = board()\n    torch.save({"s": b["score"].sort_index()}, p)\n',
        [(3, "s")],
    ),
    (
        "a dataclass field passed by position",
        "def save(p):\n"
        "    r = np.arange(5.0)\n"
        "    res = Result(sharpe_ratio(r), 0.1)\n"
        '    torch.save({"sharpe": res.sharpe}, p)\n',
        [(4, "sharpe")],
    ),
    (
        "a field of what a method's annotation says it returns",
        'def save(p):\n    best = Search().run()\n    torch.save({"status": best.status}, p)\n',
        [(3, "status")],
    ),
    (
        "a key of a helper annotated `-> dict`",
        'def save(p):\n    m = evaluate([1, 2])\n    torch.save({"hits": m["hits"]}, p)\n',
        [(3, "hits")],
    ),
    (
        "an array whose ends a tuple target sets",
        "def save(p):\n"
        "    bins = np.quantile(np.arange(5.0), np.linspace(0.0, 1.0, 3))\n"
        "    bins[0], bins[-1] = 0.0, 9.0\n"
        '    torch.save({"bins": bins}, p)\n',
        [(4, "bins")],
    ),
    (
        "the first of a column of Timestamps",
        'def save(p):\n    dates = pd.to_datetime(events()["date"])\n    torch.save({"first": dates.min()}, p)\n',
        [(3, "first")],
    ),
    (
        "the last of a column set to Timestamps",
        "def save(p):\n"
        "    df = events()\n"
        '    df["ts"] = pd.to_datetime(df["date"])\n'
        '    torch.save({"last": df["ts"].iloc[-1], "span": df["ts"].max() - df["ts"].min()}, p)\n',
        [(4, "last"), (4, "span")],
    ),
    (
        "an item of a list a helper fills",
        'def save(p):\n    split = folds(3)[0]\n    torch.save({"split": split, "idx": split.train_idx}, p)\n',
        [(3, "split"), (3, "idx")],
    ),
    (
        "a Counter of an array's items",
        'def save(p):\n    torch.save({"c": Counter(np.array([1, 2, 2]))}, p)\n',
        [(2, "c")],
    ),
    (
        "a column stored from an array, counted; the columns but one",
        "def save(p):\n"
        '    table = pd.DataFrame(np.ones((3, 2)), columns=["a", "b"])\n'
        '    table["activity"] = np.array(["walk", "run", "walk"])\n'
        '    counts = table["activity"].value_counts()\n'
        '    torch.save({"c": counts, "r": counts.max() / counts.min(),\n'
        '                "f": table.columns.drop("activity")}, p)\n',
        [(5, "c"), (5, "r"), (6, "f")],
    ),
    (
        "an array indexed by arrays, then given an axis",
        "def save(p):\n"
        "    sims = np.ones((3, 3))\n"
        "    gt = np.arange(3)\n"
        '    torch.save({"rank": (sims > sims[gt, gt][:, None]).sum(1)}, p)\n',
        [(4, "rank")],
    ),
    (
        "the latest date of a column built from a date range",
        "def save(p):\n"
        '    meta = pd.DataFrame({"acquired": pd.date_range("2023-05-01", periods=3), "n": [1, 2, 3]})\n'
        '    torch.save({"last": meta["acquired"].max(), "kept": meta.dropna()["acquired"].max()}, p)\n',
        [(3, "last"), (3, "kept")],
    ),
    (
        "a histogram and the largest index of a nonzero bin",
        "def save(p):\n"
        "    h = np.bincount(np.array([1, 3, 3]))\n"
        '    torch.save({"hist": np.histogram([1.0, 2.0], bins=2), "top": np.nonzero(h)[0].max()}, p)\n',
        [(3, "hist"), (3, "top")],
    ),
    (
        "a column of Timestamps from records, and one read as an attribute",
        "def save(p, start=pd.Timestamp('2023-03-01')):\n"
        "    rows = []\n"
        "    for n in range(3):\n"
        '        rows.append({"cell": "a", "n": n, "at": start + pd.Timedelta(hours=n)})\n'
        "    df = pd.DataFrame(rows)\n"
        '    days = pd.DataFrame({"t": pd.date_range("2020-01-01", periods=3)})\n'
        '    torch.save({"first": df["at"].min(), "last": days.t.max(), "n": int(df["n"].max())}, p)\n',
        [(7, "first"), (7, "last")],
    ),
    (
        "spectra, fits and Series statistics",
        "def save(p):\n"
        "    freqs = np.fft.rfftfreq(64, d=0.01)\n"
        "    spectrum = np.abs(np.fft.rfft(np.ones(64)))\n"
        '    df = pd.DataFrame({"x": [1.0, 2.0, 4.0], "y": [2.0, 1.0, 0.5]})\n'
        '    torch.save({"hz": freqs[np.argmax(spectrum)], "fit": np.polyfit(df["x"], df["y"], 1),\n'
        '                "r": df["x"].corr(df["y"]), "skew": df["x"].skew()}, p)\n',
        [(5, "hz"), (5, "fit"), (6, "r"), (6, "skew")],
    ),
    (
        "a negated mask of columns, counted in a helper's dict",
        "def drop_empty(df, threshold):\n"
        '    mask = (df["conf"] >= threshold) | (df["species"] == "empty")\n'
        '    return df[mask], {"n_in": len(df), "n_dropped": (~mask).sum()}\n'
        "\n"
        "\n"
        "def save(p):\n"
        '    meta = pd.DataFrame({"conf": [0.1, 0.9], "species": ["a", "empty"]})\n'
        "    kept, stats = drop_empty(meta, 0.5)\n"
        '    torch.save({"dropped": stats["n_dropped"], "n": stats["n_in"]}, p)\n',
        [(9, "dropped")],
    ),
]

INVALID += [
    (
        "a group's column reduced in a loop over a groupby, and a grouped column's quantile",
        BIDS + "def save(p):\n    df = bids()\n    per = {}\n"
        '    for cid, g in df.groupby("campaign"):\n'
        '        per[int(cid)] = {"n": len(g), "win_rate": g["won"].mean()}\n'
        '    thr = df.groupby("slot")["bid"].quantile(0.95)\n'
        '    torch.save({"per": per, "thr": thr}, p)\n',
        [(10, "win_rate"), (12, "thr")],
    ),
    (
        "a date column of a local date range, in frames appended and concatenated",
        "def flows(n=5):\n    dates = pd.date_range('2020-01-01', periods=n, freq='D')\n"
        "    frames = []\n    for basin in ('a', 'b'):\n"
        '        frames.append(pd.DataFrame({"basin": basin, "date": dates,'
        ' "q": np.arange(n) * 1.0}))\n'
        "    return pd.concat(frames, ignore_index=True)\n"
        "def save(p):\n    df = flows()\n    both = pd.concat([df, df])\n"
        '    torch.save({"last": df["date"].max(), "first": both["date"].min()}, p)\n',
        [(10, "last"), (10, "first")],
    ),
    (
        "a numpy array minus the values of a column of unknown dtype (arithmetic with strings "
        "would raise)",
        "def minutes_of(df):\n    return df['t'] * 2.5\n"
        "def frame():\n    rng = np.random.default_rng(0)\n"
        '    df = pd.DataFrame({"t": rng.integers(0, 9, 8), "name": ["a", "b"] * 4})\n'
        '    df["minutes"] = minutes_of(df)\n    return df\n'
        'def save(p):\n    df = frame()\n    val = df[df["t"] > 2]\n'
        '    y = val["minutes"].to_numpy()\n    pred = np.ones(len(y))\n'
        '    torch.save({"bias": (pred - y).mean(), "n": len(y)}, p)\n',
        [(13, "bias")],
    ),
    (
        "a quantile of a column of Timestamps at a level a parameter holds, from a helper's "
        "tuple, and its median",
        "def sessions(n=8):\n    rng = np.random.default_rng(0)\n"
        "    start = pd.Timestamp('2024-03-01')\n"
        '    return pd.DataFrame({"at": start + pd.to_timedelta(rng.integers(0, 99, n),'
        ' unit="min"), "m": rng.random(n)})\n'
        "def split_by_time(df, frac=0.8):\n    cut = df['at'].quantile(frac)\n"
        "    return df[df['at'] <= cut], df[df['at'] > cut], cut\n"
        "def save(p):\n    df = sessions()\n    train, val, cut = split_by_time(df)\n"
        '    torch.save({"cut": cut, "mid": df["at"].median(), "n": len(train)}, p)\n',
        [(11, "cut"), (11, "mid")],
    ),
    (
        "the largest of two number columns, one a helper computed from others",
        "def boxes(n=5):\n    rng = np.random.default_rng(0)\n    rows = []\n"
        "    for i in range(n):\n"
        '        rows.append({"file": f"{i}.png", "x1": int(rng.integers(0, 5)),'
        ' "x2": int(rng.integers(6, 9))})\n'
        '    df = pd.DataFrame(rows)\n    df["w"] = df.x2 - df.x1\n    return df\n'
        "def save(p):\n    df = boxes()\n"
        '    torch.save({"largest": df[["w", "x2"]].max().max(),'
        ' "plain": df[["w", "x2"]].max().to_dict()}, p)\n',
        [(11, "largest")],
    ),
    (
        "the distinct counts of the columns a `list(...)` of configured names picks",
        "def load():\n"
        '    return pd.DataFrame({"device": ["tv", "phone"], "hour": [1, 2]})\n'
        'def save(p, fields=("device", "hour")):\n    df = load()\n'
        '    torch.save({"dims": df[list(fields)].nunique().values,'
        ' "sorted": df[sorted(fields)].nunique().values,'
        ' "plain": df[list(fields)].nunique().tolist()}, p)\n',
        [(5, "dims"), (5, "sorted")],
    ),
    (
        "a column read as an attribute, and the lengths a column's `.str` gives",
        "def save(p):\n    df = board()\n"
        "    ratio = df.pid.str.len() / df.status.str.len()\n"
        '    torch.save({"scores": df.score, "median": ratio.median(),'
        ' "mean_len": df.pid.str.len().mean()}, p)\n',
        [(4, "scores"), (4, "median"), (4, "mean_len")],
    ),
]

VALID = [
    (
        "a column's summary as a dict",
        "def report(r) -> pd.DataFrame:\n"
        '    return pd.DataFrame({"meas_id": np.arange(len(r)), "rn": r})\n'
        'def save(p):\n    df = report(np.ones(4))\n    torch.save({"summary": df["rn"].describe().to_dict()}, p)\n',
    ),
    (
        "a statistic of the rows an array of positions picks, made a Python float",
        "def synth(n=20):\n    rng = np.random.default_rng(0)\n"
        '    return pd.DataFrame({"pkd": rng.normal(8, 1, n), "cluster": rng.integers(0, 4, n)})\n'
        "def save(p):\n    df = synth()\n    idx = np.random.default_rng(1).permutation(len(df))\n"
        "    train = df.iloc[idx[5:]].reset_index(drop=True)\n"
        '    torch.save({"std": float(train["pkd"].std()), "n": len(df.iloc[np.arange(3)])}, p)\n',
    ),
    (
        "the best label of a column of strings `np.where` chose, through a local",
        "def arms(n=40):\n    rng = np.random.default_rng(0)\n"
        '    arm = np.where(rng.random(n) < 0.5, "control", "treatment")\n'
        '    return pd.DataFrame({"arm": arm, "clicked": rng.integers(0, 2, n)})\n'
        'def save(p):\n    best = arms().groupby("arm")["clicked"].mean().idxmax()\n'
        '    torch.save({"best": best}, p)\n',
    ),
    (
        "a named aggregation's cells made Python numbers, and its table as a dict",
        "def arms(n=40):\n    rng = np.random.default_rng(0)\n"
        '    return pd.DataFrame({"arm": rng.choice(["a", "b"], n), "clicked": rng.integers(0, 2, n)})\n'
        'def save(p):\n    agg = arms().groupby("arm").agg(ctr=("clicked", "mean"), n=("clicked", "size"))\n'
        '    torch.save({"lift": float(agg.loc["b", "ctr"] / agg.loc["a", "ctr"] - 1.0),'
        ' "n": int(agg.loc["a", "n"]), "table": agg["ctr"].to_dict()}, p)\n',
    ),
    (
        "a dated frame's last date, gap and window as text and seconds",
        "def telemetry(days):\n"
        '    index = pd.date_range("2023-06-01", periods=days * 96, freq="15min", tz="UTC")\n'
        '    return pd.DataFrame({"pv": np.ones(len(index))}, index=index)\n'
        "def save(p):\n    feats = telemetry(2).copy().dropna()\n"
        '    torch.save({"last": feats.index[-1].isoformat(),'
        ' "step": feats.index.to_series().diff().median().total_seconds(),'
        ' "window": [t.isoformat() for t in feats.index[-4:].to_pydatetime()],'
        ' "freq": feats.index.freqstr}, p)\n',
    ),
    (
        "the rows a mask keeps, counted or made a Python float",
        "def save(p):\n    rows = []\n    for i in range(4):\n"
        '        rows.append({"magnitude": round(1.5 + 0.5 * i, 2), "station": "A"})\n'
        '    cat = pd.DataFrame(rows)\n    mags = cat["magnitude"]\n'
        '    torch.save({"n": len(mags[mags >= 2.0]), "m": float(mags[mags >= 2.0].mean()),'
        ' "all": mags[mags >= 2.0].tolist()}, p)\n',
    ),
    (
        "the sorted values of a column drawn, through a local, from a config's strings",
        "@dataclasses.dataclass\nclass Config:\n    leagues: tuple = ('EPL', 'SERIEA')\n"
        "def save(p, cfg=Config()):\n    rng = np.random.default_rng(0)\n"
        "    league = rng.choice(list(cfg.leagues), 8)\n"
        '    df = pd.DataFrame({"league": league, "odds": rng.uniform(1, 3, 8)})\n'
        '    torch.save({"leagues": sorted(df.league.unique())}, p)\n',
    ),
    (
        "the label of a group whose column was drawn from an Enum's values (strings)",
        "class Device(str, Enum):\n    TV = 'tv'\n    PHONE = 'phone'\n"
        "def save(p):\n    rng = np.random.default_rng(0)\n"
        '    df = pd.DataFrame({"device": rng.choice([d.value for d in Device], 8),'
        ' "minutes": rng.gamma(2.0, 10.0, 8)})\n'
        '    by_device = df.groupby("device")["minutes"].mean()\n'
        '    torch.save({"best": by_device.idxmax()}, p)\n',
    ),
    (
        "a group's string column item and its size, and a grouped quantile made plain",
        BIDS + "def save(p):\n    df = bids()\n    per = {}\n"
        '    for slot, g in df.groupby("slot"):\n'
        '        per[slot] = {"n": len(g), "first": g["slot"].iloc[0]}\n'
        '    thr = df.groupby("slot")["bid"].quantile(0.95).to_dict()\n'
        '    torch.save({"per": per, "thr": thr}, p)\n',
    ),
    (
        "a date index's items made strings",
        "def save(p):\n    dates = pd.date_range('2024-01-01', periods=3, freq='W')\n"
        '    torch.save({"days": [d.isoformat() for d in dates], "n": len(dates)}, p)\n',
    ),
    (
        "string columns of tuple records",
        "def save(p):\n    rows = []\n    for q in range(3):\n"
        '        rows.append(("s1", str(q)))\n'
        '    df = pd.DataFrame(rows, columns=["store", "qty"])\n'
        '    torch.save({"s": df["store"].max(), "q": df["qty"].max()}, p)\n',
    ),
    (
        "a column mapped to strings, or its numpy reduction made a Python number",
        "def save(p):\n    df = board()\n"
        '    df["up"] = df["pid"].map(lambda s: s.upper())\n'
        '    torch.save({"up": df["up"].max(), "n": int(df["pid"].map(len).max())}, p)\n',
    ),
    (
        "rows picked by a mask, read as lists and Python numbers; a column's low median",
        "def save(p):\n    df = board()\n    done = df[df.score > 0.6]\n"
        '    torch.save({"ids": sorted(done["pid"].unique().tolist()), "n": len(done),'
        ' "top": float(done["score"].max()), "mid": statistics.median_low(df["pid"].to_numpy())}, p)\n',
    ),
    (
        "a frame's group sizes as a dict and as a float",
        'def sessions():\n    return pd.DataFrame({"session": [1, 2, 1, 3], "q": ["a", "b", "c", "d"]})\n'
        'def save(p):\n    sizes = sessions().groupby("session").size()\n'
        '    torch.save({"sizes": sizes.to_dict(), "mean": float(sizes.mean())}, p)\n',
    ),
    (
        "a draw from a column of strings' unique values, listed (Python strings)",
        'def cells():\n    return pd.DataFrame({"cell": ["a", "b", "c"], "n": [1, 2, 3]})\n'
        "def save(p):\n    rng = np.random.default_rng(0)\n"
        '    torch.save({"c": list(rng.choice(cells()["cell"].unique(), 2, replace=False))}, p)\n',
    ),
    (
        "the last date of a day-offset column as text, the bin edges as a list",
        "def signups(n):\n    rng = np.random.default_rng(0)\n"
        '    return pd.DataFrame({"day": pd.Timestamp("2021-01-01")\n'
        '        + pd.to_timedelta(rng.integers(0, 900, size=n), unit="D"), "n": rng.integers(0, 5, n)})\n'
        'def save(p):\n    df = signups(8)\n    _, edges = pd.qcut(df["n"], q=2, retbins=True, duplicates="drop")\n'
        '    torch.save({"cutoff": df["day"].max().isoformat(), "edges": edges.tolist()}, p)\n',
    ),
    (
        "a rolling mean of a column as a list",
        'def save(p):\n    b = board()\n    torch.save({"w": b["score"].rolling(2).mean().tolist()}, p)\n',
    ),
    (
        "a fitted scaler's feature names listed (Python strings)",
        'def save(p):\n    s = StandardScaler().fit(board()[["score"]])\n    torch.save({"f": list(s.feature_names_in_)}, p)\n',
    ),
    (
        "a Counter of a column's values as they are",
        'def save(p):\n    b = board()\n    torch.save({"c": Counter(b["pid"].to_numpy())}, p)\n',
    ),
    (
        "a tensor's Python number times a number",
        'def save(p):\n    loss = torch.tensor(0.5)\n    torch.save({"w": loss.item() * 0.5}, p)\n',
    ),
    (
        "a mask's mean made a float",
        "def save(p):\n"
        "    b = board()\n"
        '    torch.save({"frac": float((b["status"] == "done").mean())}, p)\n',
    ),
    (
        "a mask's any() made a bool",
        'def save(p):\n    b = board()\n    torch.save({"ok": bool((b["score"] > 1).any())}, p)\n',
    ),
    (
        "a quantile made a float",
        'def save(p):\n    b = board()\n    torch.save({"q": float(b["score"].quantile(0.05))}, p)\n',
    ),
    (
        "an offset's frequency string",
        'def save(p):\n    torch.save({"freq": pd.offsets.BMonthEnd().freqstr}, p)\n',
    ),
    (
        "a distribution's tensors",
        "def save(p):\n"
        "    d = torch.distributions.Categorical(logits=torch.zeros(3))\n"
        '    torch.save({"logits": d.logits}, p)\n',
    ),
    (
        "an argparse Enum's value",
        'def save(p):\n    args = parser().parse_args([])\n    torch.save({"s": args.status.value}, p)\n',
    ),
    (
        "an argparse Enum that may be None",
        'def save(p):\n    args = parser().parse_args([])\n    torch.save({"s": args.maybe}, p)\n',
    ),
    (
        "an Enum's values listed",
        'def save(p):\n    torch.save({"all": [s.value for s in Status]}, p)\n',
    ),
    (
        "a count of a Counter of numpy items",
        'def save(p):\n    c = Counter(np.array([1, 2, 2]))\n    torch.save({"n": c[2]}, p)\n',
    ),
    (
        "the last of a list of floats",
        "def save(p):\n"
        "    s = Search()\n"
        "    s.step([1.0, 2.0])\n"
        '    torch.save({"last": float(s.accs[-1])}, p)\n',
    ),
    (
        "the seconds elapsed",
        'def save(p):\n    t0 = time.time()\n    torch.save({"secs": time.time() - t0}, p)\n',
    ),
    (
        "a math result alone",
        'def save(p):\n    torch.save({"ann": math.sqrt(252), "t": math.floor(2.5)}, p)\n',
    ),
    (
        "a dataclass field given a literal",
        'def save(p):\n    res = Result(1.5, 0.1)\n    torch.save({"sharpe": res.sharpe}, p)\n',
    ),
    (
        "a helper's Python float key",
        'def save(p):\n    m = evaluate([1, 2])\n    torch.save({"mrr": m["mrr"]}, p)\n',
    ),
    (
        "the first of a column of Timestamps as a string",
        "def save(p):\n"
        '    dates = pd.to_datetime(events()["date"])\n'
        '    torch.save({"first": dates.min().isoformat(), "days": (dates.max() - dates.min()).days}, p)\n',
    ),
    (
        "a plain field of an item of a list a helper fills",
        'def save(p):\n    torch.save({"fold": folds(3)[0].fold}, p)\n',
    ),
    (
        "a trial turned into plain values",
        "def save(p):\n"
        "    best = Search().run()\n"
        '    torch.save({"status": best.status.value, "id": best.trial_id}, p)\n',
    ),
    (
        "the counts and the columns as plain values",
        "def save(p):\n"
        '    table = pd.DataFrame(np.ones((3, 2)), columns=["a", "b"])\n'
        '    table["activity"] = np.array(["walk", "run", "walk"])\n'
        '    counts = table["activity"].value_counts()\n'
        '    torch.save({"c": counts.to_dict(), "r": float(counts.max() / counts.min()),\n'
        '                "f": table.columns.drop("activity").tolist()}, p)\n',
    ),
    (
        "the date as text, the histogram and the index as lists",
        "def save(p):\n"
        '    meta = pd.DataFrame({"acquired": pd.date_range("2023-05-01", periods=3), "n": [1, 2, 3]})\n'
        "    h = np.bincount(np.array([1, 3, 3]))\n"
        '    torch.save({"last": meta["acquired"].max().isoformat(), "n": int(meta["n"].max()),\n'
        '                "hist": [a.tolist() for a in np.histogram([1.0, 2.0], bins=2)],\n'
        '                "top": int(np.nonzero(h)[0].max())}, p)\n',
    ),
    (
        "a column of Timestamps given as text, and the fits as Python numbers",
        "def save(p, start=pd.Timestamp('2023-03-01')):\n"
        "    rows = []\n"
        "    for n in range(3):\n"
        '        rows.append({"n": n, "at": (start + pd.Timedelta(hours=n)).isoformat()})\n'
        "    df = pd.DataFrame(rows)\n"
        "    x = pd.Series([1.0, 2.0, 4.0])\n"
        '    torch.save({"first": df["at"].min(), "fit": np.polyfit(x, x, 1).tolist(),\n'
        '                "r": float(x.corr(x)), "n": len(df)}, p)\n',
    ),
    (
        "a frame's own attributes, a text column's extreme, and lengths made a list",
        "def save(p):\n    df = board()\n"
        '    torch.save({"shape": df.shape, "cols": df.columns.tolist(), "first": df.pid.min(),'
        ' "lens": df.pid.str.len().tolist(), "empty": df.empty,'
        ' "median": float((df.pid.str.len() / 2).median())}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(weights_only_rows(HEADER, source), key=str) == sorted(expected, key=str), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER, source) == [], name
