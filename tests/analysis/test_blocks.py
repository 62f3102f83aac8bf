"""The block splitter: top-level statements, whatever the text looks like."""

from __future__ import annotations

import pytest
from ckpt_lsp.analysis.blocks import split_blocks, split_lines
from hypothesis import given, settings
from hypothesis import strategies as st


def test_kinds_and_rows() -> None:
    text = (
        "import os\nfrom x import (\n    a,\n)\n\n@dataclass\nclass A:\n"
        "    x = '''\nclass Fake:\n'''\n\n# comment\ndef f(\n    a,\n):\n    pass\nX = [\n    1]\n"
    )
    blocks = split_blocks(text)
    assert [(b.kind, b.name, b.start_row, b.end_row) for b in blocks] == [
        ("import", "", 1, 5),
        ("class", "A", 6, 12),
        ("def", "f", 13, 16),
        ("other", "", 17, 18),
    ]


def test_a_wrong_guess_falls_back_to_exact_blocks() -> None:
    from ckpt_lsp.analysis.facts import module_facts

    text = "X = [\n1,\n]\nclass A:\n    pass\n"
    assert len(split_blocks(text)) == 3  # `1,` at column 0 looks like a statement
    facts = module_facts("m.py", "m", text)
    assert [(p.block.start_row, p.block.end_row) for p in facts.blocks] == [(1, 3), (4, 5)]
    assert facts.broken == [] and "A" in facts.classes


def test_a_decorator_docstring_at_column_0_stays_with_its_class() -> None:
    """transformers' `@add_start_docstrings(\"\"\"\nBert Model ...\"\"\", ...)`: the docstring's
    column-0 lines used to end the decorator, which was then cut from its class and
    reported as a syntax error (the file was valid)."""
    from ckpt_lsp.analysis.facts import module_facts

    text = (
        'import x\n\n\n@add_docs(\n    """\nBert Model with two heads.\n    """,\n    DOC,\n)\n'
        "class Head(x.Layer):\n    pass\n"
    )
    for source in (text, text.replace("\n", "\r")):  # the regex path and the lone-CR path
        blocks = split_blocks(source)
        assert [(b.kind, b.name, b.start_row) for b in blocks] == [
            ("import", "", 1),
            ("class", "Head", 4),
        ]
        facts = module_facts("m.py", "m", source)
        assert facts.broken == [] and "Head" in facts.classes


def test_compound_statements_stay_whole() -> None:
    text = (
        "try:\n    import a\nexcept ImportError:\n    a = None\nelse:\n    pass\n"
        "finally:\n    pass\nif X:\n    pass\nelif Y:\n    pass\nelse_value = 1\n"
    )
    blocks = split_blocks(text)
    assert [(b.start_row, b.end_row) for b in blocks] == [(1, 8), (9, 12), (13, 13)]


def test_line_endings_are_python_s() -> None:
    assert split_lines("a\r\nb\rc\x0cd\u2028e\n") == ["a\r\n", "b\r", "c\x0cd\u2028e\n"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("class def ():\n\r\t#'\"\\[]x=@")), max_size=200))
def test_blocks_cover_the_text_from_the_first_statement(text: str) -> None:
    blocks = split_blocks(text)
    if blocks:
        joined = "".join(b.text for b in blocks)
        assert text.endswith(joined)
        rows = [b.start_row for b in blocks]
        assert rows == sorted(rows)


_LINES = [
    "class A(B):",
    "def f(x):",
    "async def g():",
    "@deco(",
    "@deco",
    "else:",
    "except E:",
    "    x = 1",
    '"""',
    "'''doc'''",
    "x = (",
    ")",
    "y = 2 \\",
    "# comment",
    "import a",
    "from b import c",
    "",
]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(_LINES), max_size=30),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
def test_the_offset_split_equals_the_line_split(lines: list[str], end: str, last: bool) -> None:
    """Two implementations of one guess: by offsets in the text (the fast path) and line
    by line (used for lone-CR files). They must agree on every text."""
    from ckpt_lsp.analysis import blocks

    text = end.join(lines) + (end if last else "")
    split = split_lines(text)
    kept, joined = blocks._join_strings(split, blocks._starts_by_line(split))
    by_line = blocks._merge_imports(blocks._make_blocks(split, kept, joined))
    assert split_blocks(text) == by_line


# A `'''` inside a `"""` docstring looks like an open string to the splitter: the chunks
# up to the next such line are joined into one block, with more classes in it. Found in
# libcst's expression.py (SimpleString swallowed four classes, lines 575-960).
_MISREAD = '''import threading

from torch import nn


{first}


class B(nn.Module):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()


class C(nn.Module):
    def quote(self):
        """Or with ``\'\'\'`` again."""
        return 2
'''
_FIRST_CLASS = '''class A(nn.Module):
    def quote(self):
        """Strings may be quoted with ``\'\'\'``."""
        return 1'''
_FIRST_DEF = '''def quote():
    """Strings may be quoted with ``\'\'\'``."""
    return 1'''


@pytest.mark.parametrize("first", [_FIRST_CLASS, _FIRST_DEF], ids=["class", "def"])
def test_classes_in_a_block_joined_over_a_misread_quote_are_all_checked(first: str) -> None:
    from ckpt_lsp.analysis.analyzer import Analyzer
    from ckpt_lsp.analysis.facts import module_facts

    text = _MISREAD.format(first=first)
    joined = [b for b in split_blocks(text) if b.joins_definitions]
    lines = split_lines(text)
    assert [(b.start_row, b.end_row) for b in joined] == [(6, len(lines))]
    lock_row = next(i for i, line in enumerate(lines, 1) if "self.lock" in line)
    assert {"B", "C"} <= set(module_facts("m.py", "m", text).classes)
    for memoize in (True, False):  # the editor's per-class memo and the batch path
        found = Analyzer(batch=not memoize).analyze("m.py", text).findings
        assert [(f.class_name, f.attribute, f.location.row) for f in found] == [
            ("B", "lock", lock_row)
        ]


def test_a_joined_block_with_one_class_is_still_cut_at_its_methods() -> None:
    """Joining over a docstring's column-0 text is what joining is for: that class is
    read as before (cut, only the methods that assign parsed)."""
    from ckpt_lsp.analysis.facts import module_facts

    text = 'class A:\n    """Doc\nNotes: at column 0\n"""\n\n    def f(self):\n        pass\n'
    (block,) = split_blocks(text)  # joined over "Notes:", which is neither class nor def
    assert block.row_count == 7 and not block.joins_definitions
    facts = module_facts("m.py", "m", text)
    assert list(facts.classes) == ["A"]
    assert facts.classes["A"].parsed.pending  # cut: the block itself was not parsed


# A statement cut where its continuation starts at column 0: numpy's test_mrecords.py has
# `fcontent = (` and then a triple-quoted string at column 0, as its method's last line.
_CONTINUED = '''import threading

from torch import nn


class Reader(nn.Module):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()

    def text(self):
        content = (
"""a, b
1, 2
""")
        return content


class Other(nn.Module):
    def __init__(self):
        super().__init__()
        self.guard = threading.RLock()
'''


def test_a_statement_continued_at_column_0_is_not_a_syntax_error() -> None:
    from ckpt_lsp.analysis.analyzer import Analyzer

    assert len(split_blocks(_CONTINUED)) > 3  # the splitter cuts inside the statement
    result = Analyzer(batch=True).analyze("m.py", _CONTINUED)
    assert result.broken == []
    assert [(f.class_name, f.attribute) for f in result.findings] == [
        ("Reader", "lock"),
        ("Other", "guard"),
    ]


def test_an_unclosed_bracket_while_typing_stays_a_syntax_error_of_its_class() -> None:
    """Inside a body with code after it, an unclosed bracket is the user's (no joining
    with the next blocks, no whole-file parse): only that class is broken."""
    from ckpt_lsp.analysis.analyzer import Analyzer

    plain = _CONTINUED.replace('(\n"""a, b\n1, 2\n""")', '"a, b"')
    typing = plain.replace("super().__init__()\n        self.lock", "f(\n        self.lock", 1)
    assert Analyzer(batch=True).analyze("m.py", plain).broken == []
    result = Analyzer(batch=True).analyze("m.py", typing)
    assert [row for row, _ in result.broken] == [6]
    assert [(f.class_name, f.attribute) for f in result.findings] == [("Other", "guard")]


def test_a_module_level_list_with_strings_at_column_0_is_not_a_syntax_error() -> None:
    """numpy's f2py/rules.py: C code in strings at column 0, inside a module-level list;
    the cut leaves an unclosed bracket mid-block and a chunk that starts with a string."""
    from ckpt_lsp.analysis.facts import module_facts

    text = (
        'RULES = [\n    {\n        \'c\': [\n            """\\\n    int x;\n"""\n'
        '"""y = 1;"""\n            , "z"],\n    },\n]\n\n\nclass A:\n    pass\n'
    )
    compile(text, "m.py", "exec")  # valid Python
    facts = module_facts("m.py", "m", text)
    assert facts.broken == []
    assert list(facts.classes) == ["A"]
    assert "RULES" in facts.assigns


# Method lines that mislead a splitter reading quotes and column-0 lines without a
# tokenizer: quotes inside other quotes and in comments, strings continued at column 0,
# column-0 text that looks like a class or a def.
_TRICKY = [
    '        """Doc with ``\'\'\'`` inside."""\n',
    "        '''Doc with ``\"\"\"`` inside.'''\n",
    '        # a comment with """ in it\n',
    '        x = (\n"""col0\ntext"""\n        )\n',
    '        y = """\nclass NotReal:\n    pass\n"""\n',
    '        w = [\n"""\ndef fake():\n"""\n        ]\n',
    '        s = \'"""\'\n',
    "        self.v = 2\n",
]
_TRICKY_MODULE = [
    'X = [\n"""\nstuff\n"""\n]\n',
    "# comment '''\n",
    "def helper():\n    '''doc ``\"\"\"``'''\n    return 1\n",
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(_TRICKY), min_size=1, max_size=4),
            st.one_of(st.none(), st.sampled_from(_TRICKY_MODULE)),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_valid_files_full_of_misleading_quotes_are_read_whole(
    classes: list[tuple[list[str], str | None]],
) -> None:
    """On any valid file the facts hold every class, report nothing broken, and find the
    assignments a whole parse finds (12,000 such files found nothing more by hand)."""
    import ast

    from ckpt_lsp.analysis.assignments import class_assignments, self_name_of, walk_function
    from ckpt_lsp.analysis.facts import module_facts

    parts = ["import os\n\n\n"]
    for i, (lines, before) in enumerate(classes):
        parts.append(f"{before}\n\n" if before else "")
        body = "".join(lines) + "        pass\n"  # a comment alone is no body
        parts.append(f"class C{i}:\n    def m(self):\n{body}\n    def n(self):\n        pass\n\n\n")
    text = "".join(parts)
    tree = ast.parse(text)
    facts = module_facts("m.py", "m", text)
    assert facts.broken == []
    assert set(facts.classes) == {f"C{i}" for i in range(len(classes))}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        expected = [
            a.attribute
            for m in node.body
            if isinstance(m, ast.FunctionDef)
            for a in walk_function(m, "", self_name_of(m))[0]
        ]
        found = [a.attribute for a in class_assignments(facts, facts.classes[node.name])]
        assert sorted(found) == sorted(expected)
