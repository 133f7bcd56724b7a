"""Evaluate a checkpoint written by train.py on its own task and data, and print / log the task's metrics.

    python eval.py ckpt_path=outputs/captioning/<run>/checkpoints/last.ckpt
    python eval.py ckpt_path=... split=val logger=csv           # the validation split, CSV instead of W&B
    python eval.py ckpt_path=... data.root=/data/flickr8k model.beam_size=5 trainer=gpu

The model and data come from the config saved inside the checkpoint; ``data.*`` / ``model.*`` on the command line
change them. Writes metrics.json into the run directory (outputs/eval/...).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from suite.checkpoints import CheckpointError
from suite.evaluation import task_argument_for
from suite.run import run

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
def main(cfg: DictConfig) -> dict[str, float]:
    try:
        metrics = {key: value for key, value in run(cfg).items() if key.startswith(("val/", "test/"))}
    except CheckpointError as error:
        raise SystemExit(f"eval.py: {error}") from None
    path = Path(cfg.paths.output_dir) / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    log.info(f"metrics written to {path}")
    return metrics


if __name__ == "__main__":
    try:
        sys.argv = [sys.argv[0], *task_argument_for(sys.argv[1:])]
    except CheckpointError as error:
        sys.exit(f"eval.py: {error}")
    main()
