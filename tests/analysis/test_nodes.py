"""nodes.walk and nodes.child_nodes give exactly what ast's own give, in the same order."""

from __future__ import annotations

import ast
from pathlib import Path

import ckpt_lsp
import pytest
from ckpt_lsp.analysis.nodes import body_nodes, child_nodes, walk

SOURCES = sorted(Path(ckpt_lsp.__file__).parent.rglob("*.py"))
ODD = """
match x:
    case {"a": 1, **rest} | [1, *_] if rest: pass
    case Point(x=0) as p: print(f"{p!r:>{w}}")
d = {**a, "k": v}
global g
async def f[T](a, /, b=1, *c, d, **e) -> T:
    async with a as (b, c): yield [i async for i in b if await i]
lambda *a, **k: (yield)
"""


def _trees() -> list[ast.AST]:
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in SOURCES[:40]]
    try:
        trees.append(ast.parse(ODD))
    except SyntaxError:  # type parameters need Python 3.12
        trees.append(ast.parse(ODD.replace("f[T]", "f")))
    return trees


@pytest.mark.parametrize("tree", _trees(), ids=lambda t: str(len(list(ast.walk(t)))))
def test_walk_yields_the_nodes_ast_walk_yields_in_its_order(tree: ast.AST) -> None:
    ours, theirs = list(walk(tree)), list(ast.walk(tree))
    assert len(ours) == len(theirs)
    assert all(a is b for a, b in zip(ours, theirs, strict=True))


@pytest.mark.parametrize("tree", _trees(), ids=lambda t: str(len(list(ast.walk(t)))))
def test_child_nodes_are_ast_iter_child_nodes(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        ours, theirs = list(child_nodes(node)), list(ast.iter_child_nodes(node))
        assert len(ours) == len(theirs)
        assert all(a is b for a, b in zip(ours, theirs, strict=True))


def test_body_nodes_leave_out_what_the_function_defines() -> None:
    source = (
        "def build(cfg):\n"
        "    inner = lambda x: x.own\n"
        "    def helper(y):\n        return y.deep\n"
        "    class Local:\n        attr = cfg.hidden\n"
        "    return cfg.shown\n"
    )
    func = ast.parse(source).body[0]
    assert isinstance(func, ast.FunctionDef)
    names = {n.attr for n in body_nodes(func) if isinstance(n, ast.Attribute)}
    assert names == {"shown"}
    returns = [n for n in body_nodes(func) if isinstance(n, ast.Return)]
    assert len(returns) == 1
