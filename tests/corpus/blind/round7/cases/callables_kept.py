"""Callables handed to other objects that keep them (sklearn, torch wrappers)."""
import functools
import operator

import numpy as np
import torch
import torch.nn as nn
from sklearn.base import BaseEstimator, TransformerMixin, ClassifierMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.feature_extraction.text import TfidfVectorizer, CountVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import make_scorer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from nets_common import clip_features, log_scale, rank_metric, whitespace_tokens


class TweetClassifier(BaseEstimator, ClassifierMixin):
    def __init__(self, C=1.0):
        self.C = C
        self.vec_ = TfidfVectorizer(tokenizer=lambda s: s.lower().split(), token_pattern=None)  # truth: pickle
        self.clf_ = LogisticRegression(C=C)


class BagOfWords(BaseEstimator, TransformerMixin):
    """Clean: the tokenizer and the preprocessor are importable."""

    def __init__(self, min_df=1):
        self.min_df = min_df
        self.vec_ = CountVectorizer(tokenizer=whitespace_tokens, preprocessor=str.lower, token_pattern=None)

    def fit(self, X, y=None):
        self.vec_.fit(X)
        return self


class SkewedRegressor(BaseEstimator):
    def __init__(self, alpha=1.0):
        self.alpha = alpha
        inverse = lambda y: np.expm1(y)
        self.model_ = TransformedTargetRegressor(regressor=Ridge(alpha=alpha), func=np.log1p,  # truth: pickle
                                                 inverse_func=inverse)


class LogTargetRegressor(BaseEstimator):
    """Clean look-alike: numpy ufuncs for both directions."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha
        self.model_ = TransformedTargetRegressor(regressor=Ridge(alpha=alpha), func=np.log1p, inverse_func=np.expm1)


class NumericPreprocessor(BaseEstimator, TransformerMixin):
    def __init__(self, lo=-3.0):
        self.lo = lo

        def _clip(x):
            return np.clip(x, lo, None)

        steps = [("clip", FunctionTransformer(_clip)), ("scale", StandardScaler())]
        self.pipeline_ = Pipeline(steps)  # truth: pickle


class CleanNumericPreprocessor(BaseEstimator, TransformerMixin):
    """Clean: partial of a module-level function, and an imported function."""

    def __init__(self, lo=-3.0):
        self.lo = lo
        self.pipeline_ = make_pipeline(
            FunctionTransformer(functools.partial(clip_features, lo=lo, hi=3.0)),
            FunctionTransformer(log_scale),
            StandardScaler(),
        )


class ColumnPicker(BaseEstimator, TransformerMixin):
    """Clean: operator.itemgetter pickles."""

    def __init__(self, column=0):
        self.column = column
        self.getter_ = operator.itemgetter(column)
        self.ft_ = FunctionTransformer(operator.methodcaller("astype", "float32"))


class LeaderboardSearch:
    """A search wrapper that defines __getstate__, so it is checked too."""

    def __init__(self):
        self.scorer = make_scorer(lambda y, p: -abs(y - p).mean())  # truth: pickle
        self.ranker = make_scorer(rank_metric)
        self.history = []

    def __getstate__(self):
        return dict(self.__dict__)


class Predictor(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 2)
        self.predict_nograd = torch.no_grad()(self.predict)  # truth: pickle
        self.infer = torch.inference_mode()(self._raw)  # truth: pickle

    def predict(self, x):
        return self.body(x).argmax(-1)

    def _raw(self, x):
        return self.body(x)


class DecoratedPredictor(nn.Module):
    """Clean: the decorators sit on the class, nothing lands in the instance."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 2)
        self.mode = "eval"

    @torch.no_grad()
    def predict(self, x):
        return self.body(x).argmax(-1)

    @torch.inference_mode()
    def infer(self, x):
        return self.body(x)


def _ema_step(avg, new, decay):
    return avg * decay + new * (1 - decay)


class EmaTracker(nn.Module):
    def __init__(self, decay=0.99):
        super().__init__()
        self.decay = decay
        self.register_buffer("avg", torch.zeros(4))
        self.step_fn = torch.compile(_ema_step)  # truth: pickle
        grad_on = torch.enable_grad()
        self.refresh = grad_on(self.update)  # truth: pickle

    def update(self, x):
        self.avg = self.step_fn(self.avg, x, self.decay)


class EmaTrackerPlain(nn.Module):
    """Clean: keeps the plain module-level function and a compiled submodule."""

    def __init__(self, decay=0.99):
        super().__init__()
        self.decay = decay
        self.step_fn = _ema_step
        self.proj = torch.compile(nn.Linear(4, 4))


class Activation(nn.Module):
    squash = staticmethod(lambda x: x.clamp(-1, 1))
    smooth = staticmethod(torch.tanh)

    def __init__(self, kind="squash"):
        super().__init__()
        self.kind = kind
        self.fn = self.squash  # truth: pickle
        self.fallback = self.smooth


class BatchedScorer(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 1)
        self.batched_relu = torch.vmap(torch.relu)  # truth: pickle
        self.relu = torch.relu


class WarmupModule(nn.Module):
    def __init__(self, warmup=10):
        super().__init__()
        self.net = nn.Linear(2, 2)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda e: min(1.0, (e + 1) / warmup))  # truth: pickle


def linear_warmup(epoch, warmup=10):
    return min(1.0, (epoch + 1) / warmup)


class WarmupModuleClean(nn.Module):
    def __init__(self, warmup=10):
        super().__init__()
        self.net = nn.Linear(2, 2)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, functools.partial(linear_warmup, warmup=warmup))


from nets_common import make_plain_text_features, make_text_features


class ReviewSentiment(BaseEstimator, ClassifierMixin):
    def __init__(self, lowercase=True):
        self.lowercase = lowercase
        feats = make_text_features(lowercase)
        self.features_ = feats  # truth: pickle
        self.fallback_ = make_plain_text_features()
