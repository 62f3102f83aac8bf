"""Fill bundled/libs/ with the server and its dependencies for one VS Code platform target.

Layout (read by bundled/tool/server.py):
  common/  the ckpt_lsp package and the pure-Python dependencies, resolved for the newest
           supported Python;
  cp3XY/   libcst for CPython 3.XY on the target platform (its parser is native code, built per
           platform and per minor version), plus the pure-Python distributions whose resolved
           version differs on 3.XY (astroid 4 needs 3.10+, so cp39 gets astroid 3). The launcher
           puts cp3XY before common on sys.path, so these win.

Why not `pip install --target --python-version 3.9` alone: pip checks wheel tags and
Requires-Python for the given version but evaluates environment markers
(`exceptiongroup; python_version < "3.11"`) for the Python running pip, so the dependencies a
3.9 or 3.10 interpreter needs would be missing. Each version's set is therefore completed here by
evaluating the markers of every installed distribution for that version and platform.

Foreign platforms are never installed with pip: libcst wheels are downloaded with
`--only-binary=:all: --platform ...` and unzipped. Network (PyPI) is needed at build time only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:  # pragma: no cover - pip always vendors packaging
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef,assignment,unused-ignore]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef,assignment,unused-ignore]
    from pip._vendor.packaging.version import Version  # type: ignore[no-redef,assignment,unused-ignore]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Target:
    """A `vsce --target` and what it means for wheels and environment markers."""

    wheel_platforms: tuple[str, ...]
    sys_platform: str
    platform_system: str
    platform_machine: str
    os_name: str
    libcst_version: str | None = None  # None: the version installed where this script runs


TARGETS: dict[str, Target] = {
    "linux-x64": Target(
        ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
        "linux",
        "Linux",
        "x86_64",
        "posix",
    ),
    "linux-arm64": Target(
        ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
        "linux",
        "Linux",
        "aarch64",
        "posix",
    ),
    "alpine-x64": Target(("musllinux_1_2_x86_64",), "linux", "Linux", "x86_64", "posix"),
    "alpine-arm64": Target(("musllinux_1_2_aarch64",), "linux", "Linux", "aarch64", "posix"),
    "win32-x64": Target(("win_amd64",), "win32", "Windows", "AMD64", "nt"),
    "win32-arm64": Target(("win_arm64",), "win32", "Windows", "ARM64", "nt"),
    "darwin-arm64": Target(
        ("macosx_11_0_arm64", "macosx_11_0_universal2", "macosx_10_9_universal2"),
        "darwin",
        "Darwin",
        "arm64",
        "posix",
    ),
    # libcst 1.9.0 publishes no macOS x86_64 wheels; 1.8.6 is the last release that does.
    "darwin-x64": Target(
        (
            "macosx_10_15_x86_64",
            "macosx_10_13_x86_64",
            "macosx_10_12_x86_64",
            "macosx_10_9_x86_64",
            "macosx_10_9_universal2",
        ),
        "darwin",
        "Darwin",
        "x86_64",
        "posix",
        libcst_version="1.8.6",
    ),
}

NATIVE = "libcst"
# libcst needs YAML only for its codemod command line, which the server never runs.
NOT_BUNDLED = {"libcst", "pyyaml", "pyyaml-ft"}
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
DIST_INFO_DROP = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def log(message: str) -> None:
    print(f"build-vsix-libs: {message}", file=sys.stderr, flush=True)


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    log(" ".join(command[3:]))
    subprocess.run(command, check=True)


@dataclass(frozen=True)
class Dist:
    name: str  # canonical
    version: str
    folder: Path  # where it is installed
    files: tuple[Path, ...]  # relative to folder
    requires: tuple[str, ...]


def installed(*folders: Path) -> dict[str, Dist]:
    """The distributions in `folders`; an earlier folder wins, as on sys.path."""
    found: dict[str, Dist] = {}
    for folder in folders:
        for dist in metadata.distributions(path=[str(folder)]):
            name = canonicalize_name(dist.metadata["Name"])
            if name not in found:
                files = tuple(Path(str(f)) for f in dist.files or ())
                found[name] = Dist(name, dist.version, folder, files, tuple(dist.requires or ()))
    return found


def marker_env(python: str, target: Target) -> dict[str, str]:
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": target.sys_platform,
        "platform_system": target.platform_system,
        "platform_machine": target.platform_machine,
        "os_name": target.os_name,
        "extra": "",
    }


def missing(folders: list[Path], roots: list[str], env: dict[str, str]) -> list[str]:
    """Requirements (roots and their dependencies) that apply to `env` and are not installed."""
    dists = installed(*folders)
    wanted = [Requirement(r) for r in roots]
    for dist in dists.values():
        wanted.extend(Requirement(r) for r in dist.requires)
    out: list[str] = []
    for req in wanted:
        name = canonicalize_name(req.name)
        if name in NOT_BUNDLED or (req.marker is not None and not req.marker.evaluate(env)):
            continue
        have = dists.get(name)
        if have is None:
            spec = f"{req.name}{req.specifier}"
            if spec not in out:
                out.append(spec)
        elif not req.specifier.contains(Version(have.version), prereleases=True):
            raise SystemExit(
                f"build-vsix-libs: {name} {have.version} does not satisfy {req} for "
                f"Python {env['python_version']}"
            )
    return out


def resolve(folder: Path, roots: list[str], python: str, target: Target) -> dict[str, Dist]:
    """Install the pure-Python closure of `roots` for one Python version into `folder`."""
    common = ["--target", str(folder), "--python-version", python, "--only-binary=:all:"]
    common += ["--implementation", "cp", "--no-compile", "--quiet", "--upgrade"]
    pip("install", *common, *roots)
    env = marker_env(python, target)
    for _ in range(20):
        todo = missing([folder], roots, env)
        if not todo:
            break
        pip("install", *common, "--no-deps", *todo)
    else:
        raise SystemExit("build-vsix-libs: dependency closure did not settle")
    for path in folder.rglob("*"):
        if path.suffix in NATIVE_SUFFIXES or ".so." in path.name:
            raise SystemExit(
                f"build-vsix-libs: {path.relative_to(folder)} is native code; only libcst may be "
                "(a native dependency needs a per-version, per-platform build like libcst)"
            )
    return installed(folder)


def project_roots(project: Path) -> list[str]:
    data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    deps = data["project"]["dependencies"]
    return [d for d in deps if canonicalize_name(Requirement(d).name) not in NOT_BUNDLED]


def copy_dist(dist: Dist, dest: Path) -> None:
    for rel in dist.files:
        if rel.parts and (rel.parts[0] in ("bin", "..") or "__pycache__" in rel.parts):
            continue
        src = dist.folder / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def fetch_native(python: str, target: Target, version: str, dest: Path, cache: Path) -> str:
    """Download the libcst wheel for one Python and platform and unzip it into `dest`."""
    tag = python.replace(".", "")
    wheels = cache / f"cp{tag}"
    wheels.mkdir(parents=True, exist_ok=True)
    args = ["download", "--no-deps", "--only-binary=:all:", "--dest", str(wheels)]
    args += ["--python-version", python, "--implementation", "cp", "--abi", f"cp{tag}"]
    for plat in target.wheel_platforms:
        args += ["--platform", plat]
    try:
        pip(*args, "--quiet", f"{NATIVE}=={version}")
    except subprocess.CalledProcessError as error:
        raise SystemExit(
            f"build-vsix-libs: no {NATIVE} {version} wheel for CPython {python} on "
            f"{', '.join(target.wheel_platforms)}; set LIBCST_VERSION to a release that has one"
        ) from error
    found = sorted(wheels.glob(f"{NATIVE}-{version}-*.whl"))
    if not found:
        raise SystemExit(f"build-vsix-libs: pip saved no {NATIVE} wheel in {wheels}")
    with zipfile.ZipFile(found[0]) as archive:
        archive.extractall(dest)
    return found[0].name


def tidy(libs: Path) -> None:
    """Drop what the server never reads: caches, scripts, libcst's tests, install records."""
    for path in sorted(libs.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if not path.exists():
            continue
        if path.is_dir() and (
            path.name == "__pycache__"
            or (path.name == "tests" and NATIVE in path.relative_to(libs).parts[1:2])
        ):
            shutil.rmtree(path)
        elif path.is_file() and (
            path.suffix in (".pyc", ".pyo")
            or (path.parent.name.endswith(".dist-info") and path.name in DIST_INFO_DROP)
        ):
            path.unlink()
    for top in libs.iterdir():
        bin_dir = top / "bin"
        if bin_dir.is_dir():
            shutil.rmtree(bin_dir)


def ship_rule_pages(project: Path, common: Path) -> None:
    """Put the rule pages (`ckpt-lsp --explain`, hover links) into the bundle as real files.

    They are copied from the source tree rather than trusted to the wheel, so the bundle holds
    exactly the pages of this checkout, as real files (a .vsix is a zip).
    """
    source = (project / "server" / "ckpt_lsp" / "data" / "rules").resolve()
    pages = sorted(source.glob("CKPT*.md"))
    if not pages:
        raise SystemExit(f"build-vsix-libs: no rule pages (CKPT*.md) in {source}")
    dest = common / "ckpt_lsp" / "data" / "rules"
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    for page in pages:
        shutil.copyfile(page, dest / page.name)


def version_of(dist_name: str) -> str:
    return metadata.version(dist_name)


def build(project: Path, out: Path, target_name: str, pythons: list[str], native: str) -> None:
    target = TARGETS[target_name]
    pythons = sorted(pythons, key=lambda v: tuple(int(p) for p in v.split(".")))
    roots = project_roots(project)
    log(f"target {target_name}; Python {', '.join(pythons)}; libcst {native}; deps {roots}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="ckpt-vsix-") as tmp_name:
        tmp = Path(tmp_name)
        per_version = {p: resolve(tmp / f"py{p}", roots, p, target) for p in pythons}

        newest = per_version[pythons[-1]]
        common = out / "common"
        common.mkdir()
        for dist in newest.values():
            copy_dist(dist, common)
        # Built from a copy so the build leaves no build/ or *.egg-info in the work tree.
        source = tmp / "project"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py"):
            if (project / name).is_file():
                shutil.copy2(project / name, source / name)
        shutil.copytree(
            project / "server",
            source / "server",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
        pip(
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-compile",
            "--quiet",
            "--target",
            str(common),
            str(source),
        )
        ship_rule_pages(project, common)

        for python in pythons:
            dists = per_version[python]
            dest = out / f"cp{python.replace('.', '')}"
            dest.mkdir()
            overrides = sorted(
                f"{d.name}=={d.version}"
                for d in dists.values()
                if newest.get(d.name) is None or newest[d.name].version != d.version
            )
            for spec in overrides:
                copy_dist(dists[spec.split("==")[0]], dest)
            wheel = fetch_native(python, target, native, dest, tmp / "wheels")
            # What this Python sees (cp3XY, then common) must be complete, libcst's needs included.
            still = missing([dest, common], roots, marker_env(python, target))
            if still:
                raise SystemExit(f"build-vsix-libs: cp{python}: unresolved {still}")
            log(f"cp{python}: {wheel}; overrides {overrides or 'none'}")
    tidy(out)
    (out / "BUNDLE.txt").write_text(
        f"target={target_name}\npythons={','.join(pythons)}\nlibcst={native}\n", encoding="utf-8"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default=os.environ.get("TARGET", "linux-x64"))
    parser.add_argument("--out", type=Path, default=Path("bundled/libs"))
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument(
        "--pythons", default=os.environ.get("PY_VERSIONS", "3.9,3.10,3.11,3.12,3.13")
    )
    parser.add_argument("--libcst-version", default=os.environ.get("LIBCST_VERSION"))
    args = parser.parse_args(argv)
    if args.target not in TARGETS:
        parser.error(f"unknown target {args.target!r}; one of {', '.join(TARGETS)}")
    pythons = [p.strip() for p in args.pythons.split(",") if p.strip()]
    if not pythons or any(not re.fullmatch(r"3\.\d+", p) for p in pythons):
        parser.error(f"--pythons wants versions like 3.9,3.13, got {args.pythons!r}")
    native = args.libcst_version or TARGETS[args.target].libcst_version or version_of(NATIVE)
    build(args.project.resolve(), args.out.resolve(), args.target, pythons, native)
    return 0


if __name__ == "__main__":
    sys.exit(main())
