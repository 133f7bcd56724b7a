"""What every task of the suite shares: the optimiser, tokenisers in checkpoints, and one validation figure.

A task subclasses :class:`Task` and supplies:

    parameter_groups()          the optimiser's groups (default: every trainable parameter at the peak rate)
    log_split_end(split)        log what the split's epoch measured (val, test)
    log_figures(sample)         draw what ``keep_figure_sample`` kept of the first validation batch
    vocabulary_names            the attributes holding tokenisers that checkpoints carry
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from tasks.optim import adamw_one_cycle
from text.checkpointing import load_vocabularies, save_vocabularies


class Task(pl.LightningModule):
    """Base LightningModule: AdamW + one-cycle schedule from ``hparams.lr / weight_decay / warmup_fraction``."""

    vocabulary_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self._figure_sample: dict[str, Any] | None = None

    # --- what a task supplies ------------------------------------------------------------------------------

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser groups; a group may carry an ``lr_scale`` relative to ``hparams.lr``."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def log_split_end(self, split: str) -> None:
        """Log the epoch's metrics of ``split`` ("val" or "test")."""

    def log_figures(self, sample: dict[str, Any]) -> None:
        """Draw the figures of a sample kept by ``keep_figure_sample``."""

    # --- shared --------------------------------------------------------------------------------------------

    def keep_figure_sample(self, sample: dict[str, Any]) -> None:
        """Keep a validation batch's figure inputs (CPU tensors) until the epoch ends."""
        self._figure_sample = sample

    def on_validation_epoch_end(self) -> None:
        self.log_split_end("val")
        # the sanity check's figure would be of an untrained model, logged at step 0 as if it were a result
        if self._figure_sample is not None and not self.trainer.sanity_checking:
            self.log_figures(self._figure_sample)
        self._figure_sample = None

    def on_test_epoch_end(self) -> None:
        self.log_split_end("test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        save_vocabularies(checkpoint, **{name: getattr(self, name) for name in self.vocabulary_names})

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for name, vocabulary in zip(self.vocabulary_names, load_vocabularies(checkpoint, *self.vocabulary_names),
                                    strict=True):
            setattr(self, name, vocabulary)

    def configure_optimizers(self) -> dict[str, Any]:
        return adamw_one_cycle(self, self.parameter_groups(), lr=self.hparams.lr,
                               weight_decay=self.hparams.weight_decay, warmup_fraction=self.hparams.warmup_fraction)
