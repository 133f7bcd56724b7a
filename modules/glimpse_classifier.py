"""DRAW's read attention driving a recurrent classifier (Gregor et al. 2015, section 4.1): T glimpses through a
Gaussian window placed by the previous state, the class from the last state.

    window_t = W(h_{t-1});  g_t = read(x, window_t)          [N, N]
    h_t = LSTM(h_{t-1}, relu(W_g g_t))
    logits = W_c h_T
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from modules.gaussian_window import GaussianWindow


@dataclass
class GlimpsePass:
    logits: torch.Tensor    # [B, K]
    glimpses: torch.Tensor  # [T, B, N, N] what each step read
    boxes: torch.Tensor     # [T, B, 4] where each step read (x0, y0, x1, y1 pixels)


class GlimpseClassifier(nn.Module):
    """See the module docstring; images are [B, 1, H, W]."""

    def __init__(self, *, height: int, width: int, steps: int, glimpse_size: int, hidden_size: int,
                 num_classes: int) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"model.steps={steps}: the classifier needs at least one glimpse")
        self.steps = steps
        self.window = GaussianWindow(hidden_size, glimpse_size, height, width)
        self.glimpse_features = nn.Linear(glimpse_size**2, hidden_size)
        self.where_features = nn.Linear(3, hidden_size)
        self.size = (height, width)
        self.recurrence = nn.LSTMCell(hidden_size, hidden_size)
        self.classify = nn.Linear(hidden_size, num_classes)

    def forward(self, images: torch.Tensor) -> GlimpsePass:
        batch = images.shape[0]
        state = images.new_zeros(batch, self.recurrence.hidden_size, dtype=torch.float32)
        state = (state, state)
        glimpses, boxes = [], []
        for _ in range(self.steps):
            glimpse, window = self.window.read(images, state[0])                              # [B, 1, N, N]
            where = torch.stack([window.centre_x / self.size[1], window.centre_y / self.size[0],
                                 window.stride * window.size / max(self.size)], dim=-1)   # [B, 3] in image units
            features = torch.relu(self.glimpse_features(glimpse.flatten(1)) + self.where_features(where))
            state = self.recurrence(features, state)
            glimpses.append(glimpse[:, 0])
            boxes.append(window.box())
        return GlimpsePass(logits=self.classify(state[0]), glimpses=torch.stack(glimpses), boxes=torch.stack(boxes))
