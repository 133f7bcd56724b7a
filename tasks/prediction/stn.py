"""predict.py for spatial-transformer classifiers: digit image(s) -> class, probability, before/after figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image, ImageOps

from figures.transformer import before_after_figure
from tasks.prediction.base import Predictor
from tasks.prediction.inputs import InputError, read_image


def digit_canvas(image: Image.Image, size: int, invert: str) -> torch.Tensor:
    """A greyscale image -> [1, size, size] float in [0, 1], light digit on dark as in MNIST.

    ``invert``: "auto" inverts when the image is mostly light (a dark digit on paper), "true" / "false" force it.
    The image is padded to a square (with its background) before resizing, so the digit keeps its aspect ratio.
    """
    pixels = np.asarray(image, dtype=np.float32) / 255.0                                 # [H, W]
    if invert not in ("auto", "true", "false"):
        raise InputError(f"invert={invert!r}: choose auto, true or false")
    if invert == "true" or (invert == "auto" and pixels.mean() > 0.5):
        pixels = 1.0 - pixels
    square = ImageOps.pad(Image.fromarray((pixels * 255).astype(np.uint8)), (max(image.size),) * 2,
                          color=0)
    resized = square.resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0)[None]         # [1, S, S]


class DigitPredictor(Predictor):
    task = "spatial-transformer digit classification"
    input_kinds = ("image", "image_folder")

    def load(self, path: Path) -> dict[str, Any]:
        image = read_image(path, mode="L")
        return {"image": digit_canvas(image, self.model.hparams.image_size, str(self.options.invert).lower()),
                "name": str(path)}

    def collate(self, loaded: list[dict[str, Any]]) -> dict[str, Any]:
        return {"image": torch.stack([item["image"] for item in loaded]), "name": [item["name"] for item in loaded]}

    def records(self, batch: dict[str, Any], outputs: dict[str, Any]) -> list[dict[str, Any]]:
        best, classes = outputs["probabilities"].max(dim=-1)                              # [B], [B]
        names = self.model.class_names
        return [{"input": name, "class": names[c], "probability": round(float(p), 4)}
                for name, c, p in zip(batch["name"], classes.tolist(), best.tolist(), strict=True)]

    def figure(self, batch: dict[str, Any], outputs: dict[str, Any], index: int) -> plt.Figure:
        theta = outputs["theta"]
        return before_after_figure({
            "image": batch["image"][index:index + 1].float().cpu(),
            "transformed": outputs["transformed"][index:index + 1].float().cpu(),
            "pred": outputs["probabilities"][index:index + 1].argmax(-1).cpu(),
            "theta": theta[index:index + 1].float().cpu() if theta is not None else None, "label": None},
            self.model.class_names)
