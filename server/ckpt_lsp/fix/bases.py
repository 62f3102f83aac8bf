"""Which library base classes define the pickle protocol methods themselves.

`super().__getstate__()` is only safe where a base defines it in every supported
Python: `object.__getstate__` exists from 3.11 on, so 3.9 and 3.10 would raise.
Measured with torch 2.13, lightning 2.6 and scikit-learn 1.9 (inspect the MRO,
call the method, compare the result with `obj.__dict__`):

- torch.nn.Module: both; `__getstate__` returns `self.__dict__.copy()`.
  Subclasses in torch.nn (RNNBase, _ConvNd, MultiheadAttention, ...) override
  one or both and still return a copy.
- LightningModule: its own `__getstate__` returns `dict(self.__dict__)` with the
  trainer cleared; `__setstate__` is nn.Module's.
- sklearn BaseEstimator: both, but for classes outside sklearn `__getstate__`
  returns `object.__getstate__()`, which on 3.11+ is the live `__dict__`: popping
  from it would delete the attribute from the object being saved. So the state
  must be copied first.
- torch Dataset/IterableDataset, LightningDataModule, sklearn mixins: neither.

nn.Module's `__setattr__` stores modules, parameters and buffers in `_modules`,
`_parameters`, `_buffers`: `self.shortcut = (lambda x: x) if same else nn.Conv2d(...)`
pops nothing from `__dict__` in the Conv2d case, and an unguarded
`self.shortcut = None` in `__setstate__` would replace the restored layer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BaseProtocol:
    getstate: bool  # the base defines __getstate__ (so super().__getstate__() works on 3.9)
    setstate: bool  # the base defines __setstate__
    fresh: bool  # its __getstate__ returns a new dict that is safe to pop from
    # nn.Module keeps submodules, parameters and buffers outside __dict__: an attribute
    # whose value may be one of them is restored by the base and must not be overwritten.
    submodules: bool = False


NN_MODULE = BaseProtocol(getstate=True, setstate=True, fresh=True, submodules=True)
SKLEARN_ESTIMATOR = BaseProtocol(getstate=True, setstate=True, fresh=False)
# A project base class whose own __getstate__ we cannot judge: copy its result.
UNKNOWN_GETSTATE = BaseProtocol(getstate=True, setstate=False, fresh=False)

BASE_PROTOCOLS: dict[str, BaseProtocol] = {
    "torch.nn.Module": NN_MODULE,
    "torch.nn.modules.module.Module": NN_MODULE,
    "lightning.LightningModule": NN_MODULE,
    "lightning.pytorch.LightningModule": NN_MODULE,
    "lightning.pytorch.core.LightningModule": NN_MODULE,
    "lightning.pytorch.core.module.LightningModule": NN_MODULE,
    "pytorch_lightning.LightningModule": NN_MODULE,
    "pytorch_lightning.core.LightningModule": NN_MODULE,
    "pytorch_lightning.core.module.LightningModule": NN_MODULE,
    "pytorch_lightning.core.lightning.LightningModule": NN_MODULE,
    "transformers.PreTrainedModel": NN_MODULE,
    "transformers.modeling_utils.PreTrainedModel": NN_MODULE,
    "sklearn.base.BaseEstimator": SKLEARN_ESTIMATOR,
}

# Names under torch.nn that are classes but not modules.
_TORCH_NN_NOT_MODULES = frozenset(
    {"Parameter", "UninitializedParameter", "Buffer", "UninitializedBuffer"}
)


def lookup(qualified: str) -> BaseProtocol | None:
    """The protocol a known library base defines, or None when it defines neither."""
    known = BASE_PROTOCOLS.get(qualified)
    if known is not None:
        return known
    parts = qualified.split(".")
    # torch.nn.Linear, torch.nn.modules.conv.Conv2d, ...: all nn.Module subclasses.
    if (
        len(parts) >= 3
        and parts[:2] == ["torch", "nn"]
        and parts[-1][:1].isupper()
        and parts[-1] not in _TORCH_NN_NOT_MODULES
        and (len(parts) == 3 or parts[2] == "modules")
    ):
        return NN_MODULE
    return None
