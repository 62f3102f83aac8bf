"""demand.py: which statements a flow asked about a few expressions may skip; and the flows
that skip them answer what the whole flow answers, on every blind round of the corpus."""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest
from ckpt_lsp.analysis.demand import Demand, FunctionNode, demand, of_returns
from ckpt_lsp.analysis.facts import module_facts
from ckpt_lsp.analysis.load_safety import LoadSafety
from ckpt_lsp.analysis.local_flow import LocalFlow
from ckpt_lsp.config import load_config
from ckpt_lsp.runner import run_check

BLIND = Path(__file__).resolve().parents[1] / "corpus" / "blind"


def _function(source: str) -> ast.FunctionDef:
    func = ast.parse(textwrap.dedent(source)).body[0]
    assert isinstance(func, ast.FunctionDef)
    return func


def _saved(func: ast.FunctionDef) -> ast.expr:
    """The first argument of the function's `torch.save(...)` call."""
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.save":
            return node.args[0]
    raise AssertionError("no torch.save")


def _evaluated(func: ast.FunctionDef, idle: frozenset[int]) -> list[str]:
    """The statements (a `for`: its header) the flow evaluates, as source lines."""
    return [
        ast.unparse(s).splitlines()[0]
        for s in ast.walk(func)
        if isinstance(s, ast.stmt) and s is not func and id(s) not in idle
    ]


TRAIN = """
def train(model, loader, opt):
    best = 0.0
    history = []
    for epoch in range(10):
        for x, y in loader:
            out = model(x)
            loss = crit(out, y)
            loss.backward()
            history.append(loss.item())
        acc = evaluate(model)
        if acc > best:
            best = np.float64(acc)
    summary = np.mean(history)
    print(summary)
    torch.save({"model": model.state_dict(), "best": best}, "ckpt.pt")
"""


# INVALID for skipping: statements a saved value can depend on are evaluated
def test_what_the_saved_value_reads_is_evaluated() -> None:
    func = _function(TRAIN)
    kept = _evaluated(func, demand(func, [_saved(func)]).idle)
    assert "best = 0.0" in kept
    assert "best = np.float64(acc)" in kept
    assert "acc = evaluate(model)" in kept
    assert "if acc > best:" in kept  # the flow may decide the arm from the test
    assert "out = model(x)" in kept  # it may change `model`, which is saved
    assert "torch.save({'model': model.state_dict(), 'best': best}, 'ckpt.pt')" in kept


# VALID for skipping: what only feeds names nothing saved reads
def test_what_no_saved_value_reads_is_skipped() -> None:
    func = _function(TRAIN)
    idle = demand(func, [_saved(func)]).idle
    skipped = [
        ast.unparse(s).splitlines()[0]
        for s in ast.walk(func)
        if isinstance(s, ast.stmt) and id(s) in idle
    ]
    assert "summary = np.mean(history)" in skipped
    assert "history.append(loss.item())" in skipped
    assert "loss = crit(out, y)" in skipped  # `out` is bound by a kept statement, not read
    assert "for epoch in range(10):" in skipped  # its target is left unknown


def test_a_decided_test_keeps_its_flag() -> None:
    func = _function(
        """
        def save(model):
            whole = False
            other = compute()
            if whole:
                state = model
            else:
                state = model.state_dict()
            torch.save(state, "m.pt")
        """
    )
    kept = _evaluated(func, demand(func, [_saved(func)]).idle)
    assert "whole = False" in kept
    assert "other = compute()" not in kept


def test_a_call_that_may_fill_the_saved_dict_keeps_what_it_is_given() -> None:
    func = _function(
        """
        def save(stats, values):
            ckpt = {}
            mean = np.mean(values)
            fill(ckpt, mean)
            torch.save(ckpt, "c.pt")
        """
    )
    kept = _evaluated(func, demand(func, [_saved(func)]).idle)
    assert "mean = np.mean(values)" in kept
    assert "fill(ckpt, mean)" in kept


def test_attributes_of_self_count_one_by_one() -> None:
    func = _function(
        """
        def save(self):
            self.best = np.float64(self.score)
            self.steps = self.steps + 1
            torch.save({"best": self.best}, "c.pt")
        """
    )
    kept = _evaluated(func, demand(func, [_saved(func)]).idle)
    assert "self.best = np.float64(self.score)" in kept
    assert "self.steps = self.steps + 1" not in kept


def test_self_saved_whole_keeps_every_attribute() -> None:
    func = _function(
        """
        def save(self):
            self.steps = self.steps + 1
            torch.save(self, "c.pt")
        """
    )
    kept = _evaluated(func, demand(func, [_saved(func)]).idle)
    assert "self.steps = self.steps + 1" in kept


def test_returns_keep_every_return_and_the_tests_above_them() -> None:
    func = _function(
        """
        def pick(scores, fallback):
            unused = load_extra()
            if fallback:
                return None
            top = np.max(scores)
            return {"top": top}
        """
    )
    kept = _evaluated(func, of_returns(func).idle)
    assert sorted(kept) == sorted(
        ["if fallback:", "return None", "top = np.max(scores)", "return {'top': top}"]
    )


def test_a_flow_asked_about_one_value_judges_it_as_the_whole_flow_does(
    tmp_path: Path,
) -> None:
    module = tmp_path / "train.py"
    module.write_text("import numpy as np\nimport torch\n" + textwrap.dedent(TRAIN))
    facts = module_facts(str(module), "train", module.read_text())
    func = facts.functions["train"]
    saved = _saved(func)
    assert isinstance(saved, ast.Dict)
    best = saved.values[1]
    save_stmt = func.body[-1]
    whole = LocalFlow(LoadSafety(facts)).run(func)
    asked = LocalFlow(LoadSafety(facts)).run(func, needs=demand(func, [saved]))
    assert asked.judge(best, save_stmt) == whole.judge(best, save_stmt)
    judged = whole.judge(best, save_stmt)
    assert judged is not None and judged.kind == "numpy-scalar"  # the test is live


def _findings(paths: list[Path]) -> list[tuple[str, int, int, str, str]]:
    result = run_check(paths, load_config(paths[0]), use_cache=False, jobs=1)
    return sorted(
        (f.filename, f.location.row, f.location.column, f.code, f.message) for f in result.findings
    )


@pytest.mark.parametrize("round_dir", sorted(p.name for p in BLIND.iterdir() if p.is_dir()))
def test_skipping_changes_no_finding_of_a_blind_round(
    round_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every flow asked about a few values, run whole instead, gives the same findings."""
    paths = [BLIND / round_dir]
    asked = _findings(paths)
    run = LocalFlow.run

    def whole(
        self: LocalFlow,
        func: FunctionNode,
        bound: Mapping[str, object] | None = None,
        needs: Demand | None = None,
    ) -> LocalFlow:
        return run(self, func, bound)

    def every_attribute(self: Demand) -> frozenset[str] | None:
        if "self" in self.relevant:
            return None
        return frozenset(n[len("self.") :] for n in self.relevant if n.startswith("self."))

    monkeypatch.setattr(LocalFlow, "run", whole)
    # and a class's attributes that only `if` tests read are valued all the same
    monkeypatch.setattr(Demand, "self_attributes", every_attribute)
    assert _findings(paths) == asked


def test_the_attributes_of_self_that_the_written_values_are_made_of() -> None:
    func = _function(
        """
        def save(self, path):
            best = self.best
            if self.log_to_disk:
                self.logger.flush()
            torch.save({"opt": self.optimizer.state_dict(), "best": best}, path)
        """
    )
    assert demand(func, [_saved(func)]).self_attributes() == {"best", "optimizer"}


def test_self_handed_on_makes_every_attribute_matter() -> None:
    func = _function(
        """
        def save(self, path):
            state = export(self)
            torch.save(state, path)
        """
    )
    assert demand(func, [_saved(func)]).self_attributes() is None


def test_an_attribute_only_if_tests_read_needs_no_value_from_the_class() -> None:
    func = _function(
        """
        def save(self, path):
            state = {"step": self.step}
            if self.is_deepspeed_enabled:
                state["engine"] = self.engine.state_dict()
            if self.best is not None:
                state["best"] = self.best
            torch.save(state, path)
        """
    )
    needs = demand(func, [_saved(func)])
    # the flow still evaluates the tests (a flag the function sets itself decides an arm)
    assert {"self.is_deepspeed_enabled", "self.best"} <= needs.relevant
    assert needs.tested == {"self.is_deepspeed_enabled"}
    assert needs.self_attributes() == {"step", "engine", "best"}


def test_a_tested_attribute_the_function_reads_elsewhere_keeps_its_value() -> None:
    func = _function(
        """
        def save(self, path):
            flag = self.use_ema
            if self.use_ema:
                torch.save({"ema": self.ema, "flag": flag}, path)
        """
    )
    assert demand(func, [_saved(func)]).self_attributes() == {"ema", "use_ema"}
