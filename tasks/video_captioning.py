"""Video captioning with temporal attention over frames (Yao et al. 2015).

frames [B, T, 3, H, W] -> the shared image encoder on all B*T frames at once -> mean over each frame's grid
-> frame features [B, T, D] (padded frames masked) -> the shared attention LSTM decoder attends over the T frames
at every word. ``temporal=mean`` is the baseline without temporal attention: the decoder sees one position, the
mean of the real frames.

Losses, decoding and caption metrics are the captioner's (``tasks.captioner``). Attention correctness here is
temporal: for each generated word that names an event's object or action, the attention mass on that event's
frames, next to what uniform weights over the real frames give.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from figures.frames import frame_attention_figure
from figures.publish import log_figure, log_table
from metrics.attention_correctness import word_object_grounding
from modules.beam_search import Decoded
from tasks.captioner import Captioner

TEMPORAL = ("attention", "mean")


class VideoCaptioner(Captioner):
    """Temporal attention over frame features; see the module docstring."""

    def __init__(self, *, temporal: str, num_frames: int, feature_dim: int | None, **captioner: Any) -> None:
        """
        Args:
            temporal: "attention" (soft attention over frames at every word) or "mean" (the mean-pool baseline).
            num_frames: frames per clip (for figures and predict.py).
            feature_dim: size of precomputed per-frame features read from disk (projected to the encoder's size);
                None: frames go through the image encoder.
            captioner: the arguments of ``tasks.captioner.Captioner`` (vocabulary, encoder, decoder sizes,
                attention soft|hard, decoding, optimiser).
        """
        if temporal not in TEMPORAL:
            raise ValueError(f"model.temporal={temporal!r}; choose one of {list(TEMPORAL)}")
        if feature_dim and captioner.get("cache_features"):
            raise ValueError("model.cache_features=true caches what the image encoder computes from frames; features "
                             "read from disk (data.frames=features) are precomputed already: drop cache_features")
        super().__init__(**captioner)
        self.feature_proj = nn.Linear(feature_dim, self.encoder.out_dim) if feature_dim else None

    def feature_cache_encoder(self) -> nn.Module:
        """frames [B, T, 3, H, W] -> per-frame features [B, T, D] (what ``cache_features`` stores, once per clip)."""
        return FrameFeatures(self.encoder)

    def feature_cache_loader(self, split: str) -> DataLoader:
        return self.trainer.datamodule.clip_loader(split)

    def memory(self, batch: dict[str, Any], split: str) -> tuple[Tensor, Tensor | None]:
        """frames [B, T, 3, H, W] (or features [B, T, F]) + frame_mask [B, T] -> frame features [B, T, D] and
        the mask (temporal=mean: their mean [B, 1, D], mask None)."""
        frame_mask = batch["frame_mask"]
        if self.feature_proj is not None:                                                 # precomputed [B, T, F]
            features = torch.tanh(self.feature_proj(batch["features"]))                   # [B, T, D]
        elif self.hparams.cache_features and split != "predict":                          # frozen encoder, cached
            features = self.cached_features(split, batch["clip_index"])                   # [B, T, D]
        else:
            features = self.feature_cache_encoder()(batch["frames"])                      # [B, T, D]
        if self.hparams.temporal == "mean":
            real = frame_mask.unsqueeze(-1).to(features.dtype)                             # [B, T, 1]
            return (features * real).sum(1, keepdim=True) / real.sum(1, keepdim=True).clamp(min=1), None
        return features, frame_mask

    def grounded_mass(self, batch: dict[str, Any], words: Tensor, attention: Tensor
                      ) -> tuple[Tensor | None, Tensor | None]:
        """Mass on the frames of the events a word names, and uniform weights' mass there (generated clips)."""
        if "event_words" not in batch or self.hparams.temporal == "mean":
            return None, None
        grounding = word_object_grounding(words, batch["event_words"])                   # [B, L, E]
        target = (grounding.float() @ batch["event_frames"].float()).clamp(max=1.0)       # [B, L, T]
        real = batch["frame_mask"].float()                                                # [B, T]
        named = grounding.any(dim=-1)                                                     # [B, L]
        mass = (attention.float() * target).sum(-1)                                       # [B, L]
        uniform = (target * real[:, None]).sum(-1) / real.sum(-1, keepdim=True).clamp(min=1)   # [B, L]
        return mass[named], uniform[named]

    def figure_sample(self, batch: dict[str, Any], decoded: Decoded, texts: list[str]) -> dict[str, Any] | None:
        if "frames" not in batch:  # precomputed features: no pixels to show
            return None
        count = self.hparams.num_figure_samples
        return {"frames": batch["frames"][:count].float().cpu(), "texts": texts[:count],
                "attention": [h.attention for h in decoded[:count]], "references": batch["references"][:count]}

    def log_figures(self, sample: dict[str, Any]) -> None:
        """The frame strip of each clip with its caption and every word's attention on every frame."""
        if self.hparams.temporal == "attention":
            log_figure(self.trainer, "val/frame_attention", frame_attention_figure(
                sample["frames"], sample["texts"], sample["attention"]),
                caption="frames; generated caption; attention of every word on every frame")
        log_table(self.trainer, "val/captions", ["generated", "references"],
                  [[text, " | ".join(refs)] for text, refs in zip(sample["texts"], sample["references"],
                                                                   strict=True)])

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, list]:
        """frames [B, T, 3, H, W] (or features [B, T, F]) + frame_mask [B, T] -> captions and each word's attention
        over the frames [L_b, T] (over one position, the mean, with temporal=mean)."""
        return self.decode_captions(*self.memory(batch, "predict"))

    def generate_clips(self, frames: Tensor, beam_size: int | None = None) -> Decoded:
        """frames [B, T, 3, H, W] -> the decoded caption of each clip (call in eval mode)."""
        mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
        return self.decode(*self.memory({"frames": frames, "frame_mask": mask}, "predict"), beam_size=beam_size)


class FrameFeatures(nn.Module):
    """An image encoder applied to every frame of a batch of clips at once, each grid mean-pooled."""

    def __init__(self, image_encoder: nn.Module) -> None:
        super().__init__()
        self.image_encoder = image_encoder

    def forward(self, frames: Tensor) -> Tensor:
        """frames [B, T, 3, H, W] -> [B, T, D]."""
        batch_size, steps = frames.shape[:2]
        grids = self.image_encoder(frames.flatten(0, 1))                                  # [B*T, N, D] at once
        return grids.mean(dim=1).view(batch_size, steps, -1)                              # [B, T, D]
