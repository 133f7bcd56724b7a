"""Video captioning data: generated clips of events (default, no download; ``datamodules.synthetic.event_clips``).

Each clip is ``num_frames`` frames in which objects appear, leave, move or change colour, one event after
another; its captions describe the events in order, and the frames of every event are kept, so the task can
score where in time the model attends. Clips are rendered once at setup (uint8 in memory), deterministic per
(seed, split, index).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.sampling import SplitLoaders, make_dataloader, split_index
from datamodules.synthetic.event_clips import EventClips
from datamodules.vocabulary import Vocabulary

log = logging.getLogger(__name__)

SOURCES = ("clips",)


class RenderedClips:
    """A split of generated clips, rendered: frames uint8 [C, T, H, W, 3], captions, and per-event ground truth."""

    def __init__(self, clips: EventClips) -> None:
        self.frames = torch.from_numpy(np.stack([clips.frames(i) for i in range(len(clips))]))  # [C, T, H, W, 3]
        self.captions = [clips.captions(i) for i in range(len(clips))]
        self.events = [clips.events(i) for i in range(len(clips))]

    def __len__(self) -> int:
        return len(self.captions)

    def clip(self, i: int) -> torch.Tensor:
        """Clip i as float frames [T, 3, H, W] in [0, 1]."""
        return self.frames[i].permute(0, 3, 1, 2).float() / 255.0


class ClipCaptionPairs(Dataset):
    """Training: every (clip, caption) pair."""

    def __init__(self, clips: RenderedClips) -> None:
        self.clips = clips
        self.pairs = [(i, j) for i in range(len(clips)) for j in range(len(clips.captions[i]))]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        i, j = self.pairs[split_index(idx, len(self.pairs))[1]]
        return {"frames": self.clips.clip(i), "caption": self.clips.captions[i][j], "clip_index": i}


class ClipReferences(Dataset):
    """Evaluation: one item per clip with all its references and its events."""

    def __init__(self, clips: RenderedClips) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        i = split_index(idx, len(self.clips))[1]
        return {"frames": self.clips.clip(i), "references": self.clips.captions[i], "clip_index": i,
                "events": self.clips.events[i]}


class ClipCollate:
    """Items -> frames [B, T, 3, H, W], frame_mask [B, T], tokens/lengths, references (evaluation) and, for the
    generated clips, event_words [B, E, A] (vocabulary ids of the words naming each event, -1 padded) and
    event_frames [B, E, T] (the frames of each event)."""

    def __init__(self, vocabulary: Vocabulary, max_words: int | None) -> None:
        self.vocabulary, self.max_words = vocabulary, max_words

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        frames = torch.stack([item["frames"] for item in items])                                 # [B, T, 3, H, W]
        batch: dict[str, Any] = {"frames": frames, "frame_mask": torch.ones(frames.shape[:2], dtype=torch.bool),
                                 "clip_index": torch.tensor([item["clip_index"] for item in items])}
        if "caption" in items[0]:
            captions = [item["caption"] for item in items]
        else:
            batch["references"] = [item["references"] for item in items]
            captions = [refs[0] for refs in batch["references"]]
            batch["event_words"], batch["event_frames"] = self._events([item["events"] for item in items],
                                                                       frames.size(1))
        batch["tokens"], batch["lengths"] = self.vocabulary.encode_batch(captions, max_len=self.max_words)
        return batch

    def _events(self, events: Sequence[Sequence[Any]], num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        most = max(len(e) for e in events)
        words = [[[e.colour, e.shape, *e.verb_words] for e in clip] for clip in events]
        width = max(len(w) for clip in words for w in clip)
        ids = torch.full((len(events), most, width), -1, dtype=torch.long)
        frames = torch.zeros(len(events), most, num_frames, dtype=torch.bool)
        for b, clip in enumerate(events):
            for k, event in enumerate(clip):
                ids[b, k, : len(words[b][k])] = torch.tensor([self._word_id(w) for w in words[b][k]])
                frames[b, k, event.frames[0]: event.frames[1]] = True
        return ids, frames

    def _word_id(self, word: str) -> int:
        ids = self.vocabulary.encode(word)
        return ids[0] if len(ids) == 1 and ids[0] != self.vocabulary.unk_id else -1


class VideoCaptionDataModule(SplitLoaders, pl.LightningDataModule):
    """Captioned clips for ``tasks.video_captioning``.

    Args:
        source: clips (generated).
        num_clips: clips per split {train, val, test}.
        num_frames, image_size, events_per_clip, num_captions: the generated clips.
        max_caption_words: longer captions are truncated.
        batch_size, eval_batch_size, num_workers, seed: loading.
    """

    def __init__(self, source: str = "clips", num_clips: dict[str, int] | None = None, num_frames: int = 16,
                 image_size: int = 32, events_per_clip: int = 2, num_captions: int = 3,
                 max_caption_words: int | None = 24, batch_size: int = 32, eval_batch_size: int | None = None,
                 num_workers: int | str = "auto", seed: int = 0) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"data.source={source!r} is not a known video source; choose one of {list(SOURCES)}")
        self.save_hyperparameters()
        self.num_clips = {"train": 1500, "val": 150, "test": 300, **(num_clips or {})}
        self.splits: dict[str, RenderedClips] = {}
        self._vocabulary: Vocabulary | None = None

    @property
    def vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            train = self._clips("train")
            self._vocabulary = Vocabulary.build((c for caps in train.captions for c in caps), min_count=1)
            log.info("video caption vocabulary: %d words", len(self._vocabulary))
        return self._vocabulary

    @property
    def image_size(self) -> int:
        return self.hparams.image_size

    def _clips(self, split: str) -> RenderedClips:
        if split not in self.splits:
            hp = self.hparams
            self.splits[split] = RenderedClips(EventClips(
                self.num_clips[split], num_frames=hp.num_frames, image_size=hp.image_size, seed=hp.seed, split=split,
                num_captions=hp.num_captions, events_per_clip=hp.events_per_clip))
            log.info("event clips %s: %d clips x %d frames", split, self.num_clips[split], hp.num_frames)
        return self.splits[split]

    def setup(self, stage: str | None = None) -> None:
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in needed.get(stage, ("train", "val", "test")):
            self._clips(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split == "train":
            dataset, batch_size = ClipCaptionPairs(self._clips("train")), self.hparams.batch_size
        else:
            dataset = ClipReferences(self._clips(split))
            batch_size = self.hparams.eval_batch_size or self.hparams.batch_size
        return make_dataloader(dataset, batch_size=batch_size, shuffle=shuffle, seed=self.hparams.seed,
                               num_workers=self.hparams.num_workers, trainer=self.trainer,
                               collate_fn=ClipCollate(self.vocabulary, self.hparams.max_caption_words))
