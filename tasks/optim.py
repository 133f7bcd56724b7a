"""Optimiser and schedule shared by the tasks: AdamW with a one-cycle schedule (linear warm-up, cosine decay)."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch


def one_cycle_factor(step: int, total_steps: int, warmup_steps: int, start: float = 0.04,
                     end: float = 1e-3) -> float:
    """Multiplier of the peak rate at `step`: start -> 1 linearly over warm-up, then cosine 1 -> end."""
    if step < warmup_steps:
        return start + (1.0 - start) * step / warmup_steps
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def adamw_one_cycle(module: pl.LightningModule, param_groups: list[dict[str, Any]], *, lr: float,
                    weight_decay: float, warmup_fraction: float) -> dict[str, Any]:
    """AdamW over ``param_groups`` (each may carry an ``lr_scale``) with the one-cycle factor stepped per batch.

    The peak rate of a group is ``lr * lr_scale``; the schedule spans the whole fit
    (``trainer.estimated_stepping_batches``), so changing max_epochs rescales it.
    """
    groups = [{"params": g["params"], "lr": lr * g.get("lr_scale", 1.0)} for g in param_groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    total_steps = max(int(module.trainer.estimated_stepping_batches), 1)
    warmup_steps = int(warmup_fraction * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: one_cycle_factor(step, total_steps, warmup_steps)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
