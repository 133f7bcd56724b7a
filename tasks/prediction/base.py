"""The part of predict.py that differs per task: which inputs it takes, how one is loaded and batched, and how the
model's ``predict_step`` output becomes a JSON record and a figure per input."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import pytorch_lightning as pl
from omegaconf import DictConfig
from torch.utils.data import Dataset

from tasks.prediction.inputs import KIND_TEXT, InputError, input_files


class PredictionItems(Dataset):
    """The user's inputs (paths, sentences, records), loaded one by one by ``load`` (in worker processes when
    ``num_workers > 0``)."""

    def __init__(self, items: Sequence[Any], load: Callable[[Any], dict[str, Any]]) -> None:
        self.items, self.load = list(items), load

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.load(self.items[index])


class Predictor:
    """Base of the per-task predictors; subclasses set the class attributes and implement the methods."""

    task = ""                           # what the model does, for messages ("image captioning")
    input_kinds: tuple[str, ...] = ()   # tasks.prediction.inputs kinds it takes
    takes_input = True                  # False: a generator, its items come from options (samples=N)

    def __init__(self, model: pl.LightningModule, data_config: DictConfig, options: DictConfig) -> None:
        """
        Args:
            model: the checkpoint's LightningModule (eval mode).
            data_config: the ``data:`` section the model was trained with (image size, frames per clip, ...).
            options: predict.yaml (question, beam_size, invert, ...).
        """
        self.model, self.data_config, self.options = model, data_config, options

    def accepts(self) -> str:
        """The inputs it takes, in words."""
        return " or ".join(KIND_TEXT[kind] for kind in self.input_kinds)

    def check_kind(self, text: str, kind: str, checkpoint: str) -> None:
        """InputError naming the checkpoint's task and the input's kind when they do not go together."""
        if kind not in self.input_kinds:
            raise InputError(f"{checkpoint} is a {self.task} model, which takes {self.accepts()}; "
                             f"input {text!r} is {KIND_TEXT[kind]}")

    def items(self, text: str, kind: str) -> list[Any]:
        """The inputs to predict on (default: the files of a file or folder input)."""
        return input_files(text, kind)

    def load(self, item: Any) -> dict[str, Any]:
        """One input -> a dict of tensors and its ``name`` (for records and figure files)."""
        raise NotImplementedError

    def collate(self, loaded: list[dict[str, Any]]) -> dict[str, Any]:
        """Loaded inputs -> the batch ``predict_step`` takes."""
        raise NotImplementedError

    def records(self, batch: dict[str, Any], outputs: dict[str, Any]) -> list[dict[str, Any]]:
        """One JSON-able record per input of the batch."""
        raise NotImplementedError

    def figure(self, batch: dict[str, Any], outputs: dict[str, Any], index: int) -> plt.Figure:
        """The attention figure of input ``index`` of the batch."""
        raise NotImplementedError

    def batch_figures(self, batch: dict[str, Any], outputs: dict[str, Any]) -> dict[str, plt.Figure]:
        """Figures of a whole batch, by name (default: none)."""
        return {}
