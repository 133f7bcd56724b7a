"""Karpathy split JSON reader for COCO / Flickr8k / Flickr30k captions.

The files ``dataset_coco.json``, ``dataset_flickr8k.json``, ``dataset_flickr30k.json`` (Karpathy & Fei-Fei 2015)
hold ``{"images": [...], "dataset": "coco"}``; each image entry has ``filename``, ``split`` (``train``,
``restval``, ``val`` or ``test``), ``sentences`` (each with ``tokens`` and ``raw``), and for COCO ``filepath``
(``train2014`` / ``val2014``) and ``cocoid``. COCO images live under ``root/<filepath>/<filename>``; Flickr images
under ``root/<images_dir>/<filename>``, the folder found among the usual names when ``images_dir`` is not given.

Every malformed input raises :class:`KarpathyFormatError` naming the file, entry and field; everything dropped or
changed is counted in the returned stats (logged at INFO; callers log them as warnings).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from text.captions import clean_caption

__all__ = [
    "COMMON_IMAGE_DIRS",
    "CaptionedImage",
    "KarpathyFormatError",
    "SPLITS",
    "load_karpathy_split",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "restval", "val", "test")
REQUIRED_FIELDS = ("filename", "split", "sentences")
# Where Flickr8k / Flickr30k images usually are under the dataset root (the Flickr8k zip really says "Flicker").
COMMON_IMAGE_DIRS = (
    "Flicker8k_Dataset",
    "Flickr8k_Dataset",
    "Images",
    "images",
    "flickr30k-images",
    "flickr30k_images",
)
_PROBE = 20  # entries looked up when searching for the Flickr image folder


class KarpathyFormatError(ValueError):
    """A Karpathy split file (or the images it lists) is not as expected; the message says where and what."""


@dataclass
class CaptionedImage:
    """One image and its captions (lowercased words joined by single spaces)."""

    image_path: Path
    captions: list[str]
    image_id: str  # COCO: the cocoid; Flickr: the file name without extension


def _caption(sentence: Any, where: str) -> list[str]:
    """The words of one ``sentences`` item: its ``tokens`` lowercased, else its ``raw`` text without punctuation."""
    if not isinstance(sentence, dict):
        raise KarpathyFormatError(f"{where}: expected an object with 'tokens' or 'raw', got {type(sentence).__name__}")
    tokens, raw = sentence.get("tokens"), sentence.get("raw")
    if tokens is not None:
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise KarpathyFormatError(f"{where}: field 'tokens' must be a list of strings")
        return " ".join(tokens).lower().split()
    if isinstance(raw, str):
        return clean_caption(raw).split()
    raise KarpathyFormatError(f"{where}: has neither 'tokens' (list of strings) nor 'raw' (string)")


def _read_entries(json_path: Path) -> list[dict[str, Any]]:
    """The ``images`` list of the file, every entry checked for the required fields and a known split."""
    if not json_path.is_file():
        folder = json_path.parent
        found = sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else None
        there = f"JSON files in {folder}: {found[:20] or 'none'}" if found is not None else f"{folder} is not a folder"
        raise KarpathyFormatError(
            f"Karpathy split file not found: {json_path}; {there}. data.annotations=<file> names the split JSON "
            "(dataset_coco.json, dataset_flickr8k.json or dataset_flickr30k.json) under data.root"
        )
    try:
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KarpathyFormatError(f"{json_path}: not a JSON file ({e}); expected a Karpathy split JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise KarpathyFormatError(
            f"{json_path}: expected a JSON object with an 'images' list (Karpathy split format, e.g. "
            f"dataset_coco.json), got {type(data).__name__}"
            + (f" with keys {sorted(data)[:10]}" if isinstance(data, dict) else "")
        )
    entries = data["images"]
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise KarpathyFormatError(f"{json_path}: images[{i}] is {type(entry).__name__}, expected an object")
        name = entry.get("filename")
        where = f"{json_path}: images[{i}]" + (f" ({name})" if isinstance(name, str) else "")
        for field in REQUIRED_FIELDS:
            if field not in entry:
                raise KarpathyFormatError(f"{where}: missing required field '{field}'")
        if not isinstance(name, str) or not name:
            raise KarpathyFormatError(f"{where}: field 'filename' must be a non-empty string")
        if entry["split"] not in SPLITS:
            raise KarpathyFormatError(f"{where}: unknown split {entry['split']!r}, expected one of {SPLITS}")
        if not isinstance(entry["sentences"], list):
            raise KarpathyFormatError(f"{where}: field 'sentences' must be a list")
        if "filepath" in entry and not isinstance(entry["filepath"], str):
            raise KarpathyFormatError(f"{where}: field 'filepath' must be a string")
    return entries


def _find_image_dir(root: Path, filenames: Sequence[str], json_path: Path) -> Path:
    """The folder under ``root`` holding Flickr-style images: ``root`` itself, then the usual folder names."""
    candidates = [root, *(root / d for d in COMMON_IMAGE_DIRS)]
    probe = filenames[:_PROBE]
    for folder in candidates:
        if any((folder / name).is_file() for name in probe):
            return folder
    raise KarpathyFormatError(
        f"{json_path}: cannot find the image folder; looked for {probe[0]!r} (and {len(probe) - 1} more) in "
        f"{', '.join(str(c) for c in candidates)}. Set images_dir (data.images_dir=...) to the folder under root."
    )


def _check_image(path: Path) -> str | None:
    """``None`` if ``path`` opens as an image, else why not (``"missing"``, ``"empty (0 bytes)"`` or the PIL error)."""
    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty (0 bytes)"
    try:
        with Image.open(path) as im:
            im.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:  # PIL raises all of these
        return f"unreadable ({type(e).__name__}: {e})"
    return None


def load_karpathy_split(
    json_path: str | Path,
    root: str | Path,
    split: str,
    images_dir: str | None = None,
    restval_in_train: bool = True,
    max_caption_words: int | None = None,
    check_images: bool = True,
    skip_bad_images: bool = False,
) -> tuple[list[CaptionedImage], dict[str, int]]:
    """Read one split of a Karpathy split JSON.

    Args:
        json_path: ``dataset_coco.json`` / ``dataset_flickr8k.json`` / ``dataset_flickr30k.json``.
        root: dataset root; images are ``root/<filepath>/<filename>`` (COCO) or ``root/<images_dir>/<filename>``.
        split: ``train``, ``val``, ``test`` (or ``restval`` alone).
        images_dir: folder under ``root`` for entries without ``filepath``; ``None`` tries ``root`` and then
            :data:`COMMON_IMAGE_DIRS`.
        restval_in_train: ``split="train"`` also takes the ``restval`` images (the usual 113k COCO train set).
        max_caption_words: truncate longer captions to this many words (counted in ``truncated_captions``).
        check_images: check that every image exists and opens with PIL (``Image.verify``).
        skip_bad_images: skip missing/unreadable images and count them instead of raising.

    Returns:
        The images in file order and the counts ``empty_captions``, ``truncated_captions``, ``missing_images``,
        ``unreadable_images``, ``images_without_captions``.

    Raises:
        KarpathyFormatError: missing file, not JSON, no ``images`` list, an entry without ``filename`` /
            ``split`` / ``sentences``, an unknown split, a bad caption, a bad image (missing, empty or unreadable;
            unless skip_bad_images), or no image left for the split (the message gives the drop counts).
    """
    json_path, root = Path(json_path), Path(root)
    if split not in SPLITS:
        raise KarpathyFormatError(f"unknown split {split!r}, expected one of {SPLITS}")
    if max_caption_words is not None and max_caption_words < 1:
        raise ValueError(f"max_caption_words must be >= 1 or None, got {max_caption_words}")
    wanted = {split, "restval"} if split == "train" and restval_in_train else {split}
    entries = _read_entries(json_path)
    selected = [(i, e) for i, e in enumerate(entries) if e["split"] in wanted]

    flat = [e["filename"] for _, e in selected if "filepath" not in e]
    if images_dir is not None:
        flat_dir = root / images_dir
    elif flat:
        flat_dir = _find_image_dir(root, flat, json_path)
    else:
        flat_dir = root

    stats = dict.fromkeys(
        ("empty_captions", "truncated_captions", "missing_images", "unreadable_images", "images_without_captions"), 0
    )
    images: list[CaptionedImage] = []
    for i, entry in selected:
        name = entry["filename"]
        where = f"{json_path}: images[{i}] ({name})"
        captions = []
        for j, sentence in enumerate(entry["sentences"]):
            words = _caption(sentence, f"{where}: sentences[{j}]")
            if not words:
                stats["empty_captions"] += 1
                continue
            if max_caption_words is not None and len(words) > max_caption_words:
                stats["truncated_captions"] += 1
                words = words[:max_caption_words]
            captions.append(" ".join(words))
        if not captions:
            stats["images_without_captions"] += 1
            continue
        path = root / entry["filepath"] / name if "filepath" in entry else flat_dir / name
        problem = _check_image(path) if check_images else None
        if problem is not None:
            if not skip_bad_images:
                raise KarpathyFormatError(
                    f"{where}: image {path} is {problem}; fix or remove it, or pass data.skip_bad_images=true "
                    "to skip bad images (they are counted)"
                )
            stats["missing_images" if problem == "missing" else "unreadable_images"] += 1
            continue
        image_id = str(entry["cocoid"]) if "cocoid" in entry else Path(name).stem
        images.append(CaptionedImage(image_path=path, captions=captions, image_id=image_id))

    dropped = {k: v for k, v in stats.items() if v}
    if not images:
        splits = ", ".join(f"{name} {count}" for name, count in sorted(Counter(e["split"] for e in entries).items()))
        named = " + ".join(sorted(wanted, key=SPLITS.index))
        dropped_text = ", ".join(f"{k} {v}" for k, v in dropped.items()) or "nothing dropped"
        raise KarpathyFormatError(
            f"{json_path}: the {split!r} split is empty: the file lists {len(selected)} image(s) with split {named} "
            f"(all images by split: {splits or 'none'}) and none is left; dropped: {dropped_text}"
            + (" (data.skip_bad_images=true skipped the bad images)" if stats["missing_images"]
               + stats["unreadable_images"] else "")
        )
    if dropped:
        log.info("%s split %r: %d images kept; dropped or changed: %s", json_path, split, len(images), dropped)
    return images, stats
