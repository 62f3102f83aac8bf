"""Estimators persisted with joblib next to the neural models."""

import contextvars
import re
from collections import Counter, defaultdict
from functools import partial

import numpy as np
import sklearn.base as skbase
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.preprocessing import StandardScaler

TOKEN_RE = re.compile(r"[a-z]+")


def _clip(x, lo, hi):
    return np.clip(x, lo, hi)


class CategoryEncoder(BaseEstimator, TransformerMixin):
    def __init__(self, handle_unknown="ignore"):
        self.handle_unknown = handle_unknown

    def fit(self, X, y=None):
        self.categories_ = np.array(["red", None, 3], dtype=object)  # truth: portable
        self.index_ = defaultdict(int)
        return self

    def transform(self, X):
        return np.array([[self.index_[v] for v in row] for row in X])


class RaggedBags(skbase.BaseEstimator):
    """Each sample is a bag of different length."""

    def __init__(self):
        self.bags_ = np.empty(3, dtype=object)  # truth: portable
        self.bags_[:] = [[1], [2, 3], []]
        self.label_names_ = np.array(["neg", "pos"])

    def fit(self, X, y=None):
        return self


class ClippedScaler(StandardScaler):
    """StandardScaler followed by clipping to +-3 sigma."""

    def __init__(self, limit=3.0):
        super().__init__()
        self.limit = limit
        self.clipper = partial(lambda x, lo, hi: np.clip(x, lo, hi), lo=-limit, hi=limit)  # truth: pickle

    def transform(self, X, copy=None):
        return self.clipper(super().transform(X, copy=copy))


class SafeClippedScaler(StandardScaler):
    """Clean: the same, with a module-level function."""

    def __init__(self, limit=3.0):
        super().__init__()
        self.limit = limit
        self.clipper = partial(_clip, lo=-limit, hi=limit)


class MissingMarker(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        self.fill_values_ = np.full(4, None)  # truth: portable
        return self


class RequestScopedModel(BaseEstimator, ClassifierMixin):
    def __init__(self):
        self.request_id = contextvars.ContextVar("request_id", default=None)  # truth: pickle

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self


class BagOfWords(BaseEstimator, TransformerMixin):
    """Clean: regex patterns and their bound methods pickle."""

    def __init__(self, lowercase=True):
        self.lowercase = lowercase
        self.tokenize = TOKEN_RE.findall
        self.pattern = re.compile(r"\s+")
        self.counts_ = Counter()

    def fit(self, X, y=None):
        for doc in X:
            self.counts_.update(self.tokenize(doc.lower() if self.lowercase else doc))
        return self


class LabelIndexer(BaseEstimator):
    def __init__(self, labels=("b", "a", None)):
        self.labels = labels
        self.classes_ = np.asarray(list(labels), dtype="O")  # truth: portable
        self.codes_ = np.arange(len(labels))
        self.as_text_ = np.asarray([str(x) for x in labels])

    def fit(self, X, y=None):
        return self


class FeatureHasher2(BaseEstimator, TransformerMixin):
    def __init__(self, n_features=16):
        self.n_features = n_features
        self.objects_ = np.arange(n_features).astype(object)  # truth: portable

    def fit(self, X, y=None):
        return self


FACTORIES = {
    "CategoryEncoder": lambda: CategoryEncoder().fit([["red"]]),
    "MissingMarker": lambda: MissingMarker().fit(None),
}
