"""File discovery: gitignore at every level, excludes, explicit paths, and hostile trees."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from ckpt_lsp.config import Config
from ckpt_lsp.discovery import Patterns, discover
from ckpt_lsp.findings import FileError


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git work tree (just a .git directory: discovery never runs git) as the cwd."""
    (tmp_path / ".git" / "info").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")


def run(paths: list[str], config: Config, **kwargs) -> tuple[list[str], list[FileError]]:
    files, errors = discover([Path(p) for p in paths], config, **kwargs)
    return [p.as_posix() for p in files], errors


def test_walks_py_files_sorted(repo: Path) -> None:
    touch(repo, "b.py", "a.py", "pkg/__init__.py", "pkg/z/m.py", "notes.txt", "stub.pyi")
    files, errors = run(["."], Config(root=repo))
    assert files == ["a.py", "b.py", "pkg/__init__.py", "pkg/z/m.py"]
    assert errors == []


def test_paths_keep_the_form_given(repo: Path) -> None:
    touch(repo, "src/a.py")
    assert run(["src"], Config(root=repo))[0] == ["src/a.py"]
    assert run(["./src/"], Config(root=repo))[0] == ["src/a.py"]
    absolute = run([str(repo / "src")], Config(root=repo))[0]
    assert absolute == [(repo / "src" / "a.py").as_posix()]


def test_root_gitignore(repo: Path) -> None:
    (repo / ".gitignore").write_text("# comment\n\ngenerated/\n*_pb2.py\n/top_only.py\n")
    touch(
        repo,
        "keep.py",
        "generated/x.py",
        "pkg/generated/y.py",
        "pkg/msg_pb2.py",
        "top_only.py",
        "pkg/top_only.py",
    )
    assert run(["."], Config(root=repo))[0] == ["keep.py", "pkg/top_only.py"]


def test_nested_gitignore_and_negation(repo: Path) -> None:
    (repo / ".gitignore").write_text("*.py\n!src/\n!*.py\nscratch*\n")
    (repo / "src").mkdir()
    (repo / "src" / ".gitignore").write_text("local_*.py\n!scratch_keep.py\n")
    touch(
        repo,
        "src/a.py",
        "src/local_x.py",
        "src/deeper/local_y.py",
        "src/scratch_keep.py",
        "src/scratch_no.py",
    )
    files = run(["."], Config(root=repo))[0]
    # the nested file's negation beats the root file's `scratch*`; its own pattern applies
    # below it only
    assert files == ["src/a.py", "src/scratch_keep.py"]


def test_gitignore_of_parent_applies_when_walking_a_subdirectory(repo: Path) -> None:
    (repo / ".gitignore").write_text("pkg/gen/\n")
    touch(repo, "pkg/gen/x.py", "pkg/ok.py")
    assert run(["pkg"], Config(root=repo))[0] == ["pkg/ok.py"]


def test_git_info_exclude(repo: Path) -> None:
    (repo / ".git" / "info" / "exclude").write_text("private/\n")
    touch(repo, "private/p.py", "public.py")
    assert run(["."], Config(root=repo))[0] == ["public.py"]


def test_gitignore_outside_a_repo_counts_from_the_root(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".gitignore").write_text("ignored/\n")
    touch(tmp_path, "ignored/a.py", "kept/b.py")
    assert run(["."], Config(root=tmp_path))[0] == ["kept/b.py"]


def test_default_excludes_and_hidden_directories(repo: Path) -> None:
    touch(
        repo,
        "ok.py",
        ".venv/lib/site.py",
        "venv/x.py",
        "build/lib/x.py",
        "node_modules/pkg/x.py",
        "pkg/__pypackages__/x.py",
        ".hidden/x.py",
        ".git/hooks/x.py",
        ".tox/x.py",
    )
    assert run(["."], Config(root=repo))[0] == ["ok.py"]


def test_exclude_replaces_defaults(repo: Path) -> None:
    touch(repo, "build/x.py", "gen/y.py", "ok.py")
    config = Config(root=repo, exclude=("gen",))
    assert run(["."], config)[0] == ["build/x.py", "ok.py"]


def test_extend_exclude_patterns(repo: Path) -> None:
    touch(repo, "a.py", "migrations/0001.py", "pkg/schema_pb2.py", "docs/conf.py", "x/docs/m.py")
    config = Config(root=repo, extend_exclude=("migrations", "*_pb2.py", "/docs"))
    assert run(["."], config)[0] == ["a.py", "x/docs/m.py"]


def test_exclude_is_relative_to_the_root_not_the_argument(repo: Path) -> None:
    touch(repo, "src/docs/m.py", "src/a.py")
    config = Config(root=repo, extend_exclude=("/src/docs",))
    assert run(["src"], config)[0] == ["src/a.py"]


def test_explicit_file_is_always_included(repo: Path) -> None:
    (repo / ".gitignore").write_text("ignored.py\n")
    touch(repo, "build/gen.py", "ignored.py", "script", "a/build/deep/m.py")
    config = Config(root=repo)
    files = run(["build/gen.py", "ignored.py", "script"], config)[0]
    assert files == ["build/gen.py", "ignored.py", "script"]
    # unless force_exclude asks for the configured excludes (pre-commit passes every file)
    forced = run(["build/gen.py", "ignored.py", "a/build/deep/m.py"], config, force_exclude=True)
    assert forced[0] == ["ignored.py"]


def test_explicit_excluded_directory_is_walked(repo: Path) -> None:
    touch(repo, "build/gen.py")
    assert run(["build"], Config(root=repo))[0] == ["build/gen.py"]
    assert run(["build"], Config(root=repo), force_exclude=True)[0] == []


def test_deduplicated(repo: Path) -> None:
    touch(repo, "src/a.py", "src/b.py")
    files = run(["src", "src/a.py", "./src/a.py", "."], Config(root=repo))[0]
    assert files == ["src/a.py", "src/b.py"]


def test_missing_path(repo: Path) -> None:
    touch(repo, "a.py")
    files, errors = run(["nope.py", "a.py", "gone/"], Config(root=repo))
    assert files == ["a.py"]
    assert errors == [
        FileError("nope.py", "No such file or directory"),
        FileError("gone", "No such file or directory"),
    ]


def test_directory_named_like_a_module(repo: Path) -> None:
    touch(repo, "x.py/inner.py", "y.py")
    assert run(["."], Config(root=repo))[0] == ["x.py/inner.py", "y.py"]
    assert run(["x.py"], Config(root=repo))[0] == ["x.py/inner.py"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_loops_and_links(repo: Path) -> None:
    touch(repo, "pkg/a.py", "real/r.py")
    os.symlink(repo / "pkg", repo / "pkg" / "loop")  # a directory that contains itself
    os.symlink("self.py", repo / "pkg" / "self.py")  # a file link to itself (ELOOP)
    os.symlink("missing.py", repo / "pkg" / "dangling.py")
    os.symlink(repo / "real" / "r.py", repo / "pkg" / "linked.py")
    os.symlink(repo / "real", repo / "pkg" / "linkdir")
    files, errors = run(["pkg"], Config(root=repo))
    # file links are checked; directory links are not followed (no loops, no duplicates)
    assert files == ["pkg/a.py", "pkg/linked.py"]
    assert errors == []
    files, errors = run(["pkg/self.py"], Config(root=repo))
    assert files == [] and len(errors) == 1 and errors[0].filename == "pkg/self.py"


def test_unreadable_directory_is_an_error_not_a_crash(repo: Path, monkeypatch) -> None:
    touch(repo, "ok/a.py", "locked/b.py")
    real_scandir = os.scandir

    def scandir(path):  # chmod does not stop root, so refuse from here
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    files, errors = run(["."], Config(root=repo))
    assert files == ["ok/a.py"]
    assert errors == [FileError("locked", "Permission denied")]


def test_directory_removed_during_walk(repo: Path, monkeypatch) -> None:
    touch(repo, "ok/a.py", "gone/b.py")
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("gone"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert run(["."], Config(root=repo)) == (["ok/a.py"], [])


def test_special_file(repo: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no fifos here")
    os.mkfifo(repo / "pipe.py")
    files, errors = run(["pipe.py", "."], Config(root=repo))
    assert files == []
    assert errors == [FileError("pipe.py", "Not a regular file or directory")]


def test_bad_gitignore_lines_are_skipped(repo: Path) -> None:
    (repo / ".gitignore").write_bytes(b"!\nbad\\\n\xff\xfe\ndrop.py\n")
    touch(repo, "drop.py", "keep.py")
    assert run(["."], Config(root=repo))[0] == ["keep.py"]


def test_patterns_last_match_wins() -> None:
    patterns = Patterns(["*.log", "!keep.log", "keep.log", "!*.tmp", "data/"])
    assert patterns.check("a.log") is True
    assert patterns.check("keep.log") is True
    assert patterns.check("x.tmp") is False
    assert patterns.check("src/data/") is True
    assert patterns.check("src/data") is None  # a file named data is not the directory
    assert patterns.check("src/data/x.py") is None  # ancestors are the walk's business
    assert patterns.check("other.py") is None
    assert not Patterns(["# only a comment", ""])


def test_three_thousand_files_quickly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()
    gitignore = [f"ignored_{i}/" for i in range(60)] + ["*.py[cod]", "build/", "!keep/"]
    (tmp_path / ".gitignore").write_text("\n".join(gitignore) + "\n")
    for a in range(30):
        for b in range(10):
            directory = tmp_path / f"pkg{a}" / f"sub{b}"
            directory.mkdir(parents=True)
            for c in range(10):
                (directory / f"m{c}.py").write_text("")
    config = Config(root=tmp_path)
    discover([Path(".")], config)  # warm the file system cache
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        files, errors = discover([Path(".")], config)
        best = min(best, time.perf_counter() - start)
    assert len(files) == 3000 and errors == []
    # ~30 ms on an idle 2-core machine; the margin keeps a loaded CI box from flaking
    assert best < 0.25, f"walking 3,000 files took {best * 1000:.0f} ms"
