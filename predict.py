"""Run a checkpoint written by train.py on your own inputs: prediction + attention figure for each.

    python predict.py ckpt_path=<run>/checkpoints/last.ckpt input=photo.jpg           # captioning / stn
    python predict.py ckpt_path=... input=photos/                                    # a folder, batched
    python predict.py ckpt_path=... input=clip.mp4                                   # video (or a frame folder)
    python predict.py ckpt_path=... input=scene.png question="what shape is the red object"
    python predict.py ckpt_path=... input="three hundred and twelve"                 # or input=lines.txt

Everything is in configs/predict.yaml; results go to outputs/predict/<time>/predictions.jsonl and figures/.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from suite.checkpoints import CheckpointError
from suite.predict import run_prediction
from tasks.prediction.inputs import InputError

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        records = run_prediction(cfg)
    except (CheckpointError, InputError) as error:
        raise SystemExit(f"predict.py: {error}") from None
    for record in records[: int(cfg.show)]:
        log.info(" | ".join(f"{key}: {value}" for key, value in record.items() if key != "figure"))


if __name__ == "__main__":
    main()
