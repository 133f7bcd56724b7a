"""VQA data: generated Sort-of-CLEVR (default, no download; Santoro et al. 2017) or VQA v2 from disk.

Sort-of-CLEVR: each question is asked in words about the object of one colour, with the 12-answer vocabulary of
the paper's code; the object(s) a question is about are kept, so the task can score where the model attends.
Images are rendered once at setup (uint8 in memory); deterministic per (seed, split, index).

VQA v2 (``datamodules.vqa_v2``): questions + annotations JSON and COCO images under ``root``; the ``top_k`` most
frequent training answers are the classes; each question carries its 10 human answers (soft-score targets and
the official accuracy); answers outside the top-K are counted in the log, left out of the loss, still scored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from datamodules.caption_corpora import image_transform
from datamodules.sampling import SplitLoaders, make_dataloader, split_index
from datamodules.synthetic.sort_of_clevr import ANSWERS, TYPES, SortOfClevr
from datamodules.vqa_v2 import VQAItem, answer_coverage, load_vqa_split, top_k_answers
from metrics.vqa_accuracy import normalize_answer, soft_score_targets
from text.vocabulary import AdoptsVocabulary, Vocabulary

log = logging.getLogger(__name__)

SOURCES = ("sort_of_clevr", "vqa2")
KIND_IDS = {"non_relational": 0, "relational": 1}
QUESTION_TYPES = tuple(t for kind in KIND_IDS for t in TYPES[kind])   # shape, horizontal, ..., count
TYPE_IDS = {t: i for i, t in enumerate(QUESTION_TYPES)}


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
                 "kind": KIND_IDS[q.kind], "question_type": TYPE_IDS[q.type],
                 "about_boxes": self.boxes[q.image_index, list(q.about)]}
                for image, q in zip(images, questions, strict=True)]


class VQA2Questions(Dataset):
    """VQA v2 questions: item -> image (decoded now), question, answer index (-1 outside the top-K), humans' answers."""

    def __init__(self, items: list[VQAItem], answer_index: dict[str, int], image_size: int) -> None:
        self.items, self.answer_index = items, answer_index
        self.transform = image_transform(image_size)
        self.questions = [item.question for item in items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        item = self.items[split_index(idx, len(self.items))[1]]
        try:
            with Image.open(item.image_path) as image:
                pixels = self.transform(image.convert("RGB"))                                # [3, S, S]
        except OSError as error:
            raise OSError(f"cannot read image {item.image_path} of question {item.question_id}: {error}") from error
        answer = normalize_answer(item.multiple_choice_answer)
        return {"image": pixels, "question": item.question, "answer": self.answer_index.get(answer, -1),
                "answer_text": answer, "human_answers": item.answers, "answer_type": item.answer_type}


class VQACollate:
    """Items -> image [B, 3, H, W], question [B, L] + question_lengths [B], answer [B], kind [B], question_type
    [B] (index into QUESTION_TYPES), about_boxes [B, A, 4] + about_mask [B, A], and the question / answer texts."""

    def __init__(self, vocabulary: Vocabulary, answer_index: dict[str, int] | None = None) -> None:
        self.vocabulary = vocabulary
        self.answer_index = answer_index

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        question, lengths = self.vocabulary.encode_batch([item["question"] for item in items])
        batch = {"image": torch.stack([item["image"] for item in items]), "question": question,
                 "question_lengths": lengths, "answer": torch.tensor([item["answer"] for item in items]),
                 "question_text": [item["question"] for item in items],
                 "answer_text": [item["answer_text"] for item in items]}
        if "human_answers" in items[0]:  # VQA v2
            humans = [item["human_answers"] for item in items]
            batch.update(human_answers=humans, answer_types=[item["answer_type"] for item in items],
                         targets=soft_score_targets(humans, self.answer_index))
            return batch
        most = max(len(item["about_boxes"]) for item in items)
        boxes = torch.zeros(len(items), most, 4)
        mask = torch.zeros(len(items), most, dtype=torch.bool)
        for b, item in enumerate(items):
            boxes[b, : len(item["about_boxes"])] = item["about_boxes"]
            mask[b, : len(item["about_boxes"])] = True
        batch.update(kind=torch.tensor([item["kind"] for item in items]), about_boxes=boxes, about_mask=mask,
                     question_type=torch.tensor([item["question_type"] for item in items]))
        return batch


class VQADataModule(AdoptsVocabulary, SplitLoaders, pl.LightningDataModule):
    """Questions about images for ``tasks.vqa``.

    Args:
        source: sort_of_clevr (generated) | vqa2 (JSON + COCO images under ``root``).
        num_images: Sort-of-CLEVR images per split {train, val, test}; questions_per_image questions each.
        image_size: canvas size (75 in the paper) / real images resized and centre-cropped to it.
        root, splits, top_k, skip_missing_images: VQA v2: the folder, the file split of each of train/val/test
            (test defaults to val2014: the official test answers are not public), answer classes, and whether a
            question whose image is missing is skipped and counted (else an error naming it).
        curriculum_types, curriculum_questions: Sort-of-CLEVR: the first ``curriculum_questions`` training
            questions (over all processes; more than an epoch's worth continue into the next epochs) are drawn
            from these question types only (e.g. [shape]: learn where the named colour is before the position and
            relational questions join); then every type, as usual. Stages: a list of type lists and a list of
            counts, one per stage (e.g. [[shape], [shape, horizontal, vertical]] and [48000, 48000]).
        batch_size, eval_batch_size, num_workers, seed: loading.
    """

    vocabulary_name = "question_vocabulary"

    def __init__(self, *, source: str, num_images: dict[str, int], questions_per_image: int, image_size: int,
                 root: str | None, splits: dict[str, str] | None, top_k: int, skip_missing_images: bool,
                 curriculum_types: Sequence[str] | Sequence[Sequence[str]], curriculum_questions: int | Sequence[int],
                 batch_size: int, eval_batch_size: int | None, num_workers: int | str, seed: int) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"data.source={source!r} is not a known VQA source; choose one of {list(SOURCES)}")
        self.curriculum = curriculum_stages(source, curriculum_types, curriculum_questions)
        if source == "vqa2" and not root:
            raise ValueError("data.source=vqa2 needs data.root: the folder with the VQA v2 JSON files and images")
        self.save_hyperparameters()
        self.splits = {"train": "train2014", "val": "val2014", "test": "val2014", **(splits or {})}
        self._answers: list[str] | None = None
        self.num_images = dict(num_images)
        self.datasets: dict[str, Dataset] = {}
        self._vocabulary: Vocabulary | None = None

    @property
    def question_vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            train = self._dataset("train")
            texts = (q if isinstance(q, str) else q.text for q in train.questions)
            self._vocabulary = Vocabulary.build(texts, min_count=1)
            log.info("question vocabulary: %d words", len(self._vocabulary))
        return self._vocabulary

    @property
    def answers(self) -> list[str]:
        """The answer classes: Sort-of-CLEVR's 12, or VQA v2's top-K training answers (normalised)."""
        if self.hparams.source == "sort_of_clevr":
            return list(ANSWERS)
        if self._answers is None:
            self._answers = top_k_answers(self._vqa2_items("train"), self.hparams.top_k)
        return self._answers

    def _vqa2_items(self, split: str) -> list[VQAItem]:
        if not hasattr(self, "_items"):
            self._items: dict[str, list[VQAItem]] = {}
        if split not in self._items:
            items, counts = load_vqa_split(Path(self.hparams.root).expanduser(), self.splits[split],
                                           skip_missing_images=self.hparams.skip_missing_images)
            if counts.get("missing_images") or counts.get("empty_images"):
                log.warning("vqa2 %s: skipped %d questions whose image is missing, %d whose image is empty (0 bytes)",
                            split, counts["missing_images"], counts["empty_images"])
            self._items[split] = items
        return self._items[split]

    @property
    def image_size(self) -> int:
        return self.hparams.image_size

    def _dataset(self, split: str) -> Dataset:
        if split not in self.datasets and self.hparams.source == "vqa2":
            items = self._vqa2_items(split)
            coverage = answer_coverage(items, self.answers)
            log.info("vqa2 %s: %d questions, %d with an answer outside the top %d (left out of the loss, scored)",
                     split, len(items), coverage["outside"], len(self.answers))
            self.datasets[split] = VQA2Questions(items, {a: i for i, a in enumerate(self.answers)},
                                                 self.hparams.image_size)
        if split not in self.datasets:
            hp = self.hparams
            scenes = SortOfClevr(self.num_images[split], questions_per_image=hp.questions_per_image, seed=hp.seed,
                                 split=split, image_size=hp.image_size)
            self.datasets[split] = SortOfClevrQuestions(scenes)
            log.info("sort-of-clevr %s: %d images, %d questions", split, self.num_images[split], len(scenes))
        return self.datasets[split]

    def _prepare(self, split: str) -> object:
        return self._dataset(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        hp = self.hparams
        batch_size = hp.batch_size if shuffle else (hp.eval_batch_size or hp.batch_size)
        curriculum = None
        if split == "train" and self.curriculum:
            questions = self._dataset(split).questions
            curriculum = []
            for number, (types, count) in enumerate(self.curriculum, start=1):
                subset = [i for i, q in enumerate(questions) if q.type in types]
                curriculum.append((subset, count))
                log.info("curriculum stage %d: %d training questions from %s only (%d such questions)",
                         number, count, ", ".join(sorted(types)), len(subset))
        return make_dataloader(self._dataset(split), batch_size=batch_size, shuffle=shuffle, seed=hp.seed,
                               num_workers=hp.num_workers, trainer=self.trainer,
                               collate_fn=VQACollate(self.question_vocabulary,
                                                     {a: i for i, a in enumerate(self.answers)}),
                               curriculum=curriculum)


def curriculum_stages(source: str, types: Sequence[str] | Sequence[Sequence[str]],
                      questions: int | Sequence[int]) -> list[tuple[set[str], int]]:
    """The curriculum options (see VQADataModule) -> [(question types, questions), ...] one per stage with
    questions > 0 (empty: no curriculum); clear errors for bad settings."""
    types = list(types or ())
    flat = [isinstance(t, str) for t in types]
    if any(flat) and not all(flat):
        raise ValueError(f"data.curriculum_types={types!r}: give a list of types (one stage) or a list of lists "
                         "(one per stage), not a mix")
    stages = [types] if all(flat) else [list(stage or ()) for stage in types]
    counts = [questions] if isinstance(questions, int) else list(questions or ())
    unknown = [t for stage in stages for t in stage if t not in QUESTION_TYPES]
    if unknown:
        raise ValueError(f"data.curriculum_types: unknown question type(s) {unknown}; valid choices: "
                         f"{list(QUESTION_TYPES)}")
    if not all(isinstance(count, int) and count >= 0 for count in counts):
        raise ValueError(f"data.curriculum_questions must be a count >= 0 (or one per stage), got {questions!r}")
    if not any(counts):
        return []
    if len(counts) != len(stages):
        raise ValueError(f"data.curriculum_questions has {len(counts)} count(s) but data.curriculum_types has "
                         f"{len(stages)} stage(s): give one count per stage")
    if any(count and not stage for stage, count in zip(stages, counts, strict=True)):
        raise ValueError("data.curriculum_questions > 0 needs data.curriculum_types (which questions come first)")
    if source != "sort_of_clevr":
        raise ValueError("a curriculum needs the question types of the generated Sort-of-CLEVR data "
                         f"(data.source=sort_of_clevr); data.source={source} has none: set data.curriculum_questions=0")
    return [(set(stage), count) for stage, count in zip(stages, counts, strict=True) if count]