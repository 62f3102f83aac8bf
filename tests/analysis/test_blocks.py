"""The block splitter: top-level statements, whatever the text looks like."""

from __future__ import annotations

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
    by_line = blocks._merge_imports(
        blocks._make_blocks(split, blocks._join_strings(split, blocks._starts_by_line(split)))
    )
    assert split_blocks(text) == by_line
