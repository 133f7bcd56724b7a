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


class GroupedMean(Metric):
    """The mean of a value per group (e.g. accuracy per question type), updated without a host sync.

    ``update(values [B], groups [B] long in [0, G))`` adds each value to its group with ``index_add_`` (no
    boolean indexing, no ``.any()`` per group), so a training step never waits on the device for it.
    ``compute()`` -> ``(means [G], counts [G])``; a group with no value has count 0 and mean NaN. Under DDP the
    sums and counts are added over ranks.
    """

    full_state_update = False

    def __init__(self, num_groups: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_groups < 1:
            raise ValueError(f"GroupedMean needs at least one group, got num_groups={num_groups}")
        self.num_groups = num_groups
        self.add_state("total", torch.zeros(num_groups), dist_reduce_fx="sum")        # [G]
        self.add_state("count", torch.zeros(num_groups), dist_reduce_fx="sum")        # [G]

    def update(self, values: torch.Tensor, groups: torch.Tensor) -> None:
        """values [B] (float), groups [B] (long group ids)."""
        if values.shape != groups.shape or values.dim() != 1:
            raise ValueError(f"GroupedMean.update expects values [B] and groups [B], got {tuple(values.shape)} "
                             f"and {tuple(groups.shape)}")
        self.total.index_add_(0, groups, values.to(self.total.dtype))
        self.count.index_add_(0, groups, torch.ones_like(values, dtype=self.count.dtype))

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.total / self.count, self.count
