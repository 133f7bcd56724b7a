"""What train.py does with a composed config: build data, model, trainer and loggers, fit, then test.

Nothing here knows a task by name: a task is a `model:` and a `data:` config with `_target_`s.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from suite.checkpoints import ConfigInCheckpoint
from suite.compiled_decoding import compile_decoding
from suite.evaluation import adopt_vocabularies, evaluated_split, with_checkpoint_task
from suite.precision import log_resolution, resolve_precision
from suite.resume import check_resume_checkpoint, resolve_last_checkpoint
from suite.wandb_setup import choose_wandb_mode

log = logging.getLogger(__name__)


@rank_zero_only
def say(message: str) -> None:
    """Log on rank zero only (DDP workers stay quiet)."""
    log.info(message)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry with a `_target_` in a config group (callbacks, loggers)."""
    if not group:
        return []
    return [hydra.utils.instantiate(node) for node in group.values() if node and "_target_" in node]


def datamodule_provided_kwargs(model_cfg: DictConfig, datamodule: pl.LightningDataModule) -> dict[str, Any]:
    """Model arguments left `???` in the config, read from the datamodule's attribute of the same name.

    This is how a model learns what only the data knows (image size, number of classes, vocabulary size)
    without train.py knowing any task.
    """
    missing = [key for key in model_cfg if OmegaConf.is_missing(model_cfg, key)]
    unfilled = [key for key in missing if not hasattr(datamodule, key)]
    if unfilled:
        raise ValueError(
            f"model config leaves {unfilled} unset (???) and {type(datamodule).__name__} has no attribute of "
            f"that name; set it on the command line, e.g. model.{unfilled[0]}=..."
        )
    return {key: getattr(datamodule, key) for key in missing}


def build_model(model_cfg: DictConfig, provided: dict[str, Any]) -> pl.LightningModule:
    """The task's LightningModule from its ``model:`` config, with ``provided`` for the arguments left ``???``.

    Sub-configs (``model.encoder``) reach the task as plain dicts, not as built modules: the task builds them, so
    that its saved hyperparameters rebuild the same model from a checkpoint.
    """
    return hydra.utils.instantiate(model_cfg, **provided, _convert_="all", _recursive_=False)


def log_run_facts(cfg: DictConfig, model: pl.LightningModule, loggers: list[Logger]) -> None:
    """Hyperparameters (the whole resolved config) and parameter counts, to every logger."""
    params = {
        "params/total": sum(p.numel() for p in model.parameters()),
        "params/trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams({"config": resolved, **params})
    say(f"model {type(model).__name__}: {params['params/total']:,} parameters "
        f"({params['params/trainable']:,} trainable)")


def saved_checkpoints(trainer: pl.Trainer) -> tuple[str, str]:
    """(best, last) checkpoint paths of the fit just done ("" when none was saved).

    Read right after fitting: testing a checkpoint restores the callback's state as it was when that
    checkpoint was written, which can predate last.ckpt.
    """
    checkpoint = trainer.checkpoint_callback
    if checkpoint is None:
        return "", ""
    return getattr(checkpoint, "best_model_path", ""), getattr(checkpoint, "last_model_path", "")


@rank_zero_only
def report_locations(cfg: DictConfig, trainer: pl.Trainer, checkpoints: tuple[str, str]) -> None:
    """Tell the user where the run directory, checkpoints and W&B run are."""
    say(f"run directory: {cfg.paths.output_dir}")
    best, last = checkpoints
    if best or last:
        say(f"checkpoints: best {best or '-'} | last {last or '-'}")
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            if os.environ.get("WANDB_MODE") == "offline":
                say(f"W&B run (offline): {os.path.dirname(run.dir)} -- upload it with: "
                    f"wandb sync {os.path.dirname(run.dir)}")
            elif getattr(run, "url", None):
                say(f"W&B run: {run.url}")


def finish_wandb() -> None:
    """Close the W&B run so that the next job of a multirun sweep starts its own."""
    try:
        import wandb
    except ImportError:  # a run without the W&B logger on a machine without wandb
        return
    if wandb.run is not None:
        wandb.finish()


def resolve_trainer_precision(cfg: DictConfig) -> None:
    """Replace ``trainer.precision=auto`` by what this machine runs fast (suite.precision), in place, so the
    checkpoint's config and the logged hyperparameters hold the precision the run really used."""
    resolution = resolve_precision(cfg.trainer.get("precision", "32-true"), cfg.trainer.get("accelerator", "auto"))
    rank_zero_only(log_resolution)(resolution, log)
    OmegaConf.update(cfg, "trainer.precision", resolution.precision, force_add=True)


def run(cfg: DictConfig) -> dict[str, float]:
    """Fit and/or test as the config says; return the last fit metrics and the test metrics as floats.

    With ``train=false ckpt_path=X`` (eval.py) the model and data are the checkpoint's own (its saved config), with
    the command line's ``data.*`` / ``model.*`` overrides applied on top.
    """
    vocabularies = {}
    if not cfg.get("train", True) and cfg.get("ckpt_path"):
        cfg, vocabularies = with_checkpoint_task(cfg)
    if cfg.get("train", True):
        if resuming := resolve_last_checkpoint(cfg):
            say(resuming)
        check_resume_checkpoint(cfg)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    resolve_trainer_precision(cfg)
    if any(isinstance(node, DictConfig) and "WandbLogger" in str(node.get("_target_", ""))
           for node in (cfg.get("logger") or {}).values()):
        mode, decided_here = choose_wandb_mode()
        if decided_here and mode == "offline":
            say("W&B: no credentials found (WANDB_API_KEY or `wandb login`), logging offline into the run "
                "directory; nothing is uploaded and nothing is asked.")

    # _convert_="all": plain lists/dicts in hyperparameters, so checkpoints load with weights_only=True
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="all")
    adopt_vocabularies(datamodule, vocabularies)  # evaluating a checkpoint: its tokenisers, not rebuilt ones
    model = build_model(cfg.model, datamodule_provided_kwargs(cfg.model, datamodule))
    callbacks = [*instantiate_group(cfg.get("callbacks")), ConfigInCheckpoint(cfg)]
    loggers = instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    log_run_facts(cfg, model, loggers)

    # dynamic=False: one graph per input shape (a smaller last batch is a second graph); symbolic shapes broke
    # F.affine_grid under inductor on CUDA ("SymIntArrayRef expected to contain only concrete integers")
    fit_model = torch.compile(model, dynamic=False) if cfg.get("compile") else model
    if cfg.get("compile_decoding"):
        say(compile_decoding(model))
    metrics: dict[str, float] = {}
    checkpoints = ("", "")
    if cfg.get("train", True):
        trainer.fit(fit_model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics.update(_as_floats(trainer.callback_metrics))
        checkpoints = saved_checkpoints(trainer)
    if cfg.get("test", True):
        test_checkpoint = _checkpoint_to_test(cfg, checkpoints[0])
        evaluate = trainer.validate if evaluated_split(cfg) == "val" else trainer.test
        evaluate(fit_model, datamodule=datamodule, ckpt_path=test_checkpoint)
        metrics.update(_as_floats(trainer.callback_metrics))

    report_locations(cfg, trainer, checkpoints)
    finish_wandb()
    return metrics


def _checkpoint_to_test(cfg: DictConfig, best: str) -> str | None:
    """The best checkpoint after fitting; the given ckpt_path with train=false; else the current weights."""
    if not cfg.get("train", True):
        return cfg.get("ckpt_path")
    if best:
        say(f"testing the best checkpoint: {best}")
        return best
    say("no checkpoint was saved (fast_dev_run or checkpointing off): testing the current weights")
    return None


def _as_floats(values: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in values.items()}
