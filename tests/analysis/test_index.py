"""ProjectIndex with a bound on kept facts: same answers as with every module kept.

The server bounds the index (a 2,000-file workspace held 1.2 GB of syntax trees);
evicted facts are rebuilt from the kept text. With a bound of one character only the
module just loaded stays, so every other lookup rebuilds: the findings and the
dependents must still equal the unbounded index's, on both corpora.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import Analyzer
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.config import Config
from ckpt_lsp.findings import Finding
from support import shared

TESTS = Path(__file__).resolve().parents[1]
CORPORA = [
    TESTS / "corpus" / "cases",
    pytest.param(shared.CORPUS / "cases", marks=shared.needs(shared.CORPUS)),
]


def _run(root: Path, max_chars: int | None) -> tuple[dict[str, list[Finding]], dict[str, set[str]]]:
    files = sorted(root.rglob("*.py"))
    index = ProjectIndex(root, max_chars=max_chars)
    for path in files:
        index.register(path, path.read_text(encoding="utf-8"))
    analyzer = Analyzer(Config(root=root), index)
    findings = {
        str(path): analyzer.analyze(str(path), path.read_text(encoding="utf-8")).findings
        for path in files
    }
    dependents = {str(path): index.dependents(path) for path in files}
    return findings, dependents


@pytest.mark.parametrize("root", CORPORA, ids=["ours", "shared"])
def test_a_bounded_index_answers_as_the_unbounded_one(root: Path) -> None:
    if not root.is_dir():
        pytest.skip(f"no corpus at {root}")
    full_findings, full_dependents = _run(root, None)
    bounded_findings, bounded_dependents = _run(root, 1)
    assert sum(map(len, full_findings.values())) > 10
    assert bounded_findings == full_findings
    assert bounded_dependents == full_dependents


def test_evicted_facts_are_rebuilt_from_the_kept_text(tmp_path: Path) -> None:
    index = ProjectIndex(tmp_path, max_chars=10)
    index.register(tmp_path / "a.py", "class A:\n    pass\n")
    index.register(tmp_path / "b.py", "from a import A\n")
    first = index.facts(tmp_path / "a.py")
    index.facts(tmp_path / "b.py")  # pushes a.py's facts out
    again = index.facts(tmp_path / "a.py")
    assert first is not None and again is not None
    assert again is not first and list(again.classes) == ["A"]
    assert index.dependents(tmp_path / "a.py") == {str(tmp_path / "b.py")}


def test_module_names_with_memoized_directories_equal_resolving_each_path(tmp_path: Path) -> None:
    """The directory memo gives the names `Path.resolve()` gives: through a symlinked
    package, a symlinked file, `..` in a path, and a file outside the root."""
    from ckpt_lsp.analysis.index import module_name_for

    root = tmp_path / "proj"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "sub" / "mod.py").write_text("x = 1\n")
    (root / "pkg" / "__init__.py").write_text("")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "far.py").write_text("y = 2\n")
    (root / "linked").symlink_to(root / "pkg" / "sub", target_is_directory=True)
    (root / "pkg" / "alias.py").symlink_to(root / "pkg" / "sub" / "mod.py")
    (root / "pkg" / "away.py").symlink_to(outside / "far.py")
    paths = [
        root / "pkg" / "sub" / "mod.py",
        root / "pkg" / "__init__.py",
        root / "linked" / "mod.py",
        root / "pkg" / "alias.py",
        root / "pkg" / "away.py",
        root / "pkg" / "sub" / ".." / "__init__.py",
        outside / "far.py",
        root / "pkg" / "v1.2.py",  # dots, a name with no module, a dotfile, no suffix
        root / ".hidden.py",
        root / ".profile",
        root / "pkg" / "script",
    ]
    memo: dict[str, str] = {}
    real_root = root.resolve()
    names = [module_name_for(p, real_root, memo) for p in paths]
    assert names == [module_name_for(p, root) for p in paths]
    # pkg/away.py resolves outside the root: named by the package it sits in, as Python
    # imports it from there
    assert names == [
        "pkg.sub.mod",
        "pkg",
        "pkg.sub.mod",
        "pkg.sub.mod",
        "pkg.away",
        "pkg",
        "far",
        "pkg",  # dots, a name with no module, a dotfile, no suffix
        "",
        "",
        "pkg.script",
    ]


@pytest.mark.parametrize("memoized", [False, True])
def test_a_module_outside_the_root_is_named_from_the_folder_above_its_packages(
    tmp_path: Path, memoized: bool
) -> None:
    """`ckpt-lsp --check ../lib` run inside another project: `lib/sub/mod.py` is still
    `lib.sub.mod` (its package's absolute imports resolve), a loose script its stem."""
    from ckpt_lsp.analysis.index import module_name_for

    root = tmp_path / "proj"
    root.mkdir()
    package = tmp_path / "outside" / "lib" / "sub"
    package.mkdir(parents=True)
    for path in (package / "__init__.py", package.parent / "__init__.py", package / "mod.py"):
        path.write_text("")
    (tmp_path / "outside" / "script.py").write_text("")
    memo: dict[str, str] | None = {} if memoized else None
    real_root = root.resolve()
    names = [
        module_name_for(p, real_root, memo)
        for p in (package / "mod.py", package / "__init__.py", tmp_path / "outside" / "script.py")
    ]
    assert names == ["lib.sub.mod", "lib.sub", "script"]


def test_text_given_for_a_file_registered_with_a_loader_replaces_the_loader(
    tmp_path: Path,
) -> None:
    """The CLI registers every file with a loader, then analyzes each with its text: the
    loader is not called, the name stays, and the facts come from the text given."""
    calls: list[str] = []

    def loader() -> str:
        calls.append("read")
        return "class FromDisk:\n    pass\n"

    path = tmp_path / "pkg" / "mod.py"
    index = ProjectIndex(tmp_path)
    index.register(path, loader)
    before = index.generation_without(tmp_path / "other.py")
    found = index.add_source(path, "class Given:\n    pass\n")
    assert calls == []
    assert list(found.classes) == ["Given"]
    assert found.module == "pkg.mod"
    assert index.find_module("pkg.mod") is found
    assert index.generation_without(tmp_path / "other.py") != before  # caches can tell
    assert index.add_source(path, "class Given:\n    pass\n") is found  # same text: no-op
