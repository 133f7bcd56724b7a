"""Pictures of where a captioner looked: the image, then one panel per emitted word with its attention map.

The maps are upsampled from the feature grid to the image (bilinear) and drawn over a darkened copy of it, as in
Figure 2/3 of Show, Attend and Tell.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def upsample_attention(weights: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """weights [L, h*w] -> maps [L, H, W], bilinearly upsampled and scaled to [0, 1] per map."""
    maps = weights.float().view(-1, 1, *grid)                                                    # [L, 1, h, w]
    maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0]           # [L, H, W]
    peak = maps.flatten(1).amax(dim=1).clamp(min=1e-12)                                         # [L]
    return maps / peak[:, None, None]


def attention_caption_figure(images: Tensor, texts: Sequence[str], attention: Sequence[Tensor],
                             grid: tuple[int, int], max_words: int = 12) -> plt.Figure:
    """One row per sample: the image, then each generated word over its attention map.

    Args:
        images: [S, 3, H, W] float in [0, 1].
        texts: the S generated captions (words separated by spaces).
        attention: S tensors [L_s, h*w], the attention of each emitted word (``Hypothesis.attention``).
        grid: (h, w) of the feature grid.
        max_words: panels per row after the image (longer captions are cut, marked with "...").
    """
    count = len(texts)
    columns = 1 + min(max_words, max((len(t.split()) for t in texts), default=0))
    figure, axes = plt.subplots(count, columns, figsize=(1.5 * columns, 1.7 * count), squeeze=False)
    for row in range(count):
        picture = images[row].permute(1, 2, 0).clamp(0, 1).numpy()                            # [H, W, 3]
        words = texts[row].split()
        axes[row, 0].imshow(picture)
        axes[row, 0].set_title(texts[row] if len(texts[row]) < 40 else texts[row][:37] + "...", fontsize=7,
                               loc="left")
        maps = upsample_attention(attention[row][: len(words)], grid, picture.shape[:2]) if words else None
        for col in range(1, columns):
            ax = axes[row, col]
            if col - 1 < len(words) and maps is not None:
                ax.imshow(picture * 0.35)
                ax.imshow(maps[col - 1].numpy(), cmap="gray", alpha=0.65, vmin=0, vmax=1)
                last = col == columns - 1 and len(words) > max_words
                ax.set_title(words[col - 1] + (" ..." if last else ""), fontsize=8)
        for ax in axes[row]:
            ax.axis("off")
    figure.tight_layout()
    return figure


def caption_table_rows(images: Tensor, texts: Sequence[str], references: Sequence[Sequence[str]]
                       ) -> list[list[object]]:
    """Rows [image uint8 [H, W, 3], generated caption, references joined by " | "] for a predictions table."""
    pictures = (images.permute(0, 2, 3, 1).clamp(0, 1) * 255).to(torch.uint8).numpy()          # [S, H, W, 3]
    return [[np.ascontiguousarray(picture), text, " | ".join(refs)]
            for picture, text, refs in zip(pictures, texts, references, strict=True)]
