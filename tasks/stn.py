"""Spatial-transformer classification of distorted digits (Jaderberg et al. 2015): the CNN baseline and ST-CNN.

Logged per split: loss, accuracy and error (``val/error`` is what checkpoints monitor); on val/test the IoU of the
region the transformer samples with the digit's true box, next to the identity transform's; each epoch a figure of
validation inputs with the sampled region outlined and what the classifier saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from figures.publish import log_figure
from figures.transformer import before_after_figure
from metrics.per_split import ALL_SPLITS, PerSplit
from modules.classifiers import ConvClassifier
from modules.spatial_transformer import (
    HeatmapLocalisationNet,
    LocalisationNet,
    SpatialTransformer,
    sampled_region_mask,
)
from tasks.base import Task
from tasks.localisation import log_box_iou

ARCHS = ("cnn", "st_cnn")
LOCALISATIONS = ("regression", "heatmap")


class STNClassifier(Task):
    """Classify digits, optionally through a spatial transformer; see the module docstring."""

    def __init__(self, *, arch: str, image_size: int, num_classes: int, class_names: Sequence[str] | None,
                 st_out_size: int | None, channels: Sequence[int], hidden: int, dropout: float, batch_norm: bool,
                 kernel_size: int, convs_per_stage: int, localisation: str, loc_batch_norm: bool | None,
                 loc_init_scale: float, lr: float, loc_lr_scale: float, weight_decay: float, label_smoothing: float,
                 warmup_fraction: float, channels_last: bool, num_figure_samples: int) -> None:
        """
        Args:
            arch: "cnn" (the baseline) or "st_cnn" (a spatial transformer in front of the same CNN).
            image_size: input height = width (the datamodule's canvas size).
            num_classes: number of classes.
            class_names: names shown in figures (None: the class indices).
            st_out_size: size of the transformer's output (None: image_size).
            channels, hidden, dropout, batch_norm, kernel_size, convs_per_stage: the classifier
                (modules.classifiers.ConvClassifier).
            localisation: how the transformer finds where to look: "regression" (the paper's: a CNN regresses the
                six affine parameters) or "heatmap" (the translation is the soft-argmax of a convolutional
                heatmap, the rest regressed; modules.spatial_transformer.HeatmapLocalisationNet).
            loc_batch_norm: BatchNorm in the localisation net (None: as batch_norm); see
                modules.spatial_transformer.LocalisationNet for why it matters on cluttered digits.
            loc_init_scale: the transformer's theta at init, times the identity (1: identity; < 1 zooms in).
            lr: peak learning rate of the one-cycle schedule (AdamW).
            loc_lr_scale: the localisation net's learning rate relative to lr.
            weight_decay: AdamW weight decay.
            label_smoothing: cross-entropy label smoothing in training (0: none).
            warmup_fraction: fraction of all steps spent warming up.
            channels_last: NHWC memory format (faster convolutions with bf16 and on tensor cores).
            num_figure_samples: validation images shown in the before/after figure each epoch.
        """
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"model.arch={arch!r} is not a known architecture; choose one of {list(ARCHS)}")
        if localisation not in LOCALISATIONS:
            raise ValueError(f"model.localisation={localisation!r} is not known; choose one of {list(LOCALISATIONS)}")
        self.save_hyperparameters()
        self.transformer = None
        if arch == "st_cnn":
            loc_norm = batch_norm if loc_batch_norm is None else loc_batch_norm
            if localisation == "heatmap":
                locator = HeatmapLocalisationNet(1, batch_norm=loc_norm, init_scale=loc_init_scale)
            else:
                locator = LocalisationNet(1, image_size, batch_norm=loc_norm, init_scale=loc_init_scale)
            self.transformer = SpatialTransformer(locator, out_size=st_out_size)
        self.classifier = ConvClassifier(1, num_classes, tuple(channels), hidden, dropout,
                                         batch_norm=batch_norm, kernel_size=kernel_size,
                                         convs_per_stage=convs_per_stage)
        self.accuracy = PerSplit(lambda: MulticlassAccuracy(num_classes, average="micro"), ALL_SPLITS)
        self.iou = PerSplit(MeanMetric)
        self.iou_identity = PerSplit(MeanMetric)
        self.class_names = list(class_names or [str(i) for i in range(num_classes)])
        if channels_last:
            # here, not in a fit hook: DDP must wrap parameters already in their final layout, or its
            # gradient buckets keep pointing at the old storage
            self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B, 1, H, W] in [0, 1] -> logits [B, K], transformed [B, 1, S, S], theta [B, 2, 3] | None."""
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        theta = None
        transformed = images
        if self.transformer is not None:
            transformed, theta = self.transformer(images)
        return {"logits": self.classifier(transformed), "transformed": transformed, "theta": theta}

    def _shared_step(self, batch: dict[str, torch.Tensor], split: str) -> tuple[torch.Tensor, dict]:
        out = self(batch["image"])
        smoothing = self.hparams.label_smoothing if split == "train" else 0.0
        loss = F.cross_entropy(out["logits"].float(), batch["label"], label_smoothing=smoothing)
        accuracy = self.accuracy[split]
        accuracy(out["logits"], batch["label"])
        on_step = split == "train"
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=not on_step)
        self.log(f"{split}/acc", accuracy, on_step=False, on_epoch=True)
        return loss, out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self._shared_step(batch, "train")
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, out = self._shared_step(batch, "val")
        self._update_localisation(batch, out, "val")
        if batch_idx == 0:
            count = self.hparams.num_figure_samples
            self.keep_figure_sample({
                "image": batch["image"][:count].float().cpu(), "label": batch["label"][:count].cpu(),
                "transformed": out["transformed"][:count].float().cpu(),
                "pred": out["logits"][:count].argmax(-1).cpu(),
                "theta": out["theta"][:count].float().cpu() if out["theta"] is not None else None,
            })

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, out = self._shared_step(batch, "test")
        self._update_localisation(batch, out, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int = 0) -> dict[str, torch.Tensor | None]:
        """image [B, 1, H, W] in [0, 1] -> class probabilities [B, K], what the classifier saw [B, 1, S, S] and
        theta [B, 2, 3] (None for the plain CNN)."""
        out = self(batch["image"])
        return {"probabilities": out["logits"].float().softmax(dim=-1), "transformed": out["transformed"],
                "theta": out["theta"]}

    def _update_localisation(self, batch: dict[str, torch.Tensor], out: dict, split: str) -> None:
        """IoU between the region the transformer samples and the digit's true box (and the identity's)."""
        height, width = batch["image"].shape[-2:]
        region = sampled_region_mask(out["theta"], height, width) if out["theta"] is not None else None
        log_box_iou(self, split, region, batch["box"], height, width)

    def log_split_end(self, split: str) -> None:
        # 1 - accuracy over the whole split (synced over ranks by the metric)
        self.log(f"{split}/error", 1.0 - self.accuracy[split].compute(), prog_bar=split == "val", sync_dist=False)

    def log_figures(self, sample: dict[str, Any]) -> None:
        log_figure(self.trainer, "val/transformer", before_after_figure(sample, self.class_names),
                   caption="input (red: region sampled) | transformed; predicted / true")

    def parameter_groups(self) -> list[dict[str, Any]]:
        localisation = list(self.transformer.parameters()) if self.transformer is not None else []
        return [{"params": list(self.classifier.parameters())},
                {"params": localisation, "lr_scale": self.hparams.loc_lr_scale}]
