"""Callbacks that every task gets through configs/callbacks/default.yaml."""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


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
