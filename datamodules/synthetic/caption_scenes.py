"""Generated captioning scenes: 1-3 coloured shapes, several reference captions, and every object's box.

Item ``i`` of a split is drawn from ``np.random.default_rng([seed, split_code, i])``: first its objects
(:func:`sample_objects`), then its captions (:func:`describe`) from the same generator, so an item depends
only on ``(seed, split, i)``. Nothing is cached; the image is rendered on request.

Captions are lowercase words separated by single spaces, without punctuation, 3-16 words. Objects are
named ``"a|the [size] colour shape"``; no two objects of a scene share a (colour, shape) pair, so every
name is unambiguous. Every caption names every object of its scene. Relations between two objects come
from their centres along the dominant axis of the displacement (:func:`relation`); since boxes do not
overlap, ``"a left of b"`` also means a's box lies wholly left of b's. A three-object caption
``"a REL b and c"`` is only produced when REL holds for both b and c.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from datamodules.synthetic.items import SPLITS, check_split_count_seed, item_rng
from datamodules.synthetic.shapes import BACKGROUND, COLOURS, SHAPES, SIZES, SceneObject, render

__all__ = [
    "MAX_OBJECTS",
    "SPLITS",
    "CaptionScene",
    "CaptionScenes",
    "describe",
    "relation",
    "sample_objects",
]

MAX_OBJECTS = 3  # the caption templates cover 1-3 objects
MIN_IMAGE_SIZE = 16
RADIUS_FRACTION = {"small": 0.09, "large": 0.16}  # radius = fraction * image_size * (1 +- JITTER)
JITTER = 0.1
GAP = 2.0  # minimum pixels between two boxes
MARGIN = 1.0  # minimum pixels between a box and the image edge
POSITION_TRIES = 50  # positions tried per object before the scene is restarted
SCENE_TRIES = 20  # scene restarts before giving up
_PAIRS = [(c, s) for c in COLOURS for s in SHAPES]

# Relation -> phrasings. The long forms only appear where the caption stays within 16 words.
_REL_PHRASES = {
    "left of": ("left of", "to the left of"),
    "right of": ("right of", "to the right of"),
    "above": ("above",),
    "below": ("below",),
}
_FILLER = "a an the there is on dark background picture image of and two three shapes"
MAX_WORDS = 16


# ---------------------------------------------------------------- scene sampling
def _pick(rng: np.random.Generator, n: int) -> int:
    """Uniform index in ``[0, n)`` (``rng.random`` is several times cheaper than ``rng.integers``)."""
    return min(int(rng.random() * n), n - 1)


def _place(
    rng: np.random.Generator, placed: list[SceneObject], image_size: int, pairs: list[tuple[str, str]]
) -> SceneObject | None:
    """One new object with an unused (colour, shape) pair, its box clear of ``placed``; None if it did not fit."""
    colour, shape = pairs[_pick(rng, len(pairs))]
    size = SIZES[_pick(rng, len(SIZES))]
    radius = RADIUS_FRACTION[size] * image_size * (1.0 + JITTER * (2.0 * rng.random() - 1.0))
    free = image_size - 2.0 * (radius + MARGIN)  # range of valid centres along each axis
    for _ in range(POSITION_TRIES):
        x = radius + MARGIN + rng.random() * free
        y = radius + MARGIN + rng.random() * free
        reach = [radius + o.radius + GAP for o in placed]
        if all(abs(x - o.x) >= d or abs(y - o.y) >= d for o, d in zip(placed, reach, strict=True)):
            return SceneObject(shape=shape, colour=colour, size=size, x=x, y=y, radius=radius)
    return None


def sample_objects(
    rng: np.random.Generator, image_size: int, min_objects: int = 1, max_objects: int = 3
) -> list[SceneObject]:
    """Random objects for one scene.

    The count is uniform in ``[min_objects, max_objects]``; each object has a random shape, colour and size
    (radius ~ 0.09 or 0.16 of ``image_size``, +-10%), a (colour, shape) pair unused in the scene, a box
    inside the image (1 px margin) and at least 2 px from every other box. Rejection sampling with bounded
    tries: raises RuntimeError if a scene cannot be placed (never for the defaults at ``image_size >= 16``).
    """
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE}; got {image_size}")
    if not 1 <= min_objects <= max_objects <= MAX_OBJECTS:
        raise ValueError(
            f"need 1 <= min_objects <= max_objects <= {MAX_OBJECTS}; got min_objects={min_objects}, "
            f"max_objects={max_objects}"
        )
    count = min_objects + _pick(rng, max_objects - min_objects + 1)
    for _ in range(SCENE_TRIES):
        objects: list[SceneObject] = []
        while len(objects) < count:
            used = {(o.colour, o.shape) for o in objects}
            obj = _place(rng, objects, image_size, [p for p in _PAIRS if p not in used])
            if obj is None:
                break
            objects.append(obj)
        else:
            return objects
    raise RuntimeError(f"could not place {count} objects in a {image_size}x{image_size} image")


# ---------------------------------------------------------------- captions
def relation(a: SceneObject, b: SceneObject) -> str:
    """Where ``a`` is relative to ``b``: "left of" / "right of" / "above" / "below" (dominant axis; ties -> x)."""
    dx, dy = a.x - b.x, a.y - b.y
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def _name(obj: SceneObject, article: str, rng: np.random.Generator, size_p: float = 0.5) -> str:
    """``"article [size] colour shape"``; the size word is included with probability ``size_p``."""
    if size_p > 0 and rng.random() < size_p:
        return f"{article} {obj.size} {obj.colour} {obj.shape}"
    return f"{article} {obj.colour} {obj.shape}"


def _rel(rel: str, rng: np.random.Generator, long_ok: bool = True) -> str:
    phrases = _REL_PHRASES[rel] if long_ok else _REL_PHRASES[rel][:1]
    return phrases[_pick(rng, len(phrases))]


def _order(objects: Sequence[SceneObject], rng: np.random.Generator) -> list[SceneObject]:
    return [objects[k] for k in rng.permutation(len(objects))]


def _one(objects: Sequence[SceneObject], rng: np.random.Generator) -> str:
    a = _name(objects[0], "a", rng)
    forms = (a, f"there is {a}", f"{a} on a dark background", f"a picture of {a}", f"an image of {a}")
    return forms[_pick(rng, len(forms))]


def _two_relation(objects: Sequence[SceneObject], rng: np.random.Generator) -> str:
    p, q = _order(objects, rng)
    rel = _rel(relation(p, q), rng)
    form = _pick(rng, 3)
    if form == 0:
        return f"{_name(p, 'a', rng)} {rel} {_name(q, 'a', rng)}"
    if form == 1:
        return f"{_name(p, 'the', rng)} is {rel} {_name(q, 'the', rng)}"
    return f"there is {_name(p, 'a', rng)} {rel} {_name(q, 'a', rng)}"


def _two_list(objects: Sequence[SceneObject], rng: np.random.Generator) -> str:
    p, q = _order(objects, rng)
    both = f"{_name(p, 'a', rng)} and {_name(q, 'a', rng)}"
    forms = (both, f"two shapes {both}", f"{both} on a dark background")
    return forms[_pick(rng, len(forms))]


def _three_list(objects: Sequence[SceneObject], rng: np.random.Generator) -> str:
    p, q, r = _order(objects, rng)
    listed = f"{_name(p, 'a', rng)} {_name(q, 'a', rng)} and {_name(r, 'a', rng)}"
    return listed if rng.random() < 0.5 else f"three shapes {listed}"


def _three_shared(objects: Sequence[SceneObject], rng: np.random.Generator) -> str | None:
    """``"a REL b and c"`` where REL holds for both b and c; None when no object is related alike to both."""
    for k in rng.permutation(3):
        p = objects[k]
        q, r = _order([o for j, o in enumerate(objects) if j != k], rng)
        if relation(p, q) == relation(p, r):
            rel = _rel(relation(p, q), rng, long_ok=False)
            if rng.random() < 0.5:
                return f"{_name(p, 'a', rng)} {rel} {_name(q, 'a', rng)} and {_name(r, 'a', rng)}"
            return f"{_name(p, 'the', rng)} is {rel} {_name(q, 'the', rng)} and {_name(r, 'the', rng)}"
    return None


def _three_chain(objects: Sequence[SceneObject], rng: np.random.Generator) -> str:
    """``"a REL1 b and c REL2 the b"`` (no size words, short relations); None when over 16 words (both
    relations "left of"/"right of")."""
    p, q, r = _order(objects, rng)
    caption = (
        f"{_name(p, 'a', rng, 0)} {_rel(relation(p, q), rng, False)} {_name(q, 'a', rng, 0)} and "
        f"{_name(r, 'a', rng, 0)} {_rel(relation(r, q), rng, False)} {_name(q, 'the', rng, 0)}"
    )
    return caption if caption.count(" ") < MAX_WORDS else None


_Template = Callable[[Sequence[SceneObject], np.random.Generator], str | None]
_TEMPLATES: dict[int, tuple[_Template, ...]] = {
    1: (_one,),
    2: (_two_relation, _two_relation, _two_list),
    3: (_three_list, _three_shared, _three_shared, _three_chain),
}


def describe(objects: Sequence[SceneObject], rng: np.random.Generator, num_captions: int = 5) -> list[str]:
    """Up to ``num_captions`` different reference captions of a scene of 1-3 objects.

    Draws random template fillings and keeps the new ones, with a bounded number of draws; fewer captions
    come back only when the templates cannot produce that many different ones (e.g. 10 for one object).
    """
    if not 1 <= len(objects) <= MAX_OBJECTS:
        raise ValueError(f"describe covers 1-{MAX_OBJECTS} objects; got {len(objects)}")
    if num_captions < 1:
        raise ValueError(f"num_captions must be >= 1; got {num_captions}")
    templates = _TEMPLATES[len(objects)]
    captions: list[str] = []
    for _ in range(20 * num_captions + 20):
        caption = templates[_pick(rng, len(templates))](objects, rng)
        if caption is not None and caption not in captions:
            captions.append(caption)
            if len(captions) == num_captions:
                break
    return captions


# ---------------------------------------------------------------- the dataset
@dataclass(frozen=True)
class CaptionScene:
    """One generated item.

    Attributes:
        image: uint8 ``[H, W, 3]``.
        captions: the reference captions.
        boxes: float32 ``[K, 4]`` ``x0/W, y0/H, x1/W, y1/H`` per object.
        names: (colour, shape) per object, in the order of ``boxes``.
        objects: the objects themselves (pixel geometry).
    """

    image: np.ndarray
    captions: list[str]
    boxes: np.ndarray
    names: list[tuple[str, str]]
    objects: list[SceneObject]


class CaptionScenes:
    """A fixed, generated captioning split: item ``i`` depends only on ``(seed, split, i)``.

    Args:
        num_images: number of items.
        image_size: image side, pixels (>= 16).
        seed: non-negative base seed.
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint random streams).
        num_captions: reference captions per image.
        min_objects: fewest objects per image (>= 1).
        max_objects: most objects per image (<= 3).
    """

    def __init__(
        self,
        num_images: int,
        image_size: int = 64,
        seed: int = 0,
        split: str = "train",
        num_captions: int = 5,
        min_objects: int = 1,
        max_objects: int = 3,
    ) -> None:
        check_split_count_seed(split, num_images, seed, "num_images")
        if image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE}; got {image_size}")
        if num_captions < 1:
            raise ValueError(f"num_captions must be >= 1; got {num_captions}")
        if not 1 <= min_objects <= max_objects <= MAX_OBJECTS:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= {MAX_OBJECTS}; got {min_objects}, {max_objects}")
        self.num_images = int(num_images)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.split = split
        self.num_captions = int(num_captions)
        self.min_objects = int(min_objects)
        self.max_objects = int(max_objects)

    def __len__(self) -> int:
        return self.num_images

    def _rng(self, i: int) -> np.random.Generator:
        return item_rng(self.seed, self.split, i, self.num_images, "images")

    def _sample(self, i: int, with_captions: bool) -> tuple[list[SceneObject], list[str]]:
        rng = self._rng(i)
        objects = sample_objects(rng, self.image_size, self.min_objects, self.max_objects)
        captions = describe(objects, rng, self.num_captions) if with_captions else []
        return objects, captions

    def objects(self, i: int) -> list[SceneObject]:
        """The objects of item ``i`` (pixel geometry)."""
        return self._sample(i, with_captions=False)[0]

    def captions(self, i: int) -> list[str]:
        """The reference captions of item ``i``."""
        return self._sample(i, with_captions=True)[1]

    def image(self, i: int) -> np.ndarray:
        """uint8 ``[H, W, 3]`` image of item ``i``."""
        return render(self.objects(i), self.image_size, BACKGROUND)

    def boxes(self, i: int) -> np.ndarray:
        """float32 ``[K, 4]`` boxes of item ``i``, normalised: ``x0/W, y0/H, x1/W, y1/H``."""
        return _boxes(self.objects(i), self.image_size)

    def names(self, i: int) -> list[tuple[str, str]]:
        """(colour, shape) of each object of item ``i``, in the order of :meth:`boxes`."""
        return [(o.colour, o.shape) for o in self.objects(i)]

    def scene(self, i: int) -> CaptionScene:
        """Everything about item ``i``, sampled once."""
        objects, captions = self._sample(i, with_captions=True)
        return CaptionScene(
            image=render(objects, self.image_size, BACKGROUND),
            captions=captions,
            boxes=_boxes(objects, self.image_size),
            names=[(o.colour, o.shape) for o in objects],
            objects=objects,
        )

    __getitem__ = scene

    def render_all(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """uint8 ``[N, H, W, 3]`` images of ``indices`` (default: every item)."""
        indices = range(self.num_images) if indices is None else indices
        out = np.empty((len(indices), self.image_size, self.image_size, 3), np.uint8)  # [N, H, W, 3]
        for n, i in enumerate(indices):
            out[n] = self.image(int(i))
        return out


def _boxes(objects: Sequence[SceneObject], image_size: int) -> np.ndarray:
    """float32 ``[K, 4]`` normalised boxes."""
    boxes = np.array([o.box for o in objects], np.float64).reshape(-1, 4) / image_size  # [K, 4]
    return boxes.astype(np.float32)
