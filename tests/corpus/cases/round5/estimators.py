"""scikit-learn estimators: joblib.dump pickles the fitted object."""
import functools
import tempfile
import types
import zlib

import numpy as xp
from sklearn.base import BaseEstimator, TransformerMixin

from round5.common import make_scaler


class ObjectBinner(BaseEstimator, TransformerMixin):
    def __init__(self, n_bins=3):
        self.n_bins = n_bins

    def fit(self, X, y=None):
        self.edges_ = xp.empty(self.n_bins, dtype="O")  # truth: portable
        return self

    def transform(self, X):
        return X


class RaggedVocab(BaseEstimator):
    def fit(self, X, y=None):
        self.groups_ = xp.array([[1], [1, 2]], dtype=object)  # truth: portable
        return self


class StringVocab(BaseEstimator):
    """Clean: unicode and float arrays; an object array cast back to float."""

    def fit(self, X, y=None):
        self.classes_ = xp.array(["a", "b"])
        self.weights_ = xp.asarray([1, 2], dtype=xp.float32)
        self.table_ = xp.array([[1, 2], [3, 4]], dtype=object).astype(float)
        return self


class CompressingEncoder(BaseEstimator):
    def __init__(self, level=6):
        self.level = level
        self.compressor_ = zlib.compressobj(level)  # truth: pickle


class ScaledRegressor(BaseEstimator):
    """Clean: a fitted scaler from a project factory and a partial of numpy.clip."""

    def __init__(self):
        self.scaler_ = make_scaler()
        self.post_ = functools.partial(xp.clip, a_min=0, a_max=1)


class SpoolEstimator(BaseEstimator):
    """Clean (3.11): a spooled file below max_size is a BytesIO and pickles."""

    def __init__(self):
        self.spool_ = tempfile.SpooledTemporaryFile(max_size=1024)
        self.workdir_ = tempfile.mkdtemp()


class NamespaceEstimator(BaseEstimator):
    def __init__(self):
        self.hooks_ = types.SimpleNamespace(pre=lambda x: x, post=None)  # truth: pickle


class LocalConfigEstimator(BaseEstimator):
    def __init__(self):
        class Config:
            depth = 3

        self.config_ = Config()  # truth: pickle


FACTORIES = {
    "ObjectBinner": lambda: ObjectBinner().fit([[0.0]]),
    "RaggedVocab": lambda: RaggedVocab().fit([[0.0]]),
    "StringVocab": lambda: StringVocab().fit([[0.0]]),
}
