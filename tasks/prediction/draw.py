"""predict.py for DRAW: the classifier takes digit images (class and glimpse sequence); the generator takes no input
and draws ``samples=N`` images from the prior (a step-by-step canvas per sample and the grid of all)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import torch

from figures.draw import canvas_steps_figure, read_windows_figure, sample_grid_figure
from tasks.prediction.base import Predictor
from tasks.prediction.inputs import InputError
from tasks.prediction.stn import DigitPredictor


class GlimpsePredictor(DigitPredictor):
    """Digit images in as for the spatial transformer; the class and the glimpse sequence out."""

    task = "DRAW glimpse classification"

    def records(self, batch: dict[str, Any], outputs: dict[str, Any]) -> list[dict[str, Any]]:
        best, classes = outputs["probabilities"].max(dim=-1)                              # [B], [B]
        names = self.model.class_names
        return [{"input": name, "class": names[c], "probability": round(float(p), 4),
                 "last_window": [round(float(v), 2) for v in outputs["boxes"][-1, i]]}
                for i, (name, c, p) in enumerate(zip(batch["name"], classes.tolist(), best.tolist(), strict=True))]

    def figure(self, batch: dict[str, Any], outputs: dict[str, Any], index: int) -> plt.Figure:
        predicted = self.model.class_names[int(outputs["probabilities"][index].argmax())]
        return read_windows_figure(batch["image"][index:index + 1, 0].float().cpu(),
                                   outputs["boxes"][:, index:index + 1].float().cpu(), [f"predicted {predicted}"],
                                   outputs["glimpses"][:, index:index + 1].float().cpu())


class SamplePredictor(Predictor):
    task = "DRAW generation"
    takes_input = False

    def items(self, text: str | None, kind: str | None) -> list[Any]:
        count = self.options.get("samples")
        if not count or int(count) < 1:
            raise InputError("a DRAW generator draws from its prior and takes no input: give samples=N (N >= 1)")
        return [int(count)]  # one batch: the whole grid in one figure

    def load(self, count: int) -> dict[str, Any]:
        return {"count": count}

    def collate(self, loaded: list[dict[str, Any]]) -> dict[str, Any]:
        seed = int(self.options.get("seed") or 0)
        return {"count": loaded[0]["count"], "generator": torch.Generator().manual_seed(seed)}

    def records(self, batch: dict[str, Any], outputs: dict[str, Any]) -> list[dict[str, Any]]:
        final = torch.sigmoid(outputs["canvases"][-1].float())                            # [K, H, W]
        return [{"input": f"sample_{i:04d}", "ink": round(float(image.mean()), 4)} for i, image in enumerate(final)]

    def figure(self, batch: dict[str, Any], outputs: dict[str, Any], index: int) -> plt.Figure:
        boxes = outputs["write_boxes"]
        return canvas_steps_figure(outputs["canvases"][:, index:index + 1].float().cpu(),
                                   None if boxes is None else boxes[:, index:index + 1].float().cpu())

    def batch_figures(self, batch: dict[str, Any], outputs: dict[str, Any]) -> dict[str, plt.Figure]:
        return {"samples": sample_grid_figure(outputs["canvases"][-1].float().cpu())}
