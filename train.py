"""Train, validate, then test any task of the suite.

    python train.py task=stn
    python train.py task=stn model.arch=cnn trainer=ddp trainer.devices=4
    python train.py -m task=stn model.arch=cnn,st_cnn        # a sweep: one run directory and W&B run per job

Everything is a Hydra override of configs/train.yaml; see README.md.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from suite.checkpoints import CheckpointError
from suite.run import run


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = run(cfg)
    except CheckpointError as error:
        raise SystemExit(f"train.py: {error}") from None
    # returned for Hydra sweepers (e.g. Optuna): the task's monitored metric
    return metrics.get(cfg.monitor.metric)


if __name__ == "__main__":
    main()
