"""Spatial transformer: identity at init, gradients everywhere, background padding, region masks."""

import math

import pytest
import torch

from modules.spatial_transformer import (
    HeatmapLocalisationNet,
    LocalisationNet,
    SpatialTransformer,
    box_mask,
    mask_iou,
    sampled_region_mask,
)


def make_st(size: int = 42, out_size: int | None = None, background: float = 0.0) -> SpatialTransformer:
    torch.manual_seed(0)
    return SpatialTransformer(LocalisationNet(1, size), out_size=out_size, background=background)


def test_identity_at_init_returns_input():
    st = make_st()
    images = torch.rand(4, 1, 42, 42)
    out, theta = st(images)
    assert theta.shape == (4, 2, 3)
    torch.testing.assert_close(theta, torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(4, 2, 3))
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_output_size_and_gradients_reach_every_parameter():
    st = make_st(out_size=28)
    torch.nn.init.normal_(st.localisation.regressor[-1].weight, std=0.01)  # as after a first update
    images = torch.rand(3, 1, 42, 42)
    out, theta = st(images)
    assert out.shape == (3, 1, 28, 28)
    (out.square().mean() + theta.square().sum()).backward()
    for name, parameter in st.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_outside_the_input_is_background_not_zero():
    background = -0.42
    st = make_st(size=8, background=background)
    images = torch.full((1, 1, 8, 8), 1.0)
    zoom_out = torch.tensor([[[2.0, 0, 0], [0, 2.0, 0]]])  # sample a region twice as big as the input
    out = st.sample(images, zoom_out)
    assert out[0, 0, 0, 0].item() == pytest.approx(background)   # corner: far outside
    assert out[0, 0, 4, 4].item() == pytest.approx(1.0)          # centre: inside


def test_translation_moves_content_by_the_expected_pixels():
    st = make_st(size=8)
    images = torch.zeros(1, 1, 8, 8)
    images[0, 0, 3, 5] = 1.0
    shift = torch.tensor([[[1.0, 0, 2 / 8], [0, 1.0, 0]]])  # sample one pixel to the right
    out = st.sample(images, shift)
    assert out[0, 0, 3, 4].item() == pytest.approx(1.0)


def test_identity_region_is_the_whole_image_and_scaled_region_a_centred_square():
    identity = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    assert sampled_region_mask(identity, 10, 10).all()
    smaller = torch.tensor([[[0.45, 0, 0], [0, 0.45, 0]]])  # covers pixel centres 3..6 of 0..9
    mask = sampled_region_mask(smaller, 10, 10)[0]
    assert mask.sum() == 16 and mask[3:7, 3:7].all()
    rotated = torch.tensor([[[math.cos(0.3), -math.sin(0.3), 0], [math.sin(0.3), math.cos(0.3), 0]]]) * 0.5
    assert 20 <= sampled_region_mask(rotated, 10, 10).sum() <= 30


def test_box_mask_and_iou():
    boxes = torch.tensor([[2.0, 2.0, 6.0, 6.0], [0.0, 0.0, 10.0, 10.0]])
    masks = box_mask(boxes, 10, 10)
    assert masks[0].sum() == 16 and masks[1].all()
    iou = mask_iou(masks, torch.ones_like(masks))
    torch.testing.assert_close(iou, torch.tensor([0.16, 1.0]))


def test_init_scale_zooms_in_on_the_centre_for_every_input():
    localisation = LocalisationNet(1, 20, init_scale=0.5).eval()
    theta = localisation(torch.rand(3, 1, 20, 20))                                          # [3, 2, 3]
    expected = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]).expand(3, 2, 3)
    torch.testing.assert_close(theta, expected)
    images = torch.zeros(1, 1, 20, 20)
    images[..., 5:15, 5:15] = 1.0                                                            # the central half
    transformer = SpatialTransformer(LocalisationNet(1, 20, init_scale=0.5).eval())
    out, _ = transformer(images)
    assert out.mean() > 0.9  # the output is (almost) all central square


def test_heatmap_localisation_starts_at_the_scaled_identity_for_every_input():
    localisation = HeatmapLocalisationNet(1, init_scale=0.5).eval()
    theta = localisation(torch.rand(3, 1, 60, 60))                                          # [3, 2, 3]
    torch.testing.assert_close(theta, torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]).expand(3, 2, 3))


def test_heatmap_translation_points_at_the_hot_cell():
    localisation = HeatmapLocalisationNet(1, channels=(4,), batch_norm=False, init_scale=0.5).eval()
    with torch.no_grad():  # features = ReLU(conv(image)): a centre-tap conv copies the pooled image
        conv = localisation.features[0]
        conv.weight.zero_()
        conv.weight[:, 0, 2, 2] = 1.0
        conv.bias.zero_()
        localisation.heatmap.weight.fill_(50.0)                 # a sharp heatmap wherever there is ink
    images = torch.zeros(2, 1, 40, 40)
    images[0, 0, 4:8, 30:34] = 1.0                              # top right
    images[1, 0, 30:34, 4:8] = 1.0                              # bottom left
    theta = localisation(images)
    # the ink's centre, in [-1, 1]: x = (32 / 40) * 2 - 1 = 0.6, y = (6 / 40) * 2 - 1 = -0.7
    torch.testing.assert_close(theta[0, :, 2], torch.tensor([0.6, -0.7]), atol=0.06, rtol=0)
    torch.testing.assert_close(theta[1, :, 2], torch.tensor([-0.7, 0.6]), atol=0.06, rtol=0)
    torch.testing.assert_close(theta[:, :, :2], torch.tensor([[0.5, 0.0], [0.0, 0.5]]).expand(2, 2, 2))


def test_heatmap_localisation_gradients_reach_every_parameter():
    torch.manual_seed(0)
    localisation = HeatmapLocalisationNet(1)
    torch.nn.init.normal_(localisation.linear[-1].weight, std=0.01)   # as after a first update
    transformer = SpatialTransformer(localisation, out_size=28)
    out, theta = transformer(torch.rand(4, 1, 60, 60))
    (out.square().mean() + theta.square().sum()).backward()
    for name, parameter in transformer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"
