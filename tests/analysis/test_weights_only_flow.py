"""CKPT010 through a function's data flow: a helper's dict or tuple result read by key or
position (its parameters bound to what the call passes), a dict handed to a call that only
reads it, `ckpt.update(local_dict)`, negative number literals in branches, and savers that
are methods of project class instances or nest what they are given. VALID and INVALID."""

from __future__ import annotations

import pytest
from ckpt_lsp.findings import Finding
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import argparse, dataclasses, enum, os, typing
from pathlib import Path
import numpy as np
import torch
"""


def _wo(source: str) -> list[Finding]:
    return weights_only_findings(HEADER, source)


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


EVALUATE = (
    "def evaluate(model):\n"
    "    losses = np.array([1.0, 2.0])\n"
    '    return {"loss": losses.mean(), "n": 3}\n'
)
MATCH = (
    "def match(scores, thr):\n"
    "    order = np.argsort(-scores)\n"
    "    return scores[order] >= thr, order\n"
)

DATACLASSES = (
    "class Frequency(str, enum.Enum):\n    HOURLY = 'h'\n"
    "@dataclasses.dataclass\nclass Window:\n    horizon: int = 6\n    freq: str = 'h'\n"
    "@dataclasses.dataclass\nclass Config:\n"
    "    window: Window = dataclasses.field(default_factory=Window)\n    lr: float = 0.1\n"
)

SERVER = (
    "class Server:\n    def __init__(self, n=4, seed=0):\n        self.n = n\n"
    "        self.rng = np.random.default_rng(seed)\n        self.round = 0\n"
    "    def sample(self, frac=0.5):\n"
    "        chosen = self.rng.choice(self.n, size=max(1, int(frac * self.n)), replace=False)\n"
    "        return chosen\n"
    "    def step(self):\n        chosen = self.sample()\n        self.round += 1\n"
    "        return chosen, self.round\n"
    "    def plain(self):\n        return [int(c) for c in self.sample()]\n"
    "    @staticmethod\n    def fixed():\n        return np.zeros(3)\n"
)

SAVERS = (
    "class Trainer:\n    def __init__(self):\n        self.epoch = 0\n"
    "    def save_checkpoint(self, path, extra=None):\n"
    '        state = {"epoch": self.epoch}\n        state.update(extra or {})\n'
    "        torch.save(state, path)\n"
    "class Exporter:\n    def save_checkpoint(self, path, meta):\n"
    "        torch.save({k: str(v) for k, v in meta.items()}, path)\n"
)

NESTED_RUN = (
    "def prepare():\n    med = np.median(np.ones(3))\n"
    "    return dict(median=med, n=3)\n"
    "def fit():\n    data = prepare()\n    metrics = {}\n    for e in range(2):\n"
    '        metrics = {"f1": np.mean([1.0, 0.5]), "epoch": e}\n'
    "    return dict(data=data, metrics=metrics, epoch=2)\n"
)

RATE = (
    "def dist(a, b):\n    d = np.zeros((len(a) + 1, len(b) + 1))\n    return d[-1, -1]\n"
    "def rate(refs, hyps):\n"
    "    errors = sum(dist(r.split(), h.split()) for r, h in zip(refs, hyps))\n"
    "    words = sum(len(r.split()) for r in refs)\n"
    "    return errors / max(words, 1)\n"
)

INVALID = [
    (
        "a dict handed to a method of an object built in the same call, which only reads it",
        "def prepare(n):\n    x = np.ones((n, 3))\n"
        '    return {"std": x.std(axis=0), "x": x}\n'
        "class Trainer:\n    def __init__(self, k):\n        self.best = 0.0\n"
        "    def fit(self, data):\n"
        '        self.best = max(self.best, float(data["x"].sum()))\n        return self\n'
        "def quick(n):\n    data = prepare(n)\n    trainer = Trainer(3).fit(data)\n"
        '    return "args", data, trainer\n'
        'def save(path):\n    args, data, t = quick(4)\n    torch.save({"std": data["std"]}, path)\n',
        [(16, "std")],
    ),
    (
        "a numpy sum over a count the builtins made from Python numbers",
        RATE + 'def save(path):\n    torch.save({"wer": rate(["a b"], ["a c"])}, path)\n',
        [(9, "wer")],
    ),
    (
        "a dict filled in a loop under keys not known, put in the dict saved by name",
        "def moments(x):\n    f = np.fft.rfftfreq(8)\n"
        '    return {"tp": 1.0 / f[np.argmax(x)], "n": 8}\n'
        "def save(path, sites):\n    stats = {}\n"
        "    for k, (site, x) in enumerate(sites.items()):\n"
        "        mom = moments(x)\n"
        '        stats[site] = {"tp": mom["tp"], "n": mom["n"]}\n'
        '    ckpt = {"stats": stats, "epoch": 1}\n'
        "    torch.save(ckpt, path)\n",
        [(8, "tp")],
    ),
    (
        "an item of a dict a helper returned under a key of the dict it returns",
        NESTED_RUN + "def save(path):\n    run = fit()\n"
        '    torch.save({"median": run["data"]["median"], "f1": run["metrics"]["f1"]}, path)\n',
        [(12, "median"), (12, "f1")],
    ),
    (
        "a method of an object whose own object was built from the arguments it was given",
        "@dataclasses.dataclass\nclass Cfg:\n    thr: float = 0.2\n"
        "def ratio(a, thr):\n    hit = a <= thr\n    return hit.sum() / max(int(hit.size), 1)\n"
        "class Evaluator:\n    def __init__(self, thr=0.5):\n        self.thr = thr\n"
        "        self.preds = []\n"
        "    def compute(self):\n"
        '        return {"pck": ratio(np.asarray(self.preds), self.thr)}\n'
        "class Trainer:\n    def __init__(self, cfg):\n        self.cfg = cfg\n"
        "        self.evaluator = Evaluator(thr=self.cfg.thr)\n"
        "    def validate(self):\n        self.evaluator.preds.append(0.1)\n"
        "        return self.evaluator.compute()\n"
        "def save(path):\n    t = Trainer(Cfg())\n"
        '    torch.save({"pck": t.validate()["pck"]}, path)\n',
        [(22, "pck")],
    ),
    (
        "a method's result after another method reset the object its `__init__` also resets",
        "class Meter:\n    def __init__(self, thr=0.5):\n        self.thr = thr\n"
        "        self.reset()\n    def reset(self):\n        self.scores = []\n"
        "    def update(self, s):\n        self.scores.append(s)\n"
        "    def compute(self):\n"
        "        hits, frac = _hits(np.asarray(self.scores), self.thr)\n"
        '        return {"frac": frac}\n'
        "def _hits(scores, thr):\n    hit = scores >= thr\n    return hit, hit.mean()\n"
        "def save(path):\n    m = Meter()\n    m.reset()\n    m.update(0.7)\n"
        '    torch.save({"frac": m.compute()["frac"]}, path)\n',
        [(19, "frac")],
    ),
    (
        "a saving method of a project instance a helper returns in a tuple",
        SAVERS + "def setup(argv):\n    args = argparse.ArgumentParser().parse_args(argv)\n"
        "    return args, Trainer(), [1, 2]\n"
        "def save(tmpdir):\n    args, trainer, batches = setup([])\n"
        '    trainer.save_checkpoint(os.path.join(tmpdir, "t.pt"), {"args": args, "n": len(batches)})\n',
        [(16, "args")],
    ),
    (
        "a local dict's entries copied in by update(name)",
        "def parse():\n    p = argparse.ArgumentParser()\n    return p.parse_args([])\n"
        'def save(path):\n    meta = {"args": parse(), "out": Path("runs") / "x"}\n'
        '    ckpt = {"epoch": 1}\n    ckpt.update(meta)\n    torch.save(ckpt, path)\n',
        [(5, "args"), (5, "out")],
    ),
    (
        "a helper's tuple result by position, its parameters bound to the call's arguments",
        MATCH + "def save(path):\n    rng = np.random.default_rng(0)\n"
        "    scores = rng.random(10)\n"
        '    torch.save({"order": match(scores, 0.5)[1], "top": match(scores, 0.5)[1][0]}, path)\n',
        [(7, "order"), (7, "top")],
    ),
    (
        "a helper's dict result by key, the helper drawing from the generator it is given",
        "def draw(rng):\n"
        '    return {"snr": rng.integers(5, 20), "gain": rng.uniform(-6.0, 6.0)}\n'
        "def save(path):\n    aug = draw(np.random.default_rng(1))\n"
        '    torch.save({"aug": {"snr": aug["snr"], "gain": aug["gain"]}}, path)\n',
        [(5, "snr")],
    ),
    (
        "unpacked tuple items bound through the call, kept over a negative literal in a loop",
        "def rates(scores, positives):\n"
        "    hits = np.argsort(-scores, axis=1)[:, :5] == positives[:, None]\n"
        "    return hits.any(axis=1).mean(), np.where(hits.any(axis=1), 1.0, 0.0).mean()\n"
        "def save(path):\n    best, best_epoch = -1.0, -1\n"
        "    for epoch in range(3):\n"
        "        hr, ndcg = rates(np.zeros((4, 9)), np.arange(4))\n"
        "        if ndcg > best:\n            best, best_epoch = ndcg, epoch\n"
        '    torch.save({"hr": hr, "best": best, "epoch": best_epoch}, path)\n',
        [(10, "hr"), (10, "best")],
    ),
    (
        "a dict result handed to helpers and methods that only read it",
        EVALUATE + "def report(metrics):\n"
        '    if "loss" in metrics and metrics.get("n"):\n        print(len(metrics), metrics["loss"])\n'
        "class Trainer:\n    def update_best(self, metrics):\n"
        '        value = metrics["loss"]\n        return value\n'
        "def save(path):\n    metrics = evaluate(None)\n    report(metrics)\n"
        "    trainer = Trainer()\n    trainer.update_best(metrics)\n    print(metrics)\n"
        '    torch.save({"loss": metrics["loss"]}, path)\n',
        [(17, "loss")],
    ),
    (
        "a saving method of a local project instance, nesting what it is given in its dict",
        "class Trainer:\n    def __init__(self):\n        self.epoch = 0\n"
        "    def save_checkpoint(self, filename, meta):\n"
        '        ckpt = {"epoch": self.epoch, "meta": meta}\n        torch.save(ckpt, filename)\n'
        "def save_ckpt(path, extra):\n"
        '        print(len(extra))\n        torch.save({"model": 1, "extra": extra}, path)\n'
        'def save(tmpdir):\n    trainer = Trainer()\n    meta = {"epoch": 1}\n'
        '    meta["norm"] = dict(mean=np.array([1.0, 2.0]), to_rgb=True)\n'
        '    trainer.save_checkpoint(os.path.join(tmpdir, "e.pth"), meta)\n'
        '    save_ckpt("x.pt", {"best": Path("runs") / "best"})\n',
        [(13, "mean"), (15, "best")],
    ),
    (
        "a nested dataclass field as the constructor call passed it, by keyword or position",
        DATACLASSES + "def save(path):\n"
        "    cfg = Config(window=Window(freq=Frequency.HOURLY))\n"
        "    other = Config(Window(6, Frequency.HOURLY))\n"
        '    torch.save({"freq": cfg.window.freq, "f2": other.window.freq}, path)\n',
        [(14, "freq"), (14, "f2")],
    ),
    (
        "what a method of a local project instance returns, by position or whole",
        SERVER + "def save(path):\n    server = Server()\n    chosen, rnd = server.step()\n"
        "    torch.save(dict(last=chosen, rnd=rnd, s=server.sample(), t=server.step()[0]), path)\n",
        [(21, "last"), (21, "s"), (21, "t")],
    ),
    (
        "a local holding a helper's tuple, read by position from either end",
        "def run():\n    return 1.0, np.zeros(3)\n"
        "def save(path):\n    out = run()\n"
        '    torch.save({"preds": out[1], "last": out[-1]}, path)\n',
        [(5, "preds"), (5, "last")],
    ),
    (
        "copies of a local dict, dict(base, k=v), a defaultdict copied whole, .get of a known key",
        "import collections, copy\n" + EVALUATE + "def save(path):\n"
        '    base = {"mean": np.zeros(2), "n": 1}\n    a = base.copy()\n'
        "    b = dict(base, epoch=3)\n    c = copy.deepcopy(base)\n"
        "    hist = collections.defaultdict(list)\n    h = hist.copy()\n"
        "    metrics = evaluate(None)\n"
        '    torch.save({"a": a, "b": b, "c": c, "h": h, "loss": metrics.get("loss")}, path)\n',
        [(6, "mean"), (11, "h"), (13, "loss")],
    ),
    (
        "a helper's dict built key by key and returned by name",
        'def evaluate(losses):\n    metrics = {}\n    metrics["loss"] = np.mean(losses)\n'
        '    metrics["n"] = len(losses)\n    metrics["acc"] = float(np.mean(losses))\n'
        "    return metrics\n"
        "def save(path):\n    m = evaluate([1.0])\n"
        '    torch.save({"loss": m["loss"], "n": m["n"], "acc": m["acc"]}, path)\n',
        [(9, "loss")],
    ),
    (
        "a numpy SeedSequence and the list its spawn gives",
        "def save(path, n):\n    seed_seq = np.random.SeedSequence(42)\n"
        "    client_seeds = seed_seq.spawn(n)\n"
        '    torch.save({"seeds": client_seeds, "ss": seed_seq}, path)\n',
        [(4, "seeds"), (4, "ss")],
    ),
    (
        "a list comprehension keeping the elements of a numpy array",
        "def save(path):\n    thresholds = np.linspace(0.5, 0.95, 10)\n"
        '    torch.save({"coco": [t for t in thresholds if t <= 0.75]}, path)\n',
        [(3, "coco")],
    ),
    (
        "a key of a helper's `dict(k=v)` result",
        "def evaluate(losses):\n    return dict(loss=np.mean(losses), n=len(losses))\n"
        "def save(path):\n    metrics = evaluate([1.0, 2.0])\n"
        '    torch.save({"loss": metrics["loss"], "n": metrics["n"]}, path)\n',
        [(5, "loss")],
    ),
    (
        "a number over an int of `x.shape` is still a numpy scalar",
        "def save(path):\n    images = np.zeros((4, 8, 8))\n    h, w = images.shape[1:3]\n"
        '    focal = 0.5 * w / np.tan(0.3)\n    torch.save({"hwf": [h, w, focal]}, path)\n',
        [(5, "hwf")],
    ),
    (
        "keys an update with prefixed comprehension keys cannot reach",
        "def evaluate(x):\n"
        '    metrics = {"ade": np.mean(x), "n": len(x)}\n'
        '    metrics.update({f"torch_{k}": float(v) for k, v in metrics.items()})\n'
        "    return metrics\n"
        "def save(path):\n    m = evaluate([1.0])\n"
        '    torch.save({"ade": m["ade"], "n": m["n"]}, path)\n',
        [(7, "ade")],
    ),
    (
        "a reduction with an axis of a norm taken over an axis",
        "def save(path):\n    x = np.ones((2, 3, 4))\n"
        "    dist = np.linalg.norm(x, axis=-1)\n"
        '    torch.save({"ade": dist.mean(-1).min(0).mean()}, path)\n',
        [(4, "ade")],
    ),
    (
        "names beside a nested tuple target keep what the helper returned",
        DATACLASSES + "class Trainer:\n    def __init__(self):\n"
        "        self.model = torch.nn.Linear(2, 1)\n"
        "        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)\n"
        "        self.gen = torch.Generator().manual_seed(0)\n"
        "def run():\n    cfg = Config()\n    trainer = Trainer()\n"
        "    return cfg, trainer, (np.float64(0.5), 2.0)\n"
        + "def save(path):\n    cfg, trainer, (jf, *rest) = run()\n"
        "    torch.save(dict(opt=trainer.optimizer, gen=trainer.gen, lr=cfg.lr), path)\n",
        [(22, "opt"), (22, "gen")],
    ),
    (
        "a nested tuple target takes the inner tuple every return of the helper shows",
        "def stats(x):\n    return np.nanmean(x, axis=0), np.nanstd(x, axis=0)\n"
        "def setup(x, w):\n    mean, std = stats(x)\n    pos = np.count_nonzero(x)\n"
        "    return 1, (mean, std), w, (pos, 2.0)\n"
        "def save(path):\n    x = np.ones((3, 2))\n"
        "    _, (mean, std), w, (pos, two) = setup(x, None)\n"
        '    torch.save({"std": std, "pos": pos, "two": two, "w": w}, path)\n',
        [(10, "std"), (10, "pos")],
    ),
    (
        "a flag that is unset unless given falls back to a numpy ratio on a plain run",
        "def parse(argv=None):\n    p = argparse.ArgumentParser()\n"
        '    p.add_argument("--pos-weight", type=float, default=None)\n'
        '    p.add_argument("--smooth", action="store_true")\n'
        "    return p.parse_args(argv)\n"
        "def save(path):\n    args = parse([])\n    y = np.array([0, 1, 1])\n"
        "    ratio = np.count_nonzero(y == 0) / np.count_nonzero(y == 1)\n"
        "    w = args.pos_weight or ratio\n    s = args.smooth or np.float64(0.1)\n"
        '    torch.save({"w": w, "s": s}, path)\n',
        [(12, "w"), (12, "s")],
    ),
    (
        "a nested tuple target takes the tuple of the helper the return calls",
        "def evaluate(y, p):\n    err = np.abs(y - p)\n    return err.mean(), float(err.max())\n"
        "def run(y):\n    model = 3\n    return model, evaluate(y, y * 0.5)\n"
        "def save(path):\n    model, (mae, worst) = run(np.ones(3))\n"
        '    torch.save({"mae": mae, "worst": worst}, path)\n',
        [(9, "mae")],
    ),
    (
        "an item of the list a starred target takes, read by its constant position",
        "def run():\n    model = torch.nn.Linear(2, 2)\n"
        '    return "args", 1, np.float64(2.0), model, 3.0\n'
        "def save(path):\n    args, *rest = run()\n    model = rest[2]\n"
        '    torch.save({"model": model, "mean": rest[1], "n": rest[0], "last": rest[3]}, path)\n',
        [(7, "model"), (7, "mean")],
    ),
    (
        "a nested tuple target of a method's result",
        "class Runner:\n    def __init__(self):\n        self.best = 0.0\n"
        "    def run(self, x):\n        return x, (np.float64(1.0), 2.0)\n"
        "def save(path):\n    r = Runner()\n    _, (score, weight) = r.run(3)\n"
        '    torch.save({"score": score, "weight": weight}, path)\n',
        [(9, "score")],
    ),
    (
        "a nested tuple target unpacking a nested tuple display",
        "def save(path):\n"
        "    name, (score, weight) = 'run', (np.float64(0.5), 2.0)\n"
        '    torch.save({"score": score, "weight": weight, "name": name}, path)\n',
        [(3, "score")],
    ),
    (
        "a key a prefixed key written in a loop cannot reach",
        "def evaluate(rr, ks):\n"
        '    out = {"mrr": np.mean(rr), "n": len(rr)}\n'
        "    for k in ks:\n"
        '        out[f"success@{k}"] = sum(r >= 1.0 / k for r in rr) / len(rr)\n'
        "    return out\n"
        "def save(path):\n    metrics = evaluate([1.0], list(range(1, 4)))\n"
        '    torch.save({"mrr": metrics["mrr"], "n": metrics["n"]}, path)\n',
        [(8, "mrr")],
    ),
    (
        "keys written with the literals a loop takes",
        "def recall(ranks, ks=(1, 5)):\n"
        "    out = {}\n"
        "    for k in ks:\n"
        '        out[f"R@{k}"] = (ranks < k).mean()\n'
        '        out[f"hits@{k}"] = int((ranks < k).sum())\n'
        '    for name in ("a", "b"):\n'
        '        out[f"{name}_mean"] = ranks.mean()\n'
        "    return out\n"
        "def save(path):\n    m = recall(np.arange(4))\n"
        '    torch.save({"r1": m["R@1"], "r5": m["R@5"], "h": m["hits@1"], "a": m["a_mean"]}, path)\n',
        [(11, "r1"), (11, "r5"), (11, "a")],
    ),
    (
        "the best metrics kept in a loop, from None, through a tuple assignment",
        "def evaluate(xs):\n"
        '    return {"mae": float(np.abs(xs).mean()), "ssim": np.mean(xs)}\n'
        "\n"
        "\n"
        "def save(p):\n"
        '    best_mae, best_metrics = float("inf"), None\n'
        "    for epoch in range(3):\n"
        "        metrics = evaluate(np.ones(3))\n"
        '        if metrics["mae"] < best_mae:\n'
        '            best_mae, best_metrics = metrics["mae"], metrics\n'
        '    torch.save({"ssim": best_metrics["ssim"], "mae": best_mae}, p)\n',
        [(11, "ssim")],
    ),
    (
        "a dict a method returns beside another value, unpacked next to an attribute",
        "class Miner:\n"
        "    def __init__(self):\n"
        "        self.negatives = {}\n"
        "\n"
        "    def mine(self, xs):\n"
        "        margins = np.asarray(xs, dtype=np.float32)\n"
        '        return {}, {"margin": margins.mean(), "p50": float(np.median(margins))}\n'
        "\n"
        "\n"
        "def save(p):\n"
        "    miner = Miner()\n"
        "    miner.negatives, stats = miner.mine([1.0, 2.0])\n"
        '    torch.save({"margin": stats["margin"], "p50": stats["p50"]}, p)\n',
        [(13, "margin")],
    ),
    (
        "a dict a helper keeps as its best (None until a loop's `if`), read by key through a local",
        "def evaluate(x):\n    probs = np.asarray(x)\n"
        '    return {"conf": probs.max(1).mean(), "n": 3}\n'
        "def run(x):\n    best = None\n    for epoch in range(3):\n"
        "        metrics = evaluate(x)\n        if epoch > 1:\n            best = metrics\n"
        '    return {"best": best, "epochs": 3}\n'
        'def save(p):\n    r = run([[0.2, 0.8], [0.6, 0.4]])\n    metrics = r["best"]\n'
        '    torch.save({"conf": metrics["conf"], "n": metrics["n"]}, p)\n',
        [(14, "conf")],
    ),
    (
        "a helper's tuple unpacked into a dict's item and a name: the name takes its element",
        "from sklearn.preprocessing import StandardScaler\n"
        "def scale(x):\n    scaler = StandardScaler().fit(x)\n"
        "    return scaler.transform(x), scaler\n"
        'def save(p):\n    data = {"feats": np.ones((4, 2)) * np.arange(4)[:, None]}\n'
        '    data["feats"], scaler = scale(data["feats"])\n'
        '    torch.save({"scale": scaler.scale_, "n": len(data["feats"])}, p)\n',
        [(8, "scale")],
    ),
    (
        "an array compared with an item of a module-level table of numbers",
        'THRESHOLDS = {"C": 1e-6, "M": 1e-5}\n'
        "def label(flux, cls):\n    return (flux >= THRESHOLDS[cls]).astype(np.int64)\n"
        "def save(p):\n    y = label(10.0 ** np.linspace(-7, -4, 6), 'C')\n"
        '    torch.save({"rate": y.mean(), "n": len(y)}, p)\n',
        [(6, "rate")],
    ),
    (
        "a sub-config and a list of lists of a config created from a YAML text's load, merged "
        "with overrides",
        "import yaml\nfrom omegaconf import OmegaConf\n"
        'TEXT = """\nenv:\n  name: w\n  goals: [[7, 7], [0, 7]]\nagent:\n  lr: 0.001\n"""\n'
        "def load_config(overrides=()):\n"
        "    base = OmegaConf.create(yaml.safe_load(TEXT))\n"
        "    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))\n"
        "def save(p):\n    cfg = load_config(['agent.lr=0.01'])\n"
        '    torch.save({"env": cfg.env, "goals": list(cfg.env.goals),'
        ' "lr": cfg.agent.lr, "name": cfg.env.name}, p)\n',
        [(15, "env"), (15, "goals")],
    ),
    (
        "the best and the last of a list a dict display holds, appended numpy scalars",
        "def save(p):\n"
        '    history = {"ap50": [], "loss": []}\n'
        "    for epoch in range(3):\n"
        '        history["ap50"].append(np.float64(0.1) * epoch)\n'
        '        history["loss"].append(float(epoch))\n'
        '    torch.save({"best": max(history["ap50"]), "last": history["ap50"][-1],\n'
        '                "loss": history["loss"]}, p)\n',
        [(6, "best"), (6, "last")],
    ),
    (
        "a date of a YAML text a helper's parameter defaults to, the helper called without it",
        "import yaml\n"
        'RUN_YAML = """\ndata:\n  acquired_after: 2019-06-01\n  tile: 256\n"""\n'
        "def load_config(text=RUN_YAML):\n    return yaml.safe_load(text)\n"
        "def save(p):\n    cfg = load_config()\n"
        '    torch.save({"after": cfg["data"]["acquired_after"], "tile": cfg["data"]["tile"]}, p)\n',
        [(11, "after")],
    ),
    (
        "a tuple saved with a local dict display holding a namedtuple",
        "class Bounds(typing.NamedTuple):\n    left: float\n    right: float\n"
        "def save(p, model):\n"
        '    meta = {"classes": ["ice", "rock"], "bounds": Bounds(0.0, 1.0)}\n'
        "    torch.save((model.state_dict(), meta), p)\n",
        [(6, None)],
    ),
    (
        "keys of a method's dict a helper returns as one element of a tuple; a linalg solve",
        "class Est:\n    def solve(self, z):\n        x = np.zeros(3)\n        ok = False\n"
        "        for it in range(1, 5):\n"
        "            dx = np.linalg.solve(np.eye(3), z - x)\n            x = x + dx\n"
        "            ok = np.abs(dx).max() < 1e-6\n"
        '        return {"vm": x[1:], "converged": ok, "iterations": it}\n'
        "def snapshot():\n    est = Est()\n    z = np.ones(3)\n    return est, z, est.solve(z)\n"
        "def save(p):\n    est, z, result = snapshot()\n"
        '    torch.save({"vm": result["vm"], "ok": result["converged"],'
        ' "n": result["iterations"]}, p)\n',
        [(16, "vm"), (16, "ok")],
    ),
    (
        "the best numpy score of a loop that starts at math.inf, also in a tuple assignment",
        "import math\n"
        "def save(p):\n"
        "    best_rmse, best_state = math.inf, None\n"
        "    lowest = -np.inf\n"
        "    for epoch in range(3):\n"
        "        rmse = np.sqrt(np.mean(np.ones(3) * epoch))\n"
        "        if rmse < best_rmse:\n"
        "            best_rmse = rmse\n"
        "        lowest = max(lowest, rmse)\n"
        '    torch.save({"best": best_rmse, "lowest": lowest}, p)\n',
        [(10, "best"), (10, "lowest")],
    ),
    (
        "per-class scores of precision_recall_fscore_support left at its default average",
        "from sklearn.metrics import precision_recall_fscore_support\n"
        "def evaluate(y, p):\n"
        "    _, _, per_type, _ = precision_recall_fscore_support(y, p, zero_division=0)\n"
        "    return 0.5, per_type\n"
        "def save(p):\n"
        "    f1, per_type = evaluate([0, 1, 1], [0, 1, 0])\n"
        '    torch.save({"per_type": per_type}, p)\n',
        [(7, "per_type")],
    ),
    (
        "an element of a tuple display kept as the best and unpacked after the loop",
        "def save(p, model):\n"
        "    best = None\n"
        "    for epoch in range(3):\n"
        "        f1, per_class = float(epoch), np.ones(3) * epoch\n"
        "        if best is None or f1 >= best[0]:\n"
        "            best = (f1, per_class, model.state_dict())\n"
        "    f1, per_class, ckpt = best\n"
        '    ckpt["per_class"] = per_class\n'
        "    torch.save(ckpt, p)\n",
        [(8, "per_class")],
    ),
    (
        "the items of a ufunc of a scipy result's array, unpacked",
        "from scipy import optimize\n"
        "def save(p):\n"
        "    res = optimize.minimize(lambda x: float((x ** 2).sum()), x0=np.ones(2))\n"
        "    a, b = np.exp(res.x)\n"
        '    torch.save({"share": a / (a + b)}, p)\n',
        [(5, "share")],
    ),
]

VALID = [
    (
        "a dict handed to a method of an object built in the call, which rewrites a key",
        "def prepare(n):\n    x = np.ones((n, 3))\n"
        '    return {"std": x.std(axis=0), "x": x}\n'
        "class Trainer:\n    def __init__(self, k):\n        self.best = 0.0\n"
        "    def fit(self, data):\n"
        '        data["std"] = data["std"].tolist()\n        return self\n'
        "def quick(n):\n    data = prepare(n)\n    trainer = Trainer(3).fit(data)\n"
        '    return "args", data, trainer\n'
        'def save(path):\n    args, data, t = quick(4)\n    torch.save({"std": data["std"]}, path)\n',
    ),
    (
        "an item of a module-level table of numbers is a Python number",
        'THRESHOLDS = {"C": 1e-6, "M": 1e-5}\n'
        "def save(p, cls='M'):\n"
        '    torch.save({"thr": THRESHOLDS[cls], "scaled": THRESHOLDS["C"] * 2}, p)\n',
    ),
    (
        "counts the builtins make from Python numbers, and a rate of Python numbers",
        RATE + "def save(path):\n    refs = ['a b', 'c']\n"
        '    torch.save({"words": sum(len(r.split()) for r in refs),'
        ' "longest": max([len(r) for r in refs]), "wer": float(rate(refs, refs))}, path)\n',
    ),
    (
        "nested items that load, or made to load before the save",
        NESTED_RUN + "def save(path):\n    run = fit()\n"
        '    run["data"]["median"] = float(run["data"]["median"])\n'
        '    torch.save({"median": run["data"]["median"], "n": run["data"]["n"],'
        ' "e": run["metrics"]["epoch"], "f1": float(run["metrics"]["f1"])}, path)\n',
    ),
    (
        "the saver of the object at the name's own position of a helper's tuple, or none",
        SAVERS + "def setup(argv):\n    args = argparse.ArgumentParser().parse_args(argv)\n"
        "    return Exporter(), Trainer(), args\n"
        "def save(tmpdir, other):\n    exporter, trainer, args = setup([])\n"
        '    exporter.save_checkpoint("e.pt", {"args": args})\n'
        "    trainer = other\n"
        '    trainer.save_checkpoint("t.pt", {"args": args})\n',
    ),
    (
        "a dict result handed to helpers and methods that change it, or keep it",
        EVALUATE + "def fix(metrics):\n"
        '    metrics["loss"] = float(metrics["loss"])\n'
        "def fix2(metrics):\n    metrics.update(loss=1.0)\n"
        "def keep(metrics, store):\n    store.append(metrics)\n"
        "class Trainer:\n    def clean(self, metrics):\n"
        "        for k in list(metrics):\n            metrics[k] = float(metrics[k])\n"
        "def save(path):\n"
        "    a = evaluate(None)\n    fix(a)\n"
        "    b = evaluate(None)\n    fix2(b)\n"
        "    c = evaluate(None)\n    Trainer().clean(c)\n    t = Trainer()\n"
        "    d = evaluate(None)\n    t.clean(d)\n"
        "    e = evaluate(None)\n    keep(e, [])\n"
        '    torch.save({"a": a["loss"], "b": b["loss"], "c": c["loss"], "d": d["loss"],'
        ' "e": e["loss"]}, path)\n',
    ),
    (
        "tuple and dict results converted, loadable items, update with a converted dict",
        MATCH + "def draw(rng):\n"
        '    return {"gain": rng.uniform(-6.0, 6.0), "snr": int(rng.integers(5, 20))}\n'
        "def save(path):\n    scores = np.random.default_rng(0).random(10)\n"
        "    aug = draw(np.random.default_rng(1))\n"
        '    meta = {"order": match(scores, 0.5)[1].tolist(), "out": str(Path("runs") / "x")}\n'
        '    ckpt = {"snr": aug["snr"], "gain": aug["gain"]}\n    ckpt.update(meta)\n'
        '    ckpt["top"] = int(match(scores, 0.5)[1][0])\n'
        "    torch.save(ckpt, path)\n",
    ),
    (
        "a negative literal best never improved by a numpy value",
        "def save(path):\n    best, best_epoch = -1.0, -1\n"
        "    for epoch in range(3):\n        score = float(np.mean([epoch]))\n"
        "        if score > best:\n            best, best_epoch = score, epoch\n"
        '    torch.save({"best": best, "epoch": best_epoch}, path)\n',
    ),
    (
        "savers that change what they are given, write two parameters, or are no project class's",
        "class Trainer:\n"
        "    def save_checkpoint(self, filename, meta):\n"
        '        meta["norm"] = {k: float(v) for k, v in meta["norm"].items()}\n'
        '        torch.save({"meta": meta}, filename)\n'
        "def save_both(path, a, b):\n"
        '    torch.save({"a": a, "b": b}, path)\n'
        "def save(tmpdir, other):\n    trainer = Trainer()\n"
        '    meta = {"norm": dict(mean=np.array([1.0, 2.0]))}\n'
        '    trainer.save_checkpoint("e.pth", meta)\n'
        '    save_both("x.pt", {"p": Path("a")}, 1)\n'
        '    other.save_checkpoint("o.pth", {"p": Path("a")})\n',
    ),
    (
        "nested dataclass fields passed loadable values, or shifted by a ClassVar",
        DATACLASSES + "@dataclasses.dataclass\nclass Shifted:\n"
        "    kind: typing.ClassVar[str] = 'x'\n    freq: str = 'h'\n    mode: object = None\n"
        "def save(path):\n"
        "    cfg = Config(window=Window(freq=Frequency.HOURLY.value), lr=0.2)\n"
        "    other = Config(Window(6, 'D'))\n    s = Shifted('h', Frequency.HOURLY)\n"
        '    torch.save({"freq": cfg.window.freq, "h": cfg.window.horizon, "lr": cfg.lr,'
        ' "f2": other.window.freq, "f3": s.freq}, path)\n',
    ),
    (
        "methods returning loadable values, converted results, unknown receivers",
        SERVER + "def save(path, other):\n    server = Server()\n    chosen, rnd = server.step()\n"
        "    torch.save(dict(last=chosen.tolist(), rnd=rnd, p=server.plain(),"
        " o=other.sample(), r=server.round), path)\n",
    ),
    (
        "a local holding a helper's tuple: its loadable element, or the name rebound",
        "def run():\n    return 1.0, np.zeros(3)\n"
        "def save(path):\n    out = run()\n    other = run()\n    other = [1, 2]\n"
        '    torch.save({"loss": out[0], "first": out[-2], "o": other[1]}, path)\n',
    ),
    (
        "a defaultdict turned into a plain dict, a copy changed after, .get of a loadable key",
        "import collections\n" + EVALUATE + "def save(path):\n"
        "    hist = collections.defaultdict(list)\n    h = dict(hist)\n"
        '    base = {"mean": np.zeros(2)}\n    a = base.copy()\n    a["mean"] = a["mean"].tolist()\n'
        "    metrics = evaluate(None)\n"
        '    torch.save({"h": h, "a": a, "n": metrics.get("n")}, path)\n',
    ),
    (
        "a display's key set anew before the save, by assignment or update",
        "def save(path):\n"
        '    ckpt = {"mean": np.zeros(2), "std": np.ones(2), "n": 1}\n'
        '    ckpt["mean"] = ckpt["mean"].tolist()\n    ckpt.update(std=[1.0, 1.0])\n'
        "    torch.save(ckpt, path)\n",
    ),
    (
        "a helper's dict key converted after it was set, or set by a variable key",
        'def evaluate(losses, name):\n    metrics = {}\n    metrics["loss"] = np.mean(losses)\n'
        '    metrics["loss"] = float(metrics["loss"])\n    metrics["acc"] = np.mean(losses)\n'
        "    metrics[name] = 0.0\n    return metrics\n"
        "def save(path):\n    m = evaluate([1.0], 'acc')\n"
        '    torch.save({"loss": m["loss"], "acc": m["acc"]}, path)\n',
    ),
    (
        "a SeedSequence's entropy and its children's",
        "def save(path, n):\n    seed_seq = np.random.SeedSequence(42)\n"
        "    client_seeds = seed_seq.spawn(n)\n"
        '    torch.save({"entropy": seed_seq.entropy,'
        ' "keys": [s.entropy for s in client_seeds]}, path)\n',
    ),
    (
        "comprehensions converting numpy elements, or whose name hides an outer numpy local",
        "def save(path):\n    thresholds = np.linspace(0.5, 0.95, 10)\n    t = np.float64(1.0)\n"
        '    torch.save({"f": [round(float(t), 2) for t in thresholds],'
        ' "n": [t for t in range(3)], "s": {t.item() for t in thresholds}}, path)\n',
    ),
    (
        "keys of a helper's `dict(k=v)` result holding plain values",
        "def evaluate(losses):\n    return dict(loss=float(np.mean(losses)), n=len(losses))\n"
        "def save(path):\n    metrics = evaluate([1.0, 2.0])\n"
        '    torch.save({"loss": metrics["loss"], "n": metrics["n"]}, path)\n',
    ),
    (
        "a loop whose body hands away an object a method filled (its keys forgotten, no crash)",
        "class Pool:\n    def __init__(self):\n        self.images = []\n"
        "    def push(self, x):\n        self.images.append(np.float64(x))\n"
        "class Model:\n    def __init__(self):\n        self.pool = Pool()\n"
        "    def step(self):\n        self.pool.push(1.0)\n"
        "def save(p):\n    model = Model()\n    model.step()\n    state = {}\n"
        '    for name in ("a", "b"):\n        state[name] = getattr(model, name)\n'
        '    state["pool"] = model.pool.images\n    torch.save(state, p)\n',
    ),
    (
        "the ints of `x.shape`, and the key a prefixed update may change",
        "def evaluate(x):\n"
        '    metrics = {"torch_ade": 1.0, "n": len(x)}\n'
        '    metrics.update({f"torch_{k}": np.float64(v) for k, v in {"x": 1.0}.items()})\n'
        "    return metrics\n"
        "def save(path):\n    images = np.zeros((4, 8, 8))\n    h, w = images.shape[1:3]\n"
        "    m = evaluate([1.0])\n"
        '    torch.save({"hw": [h, w], "focal": 0.5 * w, "n": m["n"]}, path)\n',
    ),
    (
        "a flag with a default of its own, or defaults the parser may set, decides the value",
        "def parse(argv=None):\n    p = argparse.ArgumentParser()\n"
        '    p.add_argument("--pos-weight", type=float, default=2.0)\n'
        '    p.add_argument("--alpha", type=float)\n'
        "    p.set_defaults(alpha=0.5)\n"
        "    return p.parse_args(argv)\n"
        "def save(path):\n    args = parse([])\n    y = np.array([0, 1, 1])\n"
        "    ratio = np.count_nonzero(y == 0) / np.count_nonzero(y == 1)\n"
        "    w = args.pos_weight or ratio\n    a = args.alpha or ratio\n"
        '    torch.save({"w": w, "a": a}, path)\n',
    ),
    (
        "a flag unset by default that the run passes holds what it was given",
        "def parse(argv=None):\n    p = argparse.ArgumentParser()\n"
        '    p.add_argument("--pos-weight", type=float, default=None)\n'
        "    return p.parse_args(argv)\n"
        'def save(path):\n    args = parse(["--epochs", "3", "--pos-weight=4.0"])\n'
        "    y = np.array([0, 1, 1])\n"
        "    w = args.pos_weight or np.count_nonzero(y == 0) / np.count_nonzero(y == 1)\n"
        '    torch.save({"w": w}, path)\n',
    ),
    (
        "a flag the caller's command line passes, read by the helper the namespace is given",
        "def parse(argv=None):\n    p = argparse.ArgumentParser()\n"
        '    p.add_argument("--pos-weight", type=float, default=None)\n'
        "    return p.parse_args(argv)\n"
        "def setup(args):\n    y = np.array([0, 1, 1])\n"
        "    w = args.pos_weight or np.count_nonzero(y == 0) / np.count_nonzero(y == 1)\n"
        "    return 1, w\n"
        'def save(path):\n    args = parse(["--pos-weight", "4.0"])\n    _, w = setup(args)\n'
        '    torch.save({"w": w}, path)\n',
    ),
    (
        "a nested tuple target of a helper's result: a Python float inside it loads",
        DATACLASSES + "class Trainer:\n    def __init__(self):\n"
        "        self.model = torch.nn.Linear(2, 1)\n"
        "        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)\n"
        "        self.gen = torch.Generator().manual_seed(0)\n"
        "def run():\n    cfg = Config()\n    trainer = Trainer()\n"
        "    return cfg, trainer, (np.float64(0.5), 2.0)\n"
        + "def save(path):\n    cfg, trainer, (jf, weight) = run()\n"
        "    torch.save(dict(model=trainer.model.state_dict(), weight=weight, lr=cfg.lr), path)\n",
    ),
    (
        "a key a suffixed key written in a loop may be: unknown",
        "def evaluate(rr, names):\n"
        '    out = {"top_mrr": np.mean(rr), "n": len(rr)}\n'
        "    for k in names:\n"
        '        out[f"{k}_mrr"] = 1.0\n'
        "    return out\n"
        "def save(path):\n    metrics = evaluate([1.0], sorted({'top'}))\n"
        '    torch.save({"mrr": metrics["top_mrr"], "n": metrics["n"]}, path)\n',
    ),
    (
        "loop keys holding Python numbers",
        "def recall(ranks, ks=(1, 5)):\n"
        "    out = {}\n"
        "    for k in ks:\n"
        '        out[f"R@{k}"] = float((ranks < k).mean())\n'
        "    return out\n"
        "def save(path):\n    m = recall(np.arange(4))\n"
        '    torch.save({"r1": m["R@1"], "r5": m["R@5"]}, path)\n',
    ),
    (
        "a key a helper sets to a float, beside keys of numpy values",
        "def evaluate(hits, topk=(1, 5)):\n"
        '    out = {f"recall@{t}": hits[:, :t].any(1).mean() for t in topk}\n'
        '    out["mrr"] = float(np.mean(hits.argmax(1) + 1.0))\n'
        "    return out\n"
        "\n"
        "\n"
        "def save(p):\n"
        "    metrics = evaluate(np.zeros((3, 5), dtype=bool))\n"
        '    torch.save({"mrr": metrics["mrr"]}, p)\n',
    ),
    (
        "the best metrics kept in a loop, from None, as Python floats",
        "def evaluate(xs):\n"
        '    return {"mae": float(np.abs(xs).mean()), "ssim": float(np.mean(xs))}\n'
        "\n"
        "\n"
        "def save(p):\n"
        '    best_mae, best_metrics = float("inf"), None\n'
        "    for epoch in range(3):\n"
        "        metrics = evaluate(np.ones(3))\n"
        '        if metrics["mae"] < best_mae:\n'
        "            best_metrics = metrics\n"
        '    torch.save({"ssim": best_metrics["ssim"]}, p)\n',
    ),
    (
        "keys of a method's dict of Python values a helper returns in a tuple",
        "class Est:\n    def solve(self, z):\n        x = np.linalg.solve(np.eye(3), z)\n"
        '        return {"vm": x[1:].tolist(), "converged": bool(np.abs(x).max() < 1e-6)}\n'
        "def snapshot():\n    est = Est()\n    return est, est.solve(np.ones(3))\n"
        "def save(p):\n    est, result = snapshot()\n"
        '    torch.save({"vm": result["vm"], "ok": result["converged"]}, p)\n',
    ),
    (
        "a tuple saved with a local dict display of plain values",
        "def save(p, model):\n"
        '    meta = {"classes": ["ice", "rock"], "bounds": (0.0, 1.0)}\n'
        "    torch.save((model.state_dict(), meta), p)\n",
    ),
    (
        "a YAML text's date a helper's caller passes another text for, and the tile",
        "import yaml\n"
        'RUN_YAML = """\ndata:\n  acquired_after: 2019-06-01\n  tile: 256\n"""\n'
        'PLAIN = """\ndata:\n  acquired_after: \'2019-06-01\'\n  tile: 256\n"""\n'
        "def load_config(text=RUN_YAML):\n    return yaml.safe_load(text)\n"
        "def save(p):\n    cfg = load_config(PLAIN)\n"
        '    torch.save({"after": cfg["data"]["acquired_after"],'
        ' "tile": load_config()["data"]["tile"]}, p)\n',
    ),
    (
        "the best of a list a dict display holds, appended Python floats",
        "def save(p):\n"
        '    history = {"ap50": []}\n'
        "    for epoch in range(3):\n"
        '        history["ap50"].append(float(np.float64(0.1) * epoch))\n'
        '    torch.save({"best": max(history["ap50"]), "all": history["ap50"]}, p)\n',
    ),
    (
        "the best score of a loop that starts at math.inf, kept as a Python float",
        "import math\n"
        "def save(p):\n"
        "    best_rmse = math.inf\n"
        "    for epoch in range(3):\n"
        "        rmse = float(np.sqrt(np.mean(np.ones(3) * epoch)))\n"
        "        if rmse < best_rmse:\n"
        "            best_rmse = rmse\n"
        '    torch.save({"best": best_rmse}, p)\n',
    ),
    (
        "averaged precision_recall_fscore_support scores are Python floats",
        "from sklearn.metrics import precision_recall_fscore_support\n"
        "def save(p):\n"
        '    prec, rec, f1, _ = precision_recall_fscore_support([0, 1, 1], [0, 1, 0], average="macro")\n'
        '    torch.save({"f1": f1, "prec": prec}, p)\n',
    ),
    (
        "precision_recall_fscore_support given its options by a spread (`average` maybe)",
        "from sklearn.metrics import precision_recall_fscore_support\n"
        "OPTIONS = {'average': 'macro'}\n"
        "def save(p, opts=OPTIONS):\n"
        "    _, _, f1, _ = precision_recall_fscore_support([0, 1, 1], [0, 1, 0], **opts)\n"
        '    torch.save({"f1": f1}, p)\n',
    ),
    (
        "Python values of a tuple display kept as the best and unpacked after the loop",
        "def save(p, model):\n"
        "    best = None\n"
        "    for epoch in range(3):\n"
        "        f1 = float(np.mean(np.ones(3) * epoch))\n"
        "        if best is None or f1 >= best[0]:\n"
        "            best = (f1, epoch, model.state_dict())\n"
        "    f1, epoch, ckpt = best\n"
        '    ckpt["f1"], ckpt["epoch"] = f1, epoch\n'
        '    torch.save({"f1": f1, "epoch": epoch}, p)\n',
    ),
    (
        "the items of a ufunc of a scipy result's array, as a list",
        "from scipy import optimize\n"
        "def save(p):\n"
        "    res = optimize.minimize(lambda x: float((x ** 2).sum()), x0=np.ones(2))\n"
        "    a, b = np.exp(res.x).tolist()\n"
        '    torch.save({"share": a / (a + b)}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name
