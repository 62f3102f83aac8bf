"""Start the ckpt-lsp server that ships inside the VS Code extension.

The extension runs this file with the user's interpreter:
    python bundled/tool/server.py --stdio [args...]
It puts bundled/libs/cp3XY (libcst's native parser built for this Python, plus the few
distributions that differ for it) and bundled/libs/common (the ckpt_lsp package and the
pure-Python dependencies) first on sys.path, then runs ckpt_lsp.cli.main.

An interpreter the bundle cannot serve gets one line on stderr (the extension shows the last
stderr line in its status bar and log) and exit status 1. So this file must at least parse and
run that far on any Python: no f-strings, no annotations, no `from __future__ import annotations`.
"""

import os
import platform
import sys

MIN_VERSION = (3, 9)
ADVICE = (
    "set `ckpt-lsp.importStrategy` to `fromEnvironment` and run `pip install ckpt-lsp` in that "
    "environment, or choose another interpreter with `ckpt-lsp.interpreter`"
)


def libs_dir():
    """bundled/libs, next to this file's folder."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "libs")


def bundled_versions(libs):
    """The Python versions the bundle has a cp3XY folder for, oldest first."""
    try:
        names = os.listdir(libs)
    except OSError:
        return []
    found = []
    for name in names:
        if name.startswith("cp3") and name[3:].isdigit() and os.path.isdir(os.path.join(libs, name)):
            found.append((3, int(name[3:])))
    return sorted(found)


def describe_python():
    version = ".".join(str(part) for part in sys.version_info[:3])
    return "%s %s at %s" % (platform.python_implementation(), version, sys.executable or "?")


def fail(reason, versions):
    """One line on stderr, exit status 1."""
    supported = ", ".join("%d.%d" % v for v in versions) or "none (the bundle is not built)"
    sys.stderr.write(
        "ckpt-lsp: %s: found %s; the bundled server supports CPython %s; %s.\n"
        % (reason, describe_python(), supported, ADVICE)
    )
    sys.stderr.flush()
    sys.exit(1)


def prepare():
    """Check this interpreter and put the bundle first on sys.path."""
    libs = libs_dir()
    versions = bundled_versions(libs)
    common = os.path.join(libs, "common")
    if not os.path.isdir(common) or not versions:
        fail("the bundled server is missing (build it with `npm run package`)", versions)
    if platform.python_implementation() != "CPython":
        fail("the bundled server needs CPython", versions)
    current = tuple(sys.version_info[:2])
    if current < MIN_VERSION:
        fail("Python %d.%d is too old" % current, versions)
    if current not in versions:
        fail("no bundled build for Python %d.%d" % current, versions)
    native = os.path.join(libs, "cp%d%d" % current)
    suffix = native_suffix()
    if not has_native_build(os.path.join(native, "libcst"), suffix):
        fail(
            "the bundled libcst has no build for this platform (no libcst/native%s)" % suffix,
            versions,
        )
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [native, common] + [p for p in sys.path if p and os.path.abspath(p) != here]


def native_suffix():
    """The file name ending of extension modules built for exactly this interpreter."""
    import importlib.machinery

    return importlib.machinery.EXTENSION_SUFFIXES[0]


def has_native_build(package, tagged):
    """Whether libcst's parser in `package` was built for this interpreter's platform and ABI.

    Checked by file name (`native.cpython-311-x86_64-linux-gnu.so`), which is cheap: importing
    libcst here would add half a second to every start.
    """
    try:
        names = os.listdir(package)
    except OSError:
        return False
    return any(name.startswith("native.") and name.endswith(tagged) for name in names)


def main(argv):
    prepare()
    from ckpt_lsp.cli import main as server_main

    args = list(argv)
    if "--stdio" not in args:
        args.insert(0, "--stdio")
    return server_main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
