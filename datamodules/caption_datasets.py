"""Map-style datasets over a caption corpus and the collate function that turns captions into token tensors.

- :class:`CaptionPairs` (training): one item per (image, reference caption) pair, as Show-Attend-Tell trains.
- :class:`CaptionImages` (evaluation): one item per image with all its references (and objects, if known).

Both fetch a batch of images at once (``__getitems__``), so pre-rendered scenes are one tensor index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.sampling import split_index
from text.vocabulary import Vocabulary


class CaptionCorpus(Protocol):
    def __len__(self) -> int: ...
    def captions(self, i: int) -> list[str]: ...
    def images(self, items: Sequence[int]) -> Tensor: ...
    def objects(self, i: int) -> tuple[np.ndarray, list[list[str]]] | None: ...


class CaptionPairs(Dataset):
    """Every (image, caption) pair of a corpus: item -> {image [3, H, W], caption str, image_index int}."""

    def __init__(self, corpus: CaptionCorpus) -> None:
        self.corpus = corpus
        pairs = [(i, j) for i in range(len(corpus)) for j in range(len(corpus.captions(i)))]
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)                            # [P, 2]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.__getitems__([idx])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        rows = self.pairs[[split_index(idx, len(self.pairs))[1] for idx in indices]]             # [B, 2]
        images = self.corpus.images(rows[:, 0])                                                  # [B, 3, H, W]
        return [{"image": image, "caption": self.corpus.captions(i)[j], "image_index": int(i)}
                for image, (i, j) in zip(images, rows.tolist(), strict=True)]


class CaptionImages(Dataset):
    """One item per image: {image, references list[str], image_index, and objects when the corpus has them}."""

    def __init__(self, corpus: CaptionCorpus) -> None:
        self.corpus = corpus

    def __len__(self) -> int:
        return len(self.corpus)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.__getitems__([idx])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        items = [split_index(idx, len(self.corpus))[1] for idx in indices]
        images = self.corpus.images(items)                                                       # [B, 3, H, W]
        return [{"image": image, "references": self.corpus.captions(i), "image_index": i,
                 "objects": self.corpus.objects(i)} for image, i in zip(images, items, strict=True)]


class CaptionCollate:
    """Items -> a batch dict of tensors (and the reference strings for evaluation).

    Batch keys:
        image [B, 3, H, W] float in [0, 1]; image_index [B] long;
        tokens [B, L] long: "<bos> w1 .. wn <eos> <pad>.." of the training caption (evaluation: the first
            reference, for the teacher-forced validation loss), at most ``max_words`` words;
        references list[list[str]] (evaluation);
        boxes [B, K, 4] float and object_words [B, K, A] long (vocabulary ids of the words naming each object,
            -1 padding), when the corpus knows its objects (evaluation on generated scenes).
    """

    def __init__(self, vocabulary: Vocabulary, max_words: int | None) -> None:
        self.vocabulary = vocabulary
        self.max_words = max_words

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {
            "image": torch.stack([item["image"] for item in items]),                            # [B, 3, H, W]
            "image_index": torch.tensor([item["image_index"] for item in items], dtype=torch.long),
        }
        if "caption" in items[0]:
            captions = [item["caption"] for item in items]
        else:
            batch["references"] = [item["references"] for item in items]
            captions = [refs[0] for refs in batch["references"]]
        batch["tokens"], batch["lengths"] = self.vocabulary.encode_batch(captions, max_len=self.max_words)
        if items[0].get("objects") is not None:
            batch["boxes"], batch["object_words"] = self._objects([item["objects"] for item in items])
        return batch

    def _objects(self, objects: list[tuple[np.ndarray, list[list[str]]]]) -> tuple[Tensor, Tensor]:
        """Per-image (boxes [K_i, 4], naming words) -> boxes [B, K, 4], object_words [B, K, A] (-1 padded)."""
        most = max(len(names) for _, names in objects)
        words_per_object = max((len(words) for _, names in objects for words in names), default=1)
        boxes = torch.zeros(len(objects), most, 4)
        ids = torch.full((len(objects), most, words_per_object), -1, dtype=torch.long)
        for b, (image_boxes, names) in enumerate(objects):
            boxes[b, : len(names)] = torch.as_tensor(image_boxes, dtype=torch.float)
            for k, words in enumerate(names):
                ids[b, k, : len(words)] = torch.tensor([self.vocabulary.word_id(word) for word in words])
        return boxes, ids


def collate_images_with_index(items: list[dict[str, Any]]) -> dict[str, Tensor]:
    """CaptionImages items -> {image [B, 3, H, W], index [B] long} (what ``modules.feature_cache`` reads)."""
    return {"image": torch.stack([item["image"] for item in items]),
            "index": torch.tensor([item["image_index"] for item in items], dtype=torch.long)}
