"""A checkpoint that can be used alone: the task, the model class and the composed config travel inside it.

train.py adds :class:`ConfigInCheckpoint` to every run, so each ``.ckpt`` carries, next to the weights and the
tokenisers (``text.checkpointing``), an ``attention_suite`` entry::

    {"format": 2, "task": "captioning", "model_class": "tasks.captioning.ImageCaptioner", "config": {...}}

:func:`load_checkpoint` rebuilds the model from that alone (predict.py, eval.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger

from text.vocabulary import Vocabulary

SUITE_KEY = "attention_suite"
FORMAT = 2   # 2: tasks take their image encoder as a config node (model.encoder) and no Python defaults


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or lacks what the suite needs; the message names the file."""


class ConfigInCheckpoint(pl.Callback):
    """Store the task name, the model class and the resolved run config in every checkpoint."""

    def __init__(self, config: DictConfig) -> None:
        self.entry = {
            "format": FORMAT,
            "task": str(config.get("task_name") or ""),
            "model_class": str(config.model._target_),
            # plain containers only, so the checkpoint still loads with torch.load(weights_only=True)
            "config": OmegaConf.to_container(config, resolve=True),
        }

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        wandb_runs = [logger.version for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        # the W&B run id, so that ckpt_path=last continues the same W&B run (suite.resume)
        checkpoint[SUITE_KEY] = {**self.entry, **({"wandb_run_id": wandb_runs[0]} if wandb_runs else {})}


@dataclass
class LoadedCheckpoint:
    """A model rebuilt from a checkpoint (eval mode, on the CPU), with what the run knew."""

    path: Path
    task: str
    model_class: str
    model: pl.LightningModule
    config: DictConfig

    def describe(self) -> str:
        """E.g. "a captioning checkpoint (tasks.captioning.ImageCaptioner)"."""
        return f"a {self.task} checkpoint ({self.model_class})"


def read_suite_entry(path: str | Path) -> dict[str, Any]:
    """The ``attention_suite`` entry of a checkpoint file; CheckpointError when the file or the entry is missing."""
    return _load_with_entry(path)[0]


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Vocabulary]]:
    """(the ``attention_suite`` entry, the tokenisers saved in it by name) of a checkpoint file.

    Raises:
        CheckpointError: the file is missing, is not a Lightning checkpoint, or has no suite entry.
    """
    entry, checkpoint = _load_with_entry(path)
    vocabularies = {name: Vocabulary.from_json(value) for name, value in checkpoint.items()
                    if name.endswith("vocabulary") and isinstance(value, str)}
    return entry, vocabularies


def _load_with_entry(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the suite entry, the whole checkpoint dict), or CheckpointError (see ``read_checkpoint``).

    The file is memory-mapped: the entry and the tokenisers are read without reading the weights, which the model
    loads once, by itself (eval.py and predict.py read a checkpoint's entry before loading its model)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(f"cannot read checkpoint {path}: {type(error).__name__}: {error}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict)")
    entry = checkpoint.get(SUITE_KEY)
    if not isinstance(entry, dict) or not entry.get("model_class"):
        raise CheckpointError(
            f"{path} has no '{SUITE_KEY}' entry: it was written by an older version of the suite or not by "
            f"train.py, so its task, model class and config are unknown; retrain it with this version")
    if entry.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a checkpoint of format {entry.get('format')}, written by another version of the suite; this "
            f"version reads format {FORMAT} (its task configs changed shape), so the model cannot be rebuilt from "
            f"it: retrain it with this version, or use the version that wrote it")
    return entry, checkpoint


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Rebuild the model of a checkpoint written by train.py (weights, hyperparameters and tokenisers)."""
    path = Path(path)
    entry = read_suite_entry(path)
    try:
        model_class = hydra.utils.get_class(entry["model_class"])
    except Exception as error:  # noqa: BLE001
        raise CheckpointError(f"{path}: model class {entry['model_class']!r} cannot be imported: {error}") from error
    try:
        model = model_class.load_from_checkpoint(path, map_location="cpu")
    except KeyError as error:  # text.checkpointing: no tokeniser in the checkpoint
        raise CheckpointError(f"{path}: {error.args[0] if error.args else error}") from error
    model.eval()
    return LoadedCheckpoint(path, entry.get("task") or "", entry["model_class"], model,
                            OmegaConf.create(entry.get("config") or {}))
