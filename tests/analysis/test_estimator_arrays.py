"""CKPT010 on a fitted scikit-learn estimator's arrays (importances, components)."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_rows

HEADER = """\
import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import GradientBoostingClassifier

class Trainer:
    def __init__(self):
        self.gbm = GradientBoostingClassifier(n_estimators=5)

    def fit(self, x, y):
        self.gbm.fit(x, y)
        return self
"""

LABELS = (
    "import pandas as pd\nfrom sklearn.preprocessing import LabelEncoder\n"
    "def frame():\n"
    '    return pd.DataFrame({"dept": ["toys", "food", "toys"], "n": [1, 2, 3]})\n'
)

INVALID = [
    (
        "classes of labels fitted from a list (numpy strings), and of a column (the array)",
        LABELS + "def go(p):\n    listed = LabelEncoder().fit(['toys', 'food'])\n"
        '    column = LabelEncoder().fit(frame()["dept"])\n'
        '    torch.save({"names": list(listed.classes_), "classes": column.classes_}, p)\n',
        [(8, "names"), (8, "classes")],
    ),
    (
        "classes of numeric labels fitted from an array",
        LABELS + "def go(p):\n    enc = LabelEncoder().fit(np.array([3, 1, 3]))\n"
        '    torch.save({"first": list(enc.classes_)[0]}, p)\n',
        [(7, "first")],
    ),
    (
        "classes of labels fitted from a column's list (numpy strings)",
        LABELS + 'def go(p):\n    enc = LabelEncoder().fit(frame()["dept"].tolist())\n'
        '    torch.save({"names": list(enc.classes_)}, p)\n',
        [(7, "names")],
    ),
    (
        "a standard scaler's count of samples seen",
        "from sklearn.preprocessing import StandardScaler\n"
        "def go(p):\n    sc = StandardScaler()\n    sc.fit(np.ones((3, 2)))\n"
        '    torch.save({"n": sc.n_samples_seen_}, p)\n',
        [(5, "n")],
    ),
    (
        "a held estimator's importances",
        'def go(p, x, y):\n    t = Trainer().fit(x, y)\n    torch.save({"i": t.gbm.feature_importances_}, p)\n',
        [(3, "i")],
    ),
    (
        "a decomposition's ratio",
        'def go(p, x):\n    pca = PCA(2).fit(x)\n    torch.save({"r": pca.explained_variance_ratio_}, p)\n',
        [(3, "r")],
    ),
    (
        "a multi-label binarizer's classes whole (an object array)",
        "from sklearn.preprocessing import MultiLabelBinarizer\n"
        "def go(p):\n    mlb = MultiLabelBinarizer().fit([['nit', 'style'], ['bug']])\n"
        '    torch.save({"tags": mlb.classes_}, p)\n',
        [(4, "tags")],
    ),
]

VALID = [
    (
        "classes of labels fitted from a column of strings, listed (Python strings)",
        LABELS + 'def go(p):\n    enc = LabelEncoder().fit(frame()["dept"])\n'
        '    torch.save({"names": list(enc.classes_), "sorted": sorted(enc.classes_)}, p)\n',
    ),
    (
        "a min-max scaler's count of samples seen, a standard scaler's made an int",
        "from sklearn.preprocessing import MinMaxScaler, StandardScaler\n"
        "def go(p):\n    mm = MinMaxScaler().fit(np.ones((3, 2)))\n"
        "    sc = StandardScaler().fit(np.ones((3, 2)))\n"
        '    torch.save({"n": mm.n_samples_seen_, "m": int(sc.n_samples_seen_)}, p)\n',
    ),
    (
        "an encoder fitted in a statement on a column; feature names listed",
        LABELS + "from sklearn.preprocessing import PolynomialFeatures\n"
        'def go(p):\n    enc = LabelEncoder()\n    enc.fit(frame()["dept"])\n'
        "    poly = PolynomialFeatures(2).fit(np.ones((2, 2)))\n"
        '    torch.save({"names": list(enc.classes_), "f": list(poly.get_feature_names_out())}, p)\n',
    ),
    (
        "as a tensor",
        "def go(p, x, y):\n"
        "    t = Trainer().fit(x, y)\n"
        '    torch.save({"i": torch.as_tensor(t.gbm.feature_importances_)}, p)\n',
    ),
    (
        "as a list",
        'def go(p, x):\n    pca = PCA(2).fit(x)\n    torch.save({"c": pca.components_.tolist()}, p)\n',
    ),
    (
        "a multi-label binarizer's classes listed (an object array's items: Python strings)",
        "from sklearn.preprocessing import MultiLabelBinarizer\n"
        "def go(p, tags):\n    mlb = MultiLabelBinarizer().fit(tags)\n"
        '    torch.save({"tags": list(mlb.classes_), "first": mlb.classes_[0]}, p)\n',
    ),
]


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


@pytest.mark.parametrize(("name", "source", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert _rows(source) == expected


@pytest.mark.parametrize(("name", "source"), VALID, ids=[c[0] for c in VALID])
def test_valid(name: str, source: str) -> None:
    assert _rows(source) == []
