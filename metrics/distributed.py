"""Computing torchmetrics metrics at an epoch's end, the same way on every DDP rank.

``Metric.compute()`` syncs the metric's states across processes: it is a collective, so every rank must make
the same ``compute()`` calls in the same order. A metric that only some batches update (per question kind, or
only where the data has boxes) may have been updated on one rank and not on another (the distributed sampler
deals Sort-of-CLEVR's alternating non-relational / relational questions to alternate ranks); deciding from the
local ``update_count`` then makes the ranks' syncs pair up wrongly. Decide from the count summed over ranks.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytorch_lightning as pl
import torch
from torchmetrics import Metric


def updated_on_any_rank(module: pl.LightningModule, metric: Metric) -> bool:
    """Whether ``metric`` was updated on any process (the same answer on every rank)."""
    count = torch.tensor(float(metric.update_count), device=module.device)
    if module.trainer.world_size > 1:
        count = module.trainer.strategy.reduce(count, reduce_op="sum")
    return bool(count > 0)


def compute_quietly(metric: Metric) -> Any:
    """``metric.compute()`` without torchmetrics' warning on a rank that saw no update (its empty states still
    join the sync, so the result covers every rank)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*called before the ``update`` method.*")
        return metric.compute()
