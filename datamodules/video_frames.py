"""The frames of a clip, from per-frame image folders, video files (PyAV) or precomputed feature arrays.

Every source has ``load(key, k, image_size) -> (tensor [T <= k, ...], num_real)``: ``k`` frames sampled uniformly
over the clip (:func:`sample_frame_indices`), or all of them when the clip is shorter; :func:`pad_clips` then pads
a batch to ``k`` with zeros and a mask. Frames are resized to ``image_size x image_size`` (aspect ratio not kept)
and returned as float RGB in [0, 1]; normalisation is the encoder's business.

Layouts: ``FrameFolderSource``: ``root/<key>/*.jpg|png`` (sorted by name); ``VideoFileSource``:
``root/<key>.avi|.mp4|.webm`` (MSVD's ``YouTubeClips/*.avi``, MSR-VTT's ``TrainValVideo/*.mp4``);
``FeatureSource``: ``root/<key>.npy`` of shape ``[T, D]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from datamodules.video_annotations import VideoFormatError

__all__ = [
    "FRAME_EXTENSIONS",
    "FeatureSource",
    "FrameFolderSource",
    "VideoFileSource",
    "VideoReadError",
    "pad_clips",
    "sample_frame_indices",
]

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")


class VideoReadError(OSError):
    """A clip's video file, frame folder or feature file is missing or cannot be decoded; the message names it."""


def sample_frame_indices(total: int, k: int) -> list[int]:
    """``k`` indices uniformly spaced over ``[0, total)``: the centre of each of ``k`` equal segments.

    When ``total < k`` all ``total`` indices are returned (the caller pads and masks).
    """
    if k < 1:
        raise ValueError(f"k (frames per clip) must be >= 1, got {k}")
    if total < k:
        return list(range(max(total, 0)))
    return [int((i + 0.5) * total / k) for i in range(k)]


def _to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 ``[S, S, 3]`` arrays -> float ``[T, 3, S, S]`` in [0, 1]."""
    stacked = torch.from_numpy(np.stack(images))  # [T, S, S, 3]
    return stacked.permute(0, 3, 1, 2).float().div_(255.0)


class FrameFolderSource:
    """Frames stored as images, one folder per clip: ``root/<key>/`` (jpg/png, in name order).

    Args:
        root: the folder holding one sub-folder per clip.
        extensions: image file endings counted as frames (case-insensitive).
    """

    def __init__(self, root: str | Path, extensions: Sequence[str] = FRAME_EXTENSIONS) -> None:
        self.root = Path(root)
        self.extensions = tuple(e.lower() for e in extensions)

    def frame_paths(self, key: str) -> list[Path]:
        """The clip's frame files in name order; :class:`VideoReadError` when the folder is missing or empty."""
        folder = self.root / key
        if not folder.is_dir():
            raise VideoReadError(f"frame folder not found: {folder}")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in self.extensions)
        if not paths:
            raise VideoReadError(f"frame folder {folder} has no frames ({'/'.join(self.extensions)})")
        return paths

    def load(self, key: str, k: int, image_size: int) -> tuple[torch.Tensor, int]:
        """``k`` uniformly sampled frames -> (float ``[T <= k, 3, S, S]`` in [0, 1], T)."""
        paths = self.frame_paths(key)
        images = []
        for i in sample_frame_indices(len(paths), k):
            if paths[i].stat().st_size == 0:
                raise VideoReadError(f"frame {paths[i]} is empty (0 bytes); expected a {'/'.join(self.extensions)} "
                                     "image")
            try:
                with Image.open(paths[i]) as im:
                    rgb = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
            except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
                raise VideoReadError(f"cannot read frame {paths[i]} ({type(e).__name__}: {e})") from e
            images.append(np.asarray(rgb, dtype=np.uint8))
        return _to_tensor(images), len(images)


class VideoFileSource:
    """Frames decoded from video files ``root/<key><ext>`` with PyAV (``pip install av``).

    The whole video stream is decoded once, every frame scaled to ``S x S`` RGB on the fly (cheap at small ``S``,
    and exact: container frame counts are often wrong), then ``k`` are sampled uniformly.

    Args:
        root: the folder of video files (e.g. MSVD ``YouTubeClips``).
        extensions: endings tried in order for each key.
    """

    def __init__(self, root: str | Path, extensions: Sequence[str] = (".avi", ".mp4", ".webm")) -> None:
        self.root = Path(root)
        self.extensions = tuple(extensions)

    def path(self, key: str) -> Path:
        """The clip's video file; :class:`VideoReadError` listing the paths tried when none exists."""
        tried = [self.root / f"{key}{ext}" for ext in self.extensions]
        for candidate in tried:
            if candidate.is_file():
                return candidate
        raise VideoReadError(f"video file not found for clip {key!r}; tried {', '.join(str(p) for p in tried)}")

    def load(self, key: str, k: int, image_size: int) -> tuple[torch.Tensor, int]:
        """``k`` uniformly sampled frames -> (float ``[T <= k, 3, S, S]`` in [0, 1], T)."""
        path = self.path(key)
        frames = decode_video(path, image_size)
        picked = [frames[i] for i in sample_frame_indices(len(frames), k)]
        return _to_tensor(picked), len(picked)


def decode_video(path: Path, image_size: int) -> list[np.ndarray]:
    """Every frame of the first video stream of ``path`` as uint8 ``[S, S, 3]`` RGB.

    Raises:
        VideoReadError: PyAV not installed, the file is empty (0 bytes), cannot be opened or decoded, or it has no
            video stream or no decodable frame.
    """
    try:
        import av
    except ImportError as e:
        raise VideoReadError(f"cannot decode {path}: PyAV is not installed (pip install av)") from e
    if path.stat().st_size == 0:
        raise VideoReadError(f"video file {path} is empty (0 bytes); expected a video (.avi, .mp4, .webm)")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24", width=image_size, height=image_size))
    except VideoReadError:
        raise
    except EOFError as e:
        if not frames:  # some containers (e.g. Matroska) end the stream with EOFError before any frame
            raise VideoReadError(f"video {path} has no decodable frames ({type(e).__name__}: {e})") from e
        raise VideoReadError(f"cannot decode video {path} ({type(e).__name__}: {e})") from e
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as e:
        raise VideoReadError(f"cannot decode video {path} ({type(e).__name__}: {e})") from e
    if not frames:
        raise VideoReadError(f"video {path} has no decodable frames")
    return frames


class FeatureSource:
    """Precomputed per-frame features ``root/<key>.npy`` of shape ``[T, D]``.

    Args:
        root: the folder of ``.npy`` files.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def load(self, key: str, k: int, image_size: int | None = None) -> tuple[torch.Tensor, int]:
        """``k`` uniformly sampled rows -> (float ``[T <= k, D]``, T); ``image_size`` is ignored (same call as the
        image sources)."""
        path = self.root / f"{key}.npy"
        if not path.is_file():
            raise VideoReadError(f"feature file not found: {path}")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise VideoReadError(f"cannot read feature file {path} ({type(e).__name__}: {e})") from e
        if array.ndim != 2:
            raise VideoFormatError(f"{path}: features must have shape [T, D] (2 dims), got shape {tuple(array.shape)}")
        if array.shape[0] == 0:
            raise VideoReadError(f"feature file {path} has no frames (shape {tuple(array.shape)})")
        rows = np.asarray(array[sample_frame_indices(array.shape[0], k)], dtype=np.float32)  # [T, D]
        return torch.from_numpy(rows), rows.shape[0]


def pad_clips(clips: Sequence[torch.Tensor], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack clips ``[T_i, ...]`` (``T_i <= k``) into ``[B, k, ...]`` zero-padded, and a mask ``[B, k]`` (True = real).

    Raises:
        ValueError: no clips, a clip longer than ``k``, or clips whose per-frame shapes differ.
    """
    if not clips:
        raise ValueError("pad_clips: no clips")
    frame_shape = tuple(clips[0].shape[1:])
    padded = clips[0].new_zeros((len(clips), k, *frame_shape))  # [B, k, ...]
    mask = torch.zeros(len(clips), k, dtype=torch.bool)  # [B, k]
    for i, clip in enumerate(clips):
        if tuple(clip.shape[1:]) != frame_shape:
            raise ValueError(f"pad_clips: clip {i} has frames of shape {tuple(clip.shape[1:])}, clip 0 {frame_shape}")
        t = clip.shape[0]
        if t > k:
            raise ValueError(f"pad_clips: clip {i} has {t} frames, more than k={k}")
        padded[i, :t] = clip
        mask[i, :t] = True
    return padded, mask
