"""Importable classes for the weights-only catalog's probes (pickle needs a module path)."""

from __future__ import annotations

import collections
import dataclasses
import typing


@dataclasses.dataclass
class RunConfig:
    lr: float = 0.1
    name: str = "run"


class RunState:
    def __init__(self) -> None:
        self.step = 3
        self.name = "run"


def warmup(step: int) -> float:
    """A module-level function: pickled by reference, a global the default load refuses."""
    return min(1.0, step / 100)


# module-level classes built by a factory call: the class is a global the default load refuses
EvalResult = collections.namedtuple("EvalResult", ["loss", "acc"])
Span = typing.NamedTuple("Span", [("start", int), ("end", int)])  # noqa: UP014 - the functional form is the probe
