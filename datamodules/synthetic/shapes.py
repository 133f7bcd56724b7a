"""Filled coloured shapes drawn with numpy masks: the drawing shared by every generated-scene task.

Pixel coordinates: x right, y down; pixel ``i`` spans ``[i, i+1]`` (centre ``i + 0.5``), as in
:mod:`datamodules.distortions`. A :class:`SceneObject` is a shape centred at ``(x, y)`` with half
extent ``radius``; its :attr:`SceneObject.box` is ``(x - r, y - r, x + r, y + r)`` and the filled shape
lies inside it (circle: inscribed disc; square: the box; triangle: upward isosceles with its apex at the
top centre of the box and its base on the bottom edge).

:func:`render` draws with ``supersample`` x ``supersample`` sub-pixel samples per pixel (a sub-pixel is
covered when its centre is inside the shape) and box-downsamples with integer rounding, so edges are
lightly anti-aliased and the result is exactly reproducible. Later objects are drawn over earlier ones.
Objects may lie partly or wholly outside the image (they are clipped), so moving objects can leave it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BACKGROUND", "COLOURS", "SHAPES", "SIZES", "SceneObject", "render", "shape_mask"]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 60, 240),
    "yellow": (240, 220, 40),
    "magenta": (220, 50, 220),
    "cyan": (30, 220, 220),
}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
BACKGROUND = (24, 24, 24)


@dataclass(frozen=True)
class SceneObject:
    """One filled shape.

    Attributes:
        shape: one of :data:`SHAPES`.
        colour: a key of :data:`COLOURS`.
        size: ``"small"`` or ``"large"`` (the word captions use; ``radius`` is what is drawn).
        x: centre, pixels from the left edge.
        y: centre, pixels from the top edge.
        radius: half the side of the bounding box, pixels (> 0).
    """

    shape: str
    colour: str
    size: str
    x: float
    y: float
    radius: float

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"SceneObject.shape must be one of {', '.join(SHAPES)}; got {self.shape!r}")
        if self.colour not in COLOURS:
            raise ValueError(f"SceneObject.colour must be one of {', '.join(COLOURS)}; got {self.colour!r}")
        if self.size not in SIZES:
            raise ValueError(f"SceneObject.size must be one of {', '.join(SIZES)}; got {self.size!r}")
        for name in ("x", "y"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"SceneObject.{name} must be finite; got {getattr(self, name)!r}")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"SceneObject.radius must be finite and > 0; got {self.radius!r}")

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` bounding box of the filled shape, pixels (x right, y down)."""
        return (self.x - self.radius, self.y - self.radius, self.x + self.radius, self.y + self.radius)


def shape_mask(obj: SceneObject, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Which points ``(px, py)`` (pixel coords, broadcast against each other) are inside ``obj``'s shape.

    Args:
        obj: the object.
        px: x coordinates, e.g. ``[1, W]``.
        py: y coordinates, e.g. ``[H, 1]``.

    Returns:
        bool array of the broadcast shape, e.g. ``[H, W]``.
    """
    dx = px - obj.x
    dy = py - obj.y
    r = obj.radius
    if obj.shape == "circle":
        return dx * dx + dy * dy <= r * r
    if obj.shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    depth = dy + r  # distance below the apex; the half width grows from 0 at the apex to r at the base
    return (depth >= 0) & (depth <= 2 * r) & (2 * np.abs(dx) <= depth)


def _check_colour(background: Sequence[int]) -> tuple[int, int, int]:
    values = tuple(int(v) for v in background)
    if len(values) != 3 or any(v < 0 or v > 255 for v in values):
        raise ValueError(f"background must be 3 integers in [0, 255]; got {background!r}")
    return values  # type: ignore[return-value]


def render(
    objects: Sequence[SceneObject],
    image_size: int,
    background: Sequence[int] = BACKGROUND,
    supersample: int = 2,
) -> np.ndarray:
    """Draw ``objects`` (in order, later on top) on a square canvas.

    Args:
        objects: the shapes to draw.
        image_size: canvas side S, pixels.
        background: RGB of the empty canvas.
        supersample: sub-pixel samples per pixel side (1: aliased, 2: light anti-aliasing).

    Returns:
        uint8 image ``[S, S, 3]``.
    """
    if image_size < 1 or supersample < 1:
        raise ValueError(f"image_size and supersample must be >= 1; got {image_size} and {supersample}")
    s = int(supersample)
    n = image_size * s
    canvas = np.empty((n, n, 3), np.uint8)  # [S*s, S*s, 3]
    canvas[:] = _check_colour(background)
    for obj in objects:
        x0, y0, x1, y1 = obj.box
        c0, c1 = max(math.floor(x0 * s), 0), min(math.ceil(x1 * s), n)
        r0, r1 = max(math.floor(y0 * s), 0), min(math.ceil(y1 * s), n)
        if c0 >= c1 or r0 >= r1:
            continue  # entirely outside the canvas
        px = (np.arange(c0, c1) + 0.5) / s  # [w] sub-pixel centres
        py = (np.arange(r0, r1) + 0.5) / s  # [h]
        mask = shape_mask(obj, px[None, :], py[:, None])  # [h, w]
        canvas[r0:r1, c0:c1][mask] = COLOURS[obj.colour]
    if s == 1:
        return canvas
    total = canvas.reshape(image_size, s, image_size, s, 3).sum(axis=(1, 3), dtype=np.uint32)  # [S, S, 3]
    return ((total + (s * s) // 2) // (s * s)).astype(np.uint8)
