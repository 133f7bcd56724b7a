"""Callbacks that every task gets through configs/callbacks/default.yaml."""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint


class RngStateCheckpoint(pl.Callback):
    """Store the Python, NumPy and torch random states in every checkpoint and restore them on resume.

    Lightning restores weights, optimizer, scheduler and loop counters; the random state (dropout masks,
    anything drawn from the global generators) is not part of that. With this callback, and data order
    drawn from the epoch-seeded samplers of ``datamodules.sampling``, ``ckpt_path=last.ckpt`` continues a
    run exactly as if it had never stopped.
    """

    def state_dict(self) -> dict[str, Any]:
        # plain ints and tensors only, so that checkpoints load with torch.load(weights_only=True)
        version, python_state, gauss = random.getstate()
        kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
        state = {
            "python": (version, torch.tensor(python_state, dtype=torch.int64), gauss),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        version, python_state, gauss = state_dict["python"]
        random.setstate((version, tuple(int(v) for v in python_state.tolist()), gauss))
        kind, keys, position, has_gauss, cached_gaussian = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class ResumeDataPosition(pl.Callback):
    """A run resumed mid-epoch goes on with the batch the interrupted run would have trained next.

    Lightning hands a resumable training loader (``datamodules.sampling.ResumableDataLoader``) its saved state only
    if it builds the loader after restoring the checkpoint; a schedule sized by ``trainer.estimated_stepping_batches``
    (``tasks.optim``) makes it build the loader earlier, while the optimizers are configured, so the state would be
    dropped. This applies it when training starts and starts the epoch's iteration again from there.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loop = trainer.fit_loop
        if not (loop.restarting and loop._combined_loader_states_to_load and loop._combined_loader is not None):
            return
        for loader in loop._combined_loader.flattened:
            sampler = getattr(loader, "sampler", None)
            if hasattr(sampler, "set_epoch"):  # the iteration below starts before Lightning sets the epoch
                sampler.set_epoch(loop.epoch_progress.current.processed)
        loop._load_combined_loader_states()
        iter(loop._data_fetcher)


def batch_size_of(batch: Any) -> int:
    """Samples in a batch: the leading size of its first tensor (dicts, tuples and lists are searched)."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else []
    for value in values:
        size = batch_size_of(value)
        if size:
            return size
    return 0


class ThroughputMonitor(pl.Callback):
    """Log training throughput per epoch: `perf/train_samples_per_sec` and `perf/epoch_seconds` (all ranks)."""

    def __init__(self) -> None:
        self._start = 0.0
        self._samples = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._samples += batch_size_of(batch)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = max(time.perf_counter() - self._start, 1e-9)
        samples = self._samples * trainer.world_size
        pl_module.log_dict({"perf/epoch_seconds": seconds, "perf/train_samples_per_sec": samples / seconds},
                           on_epoch=True, rank_zero_only=True)


class StepCheckpoint(ModelCheckpoint):
    """Save ``last.ckpt`` every ``every_n_train_steps`` training steps as well (``None``: never), so a run killed
    mid-epoch (a preempted cluster job) resumes from a recent step; with the resumable training loaders of
    ``datamodules.sampling`` and ``RngStateCheckpoint`` it resumes exactly. Epoch-end checkpoints are the
    ``model_checkpoint`` callback's."""

    def __init__(self, dirpath: str, every_n_train_steps: int | None) -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"checkpoint_every_n_steps must be a count >= 1 or null, got {every_n_train_steps}")
        # 0 disables a trigger: no epoch-end saves here, and none at all without a step count;
        # no version counter, so both callbacks write the same last.ckpt (the newer one stays)
        super().__init__(dirpath=dirpath, save_top_k=0, save_last=True, every_n_train_steps=every_n_train_steps or 0,
                         every_n_epochs=0, enable_version_counter=False)
