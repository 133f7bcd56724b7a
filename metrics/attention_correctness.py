"""Attention correctness (Liu et al. 2017): how much of a word's attention falls on the object the word names.

An attention map over an h x w feature grid is read as a piecewise-constant map over the image (each grid cell
covering its patch of the image, which is what upsampling it for a figure shows). The mass it puts inside a box
is then ``sum_n alpha_n * cover_n``, where ``cover_n`` is the fraction of cell n's patch inside the box. A
uniform map puts ``area(box) / area(image)`` there: the reference a map must beat to count as looking at the
object.
"""

from __future__ import annotations

import torch
from torch import Tensor


def box_cell_cover(boxes: Tensor, grid: tuple[int, int]) -> Tensor:
    """Fraction of each grid cell's image patch that lies inside each box.

    Args:
        boxes: [..., 4] boxes (x0, y0, x1, y1) in image coordinates normalised to [0, 1].
        grid: (h, w) of the feature grid, cells in row-major order (n = row * w + col).

    Returns:
        [..., h * w] cover fractions in [0, 1].
    """
    height, width = grid
    col_start = torch.arange(width, device=boxes.device, dtype=boxes.dtype) / width               # [w]
    row_start = torch.arange(height, device=boxes.device, dtype=boxes.dtype) / height             # [h]
    x0, y0, x1, y1 = boxes.unbind(-1)                                                              # [...] each
    # overlap of [x0, x1] with each column's [c/w, (c+1)/w], as a fraction of the column's width
    cover_x = ((torch.minimum(x1[..., None], col_start + 1 / width)
                - torch.maximum(x0[..., None], col_start)).clamp(min=0) * width)                  # [..., w]
    cover_y = ((torch.minimum(y1[..., None], row_start + 1 / height)
                - torch.maximum(y0[..., None], row_start)).clamp(min=0) * height)                 # [..., h]
    return (cover_y[..., :, None] * cover_x[..., None, :]).flatten(-2)                            # [..., h*w]


def grounded_attention_mass(attention: Tensor, grounding: Tensor, boxes: Tensor, grid: tuple[int, int]
                            ) -> tuple[Tensor, Tensor, Tensor]:
    """Attention mass on the named objects' boxes for every word that names an object, and a uniform map's.

    Args:
        attention: [B, L, N] attention weights of each emitted word (N = h * w; rows of padding are ignored).
        grounding: [B, L, K] bool, True where word l of sample b names object k (a word may name several
            objects, e.g. "red" with two red objects; their boxes do not overlap, so their covers add up).
        boxes: [B, K, 4] the objects' boxes, normalised (x0, y0, x1, y1).
        grid: (h, w) of the feature grid.

    Returns:
        mass [M], uniform [M]: for the M grounded words, the attention mass inside their objects' boxes and
        the mass a uniform map would put there; and word_index [M, 2] (sample, position) of those words.
    """
    cover = box_cell_cover(boxes, grid)                                                           # [B, K, N]
    target = (grounding.to(cover.dtype) @ cover).clamp(max=1.0)                                   # [B, L, N]
    grounded = grounding.any(dim=-1)                                                              # [B, L]
    mass = (attention.to(cover.dtype) * target).sum(dim=-1)                                       # [B, L]
    uniform = target.mean(dim=-1)                                                                 # [B, L]
    return mass[grounded], uniform[grounded], grounded.nonzero()


def attention_entropy(attention: Tensor, word_mask: Tensor) -> Tensor:
    """Entropy (nats) of each real word's attention map: attention [B, L, N], word_mask [B, L] -> [M]."""
    probs = attention[word_mask].float()                                                          # [M, N]
    return -(probs * probs.clamp(min=1e-12).log()).sum(dim=-1)


def word_object_grounding(tokens: Tensor, object_words: Tensor) -> Tensor:
    """Which object each word names: tokens [B, L], object_words [B, K, A] -> grounding [B, L, K] bool.

    ``object_words`` holds, per object, the vocabulary ids of the words that name it (for a generated scene its
    colour and its shape), padded with -1 (also a whole padded object). A word names an object when its id is
    one of them.
    """
    matches = tokens[:, :, None, None] == object_words[:, None]                                   # [B, L, K, A]
    return matches.any(dim=-1) & (tokens[:, :, None] >= 0)
