"""What the user handed predict.py: classify it, list its files, read images and lines, with errors that name it.

Kinds: ``image`` (an image file), ``image_folder`` (a folder of images), ``video`` (a video file), ``video_folder``
(a folder of video files), ``features`` (a ``.npy`` array), ``feature_folder``, ``jsonl`` (one JSON object a line),
``text_file`` (any other file: one input a line), ``sentence`` (a string that is not a path).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".mpg", ".mpeg", ".ogv", ".m4v")
FEATURE_EXTENSIONS = (".npy",)

KIND_TEXT = {
    "image": "an image file",
    "image_folder": "a folder of images",
    "video": "a video file",
    "video_folder": "a folder of video files",
    "features": "a .npy feature file",
    "feature_folder": "a folder of .npy feature files",
    "jsonl": "a JSON-lines file",
    "text_file": "a text file",
    "sentence": "a sentence",
}


class InputError(ValueError):
    """predict.py's input is missing, unreadable, empty or of a kind the checkpoint's task cannot take."""


def _files(folder: Path, extensions: Sequence[str]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)


def classify(text: str) -> str:
    """The kind of ``text`` (see the module docstring).

    A string that does not exist on disk is a sentence unless it looks like a file name (a known extension or a
    path separator), which is an error: the user meant a file that is not there.
    """
    path = Path(text).expanduser()
    if path.is_dir():
        for kind, extensions in (("image_folder", IMAGE_EXTENSIONS), ("video_folder", VIDEO_EXTENSIONS),
                                 ("feature_folder", FEATURE_EXTENSIONS)):
            if _files(path, extensions):
                return kind
        raise InputError(f"folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)}), videos "
                         f"({', '.join(VIDEO_EXTENSIONS)}) or .npy feature files")
    suffix = path.suffix.lower()
    if path.is_file():
        if suffix in IMAGE_EXTENSIONS:
            return "image"
        if suffix in VIDEO_EXTENSIONS:
            return "video"
        if suffix in FEATURE_EXTENSIONS:
            return "features"
        return "jsonl" if suffix == ".jsonl" else "text_file"
    known = (*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS, *FEATURE_EXTENSIONS, ".txt", ".jsonl", ".tsv")
    if suffix in known or "/" in text or "\\" in text:
        raise InputError(f"input file not found: {path}")
    if not text.strip():
        raise InputError("input is empty: give a file, a folder or (translation) a sentence")
    return "sentence"


def input_files(text: str, kind: str) -> list[Path]:
    """The files of a file or folder input, in name order."""
    path = Path(text).expanduser()
    extensions = {"image_folder": IMAGE_EXTENSIONS, "video_folder": VIDEO_EXTENSIONS,
                  "feature_folder": FEATURE_EXTENSIONS}
    return _files(path, extensions[kind]) if kind in extensions else [path]


def read_image(path: Path, mode: str = "RGB") -> Image.Image:
    """The image at ``path`` converted to ``mode``; InputError naming the file when it cannot be decoded."""
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise InputError(f"cannot read image {path}: {error}") from error


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number from 1, text) of every non-blank line of a UTF-8 text file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read text file {path}: {error}") from error
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise InputError(f"text file {path} has no non-blank lines")
    return lines


def read_jsonl(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file, each checked for the ``required`` string fields."""
    records = []
    for number, line in read_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{number}: not valid JSON ({error.msg})") from error
        missing = [key for key in required if not isinstance(record, dict) or not str(record.get(key, "")).strip()]
        if missing:
            raise InputError(f"{path}:{number}: needs a non-empty {missing[0]!r} field, e.g. "
                             + json.dumps({key: "..." for key in required}))
        records.append(record)
    return records
