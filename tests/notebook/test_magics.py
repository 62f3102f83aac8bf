"""IPython syntax is blanked in place: same lines, same lengths, valid Python."""

from __future__ import annotations

import ast

import pytest
from ckpt_lsp.notebook.magics import blank, neutralise


def _check(source: str) -> str:
    out = neutralise(source)
    assert [len(line) for line in out.split("\n")] == [len(line) for line in source.split("\n")]
    ast.parse(out)
    return out


@pytest.mark.parametrize(
    "line",
    [
        "%timeit x",
        "%matplotlib inline",
        "!pip install torch",
        "!!ls",
        "?torch",
        "torch.save?",
        "torch.save??",
        "%pwd",
        "!ls",
        "?x",
    ],
)
def test_escape_lines_become_statements(line: str) -> None:
    out = _check(line)
    assert out != line
    assert out.startswith(("...", "0"))


@pytest.mark.parametrize("line", ["x = !ls", "files, n = %sx ls", "self.out = !pwd"])
def test_assignments_keep_their_target(line: str) -> None:
    out = _check(line)
    target = line.split("=")[0]
    assert out.startswith(target + "= ")
    assert out != line


@pytest.mark.parametrize(
    "source",
    [
        "y = (1\n     % 2)",  # a continuation line starting with the modulo operator
        'text = """\n%not a magic\n!nor this\n"""',
        "total = 1 + \\\n    2",
        "x = a != b",
        "x %= 3",
        "print('what?')",
        "get_ipython().run_line_magic('matplotlib', 'inline')",
        "value = d['k']  # why?",
    ],
)
def test_python_is_left_alone(source: str) -> None:
    assert _check(source) == source


def test_escape_inside_a_block_keeps_the_block_valid() -> None:
    out = _check("for f in files:\n    !cp $f out/\n")
    assert out.startswith("for f in files:\n    ...")


def test_escaped_line_continued_with_backslash() -> None:
    out = _check("!pip install a \\\n    b\nx = 1")
    assert out.split("\n")[1].lstrip().startswith("#")
    assert out.endswith("x = 1")


def test_cell_magic_blanks_the_whole_cell() -> None:
    out = _check("%%bash\nfor f in *; do\n  echo $f\ndone\n")
    assert all(line.lstrip().startswith(("...", "#")) or not line for line in out.split("\n"))


def test_cell_magic_after_blank_lines() -> None:
    out = _check("\n%%writefile x.py\nimport os\n")
    assert out.split("\n")[2] == "#mport os"


def test_python_cell_magic_keeps_its_body() -> None:
    out = _check("%%time\nclass Net:\n    pass\n")
    assert out.split("\n")[1:] == ["class Net:", "    pass", ""]


def test_line_endings_are_kept() -> None:
    assert neutralise("%ls\r\nx = 1\r\n") == "...\r\nx = 1\r\n"


@pytest.mark.parametrize("size", range(1, 8))
def test_blank_has_the_length_asked(size: int) -> None:
    text = blank("%" * size)
    assert len(text) == size
    ast.parse(text)


def test_real_python_is_never_taken_for_ipython() -> None:
    """Every module of this project (strings, brackets, continuations of every kind) comes out
    unchanged: only IPython syntax is blanked. (The benchmark corpus, 3,354 files of
    transformers, lightning, timm and keras, does too.)"""
    from pathlib import Path

    import ckpt_lsp

    root = Path(ckpt_lsp.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert neutralise(text) == text, path


@pytest.mark.parametrize(
    "line", ["pip install -q torch", "cd ..", "matplotlib inline", "conda install -y numpy"]
)
def test_automagic_lines_are_blanked(line: str) -> None:
    assert _check(line).lstrip().startswith("...")


@pytest.mark.parametrize(
    "line",
    [
        "pip = 3",
        "cd (x)",
        "ls [0]",
        "env if x else y",
        "pwd",
        "ls -la",
        "env = make_env(\n    1,\n)",
        "ls , cd = (\n    1,\n    2,\n)",
    ],
)
def test_automagic_words_used_as_python_stay(line: str) -> None:
    assert _check(line) == line
