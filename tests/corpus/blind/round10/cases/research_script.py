"""An argparse research script: train a small classifier, evaluate with sklearn, keep resumable checkpoints."""
import argparse
import datetime
import os
import random
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from torch import nn

EvalResult = namedtuple("EvalResult", ["loss", "acc"])


def build_parser():
    p = argparse.ArgumentParser(description="toy classifier")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--arch", choices=["mlp", "linear"], default="mlp")
    p.add_argument("--seed", type=int, default=0)
    return p


def build_parser_with_paths():
    p = build_parser()
    p.add_argument("--data-root", type=Path, default=Path("/tmp/data"))
    p.add_argument("--save-dir", default="/tmp/ckpts")
    return p


def make_model(arch):
    if arch == "linear":
        return nn.Linear(10, 3)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))


def run(args):
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    model = make_model(args.arch)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    x = torch.randn(64, 10)
    y = torch.randint(0, 3, (64,))
    for _ in range(args.epochs):
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    return model, criterion, optimizer, scheduler, y.numpy(), pred


def save_resume_with_namespace(tmpdir):
    args = build_parser().parse_args(["--lr", "0.01", "--arch", "linear"])
    model, _, optimizer, scheduler, _, _ = run(args)
    state = {
        "epoch": args.epochs,
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "scheduler_state_dict": scheduler.state_dict(),
        "args": args,  # truth: weights_only
        "arch": args.arch,
    }
    path = os.path.join(tmpdir, f"checkpoint_{args.epochs:03d}.pth.tar")
    torch.save(state, path)
    return path


def save_vars_of_args(tmpdir):
    args = build_parser().parse_args([])
    model, *_ = run(args)
    path = os.path.join(tmpdir, "vars.pth")
    torch.save({"model": model.state_dict(), "hparams": vars(args)}, path)
    return path


def save_vars_of_args_with_path(tmpdir):
    args = build_parser_with_paths().parse_args(["--data-root", "/tmp/imagenet"])
    model, *_ = run(args)
    ckpt = {
        "model": model.state_dict(),
        "hparams": {k: str(v) for k, v in vars(args).items()},
        "data_root": args.data_root,  # truth: weights_only
        "save_dir": args.save_dir,
        "dataset_root": os.fspath(args.data_root),
    }
    path = os.path.join(tmpdir, "vars_path.pth")
    torch.save(ckpt, path)
    return path


def save_eval_report(tmpdir):
    args = build_parser().parse_args([])
    model, *_, y_true, y_pred = run(args)
    report = {
        "model": model.state_dict(),
        "accuracy": accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, average="macro"),
        "per_class_f1": f1_score(y_true, y_pred, average=None),  # truth: weights_only
        "confusion": confusion_matrix(y_true, y_pred),  # truth: weights_only
        "confusion_list": confusion_matrix(y_true, y_pred).tolist(),
        "n_correct": (y_true == y_pred).sum(),  # truth: weights_only
        "n_total": len(y_true),
    }
    path = os.path.join(tmpdir, "eval.pth")
    torch.save(report, path)
    return path


def save_rng_snapshot(tmpdir):
    args = build_parser().parse_args(["--seed", "7"])
    model, *_ = run(args)
    ckpt = {"model": model.state_dict()}
    ckpt["torch_rng"] = torch.get_rng_state()
    ckpt["python_rng"] = random.getstate()
    ckpt["numpy_rng"] = np.random.get_state()  # truth: weights_only
    ckpt["numpy_seed"] = args.seed
    path = os.path.join(tmpdir, "rng.pth")
    torch.save(ckpt, path)
    return path


def save_full_objects(tmpdir):
    args = build_parser().parse_args([])
    model, criterion, optimizer, scheduler, _, _ = run(args)
    ckpt = {
        "model": model.state_dict(),
        "criterion": criterion,  # truth: weights_only
        "criterion_name": type(criterion).__name__,
        "label_smoothing": criterion.label_smoothing,
        "optimizer": optimizer,  # truth: weights_only
        "scheduler": scheduler.state_dict(),
        "last_lr": scheduler.get_last_lr()[0],
        "param_groups": optimizer.param_groups[0]["lr"],
    }
    path = os.path.join(tmpdir, "objects.pth")
    torch.save(ckpt, path)
    return path


def save_timing(tmpdir):
    args = build_parser().parse_args([])
    start = datetime.datetime.now()
    t0 = time.perf_counter()
    model, *_ = run(args)
    elapsed = datetime.datetime.now() - start
    ckpt = dict(
        model=model.state_dict(),
        started_at=start,  # truth: weights_only
        started_iso=start.isoformat(),
        wall_time=elapsed,  # truth: weights_only
        wall_seconds=elapsed.total_seconds(),
        perf=time.perf_counter() - t0,
    )
    path = os.path.join(tmpdir, "timing.pth")
    torch.save(ckpt, path)
    return path


def save_namedtuple_result(tmpdir):
    args = build_parser().parse_args([])
    model, criterion, _, _, y_true, y_pred = run(args)
    result = EvalResult(loss=0.5, acc=float((y_true == y_pred).mean()))
    ckpt = {
        "model": model.state_dict(),
        "eval": result,  # truth: weights_only
        "eval_dict": result._asdict(),
        "eval_tuple": tuple(result),
    }
    path = os.path.join(tmpdir, "eval_nt.pth")
    torch.save(ckpt, path)
    return path


def save_weights_only_clean(tmpdir):
    args = build_parser().parse_args(["--arch", "mlp"])
    model, _, optimizer, _, y_true, y_pred = run(args)
    acc = float(accuracy_score(y_true, y_pred))
    path = os.path.join(tmpdir, f"mlp_acc{acc:.2f}.pth")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "acc": acc,
            "arch": args.arch,
            "args": {k: v for k, v in vars(args).items()},
            "classes": torch.arange(3),
        },
        path,
    )
    return path
