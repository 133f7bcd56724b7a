"""The CNN classifier used alone (the paper's CNN baseline) and after a spatial transformer (ST-CNN)."""

from __future__ import annotations

import torch
from torch import nn


class ConvClassifier(nn.Module):
    """Per stage: (conv -> BN -> ReLU) x convs_per_stage -> maxpool; then size-independent pooling and an MLP head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: tuple[int, ...] = (32, 64),
                 hidden: int = 256, dropout: float = 0.2, pool_to: int = 4, batch_norm: bool = True,
                 kernel_size: int = 5, convs_per_stage: int = 1,
                 pixel_mean: float = 0.13, pixel_std: float = 0.31) -> None:
        """
        Args:
            in_channels: image channels.
            num_classes: output classes.
            channels: output channels of each conv stage.
            hidden: width of the hidden fully connected layer.
            dropout: dropout before each fully connected layer.
            pool_to: adaptive max-pool size before the head (any input size works).
            batch_norm: BatchNorm after each conv (off: per-sample computation, e.g. to compare DDP runs).
            kernel_size: side of every conv kernel (odd; padded to keep the size before each pool).
            convs_per_stage: convolutions before each pool (2 with kernel_size=3: VGG-style stages, the same
                receptive field as one 5x5 conv with an extra non-linearity).
            pixel_mean, pixel_std: input normalisation, applied here so that the spatial transformer in
                front of it can sample raw [0, 1] images whose background is exactly 0.
        """
        super().__init__()
        if convs_per_stage < 1 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"convs_per_stage must be >= 1 and kernel_size odd and >= 1, got {convs_per_stage} "
                             f"and {kernel_size}")
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std), persistent=False)
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            for _ in range(convs_per_stage):
                norm = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
                layers += [nn.Conv2d(previous, width, kernel_size, padding=kernel_size // 2, bias=not batch_norm),
                           norm, nn.ReLU(inplace=True)]
                previous = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(pool_to))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(previous * pool_to * pool_to, hidden),
            nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W] in [0, 1] -> logits [B, num_classes]."""
        return self.head(self.features((images - self.pixel_mean) / self.pixel_std))
