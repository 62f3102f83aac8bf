"""scikit-learn compatible estimators: joblib.dump persists the fitted object."""
import logging
import operator
import sqlite3
import tempfile
import threading
from functools import partial
from multiprocessing.pool import ThreadPool

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, make_scorer
from sklearn.preprocessing import LabelEncoder

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.2, 0.9]])
y = np.array(["spam", "ham", "ham", "spam"])


def log1p_clip(x, hi=10.0):
    return np.clip(np.log1p(np.abs(x)), 0, hi)


class LogFeatures(TransformerMixin, BaseEstimator):
    """Clean: a partial of a module-level function, fitted float statistics."""

    def __init__(self, hi=10.0):
        self.hi = hi

    def fit(self, X, y=None):
        self.func_ = partial(log1p_clip, hi=self.hi)
        self.mean_ = self.func_(X).mean(axis=0)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return self.func_(X) - self.mean_


class CategoryEncoder(TransformerMixin, BaseEstimator):
    def __init__(self, min_freq=1):
        self.min_freq = min_freq

    def fit(self, X, y=None):
        values = [str(v) for v in np.ravel(X)]
        self.categories_ = np.array(sorted(set(values)) + [None], dtype=object)  # truth: portable
        self.lookup_ = {v: i for i, v in enumerate(self.categories_)}
        self.index_view_ = self.lookup_.values()  # truth: pickle
        return self

    def transform(self, X):
        return np.vectorize(lambda v: self.lookup_.get(str(v), -1))(X)


class ThresholdClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, metric="f1"):
        self.metric = metric

    def fit(self, X, y):
        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        self.base_ = LogisticRegression().fit(X, self.encoder_.transform(y))
        self.scorer_ = make_scorer(f1_score)
        self.cmp_ = operator.ge
        self.decide_ = lambda p: (p >= 0.5).astype(int)  # truth: pickle
        return self

    def predict(self, X):
        return self.encoder_.inverse_transform(self.decide_(self.base_.predict_proba(X)[:, 1]))


class ParallelFeaturizer(TransformerMixin, BaseEstimator):
    def __init__(self, n_jobs=2):
        self.n_jobs = n_jobs
        self.logger = logging.getLogger(__name__)

    def fit(self, X, y=None):
        self.pool_ = ThreadPool(self.n_jobs)  # truth: pickle
        self.lock_ = threading.Lock()  # truth: pickle
        return self

    def transform(self, X):
        return np.array(self.pool_.map(np.sum, list(X)))


class SqlBackedLookup(BaseEstimator):
    def __init__(self, table="features"):
        self.table = table

    def fit(self, X, y=None):
        self.db_path_ = tempfile.mktemp(suffix=".db")
        self.conn_ = sqlite3.connect(self.db_path_)  # truth: pickle
        self.cursor_ = self.conn_.cursor()  # truth: pickle
        self.cursor_.execute(f"create table {self.table} (x real)")
        return self


class StackingEnsemble(ClassifierMixin, BaseEstimator):
    """Clean: fitted sub-estimators, string classes, a generator consumed into a list."""

    def __init__(self, n_estimators=2):
        self.n_estimators = n_estimators

    def fit(self, X, y):
        self.estimators_ = [LogisticRegression(C=c).fit(X, y) for c in (0.1, 1.0)]
        self.classes_ = np.unique(y)
        self.weights_ = list(w / self.n_estimators for w in range(1, self.n_estimators + 1))
        self.feature_names_in_ = np.array(["a", "b"], dtype=object)  # truth: portable
        return self

    def predict(self, X):
        return self.estimators_[0].predict(X)


class OnlineScaler(TransformerMixin, BaseEstimator):
    def __init__(self, clip=None):
        self.clip = clip

    def partial_fit(self, X, y=None):
        self.n_seen_ = getattr(self, "n_seen_", 0) + len(X)
        self.batches_ = (row for row in X)  # truth: pickle
        return self

    def fit(self, X, y=None):
        return self.partial_fit(X)


FACTORIES = {
    "LogFeatures": lambda: LogFeatures().fit(X),
    "CategoryEncoder": lambda: CategoryEncoder().fit(np.array([["a"], ["b"]])),
    "ThresholdClassifier": lambda: ThresholdClassifier().fit(X, y),
    "ParallelFeaturizer": lambda: ParallelFeaturizer().fit(X),
    "SqlBackedLookup": lambda: SqlBackedLookup().fit(X),
    "StackingEnsemble": lambda: StackingEnsemble().fit(X, y),
    "OnlineScaler": lambda: OnlineScaler().fit(X),
}
