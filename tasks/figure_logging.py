"""Send a matplotlib figure to whatever loggers the run has: W&B image, TensorBoard image, or a PNG file."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen needed; figures are rendered to arrays
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
from PIL import Image  # noqa: E402
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger  # noqa: E402


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
