"""Epoch-aware distributed sampling, so map-style datasets can resample per epoch deterministically.

:class:`EpochSeededSampler` yields ``epoch * len(dataset) + i`` instead of ``i``; a dataset decodes
that with :func:`split_index` and seeds its randomness by ``(seed, epoch, i)``. The index travels
with each sample request, so this works inside persistent DataLoader worker processes, whose copy
of the dataset never sees ``set_epoch``.

Lightning and this sampler: because it is a ``DistributedSampler`` subclass, Lightning's
``use_distributed_sampler`` logic leaves it in place (it only injects a sampler when the loader's
sampler is not already a ``DistributedSampler``), and the fit and evaluation loops call
``sampler.set_epoch(current_epoch)`` before every epoch. So build it with the trainer's world size
and global rank (:func:`make_dataloader` does) and it shards, shuffles and re-seeds exactly as
Lightning's own sampler would.

Resuming mid-epoch: a training loader is a :class:`ResumableDataLoader`, whose state (in every checkpoint) is how
many batches of the epoch training has taken; a run resumed from it skips those batches' indices, so it goes on
with the batch it would have trained next, and the sampler order of the rest of the epoch is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = ["CurriculumSampler", "EpochSeededSampler", "ResumableDataLoader", "SplitLoaders", "Stage", "make_dataloader",
           "split_index"]


def split_index(idx: int, n: int) -> tuple[int, int]:
    """Decode an :class:`EpochSeededSampler` index into ``(epoch, i)`` with ``0 <= i < n``.

    A plain index ``i < n`` (e.g. from a default sampler) decodes to ``(0, i)``.
    """
    if n <= 0:
        raise ValueError(f"split_index: dataset length must be positive, got {n}")
    idx = int(idx)
    if idx < 0:
        raise IndexError(f"split_index: negative index {idx} is not supported")
    return divmod(idx, n)


class EpochSeededSampler(DistributedSampler):
    """``DistributedSampler`` whose indices carry the epoch: yields ``epoch * len(dataset) + i``.

    The ``i`` are exactly what ``DistributedSampler`` yields for the same arguments and epoch:
    a shard of ``ceil(len / num_replicas)`` indices per rank (padded by repetition unless
    ``drop_last``), shuffled by ``seed + epoch`` when ``shuffle``. Works without an initialised
    process group since ``num_replicas`` and ``rank`` are given explicitly.

    Args:
        dataset: a sized map-style dataset whose ``__getitem__`` / ``__getitems__`` decode indices
            with :func:`split_index`.
        num_replicas: number of processes (world size).
        rank: this process's global rank, ``0 <= rank < num_replicas``.
        shuffle: shuffle by ``seed + epoch`` (training); ``False`` for evaluation.
        seed: shuffling seed, identical on all ranks.
        drop_last: drop the tail so every rank gets the same number of indices (else pad).
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.skip_next = 0   # positions the next pass leaves out (a resumed epoch's batches already trained)

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()
        start, self.skip_next = self.skip_next, 0
        return iter(indices[start:])

    def epoch_indices(self) -> list[int]:
        """This rank's indices for the current epoch, in order, each carrying the epoch."""
        offset = self.epoch * len(self.dataset)  # type: ignore[arg-type]
        return [offset + i for i in super().__iter__()]


Stage = tuple[Sequence[int], int]   # (the indices a curriculum stage draws from, how many samples it lasts)


class CurriculumSampler(EpochSeededSampler):
    """:class:`EpochSeededSampler` whose training starts with one or more stages, each drawing from a subset only.

    A curriculum: ``stages`` is a list of ``(indices, count)``; the first ``count`` training samples (over all
    ranks together, so the same whatever the number of processes) come from the first stage's subset (e.g. the
    easy question types), shuffled and repeated as needed, the next stage's ``count`` from its subset, and so
    on, spanning as many epochs as they fill; after them, the plain shuffled dataset. Each epoch keeps its
    length (the stages take the place of its first positions), so progress bars and schedules are unchanged.
    Deterministic by ``seed``, epoch, stage and rank.
    """

    def __init__(self, dataset: Dataset, stages: Sequence[Stage], num_replicas: int = 1, rank: int = 0,
                 seed: int = 0, drop_last: bool = False) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=drop_last)
        self.stages: list[tuple[Tensor, int]] = []
        for number, (indices, count) in enumerate(stages, start=1):
            if not isinstance(count, int) or count < 0:
                raise ValueError(f"curriculum stage {number}: the number of samples must be a count >= 0, "
                                 f"got {count!r}")
            if count and not len(indices):
                raise ValueError(f"curriculum stage {number}: no sample of the stage's subset in this dataset")
            self.stages.append((torch.as_tensor(list(indices), dtype=torch.long), count))   # [S], count

    def epoch_indices(self) -> list[int]:
        indices = super().epoch_indices()
        length = len(indices)
        epoch_start = self.epoch * length                          # this epoch's first position on this rank
        offset = self.epoch * len(self.dataset)  # type: ignore[arg-type]  # the epoch, as EpochSeededSampler encodes it
        drawn: list[Tensor] = []
        stage_start = 0                                            # the stage's first position on this rank
        for number, (subset, count) in enumerate(self.stages):
            share = -(-count // self.num_replicas)                 # this rank's share of the stage
            first, last = max(stage_start, epoch_start), min(stage_start + share, epoch_start + length)
            stage_start += share
            if last <= first:
                continue
            here = last - first
            generator = torch.Generator().manual_seed(
                self.seed + 7919 * (self.rank + 1) + 104729 * self.epoch + 1299709 * number)
            rounds = -(-here // len(subset))
            order = torch.cat([torch.randperm(len(subset), generator=generator) for _ in range(rounds)])
            drawn.append(subset[order[:here]] + offset)
        if not drawn:
            return indices
        prefix = torch.cat(drawn)                                  # [P] this epoch's curriculum positions
        return prefix.tolist() + indices[len(prefix):]


def resolve_num_workers(num_workers: int | str, trainer: Any = None) -> int:
    """An explicit count stays; "auto" picks what keeps the accelerator fed.

    On GPUs: the CPU cores shared out between the processes of this node (at most 8 per process). On the
    CPU: 0, since the model's own math already uses every core and worker processes would only compete
    with it (benchmarks/results/stn.md).
    """
    if num_workers != "auto":
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"data.num_workers={num_workers!r}: expected a count >= 0 or 'auto'")
        return num_workers
    accelerator = type(getattr(trainer, "accelerator", None)).__name__.lower()
    if "cuda" not in accelerator and "mps" not in accelerator:
        return 0
    processes_here = max(int(getattr(trainer, "num_devices", 1)), 1)
    return max(1, min(8, (os.cpu_count() or 2) // processes_here - 1))


def make_dataloader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int | str,
    trainer: Any = None,
    drop_last: bool = False,
    collate_fn: Callable | None = None,
    curriculum: Sequence[Stage] | None = None,
) -> DataLoader:
    """Build a DataLoader over ``dataset`` with an :class:`EpochSeededSampler`.

    Args:
        dataset: map-style dataset decoding indices with :func:`split_index`.
        batch_size: per-process batch size.
        shuffle: ``True`` for training, ``False`` for val/test/predict.
        seed: sampler seed (same on every rank).
        num_workers: DataLoader worker processes (persistent when > 0), or "auto": see
            :func:`resolve_num_workers`.
        trainer: the Lightning ``Trainer`` (``datamodule.trainer``); its ``world_size`` and
            ``global_rank`` shard the data. ``None`` -> one process, rank 0.
        drop_last: drop the incomplete last batch (and the uneven tail across ranks).
        collate_fn: optional DataLoader collate function.
        curriculum: stages [(indices, count), ...] for training: the first ``count`` samples come from the first
            stage's ``indices`` only, then the next stage's (:class:`CurriculumSampler`); None: no curriculum.
    """
    num_workers = resolve_num_workers(num_workers, trainer)
    world_size = int(getattr(trainer, "world_size", 1)) if trainer is not None else 1
    rank = int(getattr(trainer, "global_rank", 0)) if trainer is not None else 0
    if curriculum is not None and shuffle:
        sampler: EpochSeededSampler = CurriculumSampler(dataset, curriculum, num_replicas=world_size, rank=rank,
                                                        seed=seed, drop_last=drop_last)
    else:
        sampler = EpochSeededSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
    return (ResumableDataLoader if shuffle else DataLoader)(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        collate_fn=collate_fn,
        # its own generator: creating an iterator then draws nothing from torch's global one, so a resumed run's
        # dropout and sampling draw exactly what the uninterrupted run's did
        generator=torch.Generator().manual_seed(seed),
        **({"trainer": trainer} if shuffle else {}),
    )


class ResumableDataLoader(DataLoader):
    """A training DataLoader that Lightning resumes mid-epoch (``state_dict`` / ``load_state_dict``).

    Its state is the number of batches of the current epoch that training has taken; after loading it, the next
    pass skips their sampler positions (without loading them). The count comes from the trainer's epoch loop, not
    from this loader's iterator, which runs a batch ahead (Lightning prefetches one).
    """

    def __init__(self, *args: Any, trainer: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trainer = trainer

    def state_dict(self) -> dict[str, int]:
        done = 0
        if self.trainer is not None and getattr(self.trainer, "fit_loop", None) is not None:
            done = int(self.trainer.fit_loop.epoch_loop.batch_progress.current.processed)
            if done >= self.trainer.num_training_batches:   # the epoch is over: the next one starts afresh
                done = 0
        return {"epoch_batches_done": done}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.sampler.skip_next = int(state_dict.get("epoch_batches_done", 0)) * self.batch_size


# the splits each Lightning stage reads
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


class SplitLoaders:
    """Lightning's setup and four dataloader hooks for a DataModule that defines ``_prepare(split)`` (build the
    split's data once) and ``_loader(split, shuffle)``: a stage prepares only the splits it reads, training
    shuffles, evaluation does not, and predict runs on the test split."""

    def _prepare(self, split: str) -> object:
        raise NotImplementedError

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        """Prepare the splits ``stage`` reads (every split when it is None)."""
        for split in STAGE_SPLITS.get(stage, ("train", "val", "test")):
            self._prepare(split)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Predicts on the test split."""
        return self._loader("test", shuffle=False)
