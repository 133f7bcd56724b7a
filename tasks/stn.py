"""Spatial-transformer classification of distorted digits: the paper's CNN baseline and ST-CNN."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from modules.classifiers import ConvClassifier
from modules.spatial_transformer import (
    HeatmapLocalisationNet,
    LocalisationNet,
    SpatialTransformer,
    box_mask,
    mask_iou,
    sampled_region_mask,
)
from tasks.figure_logging import log_figure
from tasks.optim import adamw_one_cycle

ARCHS = ("cnn", "st_cnn")
LOCALISATIONS = ("regression", "heatmap")
SPLITS = ("train", "val", "test")


class STNClassifier(pl.LightningModule):
    """Classify digits, optionally through a spatial transformer; log error, localisation IoU and figures."""

    def __init__(self, arch: str = "st_cnn", image_size: int = 42, num_classes: int = 10,
                 st_out_size: int | None = None, channels: tuple[int, ...] = (32, 64), hidden: int = 256,
                 dropout: float = 0.2, batch_norm: bool = True, kernel_size: int = 5, convs_per_stage: int = 1,
                 localisation: str = "regression", loc_batch_norm: bool | None = None,
                 loc_init_scale: float = 1.0, lr: float = 3e-3,
                 loc_lr_scale: float = 0.3, weight_decay: float = 1e-4, label_smoothing: float = 0.0,
                 warmup_fraction: float = 0.15, channels_last: bool = False, num_figure_samples: int = 8,
                 class_names: list[str] | None = None) -> None:
        """
        Args:
            arch: "cnn" (the baseline) or "st_cnn" (a spatial transformer in front of the same CNN).
            image_size: input height = width (the datamodule's canvas size).
            num_classes: number of classes.
            st_out_size: size of the transformer's output (default: image_size).
            channels, hidden, dropout, batch_norm, kernel_size, convs_per_stage: the classifier
                (modules.classifiers.ConvClassifier).
            localisation: how the transformer finds where to look: "regression" (the paper's: a CNN regresses the
                six affine parameters) or "heatmap" (the translation is the soft-argmax of a convolutional
                heatmap, the rest regressed; modules.spatial_transformer.HeatmapLocalisationNet).
            loc_batch_norm: BatchNorm in the localisation net (default: same as batch_norm); see
                modules.spatial_transformer.LocalisationNet for why it matters on cluttered digits.
            loc_init_scale: the transformer's theta at init, times the identity (1: identity; < 1 zooms in).
            lr: peak learning rate of the one-cycle schedule (AdamW).
            loc_lr_scale: the localisation net's learning rate relative to lr.
            weight_decay: AdamW weight decay.
            label_smoothing: cross-entropy label smoothing in training (0: none).
            warmup_fraction: fraction of all steps spent warming up.
            channels_last: NHWC memory format (faster convolutions with bf16 and on tensor cores).
            num_figure_samples: validation images shown in the before/after figure each epoch.
            class_names: names shown in figures (default: the class indices).
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
        # per split (ModuleDict keys cannot be "train": nn.Module.train exists)
        self.accuracy = torch.nn.ModuleDict(
            {f"{split}_": MulticlassAccuracy(num_classes, average="micro") for split in SPLITS}
        )
        self.iou = torch.nn.ModuleDict({f"{split}_": MeanMetric() for split in ("val", "test")})
        self.iou_identity = torch.nn.ModuleDict({f"{split}_": MeanMetric() for split in ("val", "test")})
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        self._figure_batch: dict[str, torch.Tensor] | None = None
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
        accuracy = self.accuracy[f"{split}_"]
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
            self._figure_batch = {
                "image": batch["image"][:count].float().cpu(), "label": batch["label"][:count].cpu(),
                "transformed": out["transformed"][:count].float().cpu(),
                "pred": out["logits"][:count].argmax(-1).cpu(),
                "theta": out["theta"][:count].float().cpu() if out["theta"] is not None else None,
            }

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
        truth = box_mask(batch["box"], height, width)                              # [B, H, W]
        whole = torch.ones_like(truth)
        self.iou_identity[f"{split}_"](mask_iou(whole, truth))
        self.log(f"{split}/iou_identity", self.iou_identity[f"{split}_"], on_step=False, on_epoch=True)
        if out["theta"] is not None:
            self.iou[f"{split}_"](mask_iou(sampled_region_mask(out["theta"], height, width), truth))
            self.log(f"{split}/iou", self.iou[f"{split}_"], on_step=False, on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        # `val/error` is what checkpoints monitor: 1 - accuracy over the whole (synced) validation set
        self.log("val/error", 1.0 - self.accuracy["val_"].compute(), prog_bar=True, sync_dist=False)
        if self._figure_batch is not None and not self.trainer.sanity_checking:
            log_figure(self.trainer, "val/transformer", self.before_after_figure(self._figure_batch),
                       caption="input (red: region sampled) | transformed; predicted / true")
        self._figure_batch = None

    def on_test_epoch_end(self) -> None:
        self.log("test/error", 1.0 - self.accuracy["test_"].compute(), sync_dist=False)

    def before_after_figure(self, sample: dict[str, Any]) -> plt.Figure:
        """Two rows: inputs (with the sampled region outlined) and what the classifier sees, titled predicted / true
        class (``sample``: image, transformed, pred, theta (or None), label (or None: predicted only))."""
        count = sample["image"].shape[0]
        figure, axes = plt.subplots(2, count, figsize=(1.4 * count, 3.2), squeeze=False)
        size = sample["image"].shape[-1]
        corners = torch.tensor([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1], [-1, -1, 1]], dtype=torch.float)
        for i in range(count):
            axes[0, i].imshow(sample["image"][i, 0], cmap="gray", vmin=0, vmax=1)
            if sample["theta"] is not None:
                # theta maps output coords to input coords in [-1, 1] (align_corners=False): pixel = (x+1)*S/2 - 0.5
                xy = (corners @ sample["theta"][i].T + 1) * size / 2 - 0.5          # [5, 2] pixel coords
                axes[0, i].plot(xy[:, 0], xy[:, 1], color="red", linewidth=1)
                axes[0, i].set_xlim(-0.5, size - 0.5)
                axes[0, i].set_ylim(size - 0.5, -0.5)
            axes[1, i].imshow(sample["transformed"][i, 0], cmap="gray", vmin=0, vmax=1)
            pred = int(sample["pred"][i])
            if sample.get("label") is None:  # a prediction on the user's own image: no truth to compare with
                axes[1, i].set_title(f"predicted {self.class_names[pred]}", fontsize=8)
            else:
                true = int(sample["label"][i])
                axes[1, i].set_title(f"{self.class_names[pred]} / {self.class_names[true]}", fontsize=8,
                                     color="green" if pred == true else "red")
            for ax in axes[:, i]:
                ax.axis("off")
        axes[0, 0].set_title("input", fontsize=8, loc="left")
        figure.tight_layout()
        return figure

    def configure_optimizers(self) -> dict[str, Any]:
        localisation = list(self.transformer.parameters()) if self.transformer is not None else []
        return adamw_one_cycle(
            self,
            [{"params": list(self.classifier.parameters())},
             {"params": localisation, "lr_scale": self.hparams.loc_lr_scale}],
            lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
            warmup_fraction=self.hparams.warmup_fraction,
        )
