"""Task-oriented dialogue state tracking: a picklist tracker over a MultiWOZ-style ontology.

Class-based trainer code: dataclass configs, an encoder registry, a word tokenizer, a slot
ontology with one LabelEncoder per slot, a simulator that produces (dialogue history, belief
state) turns, and a `DSTTrainer` whose helper methods return dicts and tuples.  Metrics are
joint goal accuracy (every slot right at a turn), slot accuracy and per-domain JGA.
"""
import collections
import enum
import os
import random
import re
import time
import uuid
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn
from sklearn.metrics import classification_report, f1_score
from sklearn.preprocessing import LabelEncoder


class Domain(str, enum.Enum):
    HOTEL = "hotel"
    RESTAURANT = "restaurant"
    TRAIN = "train"


class Gate(enum.IntEnum):
    NONE = 0
    DONTCARE = 1
    VALUE = 2


SlotValue = collections.namedtuple("SlotValue", "slot value turn")

ONTOLOGY = {
    "hotel-area": ["north", "south", "east", "west", "centre"],
    "hotel-pricerange": ["cheap", "moderate", "expensive"],
    "hotel-stars": ["2", "3", "4", "5"],
    "restaurant-food": ["italian", "indian", "chinese", "british"],
    "restaurant-area": ["north", "south", "centre"],
    "train-day": ["monday", "tuesday", "friday", "sunday"],
}
TEMPLATES = {
    "hotel-area": "i need a hotel in the {v}",
    "hotel-pricerange": "something {v} please",
    "hotel-stars": "it should have {v} stars",
    "restaurant-food": "i want {v} food",
    "restaurant-area": "a restaurant in the {v} of town",
    "train-day": "i am leaving on {v}",
}


@dataclass
class EncoderConfig:
    name: str = "gru"
    emb_dim: int = 32
    hidden: int = 32
    dropout: float = 0.1


@dataclass
class DSTConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    lr: float = 3e-3
    epochs: int = 2
    batch_size: int = 16
    max_len: int = 40
    n_dialogues: int = 60
    seed: int = 3
    domains: tuple = ("hotel", "restaurant", "train")


ENCODERS = {}


def register_encoder(name):
    def wrap(cls):
        ENCODERS[name] = cls
        return cls
    return wrap


@register_encoder("gru")
class GRUEncoder(nn.Module):
    def __init__(self, vocab_size=64, emb_dim=32, hidden=32, dropout=0.1):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.rnn = nn.GRU(emb_dim, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.out_dim = 2 * hidden

    def forward(self, ids):
        _, h = self.rnn(self.emb(ids))
        return self.drop(torch.cat([h[0], h[1]], dim=-1))


@register_encoder("cnn")
class CNNEncoder(nn.Module):
    def __init__(self, vocab_size=64, emb_dim=32, hidden=32, dropout=0.1):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.conv = nn.Conv1d(emb_dim, hidden, kernel_size=3, padding=1)
        self.out_dim = hidden

    def forward(self, ids):
        return torch.relu(self.conv(self.emb(ids).transpose(1, 2))).max(-1).values


class WordTokenizer:
    specials = ("[PAD]", "[UNK]", "[SYS]", "[USR]")

    def __init__(self, lowercase=True):
        self.lowercase = lowercase
        self.stoi = {tok: i for i, tok in enumerate(self.specials)}
        self.splitter = re.compile(r"\[\w+\]|[a-z0-9]+")

    def fit(self, texts):
        for text in texts:
            for tok in self.splitter.findall(text.lower() if self.lowercase else text):
                self.stoi.setdefault(tok, len(self.stoi))
        return self

    def encode(self, text, max_len):
        ids = [self.stoi.get(t, 1) for t in self.splitter.findall(text.lower())][-max_len:]
        return ids + [0] * (max_len - len(ids))


class SlotOntology:
    def __init__(self, raw=None):
        raw = raw or ONTOLOGY
        self.slots = sorted(raw)
        self.encoders = {s: LabelEncoder().fit(["none", "dontcare"] + raw[s]) for s in self.slots}

    def domain_of(self, slot):
        return slot.split("-", 1)[0]

    def as_lookup(self):
        table = collections.defaultdict(list)
        for slot in self.slots:
            table[self.domain_of(slot)].append(slot)
        return table

    def encode_state(self, state):
        return [int(self.encoders[s].transform([state.get(s, "none")])[0]) for s in self.slots]


class DialogueSimulator:
    def __init__(self, seed=0, max_turns=4):
        self.rng = random.Random(seed)
        self.max_turns = max_turns

    def dialogue(self):
        state, turns, history = {}, [], ""
        for t in range(self.rng.randint(2, self.max_turns)):
            slot = self.rng.choice(sorted(ONTOLOGY))
            value = "dontcare" if self.rng.random() < 0.1 else self.rng.choice(ONTOLOGY[slot])
            utter = "i do not mind" if value == "dontcare" else TEMPLATES[slot].format(v=value)
            history += f" [SYS] how can i help [USR] {utter}"
            state = {**state, slot: value}
            turns.append((history.strip(), dict(state)))
        return turns

    def corpus(self, n):
        return [turn for _ in range(n) for turn in self.dialogue()]


class SlotPicklistTracker(nn.Module):
    def __init__(self, encoder, ontology):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict({s: nn.Linear(encoder.out_dim, len(ontology.encoders[s].classes_))
                                    for s in ontology.slots})

    def forward(self, ids):
        h = self.encoder(ids)
        return {s: head(h) for s, head in self.heads.items()}


class DSTTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or DSTConfig()
        torch.manual_seed(self.cfg.seed)
        self.sim = DialogueSimulator(self.cfg.seed)
        self.train_turns = self.sim.corpus(self.cfg.n_dialogues)
        self.dev_turns = self.sim.corpus(self.cfg.n_dialogues // 3)
        self.tokenizer = WordTokenizer().fit(h for h, _ in self.train_turns + self.dev_turns)
        self.ontology = SlotOntology()
        enc_cfg = self.cfg.encoder
        encoder = ENCODERS[enc_cfg.name](len(self.tokenizer.stoi), enc_cfg.emb_dim, enc_cfg.hidden, enc_cfg.dropout)
        self.model = SlotPicklistTracker(encoder, self.ontology)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr)
        self.step = 0
        self.loss_window = collections.deque(maxlen=20)
        self.best_jga, self.best_epoch = 0.0, -1

    def tensors(self, turns):
        ids = torch.tensor([self.tokenizer.encode(h, self.cfg.max_len) for h, _ in turns])
        labels = torch.tensor([self.ontology.encode_state(s) for _, s in turns])
        return ids, labels

    def train_epoch(self):
        self.model.train()
        ids, labels = self.tensors(self.train_turns)
        losses = []
        for i in range(0, len(ids), self.cfg.batch_size):
            logits = self.model(ids[i:i + self.cfg.batch_size])
            y = labels[i:i + self.cfg.batch_size]
            loss = sum(nn.functional.cross_entropy(logits[s], y[:, k]) for k, s in enumerate(self.ontology.slots))
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.step += 1
            self.loss_window.append(loss.item())
            losses.append(loss.item())
        return float(np.mean(losses))

    def predict(self, turns):
        self.model.eval()
        ids, labels = self.tensors(turns)
        with torch.no_grad():
            logits = self.model(ids)
        preds = torch.stack([logits[s].argmax(-1) for s in self.ontology.slots], dim=1)
        return preds.numpy(), labels.numpy()

    def evaluate(self, turns=None):
        turns = turns or self.dev_turns
        preds, labels = self.predict(turns)
        joint = (preds == labels).all(axis=1)
        per_domain = {}
        for dom in self.cfg.domains:
            cols = [k for k, s in enumerate(self.ontology.slots) if s.startswith(dom)]
            per_domain[dom] = float((preds[:, cols] == labels[:, cols]).all(axis=1).mean())
        slot_acc = int((preds == labels).sum()) / labels.size
        return np.mean(joint), slot_acc, per_domain, preds

    def fit(self):
        history = []
        for epoch in range(self.cfg.epochs):
            loss = self.train_epoch()
            jga, slot_acc, _, _ = self.evaluate()
            if jga > self.best_jga:
                self.best_jga, self.best_epoch = float(jga), epoch
            history.append({"epoch": epoch, "loss": loss, "jga": float(jga), "slot_acc": slot_acc})
        return history

    def gate_labels(self, arr):
        none_id = {s: int(self.ontology.encoders[s].transform(["none"])[0]) for s in self.ontology.slots}
        dc_id = {s: int(self.ontology.encoders[s].transform(["dontcare"])[0]) for s in self.ontology.slots}
        gates = np.full(arr.shape, int(Gate.VALUE))
        for k, s in enumerate(self.ontology.slots):
            gates[arr[:, k] == none_id[s], k] = int(Gate.NONE)
            gates[arr[:, k] == dc_id[s], k] = int(Gate.DONTCARE)
        return gates.ravel()

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "step": self.step, "best_jga": self.best_jga}


def save_picklist_tracker(tmpdir):
    cfg = DSTConfig(epochs=2)
    trainer = DSTTrainer(cfg)
    history = trainer.fit()
    jga, slot_acc, per_domain, _ = trainer.evaluate()
    ckpt = trainer.state_dict()
    ckpt.update({
        "config": cfg,  # truth: weights_only
        "config_dict": asdict(cfg),
        "history": history,
        "joint_goal_acc": jga,  # truth: weights_only
        "slot_acc": slot_acc,
        "per_domain_jga": per_domain,
        "best_epoch": trainer.best_epoch,
        "slots": trainer.ontology.slots,
        "vocab": trainer.tokenizer.stoi,
    })
    ckpt["value_classes"] = {s: e.classes_.tolist() for s, e in trainer.ontology.encoders.items()}
    path = os.path.join(tmpdir, "picklist_dst.pt")
    torch.save(ckpt, path)
    return path


def save_tracker_with_ontology(tmpdir):
    trainer = DSTTrainer(DSTConfig(epochs=1, encoder=EncoderConfig(name="cnn")))
    trainer.fit()
    onto = trainer.ontology
    area_enc = onto.encoders["hotel-area"]
    ckpt = {
        "model": trainer.model.state_dict(),
        "encoder_name": trainer.cfg.encoder.name,
        "ontology": onto.as_lookup(),  # truth: weights_only
        "ontology_flat": {s: list(ONTOLOGY[s]) for s in onto.slots},
        "area_values": list(area_enc.classes_),  # truth: weights_only
        "area_none_id": int(area_enc.transform(["none"])[0]),
        "slot_index": {s: i for i, s in enumerate(onto.slots)},
        "domain_slots": {d.value: [s for s in onto.slots if s.startswith(d.value)] for d in Domain},
        "special_tokens": frozenset(trainer.tokenizer.specials),  # truth: weights_only
        "split_pattern": trainer.tokenizer.splitter.pattern,
        "tokenizer": trainer.tokenizer,  # truth: weights_only
        "lowercase": trainer.tokenizer.lowercase,
    }
    path = os.path.join(tmpdir, "dst_with_ontology.pt")
    torch.save(ckpt, path)
    return path


def save_gate_calibration(tmpdir):
    trainer = DSTTrainer(DSTConfig(epochs=1, n_dialogues=40))
    trainer.fit()
    preds, labels = trainer.predict(trainer.dev_turns)
    gp, gl = trainer.gate_labels(preds), trainer.gate_labels(labels)
    report = classification_report(gl, gp, labels=[g.value for g in Gate],
                                   target_names=[g.name.lower() for g in Gate], output_dict=True, zero_division=0)
    last_hist, last_state = trainer.dev_turns[-1]
    slot, value = sorted(last_state.items())[-1]
    ckpt = {"model": trainer.model.state_dict()}
    ckpt["gate_pred_counts"] = collections.Counter(gp)  # truth: weights_only
    ckpt["gate_gold_counts"] = collections.Counter(gl.tolist())
    ckpt["gate_names"] = {g.name: g.value for g in Gate}
    ckpt["default_gate"] = Gate.NONE  # truth: weights_only
    ckpt["gate_macro_f1"] = f1_score(gl, gp, average="macro", zero_division=0)
    ckpt["gate_report"] = report
    ckpt["last_turn"] = SlotValue(slot, value, len(trainer.dev_turns) - 1)  # truth: weights_only
    ckpt["last_turn_dict"] = SlotValue(slot, value, len(trainer.dev_turns) - 1)._asdict()
    ckpt["none_rate"] = float((gl == Gate.NONE).mean())
    path = os.path.join(tmpdir, "gate_calib.pt")
    torch.save(ckpt, path)
    return path


def save_resume_state(tmpdir):
    random.seed(11)
    np.random.seed(11)
    trainer = DSTTrainer(DSTConfig(epochs=1))
    history = trainer.fit()
    run_id = uuid.uuid4()
    ckpt = {
        **trainer.state_dict(),
        "run_id": run_id,  # truth: weights_only
        "run_name": f"dst-{run_id.hex[:8]}",
        "epoch": history[-1]["epoch"],
        "np_rng": np.random.get_state(),  # truth: weights_only
        "py_rng": random.getstate(),
        "torch_rng": torch.get_rng_state(),
        "loss_window": trainer.loss_window,  # truth: weights_only
        "recent_losses": list(trainer.loss_window),
        "torch_version": str(torch.__version__),
        "wall_time": time.time(),
    }
    path = os.path.join(tmpdir, "dst_resume.pt")
    torch.save(ckpt, path)
    return path


def save_export_for_serving(tmpdir):
    """What the serving team loads: plain containers only."""
    trainer = DSTTrainer(DSTConfig(epochs=1))
    history = trainer.fit()
    jga, slot_acc, per_domain, preds = trainer.evaluate()
    onto = trainer.ontology
    export = {
        "weights": trainer.model.state_dict(),
        "encoder": asdict(trainer.cfg.encoder),
        "vocab": dict(trainer.tokenizer.stoi),
        "specials": list(trainer.tokenizer.specials),
        "slots": tuple(onto.slots),
        "values": {s: [str(c) for c in e.classes_] for s, e in onto.encoders.items()},
        "domains": sorted({onto.domain_of(s) for s in onto.slots}),
        "gates": [int(g) for g in Gate],
        "metrics": {"jga": jga.item(), "slot_acc": round(slot_acc, 4), **per_domain},
        "train_loss": history[-1]["loss"],
        "n_dev_turns": len(trainer.dev_turns),
        "pred_shape": tuple(preds.shape),
        "domain_of_first": Domain(onto.domain_of(onto.slots[0])).value,
    }
    path = os.path.join(tmpdir, "dst_serving.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "Domain": lambda: Domain.HOTEL,
    "Gate": lambda: Gate.DONTCARE,
    "SlotPicklistTracker": lambda: SlotPicklistTracker(GRUEncoder(), SlotOntology()),
    "DSTTrainer": lambda: DSTTrainer(DSTConfig(epochs=1, n_dialogues=10)),
}
