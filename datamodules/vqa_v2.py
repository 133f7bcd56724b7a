"""VQA v2 JSON reader (questions + annotations) over the COCO image folder, and the top-K answer vocabulary.

Files under ``root`` (the layout of the official downloads, unzipped side by side):

- ``v2_OpenEnded_mscoco_<split>_questions.json``: ``{"questions": [{"image_id", "question", "question_id"}]}``
- ``v2_mscoco_<split>_annotations.json``: ``{"annotations": [{"question_id", "image_id", "answers": [10 x
  {"answer", "answer_confidence", "answer_id"}], "multiple_choice_answer", "answer_type", "question_type"}]}``
- images ``root/<split>/COCO_<split>_<image_id:012d>.jpg`` (``split`` is e.g. ``train2014`` or ``val2014``).

Every malformed input raises :class:`VQAFormatError` naming the file, entry and field; what is skipped is counted.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metrics.vqa_accuracy import normalize_answer

__all__ = [
    "VQAFormatError",
    "VQAItem",
    "annotations_path",
    "answer_coverage",
    "image_path",
    "load_vqa_split",
    "questions_path",
    "top_k_answers",
]

log = logging.getLogger(__name__)

QUESTION_FIELDS = ("question_id", "image_id", "question")
ANNOTATION_FIELDS = ("question_id", "image_id", "answers", "multiple_choice_answer", "answer_type")
_SHOW_IDS = 5  # question ids named in a mismatch error


class VQAFormatError(ValueError):
    """A VQA v2 file (or the images it refers to) is not as expected; the message says where and what."""


@dataclass
class VQAItem:
    """One question with its image and its (raw, unnormalised) human answers."""

    question_id: int
    image_id: int
    question: str
    image_path: Path
    answers: list[str]  # the 10 human answers, raw
    answer_type: str  # "yes/no", "number" or "other"
    multiple_choice_answer: str  # the most common human answer, raw


def questions_path(root: str | Path, split: str) -> Path:
    """``root/v2_OpenEnded_mscoco_<split>_questions.json``."""
    return Path(root) / f"v2_OpenEnded_mscoco_{split}_questions.json"


def annotations_path(root: str | Path, split: str) -> Path:
    """``root/v2_mscoco_<split>_annotations.json``."""
    return Path(root) / f"v2_mscoco_{split}_annotations.json"


def image_path(root: str | Path, split: str, image_id: int) -> Path:
    """``root/<split>/COCO_<split>_<image_id:012d>.jpg``."""
    return Path(root) / split / f"COCO_{split}_{image_id:012d}.jpg"


def _check_files(root: Path, split: str) -> None:
    """A :class:`VQAFormatError` naming every missing file of the split's pair, and the VQA files there."""
    paths = (questions_path(root, split), annotations_path(root, split))
    missing = [p for p in paths if not p.is_file()]
    if not missing:
        return
    if root.is_dir():
        found = sorted(p.name for p in root.glob("*.json"))
        there = f"JSON files in {root}: {found[:20] or 'none'}"
    else:
        there = f"{root} is not a folder"
    raise VQAFormatError(
        f"VQA v2 file(s) not found for split {split!r}: {', '.join(str(p) for p in missing)}; {there}. Each split "
        "needs its questions and its annotations file (v2_OpenEnded_mscoco_<split>_questions.json and "
        "v2_mscoco_<split>_annotations.json); data.splits={train: ..., val: ..., test: ...} picks the <split> of "
        "the files you have"
    )


def _read_list(path: Path, key: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    """The ``key`` list of a JSON file, each entry an object with ``fields``."""
    if not path.is_file():
        raise VQAFormatError(f"VQA v2 file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VQAFormatError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        keys = f" with keys {sorted(data)[:10]}" if isinstance(data, dict) else ""
        raise VQAFormatError(f"{path}: expected a JSON object with a '{key}' list, got {type(data).__name__}{keys}")
    entries = data[key]
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise VQAFormatError(f"{path}: {key}[{i}] is {type(entry).__name__}, expected an object")
        for field in fields:
            if field not in entry:
                qid = entry.get("question_id")
                where = f"{key}[{i}]" + (f" (question_id {qid})" if qid is not None else "")
                raise VQAFormatError(f"{path}: {where}: missing required field '{field}'")
        if not isinstance(entry["question_id"], int) or not isinstance(entry["image_id"], int):
            raise VQAFormatError(f"{path}: {key}[{i}]: 'question_id' and 'image_id' must be integers")
    return entries


def _answers(annotation: dict[str, Any], where: str) -> list[str]:
    """The raw human answer strings of one annotation."""
    answers = annotation["answers"]
    if not isinstance(answers, list) or not answers:
        raise VQAFormatError(f"{where}: field 'answers' must be a non-empty list")
    out = []
    for j, answer in enumerate(answers):
        if not isinstance(answer, dict) or not isinstance(answer.get("answer"), str):
            raise VQAFormatError(f"{where}: answers[{j}] must be an object with an 'answer' string")
        out.append(answer["answer"])
    return out


def _mismatch(ids: set[int], what: str, path: Path, other: Path) -> VQAFormatError:
    shown = sorted(ids)[:_SHOW_IDS]
    more = f" and {len(ids) - len(shown)} more" if len(ids) > len(shown) else ""
    return VQAFormatError(
        f"{len(ids)} {what} in {path} have no match in {other}: question_id {shown}{more}; "
        "the questions and annotations files must be of the same split"
    )


def load_vqa_split(
    root: str | Path,
    split: str,
    check_images: bool = True,
    skip_missing_images: bool = False,
) -> tuple[list[VQAItem], dict[str, int]]:
    """Read one split of VQA v2 (questions joined with annotations by ``question_id``).

    Args:
        root: folder with the two JSON files and the ``<split>/`` image folder.
        split: the COCO split name in the file names, e.g. ``train2014`` or ``val2014``.
        check_images: check that every image file exists and is not empty.
        skip_missing_images: skip questions whose image is missing or empty and count them instead of raising.

    Returns:
        The questions in the order of the questions file, and the counts ``questions``, ``kept``,
        ``missing_images`` and ``empty_images`` (questions skipped because their image is missing or 0 bytes).

    Raises:
        VQAFormatError: a missing or non-JSON file (every missing one named), a missing required field, a
            duplicated question_id, a question without annotation or an annotation without question, an image id
            that differs between the two, a missing or empty (0-byte) image (unless ``skip_missing_images``), or
            no question left (the message gives what was skipped).
    """
    q_path, a_path = questions_path(root, split), annotations_path(root, split)
    _check_files(Path(root), split)
    questions = _read_list(q_path, "questions", QUESTION_FIELDS)
    annotations = _read_list(a_path, "annotations", ANNOTATION_FIELDS)
    for path, entries in ((q_path, questions), (a_path, annotations)):
        counts = Counter(e["question_id"] for e in entries)
        if duplicated := sorted(qid for qid, n in counts.items() if n > 1):
            shown = duplicated[:_SHOW_IDS]
            raise VQAFormatError(f"{path}: {len(duplicated)} question_id(s) appear more than once: {shown}")
    by_id = {a["question_id"]: a for a in annotations}
    question_ids = {q["question_id"] for q in questions}
    if missing := question_ids - by_id.keys():
        raise _mismatch(missing, "questions", q_path, a_path)
    if extra := by_id.keys() - question_ids:
        raise _mismatch(extra, "annotations", a_path, q_path)

    stats = {"questions": len(questions), "kept": 0, "missing_images": 0, "empty_images": 0}
    items: list[VQAItem] = []
    for i, q in enumerate(questions):
        qid = q["question_id"]
        ann = by_id[qid]
        where = f"{a_path}: annotation of question_id {qid}"
        if ann["image_id"] != q["image_id"]:
            raise VQAFormatError(
                f"{where}: image_id {ann['image_id']} differs from {q['image_id']} in {q_path} questions[{i}]"
            )
        if not isinstance(q["question"], str):
            raise VQAFormatError(f"{q_path}: questions[{i}] (question_id {qid}): field 'question' must be a string")
        for field in ("multiple_choice_answer", "answer_type"):
            if not isinstance(ann[field], str):
                raise VQAFormatError(f"{where}: field '{field}' must be a string")
        path = image_path(root, split, q["image_id"])
        problem = _image_problem(path) if check_images else None
        if problem is not None:
            if not skip_missing_images:
                raise VQAFormatError(
                    f"{q_path}: questions[{i}] (question_id {qid}): image {path} is {problem}; add it, or pass "
                    "data.skip_missing_images=true to skip such questions (they are counted)"
                )
            stats["missing_images" if problem == "missing" else "empty_images"] += 1
            continue
        items.append(
            VQAItem(
                question_id=qid,
                image_id=q["image_id"],
                question=q["question"],
                image_path=path,
                answers=_answers(ann, where),
                answer_type=ann["answer_type"],
                multiple_choice_answer=ann["multiple_choice_answer"],
            )
        )
    stats["kept"] = len(items)
    if not items:
        skipped = (f"{stats['missing_images']} skipped because their image is missing and {stats['empty_images']} "
                   "because it is empty (data.skip_missing_images=true)") if len(questions) else "none to skip"
        raise VQAFormatError(
            f"{q_path}: split {split!r} is empty: {len(questions)} question(s) in the file, {skipped}; no question "
            f"left (images are read from {Path(root) / split})"
        )
    if stats["missing_images"] or stats["empty_images"]:
        log.info("VQA v2 %s: %d questions kept, %d skipped (image missing), %d skipped (image empty)", split,
                 len(items), stats["missing_images"], stats["empty_images"])
    return items, stats


def _image_problem(path: Path) -> str | None:
    """None if ``path`` is a non-empty file, else ``"missing"`` or ``"empty (0 bytes)"``."""
    if not path.is_file():
        return "missing"
    return None if path.stat().st_size else "empty (0 bytes)"


def top_k_answers(items: Sequence[VQAItem], k: int) -> list[str]:
    """The ``k`` most frequent normalised ``multiple_choice_answer`` s, most frequent first, ties by string."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    counts = Counter(normalize_answer(item.multiple_choice_answer) for item in items)
    return sorted(counts, key=lambda a: (-counts[a], a))[:k]


def answer_coverage(items: Sequence[VQAItem], answers: Sequence[str]) -> dict[str, float]:
    """How many questions' normalised ``multiple_choice_answer`` is in ``answers`` (e.g. the top-K).

    Questions outside are excluded from the classification loss but still scored by the VQA accuracy.

    Returns:
        ``{"questions", "covered", "outside", "coverage"}`` (coverage: covered / questions, 0 when no questions).
    """
    vocab = set(answers)
    covered = sum(normalize_answer(item.multiple_choice_answer) in vocab for item in items)
    total = len(items)
    return {
        "questions": total,
        "covered": covered,
        "outside": total - covered,
        "coverage": covered / total if total else 0.0,
    }
