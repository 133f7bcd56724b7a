"""A callback for probing the early phase of a run: stop after the validation at or past a global step, with
the learning-rate schedule still sized by ``trainer.max_epochs`` (``trainer.max_steps`` would shrink it).

    python benchmarks/seed_sweep.py --task vqa --seeds 2 42 --config default= --metrics test/acc_shape \\
        test/attention_correctness_hop1 -- +callbacks.stop._target_=benchmarks.stop_at_step.StopAtStep \\
        +callbacks.stop.step=1500 trainer.check_val_every_n_epoch=null trainer.val_check_interval=250

With ``val_check_interval`` dividing ``step`` the run validates at ``step``, stops, and tests its best
checkpoint (by the task's monitored metric), so the sweep's test metrics describe the model at that point.
"""

from __future__ import annotations

import pytorch_lightning as pl


class StopAtStep(pl.Callback):
    """Set ``trainer.should_stop`` at the first validation end with ``global_step >= step``."""

    def __init__(self, step: int) -> None:
        if step < 1:
            raise ValueError(f"StopAtStep: step must be >= 1, got {step}")
        self.step = step

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.global_step >= self.step:
            trainer.should_stop = True
