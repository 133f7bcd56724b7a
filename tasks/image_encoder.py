"""The image encoder a task's ``model.encoder`` config node describes (configs/model/encoder/)."""

from __future__ import annotations

from typing import Any

import hydra
from torch import nn


def build_image_encoder(config: Any) -> nn.Module:
    """``config``: ``_target_`` (an encoder class of ``modules.encoders``) and its arguments -> the encoder."""
    if not isinstance(config, dict) or "_target_" not in config:
        raise ValueError(f"model.encoder={config!r} is not an encoder config: pick one with model/encoder=conv or "
                         "model/encoder=resnet (a slash: encoders are a config group) and set its options as "
                         "model.encoder.<option>, e.g. model.encoder.arch=resnet50")
    return hydra.utils.instantiate(config)
