"""datamodules.vqa_v2: VQA v2 questions + annotations JSON with real JPEGs, every error named, top-K answers."""

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from datamodules.vqa_v2 import VQAFormatError, VQAItem, answer_coverage, load_vqa_split, top_k_answers
from suite.configs import task_datamodule

SPLIT = "val2014"


def ten(*answers: str) -> list[dict]:
    """The real ``answers`` list: 10 objects with ``answer``, ``answer_confidence``, ``answer_id``."""
    assert len(answers) == 10
    return [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]


def write_vqa(
    root: Path, questions: list[dict] | None = None, annotations: list[dict] | None = None, images=(9, 42)
) -> Path:
    """Write the two JSON files (with the real top-level metadata keys) and real JPEG images under ``root``."""
    if questions is None:
        questions = [
            {"image_id": 9, "question": "What color is the dog?", "question_id": 90},
            {"image_id": 9, "question": "How many dogs?", "question_id": 91},
            {"image_id": 42, "question": "Is it sunny?", "question_id": 420},
            {"image_id": 42, "question": "What is on the table?", "question_id": 421},
        ]
    if annotations is None:
        annotations = [
            {"question_id": 421, "image_id": 42, "answers": ten(*["cake"] * 6, *["pie"] * 4),
             "multiple_choice_answer": "cake", "answer_type": "other", "question_type": "what is on the"},
            {"question_id": 90, "image_id": 9, "answers": ten(*["Brown"] * 7, *["black"] * 3),
             "multiple_choice_answer": "brown", "answer_type": "other", "question_type": "what color is the"},
            {"question_id": 91, "image_id": 9, "answers": ten(*["2"] * 8, "two", "3"),
             "multiple_choice_answer": "2", "answer_type": "number", "question_type": "how many"},
            {"question_id": 420, "image_id": 42, "answers": ten(*["yes"] * 10),
             "multiple_choice_answer": "yes", "answer_type": "yes/no", "question_type": "is it"},
        ]  # fmt: skip
    meta = {"info": {}, "license": {}, "data_subtype": SPLIT, "data_type": "mscoco"}
    (root / f"v2_OpenEnded_mscoco_{SPLIT}_questions.json").write_text(
        json.dumps({**meta, "task_type": "Open-Ended", "questions": questions})
    )
    (root / f"v2_mscoco_{SPLIT}_annotations.json").write_text(json.dumps({**meta, "annotations": annotations}))
    (root / SPLIT).mkdir(exist_ok=True)
    for image_id in images:
        Image.new("RGB", (8, 6), (image_id, 100, 200)).save(root / SPLIT / f"COCO_{SPLIT}_{image_id:012d}.jpg")
    return root


def test_reads_questions_joined_with_annotations(tmp_path):
    items, stats = load_vqa_split(write_vqa(tmp_path), SPLIT)
    assert [it.question_id for it in items] == [90, 91, 420, 421]  # order of the questions file
    assert items[1] == VQAItem(
        question_id=91,
        image_id=9,
        question="How many dogs?",
        image_path=tmp_path / SPLIT / "COCO_val2014_000000000009.jpg",
        answers=["2"] * 8 + ["two", "3"],
        answer_type="number",
        multiple_choice_answer="2",
    )
    assert items[0].answers[0] == "Brown"  # raw, not normalised
    with Image.open(items[2].image_path) as im:
        assert im.format == "JPEG"
    assert stats == {"questions": 4, "kept": 4, "missing_images": 0, "empty_images": 0}


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(VQAFormatError, match=r"not found for split 'val2014': .*v2_OpenEnded_mscoco_val2014_questions"
                       r".json, .*v2_mscoco_val2014_annotations.json; JSON files in .*: none\..*data.splits="):
        load_vqa_split(tmp_path, SPLIT)
    write_vqa(tmp_path)
    (tmp_path / f"v2_mscoco_{SPLIT}_annotations.json").unlink()
    with pytest.raises(VQAFormatError, match=r"not found for split 'val2014': [^,]*v2_mscoco_val2014_annotations.json;"
                       r" JSON files in .*: \['v2_OpenEnded_mscoco_val2014_questions.json'\]"):
        load_vqa_split(tmp_path, SPLIT)


@pytest.mark.parametrize("kind", ["questions", "annotations"])
def test_json_list_instead_of_object_is_named(tmp_path, kind):
    write_vqa(tmp_path)
    path = tmp_path / (f"v2_OpenEnded_mscoco_{SPLIT}_questions.json" if kind == "questions"
                       else f"v2_mscoco_{SPLIT}_annotations.json")
    path.write_text(json.dumps(json.loads(path.read_text())[kind]))  # the bare list, without the object around it
    with pytest.raises(VQAFormatError, match=rf"{re.escape(str(path))}: expected a JSON object with a '{kind}' list, "
                       "got list"):
        load_vqa_split(tmp_path, SPLIT)


def test_not_json_and_wrong_top_level(tmp_path):
    write_vqa(tmp_path)
    (tmp_path / f"v2_mscoco_{SPLIT}_annotations.json").write_text("{oops")
    with pytest.raises(VQAFormatError, match="not a JSON file"):
        load_vqa_split(tmp_path, SPLIT)
    (tmp_path / f"v2_mscoco_{SPLIT}_annotations.json").write_text(json.dumps({"questions": []}))
    with pytest.raises(VQAFormatError, match="'annotations' list"):
        load_vqa_split(tmp_path, SPLIT)


def test_question_without_annotation(tmp_path):
    write_vqa(tmp_path)
    path = tmp_path / f"v2_OpenEnded_mscoco_{SPLIT}_questions.json"
    data = json.loads(path.read_text())
    data["questions"] += [{"image_id": 9, "question": f"q{i}?", "question_id": 1000 + i} for i in range(7)]
    path.write_text(json.dumps(data))
    with pytest.raises(VQAFormatError, match=r"7 questions .* no match .*\[1000, 1001, 1002, 1003, 1004\] and 2 more"):
        load_vqa_split(tmp_path, SPLIT)


def test_annotation_without_question(tmp_path):
    write_vqa(tmp_path)
    path = tmp_path / f"v2_OpenEnded_mscoco_{SPLIT}_questions.json"
    data = json.loads(path.read_text())
    data["questions"] = data["questions"][:3]  # drops question 421
    path.write_text(json.dumps(data))
    with pytest.raises(VQAFormatError, match=r"1 annotations in .*annotations.json have no match .*\[421\]"):
        load_vqa_split(tmp_path, SPLIT)


@pytest.mark.parametrize("field", ["answers", "multiple_choice_answer", "answer_type", "image_id"])
def test_missing_annotation_field_names_it_and_the_entry(tmp_path, field):
    write_vqa(tmp_path)
    path = tmp_path / f"v2_mscoco_{SPLIT}_annotations.json"
    data = json.loads(path.read_text())
    del data["annotations"][2][field]
    path.write_text(json.dumps(data))
    with pytest.raises(VQAFormatError, match=rf"annotations\[2\] \(question_id 91\): missing required field '{field}'"):
        load_vqa_split(tmp_path, SPLIT)


def test_missing_question_field(tmp_path):
    write_vqa(tmp_path)
    path = tmp_path / f"v2_OpenEnded_mscoco_{SPLIT}_questions.json"
    data = json.loads(path.read_text())
    del data["questions"][1]["question"]
    path.write_text(json.dumps(data))
    with pytest.raises(VQAFormatError, match=r"questions\[1\] \(question_id 91\): missing required field 'question'"):
        load_vqa_split(tmp_path, SPLIT)


def test_bad_answers_and_mismatched_image_id(tmp_path):
    write_vqa(tmp_path)
    path = tmp_path / f"v2_mscoco_{SPLIT}_annotations.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["answers"][3] = {"answer_id": 4}
    path.write_text(json.dumps(data))
    with pytest.raises(VQAFormatError, match=r"question_id 421: answers\[3\] must be an object with an 'answer'"):
        load_vqa_split(tmp_path, SPLIT)
    data["annotations"][0]["answers"][3] = {"answer": "cake"}
    data["annotations"][0]["image_id"] = 9
    path.write_text(json.dumps(data))
    with pytest.raises(VQAFormatError, match="question_id 421: image_id 9 differs from 42"):
        load_vqa_split(tmp_path, SPLIT)


def test_duplicated_question_id(tmp_path):
    q = {"image_id": 9, "question": "Why?", "question_id": 90}
    write_vqa(tmp_path, questions=[q, q])
    with pytest.raises(VQAFormatError, match=r"questions.json: 1 question_id\(s\) appear more than once: \[90\]"):
        load_vqa_split(tmp_path, SPLIT)


def test_missing_image_raises_naming_path_and_option(tmp_path):
    write_vqa(tmp_path, images=(9,))
    with pytest.raises(
        VQAFormatError, match=r"COCO_val2014_000000000042\.jpg is missing.*data\.skip_missing_images=true"
    ):
        load_vqa_split(tmp_path, SPLIT)
    items, _ = load_vqa_split(tmp_path, SPLIT, check_images=False)
    assert len(items) == 4


def test_skip_missing_images_counts(tmp_path):
    write_vqa(tmp_path, images=(9,))
    items, stats = load_vqa_split(tmp_path, SPLIT, skip_missing_images=True)
    assert [it.question_id for it in items] == [90, 91]
    assert stats == {"questions": 4, "kept": 2, "missing_images": 2, "empty_images": 0}


def test_zero_byte_image_is_named_or_skipped_and_counted(tmp_path):
    write_vqa(tmp_path)
    empty = tmp_path / SPLIT / "COCO_val2014_000000000042.jpg"
    empty.write_bytes(b"")
    with pytest.raises(VQAFormatError, match=rf"questions\[2\] \(question_id 420\): image {re.escape(str(empty))} is "
                       r"empty \(0 bytes\); .*data.skip_missing_images=true"):
        load_vqa_split(tmp_path, SPLIT)
    items, stats = load_vqa_split(tmp_path, SPLIT, skip_missing_images=True)
    assert [it.question_id for it in items] == [90, 91]
    assert stats == {"questions": 4, "kept": 2, "missing_images": 0, "empty_images": 2}


def test_split_with_every_question_skipped_is_named_with_counts(tmp_path):
    write_vqa(tmp_path, images=(42,))
    (tmp_path / SPLIT / "COCO_val2014_000000000042.jpg").write_bytes(b"")
    with pytest.raises(VQAFormatError, match=r"questions.json: split 'val2014' is empty: 4 question\(s\) in the file, "
                       r"2 skipped because their image is missing and 2 because it is empty"):
        load_vqa_split(tmp_path, SPLIT, skip_missing_images=True)
    write_vqa(tmp_path, questions=[], annotations=[])
    with pytest.raises(VQAFormatError, match=r"questions.json: split 'val2014' is empty: 0 question\(s\)"):
        load_vqa_split(tmp_path, SPLIT)


def test_datamodule_names_the_missing_split_files(tmp_path):
    write_vqa(tmp_path)
    data = task_datamodule("vqa", source="vqa2", root=str(tmp_path), splits={"train": "train2014", "val": SPLIT},
                           curriculum_questions=0, num_workers=0)
    with pytest.raises(VQAFormatError, match=r"not found for split 'train2014': .*v2_OpenEnded_mscoco_train2014_"
                       r"questions.json, .*v2_mscoco_train2014_annotations.json; .*data.splits=\{train: ..., val: ..."):
        data.setup("fit")


def item(mc: str) -> VQAItem:
    return VQAItem(0, 0, "q?", Path("x.jpg"), [mc] * 10, "other", mc)


def test_top_k_answers_normalised_by_frequency_ties_by_string():
    # normalised: "2" x3 (two, 2, Two.), "yes" x2, "dog" x2 (The dog, dog), "cat" x1
    items = [item(a) for a in ["two", "2", "Two.", "yes", "Yes", "The dog", "dog", "cat"]]
    assert top_k_answers(items, 3) == ["2", "dog", "yes"]  # "dog" and "yes" tie at 2: by string
    assert top_k_answers(items, 10) == ["2", "dog", "yes", "cat"]
    with pytest.raises(ValueError, match="k must be >= 1"):
        top_k_answers(items, 0)


def test_answer_coverage_counts_outside(tmp_path):
    items, _ = load_vqa_split(write_vqa(tmp_path), SPLIT)
    top = top_k_answers(items, 2)  # all four answers appear once: "2", "brown", "cake", "yes" -> ["2", "brown"]
    assert top == ["2", "brown"]
    assert answer_coverage(items, top) == {"questions": 4, "covered": 2, "outside": 2, "coverage": 0.5}
    assert answer_coverage([], top)["coverage"] == 0.0
