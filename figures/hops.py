"""Where a stacked attention network looked: each question's image, then the attention map of every hop."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from torch import Tensor

from figures.captions import upsample_attention


def hop_attention_figure(images: Tensor, questions: Sequence[str], predicted: Sequence[str],
                         truth: Sequence[str] | None,
                         maps: Sequence[Tensor], grid: tuple[int, int]) -> plt.Figure:
    """One row per question: the image (titled with the question and predicted / true answer), then each hop.

    Args:
        images: [S, 3, H, W] float in [0, 1].
        questions, predicted, truth: S strings each (truth None: the predicted answer only).
        maps: one tensor [S, N] per hop (N = h * w).
        grid: (h, w) of the feature grid.
    """
    count, hops = len(questions), len(maps)
    figure, axes = plt.subplots(count, 1 + hops, figsize=(2.2 * (1 + hops), 2.3 * count), squeeze=False)
    for row in range(count):
        picture = images[row].permute(1, 2, 0).clamp(0, 1).numpy()                              # [H, W, 3]
        axes[row, 0].imshow(picture)
        if truth is None:  # a prediction on the user's own question: no true answer
            title, colour = f"{questions[row]}\n{predicted[row]}", "black"
        else:
            title = f"{questions[row]}\n{predicted[row]} / {truth[row]}"
            colour = "green" if predicted[row] == truth[row] else "red"
        axes[row, 0].set_title(title, fontsize=6, color=colour, loc="left")
        for hop in range(hops):
            heat = upsample_attention(maps[hop][row][None], grid, picture.shape[:2])[0]           # [H, W]
            axes[row, 1 + hop].imshow(picture * 0.35)
            axes[row, 1 + hop].imshow(heat.numpy(), cmap="gray", alpha=0.65, vmin=0, vmax=1)
            axes[row, 1 + hop].set_title(f"hop {hop + 1}", fontsize=7)
        for ax in axes[row]:
            ax.axis("off")
    figure.tight_layout()
    return figure
