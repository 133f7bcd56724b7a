"""DRAW's Gaussian filterbank: the paper's parameterisation, reading, writing, the box, gradients."""

from __future__ import annotations

import pytest
import torch

from modules.gaussian_window import (
    GaussianWindow,
    Window,
    filterbank,
    filterbanks,
    read_window,
    window_from_raw,
    write_window,
)
from modules.spatial_transformer import box_mask


def window(centre_x, centre_y, stride, variance, intensity=1.0, size=4, batch=1) -> Window:
    full = lambda v: torch.full((batch,), float(v))  # noqa: E731
    return Window(full(centre_x), full(centre_y), full(stride), full(variance), full(intensity), size)


@pytest.mark.parametrize(("side", "size"), [(12, 4), (12, 2), (11, 5), (11, 3)])
def test_a_centred_stride_one_window_with_tiny_variance_reads_the_centre_crop(side, size):
    """Same parity: the grid's means fall on pixel centres (otherwise between two pixels, sharing their mass)."""
    image = torch.rand(2, 3, side, side)
    centred = window_from_raw(torch.tensor([[0.0, 0.0, -12.0, 0.0, 0.0]] * 2), side, side, size)
    centred.stride = torch.ones(2)                                      # delta = 1 pixel
    start = (side - size) // 2
    torch.testing.assert_close(read_window(image, centred), image[:, :, start:start + size, start:start + size])


def test_the_paper_parameterisation():
    raw = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0], [-1.0, 1.0, 2.0, -1.0, 1.0]])
    w = window_from_raw(raw, height=20, width=30, size=4)
    # g = (A + 1) / 2 (g~ + 1): the middle of 1..A for g~ = 0, 0 and A + 1 at g~ = -1, +1
    torch.testing.assert_close(w.centre_x, torch.tensor([15.5, 0.0]))
    torch.testing.assert_close(w.centre_y, torch.tensor([10.5, 21.0]))
    # delta = (max(A, B) - 1) / (N - 1) delta~
    torch.testing.assert_close(w.stride, torch.tensor([29 / 3, 29 / 3 * torch.e**-1]))
    torch.testing.assert_close(w.variance, torch.tensor([1.0, torch.e**2]))
    torch.testing.assert_close(w.intensity, torch.tensor([1.0, torch.e]))


def test_filter_means_are_symmetric_about_the_centre_and_rows_sum_to_one():
    bank = filterbank(torch.tensor([10.5]), torch.tensor([2.0]), torch.tensor([0.25]), size=4, length=20)
    means = (bank[0] * torch.arange(1, 21.0)).sum(-1)                   # [N] each filter's mean pixel (1-indexed)
    torch.testing.assert_close(means, torch.tensor([7.5, 9.5, 11.5, 13.5]), atol=1e-3, rtol=0)
    torch.testing.assert_close(bank.sum(-1), torch.ones(1, 4))


def test_read_then_write_with_the_same_window_is_the_identity_on_the_covered_patch():
    image = torch.rand(3, 1, 16, 16)
    w = window(7.0, 9.0, stride=1.0, variance=1e-3, intensity=2.5, size=5, batch=3)
    written = write_window(read_window(image, w), w, 16, 16)
    covered = box_mask(w.box(), 16, 16)[:, None]                        # [B, 1, H, W]
    torch.testing.assert_close(written[covered], image[covered])
    assert written[~covered].abs().max() < 1e-6


def test_the_box_matches_where_the_filters_put_their_mass():
    w = window(centre_x=20.0, centre_y=12.0, stride=3.0, variance=0.3, size=6)
    f_y, f_x = filterbanks(w, 40, 40)
    mass = f_y[0].sum(0)[:, None] * f_x[0].sum(0)[None, :]              # [H, W] the grid's mass per pixel
    inside = box_mask(w.box(), 40, 40)[0]
    assert mass[inside].sum() / mass.sum() > 0.99
    # and the box is no bigger than the grid: one stride around the outer filters' means
    x0, y0, x1, y1 = w.box()[0].tolist()
    assert (x1 - x0, y1 - y0) == (18.0, 18.0)
    assert (x0 + x1) / 2 == 19.5 and (y0 + y1) / 2 == 11.5               # pixel 20 (1-indexed) has its centre at 19.5


def test_gradients_reach_every_window_parameter_through_read_and_write():
    torch.manual_seed(0)
    module = GaussianWindow(state_size=6, size=3, height=10, width=12)
    state = torch.randn(4, 6)
    glimpse, _ = module.read(torch.rand(4, 2, 10, 12), state)
    update, _ = module.write(torch.rand(4, 2, 3, 3), state)
    (glimpse.square().sum() + update.square().sum()).backward()
    grad = module.place.weight.grad                                     # [5, S]: rows g~x, g~y, sigma, delta, gamma
    assert all(grad[row].abs().sum() > 0 for row in range(5)), grad


def test_module_shapes_and_bad_sizes():
    module = GaussianWindow(state_size=8, size=4, height=28, width=20)
    glimpse, w = module.read(torch.rand(5, 1, 28, 20), torch.randn(5, 8))
    assert glimpse.shape == (5, 1, 4, 4) and w.box().shape == (5, 4)
    update, _ = module.write(torch.rand(5, 1, 4, 4), torch.randn(5, 8))
    assert update.shape == (5, 1, 28, 20)
    with pytest.raises(ValueError, match="window size 0"):
        GaussianWindow(state_size=8, size=0, height=28, width=28)


def test_initial_window_spans_the_image_with_overlapping_filters_and_a_unit_write_gain():
    """From a zero state: centred, the grid spanning the image, sigma = delta / 2; a writing window adds about 1 at
    a filter's centre per unit written through it, a reading one averages (gamma = 1)."""
    reader = GaussianWindow(state_size=4, size=5, height=29, width=29)
    writer = GaussianWindow(state_size=4, size=5, height=29, width=29, unit_write_gain=True)
    zero = torch.zeros(1, 4)
    w = reader(zero)
    assert (float(w.centre_x), float(w.centre_y), float(w.stride)) == (15.0, 15.0, 7.0)
    assert float(w.variance) == pytest.approx(3.5**2) and float(w.intensity) == pytest.approx(1.0)
    patch = torch.zeros(1, 1, 5, 5)
    patch[0, 0, 2, 2] = 1.0                                             # through the middle filter only
    update, _ = writer.write(patch, zero)
    assert float(update[0, 0, 14, 14]) == pytest.approx(1.0, rel=0.02)   # pixel 15 (1-indexed): the centre
    glimpse, _ = reader.read(torch.ones(1, 1, 29, 29), zero)
    torch.testing.assert_close(glimpse, torch.ones(1, 1, 5, 5), atol=0.02, rtol=0)  # a uniform image reads as 1


def test_a_window_cannot_run_away_from_the_image():
    """Huge raw outputs (a recurrent state gone large) leave the window near the image: centre at most a quarter image
    beyond an edge, the grid at most twice the image's side, sigma at most the side."""
    w = window_from_raw(torch.tensor([[50.0, -50.0, 50.0, 50.0, 50.0]]), height=28, width=28, size=5)
    assert float(w.centre_x) == pytest.approx(29 / 2 * 2.5) and float(w.centre_y) == pytest.approx(29 / 2 * -0.5)
    assert float(w.stride) * 5 == pytest.approx(27 / 4 * 2 * 5) and float(w.variance) == pytest.approx(28.0**2)
    assert torch.isfinite(w.intensity).all()
