"""CKPT012 and CKPT013 findings for one custom Keras class.

Every custom Layer/Model the project defines is checked, not only those a save call is
seen on: Keras saves a layer wherever a model holding it is saved (`ModelCheckpoint`,
`model.save`, `copy.deepcopy`, a pickle of the model), usually far from the class, and
the saving itself always succeeds; the failure comes at `load_model`. A class handed to
Keras through `custom_objects` anywhere in the project is located by it, so it is not
reported as unregistered.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from ckpt_lsp.analysis.blocks import split_lines
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.keras_classes import (
    KerasClass,
    in_builtin_package,
    is_abstract,
    is_registered,
    keras_class,
)
from ckpt_lsp.analysis.keras_config import ConfigIssue, call_sites, config_issues
from ckpt_lsp.analysis.nodes import walk
from ckpt_lsp.findings import Finding, Position
from ckpt_lsp.rules import RULES
from ckpt_lsp.suppress import is_suppressed

KERAS_CODES = ("CKPT012", "CKPT013")
_RELATED = 3  # construction sites named as related locations, at most
# The save paths a Keras finding breaks: all of them go through the class's config.
_BREAKS = ("keras", "deepcopy", "pickle")


@dataclass(frozen=True)
class KerasContext:
    """What every Keras class of a file is judged with."""

    filename: str
    facts: ModuleFacts
    custom_objects: Callable[[], frozenset[str]]  # names passed as custom_objects, lazily
    enabled: Callable[[str], bool]
    severity: Callable[[str], str]
    index: ProjectIndex | None = None


def keras_findings(ctx: KerasContext, cls: ClassFacts, kc: KerasClass) -> list[Finding]:
    facts = ctx.facts
    if in_builtin_package(facts):
        return []  # load_model imports Keras' own classes by module path
    if is_abstract(cls):
        return []  # only its subclasses are built and saved: they are checked
    found: list[Finding] = []
    sites = call_sites(facts, cls.name)
    # where it bites: the places the module builds the class (a model holding one saves,
    # and cannot be loaded back)
    related = tuple(
        (ctx.filename, row, column, f"`{cls.name}` built here")
        for row, column in sites.places[:_RELATED]
    )
    unregistered = ctx.enabled("CKPT012") and not is_registered(facts, cls, ctx.index)
    if unregistered and cls.name not in ctx.custom_objects():
        finding = _unregistered(ctx, cls, kc)
        if finding is not None:
            found.append(replace(finding, related=related))
    if ctx.enabled("CKPT013"):
        issues = config_issues(facts, cls, kc, sites)
        found.extend(
            replace(f, related=related)
            for f in (_config_finding(ctx, cls, kc, i) for i in issues)
            if f is not None
        )
    return found


def top_package(facts: ModuleFacts) -> str:
    """The `package=` a registration names: the module's top package (or the module)."""
    return facts.module.partition(".")[0] or "custom"


def _unregistered(ctx: KerasContext, cls: ClassFacts, kc: KerasClass) -> Finding | None:
    row = cls.row
    line = _line(cls, row)
    if is_suppressed("CKPT012", [line]):
        return None
    column = line.find(cls.name) + 1 or 1
    kind = "Model" if kc.kind == "model" else "Layer"
    message = (
        f"Keras {kind} `{cls.name}` is not registered: `model.save(...)` writes it, but "
        "`keras.models.load_model` (and deepcopy, pickle) cannot locate the class; decorate "
        "it with `@keras.saving.register_keras_serializable()` or pass it in `custom_objects`"
    )
    return _finding(
        ctx,
        cls,
        kc,
        "CKPT012",
        message,
        "",
        (Position(row, column), Position(row, column + len(cls.name))),
        f"register:{top_package(ctx.facts)}",
    )


def _config_finding(
    ctx: KerasContext, cls: ClassFacts, kc: KerasClass, issue: ConfigIssue
) -> Finding | None:
    offset = cls.parsed.row_offset
    node = issue.node
    if isinstance(node, ast.arg):
        row = node.lineno + offset
        column = node.col_offset + 1
        end = Position(row, column + len(node.arg))
    else:
        assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        row = node.lineno + offset
        line = _line(cls, row)
        column = line.find("__init__") + 1 or node.col_offset + 1
        end = Position(row, column + len("__init__"))
    line = _line(cls, row)
    if is_suppressed("CKPT013", [line]):
        return None
    message = f"`{cls.name}.__init__`: {issue.message}"
    return _finding(
        ctx,
        cls,
        kc,
        "CKPT013",
        message,
        issue.param,
        (Position(row, column), end),
        f"keras-{issue.fix}",
    )


def _finding(
    ctx: KerasContext,
    cls: ClassFacts,
    kc: KerasClass,
    code: str,
    message: str,
    attribute: str,
    span: tuple[Position, Position],
    fix_mode: str,
) -> Finding:
    rule = RULES[code]
    if _builds_itself(cls, kc):
        fix_mode = "keras-none"
    return Finding(
        code=code,
        message=message,
        severity=ctx.severity(code),
        filename=ctx.filename,
        location=span[0],
        end_location=span[1],
        class_name=cls.name,
        attribute=attribute,
        what="a Keras class that load_model cannot rebuild",
        breaks=_BREAKS,
        fine=("save_weights",),
        url=rule.url,
        class_line=cls.row,
        statement_rows=(span[0].row, span[1].row),
        bases=(kc.library_base,),
        fix_mode=fix_mode,
    )


def _builds_itself(cls: ClassFacts, kc: KerasClass) -> bool:
    """A Sequential subclass that adds its layers in `__init__`: `Sequential.from_config`
    calls `cls(name=...)` and adds the saved layers again, so neither registering it nor
    a config entry makes it load back (measured: a duplicate Input or layer error)."""
    if not kc.library_base.endswith(".Sequential"):
        return False
    init = cls.method("__init__")
    return init is not None and any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in ("add", "pop")
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "self"
        for n in walk(init)
    )


def _line(cls: ClassFacts, row: int) -> str:
    lines = split_lines(cls.parsed.block.text)
    index = row - cls.parsed.row_offset - 1
    return lines[index] if 0 <= index < len(lines) else ""


def project_custom_objects(modules: Iterable[ModuleFacts]) -> frozenset[str]:
    from ckpt_lsp.analysis.keras_classes import custom_object_names

    names: set[str] = set()
    for facts in modules:
        names |= custom_object_names(facts)
    return frozenset(names)


__all__ = ["KERAS_CODES", "KerasContext", "keras_class", "keras_findings", "top_package"]
