"""The class layout: which methods may assign `self` (then they are read), and proof on
real code that skipping the others loses no assignment the classifier would record."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from ckpt_lsp.analysis.assignments import self_name_of, walk_function
from ckpt_lsp.analysis.blocks import split_blocks
from ckpt_lsp.analysis.facts import module_facts
from ckpt_lsp.analysis.layout import class_layout
from hypothesis import example, given, settings
from hypothesis import strategies as st
from support import shared

CORPUS = shared.CORPUS
# Real model code to hold the layout against, besides the shared corpus: a fixed list of
# packages of the field and at most FILES_PER_ROOT files of each, so the walk stays bounded
# whatever the environment holds.
FIELD_PACKAGES = ("torch/nn/modules", "lightning/pytorch", "sklearn/ensemble", "keras/src/layers")
FILES_PER_ROOT = 120


def _layout_of(method: str, header: str = "class M(nn.Module):\n") -> bool:
    text = header + "    def other(self):\n        return 1\n\n" + method
    layout = class_layout(text)
    assert layout is not None
    return layout.pieces[-1].must_read


# Each of these assigns an attribute of self (or may): the method must be read.
STORES = {
    "plain": "    def f(self):\n        self.x = 1\n",
    "annotated": "    def f(self):\n        self.x: Dict[str, int] = {}\n",
    "augmented": "    def f(self):\n        self.hooks += [lambda m: m]\n",
    "shift-augmented": "    def f(self, other):\n        self.__wrapped__ <<= other\n",
    "right-shift-augmented": "    def f(self, other):\n        self.bits >>= other\n",
    "tuple": "    def f(self):\n        self.a, self.b = make()\n",
    "chained": "    def f(self):\n        y = self.x = open(p)\n",
    "multi-line tuple": "    def f(self):\n        (\n            self.a,\n            self.b,\n        ) = make()\n",
    "subscript with a call": "    def f(self):\n        self.cache[key(k)] = open(p)\n",
    "multi-line subscript": "    def f(self):\n        self.cache[\n            k\n        ] = v\n",
    "continuation": "    def f(self):\n        self.x \\\n            = 1\n",
    "setattr": "    def f(self):\n        setattr(self, 'x', open(p))\n",
    "mutator": "    def f(self):\n        self.items.append(lambda: 0)\n",
    "hook": "    def f(self):\n        self.backbone[0].register_forward_hook(h)\n",
    "with target": "    def f(self):\n        with open(p) as self.fh:\n            pass\n",
    "for target": "    def f(self):\n        for self.i in range(3):\n            pass\n",
    "parenthesized tuple": "    def f(self):\n        (self.a, self.b) = make()\n",
    "list target": "    def f(self):\n        [self.a, self.b] = make()\n",
    "after a string": '    def f(self):\n        label = "("; self.x = open(p)\n',
    "other self name": "    def f(this):\n        this.x = 1\n",
    "no parameters": "    @staticmethod\n    def f():\n        return 1\n",
    "class-level after": "    def f(self):\n        return 1\n    __call__ = f\n",
}

# None of these assigns an attribute of self: the method is left unread.
READS = {
    "argument of a call": "    def f(self, a):\n        w = softmax(self.w, dim=-1)\n        return w\n",
    "keyword arguments": "    def forward(self, h, m):\n        return self.attn(h, mask=m)\n",
    "loop over self": "    def forward(self, x):\n        for layer in self.layers:\n            x = layer(x)\n        return x\n",
    "comparison": "    def f(self):\n        if self.x == 1 or self.y <= 2 or self.z != 3:\n            return 0\n",
    "shift then compare": "    def f(self, a):\n        return self.x << 2 <= a or self.y >> 1 >= a\n",
    "call of an element": "    def f(self, x):\n        y = self.w[i](x, k=2)\n        return y\n",
    "local subscript": "    def f(self, x):\n        x[mask] = 0\n        return x\n",
}


@pytest.mark.parametrize("name", sorted(STORES))
def test_a_method_that_may_store_is_read(name: str) -> None:
    assert _layout_of(STORES[name])


@pytest.mark.parametrize("name", sorted(READS))
def test_a_method_that_only_reads_is_not(name: str) -> None:
    assert not _layout_of(READS[name])


def test_decorators_and_async_defs_start_their_piece() -> None:
    text = (
        "class M(nn.Module):\n"
        '    """Doc."""\n'
        "    scale = 2\n"
        "\n"
        "    @property\n"
        "    def size(self):\n"
        "        return 1\n"
        "\n"
        "    async def run(self):\n"
        "        self.task = 1\n"
    )
    layout = class_layout(text)
    assert layout is not None
    assert layout.header.endswith("scale = 2\n\n")
    assert [(p.name, p.start_row, p.must_read) for p in layout.pieces] == [
        ("size", 5, False),
        ("run", 9, True),
    ]


def test_no_cut_when_a_docstring_holds_method_lines() -> None:
    """A def-like line inside a string is joined back, never cut at."""
    text = (
        "class M:\n"
        "    def f(self):\n"
        '        """Example:\n'
        "    def g(self):\n"
        "        self.x = 1\n"
        '        """\n'
        "        return 1\n"
    )
    layout = class_layout(text)
    assert layout is not None
    assert [p.name for p in layout.pieces] == ["f"]


def _on_path(name: str) -> Path | None:
    """The first sys.path folder's `name`, as an import would find it."""
    return next((base / name for base in map(Path, sys.path) if (base / name).is_dir()), None)


def _sources() -> list[Path]:
    field = [path for path in map(_on_path, FIELD_PACKAGES) if path is not None]
    if not field:
        pytest.skip(
            "needs torch, lightning, scikit-learn or keras (scripts/setup.sh installs them)"
        )
    files = sorted(CORPUS.rglob("*.py")) if CORPUS.is_dir() else []
    for root in field:
        files += sorted(root.rglob("*.py"))[:FILES_PER_ROOT]
    return files


def _stores(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    self_name = self_name_of(func)
    if self_name is None:
        return []
    assignments, _ = walk_function(func, "", self_name)
    return [a.attribute for a in assignments]


def _dump(node: ast.AST) -> str:
    return ast.dump(node, include_attributes=True)  # rows and columns too


@pytest.mark.slow
def test_no_assignment_is_lost_on_real_code() -> None:
    """Soundness: every method of a real class in which the classifier records an
    assignment of `self` is among the pieces the layout reads, and the read pieces give
    the very methods and class-level statements a whole parse gives."""
    classes = checked = 0
    for path in _sources():
        text = path.read_text(encoding="utf-8", errors="replace")
        for block in split_blocks(text):
            if block.kind != "class":
                continue
            try:
                whole = ast.parse(block.text).body[0]
            except (SyntaxError, IndexError, ValueError):
                continue
            if not isinstance(whole, ast.ClassDef):
                continue
            classes += 1
            facts = module_facts(str(path), "", block.text).classes.get(whole.name)
            assert facts is not None, (path, whole.name)
            read = {_dump(m) for m in facts.assigning_methods()}
            for stmt in whole.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and _stores(stmt):
                    checked += 1
                    assert _dump(stmt) in read, (path, whole.name, stmt.name)
            for stmt in whole.body:
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                words = {
                    node.func.attr
                    for node in ast.walk(stmt)
                    if isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "self"
                }
                if any(getattr(d, "attr", "") == "setter" for d in stmt.decorator_list):
                    words.add("setter")
                for word in words:  # what _property_stores and _lazily_called look for
                    found = {_dump(m) for m in facts.methods_mentioning(word)}
                    assert _dump(stmt) in found, (path, whole.name, stmt.name, word)
            expected = [
                _dump(s)
                for s in whole.body
                if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
            ]
            assert [_dump(s) for s in facts.class_level()] == expected, (path, whole.name)
    assert classes > 100 and checked > 100, (classes, checked)


def test_a_def_joined_into_the_piece_before_it_is_still_found() -> None:
    """A quote count fooled by `'\"\"\"'` joins two methods into one piece: the second is
    found by name all the same, and by what it mentions."""
    text = (
        "class M(nn.Module):\n"
        "    def quote(self):\n"
        '        return \'"""\'\n'
        "\n"
        "    def __getstate__(self):\n"
        "        return {}\n"
        "\n"
        "    def close(self):\n"
        '        return \'"""\'\n'
    )
    layout = class_layout(text)
    assert layout is not None and [p.name for p in layout.pieces] == ["quote"]
    facts = module_facts("m.py", "m", text).classes["M"]
    found = facts.method("__getstate__")
    assert found is not None and found.lineno == 5
    assert "__getstate__" in {m.name for m in facts.methods_mentioning("return {}")}


def test_a_broken_assigning_method_is_a_failure_whatever_is_asked_first() -> None:
    """The whole class asked for first (a fix looking at a base class) must not hide that
    the method that assigns self does not parse."""
    from ckpt_lsp.analysis.parsing import TextCaches

    text = (
        "class M(nn.Module):\n"
        "    def __init__(self):\n"
        "        self.x = (\n"
        "\n"
        "    def forward(self, x):\n"
        "        return x\n"
    )
    for first in ("node", "failure"):
        cls = module_facts("m.py", "m", text, TextCaches()).classes["M"]
        if first == "node":
            assert [getattr(m, "name", "") for m in cls.node.body] == ["forward"]
        assert cls.failure, first
        assert cls.assigning_methods() == []


def test_a_broken_function_is_judged_alike_whether_or_not_another_block_fails() -> None:
    """A function no model calls is not reported, even when a failing module-level block
    makes every block be read."""
    broken_def = "def helper(:\n    pass\n"
    alone = module_facts("m.py", "m", "import os\n\n" + broken_def)
    with_other = module_facts("m.py", "m", "x = (1,\n\n" + broken_def)
    for facts in (alone, with_other):
        assert "helper" in facts.functions and facts.functions.get("helper") is None
        assert all(p.block.kind != "def" for p in facts.broken)
    assert [p.block.start_row for p in with_other.broken] == [1]


# The store pattern written plainly, backtracking freely: the atomic form, which exists to
# avoid that backtracking, must find the very same matches.
_PLAIN_STORES = (
    r"self\s*\.\s*(?:"
    r"\w+[^\n=(]*(?:(?<![=!<>])|(?<=<<)|(?<=>>))=(?!=)"
    r"|[\w.]*\[[^\n]*\]\s*[-+*/%&|^@<>]{0,2}=(?!=)"
    r"|[^\n]*\.\s*(?:append|extend|add|insert|appendleft|update|setdefault)\b"
    r")"
)


@settings(max_examples=1000, deadline=None)
@example("self.x(a=1)\nself.y = 2")
@example("y = self.f(a=b) == self.g\nself.a, self.b = f()")
@example("self.x <= 2\nself.x[k(1)] = v\nself.x.append(y)\nself.x: T = 1")
@example("self.x<<=")
@given(
    st.lists(
        st.sampled_from([*"self.xa_ =(!<>)[]\n:,", "self.", "self.x", "append", "==", " = "]),
        max_size=30,
    ).map("".join)
)
def test_atomic_store_pattern_matches_like_the_backtracking_one(text: str) -> None:
    import re

    from ckpt_lsp.analysis.layout import _self_stores

    atomic = _self_stores("self")[0]
    plain = re.compile(_PLAIN_STORES)
    assert [m.span() for m in atomic.finditer(text)] == [m.span() for m in plain.finditer(text)]


def _top_level_classes(body: list[ast.stmt]) -> set[str]:
    found: set[str] = set()
    for stmt in body:
        if isinstance(stmt, ast.ClassDef):
            found.add(stmt.name)
        elif isinstance(stmt, (ast.If, ast.Try)) or type(stmt).__name__ == "TryStar":
            for field in ("body", "orelse", "finalbody"):
                found |= _top_level_classes(getattr(stmt, field, []))
            for handler in getattr(stmt, "handlers", []):
                found |= _top_level_classes(handler.body)
    return found


# The installed files the splitter once got wrong (checked when present).
_MISREAD_ONCE = (
    "libcst/_nodes/expression.py",
    "numpy/ma/tests/test_mrecords.py",
    "numpy/f2py/rules.py",
    "torch/_inductor/codegen/cpp_wrapper_cpu.py",
)


def _installed(names: tuple[str, ...]) -> list[Path]:
    found = []
    for name in names:
        for base in map(Path, sys.path):
            if (base / name).is_file():
                found.append(base / name)
                break
    return found


@pytest.mark.slow
def test_every_class_of_a_valid_file_is_read_and_nothing_is_broken() -> None:
    """The cheap split is a guess: on real files that parse, the module's facts must
    hold exactly the classes a whole parse finds, and no block may be reported broken.
    (Run over the bench corpus and all installed packages, 15,368 files, this found a
    class swallowed by a misread quote and three cuts at column-0 continuations.)"""
    files = 0
    for path in _sources() + _installed(_MISREAD_ONCE):
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        files += 1
        facts = module_facts(str(path), "", text)
        assert set(facts.classes) == _top_level_classes(tree.body), path
        assert facts.broken == [], (path, [p.block.start_row for p in facts.broken])
    assert files > 20
