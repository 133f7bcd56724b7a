"""predict.py for video captioners: a video file, a folder of videos, a folder of frames (one clip) or .npy frame
features -> caption and the words x frames attention figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from datamodules.video_annotations import VideoFormatError
from datamodules.video_frames import FeatureSource, FrameFolderSource, VideoFileSource, VideoReadError, pad_clips
from figures.frames import frame_attention_figure
from tasks.prediction.base import Predictor
from tasks.prediction.inputs import IMAGE_EXTENSIONS, InputError, input_files

FRAME_KINDS = ("video", "video_folder", "image_folder")
FEATURE_KINDS = ("features", "feature_folder")


class ClipPredictor(Predictor):
    task = "video captioning"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uses_features = self.model.feature_proj is not None
        # a model trained on precomputed features cannot read pixels, and the other way round
        self.input_kinds = FEATURE_KINDS if self.uses_features else FRAME_KINDS
        if self.uses_features:
            self.task = "video captioning (on precomputed frame features)"
        self.frames = int(self.model.hparams.num_frames)
        self.size = int(self.model.hparams.image_size)

    def items(self, text: str, kind: str) -> list[Any]:
        if kind == "image_folder":  # the frames of one clip
            return [Path(text).expanduser()]
        return input_files(text, kind)

    def load(self, path: Path) -> dict[str, Any]:
        try:
            if self.uses_features:
                clip, _ = FeatureSource(path.parent).load(path.stem, self.frames)                  # [T, F]
            elif path.is_dir():
                clip, _ = FrameFolderSource(path.parent, IMAGE_EXTENSIONS).load(path.name, self.frames, self.size)
            else:
                clip, _ = VideoFileSource(path.parent, (path.suffix,)).load(path.stem, self.frames, self.size)
        except (VideoReadError, VideoFormatError) as error:
            raise InputError(str(error)) from error
        return {"clip": clip, "name": str(path)}                                             # [T, 3, S, S]

    def collate(self, loaded: list[dict[str, Any]]) -> dict[str, Any]:
        clips, mask = pad_clips([item["clip"] for item in loaded], self.frames)             # [B, k, ...], [B, k]
        return {"features" if self.uses_features else "frames": clips, "frame_mask": mask,
                "name": [item["name"] for item in loaded]}

    def records(self, batch: dict[str, Any], outputs: dict[str, Any]) -> list[dict[str, Any]]:
        real = batch["frame_mask"].sum(dim=1).tolist()
        return [{"input": name, "caption": caption, "frames": int(count)}
                for name, caption, count in zip(batch["name"], outputs["captions"], real, strict=True)]

    def figure(self, batch: dict[str, Any], outputs: dict[str, Any], index: int) -> plt.Figure:
        mask = batch["frame_mask"][index].cpu()                                             # [k]
        real = int(mask.sum())
        attention = outputs["attention"][index].float()                                     # [L, k] or [L, 1]
        if attention.size(-1) != mask.numel():  # temporal=mean: every real frame weighs the same
            attention = mask.float().expand(attention.size(0), -1) / max(real, 1)
        if self.uses_features:  # no pixels: grey placeholders above the words x frames matrix
            frames = torch.full((1, mask.numel(), 3, 8, 8), 0.5)
        else:
            frames = batch["frames"][index:index + 1].float().cpu()                         # [1, k, 3, S, S]
        return frame_attention_figure(frames[:, :real], outputs["captions"][index:index + 1],
                                      [attention[:, :real].cpu()])
