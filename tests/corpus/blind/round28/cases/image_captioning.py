"""Show-and-tell style captioner: a small CNN encoder, a GRU decoder, beam search and BLEU by hand.

Images are random 3x16x16 tensors paired with toy captions; what matters here is what each
save_* puts into the checkpoint.
"""
import collections
import enum
import math
import os
from datetime import datetime

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SPECIALS = ["<pad>", "<start>", "<end>", "<unk>"]
CAPTIONS = [
    "a red square on black",
    "a blue circle on white",
    "two red squares",
    "a small blue circle",
    "a green line on black",
    "a red circle on white",
]
IMAGE_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGE_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

Hypothesis = collections.namedtuple("Hypothesis", "tokens score")


class Special(enum.IntEnum):
    PAD = 0
    START = 1
    END = 2
    UNK = 3


class Vocabulary:
    def __init__(self, freq_threshold=1):
        self.freq_threshold = freq_threshold
        self.itos = dict(enumerate(SPECIALS))
        self.stoi = {w: i for i, w in self.itos.items()}
        self.freq = collections.Counter()

    def __len__(self):
        return len(self.itos)

    @staticmethod
    def tokenize(text):
        return text.lower().split()

    def build(self, captions):
        for caption in captions:
            self.freq.update(self.tokenize(caption))
        for word, n in sorted(self.freq.items()):
            if n >= self.freq_threshold:
                self.stoi[word] = len(self.itos)
                self.itos[len(self.itos)] = word
        return self

    def numericalize(self, text):
        return [1] + [self.stoi.get(w, 3) for w in self.tokenize(text)] + [2]

    def to_words(self, ids):
        words = []
        for i in ids:
            if i == 2:
                break
            if i > 3:
                words.append(self.itos[i])
        return words


class EncoderCNN(nn.Module):
    def __init__(self, embed=16):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(16, embed)

    def forward(self, images):
        return self.fc(self.conv(images))


class DecoderGRU(nn.Module):
    def __init__(self, vocab_size, embed=16, hidden=32):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.init_h = nn.Linear(embed, hidden)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, vocab_size)

    def init_state(self, features):
        return torch.tanh(self.init_h(features)).unsqueeze(0)

    def forward(self, features, captions):
        out, _ = self.gru(self.embed(captions), self.init_state(features))
        return self.fc(out)

    def step(self, token, h):
        out, h = self.gru(self.embed(token.view(1, 1)), h)
        return F.log_softmax(self.fc(out[0, -1]), dim=-1), h


def beam_search(encoder, decoder, image, beam_size=3, max_len=8):
    """Returns hypotheses sorted best first; scores are summed numpy log-probabilities."""
    encoder.eval()
    decoder.eval()
    with torch.no_grad():
        h0 = decoder.init_state(encoder(image))
        beams = [([1], np.float32(0.0), h0)]
        done = []
        for _ in range(max_len):
            cand = []
            for tokens, score, h in beams:
                logp, h2 = decoder.step(torch.tensor(tokens[-1]), h)
                logp = logp.numpy()
                for idx in np.argsort(-logp)[:beam_size]:
                    cand.append((tokens + [int(idx)], score + logp[idx], h2))
            cand.sort(key=lambda c: -c[1])
            beams = []
            for c in cand[:beam_size]:
                (done if c[0][-1] == 2 else beams).append(c)
            if not beams:
                break
        done += beams
    return sorted((Hypothesis(tokens, score) for tokens, score, _ in done), key=lambda hyp: -hyp.score)


def ngram_counts(tokens, n):
    return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(ref, hyp, max_n=4):
    if not hyp:
        return 0.0
    log_p = 0.0
    for n in range(1, max_n + 1):
        h, r = ngram_counts(hyp, n), ngram_counts(ref, n)
        match = sum(min(c, r[g]) for g, c in h.items())
        log_p += math.log((match + 1) / (max(sum(h.values()), 0) + 1))
    bp = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return bp * math.exp(log_p / max_n)


def corpus_bleu(refs, hyps, max_n=4):
    matches, totals = np.zeros(max_n), np.zeros(max_n)
    for ref, hyp in zip(refs, hyps):
        for n in range(1, max_n + 1):
            h, r = ngram_counts(hyp, n), ngram_counts(ref, n)
            matches[n - 1] += sum(min(c, r[g]) for g, c in h.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    precisions = (matches + 1) / (totals + 1)
    ref_len = sum(len(r) for r in refs)
    hyp_len = max(sum(len(h) for h in hyps), 1)
    bp = np.exp(min(0.0, 1 - ref_len / hyp_len))
    return bp * np.exp(np.log(precisions).mean()), precisions


def make_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g)


class CaptionTrainer:
    def __init__(self, captions=CAPTIONS, embed=16, hidden=32, lr=1e-2):
        torch.manual_seed(0)
        self.captions = list(captions)
        self.vocab = Vocabulary().build(self.captions)
        self.images = make_images(len(self.captions))
        self.encoder = EncoderCNN(embed)
        self.decoder = DecoderGRU(len(self.vocab), embed, hidden)
        params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        self.optimizer = torch.optim.Adam(params, lr=lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=2, gamma=0.5)
        self.best_bleu = None
        self.val_history = []
        self.step_losses = []

    def batch(self):
        seqs = [torch.tensor(self.vocab.numericalize(c)) for c in self.captions]
        return nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=0)

    def train_epoch(self):
        self.encoder.train()
        self.decoder.train()
        caps = self.batch()
        for _ in range(5):
            self.optimizer.zero_grad()
            logits = self.decoder(self.encoder(self.images), caps[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), caps[:, 1:].reshape(-1), ignore_index=0)
            loss.backward()
            self.optimizer.step()
            self.step_losses.append(loss.item())
        self.scheduler.step()

    def evaluate(self, beam_size=3):
        refs, hyps = [], []
        for image, caption in zip(self.images, self.captions):
            beams = beam_search(self.encoder, self.decoder, image.unsqueeze(0), beam_size)
            refs.append(self.vocab.tokenize(caption))
            hyps.append(self.vocab.to_words(beams[0].tokens))
        bleu, precisions = corpus_bleu(refs, hyps)
        self.last_hyps = hyps
        self.last_precisions = precisions
        return bleu

    def fit(self, epochs=4):
        for _ in range(epochs):
            self.train_epoch()
            bleu = self.evaluate()
            self.val_history.append(bleu)
            if self.best_bleu is None or bleu > self.best_bleu:
                self.best_bleu = bleu
        return self


FACTORIES = {
    "DecoderGRU": lambda: DecoderGRU(12),
    "Special": lambda: Special.END,
    "Hypothesis": lambda: Hypothesis([1, 5, 2], np.float32(-1.5)),
}


def save_caption_checkpoint(tmpdir):
    trainer = CaptionTrainer().fit()
    path = os.path.join(tmpdir, "captioner.pt")
    torch.save({
        "encoder": trainer.encoder.state_dict(),
        "decoder": trainer.decoder.state_dict(),
        "optimizer": trainer.optimizer,  # truth: weights_only
        "scheduler": trainer.scheduler.state_dict(),
        "vocab": trainer.vocab,  # truth: weights_only
        "itos": trainer.vocab.itos,
        "best_bleu": trainer.best_bleu,  # truth: weights_only
        "val_history": [round(float(b), 4) for b in trainer.val_history],
        "last_loss": trainer.step_losses[-1],
        "param_groups": trainer.optimizer.param_groups,
        "last_lr": trainer.scheduler.get_last_lr(),
    }, path)
    return path


def save_beam_outputs(tmpdir):
    trainer = CaptionTrainer().fit(epochs=2)
    beams = beam_search(trainer.encoder, trainer.decoder, trainer.images[:1], beam_size=3)
    best = beams[0]
    path = os.path.join(tmpdir, "beams.pt")
    torch.save({
        "captions": [" ".join(trainer.vocab.to_words(h.tokens)) for h in beams],
        "scores": np.array([h.score for h in beams]),  # truth: weights_only
        "best": best,  # truth: weights_only
        "best_score": float(best.score),
        "best_tokens": list(best.tokens),
        "length_norm": float(best.score) / len(best.tokens),
        "mean_beam_score": sum(h.score for h in beams) / len(beams),  # truth: weights_only
    }, path)
    return path


def save_bleu_report(tmpdir):
    trainer = CaptionTrainer().fit(epochs=2)
    refs = [trainer.vocab.tokenize(c) for c in trainer.captions]
    hyps = trainer.last_hyps
    bleu, precisions = corpus_bleu(refs, hyps)
    per_sentence = [sentence_bleu(r, h) for r, h in zip(refs, hyps)]
    path = os.path.join(tmpdir, "bleu.pt")
    torch.save({
        "corpus_bleu": bleu.item(),
        "precisions": precisions.tolist(),
        "sentence_bleu": per_sentence,
        "mean_sentence_bleu": sum(per_sentence) / len(per_sentence),
        "ref_bigrams": ngram_counts(refs[0], 2),
        "hyp_lengths": [len(h) for h in hyps],
        "evaluated": datetime.now().isoformat(),
    }, path)
    return path


def save_encoder_export(tmpdir):
    trainer = CaptionTrainer()
    trainer.encoder.eval()
    path = os.path.join(tmpdir, "encoder.pt")
    torch.save(trainer.encoder, path)  # truth: weights_only
    return path


def save_preprocessing(tmpdir):
    trainer = CaptionTrainer()
    lengths = np.array([len(trainer.vocab.numericalize(c)) for c in trainer.captions])
    pixel_mean = trainer.images.mean(dim=(0, 2, 3))
    path = os.path.join(tmpdir, "preprocess.pt")
    torch.save({
        "normalize": {"mean": IMAGE_MEAN.tolist(), "std": IMAGE_STD.tolist()},
        "pixel_mean": pixel_mean,
        "image_size": trainer.images.shape[-2:],
        "max_len": np.percentile(lengths, 95),  # truth: weights_only
        "max_len_padded": int(np.ceil(np.percentile(lengths, 95))) + 2,
        "length_hist": np.bincount(lengths).tolist(),
        "word_freq": trainer.vocab.freq,
        "np_rng": np.random.get_state(),  # truth: weights_only
        "torch_rng": torch.get_rng_state(),
        "special_tokens": SPECIALS,
        "end_token": Special.END,  # truth: weights_only
        "pad_id": int(Special.PAD),
    }, path)
    return path
