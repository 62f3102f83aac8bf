"""Analyzer: a keystroke's findings equal a fresh analysis of the same text.

The editor path keeps each class's findings by everything they depend on and moves
them when lines are added or removed above the class; these tests type through a file
and compare every version with an analyzer that memoizes nothing.
"""

from __future__ import annotations

from ckpt_lsp.analysis.analyzer import Analyzer
from ckpt_lsp.findings import Finding

HEAD = "import threading\n\nimport torch\n"
MODEL = (
    "\n\nclass Model{n}(torch.nn.Module):\n"
    "    def __init__(self, path):\n"
    "        super().__init__()\n"
    "        self.log = open(path)\n"
    "        self.lock = threading.Lock()\n"
    "        self.act = lambda x: x * {n}\n"
)


def _versions() -> list[str]:
    """A file of three models, typed through: lines added and removed above the later
    classes, then characters typed on one line (no row moves) many times."""
    lines = (HEAD + "".join(MODEL.format(n=n) for n in range(3))).split("\n")
    versions = ["\n".join(lines)]
    first_class = next(i for i, line in enumerate(lines) if line.startswith("class Model0"))
    at = first_class + 3  # inside Model0.__init__, after super().__init__()

    def snap() -> None:
        versions.append("\n".join(lines))

    lines.insert(at, "        self.extra = a")  # one row more above Model1 and Model2
    snap()
    for ch in "bcdef1":  # typing on that line: rows stay
        lines[at] += ch
        snap()
    lines.insert(at, "        self.more = 1")  # one more row
    snap()
    lines[at] += "  # note"
    snap()
    del lines[at : at + 2]  # both gone: back to the first rows
    snap()
    lines[at - 1] += "  # typed"
    snap()
    lines.insert(1, "")  # a row above every class
    snap()
    lines[at + 1] += " "
    snap()
    return versions


def _key(findings: list[Finding]) -> list[tuple[object, ...]]:
    return [
        (
            f.code,
            f.class_name,
            f.attribute,
            f.location,
            f.end_location,
            f.class_line,
            f.statement_rows,
        )
        for f in findings
    ]


def test_memoized_findings_follow_their_class_through_every_keystroke() -> None:
    editor = Analyzer()  # memoizes findings per class, as the server does
    versions = _versions()
    assert len(versions) > 10
    for number, text in enumerate(versions):
        got = editor.analyze("m.py", text).findings
        fresh = Analyzer(batch=True).analyze("m.py", text).findings
        assert len(fresh) == 9, number
        assert _key(got) == _key(fresh), f"version {number}"
