"""Clinical-trial patient matching: rank open trials for each patient.

Structured eligibility (age window, ECOG, eGFR, diagnosis code, excluded prior therapies) is turned
into hard-rule flags; free-text criteria and the patient's problem list go through TF-IDF; a small
pairwise scorer learns which eligible trials a coordinator actually enrolled the patient into.
Training is driven by a dataclass config and a class-based trainer, the way most hospital
research repositories organise it.
"""
import collections
import dataclasses
import datetime
import enum
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd
import torch
from torch import nn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import average_precision_score, ndcg_score
from sklearn.preprocessing import LabelEncoder, OneHotEncoder


class TrialPhase(str, enum.Enum):
    I = "phase1"
    II = "phase2"
    III = "phase3"


@dataclass
class DataConfig:
    n_patients: int = 60
    n_trials: int = 12
    min_age: int = 18
    cutoff: str = "2023-06-30"
    tfidf_max_features: int = 256


@dataclass
class TrainConfig:
    hidden: int = 32
    lr: float = 1e-3
    epochs: int = 3
    neg_per_pos: int = 3
    top_k: Tuple[int, ...] = (1, 3, 5)
    seed: int = 13
    phase: TrialPhase = TrialPhase.II
    data: DataConfig = field(default_factory=DataConfig)


DX_CODES = ["C34.1", "C50.9", "C18.7", "C61", "C25.0"]
THERAPIES = ["platinum", "taxane", "anti-PD1", "anti-HER2", "FOLFOX"]


def synth_registry(cfg: DataConfig, seed: int) -> Tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    patients = pd.DataFrame({
        "patient_id": [f"P{i:04d}" for i in range(cfg.n_patients)],
        "age": rng.integers(cfg.min_age, 88, cfg.n_patients),
        "sex": rng.choice(["F", "M"], cfg.n_patients).tolist(),
        "ecog": rng.integers(0, 4, cfg.n_patients),
        "egfr": rng.normal(75, 20, cfg.n_patients).round(1),
        "dx": rng.choice(DX_CODES, cfg.n_patients).tolist(),
        "prior": [";".join(rng.choice(THERAPIES, rng.integers(0, 3), replace=False)) for _ in range(cfg.n_patients)],
        "site": rng.choice(["MGH", "DFCI", "BIDMC", "BWH"], cfg.n_patients).tolist(),
    })
    trials = pd.DataFrame({
        "nct_id": [f"NCT0{5000000 + 37 * i}" for i in range(cfg.n_trials)],
        "dx": rng.choice(DX_CODES, cfg.n_trials).tolist(),
        "age_min": rng.choice([18, 40, 50], cfg.n_trials),
        "age_max": rng.choice([65, 75, 120], cfg.n_trials),
        "ecog_max": rng.integers(1, 3, cfg.n_trials),
        "egfr_min": rng.choice([30.0, 45.0, 60.0], cfg.n_trials),
        "excluded": rng.choice(THERAPIES, cfg.n_trials).tolist(),
        "criteria": [f"adults with {d} ECOG 0-{e} no prior {x}" for d, e, x in
                     zip(rng.choice(DX_CODES, cfg.n_trials), rng.integers(1, 3, cfg.n_trials),
                         rng.choice(THERAPIES, cfg.n_trials))],
    })
    enrolled = patients.merge(trials, on="dx", suffixes=("", "_t")).sample(frac=0.4, random_state=seed)
    return patients, trials, enrolled[["patient_id", "nct_id"]]


class CriteriaParser:
    """Hard eligibility rules; the regex pulls ECOG bounds out of free-text criteria."""

    def __init__(self, strict_ecog=True):
        self.strict_ecog = strict_ecog
        self.ecog_re = re.compile(r"ECOG\s*0-(\d)")

    def eligible(self, pt, tr) -> Tuple[bool, List[str]]:
        reasons = []
        if not tr.age_min <= pt.age <= tr.age_max:
            reasons.append("age")
        if pt.ecog > tr.ecog_max:
            reasons.append("ecog")
        if pt.egfr < tr.egfr_min:
            reasons.append("egfr")
        if tr.excluded in pt.prior.split(";"):
            reasons.append("prior_therapy")
        if pt.dx != tr.dx:
            reasons.append("diagnosis")
        return not reasons, reasons


class PairScorer(nn.Module):
    def __init__(self, d_patient=16, d_trial=16, hidden=32):
        super().__init__()
        self.patient = nn.Sequential(nn.Linear(d_patient, hidden), nn.ReLU())
        self.trial = nn.Sequential(nn.Linear(d_trial, hidden), nn.ReLU())
        self.out = nn.Bilinear(hidden, hidden, 1)

    def forward(self, p, t):
        return self.out(self.patient(p), self.trial(t)).squeeze(-1)


class MatchingTrainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.patients, self.trials, self.enrolled = synth_registry(cfg.data, cfg.seed)
        self.parser = CriteriaParser()
        self.exclusions = collections.defaultdict(int)
        self.dx_encoder = LabelEncoder().fit(self.patients.dx)
        self.sex_ohe = OneHotEncoder(handle_unknown="ignore").fit(self.patients[["sex"]])
        self.tfidf = TfidfVectorizer(max_features=cfg.data.tfidf_max_features, ngram_range=(1, 2))
        self.tfidf.fit(self.trials.criteria.tolist() + self.patients.prior.str.replace(";", " ").tolist())
        self.pt_x, self.tr_x = self._featurise()
        self.model = PairScorer(self.pt_x.shape[1], self.tr_x.shape[1], cfg.hidden)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.epoch, self.best_ndcg = 0, -1.0

    def _featurise(self):
        pt = self.patients
        num = np.stack([pt.age / 100.0, pt.ecog / 4.0, pt.egfr / 120.0], axis=1)
        dx = np.eye(len(self.dx_encoder.classes_))[self.dx_encoder.transform(pt.dx)]
        sex = self.sex_ohe.transform(pt[["sex"]]).toarray()
        text = self.tfidf.transform(pt.prior.str.replace(";", " ")).toarray()
        tr = self.trials
        tr_num = np.stack([tr.age_min / 100.0, tr.age_max / 120.0, tr.ecog_max / 4.0, tr.egfr_min / 120.0], axis=1)
        tr_dx = np.eye(len(self.dx_encoder.classes_))[self.dx_encoder.transform(tr.dx)]
        tr_text = self.tfidf.transform(tr.criteria).toarray()
        return (torch.tensor(np.hstack([num, dx, sex, text]), dtype=torch.float32),
                torch.tensor(np.hstack([tr_num, tr_dx, tr_text]), dtype=torch.float32))

    def eligibility_matrix(self):
        elig = np.zeros((len(self.patients), len(self.trials)), dtype=bool)
        for i, pt in enumerate(self.patients.itertuples()):
            for j, tr in enumerate(self.trials.itertuples()):
                ok, reasons = self.parser.eligible(pt, tr)
                elig[i, j] = ok
                for r in reasons:
                    self.exclusions[r] += 1
        return elig

    def labels(self):
        pid = {p: i for i, p in enumerate(self.patients.patient_id)}
        tid = {t: j for j, t in enumerate(self.trials.nct_id)}
        y = np.zeros((len(pid), len(tid)), dtype=np.float32)
        for row in self.enrolled.itertuples():
            y[pid[row.patient_id], tid[row.nct_id]] = 1.0
        return y

    def fit(self):
        y = torch.from_numpy(self.labels())
        for self.epoch in range(1, self.cfg.epochs + 1):
            self.model.train()
            scores = self.model(self.pt_x[:, None, :].expand(-1, len(self.tr_x), -1),
                                self.tr_x[None, :, :].expand(len(self.pt_x), -1, -1))
            loss = nn.functional.binary_cross_entropy_with_logits(scores, y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            metrics = self.evaluate()
            self.best_ndcg = max(self.best_ndcg, metrics["ndcg@5"])
        return loss.item(), metrics

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        self.model.eval()
        s = self.model(self.pt_x[:, None, :].expand(-1, len(self.tr_x), -1),
                       self.tr_x[None, :, :].expand(len(self.pt_x), -1, -1)).numpy()
        y = self.labels()
        has = y.sum(1) > 0
        out = {f"ndcg@{k}": ndcg_score(y[has], s[has], k=k) for k in self.cfg.top_k}
        out["map"] = float(np.mean([average_precision_score(y[i], s[i]) for i in np.where(has)[0]]))
        ranks = (-s).argsort(1).argsort(1) + 1
        self.reciprocal_ranks = 1.0 / np.where(y > 0, ranks, np.inf).min(1)[has]
        return out

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "epoch": self.epoch, "best_ndcg": self.best_ndcg}


def save_trainer_checkpoint(tmpdir):
    cfg = TrainConfig(epochs=2)
    trainer = MatchingTrainer(cfg)
    loss, metrics = trainer.fit()
    ckpt = trainer.state_dict()
    ckpt.update(metrics)
    ckpt["config"] = cfg  # truth: weights_only
    ckpt["final_loss"] = loss
    ckpt["mrr"] = trainer.reciprocal_ranks.mean()  # truth: weights_only
    ckpt["dx_classes"] = trainer.dx_encoder.classes_.tolist()
    ckpt["dx_index"] = dict(zip(trainer.dx_encoder.classes_, range(len(trainer.dx_encoder.classes_))))
    ckpt["sex_categories"] = trainer.sex_ohe.categories_  # truth: weights_only
    ckpt["phase"] = cfg.phase  # truth: weights_only
    path = os.path.join(tmpdir, f"pair_scorer_e{trainer.epoch}.pt")
    torch.save(ckpt, path)
    return path


def cohort_summary(patients: pd.DataFrame) -> dict:
    return {
        "n": len(patients),
        "sites": patients.site.value_counts().to_dict(),
        "sex": patients.sex.value_counts(normalize=True).to_dict(),
        "egfr": patients.egfr.describe().to_dict(),
    }


def save_with_cohort_stats(tmpdir):
    cfg = TrainConfig(epochs=1, seed=5, data=DataConfig(n_patients=40, n_trials=8))
    trainer = MatchingTrainer(cfg)
    trainer.fit()
    elig = trainer.eligibility_matrix()
    pts = trainer.patients
    first = next(pts.itertuples())
    ckpt = {
        "trainer": trainer.state_dict(),
        "cohort": cohort_summary(pts),
        "stats": {
            "age_median": pts.age.median(),  # truth: weights_only
            "ecog_mode": int(pts.ecog.mode()[0]),
            "dx_mode": pts.dx.mode()[0],
            "eligible_pairs": int(elig.sum()),
            "eligible_rate": elig.mean().item(),
            "trials_without_match": int((elig.sum(0) == 0).sum()),
            "example_age": first.age,
            "under_65": pts.age.between(18, 64).mean(),  # truth: weights_only
        },
        "exclusion_counts": trainer.exclusions,  # truth: weights_only
        "exclusion_top": collections.Counter(trainer.exclusions).most_common(3),
        "sites": sorted(pts.site.unique().tolist()),
        "data_cutoff": datetime.date.fromisoformat(cfg.data.cutoff),  # truth: weights_only
        "cutoff_iso": cfg.data.cutoff,
    }
    path = os.path.join(tmpdir, "pair_scorer_cohort.pt")
    torch.save(ckpt, path)
    return path


def export_text_pipeline(trainer: MatchingTrainer) -> Tuple[dict, dict]:
    vec = trainer.tfidf
    public = {"vocabulary": {term: int(i) for term, i in vec.vocabulary_.items()}, "idf": torch.from_numpy(vec.idf_).float(),
              "ngram_range": vec.ngram_range, "max_features": vec.max_features}
    raw = {"params": vec.get_params(), "feature_names": vec.get_feature_names_out()}
    return public, raw


def save_text_pipeline(tmpdir):
    trainer = MatchingTrainer(TrainConfig(epochs=1, seed=21))
    trainer.fit()
    public, raw = export_text_pipeline(trainer)
    ckpt = {"model": trainer.model.state_dict(), "tfidf": public}
    ckpt["tfidf_params"] = {k: v for k, v in raw["params"].items() if k != "dtype"}
    ckpt["tfidf_dtype"] = raw["params"]["dtype"]  # truth: weights_only
    ckpt["tfidf_terms"] = raw["feature_names"].tolist()
    ckpt["ecog_pattern"] = trainer.parser.ecog_re  # truth: weights_only
    ckpt["ecog_pattern_src"] = trainer.parser.ecog_re.pattern
    ckpt["run_id"] = uuid.uuid4()  # truth: weights_only
    ckpt["run_tag"] = uuid.uuid4().hex[:8]
    ckpt["phase"] = TrialPhase.III.value
    ckpt["data_config"] = dataclasses.asdict(trainer.cfg.data)
    path = os.path.join(tmpdir, "pair_scorer_text.pt")
    torch.save(ckpt, path)
    return path


def save_release(tmpdir):
    """Release artefact for the matching service: everything is plain Python or tensors."""
    cfg = TrainConfig(epochs=2, seed=3)
    trainer = MatchingTrainer(cfg)
    loss, metrics = trainer.fit()
    elig = trainer.eligibility_matrix()
    per_site = {}
    for site, grp in trainer.patients.groupby("site"):
        per_site[str(site)] = {"n": int(len(grp)), "eligible": float(elig[grp.index.to_numpy()].any(1).mean())}
    cfg_dict = dataclasses.asdict(cfg)
    cfg_dict["phase"] = cfg.phase.value
    release = {
        "state_dict": trainer.model.state_dict(),
        "config": cfg_dict,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "mrr": float(np.mean(trainer.reciprocal_ranks)),
        "loss": round(loss, 5),
        "per_site": per_site,
        "exclusions": dict(trainer.exclusions),
        "dx_classes": list(trainer.dx_encoder.classes_),
        "feature_dims": (trainer.pt_x.shape[1], trainer.tr_x.shape[1]),
        "vocab_size": len(trainer.tfidf.vocabulary_),
        "idf": trainer.tfidf.idf_.tolist(),
        "trial_ids": trainer.trials.nct_id.tolist(),
        "age_window": [int(trainer.patients.age.min()), int(trainer.patients.age.max())],
        "egfr_quartiles": trainer.patients.egfr.quantile([0.25, 0.5, 0.75]).tolist(),
        "created": datetime.datetime(2024, 3, 1, 9, 30).isoformat(),
        "stop_words": set(getattr(trainer.tfidf, "stop_words_", set()) or set()),
        "label_dtype": torch.float32,
    }
    path = os.path.join(tmpdir, "pair_scorer_release.pt")
    torch.save(release, path)
    return path


FACTORIES = {
    "TrialPhase": lambda: TrialPhase.II,
    "MatchingTrainer": lambda: MatchingTrainer(TrainConfig(epochs=1)),
}
