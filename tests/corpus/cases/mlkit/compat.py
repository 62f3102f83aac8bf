"""Version compatibility shims."""

try:  # Lightning 2.x
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - old installs
    import pytorch_lightning as pl

import torch.nn as nn

LightningModule = pl.LightningModule
Callback = pl.Callback

# Older code subclasses these names.
_Module = nn.Module
