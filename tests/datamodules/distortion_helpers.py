"""Test oracles for datamodules.distortions: one-digit warp sampling and the warp's point mapping."""

import numpy as np

from datamodules.distortions import Warp, _source_points, sample_warps


def sample_warp(digit: np.ndarray, kind: str, rng: np.random.Generator) -> Warp:
    """Sample the distortion ``kind`` for ``digit`` [28, 28] uint8 (a batch of one of ``sample_warps``)."""
    return sample_warps(np.asarray(digit)[None], kind, [rng])[0]


def source_points(warp: Warp, out_pts: np.ndarray) -> np.ndarray:
    """The mapping itself: output pixel coords [M, 2] (x, y) -> source pixel coords [M, 2]."""
    out_pts = np.asarray(out_pts, dtype=np.float64)
    control = None if warp.control is None else warp.control[None]
    x, y = out_pts[None, None, :, 0], out_pts[None, None, :, 1]  # [1, 1, M] each
    sx, sy = _source_points(warp.out_from_src[None], control, warp.size, x, y)  # [1, 1, M] each
    return np.stack([sx[0, 0], sy[0, 0]], 1)
