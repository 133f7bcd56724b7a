"""DRAW's Gaussian filterbank attention (Gregor et al. 2015, section 3.2): an N x N grid of 2-D Gaussians placed
anywhere in the image, at any stride and blur, by a linear layer of a recurrent state.

Coordinates follow the paper, 1-indexed: pixel a = 1..A, filter i = 1..N, so that the centre g = (A + 1) / 2 (g~ + 1)
is the image's middle for g~ = 0 and the filter means mu_i = g + (i - N/2 - 0.5) delta are symmetric about g (ports
that index from 0 shift the grid by one stride). Each filter's row over the pixels is normalised to sum to 1.

    read:   glimpse = gamma F_Y x F_X^T               [B, C, H, W] -> [B, C, N, N]
    write:  update  = 1/gamma F_Y^T patch F_X         [B, C, N, N] -> [B, C, H, W]
    box:    the square the grid covers, g -+ N delta / 2, in the pixel coordinates of spatial_transformer.box_mask
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

EPSILON = 1e-8  # keeps a filter whose mass lies outside the image from dividing by zero
CENTRE_BOUND = 1.5         # |g~| <= 1.5: the centre at most a quarter image beyond an edge
LOG_STRIDE_MAX = math.log(2.0)  # delta~ <= 2: the grid at most twice the image's side
LOG_INTENSITY_BOUND = 10.0


@dataclass
class Window:
    """Where a grid of N x N filters sits in an H x W image; each field [B], in 1-indexed pixel units."""

    centre_x: torch.Tensor
    centre_y: torch.Tensor
    stride: torch.Tensor     # delta: distance between neighbouring filter means
    variance: torch.Tensor   # sigma^2 of every filter
    intensity: torch.Tensor  # gamma: scales what is read (and divides what is written)
    size: int                # N

    def box(self) -> torch.Tensor:
        """[B, 4] (x0, y0, x1, y1): the square the grid covers, N strides wide, in box_mask's pixel coordinates
        (pixel a spans [a - 1, a])."""
        half = self.size * self.stride / 2
        return torch.stack([self.centre_x - half - 0.5, self.centre_y - half - 0.5,
                            self.centre_x + half - 0.5, self.centre_y + half - 0.5], dim=-1)


def window_from_raw(raw: torch.Tensor, height: int, width: int, size: int) -> Window:
    """The paper's parameterisation of the five numbers a linear layer emits.

    raw [B, 5] = (g~x, g~y, log sigma^2, log delta~, log gamma) -> Window.
    """
    g_x, g_y, log_variance, log_stride, log_intensity = raw.float().unbind(-1)
    # bounded so that a window stays on (or near) the image: unbounded, exp lets a stride grow without limit, and its
    # gradient, proportional to the stride, grows with it until a recurrent network's windows run away
    g_x, g_y = g_x.clamp(-CENTRE_BOUND, CENTRE_BOUND), g_y.clamp(-CENTRE_BOUND, CENTRE_BOUND)
    log_stride = log_stride.clamp(max=LOG_STRIDE_MAX)
    log_variance = log_variance.clamp(max=2 * math.log(max(height, width)))                   # sigma <= image side
    log_intensity = log_intensity.clamp(-LOG_INTENSITY_BOUND, LOG_INTENSITY_BOUND)
    return Window(centre_x=(width + 1) / 2 * (g_x + 1), centre_y=(height + 1) / 2 * (g_y + 1),
                  stride=(max(height, width) - 1) / max(size - 1, 1) * log_stride.exp(),
                  variance=log_variance.exp(), intensity=log_intensity.exp(), size=size)


def filterbank(centre: torch.Tensor, stride: torch.Tensor, variance: torch.Tensor, size: int,
               length: int) -> torch.Tensor:
    """One axis's filters: centre, stride, variance [B] -> F [B, N, length], each row summing to 1 (when the
    filter's mass lies in the image)."""
    filters = torch.arange(1, size + 1, device=centre.device, dtype=torch.float32)          # i = 1..N
    pixels = torch.arange(1, length + 1, device=centre.device, dtype=torch.float32)         # a = 1..length
    means = centre[:, None] + (filters - size / 2 - 0.5) * stride[:, None]                  # [B, N]
    weights = torch.exp(-(pixels[None, None] - means[:, :, None]) ** 2 / (2 * variance[:, None, None]))
    return weights / (weights.sum(dim=-1, keepdim=True) + EPSILON)                          # [B, N, length]


def filterbanks(window: Window, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(F_Y [B, N, H], F_X [B, N, W]) of a window."""
    return (filterbank(window.centre_y, window.stride, window.variance, window.size, height),
            filterbank(window.centre_x, window.stride, window.variance, window.size, width))


def read_window(image: torch.Tensor, window: Window) -> torch.Tensor:
    """gamma F_Y x F_X^T: image [B, C, H, W] -> glimpse [B, C, N, N]."""
    f_y, f_x = filterbanks(window, image.shape[-2], image.shape[-1])
    glimpse = f_y[:, None] @ image.float() @ f_x[:, None].transpose(-1, -2)
    return window.intensity[:, None, None, None] * glimpse


def write_window(patch: torch.Tensor, window: Window, height: int, width: int) -> torch.Tensor:
    """1/gamma F_Y^T patch F_X: patch [B, C, N, N] -> canvas update [B, C, H, W]."""
    f_y, f_x = filterbanks(window, height, width)
    update = f_y[:, None].transpose(-1, -2) @ patch.float() @ f_x[:, None]
    return update / window.intensity[:, None, None, None]


class GaussianWindow(nn.Module):
    """A linear layer of a state [B, S] placing an N x N Gaussian window in an H x W image; ``read`` and ``write``
    through it.

    At initialisation (a zero state) the grid is centred and spans the image (delta~ = 1), with sigma = delta / 2 so
    that neighbouring filters overlap: what is read then summarises the whole image and every pixel can be written.
    With the layer's default bias sigma would be about one pixel, and a 2 x 2 read would see only the four corners,
    which are empty in digit images, leaving the encoder nothing to encode.
    """

    def __init__(self, state_size: int, size: int, height: int, width: int, unit_write_gain: bool = False) -> None:
        """
        Args:
            state_size: S, the state's units.
            size: N, filters per axis.
            height, width: the image's H and W.
            unit_write_gain: start with gamma = 1 / (2 pi sigma^2), so that writing 1 through one filter adds about
                1 at its centre (for a window that writes logits: with gamma = 1 a wide filter spreads a unit write
                so thin that the canvas barely moves); reads keep gamma = 1 (a glimpse averages the image).
        """
        super().__init__()
        if size < 1 or height < 1 or width < 1:
            raise ValueError(f"GaussianWindow: window size {size} and image {height}x{width} must be >= 1")
        self.size, self.height, self.width = size, height, width
        self.place = nn.Linear(state_size, 5)
        variance = ((max(height, width) - 1) / max(size - 1, 1) / 2) ** 2                      # sigma = delta / 2
        with torch.no_grad():
            # zero weights: every state starts with the same window, which moves only as fast as training moves it
            self.place.weight.zero_()
            self.place.bias.zero_()
            self.place.bias[2] = math.log(variance)                                           # log sigma^2
            if unit_write_gain:
                self.place.bias[4] = -math.log(2 * math.pi * variance)                         # log gamma

    def forward(self, state: torch.Tensor) -> Window:
        """state [B, S] -> the window it places."""
        return window_from_raw(self.place(state), self.height, self.width, self.size)

    def read(self, image: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, Window]:
        """image [B, C, H, W], state [B, S] -> glimpse [B, C, N, N] and the window read."""
        window = self(state)
        return read_window(image, window), window

    def write(self, patch: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, Window]:
        """patch [B, C, N, N], state [B, S] -> canvas update [B, C, H, W] and the window written."""
        window = self(state)
        return write_window(patch, window, self.height, self.width), window
