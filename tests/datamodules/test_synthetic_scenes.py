"""datamodules.synthetic: shape drawing stays in its box, scenes are deterministic per (seed, split, index),
boxes are valid, captions use the vocabulary, name every object and state true relations."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest

from datamodules.synthetic.caption_scenes import (
    _FILLER,
    _REL_PHRASES,
    CaptionScenes,
    describe,
    relation,
    sample_objects,
)
from datamodules.synthetic.shapes import BACKGROUND, COLOURS, SHAPES, SIZES, SceneObject, render

SIZE = 64
REL_WORDS = ("left of", "right of", "above", "below")


def vocabulary_words() -> list[str]:
    """Every word the caption templates can produce, sorted."""
    words = set(_FILLER.split()) | set(COLOURS) | set(SHAPES) | set(SIZES)
    words |= {w for phrases in _REL_PHRASES.values() for p in phrases for w in p.split()}
    return sorted(words)


def ground_word(word: str, names: Sequence[tuple[str, str]]) -> list[int]:
    """Indices of the objects a caption word names: a shape word -> objects of that shape, a colour word ->
    objects of that colour, any other word -> []. ``names`` are the (colour, shape) of each object."""
    if word in SHAPES:
        return [k for k, (_, shape) in enumerate(names) if shape == word]
    if word in COLOURS:
        return [k for k, (colour, _) in enumerate(names) if colour == word]
    return []


@pytest.fixture(scope="module")
def scenes() -> CaptionScenes:
    return CaptionScenes(400, image_size=SIZE, seed=5, split="train")


@pytest.fixture(scope="module")
def items(scenes: CaptionScenes) -> list:
    return [scenes.scene(i) for i in range(len(scenes))]


def foreground(image: np.ndarray) -> np.ndarray:
    """[H, W] bool: pixels that differ from the background."""
    return np.any(image != np.array(BACKGROUND, np.uint8), axis=-1)


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize(
    ("field", "value"),
    [("shape", "hexagon"), ("colour", "purple"), ("size", "medium"), ("x", float("nan")), ("radius", 0.0)],
)
def test_scene_object_validation_names_the_field(field: str, value: object) -> None:
    kwargs = dict(shape="circle", colour="red", size="small", x=10.0, y=10.0, radius=4.0)
    kwargs[field] = value
    with pytest.raises(ValueError, match=rf"SceneObject\.{field}"):
        SceneObject(**kwargs)


def test_colours_are_named_single_words_and_well_separated() -> None:
    assert set(COLOURS) == {"red", "green", "blue", "yellow", "magenta", "cyan"}
    rgb = np.array(list(COLOURS.values()), np.float64)  # [6, 3]
    dist = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(len(rgb)) * 1e9  # [6, 6]
    assert dist.min() > 150
    assert np.linalg.norm(rgb - np.array(BACKGROUND), axis=-1).min() > 150


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("x", "y", "r"), [(20.0, 30.0, 6.0), (33.3, 17.8, 9.7), (40.6, 41.2, 4.4)])
def test_render_stays_inside_box(shape: str, x: float, y: float, r: float) -> None:
    obj = SceneObject(shape=shape, colour="cyan", size="small", x=x, y=y, radius=r)
    assert obj.box == (x - r, y - r, x + r, y + r)
    image = render([obj], SIZE)  # [64, 64, 3]
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    ys, xs = np.nonzero(foreground(image))
    x0, y0, x1, y1 = obj.box
    assert len(xs) > 0
    assert (xs + 0.5 >= x0 - 1).all() and (xs + 0.5 <= x1 + 1).all()
    assert (ys + 0.5 >= y0 - 1).all() and (ys + 0.5 <= y1 + 1).all()
    # the pixel holding the centre is fully covered: exactly the object's colour
    assert tuple(image[int(y), int(x)]) == COLOURS["cyan"]


def test_shapes_fill_their_boxes_as_expected() -> None:
    r, c = 10.0, 32.0
    fill = {}
    for shape in SHAPES:
        fg = foreground(render([SceneObject(shape, "red", "large", c, c, r)], SIZE))  # [64, 64]
        inner = fg[int(c - r) : int(c + r), int(c - r) : int(c + r)]  # [20, 20] pixels whose area is in the box
        fill[shape] = inner.mean()
        if shape == "triangle":  # apex up: narrow top row, wide bottom row
            assert inner[0].sum() <= 2 and inner[-1].sum() >= 18
        if shape == "circle":  # corners of the box are empty
            assert not inner[0, 0] and not inner[-1, -1] and inner[10].all()
    assert fill["square"] > 0.95
    assert abs(fill["circle"] - np.pi / 4) < 0.05
    assert abs(fill["triangle"] - 0.5) < 0.06


def test_render_antialiases_edges_and_clips() -> None:
    obj = SceneObject("circle", "green", "large", 30.3, 30.7, 9.4)
    smooth, hard = render([obj], SIZE, supersample=2), render([obj], SIZE, supersample=1)
    colour = np.array(COLOURS["green"])
    mixed = foreground(smooth) & np.any(smooth != colour.astype(np.uint8), axis=-1)  # [64, 64] edge pixels
    assert mixed.sum() > 0
    assert not (foreground(hard) & np.any(hard != colour.astype(np.uint8), axis=-1)).any()
    outside = SceneObject("square", "blue", "large", -3.0, 62.0, 6.0)  # partly off the canvas
    image = render([outside, SceneObject("square", "red", "large", 200.0, 5.0, 4.0)], SIZE)
    assert foreground(image)[56:, :3].all() and foreground(image).sum() == 3 * 8


# ---------------------------------------------------------------- scenes
def test_determinism_per_seed_split_index() -> None:
    a, b = CaptionScenes(20, seed=3, split="val"), CaptionScenes(20, seed=3, split="val")
    for i in range(7):
        a.scene(i)
    x, y = a.scene(7), b.scene(7)  # a generated 0..6 first, b did not
    assert np.array_equal(x.image, y.image) and x.captions == y.captions and np.array_equal(x.boxes, y.boxes)
    assert np.array_equal(a.image(7), b.image(7)) and a.captions(7) == b.captions(7) and a.names(7) == b.names(7)
    others = [CaptionScenes(20, seed=3, split="train"), CaptionScenes(20, seed=3, split="test"), CaptionScenes(20)]
    for other in others:
        same = [np.array_equal(a.image(i), other.image(i)) for i in range(20)]
        assert sum(same) <= 1


def test_unknown_split_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="train, val, test"):
        CaptionScenes(10, split="dev")


def test_accessors_agree(scenes: CaptionScenes, items: list) -> None:
    for i in (0, 13, 399):
        item = items[i]
        assert np.array_equal(scenes.image(i), item.image) and scenes.captions(i) == item.captions
        assert np.array_equal(scenes.boxes(i), item.boxes) and scenes.names(i) == item.names
        assert scenes.boxes(i).dtype == np.float32 and scenes.boxes(i).shape == (len(item.names), 4)
    stack = scenes.render_all([3, 1])  # [2, 64, 64, 3]
    assert stack.shape == (2, SIZE, SIZE, 3) and stack.dtype == np.uint8
    assert np.array_equal(stack[0], items[3].image) and np.array_equal(stack[1], items[1].image)
    assert len(CaptionScenes(3).render_all()) == 3
    with pytest.raises(IndexError):
        scenes.scene(400)


def test_boxes_inside_disjoint_and_names_unique(items: list) -> None:
    counts = set()
    for item in items:
        boxes = item.boxes.astype(np.float64) * SIZE  # [K, 4] pixels
        counts.add(len(boxes))
        assert (boxes >= 0).all() and (boxes <= SIZE).all()
        assert len(set(item.names)) == len(item.names)
        for j in range(len(boxes)):
            for k in range(j):
                a, b = boxes[j], boxes[k]
                apart = max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])
                assert apart >= 2.0 - 1e-4
    assert counts == {1, 2, 3}


def test_colour_at_box_centre_is_the_named_colour(items: list) -> None:
    for item in items[:100]:
        for (colour, _), box in zip(item.names, item.boxes, strict=True):
            cx, cy = (box[0] + box[2]) / 2 * SIZE, (box[1] + box[3]) / 2 * SIZE
            assert tuple(item.image[int(cy), int(cx)]) == COLOURS[colour]  # triangle centre is inside too


def test_sampler_bounds_and_sizes() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        objects = sample_objects(rng, 16, min_objects=3, max_objects=3)  # smallest allowed image, fullest scene
        assert len(objects) == 3
    big = [o for _ in range(100) for o in sample_objects(rng, 100)]
    for o in big:
        assert 0.09 * 100 * 0.89 <= o.radius <= 0.16 * 100 * 1.11
        assert (o.radius < 12) == (o.size == "small")
    with pytest.raises(ValueError, match="max_objects"):
        sample_objects(rng, 64, 1, 4)
    with pytest.raises(ValueError, match="image_size"):
        sample_objects(rng, 8)


# ---------------------------------------------------------------- captions
def test_captions_format_and_vocabulary(items: list) -> None:
    vocab = vocabulary_words()
    assert vocab == sorted(set(vocab))
    seen: set[str] = set()
    n = 0
    for item in items:
        assert len(item.captions) == 5 and len(set(item.captions)) == 5
        for caption in item.captions:
            assert re.fullmatch(r"[a-z]+( [a-z]+)*", caption), caption
            words = caption.split()
            assert 3 <= len(words) <= 16, caption
            seen.update(words)
            n += 1
    assert n == 2000
    assert seen <= set(vocab), seen - set(vocab)
    assert seen == set(vocab), set(vocab) - seen  # the vocabulary lists nothing the templates never say


def mentions(caption: str, names: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """(word position, object index) of each "colour shape" in the caption."""
    words = caption.split()
    return [
        (p, names.index((words[p], words[p + 1]))) for p in range(len(words) - 1) if (words[p], words[p + 1]) in names
    ]


def test_every_caption_names_every_object(items: list) -> None:
    for item in items:
        for caption in item.captions:
            assert {k for _, k in mentions(caption, item.names)} == set(range(len(item.names))), caption


def test_relations_are_true(items: list) -> None:
    checked = shared = 0
    for item in items:
        for caption in item.captions:
            found = mentions(caption, item.names)
            words = caption.split()
            rels = []
            for (p, j), (q, k) in zip(found[:-1], found[1:], strict=True):
                between = " ".join(words[p + 2 : q])
                rel = [r for r in REL_WORDS if r in between]
                assert len(rel) <= 1, caption
                if rel:
                    a, b = item.objects[j], item.objects[k]
                    assert relation(a, b) == rel[0], caption
                    first, second = (j, k) if rel[0] in ("left of", "above") else (k, j)
                    axis = 0 if "of" in rel[0] else 1
                    assert item.boxes[first][axis + 2] < item.boxes[second][axis], caption  # boxes apart on that axis
                    checked += 1
                rels.append(rel)
            if len(found) == 3 and rels[0] and not rels[1]:  # "a REL b and c": REL holds for c too
                assert relation(item.objects[found[0][1]], item.objects[found[2][1]]) == rels[0][0], caption
                shared += 1
    assert checked > 500 and shared > 50


def test_relation_and_templates_by_hand() -> None:
    red = SceneObject("circle", "red", "small", 10.0, 30.0, 5.0)
    blue = SceneObject("square", "blue", "large", 40.0, 35.0, 8.0)
    green = SceneObject("triangle", "green", "small", 12.0, 55.0, 5.0)
    assert relation(red, blue) == "left of" and relation(blue, red) == "right of"
    assert relation(red, green) == "above" and relation(green, red) == "below"
    captions = describe([red, blue], np.random.default_rng(1), num_captions=30)
    assert len(set(captions)) == len(captions) > 10
    for c in captions:
        if "red circle" in c.split("left of")[0] and "left of" in c:
            assert "blue square" in c.split("left of")[1]
    assert any("left of" in c for c in captions) and any("right of" in c for c in captions)
    one = describe([red], np.random.default_rng(2), num_captions=50)
    assert 5 <= len(one) <= 10 and len(set(one)) == len(one)
    with pytest.raises(ValueError):
        describe([], np.random.default_rng(0))


def test_ground_word() -> None:
    names = [("red", "circle"), ("blue", "circle"), ("red", "square")]
    assert ground_word("circle", names) == [0, 1]
    assert ground_word("red", names) == [0, 2]
    assert ground_word("square", names) == [2]
    assert ground_word("triangle", names) == [] and ground_word("green", names) == []
    assert ground_word("left", names) == [] and ground_word("large", names) == []
