"""Run a frozen image encoder once over a dataset and keep its feature grids, instead of at every epoch.

    cache = FeatureCache.build(encoder, loader, num_items=len(dataset), device="cuda")   # [num_items, N, D]
    cache.save("features.pt")
    cache = FeatureCache.load("features.pt", expected=FeatureCache.describe(encoder, image_size=224))
    features = cache.lookup(batch["index"], device)                                     # [B, N, D] float32

Features are stored on the CPU in float16 by default (half the memory of float32). Size it first:
num_items * N * D * 2 bytes, e.g. Flickr8k (8,091 images) with ResNet-101 on a 14x14 grid:
8091 * 196 * 2048 * 2 B = 6.5 GB; COCO (123,287 images) would need 99 GB.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from modules.encoders import is_frozen

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def _plain(value: Any) -> Any:
    """Tuples -> lists (recursively), so metadata compares the same before and after a save."""
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


class FeatureCache:
    """Feature grids [num_items, N, D] of a frozen encoder, indexed by dataset item index."""

    def __init__(self, features: Tensor, metadata: Mapping[str, Any]) -> None:
        """
        Args:
            features: [num_items, N, D] CPU tensor (row i = item i of the dataset).
            metadata: what produced the features (see ``describe``); checked by ``load``.
        """
        if features.dim() != 3:
            raise ValueError(f"FeatureCache: features must be [num_items, N, D], got shape {tuple(features.shape)}")
        self.features = features
        self.metadata: dict[str, Any] = _plain(dict(metadata))

    @staticmethod
    def describe(encoder: nn.Module, image_size: int | tuple[int, int], **extra: Any) -> dict[str, Any]:
        """Metadata of features from ``encoder`` on images of ``image_size``: encoder class, image size, output
        width, and the encoder's ``arch`` / ``pretrained`` / ``grid_size`` when it has them; ``extra`` adds more
        (e.g. ``split="train"``, the dataset root). ``build`` stores this; pass it to ``load`` as ``expected``."""
        size = [image_size, image_size] if isinstance(image_size, int) else [int(s) for s in image_size]
        metadata: dict[str, Any] = {"encoder": type(encoder).__name__, "image_size": size}
        for name in ("arch", "pretrained", "grid_size", "out_dim"):
            if hasattr(encoder, name):
                metadata[name] = getattr(encoder, name)
        metadata.update(extra)
        return _plain(metadata)

    @classmethod
    @torch.no_grad()
    def build(cls, encoder: nn.Module, loader: Iterable[Mapping[str, Tensor]], num_items: int,
              device: torch.device | str, dtype: torch.dtype = torch.float16, progress: bool = True,
              **extra_metadata: Any) -> FeatureCache:
        """Encode every item once.

        Args:
            encoder: a frozen image encoder images [B, 3, H, W] -> [B, N, D] (no parameter requires grad); it is
                moved to ``device`` and run in eval mode (its training mode is restored after).
            loader: yields dict batches with ``image`` [B, 3, H, W] and ``index`` [B] long (dataset item index).
            num_items: number of dataset items; every index in 0..num_items-1 must be seen.
            device: where the encoder runs.
            dtype: storage dtype (float16 halves float32's memory; bfloat16 if features overflow float16).
            progress: show a tqdm progress bar.
            extra_metadata: stored with ``describe``'s metadata (e.g. ``split="train"``).

        Raises:
            ValueError: the encoder is trainable, a batch lacks a field, an index is out of range, features are not
                finite in ``dtype``, or some items were never seen (with how many).
        """
        if not is_frozen(encoder):
            trainable = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
            raise ValueError(f"FeatureCache: {type(encoder).__name__} has {trainable} trainable parameters; caching "
                             f"features of a trainable encoder would train on stale features (freeze it, e.g. "
                             f"trainable='none', or do not cache)")
        if num_items < 1:
            raise ValueError(f"FeatureCache: num_items must be >= 1, got {num_items}")
        was_training = encoder.training
        encoder.to(device).eval()
        features: Tensor | None = None
        filled = torch.zeros(num_items, dtype=torch.bool)                 # [num_items]
        image_size: tuple[int, int] | None = None
        try:
            for batch in tqdm(loader, desc=f"caching {type(encoder).__name__} features", disable=not progress):
                for field in ("image", "index"):
                    if field not in batch:
                        raise ValueError(f"FeatureCache: loader batches must have an {field!r} field, "
                                         f"got fields {sorted(batch)}")
                images, index = batch["image"], batch["index"].to("cpu", torch.long).view(-1)  # [B, 3, H, W], [B]
                if image_size is None:
                    image_size = (images.size(-2), images.size(-1))
                elif (images.size(-2), images.size(-1)) != image_size:
                    raise ValueError(f"FeatureCache: images of size {tuple(images.shape[-2:])} after {image_size}; "
                                     f"every image must have the same size")
                if index.numel() != images.size(0):
                    raise ValueError(f"FeatureCache: batch has {images.size(0)} images but {index.numel()} indices")
                bad = index[(index < 0) | (index >= num_items)]
                if bad.numel():
                    raise ValueError(f"FeatureCache: item indices {bad.unique()[:10].tolist()} out of range for "
                                     f"num_items={num_items}")
                output = encoder(images.to(device, non_blocking=True))     # [B, N, D]
                stored = output.to("cpu", dtype)                           # [B, N, D]
                if not torch.isfinite(stored).all():
                    raise ValueError(f"FeatureCache: encoder features are not finite in {dtype} (max |x| = "
                                     f"{output.abs().max().item():.3g}); use dtype=torch.bfloat16 or torch.float32")
                if features is None:
                    features = torch.empty(num_items, *output.shape[1:], dtype=dtype)  # [num_items, N, D]
                    log.info("FeatureCache: allocating %s of %s features (%.2f GB)", tuple(features.shape), dtype,
                             features.nelement() * features.element_size() / 1e9)
                elif output.shape[1:] != features.shape[1:]:
                    raise ValueError(f"FeatureCache: encoder output {tuple(output.shape[1:])} changed from "
                                     f"{tuple(features.shape[1:])}")
                features[index] = stored
                filled[index] = True
        finally:
            encoder.train(was_training)
        if features is None or image_size is None:
            raise ValueError("FeatureCache: the loader yielded no batches")
        missing = (~filled).nonzero().flatten()
        if missing.numel():
            raise ValueError(f"FeatureCache: {missing.numel()} of {num_items} items were never seen by the loader "
                             f"(first missing indices: {missing[:10].tolist()}); a loader that drops the last "
                             f"batch or a sampler that shards across processes leaves gaps")
        return cls(features, cls.describe(encoder, image_size, **extra_metadata))

    @property
    def num_items(self) -> int:
        return self.features.size(0)

    def __len__(self) -> int:
        return self.num_items

    @property
    def nbytes(self) -> int:
        """Memory of the stored features in bytes."""
        return self.features.nelement() * self.features.element_size()

    def lookup(self, index: Tensor, device: torch.device | str | None = None) -> Tensor:
        """index [B] long (dataset item indices) -> features [B, N, D] float32 on ``device`` (default: CPU)."""
        index = index.to("cpu", torch.long)
        bad = index[(index < 0) | (index >= self.num_items)]
        if bad.numel():
            raise IndexError(f"FeatureCache.lookup: indices {bad.unique()[:10].tolist()} out of range for "
                             f"{self.num_items} cached items")
        rows = self.features[index]                                        # [B, N, D]
        return rows.to(device or "cpu", torch.float32, non_blocking=True)

    def save(self, path: str | os.PathLike) -> None:
        """Write the features and metadata to ``path`` (atomically: a partial file never has the final name)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        torch.save({"version": FORMAT_VERSION, "features": self.features, "metadata": self.metadata}, partial)
        os.replace(partial, path)

    @classmethod
    def load(cls, path: str | os.PathLike, expected: Mapping[str, Any] | None = None) -> FeatureCache:
        """Read a cache saved by ``save``; every key of ``expected`` (e.g. from ``describe``) must match its metadata.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: not a FeatureCache file, or metadata differs from ``expected`` (naming each key that differs).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"FeatureCache: no cache file at {path}")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or not {"version", "features", "metadata"} <= payload.keys():
            raise ValueError(f"FeatureCache: {path} is not a feature cache (expected keys version, features, metadata)")
        if payload["version"] != FORMAT_VERSION:
            raise ValueError(f"FeatureCache: {path} has format version {payload['version']}, "
                             f"this code reads version {FORMAT_VERSION}")
        cache = cls(payload["features"], payload["metadata"])
        if expected is not None:
            differences = [
                f"{key}: cached {cache.metadata.get(key, '<absent>')!r}, expected {value!r}"
                for key, value in _plain(dict(expected)).items()
                if key not in cache.metadata or cache.metadata[key] != value
            ]
            if differences:
                raise ValueError(f"FeatureCache: {path} was built for different inputs ({'; '.join(differences)}); "
                                 f"delete it to rebuild")
        return cache
