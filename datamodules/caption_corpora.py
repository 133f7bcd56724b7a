"""Captioned image collections behind one small interface, so that one DataModule serves every source.

A corpus is one split: ``len(corpus)`` images, ``captions(i)`` their reference captions (tokenised: lowercase
words separated by single spaces), ``images(items)`` a batch of them as float tensors in [0, 1], and, where the
data knows them, ``objects(i)``: the box and the naming words of every object in image i (generated scenes).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torchvision import transforms

from datamodules.karpathy import CaptionedImage
from datamodules.synthetic.caption_scenes import CaptionScenes

log = logging.getLogger(__name__)


class SceneCaptionCorpus:
    """Generated scenes (``datamodules.synthetic``), rendered once into memory as uint8 [N, H, W, 3]."""

    def __init__(self, scenes: CaptionScenes) -> None:
        self.scenes = scenes
        self._captions = [scenes.captions(i) for i in range(len(scenes))]
        self._pixels: Tensor | None = None  # rendered on first use: [N, H, W, 3] uint8

    def __len__(self) -> int:
        return len(self.scenes)

    def captions(self, i: int) -> list[str]:
        return self._captions[i]

    def images(self, items: Sequence[int]) -> Tensor:
        """items [B] -> float images [B, 3, H, W] in [0, 1]."""
        if self._pixels is None:
            self._pixels = torch.from_numpy(self.scenes.render_all())                     # [N, H, W, 3]
        return self._pixels[torch.as_tensor(items, dtype=torch.long)].permute(0, 3, 1, 2).float() / 255.0

    def objects(self, i: int) -> tuple[np.ndarray, list[list[str]]]:
        """Image i's objects: boxes float32 [K, 4] normalised (x0, y0, x1, y1), and each one's naming words."""
        return self.scenes.boxes(i), [[colour, shape] for colour, shape in self.scenes.names(i)]


def image_transform(image_size: int) -> transforms.Compose:
    """Resize the short side, centre-crop a square, to float [0, 1] (the encoder normalises its input)."""
    return transforms.Compose([
        transforms.Resize(image_size, antialias=True),
        transforms.CenterCrop(image_size),
        transforms.ToTensor(),
    ])


class ImageFileCaptionCorpus:
    """Real images on disk with their captions (e.g. a Karpathy split); decoded on demand."""

    def __init__(self, records: Sequence[CaptionedImage], image_size: int) -> None:
        self.records = list(records)
        self.transform = image_transform(image_size)

    def __len__(self) -> int:
        return len(self.records)

    def captions(self, i: int) -> list[str]:
        return self.records[i].captions

    def images(self, items: Sequence[int]) -> Tensor:
        """items [B] -> float images [B, 3, S, S] in [0, 1]."""
        return torch.stack([self._load(self.records[int(i)].image_path) for i in items])

    def _load(self, path: Path) -> Tensor:
        try:
            with Image.open(path) as image:
                return self.transform(image.convert("RGB"))                                  # [3, S, S]
        except (OSError, UnidentifiedImageError) as error:
            raise OSError(f"cannot read image {path}: {error} (data.skip_bad_images=true checks every image "
                          f"up front and skips unreadable ones)") from error

    def objects(self, i: int) -> None:
        return None
