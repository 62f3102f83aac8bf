"""Scope: which classes are models, through every import style and across files."""

from __future__ import annotations

import pytest
from ckpt_lsp.analysis.analyzer import Analyzer, analyze_text
from ckpt_lsp.analysis.index import ProjectIndex

BODY = "    def __init__(self):\n        self.lock = threading.Lock()\n"


@pytest.mark.parametrize(
    ("imports", "base"),
    [
        ("from torch import nn", "nn.Module"),
        ("import torch.nn as nn", "nn.Module"),
        ("import torch", "torch.nn.Module"),
        ("from torch.nn import Module as M", "M"),
        ("from torch import nn", "nn.Linear"),
        ("from torch.utils.data import Dataset", "Dataset"),
        ("from torch.utils.data import IterableDataset", "IterableDataset"),
        ("import lightning as L", "L.LightningModule"),
        ("import lightning.pytorch as pl", "pl.LightningDataModule"),
        ("import pytorch_lightning as pl", "pl.Callback"),
        ("from lightning.pytorch.callbacks import Callback", "Callback"),
        ("from sklearn.base import BaseEstimator", "BaseEstimator"),
        ("from sklearn.linear_model import LogisticRegression", "LogisticRegression"),
        ("from transformers import PreTrainedModel", "PreTrainedModel"),
        ("from torch.nn.modules.loss import _Loss", "_Loss"),
        ("from torch.nn.modules.loss import _WeightedLoss", "_WeightedLoss"),
        ("from torch.nn.modules.conv import _ConvNd", "_ConvNd"),
        ("from torch.nn.modules.batchnorm import _BatchNorm", "_BatchNorm"),
        ("from torch.nn import modules as tnm", "tnm.instancenorm._InstanceNorm"),
    ],
)
def test_model_bases_in_every_import_style(imports: str, base: str) -> None:
    source = f"import threading\n{imports}\nclass C({base}):\n{BODY}"
    assert [f.code for f in analyze_text(source)] == ["CKPT005"]


@pytest.mark.parametrize(
    ("imports", "base"),
    [
        ("", "object"),
        ("", ""),
        ("import keras", "keras.Model"),
        ("from keras import layers", "layers.Layer"),
        ("from torch import nn", "nn.Parameter"),
        ("import collections", "collections.OrderedDict"),
        # DataLoader workers never receive the sampler
        ("from torch.utils.data import Sampler", "Sampler"),
        ("from torch.utils.data import BatchSampler", "BatchSampler"),
        ("from torch.utils.data.distributed import DistributedSampler", "DistributedSampler"),
        ("import torch", "torch.utils.data.sampler.RandomSampler"),
        ("from torch import nn", "nn._private_helper"),
    ],
)
def test_not_models(imports: str, base: str) -> None:
    source = f"import threading\n{imports}\nclass C({base}):\n{BODY}"
    # Keras classes pickle through their config: only the Keras rules speak for them
    keras = {"CKPT012", "CKPT013"}
    assert [f for f in analyze_text(source) if f.code not in keras] == []


def test_protocol_methods_bring_a_plain_class_into_scope() -> None:
    source = f"import threading\nclass C:\n{BODY}    def __setstate__(self, s):\n        pass\n"
    assert [f.code for f in analyze_text(source)] == ["CKPT005"]


def test_extend_model_bases_from_config(tmp_path) -> None:
    from ckpt_lsp.config import Config

    source = f"import threading\nfrom mylib import Trainable\nclass C(Trainable):\n{BODY}"
    assert analyze_text(source) == []
    config = Config(root=tmp_path, extend_model_bases=("mylib.Trainable",))
    assert [f.code for f in analyze_text(source, config=config)] == ["CKPT005"]


def test_a_user_brings_samplers_back_into_scope(tmp_path) -> None:
    from ckpt_lsp.config import Config

    source = f"import threading\nfrom torch.utils.data import Sampler\nclass C(Sampler):\n{BODY}"
    assert analyze_text(source) == []
    config = Config(root=tmp_path, extend_model_bases=("torch.utils.data.Sampler",))
    assert [f.code for f in analyze_text(source, config=config)] == ["CKPT005"]


def test_transitive_across_files(tmp_path) -> None:
    pkg = tmp_path / "proj"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .base import Layer\n")
    base = "from torch import nn\nclass Layer(nn.Module):\n    pass\n"
    (pkg / "base.py").write_text(base)
    blocks = (
        "import threading\nfrom proj.base import Layer\nfrom . import base\n"
        f"class Block(Layer):\n{BODY}"
        f"class Block2(base.Layer):\n{BODY}"
    )
    (pkg / "blocks.py").write_text(blocks)
    reexport = f"import threading\nfrom proj import Layer\nclass Block3(Layer):\n{BODY}"
    (tmp_path / "user.py").write_text(reexport)
    index = ProjectIndex(tmp_path)
    files = [pkg / "__init__.py", pkg / "base.py", pkg / "blocks.py", tmp_path / "user.py"]
    index.scan(files)
    analyzer = Analyzer(None, index)
    found = analyzer.analyze(str(pkg / "blocks.py"), blocks).findings
    assert [f.class_name for f in found] == ["Block", "Block2"]
    found = analyzer.analyze(str(tmp_path / "user.py"), reexport).findings
    assert [f.class_name for f in found] == ["Block3"]
    # the base stops being a module: its dependents lose their findings
    assert str(pkg / "blocks.py") in index.dependents(pkg / "base.py")
    index.add_source(pkg / "base.py", "class Layer:\n    pass\n")
    assert analyzer.analyze(str(pkg / "blocks.py"), blocks).findings == []


def test_factory_in_another_file(tmp_path) -> None:
    (tmp_path / "io_utils.py").write_text(
        "import lmdb\ndef open_env(p):\n    return lmdb.open(p)\n"
    )
    model = (
        "from torch.utils.data import Dataset\nfrom io_utils import open_env\n"
        "class D(Dataset):\n    def __init__(self):\n        self.env = open_env('x')\n"
    )
    (tmp_path / "data.py").write_text(model)
    index = ProjectIndex(tmp_path)
    index.scan([tmp_path / "io_utils.py", tmp_path / "data.py"])
    found = Analyzer(None, index).analyze(str(tmp_path / "data.py"), model).findings
    assert [(f.code, f.attribute) for f in found] == [("CKPT002", "env")]


@pytest.mark.parametrize(
    ("prelude", "base"),
    [
        ("from torch import nn\nBase = nn.Module\n", "Base"),
        ("import torch.utils.data as data\n", "data.Dataset[dict]"),
        (
            "try:\n    import lightning.pytorch as pl\n"
            "except ImportError:\n    import pytorch_lightning as pl\n"
            "LightningModule = pl.LightningModule\n",
            "LightningModule",
        ),
    ],
)
def test_aliased_and_generic_bases(prelude: str, base: str) -> None:
    source = f"import threading\n{prelude}class C({base}):\n{BODY}"
    assert [f.code for f in analyze_text(source)] == ["CKPT005"]


def test_bases_through_compat_module_and_star_import(tmp_path) -> None:
    (tmp_path / "compat.py").write_text("import torch.nn as nn\n_Module = nn.Module\n")
    (tmp_path / "feats.py").write_text(
        "from compat import _Module\n__all__ = ['Front']\nclass Front(_Module):\n    pass\n"
    )
    user = f"import threading\nfrom feats import *\nclass F(Front):\n{BODY}"
    (tmp_path / "user.py").write_text(user)
    index = ProjectIndex(tmp_path)
    index.scan([tmp_path / "compat.py", tmp_path / "feats.py", tmp_path / "user.py"])
    found = Analyzer(None, index).analyze(str(tmp_path / "user.py"), user).findings
    assert [f.class_name for f in found] == ["F"]


@pytest.mark.parametrize(
    ("imports", "base", "in_scope"),
    [
        ("from transformers import BertPreTrainedModel", "BertPreTrainedModel", True),
        ("from transformers import BertForMaskedLM", "BertForMaskedLM", True),
        ("from transformers import PretrainedConfig", "PretrainedConfig", True),
        ("from transformers import TrainerCallback", "TrainerCallback", False),
        ("from transformers import Trainer", "Trainer", False),
        ("from lightning.pytorch.callbacks import ModelCheckpoint", "ModelCheckpoint", True),
        ("from lightning.pytorch.strategies import DDPStrategy", "DDPStrategy", False),
    ],
)
def test_library_names(imports: str, base: str, in_scope: bool) -> None:
    source = f"import threading\n{imports}\nclass C({base}):\n{BODY}"
    assert bool(analyze_text(source)) is in_scope


def test_a_spent_budget_skips_the_file_with_one_line() -> None:
    from ckpt_lsp.analysis.analyzer import Analyzer

    source = "".join(
        f"import threading\nfrom torch import nn\nclass C{i}(nn.Module):\n{BODY}"
        for i in range(300)
    )
    result = Analyzer(None).analyze("big.py", source, budget_s=1e-9)
    assert result.findings == []
    assert result.error is not None and result.error.message.startswith("skipped: too slow")
    assert len(Analyzer(None).analyze("big.py", source).findings) == 300
