"""Send a matplotlib figure to whatever loggers the run has: W&B image, TensorBoard image, or a PNG file."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
from PIL import Image
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger


def figure_to_array(figure: plt.Figure) -> np.ndarray:
    """Render a figure to an RGB uint8 array [H, W, 3] and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi, bbox_inches="tight")
    plt.close(figure)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def log_figure(trainer: pl.Trainer, key: str, figure: plt.Figure, caption: str | None = None) -> np.ndarray | None:
    """Log a figure from rank zero: W&B and TensorBoard get an image; without either, a PNG in the run dir.

    Returns the rendered image on rank zero (None elsewhere, where the figure is only closed).
    """
    if not trainer.is_global_zero:
        plt.close(figure)
        return None
    image = figure_to_array(figure)
    image_loggers = 0
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], caption=[caption] if caption else None,
                             step=trainer.global_step)
            image_loggers += 1
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, trainer.global_step, dataformats="HWC")
            image_loggers += 1
    if image_loggers == 0:
        folder = Path(trainer.default_root_dir) / "figures" / key.replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"epoch{trainer.current_epoch:03d}_step{trainer.global_step}.png")
    return image


def log_table(trainer: pl.Trainer, key: str, columns: list[str], rows: list[list[object]]) -> None:
    """Log a table of predictions from rank zero: a W&B table (numpy images become pictures); elsewhere a
    Markdown table (images left out), as TensorBoard text or as a file under the run dir's ``tables/``.
    """
    if not trainer.is_global_zero:
        return
    text_columns = [i for i, row_value in enumerate(rows[0] if rows else []) if not isinstance(row_value, np.ndarray)]
    markdown = "\n".join(
        ["| " + " | ".join(columns[i] for i in text_columns) + " |", "|" + "---|" * len(text_columns)]
        + ["| " + " | ".join(str(row[i]).replace("|", "/") for i in text_columns) + " |" for row in rows]
    )
    written = 0
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            data = [[wandb.Image(v) if isinstance(v, np.ndarray) else v for v in row] for row in rows]
            logger.log_table(key=key, columns=columns, data=data, step=trainer.global_step)
            written += 1
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(key, markdown, trainer.global_step)
            written += 1
    if written == 0:
        folder = Path(trainer.default_root_dir) / "tables" / key.replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"epoch{trainer.current_epoch:03d}_step{trainer.global_step}.md").write_text(markdown + "\n")
