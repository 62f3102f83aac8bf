"""What the local names of a constructing call's function hold, by the shared flow.

`mean, std = mel_stats(n)` then `Model(norm={"mean": mean})`, or `scores = np.linspace(...)`
then `Model(threshold=scores[i])`: the call site's own bindings hold only the last syntax
assigned to a name; the weights-only flow (local_flow.py, the one CKPT010 uses) follows
unpacking of helpers' tuples, chains of locals, branches and loops to what each name holds
at the statement making the call.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from ckpt_lsp.analysis.assignments import Env
from ckpt_lsp.analysis.call_sites import CallSite
from ckpt_lsp.analysis.load_safety import LoadSafety
from ckpt_lsp.analysis.local_flow import NUMBER_MARK, LocalFlow
from ckpt_lsp.weights_only import Refused


@dataclass
class SiteEnv(Env):
    """A call site's bindings, with what the flow judged each local name to hold there."""

    judged: dict[str, Refused | None] = field(default_factory=dict)


def flow_before(site: CallSite, safety: LoadSafety) -> dict[str, Refused | None]:
    """The names the flow knows to be refused (or number literals) at the site's statement."""
    func = site.func
    if func is None:
        return {}
    flow = LocalFlow(safety).run(func)
    stmt = _statement_of(func, site.call, flow)
    if stmt is None:
        return {}
    return {
        k: v for k, v in flow.env_before(stmt).items() if v is not None or k.startswith(NUMBER_MARK)
    }


def _statement_of(func: ast.AST, call: ast.Call, flow: LocalFlow) -> ast.stmt | None:
    """The innermost statement the flow walked that holds `call`."""
    found: ast.stmt | None = None
    stack: list[ast.AST] = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.stmt) and id(node) in flow.before and _holds(node, call):
            found = node
            stack = list(ast.iter_child_nodes(node))
            continue
    return found


def _holds(node: ast.AST, call: ast.Call) -> bool:
    start = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = (node.end_lineno or node.lineno, node.end_col_offset or 0)  # type: ignore[attr-defined]
    return (
        start <= (call.lineno, call.col_offset)
        and (
            call.end_lineno or call.lineno,
            call.end_col_offset or 0,
        )
        <= end
    )
