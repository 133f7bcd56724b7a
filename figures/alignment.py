"""Alignment matrices of a translation model: generated target tokens (rows) x source tokens (columns)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from torch import Tensor


def alignment_figure(source_words: Sequence[Sequence[str]], target_words: Sequence[Sequence[str]],
                     attention: Sequence[Tensor]) -> plt.Figure:
    """One panel per sentence, as in Bahdanau et al. 2015 Fig. 3 (white = all attention).

    Args:
        source_words: per sentence, the source tokens (columns; includes <bos>/<eos> if the encoder saw them).
        target_words: per sentence, the generated tokens (rows).
        attention: per sentence, [len(target), S_padded] attention weights (only the first len(source) columns
            are shown: padding gets no attention).
    """
    count = len(source_words)
    figure, axes = plt.subplots(1, count, figsize=(3.6 * count, 3.8), squeeze=False)
    for ax, sources, targets, weights in zip(axes[0], source_words, target_words, attention, strict=True):
        matrix = weights[: len(targets), : len(sources)].float().numpy()                        # [T, S]
        if matrix.size:
            ax.imshow(matrix, cmap="gray", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(sources)))
        ax.set_xticklabels(sources, rotation=90, fontsize=7)
        ax.set_yticks(range(len(targets)))
        ax.set_yticklabels(targets, fontsize=7)
        ax.tick_params(length=0)
    figure.tight_layout()
    return figure
