"""The result cache and the worker processes: same answers, less work, right invalidation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from ckpt_lsp.cache import WHOLE_PROJECT, Entry, ResultCache
from ckpt_lsp.config import Config
from ckpt_lsp.runner import PARALLEL_MIN_FILES, run_check

BASE = "from torch import nn\nclass Layer(nn.Module):\n    pass\n"
PLAIN = "class Layer:\n    pass\n"
MODEL = (
    "import threading\nfrom base import Layer\n"
    "class Block(Layer):\n    def __init__(self):\n        self.lock = threading.Lock()\n"
)


def _project(tmp_path: Path) -> Path:
    (tmp_path / "base.py").write_text(BASE)
    (tmp_path / "model.py").write_text(MODEL)
    return tmp_path


def test_warm_run_reuses_and_a_changed_base_invalidates(tmp_path: Path) -> None:
    root = _project(tmp_path)
    config = Config(root=root)
    cold = run_check([root], config)
    assert [f.attribute for f in cold.findings] == ["lock"]
    cache = ResultCache(config.cache_path, config.fingerprint())
    assert set(cache.entries) == {str(root / "base.py"), str(root / "model.py")}
    assert cache.entries[str(root / "model.py")].deps.keys() == {str(root / "base.py")}
    # a poisoned entry proves the warm run reads the cache instead of analyzing
    entry = cache.entries[str(root / "model.py")]
    cache.put(str(root / "model.py"), Entry(entry.digest, entry.deps, [], []))
    cache.save()
    assert run_check([root], config).findings == []
    # editing the base (not the model) must re-check the model
    (root / "base.py").write_text(PLAIN)
    assert run_check([root], config).findings == []
    (root / "base.py").write_text(BASE)
    assert [f.attribute for f in run_check([root], config).findings] == ["lock"]
    assert (config.cache_path / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f59")


def test_corrupt_cache_is_an_empty_cache(tmp_path: Path) -> None:
    root = _project(tmp_path)
    config = Config(root=root)
    run_check([root], config)
    for path in config.cache_path.glob("results-*"):
        path.write_bytes(b"\x80garbage")
    assert [f.attribute for f in run_check([root], config).findings] == ["lock"]


def test_workers_find_what_one_process_finds(tmp_path: Path) -> None:
    (tmp_path / "base.py").write_text(BASE)
    for i in range(PARALLEL_MIN_FILES + 4):
        (tmp_path / f"model_{i}.py").write_text(MODEL.replace("Block", f"Block{i}"))
    config = Config(root=tmp_path)
    one = run_check([tmp_path], config, use_cache=False, jobs=1, with_fixes=True)
    two = run_check([tmp_path], config, use_cache=False, jobs=2, with_fixes=True)
    assert len(one.findings) == PARALLEL_MIN_FILES + 4
    assert all(f.fix is not None for f in two.findings)
    assert sorted(one.findings, key=repr) == sorted(two.findings, key=repr)


def test_a_json_run_builds_each_file_s_fixes_with_its_analysis(tmp_path: Path) -> None:
    """In the worker that analyzed the file, not one file after another at the end."""
    from ckpt_lsp import runner

    root = _project(tmp_path)
    sources = [runner._Source(p, str(p)) for p in sorted(root.glob("*.py"))]
    src = next(s for s in sources if s.name.endswith("model.py"))
    index, analyzer = runner._project(sources, Config(root=root))
    digests = runner._Digests()
    plain = runner._analyze_one(analyzer, index, src, digests)
    built = runner._analyze_one(analyzer, index, src, digests, with_fixes=True)
    assert plain.findings and plain.fixes is None
    assert built.fixes is not None and len(built.fixes) == len(built.findings)
    assert all(fix is not None for fix in built.fixes)


def test_no_cache_flag_writes_nothing(tmp_path: Path) -> None:
    root = _project(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "ckpt_lsp", "--check", "--no-cache", "--format", "json", "."],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert [f["attribute"] for f in json.loads(proc.stdout)] == ["lock"]
    assert not (root / ".ckpt_cache").exists()


def test_a_single_file_still_sees_the_rest_of_the_project(tmp_path: Path) -> None:
    """pre-commit passes only the staged files: the base in base.py must still resolve."""
    root = _project(tmp_path)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    config = Config(root=root)
    found = run_check([root / "model.py"], config, use_cache=False)
    assert [f.attribute for f in found.findings] == ["lock"]
    # a bare directory: a script there imports its neighbours, so they are seen too
    (root / "pyproject.toml").unlink()
    found = run_check([root / "model.py"], config, use_cache=False)
    assert [f.attribute for f in found.findings] == ["lock"]


def test_cached_single_file_result_depends_on_the_unchecked_base(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    config = Config(root=root)
    assert [f.attribute for f in run_check([root / "model.py"], config).findings] == ["lock"]
    (root / "base.py").write_text(PLAIN)  # not among the checked files
    assert run_check([root / "model.py"], config).findings == []


def test_a_warm_json_run_reuses_the_cached_fixes(tmp_path: Path) -> None:
    root = _project(tmp_path)
    config = Config(root=root)
    cold = run_check([root], config, with_fixes=True)
    assert cold.findings and all(f.fix is not None for f in cold.findings)
    cache = ResultCache(config.cache_path, config.fingerprint())
    entry = cache.entries[str(root / "model.py")]
    assert entry.fixes == [f.fix for f in cold.findings]
    # a marked fix proves the warm run takes the cached one instead of rebuilding it
    marked = replace(entry.fixes[0], message="cached")
    cache.put(str(root / "model.py"), replace(entry, fixes=[marked]))
    cache.save()
    warm = run_check([root], config, with_fixes=True)
    assert [f.fix for f in warm.findings] == [marked]


def test_a_file_that_cannot_be_decoded_is_reported_on_every_run(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "bad.py").write_bytes(b"x = '\xff\xfe'\n")
    config = Config(root=root)
    for _ in range(2):  # cold, then warm: the other files come from the cache
        result = run_check([root], config)
        assert [f.attribute for f in result.findings] == ["lock"]
        assert [e.filename for e in result.errors] == [str(root / "bad.py")]
        assert result.files == 2


def test_a_run_without_cache_hashes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashes only key the cache: a --no-cache run skips them (0.07 s of serial work over
    the bench corpus, before any worker starts) and finds the same."""
    import ckpt_lsp.runner as runner

    root = _project(tmp_path)
    with_cache = run_check([root], Config(root=root), jobs=1)
    hashed: list[int] = []
    real_hash = runner.content_hash
    monkeypatch.setattr(runner, "content_hash", lambda data: hashed.append(1) or real_hash(data))
    without = run_check([root], Config(root=root), use_cache=False, jobs=1)
    assert hashed == []
    assert without.findings == with_cache.findings
    run_check([root], Config(root=root), jobs=1)
    assert hashed  # the cached run does hash: the test would see a regression


def _age(root: Path, seconds: float = 60.0) -> None:
    """Give every file an old modification time (as files not touched for a while have)."""
    import os
    import time

    old = time.time() - seconds
    for path in root.glob("*.py"):
        os.utime(path, (old, old))


def _counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import ckpt_lsp.runner as runner

    reads: list[str] = []
    real = runner.read_bytes

    def counted(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(runner, "read_bytes", counted)
    return reads


def test_a_warm_run_reads_no_file_whose_size_and_time_are_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path)
    _age(root)
    cold = run_check([root], Config(root=root), jobs=1)
    reads = _counting_reads(monkeypatch)
    warm = run_check([root], Config(root=root), jobs=1)
    assert reads == []
    assert warm.findings == cold.findings
    # an ordinary edit changes the modification time: the file is read and re-checked
    (root / "model.py").write_text(MODEL.replace("self.lock", "self.guard"))
    edited = run_check([root], Config(root=root), jobs=1)
    assert reads[0] == str(root / "model.py")  # (its analysis then reads base.py)
    assert [f.attribute for f in edited.findings] == ["guard"]


def test_a_file_hashed_within_2_s_of_its_change_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git's racy case: a change in the same timestamp tick as the hash keeps the size
    and the time; a file that recent is not trusted by its stat on the next run."""
    import os

    root = _project(tmp_path)
    model = root / "model.py"
    before = model.stat()
    run_check([root], Config(root=root), jobs=1)  # the file is seconds old: racy
    model.write_text(MODEL.replace("self.lock", "self.lokk"))  # same size
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same time
    assert model.stat().st_size == before.st_size
    reads = _counting_reads(monkeypatch)
    again = run_check([root], Config(root=root), jobs=1)
    assert str(model) in reads
    assert [f.attribute for f in again.findings] == ["lokk"]


def test_a_cache_written_before_stats_were_kept_still_loads(tmp_path: Path) -> None:
    import pickle

    config = Config(root=tmp_path)
    cache = ResultCache(config.cache_path, config.fingerprint())
    config.cache_path.mkdir(parents=True)
    entry = Entry("d", {}, [], [])
    cache.path.write_bytes(pickle.dumps({"/x/a.py": entry}))
    loaded = ResultCache(config.cache_path, config.fingerprint())
    assert loaded.entries.keys() == {"/x/a.py"} and loaded.stats == {}


def _cli(cwd: Path, *args: str) -> list[tuple[str, int, str]]:
    proc = subprocess.run(
        [sys.executable, "-m", "ckpt_lsp", "--check", "--format", "json", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    rows = json.loads(proc.stdout)
    return sorted(
        (str((cwd / r["filename"]).resolve()), r["location"]["row"], r["code"]) for r in rows
    )


# (marker file or folder, where it goes, the folder the files go in, the folder the run starts in)
LAYOUTS = {
    "no project, run from the parent": (None, ".", "proj", "."),
    "no project, run in the folder": (None, ".", "proj", "proj"),
    "pyproject above": ("pyproject.toml", ".", "src/proj", "."),
    "git in the folder, run from the parent": (".git", "proj", "proj", "."),
    "setup.cfg above, run inside": ("setup.cfg", ".", "pkg/models", "pkg/models"),
}


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
@pytest.mark.parametrize("file_first", [True, False], ids=["file-then-all", "all-then-file"])
def test_a_file_checked_alone_equals_its_part_of_the_whole(
    tmp_path: Path, layout: str, file_first: bool
) -> None:
    """pre-commit passes only the staged files: a base class in a file that was not named
    still resolves, and the cache keeps the same answer whatever order the runs come in."""
    marker, marker_at, folder, start = LAYOUTS[layout]
    home = tmp_path / folder
    home.mkdir(parents=True)
    (home / "base.py").write_text(BASE)
    (home / "model.py").write_text(MODEL)
    if marker == ".git":
        (tmp_path / marker_at / marker).mkdir()
    elif marker is not None:
        (tmp_path / marker_at / marker).write_text("")
    cwd = tmp_path / start
    one = os.path.relpath(home / "model.py", cwd)
    model = str((home / "model.py").resolve())
    runs = [(one,), (".",)] if file_first else [(".",), (one,)]
    results = [[r for r in _cli(cwd, *args) if r[0] == model] for args in runs]
    uncached = [r for r in _cli(cwd, "--no-cache", one) if r[0] == model]
    assert results[0] == results[1] == uncached == [(model, 5, "CKPT005")]


def test_a_script_outside_any_project_sees_only_its_folder(tmp_path: Path) -> None:
    """Without a project marker, the neighbours are the folder's modules and its packages,
    never every file below the working directory."""
    from ckpt_lsp.runner import _script_modules

    (tmp_path / "a.py").write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text("")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "not_a_package.py").write_text("")
    (tmp_path / "loop.py").symlink_to(tmp_path / "loop.py")  # an odd neighbour, not an error
    names = sorted(p.relative_to(tmp_path).as_posix() for p in _script_modules(str(tmp_path)))
    assert names == ["a.py", "loop.py", "pkg"]
    model = tmp_path / "model.py"
    model.write_text(MODEL)
    (tmp_path / "base.py").write_text(BASE)
    result = run_check([model], Config(root=tmp_path), use_cache=False)
    assert [f.attribute for f in result.findings] == ["lock"] and not result.errors


LIT = """\
import lightning as L


class Lit(L.LightningModule):
    def __init__(self, loss=None, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
"""


def test_a_cached_hparams_result_depends_on_the_files_that_build_the_module(
    tmp_path: Path,
) -> None:
    """CKPT011 judges what callers pass: a caller changing in another file re-checks lit.py,
    even when only lit.py is checked (as pre-commit does)."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "lit.py").write_text(LIT)
    (tmp_path / "train.py").write_text("from lit import Lit\n\nmodel = Lit(lr=0.1)\n")
    (tmp_path / "other.py").write_text("x = 1\n")
    config = Config(root=tmp_path)
    assert run_check([tmp_path / "lit.py"], config).findings == []
    (tmp_path / "train.py").write_text("from lit import Lit\n\nmodel = Lit(loss=lambda y: y)\n")
    found = run_check([tmp_path / "lit.py"], config).findings
    assert [(f.code, f.attribute) for f in found] == [("CKPT011", "loss")]
    # a file that does not name the class yet counts too: it may start to
    (tmp_path / "train.py").write_text("model = None\n")
    (tmp_path / "other.py").write_text("from lit import Lit\n\nm = Lit(loss=open('x'))\n")
    found = run_check([tmp_path / "lit.py"], config).findings
    assert [(f.code, f.attribute) for f in found] == [("CKPT011", "loss")]


SAVES = "import torch\nfrom model import Block\n\n\ndef main():\n    torch.save(Block(), 'b.pt')\n"


def test_an_edit_in_the_file_that_saves_refreshes_the_related_list(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "train.py").write_text(SAVES)
    config = Config(root=root)

    def related(*paths: Path) -> list[tuple[str, int]]:
        found = run_check(list(paths) or [root], config).findings
        # the whole-model save in train.py is a CKPT010 finding of its own
        (finding,) = [f for f in found if f.code < "CKPT010"]
        return [(Path(p).name, row) for p, row, _, _ in finding.related]

    assert related() == [("train.py", 6)]
    assert related() == [("train.py", 6)]  # warm: from the cache
    cache = ResultCache(config.cache_path, config.fingerprint())
    assert str(root / "train.py") in cache.entries[str(root / "model.py")].deps
    assert cache.entries[str(root / "train.py")].reaches == []  # a cold run needs none
    # the save goes: model.py's entry depends on train.py, which changed
    (root / "train.py").write_text(SAVES.replace("torch.save(Block(), 'b.pt')", "pass"))
    assert related() == []
    # it comes back, moved: train.py no longer was a dependency, but its save calls reach
    # model.py, whose cached result is checked again
    (root / "train.py").write_text("\n\n" + SAVES)
    assert related() == [("train.py", 8)]
    cache = ResultCache(config.cache_path, config.fingerprint())
    reached = cache.entries[str(root / "train.py")].reaches
    assert reached == [str(root / "base.py"), str(root / "model.py")]  # Block, and its base
    # checking model.py alone (as pre-commit does) sees an edit of the file that saves
    (root / "train.py").write_text(SAVES)
    assert related(root / "model.py") == [("train.py", 6)]


def test_a_file_added_anywhere_rechecks_results_that_searched_the_project(
    tmp_path: Path,
) -> None:
    """Who builds a Lightning module and who loads with weights_only=False are found by
    searching every module's text: a new file can change either answer, even when only the
    files with the findings are checked (as pre-commit does)."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "lit.py").write_text(LIT)
    (tmp_path / "save.py").write_text(
        "import numpy as np\nimport torch\n\n\n"
        "def save():\n    torch.save({'best': np.float64(0.5)}, 'best.pt')\n"
    )
    config = Config(root=tmp_path)
    checked = [tmp_path / "lit.py", tmp_path / "save.py"]

    def codes() -> list[tuple[str, str | None]]:
        return sorted((f.code, f.attribute) for f in run_check(checked, config).findings)

    assert codes() == [("CKPT010", "best")]
    assert codes() == [("CKPT010", "best")]  # warm
    cache = ResultCache(config.cache_path, config.fingerprint())
    assert WHOLE_PROJECT in cache.entries[str(tmp_path / "lit.py")].deps
    (tmp_path / "train.py").write_text("from lit import Lit\n\nlit = Lit(loss=lambda y: y)\n")
    (tmp_path / "load.py").write_text(
        "import torch\n\n\ndef load():\n    return torch.load('best.pt', weights_only=False)\n"
    )
    assert codes() == [("CKPT011", "loss")]
    (tmp_path / "load.py").unlink()  # a file removed counts as well
    assert codes() == [("CKPT010", "best"), ("CKPT011", "loss")]
