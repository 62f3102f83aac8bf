"""The notebook corpus's truth: notebooks converted to modules the oracle can import, and the
runtime proof of `# truth: main_module` marks (CKPT014), which the shared oracle does not know.

The conversion is written here on its own, not with the checker's joiner, so the two can
disagree: code cells in notebook order, each line of a cell one line of the module (rows
match), IPython lines (magics, shell escapes, help) and `%%` cells turned into `pass`.

Run as a script to write tests/corpus/notebooks/expected.json:

    python tests/support/notebook_truth.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "corpus" / "notebooks"
_IPYTHON = re.compile(r"^\s*[%!?]|^\s*[\w.]+\?\??\s*$|^\s*[\w, ]+=\s*[!%]")
_MAIN_MARK = re.compile(r"#\s*truth:\s*main_module\s*$")
_SAVE_TARGET = re.compile(r"""(?:torch\.save|joblib\.dump|pickle\.dump)\(.*?["']([\w.]+)["']\)""")


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def notebook_to_module(data: dict) -> tuple[str, dict[int, int]]:
    """The module text, and the module row of the first line of each code cell (by the cell's
    0-based index among all cells)."""
    lines: list[str] = []
    first: dict[int, int] = {}
    for index, cell in enumerate(data["cells"]):
        if cell.get("cell_type") != "code":
            continue
        cell_lines = cell_source(cell).split("\n")
        first[index] = len(lines) + 1
        if cell_lines[0].startswith("%%"):
            cell_lines = ["pass"] + [""] * (len(cell_lines) - 1)
        else:
            cell_lines = [
                line[: len(line) - len(line.lstrip())] + "pass" if _IPYTHON.match(line) else line
                for line in cell_lines
            ]
        lines.extend(cell_lines)
    return "\n".join(lines) + "\n", first


def convert_tree(cases: Path, out: Path) -> list[Path]:
    """Every notebook of `cases` as `<name>.py` in `out` (marks kept)."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for path in sorted(cases.glob("*.ipynb")):
        text, _ = notebook_to_module(json.loads(path.read_text(encoding="utf-8")))
        target = out / (path.stem + ".py")
        target.write_text(text, encoding="utf-8")
        made.append(target)
    return made


def main_module_truth(module: Path) -> dict[int, str]:
    """Run the module as a script (as the notebook runs: `__main__`), then load each file that
    a save line names in another process. Line -> "fails" or "loads"."""
    text = module.read_text(encoding="utf-8")
    saves = {
        row: match.group(1)
        for row, line in enumerate(text.splitlines(), 1)
        if (match := _SAVE_TARGET.search(line))
    }
    if not saves:
        return {}
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "KERAS_BACKEND": "torch"}
        subprocess.run(
            [sys.executable, str(module)],
            cwd=work,
            check=True,
            timeout=600,
            env=env,
            capture_output=True,
        )
        loader = (
            "import sys, pickle, joblib, torch\n"
            "name = sys.argv[1]\n"
            "try:\n"
            "    joblib.load(name) if name.endswith('.joblib') else "
            "torch.load(name, weights_only=False)\n"
            "    print('loads')\n"
            "except AttributeError as exc:\n"
            "    print('fails' if \"on <module '__main__'\" in str(exc) else f'other {exc}')\n"
        )
        out: dict[int, str] = {}
        for row, name in saves.items():
            proc = subprocess.run(
                [sys.executable, "-c", loader, name],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            out[row] = proc.stdout.strip()
    return out


def main_module_rows(module: Path, rel: str) -> list[dict]:
    """The expected.json rows of the module's `main_module` marks, each proven at runtime;
    raises when a mark and the runtime disagree."""
    truth = main_module_truth(module)
    lines = module.read_text(encoding="utf-8").splitlines()
    marked = {row for row, line in enumerate(lines, 1) if _MAIN_MARK.search(line)}
    failing = {row for row, verdict in truth.items() if verdict == "fails"}
    if marked != failing:
        raise AssertionError(
            f"{rel}: main_module marks {sorted(marked)} != runtime {sorted(failing)}"
        )
    return [
        {"path": rel, "class": None, "attribute": None, "kind": "main_module", "line": row}
        for row in sorted(marked)
    ]


def emit(oracle: Path) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        modules = convert_tree(HERE / "cases", Path(tmp) / "cases")
        emitted = Path(tmp) / "oracle.json"
        subprocess.run(
            [sys.executable, str(oracle), str(Path(tmp) / "cases"), "--emit", str(emitted)],
            check=True,
            timeout=900,
            cwd=tmp,
        )
        rows = json.loads(emitted.read_text(encoding="utf-8"))
        for module in modules:
            rows.extend(main_module_rows(module, module.name))
    return sorted(rows, key=lambda r: (r["path"], r["line"], r["kind"]))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from support.shared import CORPUS

    rows = emit(CORPUS / "oracle.py")
    (HERE / "expected.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print(f"{len(rows)} marks")
