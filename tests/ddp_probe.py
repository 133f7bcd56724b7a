"""A callback for DDP tests: every rank writes its own parameters when training ends (checkpoints hold rank 0's)."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch


class SaveRankParameters(pl.Callback):
    """``<folder>/rank<r>.pt``: rank r's parameters (named, on the CPU) at the end of training."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        parameters = {name: value.detach().cpu() for name, value in pl_module.named_parameters()}
        torch.save(parameters, self.folder / f"rank{trainer.global_rank}.pt")
