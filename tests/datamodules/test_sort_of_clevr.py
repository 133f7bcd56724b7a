"""datamodules.synthetic.sort_of_clevr: scenes are deterministic per (seed, split, index), hold six distinct
colours in separated boxes, and every question's answer and ``about`` objects are right (recomputed here)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from datamodules.synthetic.shapes import COLOURS, SceneObject
from datamodules.synthetic.sort_of_clevr import _TEMPLATES, ANSWERS, COLOURS_ORDER, Question, SortOfClevr

SIZE = 75
NUM_IMAGES = 200
PER_IMAGE = 10


@pytest.fixture(scope="module")
def data() -> SortOfClevr:
    return SortOfClevr(NUM_IMAGES, questions_per_image=PER_IMAGE, seed=3, split="train")


@pytest.fixture(scope="module")
def scenes(data: SortOfClevr) -> list[list[SceneObject]]:
    return [data.objects(i) for i in range(data.num_images)]


@pytest.fixture(scope="module")
def questions(data: SortOfClevr) -> list[Question]:
    return [data.question(q) for q in range(len(data))]


def expected(q: Question, objects: list[SceneObject]) -> tuple[str, list[int]]:
    """The answer and ``about`` of ``q``, recomputed from the objects and the colour named in the text."""
    colours = [o.colour for o in objects]
    named = [w for w in q.text.split() if w in COLOURS]
    assert len(named) == 1, q.text
    x = colours.index(named[0])
    obj = objects[x]
    if q.type == "shape":
        return obj.shape, [x]
    if q.type == "horizontal":
        return ("left" if obj.x < SIZE / 2 else "right"), [x]
    if q.type == "vertical":
        return ("top" if obj.y < SIZE / 2 else "bottom"), [x]
    if q.type == "count":
        return str(len([o for o in objects if o.shape == obj.shape])), [x]
    dist = {k: math.hypot(o.x - obj.x, o.y - obj.y) for k, o in enumerate(objects) if k != x}
    other = (min if q.type == "closest" else max)(dist, key=dist.__getitem__)
    return objects[other].shape, [x, other]


# ---------------------------------------------------------------- scenes
def test_lengths_and_index_mapping(data: SortOfClevr, questions: list[Question]) -> None:
    assert len(data) == NUM_IMAGES * PER_IMAGE
    assert [q.image_index for q in questions] == [q // PER_IMAGE for q in range(len(data))]
    assert data.questions(7) == questions[7 * PER_IMAGE : 8 * PER_IMAGE]
    with pytest.raises(IndexError):
        data.question(len(data))
    with pytest.raises(IndexError):
        data.image(NUM_IMAGES)


def test_deterministic_per_seed_split_index(data: SortOfClevr) -> None:
    again = SortOfClevr(NUM_IMAGES, questions_per_image=PER_IMAGE, seed=3, split="train")
    bigger = SortOfClevr(NUM_IMAGES + 50, questions_per_image=PER_IMAGE, seed=3, split="train")
    for i in (0, 17, NUM_IMAGES - 1):
        assert np.array_equal(data.image(i), again.image(i)) and np.array_equal(data.image(i), bigger.image(i))
        assert data.questions(i) == again.questions(i) == bigger.questions(i)
        assert data.objects(i) == bigger.objects(i)
    others = [SortOfClevr(5, seed=4), SortOfClevr(5, seed=3, split="val"), SortOfClevr(5, seed=3, split="test")]
    for other in others:
        assert other.objects(0) != data.objects(0)
    assert SortOfClevr(5, seed=3, split="val").objects(1) != SortOfClevr(5, seed=3, split="test").objects(1)


def test_unknown_split_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"'dev'.*train, val, test"):
        SortOfClevr(3, split="dev")


def test_six_distinct_colours_separated_boxes_inside(data: SortOfClevr, scenes: list[list[SceneObject]]) -> None:
    shapes_seen = Counter()
    for i, objects in enumerate(scenes):
        assert len(objects) == 6
        assert sorted(o.colour for o in objects) == sorted(COLOURS)
        assert {o.size for o in objects} == {"small"}
        assert all(5.0 <= o.radius <= 6.0 for o in objects)
        shapes_seen.update(o.shape for o in objects)
        boxes = np.array([o.box for o in objects])  # [6, 4] pixels
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= SIZE).all()
        for a in range(6):
            for b in range(a + 1, 6):
                gap_x = max(boxes[b, 0] - boxes[a, 2], boxes[a, 0] - boxes[b, 2])
                gap_y = max(boxes[b, 1] - boxes[a, 3], boxes[a, 1] - boxes[b, 3])
                assert max(gap_x, gap_y) >= 2.0 - 1e-9, (i, a, b)
        norm = data.boxes(i)
        assert norm.shape == (6, 4) and norm.dtype == np.float32
        np.testing.assert_allclose(norm, boxes / SIZE, rtol=1e-6)
    assert set(shapes_seen) == {"circle", "square"}
    assert min(shapes_seen.values()) > 0.4 * sum(shapes_seen.values())


def test_pixel_at_each_centre_has_its_colour(data: SortOfClevr, scenes: list[list[SceneObject]]) -> None:
    for i in range(0, NUM_IMAGES, 7):
        image = data.image(i)
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        for o in scenes[i]:
            assert tuple(image[int(o.y), int(o.x)]) == COLOURS[o.colour], (i, o)


def test_render_all_equals_image(data: SortOfClevr) -> None:
    indices = [0, 5, 9, 120, 199]
    images = data.render_all(indices, chunk=2)
    assert images.shape == (len(indices), SIZE, SIZE, 3) and images.dtype == np.uint8
    for n, i in enumerate(indices):
        assert np.array_equal(images[n], data.image(i)), i
    small = SortOfClevr(4, seed=1, image_size=40)
    assert np.array_equal(small.render_all(), np.stack([small.image(i) for i in range(4)]))


# ---------------------------------------------------------------- questions
def test_answers_match_recomputation(scenes: list[list[SceneObject]], questions: list[Question]) -> None:
    for q in questions:
        ans, about = expected(q, scenes[q.image_index])
        assert (q.answer, q.about) == (ans, about), q
        assert q.answer in ANSWERS and ANSWERS[q.answer_index] == q.answer


def test_balance_of_kinds_types_and_answers(questions: list[Question]) -> None:
    for i in range(NUM_IMAGES):
        kinds = Counter(q.kind for q in questions[i * PER_IMAGE : (i + 1) * PER_IMAGE])
        assert kinds == {"non_relational": PER_IMAGE // 2, "relational": PER_IMAGE // 2}
    types = Counter((q.kind, q.type) for q in questions)
    assert set(types) == {
        ("non_relational", "shape"),
        ("non_relational", "horizontal"),
        ("non_relational", "vertical"),
        ("relational", "closest"),
        ("relational", "farthest"),
        ("relational", "count"),
    }
    share = len(questions) / 6
    assert all(0.8 * share < n < 1.2 * share for n in types.values()), types
    assert {q.answer for q in questions} >= {"circle", "square", "left", "right", "top", "bottom", "2", "3", "4"}
    assert len({q.text for q in questions}) >= 6 * 3 * 6 * 0.9  # several phrasings x six colours per type


def test_odd_questions_per_image() -> None:
    qs = SortOfClevr(3, questions_per_image=5).questions(2)
    assert [q.kind for q in qs] == ["non_relational", "relational"] * 2 + ["non_relational"]


def question_vocabulary_words() -> list[str]:
    """Every word any question template can produce, sorted."""
    words = set(COLOURS_ORDER)
    for templates in _TEMPLATES.values():
        words |= {w for t in templates for w in t.split() if w != "{c}"}
    return sorted(words)


def test_question_words_in_vocabulary() -> None:
    vocab = set(question_vocabulary_words())
    assert set(COLOURS) <= vocab and "{c}" not in vocab
    data = SortOfClevr(200, questions_per_image=10, seed=11, split="val")
    used: set[str] = set()
    for q in range(len(data)):  # 2,000 questions
        text = data.question(q).text
        assert text == text.lower() and text == " ".join(text.split())
        assert all(w.isalpha() for w in text.split()), text
        used |= set(text.split())
    assert used <= vocab, used - vocab
    assert len(used) > 0.9 * len(vocab)
