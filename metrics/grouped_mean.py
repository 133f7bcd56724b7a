"""A mean per group (e.g. accuracy per question type) as one torchmetrics Metric, updated without a host sync."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric


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
