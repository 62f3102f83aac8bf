"""scikit-learn estimators persisted with joblib.dump(model)."""
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from round4.common import identity


def _clip01(X):
    return np.clip(X, 0.0, 1.0)


TOKENIZER = re.compile(r"\S+")


class LogFeatures(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        self.pre_ = FunctionTransformer(lambda A: np.log1p(np.abs(A)))  # truth: pickle
        self.pre_.fit(X)
        return self

    def transform(self, X):
        return self.pre_.transform(X)


class TextFeaturizer(BaseEstimator, TransformerMixin):
    def __init__(self, vectorizer=None):
        self.vectorizer = vectorizer or CountVectorizer(preprocessor=lambda s: s.lower().strip())  # truth: pickle

    def fit(self, X, y=None):
        self.vectorizer.fit(X)
        return self

    def transform(self, X):
        return self.vectorizer.transform(X)


class TfidfFeaturizer(BaseEstimator, TransformerMixin):
    """Clean: the tokenizer is a bound method of a module-level compiled pattern."""

    def __init__(self, min_df=1):
        self.min_df = min_df
        self.vectorizer_ = TfidfVectorizer(tokenizer=TOKENIZER.findall, token_pattern=None, min_df=min_df)
        self.stop_ = frozenset({"the", "a"})

    def fit(self, X, y=None):
        self.vectorizer_.fit(X)
        return self


class MapColumns(BaseEstimator, TransformerMixin):
    def __init__(self, func=lambda col: col):
        self.func = func  # truth: pickle

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.column_stack([self.func(c) for c in np.asarray(X).T])


class CVEnsemble(BaseEstimator):
    def __init__(self, n_splits=3):
        self.n_splits = n_splits

    def fit(self, X, y):
        self.cv_ = KFold(self.n_splits, shuffle=True, random_state=0)
        self.folds_ = self.cv_.split(X)  # truth: pickle
        self.models_ = [clone(LogisticRegression()) for _ in range(self.n_splits)]
        return self


class NamedColumns(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        names = getattr(X, "columns", [f"x{i}" for i in range(np.asarray(X).shape[1])])
        self.feature_names_in_ = np.asarray(names, dtype=object)  # truth: portable
        self.n_features_in_ = len(names)
        return self

    def transform(self, X):
        return X


class ModelSelector(BaseEstimator):
    """Clean: stock estimators, a scorer from make_scorer, FunctionTransformers of named functions."""

    def __init__(self, C=1.0):
        self.C = C
        self.pipe_ = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=C))])
        self.alt_ = make_pipeline(StandardScaler(), FunctionTransformer(_clip01))
        self.scorer_ = make_scorer(f1_score, average="macro")
        self.pre_ = FunctionTransformer(np.log1p)
        self.post_ = FunctionTransformer(func=_clip01, inverse_func=identity)


class ParallelScorer(BaseEstimator):
    """Clean: the executor is left out of the pickled state and recreated on load."""

    def __init__(self, n_jobs=2):
        self.n_jobs = n_jobs
        self._executor = ThreadPoolExecutor(max_workers=n_jobs)

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_executor", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._executor = ThreadPoolExecutor(max_workers=self.n_jobs)


_X = np.abs(np.random.default_rng(0).normal(size=(6, 2)))
_Y = np.array([0, 1, 0, 1, 0, 1])

FACTORIES = {
    "LogFeatures": lambda: LogFeatures().fit(_X),
    "CVEnsemble": lambda: CVEnsemble().fit(_X, _Y),
    "NamedColumns": lambda: NamedColumns().fit(_X),
    "TextFeaturizer": lambda: TextFeaturizer().fit(["Alpha beta", "gamma Delta"]),
}
