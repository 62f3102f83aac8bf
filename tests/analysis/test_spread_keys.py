"""spread_keys: the keys a call's `**` spreads pass, only when the text tells every one."""

from __future__ import annotations

import ast
import textwrap

import pytest
from ckpt_lsp.analysis.facts import module_facts
from ckpt_lsp.analysis.spread_keys import spread_entries


def _entries(source: str) -> dict[str, list[str]] | None:
    """The entries of the last call of `Model` in `build`, values unparsed."""
    text = textwrap.dedent(source)
    facts = module_facts("m.py", "m", text)
    func = facts.functions["build"]
    call = [
        n
        for n in ast.walk(func)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Model"
    ][-1]
    found = spread_entries(call, func, facts)
    if found is None:
        return None
    return {k: [ast.unparse(v) for v in vs] for k, vs in found.items()}


KNOWN = [
    (
        "a helper's dict(...) display",
        """
        def _kwargs(cfg):
            return dict(lr=cfg.lr, tile_filter=lambda row: row > 0.5)
        def build(cfg):
            return Model(**_kwargs(cfg))
        """,
        {"lr": ["cfg.lr"], "tile_filter": ["lambda row: row > 0.5"]},
    ),
    (
        "a local from two helpers' displays, a constant store and a keyword update",
        """
        def _a(cfg):
            return {"lr": cfg.lr}
        def _b(cfg):
            out = {"lr": 0.1}
            return out
        def build(name, cfg):
            if name == "a":
                kwargs = _a(cfg)
            else:
                kwargs = _b(cfg)
            kwargs["depth"] = 3
            kwargs.update(seeds=[1, 2])
            return Model(**kwargs)
        """,
        {"lr": ["cfg.lr", "0.1"], "depth": ["3"], "seeds": ["[1, 2]"]},
    ),
]

UNKNOWN = [
    (
        "a dict updated from another dict",
        """
        def build(cfg, extra):
            kwargs = {"lr": cfg.lr}
            kwargs.update(extra)
            return Model(**kwargs)
        """,
    ),
    (
        "a dict handed to another call, which may change it",
        """
        def build(cfg):
            kwargs = {"lr": cfg.lr}
            fill(kwargs)
            return Model(**kwargs)
        """,
    ),
    (
        "a key not written",
        """
        def build(cfg, key):
            kwargs = {"lr": cfg.lr}
            kwargs[key] = 1
            return Model(**kwargs)
        """,
    ),
    (
        "a parameter spread",
        """
        def build(**kwargs):
            return Model(**kwargs)
        """,
    ),
    (
        "a dict a nested function may change",
        """
        def build(cfg):
            kwargs = {"lr": cfg.lr}
            hooks = [lambda: kwargs.update(cfg.extra)]
            return Model(**kwargs)
        """,
    ),
    (
        "a positional spread besides",
        """
        def build(args):
            return Model(*args, **{"lr": 0.1})
        """,
    ),
    (
        "a helper one of whose returns is no display",
        """
        def _kwargs(cfg):
            if cfg is None:
                return load()
            return {"lr": cfg.lr}
        def build(cfg):
            return Model(**_kwargs(cfg))
        """,
    ),
]


def test_the_registry_key_rules_out_the_other_arms() -> None:
    source = """
    def build_module(name):
        if name == "plain":
            kwargs = {"cfg": to_container(load())}
        elif name == "mil":
            kwargs = {"cfg": load(), "gated": True}
        else:
            raise KeyError(name)
        return Model(**kwargs)
    """
    text = textwrap.dedent(source).replace("def build_module", "def build")
    facts = module_facts("m.py", "m", text)
    func = facts.functions["build"]
    call = [n for n in ast.walk(func) if isinstance(n, ast.Call) and _named(n, "Model")][-1]
    plain = spread_entries(call, func, facts, ("name", "plain"))
    assert plain is not None
    assert {k: [ast.unparse(v) for v in vs] for k, vs in plain.items()} == {
        "cfg": ["to_container(load())"]
    }
    every = spread_entries(call, func, facts)
    assert every is not None and set(every) == {"cfg", "gated"}


def _named(call: ast.Call, name: str) -> bool:
    return isinstance(call.func, ast.Name) and call.func.id == name


@pytest.mark.parametrize(("name", "source", "expected"), KNOWN)
def test_every_key_known(name: str, source: str, expected: dict[str, list[str]]) -> None:
    assert _entries(source) == expected, name


@pytest.mark.parametrize(("name", "source"), UNKNOWN)
def test_not_known(name: str, source: str) -> None:
    assert _entries(source) is None, name
