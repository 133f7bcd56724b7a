"""How well a model's attended region covers the digit: the IoU that the STN and DRAW classifiers log."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from modules.spatial_transformer import box_mask, mask_iou


def log_box_iou(task: pl.LightningModule, split: str, region: torch.Tensor | None, boxes: torch.Tensor,
                height: int, width: int) -> None:
    """Update and log ``task.iou[split]`` (IoU of ``region`` [B, H, W] bool with the digit ``boxes`` [B, 4]; skipped
    when there is no region) and ``task.iou_identity[split]`` (the whole canvas's IoU, the baseline)."""
    truth = box_mask(boxes, height, width)                                                    # [B, H, W]
    task.iou_identity[split](mask_iou(torch.ones_like(truth), truth))
    task.log(f"{split}/iou_identity", task.iou_identity[split], on_step=False, on_epoch=True)
    if region is not None:
        task.iou[split](mask_iou(region, truth))
        task.log(f"{split}/iou", task.iou[split], on_step=False, on_epoch=True)
