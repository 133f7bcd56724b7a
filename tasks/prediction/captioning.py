"""predict.py for image captioners: image(s) -> caption (beam search) and the per-word attention figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from datamodules.caption_corpora import image_transform
from figures.captions import attention_caption_figure
from tasks.prediction.base import Predictor
from tasks.prediction.inputs import read_image


class CaptionPredictor(Predictor):
    task = "image captioning"
    input_kinds = ("image", "image_folder")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transform = image_transform(self.model.hparams.image_size)  # as in training: resize, centre crop

    def load(self, path: Path) -> dict[str, Any]:
        return {"image": self.transform(read_image(path)), "name": str(path)}                 # [3, S, S]

    def collate(self, loaded: list[dict[str, Any]]) -> dict[str, Any]:
        return {"image": torch.stack([item["image"] for item in loaded]), "name": [item["name"] for item in loaded]}

    def records(self, batch: dict[str, Any], outputs: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"input": name, "caption": caption}
                for name, caption in zip(batch["name"], outputs["captions"], strict=True)]

    def figure(self, batch: dict[str, Any], outputs: dict[str, Any], index: int) -> plt.Figure:
        return attention_caption_figure(batch["image"][index:index + 1].float().cpu(),
                                        outputs["captions"][index:index + 1], outputs["attention"][index:index + 1],
                                        self.model.grid)
