"""One metric (or module of metrics) per data split, looked up by the split's name."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

EVAL_SPLITS = ("val", "test")
ALL_SPLITS = ("train", "val", "test")


class PerSplit(nn.ModuleDict):
    """``PerSplit(MeanMetric)["val"]`` is the validation split's own metric, so splits never share states.

    Stored under ``"<split>_"``: a ModuleDict key ``"train"`` would shadow ``nn.Module.train``.
    """

    def __init__(self, make: Callable[[], nn.Module], splits: Sequence[str] = EVAL_SPLITS) -> None:
        super().__init__({f"{split}_": make() for split in splits})

    def __getitem__(self, split: str) -> nn.Module:
        return super().__getitem__(f"{split}_")
