"""DRAW (Gregor et al. 2015): Gaussian read and write attention, for generating digits or classifying them.

``mode=generate``: the variational model (modules.draw). Logged per split: ``nll_bound`` (the negative ELBO, nats
per image; what checkpoints monitor), ``reconstruction`` and ``kl``; on test, with ``importance_samples=K``, the
K-sample importance-weighted bound ``nll_iw``. Figures each validation epoch: the canvas after every step with the
write window, the read windows over the inputs, and images drawn from the prior.

``mode=classify``: read attention driving a recurrent classifier (modules.glimpse_classifier). Logged: loss, acc,
error, and on val/test the IoU of the last glimpse's window with the digit's box (``iou``) next to the whole image's
(``iou_identity``). Figure: the glimpse sequence over validation inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from figures.draw import canvas_steps_figure, read_windows_figure, sample_grid_figure
from figures.publish import log_figure
from metrics.per_split import ALL_SPLITS, PerSplit
from modules.draw import DRAWNetwork, importance_weighted_nats, kl_nats, reconstruction_nats
from modules.gaussian_window import GaussianWindow
from modules.glimpse_classifier import GlimpseClassifier
from modules.spatial_transformer import box_mask
from tasks.base import Task
from tasks.localisation import log_box_iou

MODES = ("generate", "classify")
FIGURE_SEED = 0  # validation draws its noise from a fixed private generator: the same z every epoch


class DRAWTask(Task):
    """See the module docstring."""

    def __init__(self, *, mode: str, image_size: int, num_classes: int, class_names: Sequence[str], steps: int,
                 read: str, write: str, read_size: int, write_size: int, encoder_size: int, decoder_size: int,
                 latent_size: int, importance_samples: int, lr: float, window_lr_scale: float, weight_decay: float,
                 warmup_fraction: float, num_figure_samples: int, num_prior_samples: int) -> None:
        """
        Args:
            mode: "generate" (the variational model) or "classify" (read attention -> recurrent classifier).
            image_size: input height = width (the datamodule's canvas).
            num_classes, class_names: the classes (classify) and their names in figures.
            steps: T, the number of glimpses / drawing steps.
            read: "attention" (N x N Gaussian window) or "full" (the whole image; generate only).
            write: "attention" or "full" (generate only).
            read_size: N of the read window (the classifier's glimpse size).
            write_size: N of the write window.
            encoder_size: the encoder LSTM's units (the classifier's LSTM).
            decoder_size: the decoder LSTM's units.
            latent_size: units of each z_t.
            importance_samples: K > 0 adds the K-sample importance-weighted bound on test (K passes per batch).
            lr, weight_decay, warmup_fraction: AdamW with the one-cycle schedule.
            window_lr_scale: the learning rate of the layers that place the windows, relative to lr (a window that
                moves fast changes what every later step reads, and recurrent windows then run away).
            num_figure_samples: validation images in the per-epoch figures.
            num_prior_samples: images drawn from the prior in the per-epoch sample grid.
        """
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"model.mode={mode!r} is not known; choose one of {list(MODES)}")
        if mode == "classify" and read != "attention":
            raise ValueError("model.mode=classify reads through the Gaussian window: set model.read=attention")
        if importance_samples < 0:
            raise ValueError(f"model.importance_samples={importance_samples} must be >= 0 (0: off)")
        self.save_hyperparameters()
        self.class_names = list(class_names)
        if mode == "generate":
            self.network = DRAWNetwork(height=image_size, width=image_size, steps=steps, read=read, write=write,
                                       read_size=read_size, write_size=write_size, encoder_size=encoder_size,
                                       decoder_size=decoder_size, latent_size=latent_size)
            self.bound = PerSplit(MeanMetric)
            self.reconstruction = PerSplit(MeanMetric)
            self.kl = PerSplit(MeanMetric)
            self.importance_bound = PerSplit(MeanMetric, ("test",))
        else:
            self.network = GlimpseClassifier(height=image_size, width=image_size, steps=steps,
                                             glimpse_size=read_size, hidden_size=encoder_size,
                                             num_classes=num_classes)
            self.accuracy = PerSplit(lambda: MulticlassAccuracy(num_classes, average="micro"), ALL_SPLITS)
            self.iou = PerSplit(MeanMetric)
            self.iou_identity = PerSplit(MeanMetric)

    @property
    def generating(self) -> bool:
        return self.hparams.mode == "generate"

    # --- steps ---------------------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.generating:
            drawn = self.network(batch["image"][:, 0])
            reconstruction, kl = reconstruction_nats(drawn, batch["image"][:, 0]), kl_nats(drawn)
            loss = (reconstruction + kl).mean()                                               # the negative ELBO
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
            self.log("train/kl", kl.mean(), on_step=True, on_epoch=True)
            return loss
        glimpsed = self.network(batch["image"])
        loss = F.cross_entropy(glimpsed.logits.float(), batch["label"])
        self.accuracy["train"](glimpsed.logits, batch["label"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.accuracy["train"], on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def _evaluate(self, batch: dict[str, torch.Tensor], batch_idx: int, split: str) -> None:
        if self.generating:
            self._evaluate_bound(batch, batch_idx, split)
        else:
            self._evaluate_classifier(batch, batch_idx, split)

    def _noise(self, batch_idx: int) -> torch.Generator:
        """A private generator for evaluation's z, seeded by the batch: evaluation neither consumes training's
        random stream (so resumed runs continue it exactly) nor changes from epoch to epoch but by the weights."""
        return torch.Generator(device=self.device).manual_seed(FIGURE_SEED + batch_idx)

    def _evaluate_bound(self, batch: dict[str, torch.Tensor], batch_idx: int, split: str) -> None:
        images = batch["image"][:, 0]                                                         # [B, H, W]
        drawn = self.network(images, self._noise(batch_idx))
        reconstruction, kl = reconstruction_nats(drawn, images), kl_nats(drawn)
        for name, metric, value in (("nll_bound", self.bound, reconstruction + kl),
                                    ("reconstruction", self.reconstruction, reconstruction), ("kl", self.kl, kl)):
            metric[split](value)
            self.log(f"{split}/{name}", metric[split], on_step=False, on_epoch=True, prog_bar=name == "nll_bound")
        if split == "test" and self.hparams.importance_samples:
            bound = importance_weighted_nats(self.network, images, self.hparams.importance_samples,
                                             self._noise(batch_idx))
            self.importance_bound["test"](bound)
            self.log("test/nll_iw", self.importance_bound["test"], on_step=False, on_epoch=True)
        if split == "val" and batch_idx == 0:
            count = self.hparams.num_figure_samples
            self.keep_figure_sample({
                "image": images[:count].float().cpu(), "canvases": drawn.canvases[:, :count].float().cpu(),
                "read_boxes": None if drawn.read_boxes is None else drawn.read_boxes[:, :count].float().cpu(),
                "write_boxes": None if drawn.write_boxes is None else drawn.write_boxes[:, :count].float().cpu(),
            })

    def _evaluate_classifier(self, batch: dict[str, torch.Tensor], batch_idx: int, split: str) -> None:
        glimpsed = self.network(batch["image"])
        loss = F.cross_entropy(glimpsed.logits.float(), batch["label"])
        self.accuracy[split](glimpsed.logits, batch["label"])
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log(f"{split}/acc", self.accuracy[split], on_step=False, on_epoch=True)
        height, width = batch["image"].shape[-2:]
        log_box_iou(self, split, box_mask(glimpsed.boxes[-1], height, width), batch["box"], height, width)
        if split == "val" and batch_idx == 0:
            count = self.hparams.num_figure_samples
            self.keep_figure_sample({
                "image": batch["image"][:count, 0].float().cpu(), "boxes": glimpsed.boxes[:, :count].float().cpu(),
                "glimpses": glimpsed.glimpses[:, :count].float().cpu(), "label": batch["label"][:count].cpu(),
                "pred": glimpsed.logits[:count].argmax(-1).cpu(),
            })

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, torch.Tensor | None]:
        """classify: image [B, 1, H, W] -> probabilities [B, K], glimpse boxes [T, B, 4], glimpses [T, B, N, N].
        generate: {"count": K} -> canvases [T, K, H, W] (logits) and write boxes [T, K, 4] (None: full writes)."""
        if self.generating:
            drawn = self.network.generate(int(batch["count"]), batch.get("generator"))
            return {"canvases": drawn.canvases, "write_boxes": drawn.write_boxes}
        glimpsed = self.network(batch["image"])
        return {"probabilities": glimpsed.logits.float().softmax(-1), "boxes": glimpsed.boxes,
                "glimpses": glimpsed.glimpses}

    def parameter_groups(self) -> list[dict[str, Any]]:
        windows = [p for module in self.network.modules() if isinstance(module, GaussianWindow)
                   for p in module.parameters()]
        placed = {id(p) for p in windows}
        return [{"params": [p for p in self.parameters() if id(p) not in placed]},
                {"params": windows, "lr_scale": self.hparams.window_lr_scale}]

    # --- epoch ends ----------------------------------------------------------------------------------------

    def log_split_end(self, split: str) -> None:
        if not self.generating:
            self.log(f"{split}/error", 1.0 - self.accuracy[split].compute(), prog_bar=split == "val")

    def log_figures(self, sample: dict[str, Any]) -> None:
        if not self.generating:
            titles = [f"{self.class_names[p]} / {self.class_names[t]}"
                      for p, t in zip(sample["pred"].tolist(), sample["label"].tolist(), strict=True)]
            log_figure(self.trainer, "val/glimpses",
                       read_windows_figure(sample["image"], sample["boxes"], titles, sample["glimpses"]),
                       caption="glimpse windows (dark to light: step 1 to T) and what each read; predicted / true")
            return
        log_figure(self.trainer, "val/canvas_steps",
                   canvas_steps_figure(sample["canvases"], sample["write_boxes"], sample["image"]),
                   caption="the canvas after each step, red: the write window; last column: the input")
        if sample["read_boxes"] is not None:
            log_figure(self.trainer, "val/read_windows", read_windows_figure(sample["image"], sample["read_boxes"]),
                       caption="read windows over the input (dark to light: step 1 to T)")
        generator = torch.Generator(device=self.device).manual_seed(FIGURE_SEED)
        drawn = self.network.generate(self.hparams.num_prior_samples, generator)
        log_figure(self.trainer, "val/samples", sample_grid_figure(drawn.canvases[-1].cpu()),
                   caption="drawn from the prior (Bernoulli means)")
