"""A task's datamodule and model built from the composed Hydra config outside train.py (tests, benchmarks,
notebooks), the way train.py builds them, with code-level overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from suite.run import build_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def composed(*overrides: str) -> DictConfig:
    """configs/train.yaml composed with Hydra ``overrides`` ("task=vqa", "model/encoder=resnet", ...), without a
    run directory."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def task_datamodule(task: str, *overrides: str, **data_args: Any) -> pl.LightningDataModule:
    """The ``task``'s datamodule from ``configs/task/<task>.yaml`` (+ Hydra ``overrides``), with ``data_args`` set on
    its ``data:`` node (a dict replaces the config's: ``num_images={"train": 40, "val": 6, "test": 4}``)."""
    cfg = composed(f"task={task}", *overrides)
    for key, value in data_args.items():
        OmegaConf.update(cfg.data, key, value, merge=False, force_add=True)
    return _raising_the_cause(lambda: hydra.utils.instantiate(cfg.data, _convert_="all"))


def task_model(task: str, provided: dict[str, Any], *overrides: str, **model_args: Any) -> pl.LightningModule:
    """The ``task``'s model from ``configs/task/<task>.yaml`` (+ Hydra ``overrides``), with ``model_args`` set on its
    ``model:`` node (dicts merge into sub-configs: ``encoder={"channels": [8]}``) and ``provided`` standing in for
    what the datamodule gives (the ``???`` arguments). An argument the config does not have is a KeyError, so code
    cannot set an option the task no longer reads."""
    cfg = composed(f"task={task}", *overrides)
    for key, value in model_args.items():
        if key not in cfg.model:
            raise KeyError(f"configs/task/{task}.yaml has no model.{key}")
        OmegaConf.update(cfg.model, key, value, merge=True)
    return _raising_the_cause(lambda: build_model(cfg.model, provided))


def _raising_the_cause(build: Any) -> Any:
    """``build()``, re-raising the target's own exception (a ValueError naming the option) instead of Hydra's
    wrapper around it."""
    try:
        return build()
    except InstantiationException as error:
        raise (error.__cause__ or error) from None
