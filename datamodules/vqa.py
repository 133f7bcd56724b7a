"""VQA data: generated Sort-of-CLEVR (default, no download; Santoro et al. 2017).

Each question is asked in words about the object of one colour, with the 12-answer vocabulary of the paper's
code; the object(s) a question is about are kept, so the task can score where the model attends. Images are
rendered once at setup (uint8 in memory); deterministic per (seed, split, index).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.sampling import SplitLoaders, make_dataloader, split_index
from datamodules.synthetic.sort_of_clevr import ANSWERS, SortOfClevr
from datamodules.vocabulary import Vocabulary

log = logging.getLogger(__name__)

SOURCES = ("sort_of_clevr",)
KIND_IDS = {"non_relational": 0, "relational": 1}


class SortOfClevrQuestions(Dataset):
    """Questions of one split: item -> image, question text, answer index, kind, and the boxes it is about."""

    def __init__(self, scenes: SortOfClevr) -> None:
        self.scenes = scenes
        self.pixels = torch.from_numpy(scenes.render_all())                                   # [I, H, W, 3] uint8
        self.questions = [q for i in range(len(self.pixels)) for q in scenes.questions(i)]
        self.boxes = torch.stack([torch.as_tensor(scenes.boxes(i)) for i in range(len(self.pixels))])  # [I, 6, 4]

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.__getitems__([idx])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        questions = [self.questions[split_index(idx, len(self.questions))[1]] for idx in indices]
        images = self.pixels[[q.image_index for q in questions]].permute(0, 3, 1, 2).float() / 255.0  # [B, 3, H, W]
        return [{"image": image, "question": q.text, "answer": ANSWERS.index(q.answer), "answer_text": q.answer,
                 "kind": KIND_IDS[q.kind], "about_boxes": self.boxes[q.image_index, list(q.about)]}
                for image, q in zip(images, questions, strict=True)]


class VQACollate:
    """Items -> image [B, 3, H, W], question [B, L] + question_lengths [B], answer [B], kind [B],
    about_boxes [B, A, 4] + about_mask [B, A], and the question / answer texts."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        question, lengths = self.vocabulary.encode_batch([item["question"] for item in items])
        most = max(len(item["about_boxes"]) for item in items)
        boxes = torch.zeros(len(items), most, 4)
        mask = torch.zeros(len(items), most, dtype=torch.bool)
        for b, item in enumerate(items):
            boxes[b, : len(item["about_boxes"])] = item["about_boxes"]
            mask[b, : len(item["about_boxes"])] = True
        return {"image": torch.stack([item["image"] for item in items]), "question": question,
                "question_lengths": lengths, "answer": torch.tensor([item["answer"] for item in items]),
                "kind": torch.tensor([item["kind"] for item in items]), "about_boxes": boxes, "about_mask": mask,
                "question_text": [item["question"] for item in items],
                "answer_text": [item["answer_text"] for item in items]}


class VQADataModule(SplitLoaders, pl.LightningDataModule):
    """Questions about images for ``tasks.vqa``.

    Args:
        source: sort_of_clevr (generated).
        num_images: images per split {train, val, test}; questions_per_image questions each (half relational).
        image_size: canvas size (75 in the paper).
        batch_size, eval_batch_size, num_workers, seed: loading.
    """

    def __init__(self, source: str = "sort_of_clevr", num_images: dict[str, int] | None = None,
                 questions_per_image: int = 10, image_size: int = 75, batch_size: int = 64,
                 eval_batch_size: int | None = None, num_workers: int | str = "auto", seed: int = 0) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"data.source={source!r} is not a known VQA source; choose one of {list(SOURCES)}")
        self.save_hyperparameters()
        self.num_images = {"train": 5000, "val": 250, "test": 500, **(num_images or {})}
        self.datasets: dict[str, SortOfClevrQuestions] = {}
        self._vocabulary: Vocabulary | None = None

    @property
    def question_vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            train = self._dataset("train")
            self._vocabulary = Vocabulary.build((q.text for q in train.questions), min_count=1)
            log.info("question vocabulary: %d words", len(self._vocabulary))
        return self._vocabulary

    @property
    def answers(self) -> list[str]:
        return list(ANSWERS)

    @property
    def image_size(self) -> int:
        return self.hparams.image_size

    def _dataset(self, split: str) -> SortOfClevrQuestions:
        if split not in self.datasets:
            hp = self.hparams
            scenes = SortOfClevr(self.num_images[split], questions_per_image=hp.questions_per_image, seed=hp.seed,
                                 split=split, image_size=hp.image_size)
            self.datasets[split] = SortOfClevrQuestions(scenes)
            log.info("sort-of-clevr %s: %d images, %d questions", split, self.num_images[split], len(scenes))
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in needed.get(stage, ("train", "val", "test")):
            self._dataset(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        batch_size = self.hparams.batch_size if shuffle else (self.hparams.eval_batch_size or self.hparams.batch_size)
        return make_dataloader(self._dataset(split), batch_size=batch_size, shuffle=shuffle, seed=self.hparams.seed,
                               num_workers=self.hparams.num_workers, trainer=self.trainer,
                               collate_fn=VQACollate(self.question_vocabulary))
