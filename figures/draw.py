"""DRAW's pictures: the canvas after every step with the write window on it (the paper's Fig. 7), the read windows
over the input, the glimpse sequence of the classifier, and a grid of images drawn from the prior."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle


def _outline(ax: plt.Axes, box: torch.Tensor, color: str | tuple, width: float = 1.0) -> None:
    """Draw box (x0, y0, x1, y1 in pixel-edge coordinates) on an imshow axis (pixel k spans k - 0.5 .. k + 0.5)."""
    x0, y0, x1, y1 = (float(v) - 0.5 for v in box)
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=width))


def _image_axis(ax: plt.Axes, image: torch.Tensor, size: int) -> None:
    ax.imshow(image.detach().cpu(), cmap="gray", vmin=0, vmax=1)
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(size - 0.5, -0.5)
    ax.axis("off")


def canvas_steps_figure(canvases: torch.Tensor, write_boxes: torch.Tensor | None,
                        images: torch.Tensor | None = None, max_columns: int = 16) -> plt.Figure:
    """One row per image: sigmoid of the canvas after each step (at most ``max_columns`` steps, evenly spaced, the
    last included), the step's write window in red; the input last when ``images`` is given.

    canvases [T, K, H, W] logits; write_boxes [T, K, 4] or None (full writes); images [K, H, W] or None.
    """
    steps, count, size = canvases.shape[0], canvases.shape[1], canvases.shape[-1]
    shown = np.unique(np.linspace(0, steps - 1, min(steps, max_columns)).round().astype(int))
    columns = len(shown) + (images is not None)
    figure, axes = plt.subplots(count, columns, figsize=(0.9 * columns, 0.9 * count), squeeze=False)
    for row in range(count):
        for column, step in enumerate(shown):
            ax = axes[row, column]
            _image_axis(ax, torch.sigmoid(canvases[step, row].float()), size)
            if write_boxes is not None:
                _outline(ax, write_boxes[step, row], "red")
            if row == 0:
                ax.set_title(f"t={step + 1}", fontsize=7)
        if images is not None:
            _image_axis(axes[row, -1], images[row].float(), size)
            if row == 0:
                axes[row, -1].set_title("input", fontsize=7)
    figure.tight_layout(pad=0.2)
    return figure


def read_windows_figure(images: torch.Tensor, read_boxes: torch.Tensor, titles: Sequence[str] | None = None,
                        glimpses: torch.Tensor | None = None) -> plt.Figure:
    """Each input with every step's read window (colour from dark to light by step); below it, the glimpses.

    images [K, H, W]; read_boxes [T, K, 4]; glimpses [T, K, N, N] or None; titles: K strings or None.
    """
    steps, count, size = read_boxes.shape[0], images.shape[0], images.shape[-1]
    rows = 1 + (steps if glimpses is not None else 0)
    figure, axes = plt.subplots(rows, count, figsize=(1.3 * count, 1.3 + 0.6 * (rows - 1)), squeeze=False,
                                gridspec_kw={"height_ratios": [2] + [1] * (rows - 1)})
    colours = plt.cm.autumn(np.linspace(0, 1, steps))
    for i in range(count):
        _image_axis(axes[0, i], images[i].float(), size)
        for step in range(steps):
            _outline(axes[0, i], read_boxes[step, i], colours[step], width=0.8)
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=7)
        for step in range(rows - 1):
            glimpse = glimpses[step, i].detach().float().cpu()
            axes[1 + step, i].imshow(glimpse, cmap="gray", vmin=0, vmax=max(float(glimpse.max()), 1e-6))
            axes[1 + step, i].axis("off")
    figure.tight_layout(pad=0.2)
    return figure


def sample_grid_figure(canvases: torch.Tensor, columns: int = 8) -> plt.Figure:
    """The final canvases [K, H, W] (logits) as a grid of Bernoulli means."""
    count, size = canvases.shape[0], canvases.shape[-1]
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(0.8 * columns, 0.8 * rows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index < count:
            _image_axis(ax, torch.sigmoid(canvases[index].float()), size)
        else:
            ax.axis("off")
    figure.tight_layout(pad=0.1)
    return figure
