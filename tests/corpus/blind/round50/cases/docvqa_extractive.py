"""Extractive document VQA (DocVQA style): predict the answer span over the OCR tokens of a page.

Question tokens and OCR words share one sequence; every OCR word also carries its bounding box,
normalised to a 0..1000 grid (LayoutLM convention). Evaluation uses ANLS.

    python docvqa_extractive.py --epochs 3 --max-seq-len 48 --out runs/docvqa
"""
import argparse
import collections
import os
import random
import re
import time
from datetime import datetime

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
PAD, UNK, CLS, SEP = range(4)
QUESTION_WORDS = frozenset({"what", "which", "who", "when", "where", "how"})
BBOX_SCALE = 1000

_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def normalize_answer(text):
    text = _PUNCT.sub(" ", text.lower())
    return _WS.sub(" ", text).strip()


def levenshtein(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def anls(pred, golds, tau=0.5):
    best = 0.0
    p = normalize_answer(pred)
    for gold in golds:
        g = normalize_answer(gold)
        nl = levenshtein(p, g) / max(len(p), len(g), 1)
        best = max(best, 1.0 - nl if nl < tau else 0.0)
    return best


class WhitespaceTokenizer:
    def __init__(self, vocab=None, lowercase=True):
        self.vocab = dict(vocab or {t: i for i, t in enumerate(SPECIAL_TOKENS)})
        self.lowercase = lowercase

    def fit(self, texts, min_freq=1):
        counts = collections.Counter(w for t in texts for w in self.split(t))
        for word, n in sorted(counts.items()):
            if n >= min_freq and word not in self.vocab:
                self.vocab[word] = len(self.vocab)
        return self

    def split(self, text):
        return normalize_answer(text).split() if self.lowercase else text.split()

    def encode(self, text):
        return [self.vocab.get(w, UNK) for w in self.split(text)]


def make_synthetic_docs(n, seed=0):
    """Invoices and forms: a few OCR words with boxes in page pixels, one question each."""
    rng = random.Random(seed)
    fields = [("total", "what is the total amount"), ("date", "when was the invoice issued"),
              ("vendor", "who is the vendor"), ("number", "what is the invoice number")]
    answers = {"total": ["12.50", "99.00", "7.25"], "date": ["2019-03-01", "2020-11-12"],
               "vendor": ["acme corp", "globex"], "number": ["inv 0042", "inv 1337"]}
    docs = []
    for i in range(n):
        w, h = rng.choice([(612, 792), (595, 842), (816, 1056)])
        key, question = fields[i % len(fields)]
        answer = rng.choice(answers[key])
        words = ["invoice", key, ":"] + answer.split() + ["page", "1", "of", "1"]
        boxes, x = [], 40
        for word in words:
            bw = 12 + 7 * len(word)
            boxes.append([x, 60 + 20 * (i % 5), x + bw, 78 + 20 * (i % 5)])
            x += bw + 6
        start = 3
        docs.append({"doc_id": f"doc{i:04d}", "words": words, "boxes": boxes, "page_size": (w, h),
                     "question": question, "answers": [answer], "answer_type": key,
                     "start": start, "end": start + len(answer.split()) - 1})
    return docs


def encode_example(doc, tokenizer, max_len):
    q_ids = tokenizer.encode(doc["question"])
    ids = [CLS] + q_ids + [SEP]
    offset = len(ids)
    boxes = [[0, 0, 0, 0]] * len(ids)
    w, h = doc["page_size"]
    for word, (x0, y0, x1, y1) in zip(doc["words"], doc["boxes"]):
        ids.append(tokenizer.vocab.get(normalize_answer(word) or word, UNK))
        boxes.append([x0 * BBOX_SCALE // w, y0 * BBOX_SCALE // h, x1 * BBOX_SCALE // w, y1 * BBOX_SCALE // h])
    ids, boxes = ids[:max_len], boxes[:max_len]
    pad = max_len - len(ids)
    return (torch.tensor(ids + [PAD] * pad), torch.tensor(boxes + [[0, 0, 0, 0]] * pad),
            offset + doc["start"], offset + doc["end"])


def collate(examples):
    ids, boxes, starts, ends = zip(*examples)
    return torch.stack(ids), torch.stack(boxes), torch.tensor(starts), torch.tensor(ends)


class LayoutQAModel(nn.Module):
    def __init__(self, vocab_size=128, hidden=32, max_len=48, bbox_buckets=BBOX_SCALE + 1):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, hidden, padding_idx=PAD)
        self.pos = nn.Embedding(max_len, hidden)
        self.x_emb = nn.Embedding(bbox_buckets, hidden)
        self.y_emb = nn.Embedding(bbox_buckets, hidden)
        layer = nn.TransformerEncoderLayer(hidden, nhead=2, dim_feedforward=2 * hidden, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.qa_head = nn.Linear(hidden, 2)

    def forward(self, ids, boxes):
        pos = torch.arange(ids.size(1)).unsqueeze(0)
        h = (self.tok(ids) + self.pos(pos) + self.x_emb(boxes[..., 0]) + self.y_emb(boxes[..., 1])
             + self.x_emb(boxes[..., 2]) + self.y_emb(boxes[..., 3]))
        h = self.encoder(h, src_key_padding_mask=ids.eq(PAD))
        start, end = self.qa_head(h).unbind(-1)
        return start, end


def build_parser():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--max-seq-len", type=int, default=48)
    p.add_argument("--max-answer-len", type=int, default=4)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--out", type=str, default="runs/docvqa")
    return p


class DocVQATrainer:
    def __init__(self, args, model, tokenizer, steps_per_epoch=3):
        self.args = args
        self.model = model
        self.tokenizer = tokenizer
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=args.lr, total_steps=max(2, args.epochs * steps_per_epoch),
            pct_start=args.warmup)
        self.history = collections.defaultdict(list)
        self.best_anls = -1.0
        self.best_epoch = -1
        self.global_step = 0
        self.started_at = datetime.now()

    def train_epoch(self, batches):
        self.model.train()
        losses = []
        for ids, boxes, starts, ends in batches:
            s_logits, e_logits = self.model(ids, boxes)
            loss = (F.cross_entropy(s_logits, starts) + F.cross_entropy(e_logits, ends)) / 2
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.global_step += 1
            losses.append(loss.item())
        return np.mean(losses)

    def decode(self, doc, s_logits, e_logits):
        offset = len(self.tokenizer.encode(doc["question"])) + 2
        n = len(doc["words"])
        s = int(s_logits[offset:offset + n].argmax()) if n else 0
        e = int(e_logits[offset + s:offset + min(n, s + self.args.max_answer_len)].argmax()) + s
        return " ".join(doc["words"][s:e + 1])

    @torch.no_grad()
    def evaluate(self, docs):
        self.model.eval()
        scores, exact, per_type = [], 0, collections.defaultdict(list)
        for doc in docs:
            ids, boxes, _, _ = encode_example(doc, self.tokenizer, self.args.max_seq_len)
            s_logits, e_logits = self.model(ids[None], boxes[None])
            pred = self.decode(doc, s_logits[0], e_logits[0])
            score = anls(pred, doc["answers"])
            scores.append(score)
            per_type[doc["answer_type"]].append(score)
            exact += int(normalize_answer(pred) in {normalize_answer(a) for a in doc["answers"]})
        return {"anls": np.mean(scores), "em": exact / len(docs), "scores": scores,
                "per_type": {t: float(np.mean(v)) for t, v in per_type.items()}}

    def fit(self, batches, val_docs):
        metrics = {}
        for epoch in range(self.args.epochs):
            loss = self.train_epoch(batches)
            metrics = self.evaluate(val_docs)
            self.history["train_loss"].append(loss)
            self.history["val_anls"].append(metrics["anls"])
            if metrics["anls"] > self.best_anls:
                self.best_anls, self.best_epoch = metrics["anls"], epoch
        return metrics

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "global_step": self.global_step}

    def save_checkpoint(self, path, extra=None):
        state = self.state_dict()
        state.update(extra or {})
        torch.save(state, path)
        return path


def setup(argv):
    args = build_parser().parse_args(argv)
    torch.manual_seed(args.seed)
    docs = make_synthetic_docs(12, seed=args.seed)
    tok = WhitespaceTokenizer().fit([d["question"] for d in docs] + [" ".join(d["words"]) for d in docs])
    model = LayoutQAModel(vocab_size=len(tok.vocab), hidden=args.hidden, max_len=args.max_seq_len)
    examples = [encode_example(d, tok, args.max_seq_len) for d in docs[:8]]
    batches = [collate(examples[i:i + args.batch_size]) for i in range(0, len(examples), args.batch_size)]
    trainer = DocVQATrainer(args, model, tok, steps_per_epoch=len(batches))
    return args, trainer, batches, docs[8:]


def save_best_checkpoint(tmpdir):
    args, trainer, batches, val_docs = setup(["--epochs", "2", "--out", tmpdir])
    metrics = trainer.fit(batches, val_docs)
    return trainer.save_checkpoint(os.path.join(tmpdir, "best.pt"), {
        "epoch": trainer.best_epoch,
        "best_anls": trainer.best_anls,  # truth: weights_only
        "val_em": metrics["em"],
        "per_type_anls": metrics["per_type"],
        "lr": trainer.scheduler.get_last_lr()[0],
        "args": args,  # truth: weights_only
        "args_dict": vars(args),
        "history": trainer.history,  # truth: weights_only
        "loss_curve": [float(v) for v in trainer.history["train_loss"]],
        "vocab": trainer.tokenizer.vocab,
        "started_at": trainer.started_at.isoformat(),
        "wall_time": (datetime.now() - trainer.started_at).total_seconds(),
    })


def save_layout_preprocessing(tmpdir):
    docs = make_synthetic_docs(20, seed=3)
    sizes = np.array([d["page_size"] for d in docs])
    lengths = np.array([len(d["words"]) for d in docs])
    counts, edges = np.histogram(lengths, bins=4)
    widths = [b[2] - b[0] for d in docs for b in d["boxes"]]
    stats = {
        "bbox_scale": BBOX_SCALE,
        "page_size_mean": tuple(np.mean(sizes, axis=0)),  # truth: weights_only
        "page_size_max": [int(v) for v in sizes.max(axis=0)],
        "n_docs": len(docs),
        "max_ocr_tokens": int(np.percentile(lengths, 95)),
        "longest_page": max(lengths),  # truth: weights_only
        "longest_question": max(len(d["question"].split()) for d in docs),
        "ocr_len_hist": counts.tolist(),
        "ocr_len_edges": edges,  # truth: weights_only
        "median_box_width": float(np.median(widths)),
        "special_tokens": SPECIAL_TOKENS,
    }
    stats["normalizer"] = {"pattern": _PUNCT.pattern, "flags": int(_PUNCT.flags), "lower": True}
    stats["question_pattern"] = _PUNCT  # truth: weights_only
    stats["question_words"] = QUESTION_WORDS  # truth: weights_only
    stats["question_words_sorted"] = sorted(QUESTION_WORDS)
    path = os.path.join(tmpdir, "layout_stats.pt")
    torch.save(stats, path)
    return path


def save_answer_type_report(tmpdir):
    args, trainer, batches, _ = setup(["--epochs", "1", "--seed", "5"])
    trainer.train_epoch(batches)
    docs = make_synthetic_docs(16, seed=9)
    metrics = trainer.evaluate(docs)
    scores = np.asarray(metrics["scores"])
    lengths = np.array([len(d["answers"][0]) for d in docs])
    report = {"type_counts": collections.Counter(d["answer_type"] for d in docs)}
    for name, fn in (("min", np.min), ("max", np.max)):
        report[f"anls_{name}"] = float(fn(scores))
    report["per_type"] = metrics["per_type"]
    report["worst_doc"] = docs[int(np.argmin(scores))]["doc_id"]
    report["worst_index"] = np.argmin(scores)  # truth: weights_only
    report["len_anls_corr"] = np.corrcoef(lengths, scores + 1e-3 * lengths)[0, 1]  # truth: weights_only
    report["all_scores"] = scores.tolist()
    report["n_perfect"] = int((scores == 1.0).sum())
    path = os.path.join(tmpdir, "answer_types.pt")
    torch.save(report, path)
    return path


def save_export_bundle(tmpdir):
    args, trainer, _, _ = setup(["--hidden", "16"])
    bundle = dict(
        state_dict=trainer.model.state_dict(),
        config={"vocab_size": len(trainer.tokenizer.vocab), "hidden": args.hidden, "max_len": args.max_seq_len},
        tokenizer={"vocab": trainer.tokenizer.vocab, "lowercase": trainer.tokenizer.lowercase},
        torch_version=str(torch.__version__),
        exported_at=datetime.now().isoformat(timespec="seconds"),
        created=time.time(),
        input_names=["input_ids", "bbox"],
        bbox_dtype=torch.long,
        max_answer_len=args.max_answer_len,
    )
    path = os.path.join(tmpdir, "export.pt")
    torch.save(bundle, path)
    return path


def save_full_model(tmpdir):
    _, trainer, batches, _ = setup(["--epochs", "1"])
    trainer.train_epoch(batches[:1])
    path = os.path.join(tmpdir, "model_full.pt")
    torch.save(
        trainer.model,  # truth: weights_only
        path,
    )
    return path


FACTORIES = {
    "DocVQATrainer": lambda: setup(["--epochs", "1"])[1],
}


def main():
    args, trainer, batches, val_docs = setup(None)
    metrics = trainer.fit(batches, val_docs)
    os.makedirs(args.out, exist_ok=True)
    print(f"anls={metrics['anls']:.4f} em={metrics['em']:.3f}")
    trainer.save_checkpoint(os.path.join(args.out, "last.pt"), {"epoch": args.epochs - 1})


if __name__ == "__main__":
    main()
