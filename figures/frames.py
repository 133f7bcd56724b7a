"""Where a video captioner looked in time: the clip's frames, its caption, and each word's weight on each frame."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from torch import Tensor


def frame_attention_figure(frames: Tensor, texts: Sequence[str], attention: Sequence[Tensor],
                           max_words: int = 16) -> plt.Figure:
    """Per clip: a strip of its frames above a words x frames matrix of attention weights (white = all of it).

    Args:
        frames: [S, T, 3, H, W] float in [0, 1].
        texts: the S generated captions.
        attention: S tensors [L_s, T], each emitted word's weights over the frames.
        max_words: rows shown per clip.
    """
    clips, steps = frames.shape[:2]
    figure = plt.figure(figsize=(0.55 * steps + 1.5, 3.6 * clips))
    grid = figure.add_gridspec(2 * clips, steps, height_ratios=[1, 3.2] * clips, hspace=0.35, wspace=0.05)
    for c in range(clips):
        for t in range(steps):
            ax = figure.add_subplot(grid[2 * c, t])
            ax.imshow(frames[c, t].permute(1, 2, 0).clamp(0, 1).numpy())
            ax.axis("off")
            if t == 0:
                ax.set_title(texts[c] if len(texts[c]) < 70 else texts[c][:67] + "...", fontsize=7, loc="left")
        words = texts[c].split()[:max_words]
        ax = figure.add_subplot(grid[2 * c + 1, :])
        if words:
            ax.imshow(attention[c][: len(words), :steps].float().numpy(), cmap="gray", vmin=0, vmax=1,
                      aspect="auto")
        ax.set_yticks(range(len(words)))
        ax.set_yticklabels(words, fontsize=7)
        ax.set_xticks(range(steps))
        ax.set_xticklabels([str(t) for t in range(steps)], fontsize=6)
        ax.set_xlabel("frame", fontsize=7)
    return figure
