"""``ckpt_path=last``: resume the newest ``last.ckpt`` among this task's runs, in the same W&B run.

Runs of a task live in ``outputs/<task>/<time>/`` (configs/hydra/default.yaml); the resumed run gets a directory of
its own there, so the next ``ckpt_path=last`` finds its checkpoints in turn. The W&B run id travels in every
checkpoint (``suite.checkpoints.ConfigInCheckpoint``), so the resumed run logs into the run it continues.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from suite.checkpoints import CheckpointError, read_suite_entry

LAST = "last"


def newest_last_checkpoint(runs: Path, exclude: Path) -> Path:
    """The most recently written ``<run>/checkpoints/last.ckpt`` under ``runs``, other than ``exclude``'s."""
    found = [path for path in runs.glob("*/checkpoints/last.ckpt") if path.parents[1] != exclude]
    if not found:
        raise CheckpointError(f"ckpt_path=last: no earlier run under {runs} has a checkpoints/last.ckpt to resume; "
                              f"give the checkpoint's path as ckpt_path=<file>")
    return max(found, key=lambda path: path.stat().st_mtime)


def check_resume_checkpoint(cfg: DictConfig) -> None:
    """A ``ckpt_path`` to train on from must be a readable checkpoint of this version and of this task: a
    CheckpointError naming the file and what is wrong, not a traceback from inside torch or the model."""
    if not cfg.get("ckpt_path"):
        return
    entry = read_suite_entry(cfg.ckpt_path)
    if entry.get("task") and entry["task"] != cfg.get("task_name"):
        raise CheckpointError(f"{cfg.ckpt_path} is a {entry['task']} checkpoint ({entry['model_class']}); it cannot "
                              f"resume task={cfg.task_name}: drop ckpt_path or pick that task")


def resolve_last_checkpoint(cfg: DictConfig) -> str | None:
    """With ``ckpt_path=last``: put the newest checkpoint's path in ``cfg.ckpt_path`` and its W&B run id in the W&B
    logger's config (resume="allow"), in place; -> what to tell the user, or None when there is nothing to do."""
    if cfg.get("ckpt_path") != LAST:
        return None
    here = Path(cfg.paths.output_dir)
    path = newest_last_checkpoint(here.parent, here)
    entry = read_suite_entry(path)
    if entry.get("task") and entry["task"] != cfg.get("task_name"):
        raise CheckpointError(f"ckpt_path=last found {path}, a {entry['task']} checkpoint, for task={cfg.task_name}")
    with open_dict(cfg):
        cfg.ckpt_path = str(path)
        wandb = (cfg.get("logger") or {}).get("wandb")
        if wandb is not None and entry.get("wandb_run_id"):
            OmegaConf.update(cfg, "logger.wandb.id", entry["wandb_run_id"], force_add=True)
            OmegaConf.update(cfg, "logger.wandb.resume", "allow", force_add=True)
    run = f", continuing W&B run {entry['wandb_run_id']}" if entry.get("wandb_run_id") else ""
    return f"ckpt_path=last: resuming {path}{run}"
