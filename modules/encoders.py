"""Encoders: image -> feature grid [B, N=h*w, D], text -> states [B, S, D] + mask.

Image encoders share one interface, so the attention decoder sees any of them the same way:

    features = encoder(images)           images [B, C, H, W] -> features [B, N = h * w, D]
    encoder.out_dim                      D
    encoder.grid_shape(image_size)       (h, w) of the grid for an input of that size; position n of the
                                         grid is row n // w, column n % w (row-major, as ``flatten(2)`` gives)

Both take images in [0, 1] and normalise them themselves, so every task feeds them the same pixels:

- ``ConvGridEncoder``: a small CNN trained from scratch, for the generated 64x64 scenes (64x64 -> 8x8).
- ``ResNetGridEncoder``: a torchvision ResNet trunk for real images (Show, Attend and Tell uses a 14x14 grid),
  optionally with ImageNet weights, frozen by default; it applies ImageNet's normalisation.

The tasks build them from their ``model.encoder`` config node (``configs/model/encoder/{conv,resnet}.yaml``).

``TextEncoder`` runs a (bidirectional) GRU/LSTM over packed sequences: source sentences (NMT), questions (VQA).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.error import URLError

import torch
import torchvision
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ResNet weights were trained on images normalised so
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
TRAINABLE_CHOICES = ("none", "last", "all")
RNN_KINDS = ("gru", "lstm")


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    """An int or (h, w) -> (h, w)."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _check_images(images: Tensor, in_channels: int, who: str) -> None:
    if images.dim() != 4 or images.size(1) != in_channels:
        raise ValueError(f"{who} expects images [B, {in_channels}, H, W], got shape {tuple(images.shape)}")


def is_frozen(encoder: nn.Module) -> bool:
    """True when no parameter of ``encoder`` requires a gradient (a module without parameters is frozen)."""
    return not any(parameter.requires_grad for parameter in encoder.parameters())


class ConvGridEncoder(nn.Module):
    """Small CNN for generated scenes: per stage, ``blocks_per_stage`` x (conv3x3-BN-ReLU), then 2x2 max-pool
    (or, with ``strided``, the stage's first conv has stride 2 and there is no pool: about 4x less compute).

    Three stages turn a 64x64 image into an 8x8 grid of ``channels[-1]`` features (N = 64). Inputs are float
    images in [0, 1]; with ``normalize_input`` they are mapped to [-1, 1] (fixed mean = std = 0.5) inside.
    """

    def __init__(self, *, channels: Sequence[int], strided: bool, in_channels: int = 3, blocks_per_stage: int = 1,
                 batch_norm: bool = True, normalize_input: bool = True) -> None:
        """
        Args:
            channels: output width of each stage; each stage halves the height and width.
            strided: downsample by a stride-2 first conv per stage instead of a 2x2 max-pool after it.
            in_channels: image channels.
            blocks_per_stage: conv3x3-BN-ReLU blocks per stage before its downsampling.
            batch_norm: BatchNorm after every conv (then the conv has no bias).
            normalize_input: map [0, 1] inputs to [-1, 1] with a fixed mean and std of 0.5.
        """
        super().__init__()
        if not channels:
            raise ValueError("ConvGridEncoder: channels must name at least one stage, got ()")
        if blocks_per_stage < 1:
            raise ValueError(f"ConvGridEncoder: blocks_per_stage must be >= 1, got {blocks_per_stage}")
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            for block in range(blocks_per_stage):
                stride = 2 if strided and block == 0 else 1
                layers += [
                    nn.Conv2d(previous, width, 3, stride=stride, padding=1, bias=not batch_norm),
                    nn.BatchNorm2d(width) if batch_norm else nn.Identity(),
                    nn.ReLU(inplace=True),
                ]
                previous = width
            if not strided:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.num_stages = len(channels)
        self.strided = strided
        self.normalize_input = normalize_input
        self.out_dim = channels[-1]

    def grid_shape(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the feature grid for images of ``image_size`` (int or (H, W)); e.g. 64 -> (8, 8)."""
        height, width = _pair(image_size)
        for _ in range(self.num_stages):
            # max-pool floors; a stride-2 conv with padding 1 rounds up
            height, width = ((height + 1) // 2, (width + 1) // 2) if self.strided else (height // 2, width // 2)
        return height, width

    def forward(self, images: Tensor) -> Tensor:
        """images [B, C, H, W] in [0, 1] -> features [B, h*w, D]."""
        _check_images(images, self.in_channels, type(self).__name__)
        if self.normalize_input:
            images = (images - 0.5) / 0.5
        grid = self.features(images)                                      # [B, D, h, w]
        return grid.flatten(2).transpose(1, 2)                            # [B, N, D]


def resnet_weights(arch: str, pretrained: bool) -> torchvision.models.WeightsEnum | None:
    """torchvision's ``ResNetXX_Weights.DEFAULT`` for ``arch`` when ``pretrained``, else None (no download here)."""
    if arch not in RESNET_ARCHS:
        raise ValueError(f"unknown ResNet arch {arch!r}; choose one of {', '.join(RESNET_ARCHS)}")
    if not pretrained:
        return None
    return getattr(torchvision.models, f"ResNet{arch.removeprefix('resnet')}_Weights").DEFAULT


class ResNetGridEncoder(nn.Module):
    """A torchvision ResNet without its average pool and classifier, pooled to a fixed grid.

    Inputs are images in [0, 1], normalised here with ``IMAGENET_MEAN`` / ``IMAGENET_STD``. The trunk has stride
    32, so a 224x224 image gives 7x7 maps; ``nn.AdaptiveAvgPool2d(grid_size)`` then makes a fixed grid (14x14 = 196
    positions, as in Show, Attend and Tell; larger than the trunk's output it repeats cells).

    ``pretrained=True`` loads ``ResNetXX_Weights.DEFAULT`` (ImageNet), which torchvision DOWNLOADS on first use
    into ``$TORCH_HOME/hub/checkpoints``; offline, put the file there first or use ``pretrained=False``.

    ``trainable``:
        - ``"none"``: every parameter frozen, and the trunk stays in eval mode even when a parent module calls
          ``.train()``, so BatchNorm running statistics never change. Features can then be cached once
          (``modules.feature_cache.FeatureCache``).
        - ``"last"``: only ``layer4`` trains (and only its BatchNorms update statistics); the rest is frozen as above.
        - ``"all"``: fine-tune everything.
    The frozen part runs without autograd (less memory) unless the input images require a gradient.
    """

    def __init__(self, arch: str, *, pretrained: bool, grid_size: int | tuple[int, int] | None, trainable: str) -> None:
        """
        Args:
            arch: one of ``RESNET_ARCHS``.
            pretrained: load torchvision's ImageNet weights (needs a download, see the class docstring).
            grid_size: output grid (int or (h, w)) of the adaptive average pool; None keeps the trunk's own grid
                (ceil(H / 32) x ceil(W / 32)).
            trainable: "none" | "last" | "all" (see the class docstring).
        """
        super().__init__()
        if trainable not in TRAINABLE_CHOICES:
            raise ValueError(f"ResNetGridEncoder: unknown trainable={trainable!r}; "
                             f"choose one of {', '.join(TRAINABLE_CHOICES)}")
        weights = resnet_weights(arch, pretrained)
        resnet = _build_resnet(arch, weights)
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        self.trunk = nn.Sequential(OrderedDict((name, getattr(resnet, name)) for name in names))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.pool = nn.Identity() if grid_size is None else nn.AdaptiveAvgPool2d(_pair(grid_size))
        self.arch = arch
        self.pretrained = pretrained
        self.grid_size = None if grid_size is None else _pair(grid_size)
        self.trainable = trainable
        self.out_dim: int = resnet.fc.in_features                          # 512 (18, 34) or 2048 (50+)
        frozen_names = {"none": names, "last": names[:-1], "all": ()}[trainable]
        self._frozen_names = tuple(frozen_names)
        for name in self._frozen_names:
            self.trunk.get_submodule(name).requires_grad_(False)
        if trainable == "none" and not pretrained:
            log.warning("ResNetGridEncoder(%s): frozen and randomly initialised (pretrained=False, trainable='none'): "
                        "its features are fixed random projections", arch)
        self.train(self.training)

    def train(self, mode: bool = True) -> ResNetGridEncoder:
        """Set the training mode, keeping the frozen layers in eval mode (their BatchNorm statistics fixed)."""
        super().train(mode)
        for name in self._frozen_names:
            self.trunk.get_submodule(name).eval()
        if self.trainable == "none":
            self.trunk.eval()
        return self

    def grid_shape(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the feature grid for images of ``image_size`` (int or (H, W)); the pool's size if it has one."""
        if self.grid_size is not None:
            return self.grid_size
        height, width = _pair(image_size)
        return -(-height // 32), -(-width // 32)

    def forward(self, images: Tensor) -> Tensor:
        """images [B, 3, H, W] in [0, 1] -> features [B, h*w, out_dim]."""
        _check_images(images, 3, type(self).__name__)
        x = (images - self.mean) / self.std
        needs_input_grad = torch.is_grad_enabled() and images.requires_grad
        for name, layer in self.trunk.named_children():
            with torch.set_grad_enabled(torch.is_grad_enabled() and (name not in self._frozen_names
                                                                     or needs_input_grad)):
                x = layer(x)
        grid = self.pool(x)                                                # [B, D, h, w]
        return grid.flatten(2).transpose(1, 2)                             # [B, N, D]


def _build_resnet(arch: str, weights: torchvision.models.WeightsEnum | None) -> torchvision.models.ResNet:
    """torchvision.models.<arch>(weights=...), with a clear error when the weights cannot be downloaded."""
    try:
        return getattr(torchvision.models, arch)(weights=weights)
    except (URLError, OSError) as error:
        if weights is None:
            raise
        filename = weights.url.rsplit("/", 1)[-1]
        raise RuntimeError(
            f"ResNetGridEncoder: could not download the pretrained weights {weights} for {arch} ({error}). "
            f"Offline, copy {weights.url} to $TORCH_HOME/hub/checkpoints/{filename} "
            f"(default ~/.cache/torch/hub/checkpoints), or set pretrained=false"
        ) from error


@dataclass
class TextEncoding:
    """A batch of encoded token sequences."""

    states: Tensor  # [B, S, D] the top layer's states (both directions concatenated); exactly 0 at padding
    mask: Tensor    # [B, S] bool, True at real tokens (the attention modules' convention)
    final: Tensor   # [B, D] the last real state of each direction of the top layer, concatenated
                    #   (forward: at the last real token; backward: at the first token)


class TextEncoder(nn.Module):
    """Embedding -> (bidirectional) GRU/LSTM over packed sequences, so padding never enters the recurrence."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, rnn: str = "gru",
                 bidirectional: bool = True, num_layers: int = 1, dropout: float = 0.0, pad_id: int = 0) -> None:
        """
        Args:
            vocab_size: number of token ids.
            embed_dim: embedding width.
            hidden_dim: RNN state width per direction; the output width is ``out_dim = hidden_dim * directions``.
            rnn: "gru" | "lstm".
            bidirectional: run a backward RNN too and concatenate its states.
            num_layers: stacked RNN layers.
            dropout: dropout on the embeddings and between RNN layers.
            pad_id: padding token id (its embedding is zero and gets no gradient).
        """
        super().__init__()
        if rnn not in RNN_KINDS:
            raise ValueError(f"TextEncoder: unknown rnn={rnn!r}; choose one of {', '.join(RNN_KINDS)}")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        rnn_class = nn.GRU if rnn == "gru" else nn.LSTM
        self.rnn = rnn_class(embed_dim, hidden_dim, num_layers=num_layers, batch_first=True,
                             bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.num_directions = 2 if bidirectional else 1
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.pad_id = pad_id
        self.out_dim = hidden_dim * self.num_directions

    def forward(self, tokens: Tensor, lengths: Tensor) -> TextEncoding:
        """tokens [B, S] long, lengths [B] long (1 <= length <= S) -> TextEncoding (states [B, S, D], mask, final)."""
        if tokens.dim() != 2:
            raise ValueError(f"TextEncoder expects tokens [B, S], got shape {tuple(tokens.shape)}")
        batch, steps = tokens.shape
        if lengths.shape != (batch,):
            raise ValueError(f"TextEncoder expects lengths [B] = [{batch}], got shape {tuple(lengths.shape)}")
        lengths_cpu = lengths.detach().to("cpu", torch.long)
        if (lengths_cpu < 1).any():
            empty = (lengths_cpu < 1).nonzero().flatten().tolist()
            raise ValueError(f"TextEncoder: sequences must have length >= 1, got length "
                             f"{lengths_cpu[empty[0]].item()} at batch rows {empty[:10]} (an empty sentence "
                             f"needs at least an EOS token)")
        if (lengths_cpu > steps).any():
            raise ValueError(f"TextEncoder: a length ({lengths_cpu.max().item()}) exceeds the padded length S={steps}")
        embedded = self.dropout(self.embedding(tokens))                    # [B, S, E]
        packed = pack_padded_sequence(embedded, lengths_cpu, batch_first=True, enforce_sorted=False)
        packed_states, hidden = self.rnn(packed)
        states, _ = pad_packed_sequence(packed_states, batch_first=True, total_length=steps)  # [B, S, D], 0 at pads
        h_n = hidden[0] if isinstance(hidden, tuple) else hidden           # [L * dirs, B, H] (LSTM: (h_n, c_n))
        top = h_n.view(self.num_layers, self.num_directions, batch, self.hidden_dim)[-1]  # [dirs, B, H]
        final = top.transpose(0, 1).reshape(batch, self.out_dim)           # [B, D]
        positions = torch.arange(steps, device=tokens.device)             # [S]
        mask = positions.unsqueeze(0) < lengths.to(tokens.device).unsqueeze(1)  # [B, S]
        return TextEncoding(states=states, mask=mask, final=final)


@torch.no_grad()
def measure_grid(encoder: nn.Module, image_size: int) -> tuple[int, int]:
    """The encoder's square grid (h, w) for this input size, by one forward pass in eval mode (mode restored)."""
    was_training = encoder.training
    encoder.eval()
    positions = encoder(torch.zeros(1, 3, image_size, image_size)).shape[1]
    encoder.train(was_training)
    side = int(round(positions ** 0.5))
    if side * side != positions:
        raise ValueError(f"encoder gives {positions} positions for a {image_size}px image; expected a square grid")
    return side, side
