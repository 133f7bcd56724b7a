"""ConvClassifier: stage layout, any input size, gradients, bad settings named."""

import pytest
import torch
from torch import nn

from modules.classifiers import ConvClassifier


@pytest.mark.parametrize("convs_per_stage, kernel_size", [(1, 5), (2, 3)])
@pytest.mark.parametrize("size", [28, 42, 60])
def test_logits_for_every_canvas_and_gradients_everywhere(convs_per_stage, kernel_size, size):
    torch.manual_seed(0)
    model = ConvClassifier(1, 10, (8, 16, 32), hidden=24, convs_per_stage=convs_per_stage, kernel_size=kernel_size)
    logits = model(torch.rand(3, 1, size, size))
    assert logits.shape == (3, 10)
    logits.square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_convs_per_stage_stacks_convs_before_each_pool():
    model = ConvClassifier(1, 10, (8, 16), convs_per_stage=2, kernel_size=3)
    kinds = [type(layer) for layer in model.features]
    conv_block = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert kinds == [*conv_block, *conv_block, nn.MaxPool2d, *conv_block, *conv_block, nn.MaxPool2d,
                     nn.AdaptiveMaxPool2d]
    convs = [layer for layer in model.features if isinstance(layer, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 8, (3, 3)), (8, 8, (3, 3)), (8, 16, (3, 3)), (16, 16, (3, 3))]


def test_one_conv_per_stage_keeps_the_checkpoint_layout():
    """The default keeps the parameter names of checkpoints saved before convs_per_stage existed."""
    names = set(ConvClassifier(1, 10, (8, 16)).state_dict())
    assert {"features.0.weight", "features.1.running_mean", "features.4.weight", "features.5.running_mean"} <= names


@pytest.mark.parametrize("kwargs", [{"convs_per_stage": 0}, {"kernel_size": 4}])
def test_bad_settings_are_named(kwargs):
    with pytest.raises(ValueError, match="convs_per_stage must be >= 1 and kernel_size odd"):
        ConvClassifier(1, 10, (8,), **kwargs)
