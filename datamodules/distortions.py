"""Distorted MNIST as in Jaderberg et al. 2015, "Spatial Transformer Networks" (R, RTS, P, E, cluttered).

Pure functions, no Lightning; all randomness comes from the ``np.random.Generator`` passed in (one per
digit).

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

Batching: :func:`sample_warps`, :func:`render_batch` and :func:`distort_batch` work on a batch of
digits (each with its own generator) with array operations over the batch and one ``grid_sample``
per batch; only the cheap random draws loop over the digits, each digit drawing from its own
generator in a fixed order. The one-digit functions (:func:`render`, :func:`distort`) are the
batched ones with a batch of one, so both give the same result for a digit.
Every geometric step works per digit (elementwise arithmetic with explicit 3x3 products instead of
BLAS, one LAPACK solve or inverse per matrix, min/max over each digit's own points), so a digit's
result does not depend on the batch it is in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DISTORTIONS",
    "Warp",
    "Warps",
    "canvas_size",
    "distort",
    "distort_batch",
    "render",
    "render_batch",
    "sample_warps",
]

DISTORTIONS = ("none", "r", "rts", "p", "e", "cluttered")
_CANVAS = {"none": 28, "r": 28, "rts": 42, "p": 28, "e": 28, "cluttered": 60}
SRC_SIZE = 28  # source digits are [28, 28]
MARGIN = 1.0  # output ink stays in [MARGIN, S - MARGIN]: the 1-pixel border is empty
_BILINEAR_PAD = 0.5  # bilinear sampling spreads an ink pixel by up to half a pixel
R_MAX_DEG = 90.0
RTS_MAX_DEG, RTS_SCALE = 45.0, (0.7, 1.2)
P_SCALE, P_SIGMA, P_TRIES = (0.75, 1.0), 0.1, 10  # corner noise std = P_SIGMA * ink-box side
E_GRID, E_SIGMA, E_MAX, E_ITERS = 4, 2.0, 3.0, 12  # 4x4 control offsets ~ N(0, 2 px), clamped to +-3 px
E_CHUNK = 32  # points per row when iterating the elastic box
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


@dataclass(frozen=True)
class Warps:
    """A batch of B sampled distortions on one canvas size (the batched form of :class:`Warp`).

    Attributes:
        out_from_src: [B, 3, 3] forward homographies, source pixel coords -> output pixel coords.
        control: [B, 2, G, G] elastic control offsets (x, y) in source pixels, or ``None``.
        size: output canvas side S (shared by the batch).
        box: [B, 4] ``x0, y0, x1, y1`` of each transformed ink, output pixel coords.
    """

    out_from_src: np.ndarray
    control: np.ndarray | None
    size: int
    box: np.ndarray

    def __len__(self) -> int:
        return len(self.out_from_src)

    def __getitem__(self, b: int) -> Warp:
        """The ``b``-th warp of the batch."""
        control = None if self.control is None else self.control[b]
        return Warp(out_from_src=self.out_from_src[b], control=control, size=self.size, box=self.box[b])

    @staticmethod
    def stack(warps: Sequence[Warp]) -> Warps:
        """Batch warps of one canvas size that all have (or all lack) an elastic field."""
        sizes = {w.size for w in warps}
        elastic = {w.control is not None for w in warps}
        if len(sizes) != 1 or len(elastic) != 1:
            raise ValueError(
                f"Warps.stack: expected warps of one size that all have or all lack control, got sizes "
                f"{sorted(sizes)} and control present {sorted(elastic)}"
            )
        return Warps(
            out_from_src=np.stack([w.out_from_src for w in warps]),
            control=np.stack([w.control for w in warps]) if elastic == {True} else None,
            size=sizes.pop(),
            box=np.stack([w.box for w in warps]),
        )


def canvas_size(kind: str) -> int:
    """Output canvas side for ``kind`` (none/r/p/e: 28, rts: 42, cluttered: 60)."""
    _check_kind(kind)
    return _CANVAS[kind]


def _check_kind(kind: str) -> None:
    if kind not in _CANVAS:
        raise ValueError(f"unknown distortion {kind!r}; valid choices: {', '.join(DISTORTIONS)}")


# ---------------------------------------------------------------- batched 3x3 geometry (pixel coords)
def _eye(b: int) -> np.ndarray:
    """Identity homographies [B, 3, 3]."""
    h = np.zeros((b, 3, 3))
    h[:, 0, 0] = h[:, 1, 1] = h[:, 2, 2] = 1.0
    return h


def _translate(t: np.ndarray) -> np.ndarray:
    """Translations by ``t`` [B, 2] -> [B, 3, 3]."""
    h = _eye(len(t))
    h[:, :2, 2] = t
    return h


def _scale(k: np.ndarray) -> np.ndarray:
    """Isotropic scalings by ``k`` [B] -> [B, 3, 3]."""
    h = _eye(len(k))
    h[:, 0, 0] = h[:, 1, 1] = k
    return h


def _rotate(degrees: Sequence[float]) -> np.ndarray:
    """Rotations by ``degrees`` [B] -> [B, 3, 3] (scalar libm cos/sin per digit, batch-independent)."""
    rad = [math.radians(d) for d in degrees]
    cos, sin = np.array([math.cos(a) for a in rad]), np.array([math.sin(a) for a in rad])  # [B] each
    h = _eye(len(cos))
    h[:, 0, 0], h[:, 0, 1], h[:, 1, 0], h[:, 1, 1] = cos, -sin, sin, cos
    return h


def _chain(*hs: np.ndarray) -> np.ndarray:
    """Matrix product ``hs[0] @ hs[1] @ ...`` of [B, 3, 3] stacks, written out elementwise.

    Elementwise (not BLAS) so each digit's product is bitwise the same whatever its batch.
    """
    out = hs[0]
    for h in hs[1:]:
        out = (
            out[:, :, 0, None] * h[:, None, 0, :]
            + out[:, :, 1, None] * h[:, None, 1, :]
            + out[:, :, 2, None] * h[:, None, 2, :]
        )  # [B, 3, 3]
    return out


def _row(h: np.ndarray, r: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row ``r`` of homographies ``h`` [B, 3, 3] at points ``(x, y)``: ``h_r0 x + h_r1 y + h_r2``, [B, ...].

    A term whose coefficient is exactly 0 for the whole batch is skipped (adding ``0 * x`` changes no
    value), so a row without the y term keeps the broadcast shape of ``x`` (e.g. [B, 1, S] for a row
    of pixel centres), which keeps the rendering grid arithmetic small for axis-aligned warps.
    """
    c = h[:, r].reshape(len(h), 3, *[1] * (np.ndim(x) - 1))  # [B, 3, 1, ...] broadcasts over the points
    terms = [c[:, k] * p for k, p in ((0, x), (1, y)) if h[:, r, k].any()]
    if not terms:
        return c[:, 2] + np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y)))
    return (terms[0] if len(terms) == 1 else terms[0] + terms[1]) + c[:, 2]


def _apply(h: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply homographies ``h`` [B, 3, 3] to points ``(x, y)`` [B or 1, ...] each -> ``(u, v)`` [B, ...] each.

    ``u = row0 / row2``, ``v = row1 / row2``; when the whole batch is affine (last rows exactly 0 0 1)
    ``row2`` is exactly 1 and the division is skipped.
    """
    u, v = _row(h, 0, x, y), _row(h, 1, x, y)
    if not h[:, 2, :2].any() and (h[:, 2, 2] == 1).all():
        return u, v
    w = _row(h, 2, x, y)
    return u / w, v / w


def _box(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Axis-aligned boxes [B, 4] = x0, y0, x1, y1 around points ``(x, y)`` [B, M] each."""
    return np.stack([x.min(1), y.min(1), x.max(1), y.max(1)], 1)


def _uniform(u: np.ndarray, low: np.ndarray | float, high: np.ndarray | float) -> np.ndarray:
    """``Generator.uniform(low, high)`` from its underlying ``Generator.random()`` draws ``u``.

    NumPy computes ``low + (high - low) * u`` from one ``random()`` double per value, so drawing ``u``
    first lets the bounds be computed later (for the whole batch) with the same stream and result.
    """
    return low + (high - low) * u


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Homographies [B, 3, 3] mapping 4 points ``src`` [B, 4, 2] onto ``dst`` [B, 4, 2] (DLT, h33 = 1)."""
    x, y, u, v = src[..., 0], src[..., 1], dst[..., 0], dst[..., 1]  # [B, 4] each
    one, zero = np.ones_like(x), np.zeros_like(x)
    row_u = np.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)  # [B, 4, 8]
    row_v = np.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)  # [B, 4, 8]
    a = np.stack([row_u, row_v], 2).reshape(-1, 8, 8)  # [B, 8, 8], rows u0, v0, u1, v1, ...
    rhs = np.stack([u, v], -1).reshape(-1, 8, 1)  # [B, 8, 1]
    sol = np.linalg.solve(a, rhs)[..., 0]  # [B, 8], one LAPACK solve per digit
    return np.concatenate([sol, np.ones((len(sol), 1))], 1).reshape(-1, 3, 3)


def _is_convex(quad: np.ndarray) -> np.ndarray:
    """Whether each quadrilateral ``quad`` [B, 4, 2] (in order) is strictly convex -> bool [B]."""
    e = np.roll(quad, -1, axis=1) - quad  # [B, 4, 2] edges
    nxt = np.roll(e, -1, axis=1)  # [B, 4, 2] the following edges
    cross = e[..., 0] * nxt[..., 1] - e[..., 1] * nxt[..., 0]  # [B, 4]
    return np.all(cross > 0, 1) | np.all(cross < 0, 1)


# ---------------------------------------------------------------- ink point sets
class _Ink(NamedTuple):
    """Where each digit's ink is: the point sets (x and y [B, M] each) the geometry is computed on.

    Attributes:
        mask: [B, 28, 28] bool ink pixels (a blank digit counts pixels (0, 0) and (27, 27): the whole image).
        corners: corners of ink pixels, ``(x, y)`` [B, M0] each (for the boxes).
        support: corners of ink pixels grown by half a pixel, [B, M1] each (what bilinear sampling reaches).
        box: [B, 4] ink box ``x0, y0, x1, y1``.
        centre: [B, 2] ink-box centre.
    """

    mask: np.ndarray
    corners: tuple[np.ndarray, np.ndarray]
    support: tuple[np.ndarray, np.ndarray]
    box: np.ndarray
    centre: np.ndarray


def _ink_mask(digits: np.ndarray) -> np.ndarray:
    """Ink pixels [B, 28, 28] bool of ``digits`` [B, 28, 28]; blank digits get the two opposite corners."""
    mask = digits != 0
    blank = ~mask.any((1, 2))  # [B]
    mask[blank, 0, 0] = mask[blank, -1, -1] = True
    return mask


def _corner_points(mask: np.ndarray, pad: float, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct corners of every ink pixel of ``mask`` [B, 28, 28] grown by ``pad``, as rows of points.

    A pixel (r, c) grown by ``pad`` has corners ``x in {c - pad, c + 1 + pad}``, ``y`` alike, all on
    the lattice ``k - pad`` (``k = 0 .. 28 + 2 pad``; ``2 pad`` must be an integer). Each digit's
    distinct corners are listed once, in one row (``chunk=None``) or in consecutive rows of ``chunk``
    points; a digit's last row is padded by repeating its last point, which changes no min, max or
    all-test over the digit's points.

    Returns:
        x, y: [R, C] point coordinates; owner: [R] the digit of each row (``arange(B)`` when unchunked).
    """
    w = int(2 * pad)
    if w != 2 * pad:
        raise ValueError(f"_corner_points: 2 * pad must be an integer, got pad={pad}")
    b, n = len(mask), SRC_SIZE + 1 + w
    occupied = np.zeros((b, n, n), dtype=bool)  # [B, n, n] lattice points that are corners
    for dy in (0, 1 + w):
        for dx in (0, 1 + w):
            occupied[:, dy : dy + SRC_SIZE, dx : dx + SRC_SIZE] |= mask
    counts = occupied.sum((1, 2))  # [B]
    flat = np.flatnonzero(occupied)  # [P] index into [B, n, n], grouped by digit
    per_row = int(counts.max()) if chunk is None else chunk
    rows = np.ones(b, dtype=np.int64) if chunk is None else -(-counts // chunk)  # [B] rows per digit
    owner = np.repeat(np.arange(b), rows)  # [R]
    first = np.cumsum(rows) - rows  # [B] each digit's first row
    pos = (np.arange(len(owner)) - first[owner])[:, None] * per_row + np.arange(per_row)  # [R, C]
    pos = np.minimum(pos, counts[owner, None] - 1) + (np.cumsum(counts) - counts)[owner, None]
    lattice = flat[pos] - (owner * (n * n))[:, None]  # [R, C] index into [n, n]
    coord = np.arange(n) - pad  # [n] lattice coordinates
    return coord[lattice % n], coord[lattice // n], owner


def _ink(digits: np.ndarray) -> _Ink:
    """Ink point sets, box and box centre of ``digits`` [B, 28, 28]."""
    mask = _ink_mask(digits)
    corners = _corner_points(mask, 0.0)[:2]  # [B, M0] each
    box = _box(*corners)  # [B, 4]
    centre = np.stack([(box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2], 1)  # [B, 2]
    return _Ink(mask, corners, _corner_points(mask, _BILINEAR_PAD)[:2], box, centre)


# ---------------------------------------------------------------- fitting
def _fit_about(h: np.ndarray, anchor: np.ndarray, support: tuple[np.ndarray, np.ndarray], size: int) -> np.ndarray:
    """Shrink each ``h`` [B, 3, 3] about output point ``anchor`` [B, 2] (largest k <= 1) so that
    ``support`` (x, y) [B, M] lands in [M, S-M]."""
    k = np.ones(len(h))  # [B]
    for q, a in zip(_apply(h, *support), anchor.T, strict=True):  # per axis: [B, M], [B]
        q = q - a[:, None]  # relative to the anchor
        lo, hi = (MARGIN - a)[:, None], (size - MARGIN - a)[:, None]  # [B, 1] each; lo < 0 < hi
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.minimum(k, np.where(q > 0, hi / q, np.where(q < 0, lo / q, np.inf)).min(1))
    return _chain(_translate(anchor), _scale(k), _translate(-anchor), h)


def _placement(
    h: np.ndarray, support: tuple[np.ndarray, np.ndarray], size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shrink each ``h`` [B, 3, 3] if needed so ``support`` (x, y) [B, M] fits in [M, S-M] after a translation.

    Returns:
        the shrunk ``h`` [B, 3, 3] and the range ``lo``, ``hi`` [B, 2] (``lo <= hi``) of translations that fit.
    """
    u, v = _apply(h, *support)  # [B, M] each
    q_min, q_max = np.stack([u.min(1), v.min(1)], 1), np.stack([u.max(1), v.max(1)], 1)  # [B, 2] each
    k = np.minimum(1.0, ((size - 2 * MARGIN) / (q_max - q_min)).min(1))  # [B]
    return _chain(_scale(k), h), MARGIN - k[:, None] * q_min, size - MARGIN - k[:, None] * q_max


def _draw_whole_pixels(rngs: Sequence[np.random.Generator], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Uniform whole-pixel translations [B, 2] in ``[lo, hi]`` [B, 2] (a real one where no whole one fits).

    Digit b draws x then y from ``rngs[b]``.
    """
    first, last = np.ceil(lo), np.floor(hi)  # [B, 2] each
    whole = np.all(first <= last, 1).tolist()  # [B]
    first, last = first.astype(np.int64).tolist(), last.astype(np.int64).tolist()
    return np.array(
        [
            [rng.integers(first[b][0], last[b][0] + 1), rng.integers(first[b][1], last[b][1] + 1)]
            if whole[b]
            else rng.uniform(lo[b], hi[b])
            for b, rng in enumerate(rngs)
        ],
        dtype=np.float64,
    )


def _displacement(control: np.ndarray, x: np.ndarray, y: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Elastic offsets ``(dx, dy)`` [B, H, W] each (source px) of fields ``control`` [B, 2, G, G] at output
    points ``(x, y)`` [B or 1, H or 1, W or 1] each (broadcast to [B, H, W]).

    The G x G control grid spans the canvas corner to corner (node 0 at pixel coord 0, node G-1 at
    S), hence ``align_corners=True`` here; bicubic, then clamped to +-E_MAX.
    """
    gx, gy = 2.0 * x / size - 1.0, 2.0 * y / size - 1.0
    grid = np.empty((len(control), *np.broadcast_shapes(np.shape(gx), np.shape(gy))[1:], 2))  # [B, H, W, 2]
    grid[..., 0], grid[..., 1] = gx, gy
    d = F.grid_sample(
        torch.from_numpy(control), torch.from_numpy(grid), mode="bicubic", padding_mode="border", align_corners=True
    )  # [B, 2, H, W]
    d = d.clamp_(-E_MAX, E_MAX).numpy()
    return d[:, 0], d[:, 1]


# ---------------------------------------------------------------- the kinds: homographies [B, 3, 3]
# Each draws from every digit's generator in the digit's fixed order, then computes for the batch.
_WarpFn = Callable[[_Ink, Sequence[np.random.Generator], int], tuple[np.ndarray, "np.ndarray | None"]]


def _warp_none(ink: _Ink, rngs: Sequence[np.random.Generator], size: int) -> tuple[np.ndarray, None]:
    """The raw digit: identity. Draws nothing."""
    return _eye(len(rngs)), None


def _warp_r(ink: _Ink, rngs: Sequence[np.random.Generator], size: int) -> tuple[np.ndarray, None]:
    """Rotation by U(-90, 90) degrees about the ink-box centre, shrunk to fit. Draws: angle."""
    rot = _rotate([rng.uniform(-R_MAX_DEG, R_MAX_DEG) for rng in rngs])  # [B, 3, 3]
    h = _chain(_translate(ink.centre), rot, _translate(-ink.centre))
    return _fit_about(h, ink.centre, ink.support, size), None


def _warp_rts(ink: _Ink, rngs: Sequence[np.random.Generator], size: int) -> tuple[np.ndarray, None]:
    """Scale U(0.7, 1.2), rotation U(-45, 45) degrees, uniform placement. Draws: scale, angle, x, y offset."""
    u = np.stack([rng.random(4) for rng in rngs])  # [B, 4] uniforms, in draw order
    scale, angle = _uniform(u[:, 0], *RTS_SCALE), _uniform(u[:, 1], -RTS_MAX_DEG, RTS_MAX_DEG)  # [B] each
    h = _chain(_scale(scale), _rotate(angle), _translate(-ink.centre))
    h, lo, hi = _placement(h, ink.support, size)
    return _chain(_translate(_uniform(u[:, 2:], lo, hi)), h), None


def _warp_p(ink: _Ink, rngs: Sequence[np.random.Generator], size: int) -> tuple[np.ndarray, None]:
    """Projective: scale U(0.75, 1) about the centre plus N(0, 0.1 side) noise on the ink-box corners.

    Draws: scale, then corner noise [4, 2] until the quad is convex and its horizon misses the ink
    (at most P_TRIES; then no noise). Every digit draws only as often as it needs.
    """
    x0, y0, x1, y1 = ink.box.T  # [B] each
    corners = np.stack([np.stack(p, 1) for p in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))], 1)  # [B, 4, 2]
    first = [(rng.uniform(*P_SCALE), rng.normal(0.0, 1.0, (4, 2))) for rng in rngs]
    s = np.array([f[0] for f in first])  # [B]
    noise = np.stack([f[1] for f in first])  # [B, 4, 2]
    c, sigma = ink.centre[:, None], P_SIGMA * np.stack([x1 - x0, y1 - y0], 1)[:, None]  # [B, 1, 2] each
    h = _chain(_translate(ink.centre), _scale(s), _translate(-ink.centre))  # fallback: no corner noise
    todo = np.arange(len(rngs))  # [T] digits still without an accepted quad
    for attempt in range(P_TRIES):
        if attempt:
            noise = np.stack([rngs[b].normal(0.0, 1.0, (4, 2)) for b in todo])  # [T, 4, 2]
        dst = c[todo] + s[todo, None, None] * (corners[todo] - c[todo]) + noise * sigma[todo]  # [T, 4, 2]
        cand = _homography(corners[todo], dst)  # [T, 3, 3]
        sx, sy = ink.support[0][todo], ink.support[1][todo]  # [T, M] each
        denom = sx * cand[:, 2, 0, None] + sy * cand[:, 2, 1, None] + cand[:, 2, 2, None]  # [T, M]
        ok = _is_convex(dst) & np.all(denom > 0, 1)  # [T]
        h[todo[ok]] = cand[ok]
        todo = todo[~ok]
        if not len(todo):
            break
    return _fit_about(h, ink.centre, ink.support, size), None


def _warp_e(ink: _Ink, rngs: Sequence[np.random.Generator], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Elastic: 4x4 control offsets N(0, 2 px) (bicubic, clamped to 3 px); shrunk to fit. Draws: control."""
    control = np.stack([rng.normal(0.0, E_SIGMA, (2, E_GRID, E_GRID)) for rng in rngs])  # [B, 2, G, G]
    grown = _corner_points(ink.mask, _BILINEAR_PAD + E_MAX)[:2]  # offsets move ink by at most E_MAX
    return _fit_about(_eye(len(rngs)), ink.centre, grown, size), control


def _warp_cluttered(ink: _Ink, rngs: Sequence[np.random.Generator], size: int) -> tuple[np.ndarray, None]:
    """Whole-pixel uniform placement into the 60x60 canvas. Draws: x offset, y offset (integers)."""
    h, lo, hi = _placement(_eye(len(rngs)), ink.support, size)
    return _chain(_translate(_draw_whole_pixels(rngs, lo, hi)), h), None


_WARPS: dict[str, _WarpFn] = {
    "none": _warp_none,
    "r": _warp_r,
    "rts": _warp_rts,
    "p": _warp_p,
    "e": _warp_e,
    "cluttered": _warp_cluttered,
}


# ---------------------------------------------------------------- sampling and rendering
def sample_warps(digits: np.ndarray, kind: str, rngs: Sequence[np.random.Generator]) -> Warps:
    """Sample the distortion ``kind`` for each of ``digits`` [B, 28, 28] uint8, digit b drawing from ``rngs[b]``."""
    _check_kind(kind)
    size = _CANVAS[kind]
    ink = _ink(digits)
    h, control = _WARPS[kind](ink, rngs, size)  # [B, 3, 3], [B, 2, G, G] | None
    box = _box(*_apply(h, *ink.corners)) if control is None else _elastic_box(h, control, ink.mask, size)
    return Warps(out_from_src=h, control=control, size=size, box=box)


def _elastic_box(h: np.ndarray, control: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """Boxes [B, 4] of the ink corners of ``mask`` [B, 28, 28] under ``h`` [B, 3, 3] plus elastic
    ``control`` [B, 2, G, G]: solve ``out = h(src - d(out))`` by fixed-point iteration (d is smooth).

    Points go in rows of E_CHUNK (each row with its digit's h and field), so the bicubic sampling
    is not spent on padding up to the batch's largest digit.
    """
    x, y, owner = _corner_points(mask, 0.0, chunk=E_CHUNK)  # [R, C] each, [R]
    h, control = h[owner], control[owner]  # [R, 3, 3], [R, 2, G, G]
    u, v = _apply(h, x, y)  # [R, C] each, ink corners in the output
    for _ in range(E_ITERS):
        dx, dy = _displacement(control, u[:, None], v[:, None], size)  # [R, 1, C] each
        u, v = _apply(h, x - dx[:, 0], y - dy[:, 0])
    first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])  # [B] each digit's first row
    lo = [np.minimum.reduceat(q.min(1), first) for q in (u, v)]  # x0, y0: [B] each
    hi = [np.maximum.reduceat(q.max(1), first) for q in (u, v)]  # x1, y1
    return np.stack([*lo, *hi], 1)


def _source_points(
    out_from_src: np.ndarray, control: np.ndarray | None, size: int, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Output pixel coords ``(x, y)`` [1, H or 1, W or 1] each (together spanning [1, H, W]) -> source pixel
    coords [B, H or 1, W or 1] each (broadcastable to [B, H, W])."""
    sx, sy = _apply(np.linalg.inv(out_from_src), x, y)  # [B, H|1, W|1] each
    if control is not None:
        dx, dy = _displacement(control, x, y, size)
        sx, sy = sx + dx, sy + dy
    return sx, sy


def render_batch(digits: np.ndarray, warps: Warps) -> torch.Tensor:
    """Sample ``digits`` [B, 28, 28] uint8 through ``warps`` -> float32 [B, S, S] in [0, 1], background 0.

    One bilinear ``grid_sample`` for the whole batch.
    """
    b, s = len(digits), warps.size
    centres = np.arange(s) + 0.5  # [S] pixel centres
    sx, sy = _source_points(warps.out_from_src, warps.control, s, centres[None, None], centres[None, :, None])
    grid = torch.empty(b, s, s, 2)  # [B, S, S, 2] float32, align_corners=False
    for axis, src in enumerate((sx, sy)):  # [B, S or 1, S or 1]: broadcast, and float64 -> float32, on copy
        grid[..., axis] = torch.from_numpy(2.0 * src / SRC_SIZE - 1.0)
    img = torch.tensor(digits, dtype=torch.float32).div(255.0)[:, None]  # [B, 1, 28, 28]
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # [B, 1, S, S]
    return out[:, 0].clamp(0.0, 1.0)


def render(digit: np.ndarray, warp: Warp) -> torch.Tensor:
    """Sample ``digit`` [28, 28] uint8 through ``warp`` -> float32 [S, S] in [0, 1], background 0."""
    return render_batch(np.asarray(digit)[None], Warps.stack([warp]))[0]


# ---------------------------------------------------------------- clutter
def _draw_clutter(
    rng: np.random.Generator, ink_count: list[int], pieces: int, size: int
) -> list[tuple[int, int, int, int, int]]:
    """One digit's clutter draws, in order, per piece: the source, the pixel the crop centres on, the
    paste corner.

    Args:
        ink_count: [K] number of ink pixels of each of this digit's K clutter sources.

    Returns:
        per piece ``(k, j, flat, py, px)``: source ``k``; the centre is the ``j``-th ink pixel of the
        source in row-major order when ``j >= 0``, else (blank source) the random pixel
        ``flat = 28 cy + cx``; ``(py, px)`` the top-left paste corner on the canvas.
    """
    out = []
    for _ in range(pieces):
        k = int(rng.integers(len(ink_count)))
        if ink_count[k]:
            j, flat = int(rng.integers(ink_count[k])), -1
        else:
            cy, cx = rng.integers(SRC_SIZE, size=2).tolist()
            j, flat = -1, cy * SRC_SIZE + cx
        py, px = rng.integers(1, size - 1 - CLUTTER_CROP + 1, size=2).tolist()  # the border stays empty
        out.append((k, j, flat, py, px))
    return out


def _add_clutter(
    images: torch.Tensor, sources: np.ndarray, pieces: int, rngs: Sequence[np.random.Generator]
) -> torch.Tensor:
    """Max-composite ``pieces`` 8x8 crops into each of ``images`` [B, S, S], each centred on a random ink
    pixel of a random one of that image's ``sources`` [B, K, 28, 28] uint8.

    The draws loop over images (cheap); cropping and compositing are one gather and one scatter-max.
    """
    b, k_src, s = len(images), sources.shape[1], images.shape[-1]
    flat_src = sources.reshape(b * k_src, SRC_SIZE * SRC_SIZE)  # [B*K, 784]
    inked = flat_src != 0  # [B*K, 784]
    count = inked.sum(1)  # [B*K] ink pixels per source
    pix = np.flatnonzero(inked) % (SRC_SIZE * SRC_SIZE)  # [P] row-major ink pixels, grouped by source
    start = np.cumsum(count) - count  # [B*K]
    counts = count.reshape(b, k_src).tolist()  # [B][K]
    draws = np.array([_draw_clutter(rng, counts[i], pieces, s) for i, rng in enumerate(rngs)], dtype=np.int64).reshape(
        b, pieces, 5
    )  # [B, pieces, (k, j, flat, py, px)]
    src = np.arange(b)[:, None] * k_src + draws[..., 0]  # [B, pieces] index into flat_src
    centre = draws[..., 2].copy()  # [B, pieces] flat source pixel each crop centres on
    on_ink = draws[..., 1] >= 0
    centre[on_ink] = pix[start[src[on_ink]] + draws[..., 1][on_ink]]
    half, top = CLUTTER_CROP // 2, SRC_SIZE - CLUTTER_CROP
    y0 = np.clip(centre // SRC_SIZE - half, 0, top)  # [B, pieces]
    x0 = np.clip(centre % SRC_SIZE - half, 0, top)
    r = np.arange(CLUTTER_CROP)
    rows, cols = (y0[..., None, None] + r[:, None]), (x0[..., None, None] + r)  # [B, pieces, 8, 1], [.., 1, 8]
    crops = flat_src[src[..., None, None], rows * SRC_SIZE + cols].astype(np.float32) / 255.0  # [B, pieces, 8, 8]
    py, px = draws[..., 3, None, None], draws[..., 4, None, None]  # [B, pieces, 1, 1]
    target = (py + r[:, None]) * s + (px + r)  # [B, pieces, 8, 8] flat canvas index
    out = images.reshape(b, s * s).clone()  # [B, S*S]
    out.scatter_reduce_(
        1, torch.from_numpy(target.reshape(b, -1)), torch.from_numpy(crops.reshape(b, -1)), reduce="amax"
    )  # max is order-free, so this equals compositing the pieces one by one
    return out.view(b, s, s)


# ---------------------------------------------------------------- the whole distortion
def distort_batch(
    digits: np.ndarray,
    kind: str,
    rngs: Sequence[np.random.Generator],
    clutter_sources: np.ndarray | None = None,
    clutter_pieces: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distort a batch of digits, digit b drawing from ``rngs[b]`` (same result as :func:`distort` per digit).

    Args:
        digits: [B, 28, 28] uint8 MNIST digits.
        kind: one of :data:`DISTORTIONS`.
        rngs: B generators, the only source of randomness.
        clutter_sources: [B, K, 28, 28] uint8, each digit's K OTHER digits of the same split (``cluttered`` only).
        clutter_pieces: number of 8x8 clutter crops per image (``cluttered`` only).

    Returns:
        images: float32 [B, S, S] in [0, 1], background 0, ``S = canvas_size(kind)``.
        boxes: float32 [B, 4] ``x0, y0, x1, y1`` around each transformed digit ink, output pixel coords.
    """
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.shape[1:] != (SRC_SIZE, SRC_SIZE) or digits.dtype != np.uint8:
        raise ValueError(
            f"distort_batch: expected [B, 28, 28] uint8 digits, got shape {digits.shape} dtype {digits.dtype}"
        )
    if len(rngs) != len(digits):
        raise ValueError(f"distort_batch: got {len(digits)} digits but {len(rngs)} generators")
    warps = sample_warps(digits, kind, rngs)
    images = render_batch(digits, warps)  # [B, S, S]
    if kind == "cluttered" and clutter_pieces > 0:
        sources = None if clutter_sources is None else np.asarray(clutter_sources)
        if (
            sources is None
            or sources.shape[:1] + sources.shape[2:] != (len(digits), SRC_SIZE, SRC_SIZE)
            or (sources.shape[1] == 0)
        ):
            got = "None" if sources is None else f"shape {sources.shape}"
            raise ValueError(
                "distort: kind='cluttered' needs clutter_sources (other digits of the same split), "
                f"[B={len(digits)}, K >= 1, 28, 28] uint8 for distort_batch; got {got}"
            )
        images = _add_clutter(images, sources, clutter_pieces, rngs)
    return images, torch.from_numpy(warps.box.astype(np.float32))


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
        raise ValueError(f"distort: expected a [28, 28] uint8 digit, got shape {digit.shape} dtype {digit.dtype}")
    sources = None
    if clutter_sources is not None and len(clutter_sources):
        sources = np.asarray(clutter_sources)[None]  # [1, M, 28, 28]
    images, boxes = distort_batch(digit[None], kind, [rng], sources, clutter_pieces)
    return images[0], boxes[0]
