"""Karpathy split fixtures in the real format: JSON entries (COCO and Flickr layouts) and real JPEG files."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)


def write_jpeg(path: Path, colour: tuple[int, int, int] | None = None) -> None:
    """A real 32x40 JPEG: random colours, or one flat colour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = RNG.integers(0, 256, (32, 40, 3), dtype=np.uint8) if colour is None else np.full((32, 40, 3), colour)
    Image.fromarray(pixels.astype(np.uint8)).save(path, format="JPEG")


def sentence(tokens: list[str] | None, raw: str | None = None) -> dict:
    out: dict = {"sentid": 0, "imgid": 0}
    if tokens is not None:
        out["tokens"] = tokens
    if raw is not None:
        out["raw"] = raw
    return out


def coco_entries() -> list[dict]:
    """Six images in the real dataset_coco.json layout."""
    return [
        {"filepath": "train2014", "filename": "COCO_train2014_000000000009.jpg", "split": "train", "cocoid": 9,
         "imgid": 0, "sentids": [0, 1],
         "sentences": [sentence(["A", "Man", "riding", "a", "horse"], "A Man riding a horse."),
                       sentence(None, "Two DOGS, playing; in the park!")]},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000042.jpg", "split": "restval", "cocoid": 42,
         "imgid": 1, "sentids": [2], "sentences": [sentence(["a", "cat", "on", "a", "very", "long", "red", "sofa"])]},
        {"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg", "split": "val", "cocoid": 391895,
         "imgid": 2, "sentids": [3, 4], "sentences": [sentence(["a", "bus"]), sentence([], "")]},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000073.jpg", "split": "test", "cocoid": 73,
         "imgid": 3, "sentids": [5], "sentences": [sentence(["a", "man", "on", "a", "motorcycle"])]},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000074.jpg", "split": "test", "cocoid": 74,
         "imgid": 4, "sentids": [6], "sentences": [sentence([]), sentence(None, "...")]},
        {"filepath": "train2014", "filename": "COCO_train2014_000000000025.jpg", "split": "train", "cocoid": 25,
         "imgid": 5, "sentids": [7], "sentences": [sentence(["giraffes", "eating"])]},
    ]  # fmt: skip


def write_dataset(tmp_path: Path, entries: list[dict], name: str = "dataset_coco.json", images: bool = True) -> Path:
    """The JSON at tmp_path/name and (if images) a real JPEG for every entry, COCO or Flickr layout."""
    path = tmp_path / name
    path.write_text(json.dumps({"images": entries, "dataset": "coco"}))
    if images:
        for e in entries:
            folder = tmp_path / e["filepath"] if "filepath" in e else tmp_path / "Flicker8k_Dataset"
            write_jpeg(folder / e["filename"])
    return path
