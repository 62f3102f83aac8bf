"""Module hooks live in the module's hook dicts and are pickled with it; tensor hooks are not.

Each snippet is the body of `__init__` of an `nn.Module` subclass (see test_rules.HEADER);
the runtime test at the end checks the claim both tables rest on.
"""

from __future__ import annotations

import pickle

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text

from tests.analysis.test_rules import findings_for

INVALID = [
    ("self.register_forward_hook(lambda m, i, o: o)", "_forward_hooks"),
    ("self.register_full_backward_pre_hook(lambda m, g: g)", "_backward_pre_hooks"),
    (
        "def drop(m, sd, prefix, meta):\n    return sd\nself._register_state_dict_hook(drop)",
        "_state_dict_hooks",
    ),
    ("self.fc = nn.Linear(2, 2)\nself.fc.register_forward_hook(lambda m, i, o: o)", "fc"),
    ("self.fc = nn.Linear(2, 2)\nh = self.fc.register_forward_pre_hook(lambda m, a: a)", "fc"),
    (
        "self.norm = nn.BatchNorm1d(2)\ndef drop(m, sd, p, meta):\n    return sd\n"
        "self.norm._register_state_dict_hook(drop)",
        "norm",
    ),
    (
        "self.enc = nn.Linear(2, 2)\nenc = self.enc\n"
        "enc.register_full_backward_hook(lambda m, gi, go: None)",
        "enc",
    ),
    (
        "self.layers = nn.ModuleList([nn.Linear(2, 2)])\nfor layer in self.layers:\n"
        "    layer.register_forward_hook(lambda m, i, o: o)",
        "layers",
    ),
    (
        "self.layers = nn.ModuleList([nn.Linear(2, 2)])\nfor i, layer in enumerate(self.layers):\n"
        "    layer.register_forward_hook(lambda m, i, o: o)",
        "layers",
    ),
    (
        "self.stem = nn.Conv2d(3, 4, 3)\nfor name, m in self.named_children():\n"
        "    m.register_forward_pre_hook(lambda mod, a: a)",
        "stem",
    ),
    (
        "self.stem = nn.Conv2d(3, 4, 3)\n"
        "def save_output():\n    def hook(m, i, o):\n        return o\n    return hook\n"
        "self.stem.register_forward_hook(save_output())",
        "stem",
    ),
    (
        "self.stem = nn.Conv2d(3, 4, 3)\n"
        "self.stem_handle = self.stem.register_forward_hook(lambda m, i, o: o)",
        "stem",
    ),
]

VALID = [
    "self.register_forward_hook(module_fn)",
    "self.fc = nn.Linear(2, 2)\nself.fc.register_forward_hook(module_fn)",
    "self.fc = nn.Linear(2, 2)\nself.fc.weight.register_hook(lambda g: g)",
    "self.fc = nn.Linear(2, 2)\nfor p in self.fc.parameters():\n    p.register_hook(lambda g: g)",
    "self.fc = nn.Linear(2, 2)\nself.fc.weight.register_post_accumulate_grad_hook(lambda p: None)",
    "self.fc = nn.Linear(2, 2)\nh = self.fc.register_forward_hook(lambda m, i, o: o)\nh.remove()",
    "self.fc = nn.Linear(2, 2)\nself.opt = torch.optim.SGD(self.fc.parameters(), lr=0.1)\n"
    "self.opt.register_step_pre_hook(lambda o, a, k: None)",
    "self.fc = nn.Linear(2, 2)\nself.register_forward_hook(self.fc.forward)",
]


@pytest.mark.parametrize(("body", "attribute"), INVALID)
def test_module_hook_with_a_local_function_is_reported(body: str, attribute: str) -> None:
    assert ("CKPT003", attribute) in findings_for(body)


@pytest.mark.parametrize("body", VALID)
def test_importable_or_tensor_hooks_are_not(body: str) -> None:
    assert findings_for(body) == []


def test_kept_handle_on_self_is_one_finding() -> None:
    body = "self.h = self.register_forward_pre_hook(lambda m, a: None)"
    assert findings_for(body) == [("CKPT003", "h")]


def test_helper_that_hooks_the_module_it_returns() -> None:
    source = (
        "from torch import nn\n"
        "def quant_noise(module, p):\n"
        "    def _pre(mod, inputs):\n        return None\n"
        "    module.register_forward_pre_hook(_pre)\n    return module\n"
        "def scaled(module):\n    module.register_forward_hook(print)\n    return module\n"
        "class M(nn.Module):\n    def __init__(self, p=0.1):\n        super().__init__()\n"
        "        self.fc1 = quant_noise(nn.Linear(2, 2), p)\n"
        "        self.fc2 = scaled(nn.Linear(2, 2))\n"
    )
    assert [f.attribute for f in analyze_text(source)] == ["fc1"]


def test_runtime_module_hooks_break_pickle_and_tensor_hooks_do_not() -> None:
    torch = pytest.importorskip("torch")
    module = torch.nn.Linear(2, 2)
    module.weight.register_hook(lambda g: g)
    module.weight.register_post_accumulate_grad_hook(lambda p: None)
    pickle.dumps(module)
    module.register_forward_hook(lambda m, i, o: o)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(module)


CHILD_LOOPS = [
    # every child: each torch.nn attribute receives the hook
    ("for m in self.children():\n    m.register_forward_hook(lambda mod, i, o: o)", ["conv", "fc"]),
    # modules() visits self too: its own hook dict receives it
    (
        "for m in self.modules():\n    m.register_forward_hook(lambda mod, i, o: o)",
        ["conv", "fc", "_forward_hooks"],
    ),
    # isinstance picks the children of that class
    (
        "for m in self.modules():\n    if isinstance(m, nn.Conv2d):\n"
        "        m.register_forward_hook(lambda mod, i, o: o)",
        ["conv"],
    ),
    # a test on the name picks a subset we cannot know: nothing
    (
        "for name, m in self.named_modules():\n    if name.startswith('c'):\n"
        "        m.register_forward_hook(lambda mod, i, o: o)",
        [],
    ),
]


@pytest.mark.parametrize(("loop", "expected"), CHILD_LOOPS)
def test_hooks_in_loops_over_children(loop: str, expected: list[str]) -> None:
    body = "self.conv = nn.Conv2d(3, 4, 3)\nself.fc = nn.Linear(2, 2)\nself.n = 3\n" + loop
    assert sorted(a for _, a in findings_for(body)) == sorted(expected)


TEMPORARY_HOOKS = """
import contextlib
from torch import nn


class Poly(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(2, 2))

    def _register_pre_hooks(self, task_ids):
        def pre_hook(_, args, kwargs):
            kwargs["task_ids"] = task_ids
            return args, kwargs

        handles = []
        for module in self.model.modules():
            if isinstance(module, nn.Linear):
                handle = module.register_forward_pre_hook(pre_hook, with_kwargs=True)
                handles.append(handle)
        return handles

    @contextlib.contextmanager
    def _manage_pre_hooks(self, task_ids):
        handles = self._register_pre_hooks(task_ids)
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def forward(self, x, task_ids=None):
        with self._manage_pre_hooks(task_ids):
            return self.model(x)
"""


def test_hooks_whose_handles_are_handed_back_are_the_callers_business() -> None:
    """A method that returns the handles of what it registered lends the hooks to its
    caller (here a context manager that removes them): nothing is hooked at rest."""
    assert analyze_text(TEMPORARY_HOOKS, "poly.py") == []


def test_returned_handles_kept_on_self_are_still_reported() -> None:
    kept = TEMPORARY_HOOKS.replace(
        "        self.model = nn.Sequential(nn.Linear(2, 2))\n",
        "        self.model = nn.Sequential(nn.Linear(2, 2))\n"
        "        self.handles = self._register_pre_hooks(1)\n",
    )
    assert "handles" in [f.attribute for f in analyze_text(kept, "poly.py")]
