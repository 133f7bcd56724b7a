"""What predict.py does: load a checkpoint, read the user's input, run the model batched, write what it says.

Outputs, in ``output_dir``: ``predictions.jsonl`` (one JSON object per input) and ``figures/<n>_<name>.png`` (the
attention of each prediction: per-word maps, frame strips, per-hop maps, alignments, before/after the STN).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig
from PIL import Image
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from figures.publish import figure_to_array
from suite.checkpoints import load_checkpoint
from suite.compiled_decoding import compile_decoding
from suite.precision import log_resolution, resolve_precision
from tasks.prediction import predictor_class
from tasks.prediction.base import PredictionItems, Predictor
from tasks.prediction.inputs import InputError, classify

log = logging.getLogger(__name__)


def figure_name(number: int, name: str) -> str:
    """``00012_photo.png``: the input's number and a file-safe version of its name."""
    stem = Path(name.split(":")[0]).stem if ("/" in name or "." in name) else name
    return f"{number:05d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', stem)[:60] or 'input'}.png"


class PredictionWriter(BasePredictionWriter):
    """After every batch: append its records to predictions.jsonl and save the attention figures."""

    def __init__(self, predictor: Predictor, output_dir: Path, max_figures: int) -> None:
        super().__init__(write_interval="batch")
        self.predictor, self.output_dir, self.max_figures = predictor, output_dir, max_figures
        self.records: list[dict[str, Any]] = []
        self.path = output_dir / "predictions.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        records = self.predictor.records(batch, prediction)
        if self.max_figures != 0:
            for name, figure in self.predictor.batch_figures(batch, prediction).items():
                path = self.output_dir / "figures" / f"{name}_{batch_idx:03d}.png"
                path.parent.mkdir(exist_ok=True)
                Image.fromarray(figure_to_array(figure)).save(path)
        for index, record in enumerate(records):
            if self.max_figures < 0 or len(self.records) < self.max_figures:
                path = self.output_dir / "figures" / figure_name(len(self.records), record["input"])
                path.parent.mkdir(exist_ok=True)
                Image.fromarray(figure_to_array(self.predictor.figure(batch, prediction, index))).save(path)
                record["figure"] = str(path)
            self.records.append(record)
        with self.path.open("a", encoding="utf-8") as file:
            for record in records:
                file.write(json.dumps(record, ensure_ascii=False) + "\n")


def run_prediction(cfg: DictConfig) -> list[dict[str, Any]]:
    """Predict on ``cfg.input`` with ``cfg.ckpt_path``; returns the records written to predictions.jsonl.

    Raises:
        suite.checkpoints.CheckpointError: the checkpoint is missing, unreadable, or lacks its config / tokenisers.
        tasks.prediction.inputs.InputError: the input is missing, unreadable, empty, or not what the task takes.
    """
    loaded = load_checkpoint(cfg.ckpt_path)
    model = loaded.model
    if cfg.get("beam_size") and "beam_size" in model.hparams:
        model.hparams.beam_size = int(cfg.beam_size)
    if cfg.get("compile_decoding"):
        log.info(compile_decoding(model))
    predictor = predictor_class(model)(model, loaded.config.get("data") or DictConfig({}), cfg)
    if predictor.takes_input:
        if cfg.get("input") is None:
            raise InputError(f"input=... is required: checkpoint {loaded.path} is a {predictor.task} model, which "
                             f"takes {predictor.accepts()}")
        text = str(cfg.input)
        kind = classify(text)
        predictor.check_kind(text, kind, f"checkpoint {loaded.path}")
        items = predictor.items(text, kind)
    else:
        text = f"samples={cfg.get('samples')}"
        items = predictor.items(None, None)
    log.info(f"{loaded.describe()}: predicting on {len(items)} input(s) from {text!r}")
    workers = int(cfg.num_workers)
    loader = DataLoader(PredictionItems(items, predictor.load), batch_size=int(cfg.batch_size), shuffle=False,
                        num_workers=workers, collate_fn=predictor.collate, persistent_workers=False)
    output_dir = Path(cfg.output_dir)
    writer = PredictionWriter(predictor, output_dir, int(cfg.max_figures) if cfg.figures else 0)
    resolution = resolve_precision(cfg.precision, cfg.accelerator)
    log_resolution(resolution, log)
    trainer = pl.Trainer(accelerator=cfg.accelerator, devices=1, precision=resolution.precision, logger=False,
                         callbacks=[writer], enable_checkpointing=False, enable_model_summary=False)
    trainer.predict(model, dataloaders=loader, return_predictions=False)  # in inference mode, with a progress bar
    log.info(f"{len(writer.records)} prediction(s) written to {writer.path}"
             + (f", figures in {output_dir / 'figures'}" if cfg.figures else ""))
    return writer.records
