"""Encoders: conv and ResNet feature grids (shapes, gradients, freezing, pretrained weights), packed text encoder."""

from pathlib import Path
from urllib.error import URLError

import hydra
import pytest
import torch
import torchvision
from omegaconf import OmegaConf
from torch import nn

from modules.encoders import (
    ConvGridEncoder,
    ResNetGridEncoder,
    TextEncoder,
    is_frozen,
    resnet_weights,
)

B = 2


def images(size: int | tuple[int, int], batch: int = B, seed: int = 0) -> torch.Tensor:
    height, width = (size, size) if isinstance(size, int) else size
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))  # [B, 3, H, W]


def resnet(trainable: str = "none", grid_size: int | tuple[int, int] | None = 14, arch: str = "resnet18"):
    torch.manual_seed(0)
    return ResNetGridEncoder(arch, pretrained=False, grid_size=grid_size, trainable=trainable)


def bn_stats(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: buffer.clone() for name, buffer in module.named_buffers()}


def assert_every_parameter_has_gradient(module: nn.Module) -> None:
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(parameter.grad).all(), f"non-finite gradient for {name}"
        assert parameter.grad.abs().sum() > 0, f"zero gradient for {name}"


# --- ConvGridEncoder -------------------------------------------------------------------------------------------

def test_conv_encoder_turns_64x64_into_an_8x8_grid():
    encoder = ConvGridEncoder(channels=(32, 64, 128), strided=False)
    features = encoder(images(64))
    assert features.shape == (B, 64, 128) and encoder.out_dim == 128
    assert encoder.grid_shape(64) == (8, 8)
    assert torch.isfinite(features).all()


@pytest.mark.parametrize("size, grid", [((60, 60), (7, 7)), ((32, 48), (4, 6))])
def test_conv_encoder_grid_shape_matches_forward(size, grid):
    encoder = ConvGridEncoder(channels=(4, 8, 16), strided=False, blocks_per_stage=2)
    assert encoder.grid_shape(size) == grid
    assert encoder(images(size)).shape == (B, grid[0] * grid[1], 16)


def test_conv_encoder_grid_is_row_major():
    """Position n of the grid is row n // w, column n % w: a bright spot at a known cell shows up there."""
    encoder = ConvGridEncoder(channels=(4,), strided=False, batch_norm=False, normalize_input=False).eval()
    with torch.no_grad():
        conv = encoder.features[0]
        conv.weight.zero_()
        conv.weight[:, :, 1, 1] = 1.0  # identity-like 3x3 kernel summing channels
        conv.bias.zero_()
    image = torch.zeros(1, 3, 8, 6)
    image[0, :, 4, 2] = 1.0  # pixel (4, 2) -> grid cell (2, 1) of a 4x3 grid
    features = encoder(image)  # [1, 12, 4]
    assert encoder.grid_shape((8, 6)) == (4, 3)
    assert features[0, :, 0].nonzero().flatten().tolist() == [2 * 3 + 1]


def test_conv_encoder_normalises_inputs_by_half():
    torch.manual_seed(0)
    normalising = ConvGridEncoder(channels=(4, 8), strided=False).eval()
    plain = ConvGridEncoder(channels=(4, 8), strided=False, normalize_input=False).eval()
    plain.load_state_dict(normalising.state_dict())
    x = images(16)
    torch.testing.assert_close(normalising(x), plain(x * 2 - 1))


def test_conv_encoder_gradient_reaches_every_parameter():
    encoder = ConvGridEncoder(channels=(4, 8, 16), strided=False, blocks_per_stage=2)
    features = encoder(images(32))
    (features * torch.randn_like(features)).sum().backward()
    assert_every_parameter_has_gradient(encoder)


def test_conv_encoder_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        ConvGridEncoder(channels=(32, 64, 128), strided=False)(torch.rand(B, 1, 64, 64))


# --- ResNetGridEncoder ------------------------------------------------------------------------------------------

def test_resnet18_gives_196_positions_of_512_at_224():
    encoder = resnet()
    with torch.no_grad():
        features = encoder(images(224))
    assert features.shape == (B, 196, 512) and encoder.out_dim == 512
    assert encoder.grid_shape(224) == (14, 14)
    assert torch.isfinite(features).all()


@pytest.mark.parametrize("grid_size, size, grid", [(4, 64, (4, 4)), ((2, 3), 64, (2, 3)), (None, 96, (3, 3)),
                                                   (None, (70, 100), (3, 4))])
def test_resnet_grid_size_option(grid_size, size, grid):
    encoder = resnet(grid_size=grid_size)
    assert encoder.grid_shape(size) == grid
    with torch.no_grad():
        assert encoder(images(size)).shape == (B, grid[0] * grid[1], 512)


def test_resnet50_has_2048_features():
    encoder = resnet(arch="resnet50", grid_size=2)
    assert encoder.out_dim == 2048
    with torch.no_grad():
        assert encoder(images(32, batch=1)).shape == (1, 4, 2048)


def test_unknown_resnet_arch_and_trainable_are_refused():
    with pytest.raises(ValueError, match="resnet18, resnet34, resnet50, resnet101, resnet152"):
        ResNetGridEncoder("resnet19", pretrained=False, grid_size=2, trainable="none")
    with pytest.raises(ValueError, match="none, last, all"):
        ResNetGridEncoder("resnet18", pretrained=False, grid_size=2, trainable="some")


def test_trainable_resnet_gradient_reaches_every_parameter():
    encoder = resnet(trainable="all", grid_size=2).train()
    assert not is_frozen(encoder)
    features = encoder(images(64))
    (features * torch.randn_like(features)).sum().backward()
    assert_every_parameter_has_gradient(encoder)


def test_frozen_resnet_stays_in_eval_and_keeps_its_batchnorm_statistics():
    encoder = resnet(trainable="none", grid_size=2)
    parent = nn.Sequential(encoder, nn.Linear(512, 3))
    assert is_frozen(encoder) and not any(p.requires_grad for p in encoder.parameters())
    parent.train()
    assert parent.training and all(not module.training for module in encoder.trunk.modules())
    before = bn_stats(encoder)
    features = encoder(images(64))
    assert not features.requires_grad  # the frozen trunk runs without autograd
    for name, buffer in encoder.named_buffers():
        assert torch.equal(buffer, before[name]), f"{name} changed in a frozen encoder"


def test_frozen_resnet_still_passes_gradients_to_inputs_that_need_them():
    encoder = resnet(trainable="none", grid_size=2)
    x = images(64).requires_grad_(True)
    encoder(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.parameters())


def test_resnet_last_trains_only_layer4():
    encoder = resnet(trainable="last", grid_size=2)
    trainable = {name for name, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("trunk.layer4.") for name in trainable)
    assert trainable == {name for name, _ in encoder.named_parameters() if name.startswith("trunk.layer4.")}
    encoder.train()
    assert encoder.trunk.layer4.training and not encoder.trunk.layer3.training and not encoder.trunk.bn1.training
    before = bn_stats(encoder)
    features = encoder(images(64))
    (features * torch.randn_like(features)).sum().backward()
    for name, parameter in encoder.named_parameters():
        if name.startswith("trunk.layer4."):
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None, name
    after = bn_stats(encoder)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith("trunk.layer4.") for name in changed)


def test_pretrained_requests_torchvision_default_weights(monkeypatch):
    assert resnet_weights("resnet50", pretrained=True) is torchvision.models.ResNet50_Weights.DEFAULT
    assert resnet_weights("resnet152", pretrained=True) is torchvision.models.ResNet152_Weights.DEFAULT
    assert resnet_weights("resnet18", pretrained=False) is None
    seen = []
    real = torchvision.models.resnet18

    def fake_resnet18(weights=None, **kwargs):
        seen.append(weights)
        return real(weights=None, **kwargs)  # no download

    monkeypatch.setattr(torchvision.models, "resnet18", fake_resnet18)
    encoder = ResNetGridEncoder("resnet18", pretrained=True, grid_size=2, trainable="none")
    assert seen == [torchvision.models.ResNet18_Weights.DEFAULT] and encoder.pretrained


def test_pretrained_download_failure_says_what_to_do(monkeypatch):
    def offline(weights=None, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torchvision.models, "resnet34", offline)
    with pytest.raises(RuntimeError, match=r"resnet34-.*\.pth.*pretrained=false"):
        ResNetGridEncoder("resnet34", pretrained=True, grid_size=2, trainable="none")


@pytest.mark.parametrize(("name", "kind"), [("conv", ConvGridEncoder), ("resnet", ResNetGridEncoder)])
def test_encoder_configs_build_their_encoder(name, kind):
    """configs/model/encoder/<name>.yaml instantiates as is: every argument it sets exists and nothing is missing."""
    config = OmegaConf.load(Path(__file__).resolve().parents[2] / "configs" / "model" / "encoder" / f"{name}.yaml")
    encoder = hydra.utils.instantiate(config)
    assert isinstance(encoder, kind) and encoder.grid_shape(64) in ((8, 8), (14, 14))


def test_resnet_normalises_unit_range_images_itself():
    encoder = resnet(grid_size=2).eval()
    pixels = images(64)                                                              # [B, 3, 64, 64] in [0, 1]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = encoder.pool(encoder.trunk((pixels - mean) / std)).flatten(2).transpose(1, 2)
        torch.testing.assert_close(encoder(pixels), expected)
        assert not torch.allclose(encoder(pixels), encoder.pool(encoder.trunk(pixels)).flatten(2).transpose(1, 2))
    assert "mean" not in encoder.state_dict()  # a buffer of constants, not a weight of checkpoints


def test_is_frozen():
    encoder = ConvGridEncoder(channels=(4,), strided=False)
    assert not is_frozen(encoder)
    encoder.requires_grad_(False)
    assert is_frozen(encoder)


# --- TextEncoder ------------------------------------------------------------------------------------------------

V, E, H, S = 11, 6, 5, 7
TEXT_CONFIGS = [("gru", True, 1), ("lstm", True, 2), ("gru", False, 2), ("lstm", False, 1)]


def text_encoder(rnn: str = "gru", bidirectional: bool = True, num_layers: int = 1) -> TextEncoder:
    torch.manual_seed(0)
    return TextEncoder(V, E, H, rnn=rnn, bidirectional=bidirectional, num_layers=num_layers).eval()


def text_batch(lengths: list[int], steps: int = S, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, V, (len(lengths), steps), generator=generator)  # [B, S], no pad id among real tokens
    lengths_t = torch.tensor(lengths)                                          # [B]
    tokens = tokens.masked_fill(torch.arange(steps) >= lengths_t.unsqueeze(1), 0)
    return tokens, lengths_t


@pytest.mark.parametrize("rnn, bidirectional, num_layers", TEXT_CONFIGS)
def test_text_encoder_shapes_mask_and_zero_padding(rnn, bidirectional, num_layers):
    encoder = text_encoder(rnn, bidirectional, num_layers)
    tokens, lengths = text_batch([7, 3, 1])
    out = encoder(tokens, lengths)
    width = H * (2 if bidirectional else 1)
    assert encoder.out_dim == width
    assert out.states.shape == (3, S, width) and out.final.shape == (3, width)
    assert out.mask.dtype == torch.bool and out.mask.sum(1).tolist() == [7, 3, 1]
    assert torch.equal(out.mask, torch.arange(S) < lengths.unsqueeze(1))
    assert (out.states[~out.mask] == 0).all()
    assert (out.states[out.mask] != 0).any(-1).all()


@pytest.mark.parametrize("rnn, bidirectional, num_layers", TEXT_CONFIGS)
def test_packed_path_equals_an_unpacked_run_on_unpadded_input(rnn, bidirectional, num_layers):
    encoder = text_encoder(rnn, bidirectional, num_layers)
    tokens, lengths = text_batch([S, S, S])
    out = encoder(tokens, lengths)
    states, hidden = encoder.rnn(encoder.embedding(tokens))  # the same weights, no packing
    h_n = hidden[0] if rnn == "lstm" else hidden
    directions = 2 if bidirectional else 1
    final = h_n.view(num_layers, directions, 3, H)[-1].transpose(0, 1).reshape(3, directions * H)
    torch.testing.assert_close(out.states, states)
    torch.testing.assert_close(out.final, final)
    torch.testing.assert_close(out.final[:, :H], states[:, -1, :H])  # forward: last token
    if bidirectional:
        torch.testing.assert_close(out.final[:, H:], states[:, 0, H:])  # backward: first token


@pytest.mark.parametrize("rnn, bidirectional, num_layers", TEXT_CONFIGS)
def test_padded_sequence_matches_the_same_sequence_alone(rnn, bidirectional, num_layers):
    encoder = text_encoder(rnn, bidirectional, num_layers)
    tokens, lengths = text_batch([S, 3, 5])
    out = encoder(tokens, lengths)
    for row, length in enumerate(lengths.tolist()):
        alone = encoder(tokens[row:row + 1, :length], lengths[row:row + 1])
        torch.testing.assert_close(out.states[row, :length], alone.states[0])
        torch.testing.assert_close(out.final[row], alone.final[0])
        # the forward direction's final state is its state at the last real token, not at the padding
        torch.testing.assert_close(out.final[row, :H], out.states[row, length - 1, :H])


def test_text_encoder_ignores_what_is_in_the_padding():
    encoder = text_encoder("lstm", True, 2)
    tokens, lengths = text_batch([S, 2, 4])
    out = encoder(tokens, lengths)
    noisy = torch.where(torch.arange(S) < lengths.unsqueeze(1), tokens, torch.randint(1, V, tokens.shape))
    out_noisy = encoder(noisy, lengths)
    assert torch.equal(out.states, out_noisy.states) and torch.equal(out.final, out_noisy.final)


def test_text_encoder_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    encoder = TextEncoder(V, E, H, rnn="lstm", num_layers=2, dropout=0.1).train()
    tokens, lengths = text_batch([S, 3, 5])
    out = encoder(tokens, lengths)
    (out.states.square().sum() + out.final.sum()).backward()
    assert_every_parameter_has_gradient(encoder)
    assert (encoder.embedding.weight.grad[0] == 0).all()  # the pad embedding is not trained


def test_text_encoder_rejects_bad_lengths_and_kinds():
    encoder = text_encoder()
    tokens, _ = text_batch([S, S])
    with pytest.raises(ValueError, match=r"length >= 1.*rows \[1\]"):
        encoder(tokens, torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="exceeds the padded length"):
        encoder(tokens, torch.tensor([S + 1, 2]))
    with pytest.raises(ValueError, match=r"lengths \[B\]"):
        encoder(tokens, torch.tensor([3]))
    with pytest.raises(ValueError, match="gru, lstm"):
        TextEncoder(V, E, H, rnn="transformer")
