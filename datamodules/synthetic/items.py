"""What the generated datasets share: item ``i`` of a split is drawn from its own random stream, so it depends
only on ``(seed, split, i)`` and any subset can be generated in any order, in any process."""

from __future__ import annotations

import numpy as np

SPLITS = {"train": 0, "val": 1, "test": 2}


def check_split_count_seed(split: str, count: int, seed: int, count_name: str) -> None:
    """ValueError naming the bad argument: an unknown split, or a negative count or seed."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid choices: {', '.join(SPLITS)}")
    if count < 0 or seed < 0:
        raise ValueError(f"{count_name} and seed must be >= 0; got {count} and {seed}")


def item_rng(seed: int, split: str, i: int, count: int, item_name: str) -> np.random.Generator:
    """The random stream of item ``i`` of ``count`` in ``split``; IndexError outside ``[0, count)``."""
    if not 0 <= i < count:
        raise IndexError(f"index {i} out of range for {count} {item_name}")
    return np.random.default_rng([seed, SPLITS[split], int(i)])
