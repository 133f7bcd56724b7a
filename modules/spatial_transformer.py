"""Spatial transformer (Jaderberg et al. 2015): localisation net -> affine theta -> grid -> bilinear sampler."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def conv_stages(in_channels: int, channels: tuple[int, ...], batch_norm: bool) -> nn.Sequential:
    """Per width: 5x5 conv (same padding) -> 2x2 max-pool -> BatchNorm (optional) -> ReLU."""
    layers: list[nn.Module] = []
    previous = in_channels
    for width in channels:
        norm = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        layers += [nn.Conv2d(previous, width, 5, padding=2), nn.MaxPool2d(2), norm, nn.ReLU(inplace=True)]
        previous = width
    return nn.Sequential(*layers)


def cell_centres(height: int, width: int, device: torch.device) -> torch.Tensor:
    """(x, y) of the centres of an (height, width) grid of cells (or pixels) covering [-1, 1]^2, in the
    ``align_corners=False`` convention of ``affine_grid``, row-major -> float32 [height * width, 2]."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) * 2 + 1) / height - 1          # [H]
    xs = (torch.arange(width, device=device, dtype=torch.float32) * 2 + 1) / width - 1            # [W]
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1)


class LocalisationNet(nn.Module):
    """Small CNN that regresses the 6 affine parameters; the last layer starts at the identity transform."""

    def __init__(self, in_channels: int = 1, in_size: int = 42, channels: tuple[int, ...] = (20, 20),
                 hidden: int = 50, pool_to: int = 6, batch_norm: bool = True, init_scale: float = 1.0) -> None:
        """
        Args:
            in_channels: image channels.
            in_size: input height = width (only used to check the input).
            channels: output channels of each 5x5 conv (each followed by 2x2 max-pool and ReLU).
            hidden: width of the fully connected layer before the 6 outputs.
            pool_to: adaptive pooling size after the convs, so any input size works.
            batch_norm: BatchNorm before every ReLU. Without it, on sparse inputs (60x60 cluttered digits)
                Adam's first steps, taken while the zero-initialised last layer passes no gradient back,
                drove every hidden unit negative: theta froze at one value for all inputs (seen in training).
            init_scale: theta at init is ``init_scale`` times the identity (1: the identity; 0.5: the central half
                of the input, zoomed in, so moving the window changes what the classifier sees from the start).
        """
        super().__init__()
        self.features = nn.Sequential(*conv_stages(in_channels, channels, batch_norm), nn.AdaptiveAvgPool2d(pool_to))
        previous = channels[-1]
        self.regressor = nn.Sequential(
            nn.Flatten(), nn.Linear(previous * pool_to * pool_to, hidden),
            nn.BatchNorm1d(hidden) if batch_norm else nn.Identity(), nn.ReLU(inplace=True),
            nn.Linear(hidden, 6),
        )
        self.in_size = in_size
        self.init_scale = init_scale
        self.reset_to_identity()

    def reset_to_identity(self) -> None:
        """Zero weights and (scaled) identity bias in the last layer: theta is the same for every input at init."""
        last = self.regressor[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor(IDENTITY_THETA) * torch.tensor([self.init_scale, 1, 1, 1, self.init_scale, 1]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W] -> theta [B, 2, 3] (maps output coords to input coords, normalised to [-1, 1])."""
        return self.regressor(self.features(images)).view(-1, 2, 3)


class HeatmapLocalisationNet(nn.Module):
    """Finds where to look by pointing at it: the translation is the soft-argmax of a fully convolutional
    heatmap, and the linear part (scale, rotation, shear) is regressed from the features the heatmap pools.

    A regressor (``LocalisationNet``) has to learn position -> number through fully connected layers; the
    heatmap is translation-equivariant, so what it learns about a digit at one place holds at every place.
    On 60x60 cluttered digits (3,600 training digits) it finds the digit where the regressor does not
    (benchmarks/stn.py: IoU of the sampled region with the digit box 0.30 against 0.10-0.14).

    At init the heatmap is flat (translation 0, the centre) and the linear part is ``init_scale`` x identity:
    theta is the same for every input, as for ``LocalisationNet``.
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (32, 32), hidden: int = 64,
                 batch_norm: bool = True, init_scale: float = 0.5) -> None:
        """
        Args:
            in_channels: image channels.
            channels: output channels of each 5x5 conv stage (each halves the resolution).
            hidden: width of the layer that regresses the linear part from the pooled features.
            batch_norm: BatchNorm in the conv stages (see ``LocalisationNet``).
            init_scale: the linear part at init, times the identity (0.5: a window half the input's side).
        """
        super().__init__()
        self.features = conv_stages(in_channels, channels, batch_norm)
        self.heatmap = nn.Conv2d(channels[-1], 1, 1)
        self.linear = nn.Sequential(nn.Linear(channels[-1], hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 4))
        self.init_scale = init_scale
        self.reset_to_identity()

    def reset_to_identity(self) -> None:
        """Flat heatmap (centre), linear part ``init_scale`` x identity, for every input."""
        for layer in (self.heatmap, self.linear[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            self.linear[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]) * self.init_scale)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W] -> theta [B, 2, 3] (output coords -> input coords, normalised to [-1, 1])."""
        features = self.features(images)                                                 # [B, C', h, w]
        height, width = features.shape[-2:]
        weights = self.heatmap(features).flatten(1).float().softmax(dim=-1)              # [B, h*w]
        centre = weights @ cell_centres(height, width, images.device)                    # [B, 2]
        pooled = torch.einsum("bcn,bn->bc", features.flatten(2).float(), weights)       # [B, C']
        linear = self.linear(pooled.to(features.dtype)).float().view(-1, 2, 2)           # [B, 2, 2]
        return torch.cat([linear, centre.unsqueeze(-1)], dim=-1)                         # [B, 2, 3]


class SpatialTransformer(nn.Module):
    """Resample the input where the localisation net says.

    Coordinates follow ``align_corners=False``: -1 and +1 are the outer edges of the border pixels, so the
    identity theta reproduces the input exactly at the same size. Outside the input the sampler returns
    ``background`` (the value of an empty pixel in the caller's normalisation): zero padding on inputs
    whose background is not zero would add a frame the classifier can see, and teach the transformer to
    zoom out to find it.
    """

    align_corners = False

    def __init__(self, localisation: nn.Module, out_size: int | None = None, background: float = 0.0) -> None:
        """
        Args:
            localisation: module images [B, C, H, W] -> theta [B, 2, 3].
            out_size: output height = width (default: same as the input).
            background: value of an empty input pixel, used outside the input.
        """
        super().__init__()
        self.localisation = localisation
        self.out_size = out_size
        self.background = background

    def sample(self, images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W], theta [B, 2, 3] -> resampled [B, C, S, S] (bilinear)."""
        batch, channels, height, width = images.shape
        size = (batch, channels, self.out_size or height, self.out_size or width)
        grid = F.affine_grid(theta.float(), list(size), align_corners=self.align_corners)  # [B, S, S, 2]
        shifted = images - self.background if self.background else images
        out = F.grid_sample(shifted, grid.to(images.dtype), mode="bilinear", padding_mode="zeros",
                            align_corners=self.align_corners)
        return out + self.background if self.background else out

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, C, H, W] -> (transformed [B, C, S, S], theta [B, 2, 3])."""
        theta = self.localisation(images)
        return self.sample(images, theta), theta


def sampled_region_mask(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Which input pixels lie inside the region the transformer samples.

    theta [B, 2, 3] maps output coords (the square [-1, 1]^2) to input coords; a pixel centre p of the
    input is inside the region when theta^-1 maps it into that square. Returns bool [B, H, W].
    """
    points = cell_centres(height, width, theta.device).unsqueeze(0)                               # [1, HW, 2]
    linear, offset = theta[:, :, :2].float(), theta[:, :, 2].float()                              # [B,2,2] [B,2]
    inverse = torch.linalg.inv(linear)                                                            # [B, 2, 2]
    local = (points - offset[:, None, :]) @ inverse.transpose(1, 2)                               # [B, HW, 2]
    return (local.abs() <= 1).all(dim=-1).view(-1, height, width)


def box_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """boxes [B, 4] (x0, y0, x1, y1 in pixels) -> bool [B, H, W] of the pixel centres inside each box."""
    xs = torch.arange(width, device=boxes.device, dtype=torch.float32) + 0.5
    ys = torch.arange(height, device=boxes.device, dtype=torch.float32) + 0.5
    inside_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] <= boxes[:, 2:3])    # [B, W]
    inside_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] <= boxes[:, 3:4])    # [B, H]
    return inside_y[:, :, None] & inside_x[:, None, :]


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of two bool masks [B, H, W] -> [B]."""
    intersection = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float().clamp(min=1)
    return intersection / union
