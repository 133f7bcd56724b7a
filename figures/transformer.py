"""The spatial transformer's before/after picture: inputs with the sampled region outlined, and what it passed on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch

# the sampling grid's corners in output coordinates [-1, 1] (homogeneous), closed to draw an outline
_CORNERS = torch.tensor([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1], [-1, -1, 1]], dtype=torch.float)


def before_after_figure(sample: dict[str, Any], class_names: Sequence[str]) -> plt.Figure:
    """Two rows: inputs (with the sampled region outlined) and what the classifier sees, titled predicted / true
    class. ``sample``: image [K, 1, H, W], transformed [K, 1, S, S], pred [K], theta [K, 2, 3] (or None: no
    transformer), label [K] (or None: a prediction on the user's own image, no truth to compare with)."""
    count = sample["image"].shape[0]
    figure, axes = plt.subplots(2, count, figsize=(1.4 * count, 3.2), squeeze=False)
    size = sample["image"].shape[-1]
    for i in range(count):
        axes[0, i].imshow(sample["image"][i, 0], cmap="gray", vmin=0, vmax=1)
        if sample["theta"] is not None:
            # theta maps output coords to input coords in [-1, 1] (align_corners=False): pixel = (x+1)*S/2 - 0.5
            xy = (_CORNERS @ sample["theta"][i].T + 1) * size / 2 - 0.5                 # [5, 2] pixel coords
            axes[0, i].plot(xy[:, 0], xy[:, 1], color="red", linewidth=1)
            axes[0, i].set_xlim(-0.5, size - 0.5)
            axes[0, i].set_ylim(size - 0.5, -0.5)
        axes[1, i].imshow(sample["transformed"][i, 0], cmap="gray", vmin=0, vmax=1)
        pred = int(sample["pred"][i])
        if sample.get("label") is None:
            axes[1, i].set_title(f"predicted {class_names[pred]}", fontsize=8)
        else:
            true = int(sample["label"][i])
            axes[1, i].set_title(f"{class_names[pred]} / {class_names[true]}", fontsize=8,
                                 color="green" if pred == true else "red")
        for ax in axes[:, i]:
            ax.axis("off")
    axes[0, 0].set_title("input", fontsize=8, loc="left")
    figure.tight_layout()
    return figure
