"""Video captioning data: generated clips of events (default, no download) or MSVD / MSR-VTT from disk.

``clips``: ``num_frames`` frames in which objects appear, leave, move or change colour, one event after another
(``datamodules.synthetic.event_clips``); captions describe the events in order, and the frames of every event are
kept, so the task can score where in time the model attends. Rendered once at setup, deterministic per (seed,
split, index).

``msvd`` / ``msrvtt``: captions from ``MSR Video Description Corpus.csv`` or ``*_videodatainfo.json``
(``datamodules.video_annotations``); frames from video files, folders of frame images, or precomputed ``.npy``
features [T, D] per clip (``datamodules.video_frames``), ``num_frames`` sampled uniformly; shorter clips are padded
and masked. Clips whose video is missing stop with its path, or with ``skip_bad_videos`` are skipped and counted; a
missing caption file, or a split left with no clip, stops with a :class:`VideoFormatError` that names the files and
what dropped the clips.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.sampling import SplitLoaders, make_dataloader, resolve_num_workers, split_index
from datamodules.synthetic.event_clips import EventClips
from datamodules.video_annotations import MSRVTT_SPLITS, VideoCaptions, VideoFormatError, load_msrvtt, load_msvd
from datamodules.video_frames import FeatureSource, FrameFolderSource, VideoFileSource, pad_clips
from text.vocabulary import AdoptsVocabulary, Vocabulary

log = logging.getLogger(__name__)

SOURCES = ("clips", "msvd", "msrvtt")
FRAME_SOURCES = {"video": VideoFileSource, "folder": FrameFolderSource, "features": FeatureSource}
DEFAULT_ANNOTATIONS = {"msvd": ["MSR Video Description Corpus.csv"],
                       "msrvtt": ["train_val_videodatainfo.json", "test_videodatainfo.json"]}


class DiskClips:
    """A split of a real corpus: clip keys with captions; frames (or features) read on demand."""

    def __init__(self, records: list[VideoCaptions], source: Any, num_frames: int, image_size: int) -> None:
        self.records, self.source = records, source
        self.num_frames, self.image_size = num_frames, image_size
        self.captions = [record.captions for record in records]
        self.events = [[] for _ in records]

    def __len__(self) -> int:
        return len(self.records)

    def clip(self, i: int) -> torch.Tensor:
        """Clip i: frames [T <= num_frames, 3, S, S] in [0, 1], or features [T <= num_frames, D]."""
        return self.source.load(self.records[i].key, self.num_frames, self.image_size)[0]


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


class ClipFrames(Dataset):
    """Every clip once with its index (what ``modules.feature_cache`` reads)."""

    def __init__(self, clips: RenderedClips | DiskClips) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"frames": self.clips.clip(i), "index": i}

    class Collate:
        """Items -> {image: frames [B, K, 3, H, W] zero-padded to K frames, index [B] long}."""

        def __init__(self, num_frames: int) -> None:
            self.num_frames = num_frames

        def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
            frames, _ = pad_clips([item["frames"] for item in items], self.num_frames)      # [B, K, 3, H, W]
            return {"image": frames, "index": torch.tensor([item["index"] for item in items], dtype=torch.long)}


class ClipCollate:
    """Items -> frames [B, T, 3, H, W], frame_mask [B, T], tokens/lengths, references (evaluation) and, for the
    generated clips, event_words [B, E, A] (vocabulary ids of the words naming each event, -1 padded) and
    event_frames [B, E, T] (the frames of each event)."""

    def __init__(self, vocabulary: Vocabulary, max_words: int | None, num_frames: int, features: bool = False) -> None:
        self.vocabulary, self.max_words = vocabulary, max_words
        self.num_frames, self.features = num_frames, features

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        frames, frame_mask = pad_clips([item["frames"] for item in items], self.num_frames)  # [B, K, ...], [B, K]
        batch: dict[str, Any] = {"features" if self.features else "frames": frames, "frame_mask": frame_mask,
                                 "clip_index": torch.tensor([item["clip_index"] for item in items])}
        if "caption" in items[0]:
            captions = [item["caption"] for item in items]
        else:
            batch["references"] = [item["references"] for item in items]
            captions = [refs[0] for refs in batch["references"]]
            if items[0]["events"]:  # generated clips: the ground truth of every event
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
                ids[b, k, : len(words[b][k])] = torch.tensor([self.vocabulary.word_id(w) for w in words[b][k]])
                frames[b, k, event.frames[0]: event.frames[1]] = True
        return ids, frames


class VideoCaptionDataModule(AdoptsVocabulary, SplitLoaders, pl.LightningDataModule):
    """Captioned clips for ``tasks.video_captioning``.

    Args:
        source: clips (generated) | msvd | msrvtt.
        num_clips: generated clips per split {train, val, test}.
        num_frames: frames per clip (real clips: sampled uniformly; shorter ones padded and masked).
        image_size: frame size (generated canvas; real frames resized to it).
        events_per_clip, num_captions: the generated clips.
        root: the real corpus folder; annotations: the caption file(s) in it (default: the corpus' usual names);
        frames: where real frames come from: video (files ``<frames_dir>/<key>.avi|mp4|webm``, PyAV), folder
            (``<frames_dir>/<key>/*.jpg``) or features (``<frames_dir>/<key>.npy``, [T, D]); frames_dir: relative
            to root; skip_bad_videos: skip (and count) clips whose video is missing instead of stopping;
            msvd_split_sizes: MSVD's train/val/test clips in order of first appearance (the standard 1200/100/670).
        max_caption_words: longer captions are truncated.
        batch_size, eval_batch_size, num_workers, seed: loading.
    """

    def __init__(self, *, source: str, num_clips: dict[str, int], num_frames: int, image_size: int,
                 events_per_clip: int, num_captions: int, max_caption_words: int | None, root: str | None,
                 annotations: str | list[str] | None, frames: str, frames_dir: str, skip_bad_videos: bool,
                 msvd_split_sizes: Sequence[int], batch_size: int, eval_batch_size: int | None,
                 num_workers: int | str, seed: int) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"data.source={source!r} is not a known video source; choose one of {list(SOURCES)}")
        if frames not in FRAME_SOURCES:
            raise ValueError(f"data.frames={frames!r}; choose one of {list(FRAME_SOURCES)}")
        if source != "clips" and not root:
            raise ValueError(f"data.source={source} needs data.root: the folder with the captions and the videos")
        self.save_hyperparameters()
        self.num_clips = dict(num_clips)
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

    @property
    def feature_dim(self) -> int | None:
        """Size of precomputed frame features (data.frames=features), else None (frames go through the encoder)."""
        if self.hparams.frames != "features" or self.hparams.source == "clips":
            return None
        return int(self._clips("train").clip(0).shape[-1])

    def _annotation_paths(self, root: Path) -> list[Path]:
        """The caption file(s) under ``root`` (``data.annotations``, else the corpus' usual names); a
        :class:`VideoFormatError` naming every one that is missing, what is there, and the option that picks others."""
        hp = self.hparams
        names = hp.annotations or DEFAULT_ANNOTATIONS[hp.source]
        names = [names] if isinstance(names, str) else list(names)
        option = "data.annotations=<file.csv>" if hp.source == "msvd" else "data.annotations=[<file.json>, ...]"
        if not names or (hp.source == "msvd" and len(names) != 1):
            raise ValueError(f"data.source={hp.source}: data.annotations={names}; give "
                             f"{'one CSV file' if hp.source == 'msvd' else 'one or more JSON files'}: {option}")
        paths = [root / name for name in names]
        missing = [path for path in paths if not path.is_file()]
        if missing:
            if not root.is_dir():
                there = f"data.root={root} is not a folder"
            else:
                found = sorted(p.name for p in root.iterdir() if p.suffix.lower() in (".csv", ".json"))
                there = f".csv/.json files in {root}: {found[:20] or 'none'}"
            raise VideoFormatError(
                f"data.source={hp.source}: annotation file(s) not found under data.root={root}: "
                f"{', '.join(p.name for p in missing)} (looked for {[str(p) for p in paths]}); {there}. "
                f"{option} picks the files you have (names relative to data.root)")
        return paths

    def _disk_clips(self, split: str) -> DiskClips:
        hp = self.hparams
        root = Path(hp.root).expanduser()
        paths = self._annotation_paths(root)
        if hp.source == "msvd":
            records, counts = load_msvd(paths[0], split, split_sizes=tuple(hp.msvd_split_sizes))
            listed = len(records) + counts["clips_without_captions"]
        else:
            records, counts = load_msrvtt(paths, split)
            listed = len(records) + counts["videos_without_captions"]
        source = FRAME_SOURCES[hp.frames](root / hp.frames_dir)
        missing = {r.key for r in records if not self._has_frames(source, r.key)}
        if missing and not hp.skip_bad_videos:
            raise FileNotFoundError(f"{len(missing)} {split} clips have no {hp.frames} under {root / hp.frames_dir}, "
                                    f"e.g. {next(r.key for r in records if r.key in missing)}; "
                                    "data.skip_bad_videos=true skips (and counts) them")
        counts["missing_videos"] = len(missing)
        dropped = {k: v for k, v in counts.items() if v}
        if dropped:
            log.warning("%s %s: %s", hp.source, split, ", ".join(f"{k} {v}" for k, v in dropped.items()))
        kept = [r for r in records if r.key not in missing]
        if not kept:
            raise VideoFormatError(self._empty_split(split, paths, listed, dropped))
        return DiskClips(kept, source, hp.num_frames, hp.image_size)

    def _empty_split(self, split: str, paths: list[Path], listed: int, dropped: dict[str, int]) -> str:
        """Why a real split has no clips left: what the files list for it, and what was dropped."""
        hp = self.hparams
        files = ", ".join(str(p) for p in paths)
        counted = ", ".join(f"{k} {v}" for k, v in dropped.items()) or "nothing dropped"
        message = (f"data.source={hp.source}: the {split} split is empty: {files} list {listed} {split} clip(s); "
                   f"dropped or not assigned: {counted}")
        if dropped.get("missing_videos"):
            message += (f". data.skip_bad_videos=true skipped all {dropped['missing_videos']} without {hp.frames} "
                        f"under {Path(hp.root).expanduser() / hp.frames_dir}: check data.frames_dir and data.frames")
        elif listed == 0 and hp.source == "msvd":
            message += f". data.msvd_split_sizes={list(hp.msvd_split_sizes)} gives it no clips"
        elif listed == 0:
            message += (f". No video there has split '{MSRVTT_SPLITS.get(split, split)}': data.annotations="
                        "[train_val_videodatainfo.json, test_videodatainfo.json] holds train, validate and test")
        return message

    @staticmethod
    def _has_frames(source: Any, key: str) -> bool:
        if isinstance(source, VideoFileSource):
            return any((source.root / f"{key}{ext}").is_file() for ext in source.extensions)
        if isinstance(source, FrameFolderSource):
            return (source.root / key).is_dir()
        return (source.root / f"{key}.npy").is_file()

    def _clips(self, split: str) -> RenderedClips | DiskClips:
        if split not in self.splits and self.hparams.source != "clips":
            self.splits[split] = self._disk_clips(split)
        if split not in self.splits:
            hp = self.hparams
            self.splits[split] = RenderedClips(EventClips(
                self.num_clips[split], num_frames=hp.num_frames, image_size=hp.image_size, seed=hp.seed, split=split,
                num_captions=hp.num_captions, events_per_clip=hp.events_per_clip))
            log.info("event clips %s: %d clips x %d frames", split, self.num_clips[split], hp.num_frames)
        return self.splits[split]

    def _prepare(self, split: str) -> object:
        return self._clips(split)

    def clip_loader(self, split: str) -> DataLoader:
        """Every clip of a split once, in order, as {image: frames [B, K, 3, H, W] (zero-padded), index [B]} (for a
        feature cache; not sharded across DDP ranks: each rank caches the whole split)."""
        return DataLoader(ClipFrames(self._clips(split)), batch_size=self.hparams.eval_batch_size or
                          self.hparams.batch_size, shuffle=False,
                          num_workers=resolve_num_workers(self.hparams.num_workers, self.trainer),
                          collate_fn=ClipFrames.Collate(self.hparams.num_frames))

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split == "train":
            dataset, batch_size = ClipCaptionPairs(self._clips("train")), self.hparams.batch_size
        else:
            dataset = ClipReferences(self._clips(split))
            batch_size = self.hparams.eval_batch_size or self.hparams.batch_size
        return make_dataloader(dataset, batch_size=batch_size, shuffle=shuffle, seed=self.hparams.seed,
                               num_workers=self.hparams.num_workers, trainer=self.trainer,
                               collate_fn=ClipCollate(self.vocabulary, self.hparams.max_caption_words,
                                                      self.hparams.num_frames, self.feature_dim is not None))
