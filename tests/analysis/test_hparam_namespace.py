"""hparam_namespace: `save_hyperparameters(args)` of a parsed Namespace stores its entries, so
one entry argparse converts to a `Path` makes the checkpoint refused by the default load
(lightning 2.6, torch 2.13). Each case says which parameter is reported, or None."""

from __future__ import annotations

import textwrap

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text

HEADER = """\
import argparse
from pathlib import Path

import lightning as L


def build_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", type=Path, default=Path("data"))
    p.add_argument("--workers", type=int, default=4)
    return p


def parse_args(argv=()):
    return build_parser().parse_args(list(argv))


class Lit(L.LightningModule):
    def __init__(self, args):
        super().__init__()
        self.save_hyperparameters(args)


"""

CASES = [
    (
        "a helper returning another helper's parser's parse_args",
        """
        def build(argv=()):
            args = parse_args(argv)
            return Lit(args)
        """,
        "args",
    ),
    (
        "handed first to a helper that only reads its entries",
        """
        def describe(args, extra):
            return {"workers": args.workers, "root": str(args.data_dir), **extra}


        def build(argv=()):
            args = parse_args(argv)
            summary = describe(args, {})
            return Lit(args)
        """,
        "args",
    ),
    (
        "handed first to a helper that rewrites an entry",
        """
        def plain(args):
            args.data_dir = str(args.data_dir)


        def build(argv=()):
            args = parse_args(argv)
            plain(args)
            return Lit(args)
        """,
        None,
    ),
    (
        "the entry made plain before the module is built",
        """
        def build(argv=()):
            args = parse_args(argv)
            args.data_dir = str(args.data_dir)
            return Lit(args)
        """,
        None,
    ),
]


@pytest.mark.parametrize(("name", "source", "parameter"), CASES)
def test_namespace_entries(name: str, source: str, parameter: str | None) -> None:
    found = [
        f.attribute
        for f in analyze_text(HEADER + textwrap.dedent(source), "lit.py")
        if f.code == "CKPT011"
    ]
    assert found == ([parameter] if parameter else []), name
