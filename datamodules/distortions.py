"""Distorted MNIST as in Jaderberg et al. 2015, "Spatial Transformer Networks" (R, RTS, P, E, cluttered).

Pure functions, no Lightning; all randomness comes from the ``np.random.Generator`` passed in.

Every kind is one mapping of output pixel -> source pixel, ``src = H @ out (+ elastic offset)``
with ``H`` a 3x3 homography, sampled by ``F.grid_sample(mode="bilinear", padding_mode="zeros",
align_corners=False)``. Pixel coordinates: pixel ``i`` spans ``[i, i+1]`` (centre ``i + 0.5``);
with ``align_corners=False`` the normalised coordinate is ``x_norm = 2 * x_pix / W - 1``.
Zero padding matches the data: images are in [0, 1] with background 0 (no mean normalisation),
which is also what the spatial transformer pads with.

Keeping the digit inside: the bilinear support of the ink (every ink pixel grown by half a pixel,
plus the maximal elastic offset for ``e``) is mapped forward and must land in
``[1, S - 1]``, so the 1-pixel border of the canvas stays empty. When a sampled transform would
push it out, the transform is shrunk about its anchor (the ink-box centre for r/p/e; for rts and
cluttered the placement range is chosen after the shrink) by the largest factor ``k <= 1`` that fits.
``none`` is the raw digit and is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DISTORTIONS", "Warp", "canvas_size", "distort", "render", "sample_warp", "source_points"]

DISTORTIONS = ("none", "r", "rts", "p", "e", "cluttered")
_CANVAS = {"none": 28, "r": 28, "rts": 42, "p": 28, "e": 28, "cluttered": 60}
SRC_SIZE = 28  # source digits are [28, 28]
MARGIN = 1.0  # output ink stays in [MARGIN, S - MARGIN]: the 1-pixel border is empty
_BILINEAR_PAD = 0.5  # bilinear sampling spreads an ink pixel by up to half a pixel
R_MAX_DEG = 90.0
RTS_MAX_DEG, RTS_SCALE = 45.0, (0.7, 1.2)
P_SCALE, P_SIGMA = (0.75, 1.0), 0.1  # corner noise std = P_SIGMA * ink-box side
E_GRID, E_SIGMA, E_MAX = 4, 2.0, 3.0  # 4x4 control offsets ~ N(0, 2 px), clamped to +-3 px
CLUTTER_CROP = 8


@dataclass(frozen=True)
class Warp:
    """A sampled distortion of one digit.

    Attributes:
        out_from_src: [3, 3] forward homography, source pixel coords -> output pixel coords.
        control: [2, G, G] elastic control offsets (x, y) in source pixels, or ``None``.
        size: output canvas side S.
        box: [4] ``x0, y0, x1, y1`` of the transformed ink, output pixel coords.
    """

    out_from_src: np.ndarray
    control: np.ndarray | None
    size: int
    box: np.ndarray


def canvas_size(kind: str) -> int:
    """Output canvas side for ``kind`` (none/r/p/e: 28, rts: 42, cluttered: 60)."""
    _check_kind(kind)
    return _CANVAS[kind]


def _check_kind(kind: str) -> None:
    if kind not in _CANVAS:
        raise ValueError(f"unknown distortion {kind!r}; valid choices: {', '.join(DISTORTIONS)}")


# ---------------------------------------------------------------- geometry helpers (pixel coords)
def _translate(t: np.ndarray) -> np.ndarray:
    return np.array([[1.0, 0.0, t[0]], [0.0, 1.0, t[1]], [0.0, 0.0, 1.0]])


def _scale(k: float) -> np.ndarray:
    return np.diag([k, k, 1.0])


def _rotate(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply homography ``h`` [3, 3] to points ``pts`` [M, 2] -> [M, 2]."""
    q = pts @ h[:, :2].T + h[:, 2]  # [M, 3]
    return q[:, :2] / q[:, 2:3]


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Homography [3, 3] mapping 4 points ``src`` [4, 2] onto ``dst`` [4, 2] (DLT, h33 = 1)."""
    a, b = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    return np.append(np.linalg.solve(np.array(a), np.array(b)), 1.0).reshape(3, 3)


def _is_convex(quad: np.ndarray) -> bool:
    """Whether the quadrilateral ``quad`` [4, 2] (in order) is strictly convex."""
    e = np.roll(quad, -1, axis=0) - quad  # [4, 2] edges
    cross = e[:, 0] * np.roll(e, -1, axis=0)[:, 1] - e[:, 1] * np.roll(e, -1, axis=0)[:, 0]
    return bool(np.all(cross > 0) or np.all(cross < 0))


def _ink_corners(digit: np.ndarray, pad: float) -> np.ndarray:
    """Corners [4M, 2] (x, y) of every ink pixel grown by ``pad`` (whole image if blank)."""
    rows, cols = np.nonzero(digit)
    if rows.size == 0:
        rows, cols = np.array([0, SRC_SIZE - 1]), np.array([0, SRC_SIZE - 1])
    x0, x1 = cols - pad, cols + 1 + pad
    y0, y1 = rows - pad, rows + 1 + pad
    return np.concatenate([np.stack(p, 1) for p in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))]).astype(
        np.float64
    )


def _box(pts: np.ndarray) -> np.ndarray:
    """Axis-aligned box [4] = x0, y0, x1, y1 around ``pts`` [M, 2]."""
    return np.concatenate([pts.min(0), pts.max(0)])


def _fit_about(h: np.ndarray, anchor: np.ndarray, support: np.ndarray, size: int) -> np.ndarray:
    """Shrink ``h`` about output point ``anchor`` [2] (largest k <= 1) so support lands in [M, S-M]."""
    q = _apply(h, support) - anchor  # [M, 2], relative to the anchor
    lo, hi = MARGIN - anchor, size - MARGIN - anchor  # [2] each; lo < 0 < hi
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(q > 0, hi / q, np.where(q < 0, lo / q, np.inf))
    k = min(1.0, float(k.min()))
    return _translate(anchor) @ _scale(k) @ _translate(-anchor) @ h


def _place_randomly(
    h: np.ndarray, support: np.ndarray, size: int, rng: np.random.Generator, integer: bool
) -> np.ndarray:
    """Shrink ``h`` (if needed) then translate it uniformly at random so support lands in [M, S-M].

    ``integer`` restricts the translation to whole pixels (an exact copy of the digit, no blur).
    """
    q = _apply(h, support)  # [M, 2]
    span = q.max(0) - q.min(0)
    k = min(1.0, float(((size - 2 * MARGIN) / span).min()))
    h = _scale(k) @ h
    lo, hi = MARGIN - k * q.min(0), size - MARGIN - k * q.max(0)  # [2] each, lo <= hi
    if integer and np.all(np.ceil(lo) <= np.floor(hi)):
        t = np.array([rng.integers(np.ceil(lo[d]), np.floor(hi[d]) + 1) for d in range(2)], dtype=np.float64)
    else:
        t = rng.uniform(lo, hi)
    return _translate(t) @ h


def _displacement(control: np.ndarray, pts: np.ndarray, size: int) -> np.ndarray:
    """Elastic offsets [M, 2] (source px) at output points ``pts`` [M, 2].

    The G x G control grid spans the canvas corner to corner (node 0 at pixel coord 0, node G-1 at
    S), hence ``align_corners=True`` here; bicubic, then clamped to +-E_MAX.
    """
    ctrl = torch.from_numpy(control)[None]  # [1, 2, G, G]
    grid = torch.from_numpy(2.0 * pts / size - 1.0)[None, None]  # [1, 1, M, 2]
    d = F.grid_sample(ctrl, grid, mode="bicubic", padding_mode="border", align_corners=True)  # [1, 2, 1, M]
    return d[0, :, 0].T.clamp(-E_MAX, E_MAX).numpy()  # [M, 2]


# ---------------------------------------------------------------- sampling and rendering
def sample_warp(digit: np.ndarray, kind: str, rng: np.random.Generator) -> Warp:
    """Sample the distortion ``kind`` for ``digit`` [28, 28] uint8 (see module docstring)."""
    _check_kind(kind)
    size = _CANVAS[kind]
    ink = _ink_corners(digit, 0.0)  # [4M, 2] ink pixel corners (for the box)
    support = _ink_corners(digit, _BILINEAR_PAD)  # [4M, 2] what bilinear sampling can make non-zero
    x0, y0, x1, y1 = _box(ink)
    c = np.array([(x0 + x1) / 2, (y0 + y1) / 2])  # ink-box centre
    control = None
    if kind == "none":
        h = np.eye(3)
    elif kind == "r":
        h = _translate(c) @ _rotate(rng.uniform(-R_MAX_DEG, R_MAX_DEG)) @ _translate(-c)
        h = _fit_about(h, c, support, size)
    elif kind == "rts":
        h = _scale(rng.uniform(*RTS_SCALE)) @ _rotate(rng.uniform(-RTS_MAX_DEG, RTS_MAX_DEG)) @ _translate(-c)
        h = _place_randomly(h, support, size, rng, integer=False)
    elif kind == "p":
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])  # [4, 2], in order
        s = rng.uniform(*P_SCALE)
        sigma = P_SIGMA * np.array([x1 - x0, y1 - y0])  # [2] per-axis std
        h = _translate(c) @ _scale(s) @ _translate(-c)  # fallback: no corner noise
        for _ in range(10):  # reject the rare folded quad or one whose horizon cuts the ink
            dst = c + s * (corners - c) + rng.normal(0.0, 1.0, (4, 2)) * sigma
            cand = _homography(corners, dst)
            if _is_convex(dst) and np.all(support @ cand[2, :2] + cand[2, 2] > 0):
                h = cand
                break
        h = _fit_about(h, c, support, size)
    elif kind == "e":
        control = rng.normal(0.0, E_SIGMA, (2, E_GRID, E_GRID))
        grown = _ink_corners(digit, _BILINEAR_PAD + E_MAX)  # offsets move ink by at most E_MAX
        h = _fit_about(np.eye(3), c, grown, size)
    else:  # cluttered: whole-pixel translation into the 60x60 canvas
        h = _place_randomly(np.eye(3), support, size, rng, integer=True)
    pts = _apply(h, ink)  # [4M, 2] ink corners in the output
    if control is not None:  # solve out = h(src - d(out)) by fixed-point iteration (d is smooth)
        for _ in range(12):
            pts = _apply(h, ink - _displacement(control, pts, size))
    return Warp(out_from_src=h, control=control, size=size, box=_box(pts))


def source_points(warp: Warp, out_pts: np.ndarray) -> np.ndarray:
    """The mapping itself: output pixel coords [M, 2] (x, y) -> source pixel coords [M, 2]."""
    src = _apply(np.linalg.inv(warp.out_from_src), out_pts)  # [M, 2]
    if warp.control is not None:
        src = src + _displacement(warp.control, out_pts, warp.size)
    return src


def render(digit: np.ndarray, warp: Warp) -> torch.Tensor:
    """Sample ``digit`` [28, 28] uint8 through ``warp`` -> float32 [S, S] in [0, 1], background 0."""
    s = warp.size
    ys, xs = np.meshgrid(np.arange(s) + 0.5, np.arange(s) + 0.5, indexing="ij")
    out_pts = np.stack([xs.ravel(), ys.ravel()], 1)  # [S*S, 2] output pixel centres (x, y)
    src = source_points(warp, out_pts)  # [S*S, 2]
    grid = torch.from_numpy(2.0 * src / SRC_SIZE - 1.0).float().view(1, s, s, 2)  # align_corners=False
    img = torch.tensor(digit, dtype=torch.float32).div(255.0).view(1, 1, SRC_SIZE, SRC_SIZE)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # [1, 1, S, S]
    return out[0, 0].clamp(0.0, 1.0)


def _add_clutter(
    image: torch.Tensor, sources: np.ndarray, pieces: int, rng: np.random.Generator
) -> torch.Tensor:
    """Max-composite ``pieces`` 8x8 crops, centred on a random ink pixel of a random source digit."""
    s = image.shape[-1]
    out = image.clone()  # [S, S]
    for _ in range(pieces):
        src = sources[rng.integers(len(sources))]  # [28, 28] uint8
        rows, cols = np.nonzero(src)
        if rows.size:
            j = rng.integers(rows.size)
            cy, cx = rows[j], cols[j]
        else:
            cy, cx = rng.integers(SRC_SIZE, size=2)
        half, top = CLUTTER_CROP // 2, SRC_SIZE - CLUTTER_CROP
        y0, x0 = int(np.clip(cy - half, 0, top)), int(np.clip(cx - half, 0, top))
        crop = torch.from_numpy(
            src[y0 : y0 + CLUTTER_CROP, x0 : x0 + CLUTTER_CROP].astype(np.float32) / 255.0
        )
        py, px = (int(v) for v in rng.integers(1, s - 1 - CLUTTER_CROP + 1, size=2))  # border stays empty
        region = out[py : py + CLUTTER_CROP, px : px + CLUTTER_CROP]
        out[py : py + CLUTTER_CROP, px : px + CLUTTER_CROP] = torch.maximum(region, crop)
    return out


def distort(
    digit: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    clutter_sources: np.ndarray | None = None,
    clutter_pieces: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distort one digit.

    Args:
        digit: [28, 28] uint8 MNIST digit.
        kind: one of :data:`DISTORTIONS`.
        rng: the only source of randomness.
        clutter_sources: [M, 28, 28] uint8 OTHER digits of the same split (``cluttered`` only).
        clutter_pieces: number of 8x8 clutter crops (``cluttered`` only).

    Returns:
        image: float32 [S, S] in [0, 1], background 0, ``S = canvas_size(kind)``.
        box: float32 [4] ``x0, y0, x1, y1`` around the transformed digit ink, output pixel coords.
    """
    digit = np.asarray(digit)
    if digit.shape != (SRC_SIZE, SRC_SIZE) or digit.dtype != np.uint8:
        raise ValueError(
            f"distort: expected a [28, 28] uint8 digit, got shape {digit.shape} dtype {digit.dtype}"
        )
    warp = sample_warp(digit, kind, rng)
    image = render(digit, warp)  # [S, S]
    if kind == "cluttered" and clutter_pieces > 0:
        if clutter_sources is None or len(clutter_sources) == 0:
            raise ValueError(
                "distort: kind='cluttered' needs clutter_sources (other digits of the same split)"
            )
        image = _add_clutter(image, np.asarray(clutter_sources), clutter_pieces, rng)
    return image, torch.from_numpy(warp.box.astype(np.float32))
