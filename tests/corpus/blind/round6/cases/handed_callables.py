"""Callables handed to other objects that keep them: vectorizers, transformers, decorators, compile."""
import functools

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.metrics import make_scorer
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from torch import nn

from project_utils import greedy_decode, log1p_clip, normalize_text


class BagOfWordsClassifier(BaseEstimator, ClassifierMixin):
    def __init__(self, min_df=1):
        self.min_df = min_df

    def fit(self, X, y):
        self.vectorizer_ = CountVectorizer(preprocessor=lambda s: s.lower().strip(), min_df=self.min_df)  # truth: pickle
        self.clf_ = LogisticRegression().fit(self.vectorizer_.fit_transform(X), y)
        return self


class TokenizedTfidf(BaseEstimator):
    def fit(self, X, y=None):
        def split_on_pipes(doc):
            return [t for t in doc.split("|") if t]

        self.tfidf_ = TfidfVectorizer(tokenizer=split_on_pipes, token_pattern=None)  # truth: pickle
        self.tfidf_.fit(X)
        return self


class CleanTfidf(BaseEstimator):
    """Clean: the preprocessor is an importable module-level function."""

    def fit(self, X, y=None):
        self.tfidf_ = TfidfVectorizer(preprocessor=normalize_text)
        self.tfidf_.fit(X)
        return self


class LogFeatures(BaseEstimator):
    def fit(self, X, y=None):
        self.pipe_ = Pipeline(  # truth: pickle
            [
                ("log", FunctionTransformer(lambda X: np.log1p(np.abs(X)))),
                ("scale", StandardScaler()),
            ]
        )
        self.pipe_.fit(X)
        return self


class ImportableLogFeatures(BaseEstimator):
    """Clean: FunctionTransformer over numpy ufuncs and a project function."""

    def fit(self, X, y=None):
        self.pipe_ = make_pipeline(FunctionTransformer(np.log1p), FunctionTransformer(log1p_clip), StandardScaler())
        self.pipe_.fit(np.abs(X))
        return self


class ClippedScaler(BaseEstimator):
    def __init__(self, lo=-3.0, hi=3.0):
        self.lo = lo
        self.hi = hi

    def fit(self, X, y=None):
        lo, hi = self.lo, self.hi
        clip = FunctionTransformer(func=lambda Z: np.clip(Z, lo, hi), validate=False)
        self.steps_ = [StandardScaler().fit(X), clip]  # truth: pickle
        return self


class PartialTransformer(BaseEstimator):
    """Clean: a partial over np.clip pickles."""

    def fit(self, X, y=None):
        self.clip_ = FunctionTransformer(functools.partial(np.clip, a_min=-1, a_max=1))
        return self


class Teacher(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 4)

    def forward(self, x):
        return self.proj(x)


class DistillStudent(nn.Module):
    def __init__(self):
        super().__init__()
        self.teacher = Teacher()
        self.student = nn.Linear(8, 4)
        self.teacher_fwd = torch.no_grad()(self.teacher.forward)  # truth: pickle

    def forward(self, x):
        return F.kl_div(self.student(x).log_softmax(-1), self.teacher_fwd(x).softmax(-1), reduction="batchmean")


class FrozenScorer(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 2)
        self.score = torch.inference_mode()(self._score)  # truth: pickle

    def _score(self, x):
        return self.head(x).softmax(-1)


class GradOnlyForHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)
        no_grad = torch.no_grad()
        self.embed = no_grad(self.body.__call__)  # truth: pickle

    def forward(self, x):
        return self.head(self.embed(x))


class DecoderWithGreedy(nn.Module):
    """Clean: the decorated function is module level, so its name resolves to the wrapper."""

    def __init__(self):
        super().__init__()
        self.out = nn.Linear(8, 10)
        self.decode = greedy_decode
        self.no_grad = torch.no_grad()

    def forward(self, x):
        return self.decode(self.out(x))


def _gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(0.79788456 * (x + 0.044715 * x.pow(3))))


class CompiledActivation(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.act = torch.compile(_gelu_tanh)  # truth: pickle

    def forward(self, x):
        return self.act(self.fc(x))


class CompiledBlock(nn.Module):
    """Clean: torch.compile of a module gives an OptimizedModule, which pickles."""

    def __init__(self):
        super().__init__()
        self.block = torch.compile(nn.Sequential(nn.Linear(8, 8), nn.ReLU()))

    def forward(self, x):
        return self.block(x)


class GatedResidual(nn.Module):
    gate_fn = staticmethod(lambda x: torch.sigmoid(x) * x)

    def __init__(self, gate=None):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.gate = gate or self.gate_fn  # truth: pickle

    def forward(self, x):
        return x + self.gate(self.fc(x))


class SiluResidual(nn.Module):
    """Clean: the class-level staticmethod wraps an importable torch function."""

    act_fn = staticmethod(F.silu)

    def __init__(self, act=None):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.act = act if act is not None else self.act_fn

    def forward(self, x):
        return x + self.act(self.fc(x))


class ScoredRanker(nn.Module):
    def __init__(self, temperature=0.5):
        super().__init__()
        self.fc = nn.Linear(8, 1)
        self.calibrate = functools.partial(lambda s, t: s / t, t=temperature)  # truth: pickle

    def forward(self, x):
        return self.calibrate(self.fc(x))


class TemperatureRanker(nn.Module):
    """Clean: partial over an importable function."""

    def __init__(self, temperature=0.5):
        super().__init__()
        self.fc = nn.Linear(8, 1)
        self.calibrate = functools.partial(torch.div, other=temperature)

    def forward(self, x):
        return self.calibrate(self.fc(x))



class ThresholdSearch(BaseEstimator):
    def fit(self, X, y):
        self.scorer_ = make_scorer(lambda yt, yp: float((yt == yp).mean()))  # truth: pickle
        self.clf_ = LogisticRegression().fit(X, y)
        return self


class NumericColumns(BaseEstimator):
    def fit(self, X, y=None):
        self.columns_ = ColumnTransformer(  # truth: pickle
            [("num", StandardScaler(), lambda frame: [0, 1])], remainder="drop"
        ).fit(X)
        return self


class SelectorColumns(BaseEstimator):
    """Clean: make_column_selector is a picklable callable object."""

    def fit(self, X, y=None):
        self.columns_ = ColumnTransformer([("num", StandardScaler(), make_column_selector(dtype_include=np.number))])
        return self


class InvertibleTarget(BaseEstimator):
    def fit(self, X, y=None):
        self.target_tf_ = FunctionTransformer(np.log1p, inverse_func=lambda Z: np.expm1(Z))  # truth: pickle
        self.forward_only_ = FunctionTransformer(np.log1p, inverse_func=np.expm1)
        return self


class FastPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.fast_forward = torch.compile(self._forward, dynamic=False)  # truth: pickle

    def _forward(self, x):
        return torch.relu(self.fc(x))

    def forward(self, x):
        return self.fast_forward(x)


FACTORIES = {
    "BagOfWordsClassifier": lambda: BagOfWordsClassifier().fit(["red apple", "Green pear", "red pear"], [0, 1, 0]),
    "TokenizedTfidf": lambda: TokenizedTfidf().fit(["a|b", "b|c"]),
    "CleanTfidf": lambda: CleanTfidf().fit(["red  apple", "Green pear"]),
    "LogFeatures": lambda: LogFeatures().fit(np.arange(6.0).reshape(3, 2)),
    "ImportableLogFeatures": lambda: ImportableLogFeatures().fit(np.arange(6.0).reshape(3, 2)),
    "ClippedScaler": lambda: ClippedScaler().fit(np.arange(6.0).reshape(3, 2)),
    "PartialTransformer": lambda: PartialTransformer().fit(np.arange(6.0).reshape(3, 2)),
    "ThresholdSearch": lambda: ThresholdSearch().fit(np.arange(8.0).reshape(4, 2), [0, 1, 0, 1]),
    "NumericColumns": lambda: NumericColumns().fit(np.arange(6.0).reshape(3, 2)),
    "SelectorColumns": lambda: SelectorColumns().fit(np.arange(6.0).reshape(3, 2)),
    "InvertibleTarget": lambda: InvertibleTarget().fit(np.arange(6.0).reshape(3, 2)),
}
