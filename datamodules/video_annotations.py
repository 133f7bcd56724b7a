"""Caption files of the two standard video-captioning datasets: MSVD and MSR-VTT.

**MSVD** (Chen & Dolan 2011) ships ``MSR Video Description Corpus.csv`` with the header
``VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description``; one row per description, in many
languages. A clip is ``<VideoID>_<Start>_<End>`` (the file name of its video in ``YouTubeClips/``, without ``.avi``).
Only ``Language == "English"`` rows are kept. The standard split is 1,200 train / 100 val / 670 test clips
(Venugopalan et al. 2015). Split convention used here: clips are ordered by their **first appearance in the CSV**
(any language, so the split does not move when rows are filtered), then the first ``split_sizes[0]`` are train,
the next ``split_sizes[1]`` val, the next ``split_sizes[2]`` test. (Many codebases instead take the order of the
``YouTubeClips`` folder listing; the two orders are not guaranteed to agree.)

**MSR-VTT** (Xu et al. 2016) ships ``train_val_videodatainfo.json`` and ``test_videodatainfo.json``, each an object
with ``videos`` (``video_id`` like ``"video123"``, ``split`` in ``train`` / ``validate`` / ``test``) and
``sentences`` (``video_id``, ``caption``). The clip key is the ``video_id``.

Captions are lowercased with punctuation removed (apostrophes dropped, other punctuation -> space); empty ones are
dropped and counted. Every malformed input raises :class:`VideoFormatError` naming the file, entry and field.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text.captions import clean_caption

__all__ = [
    "MSRVTT_SPLITS",
    "MSVD_REQUIRED_COLUMNS",
    "MSVD_SPLITS",
    "VideoCaptions",
    "VideoFormatError",
    "load_msrvtt",
    "load_msvd",
]

log = logging.getLogger(__name__)

MSVD_REQUIRED_COLUMNS = ("VideoID", "Start", "End", "Language", "Description")
MSVD_SPLITS = ("train", "val", "test")
# split name asked for -> the name in the MSR-VTT files
MSRVTT_SPLITS = {"train": "train", "val": "validate", "validate": "validate", "test": "test"}


class VideoFormatError(ValueError):
    """A video caption file (or a feature file) is not as expected; the message says where and what."""


@dataclass
class VideoCaptions:
    """One clip and its captions (lowercased words joined by single spaces)."""

    key: str  # MSVD: "<VideoID>_<Start>_<End>"; MSR-VTT: "video123"
    captions: list[str]


def _split_slice(split: str, split_sizes: Sequence[int]) -> slice:
    """The slice of the ordered clip list that ``split`` takes."""
    if split not in MSVD_SPLITS:
        raise VideoFormatError(f"unknown MSVD split {split!r}, expected one of {MSVD_SPLITS}")
    if len(split_sizes) != 3 or any(int(n) < 0 for n in split_sizes):
        raise ValueError(f"split_sizes must be three non-negative counts (train, val, test), got {tuple(split_sizes)}")
    n_train, n_val, n_test = (int(n) for n in split_sizes)
    start = {"train": 0, "val": n_train, "test": n_train + n_val}[split]
    return slice(start, start + {"train": n_train, "val": n_val, "test": n_test}[split])


def load_msvd(
    csv_path: str | Path, split: str, split_sizes: Sequence[int] = (1200, 100, 670)
) -> tuple[list[VideoCaptions], dict[str, int]]:
    """Read one split of MSVD's ``MSR Video Description Corpus.csv``.

    Args:
        csv_path: the CSV file.
        split: ``train``, ``val`` or ``test``.
        split_sizes: clips in train, val and test, taken in order of first appearance in the CSV.

    Returns:
        The split's clips (in CSV order) and the counts ``non_english_rows``, ``empty_captions``,
        ``clips_without_captions`` (clips of the split with no English caption, dropped) and ``unassigned_clips``
        (clips after the three splits, in no split).

    Raises:
        VideoFormatError: missing file, not a CSV with the required columns, a row without VideoID / Start / End,
            an unknown split, or fewer clips in the file than ``sum(split_sizes)``.
    """
    csv_path = Path(csv_path)
    where_split = _split_slice(split, split_sizes)
    if not csv_path.is_file():
        raise VideoFormatError(f"MSVD caption file not found: {csv_path}")
    stats = dict.fromkeys(("non_english_rows", "empty_captions", "clips_without_captions", "unassigned_clips"), 0)
    order: list[str] = []
    captions: dict[str, list[str]] = {}
    try:
        with open(csv_path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in MSVD_REQUIRED_COLUMNS if c not in header]
            if missing:
                raise VideoFormatError(
                    f"{csv_path}: missing required column(s) {missing}; expected the MSVD header "
                    f"(at least {list(MSVD_REQUIRED_COLUMNS)}), got {header[:10]}"
                )
            reader.fieldnames = header  # tolerate spaces around header names
            for row in reader:
                line = reader.line_num
                video, start, end = (row.get(c) for c in ("VideoID", "Start", "End"))
                if not video or start in (None, "") or end in (None, ""):
                    raise VideoFormatError(f"{csv_path}: line {line}: empty VideoID, Start or End: {row}")
                key = f"{video.strip()}_{start.strip()}_{end.strip()}"
                if key not in captions:
                    order.append(key)
                    captions[key] = []
                if (row.get("Language") or "").strip() != "English":
                    stats["non_english_rows"] += 1
                    continue
                text = clean_caption(row.get("Description") or "")
                if not text:
                    stats["empty_captions"] += 1
                    continue
                captions[key].append(text)
    except UnicodeDecodeError as e:
        raise VideoFormatError(f"{csv_path}: not UTF-8 text ({e}); expected the MSVD CSV") from None
    except csv.Error as e:
        raise VideoFormatError(f"{csv_path}: malformed CSV ({e})") from None

    needed = sum(int(n) for n in split_sizes)
    if len(order) < needed:
        raise VideoFormatError(
            f"{csv_path}: {len(order)} clips, fewer than the {needed} that split_sizes={tuple(split_sizes)} needs"
        )
    stats["unassigned_clips"] = len(order) - needed
    clips = []
    for key in order[where_split]:
        if not captions[key]:
            stats["clips_without_captions"] += 1
            continue
        clips.append(VideoCaptions(key=key, captions=captions[key]))
    counted = {k: v for k, v in stats.items() if v}
    if counted:
        log.info("%s split %r: %d clips kept; dropped or unassigned: %s", csv_path, split, len(clips), counted)
    return clips, stats


def _read_msrvtt(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``videos`` and ``sentences`` lists of one MSR-VTT file, every entry checked for its fields."""
    if not path.is_file():
        raise VideoFormatError(f"MSR-VTT annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VideoFormatError(f"{path}: not a JSON file ({e}); expected an MSR-VTT *_videodatainfo.json") from None
    if not isinstance(data, dict):
        raise VideoFormatError(
            f"{path}: expected a JSON object with 'videos' and 'sentences' (MSR-VTT format), got {type(data).__name__}"
        )
    lists = []
    for name, fields in (("videos", ("video_id", "split")), ("sentences", ("video_id", "caption"))):
        entries = data.get(name)
        if not isinstance(entries, list):
            raise VideoFormatError(f"{path}: missing list '{name}' (MSR-VTT format); keys are {sorted(data)[:10]}")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise VideoFormatError(f"{path}: {name}[{i}] is {type(entry).__name__}, expected an object")
            for field in fields:
                if not isinstance(entry.get(field), str):
                    problem = "missing required field" if field not in entry else "non-string field"
                    raise VideoFormatError(f"{path}: {name}[{i}]: {problem} '{field}' (entry: {str(entry)[:200]})")
        lists.append(entries)
    return lists[0], lists[1]


def load_msrvtt(
    json_paths: str | Path | Sequence[str | Path], split: str
) -> tuple[list[VideoCaptions], dict[str, int]]:
    """Read one split of MSR-VTT from ``train_val_videodatainfo.json`` and/or ``test_videodatainfo.json``.

    Args:
        json_paths: one file or several (their videos and sentences are merged).
        split: ``train``, ``val`` (= ``validate``) or ``test``.

    Returns:
        The split's videos in file order and the counts ``empty_captions``, ``videos_without_captions`` (dropped),
        ``sentences_of_unknown_videos`` (sentences whose ``video_id`` is in no ``videos`` entry, ignored).

    Raises:
        VideoFormatError: a missing file, not JSON, no ``videos`` / ``sentences`` list, an entry without its
            fields, an unknown split name in a file, or an unknown ``split`` argument.
    """
    if split not in MSRVTT_SPLITS:
        raise VideoFormatError(f"unknown MSR-VTT split {split!r}, expected one of {tuple(MSRVTT_SPLITS)}")
    wanted = MSRVTT_SPLITS[split]
    paths = [Path(json_paths)] if isinstance(json_paths, (str, Path)) else [Path(p) for p in json_paths]
    stats = dict.fromkeys(("empty_captions", "videos_without_captions", "sentences_of_unknown_videos"), 0)
    split_of: dict[str, str] = {}
    order: list[str] = []
    sentences: list[dict[str, Any]] = []
    for path in paths:
        videos, sents = _read_msrvtt(path)
        for i, video in enumerate(videos):
            if video["split"] not in ("train", "validate", "test"):
                raise VideoFormatError(
                    f"{path}: videos[{i}] ({video['video_id']}): unknown split {video['split']!r}, "
                    "expected train, validate or test"
                )
            if video["video_id"] not in split_of:
                split_of[video["video_id"]] = video["split"]
                if video["split"] == wanted:
                    order.append(video["video_id"])
        sentences.extend(sents)
    captions: dict[str, list[str]] = {key: [] for key in order}
    for sentence in sentences:
        video_id = sentence["video_id"]
        if video_id not in split_of:
            stats["sentences_of_unknown_videos"] += 1
        elif video_id in captions:
            text = clean_caption(sentence["caption"])
            if text:
                captions[video_id].append(text)
            else:
                stats["empty_captions"] += 1
    clips = []
    for key in order:
        if not captions[key]:
            stats["videos_without_captions"] += 1
            continue
        clips.append(VideoCaptions(key=key, captions=captions[key]))
    counted = {k: v for k, v in stats.items() if v}
    if counted:
        log.info(
            "MSR-VTT %s split %r: %d videos kept; dropped: %s", [str(p) for p in paths], split, len(clips), counted
        )
    return clips, stats
