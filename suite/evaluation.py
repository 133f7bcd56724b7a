"""Evaluate a checkpoint on its own task and data (eval.py, or train.py with train=false ckpt_path=...).

The checkpoint's saved config (suite.checkpoints) gives the model and the data; the command line's ``data.*`` and
``model.*`` overrides go on top (e.g. another ``data.root``, a larger ``model.beam_size``), so
``python eval.py ckpt_path=...`` needs nothing else.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from suite.checkpoints import CheckpointError, read_checkpoint, read_suite_entry
from text.vocabulary import Vocabulary

SPLITS = ("val", "test")
TASK_SECTIONS = ("model", "data", "monitor")


def evaluated_split(cfg: DictConfig) -> str:
    """The split that train=false / eval.py scores: ``split=val|test`` (test by default)."""
    split = cfg.get("split") or "test"
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not a split to evaluate; choose one of {list(SPLITS)}")
    return split


def command_line_overrides() -> list[str]:
    """The overrides the user typed (Hydra's task overrides); [] outside a Hydra run."""
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def _key_and_value(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def asked_task(overrides: Sequence[str]) -> str | None:
    """The ``task=...`` the user gave, if any."""
    tasks = [value for key, value in map(_key_and_value, overrides) if key == "task"]
    return tasks[-1] if tasks else None


def with_checkpoint_task(cfg: DictConfig) -> tuple[DictConfig, dict[str, Vocabulary]]:
    """(cfg with the checkpoint's model, data, monitor and task name, the user's overrides of those re-applied;
    the checkpoint's tokenisers, which the datamodule should use: see ``adopt_vocabularies``).

    Raises:
        CheckpointError: the checkpoint is missing or has no saved config, or ``task=`` names another task.
    """
    entry, vocabularies = read_checkpoint(cfg.ckpt_path)
    overrides = command_line_overrides()
    task = asked_task(overrides)
    if task and entry.get("task") and task != entry["task"]:
        raise CheckpointError(
            f"task={task} was asked, but {cfg.ckpt_path} is a {entry['task']} checkpoint ({entry['model_class']}); "
            f"leave task= out to evaluate it on its own task")
    saved = OmegaConf.create(entry["config"])
    merged = copy.deepcopy(cfg)
    with open_dict(merged):
        for section in TASK_SECTIONS:
            if section in saved:
                merged[section] = saved[section]
        merged.task_name = entry.get("task") or saved.get("task_name")
        for key, value in map(_key_and_value, overrides):
            if key.split(".")[0] in TASK_SECTIONS and "." in key:
                parsed = OmegaConf.select(OmegaConf.from_dotlist([f"{key}={value}"]), key)
                OmegaConf.update(merged, key, parsed, merge=False, force_add=True)
    return merged, vocabularies


def adopt_vocabularies(datamodule: object, vocabularies: dict[str, Vocabulary]) -> None:
    """Make the datamodule encode text with the checkpoint's tokenisers instead of building its own from the
    data (which, on other data than the run's, would give other ids than the model was trained with)."""
    adopt = getattr(datamodule, "adopt_vocabularies", None)
    if vocabularies and adopt is not None:
        adopt(vocabularies)


def task_argument_for(argv: Sequence[str]) -> list[str]:
    """eval.py's command line with ``task=<the checkpoint's task>`` added when ``ckpt_path=`` is given without
    ``task=``, so that Hydra checks ``data.*`` / ``model.*`` overrides against the right task's config."""
    arguments = list(argv)
    paths = [value for key, value in map(_key_and_value, arguments) if key == "ckpt_path"]
    if not paths or asked_task(arguments):
        return arguments
    entry = read_suite_entry(paths[-1])
    if not entry.get("task"):
        raise CheckpointError(f"{paths[-1]} does not say its task; add task=<name> to the command")
    return [*arguments, f"task={entry['task']}"]
