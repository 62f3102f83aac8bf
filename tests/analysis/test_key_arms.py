"""key_arms: the statements a registry key rules out in the function that picks by it."""

from __future__ import annotations

import ast
import textwrap

import pytest
from ckpt_lsp.analysis.key_arms import ruled_out


def _reached(source: str, key: str) -> list[str]:
    """The `build_*` calls of `build` that a run with `task` holding `key` may reach."""
    func = ast.parse(textwrap.dedent(source)).body[0]
    assert isinstance(func, ast.FunctionDef)
    dead = ruled_out(func, ("task", key))
    return [
        node.func.id
        for node in ast.walk(func)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id.startswith("build_")
        and id(node) not in dead
    ]


CASES = [
    (
        "the arm of another key is never taken",
        """
        def build(task):
            if task == "whole":
                build_whole()
            build_rest()
        """,
        "audio",
        ["build_rest"],
    ),
    (
        "the arm of this key returns: nothing after it runs",
        """
        def build(task):
            if task == "whole":
                return build_whole()
            return build_rest()
        """,
        "whole",
        ["build_whole"],
    ),
    (
        "an arm that does not return leaves what follows it",
        """
        def build(task):
            if task == "whole":
                build_whole()
            return build_rest()
        """,
        "whole",
        ["build_whole", "build_rest"],
    ),
    (
        "`!=` and `in (...)` are decided, and `else` arms too",
        """
        def build(task):
            if task != "whole":
                build_rest()
            else:
                build_whole()
            if task in ("a", "b"):
                build_ab()
        """,
        "whole",
        ["build_whole"],
    ),
    (
        "an arm inside a loop or `with` is decided; a test of something else is not",
        """
        def build(task, flag):
            for _ in range(2):
                if task == "a":
                    build_a()
            with ctx():
                if flag:
                    build_flag()
        """,
        "b",
        ["build_flag"],
    ),
    (
        "a function binding the name again reads another value: nothing is ruled out",
        """
        def build(task):
            task = task.lower()
            if task == "whole":
                return build_whole()
            return build_rest()
        """,
        "audio",
        ["build_whole", "build_rest"],
    ),
]


@pytest.mark.parametrize(
    ("source", "key", "reached"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_what_the_key_reaches(source: str, key: str, reached: list[str]) -> None:
    assert sorted(_reached(source, key)) == sorted(reached)
