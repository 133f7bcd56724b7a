"""Sort-of-CLEVR (Santoro et al. 2017): six coloured objects per image and natural-language questions about them.

Image ``i`` of a split is drawn from ``np.random.default_rng([seed, split_code, i])``: first its objects
(:func:`sample_objects`), then its questions (:func:`ask`) from the same generator, so an image and its
questions depend only on ``(seed, split, i)``. Nothing is cached; the image is rendered on request.

Every image holds exactly six objects, one of each colour of :data:`shapes.COLOURS`, in that order (object
``k`` has colour ``COLOURS_ORDER[k]``). Each is a circle or a square (random) of fixed radius
(``RADIUS_FRACTION * image_size``, 5.6 px at 75 px), inside the image (1 px margin), its box at least
2 px from every other box.

Questions name the object they are about by its colour ("the red object"); they are lowercase words
separated by single spaces, without any punctuation (no trailing "?"). Kinds and types:

- ``non_relational``: ``shape`` (circle / square), ``horizontal`` (left / right: centre x < W / 2 is left),
  ``vertical`` (top / bottom: centre y < H / 2 is top);
- ``relational``: ``closest`` / ``farthest`` (the shape of the object whose centre is nearest to / farthest
  from the named object's centre, Euclidean; ties go to the lowest index), ``count`` (how many objects share
  the named object's shape, the named object included: "1".."6").

Question ``k`` of an image is non-relational when ``k`` is even and relational when odd, so the kinds are
balanced (half each; the extra one of an odd count is non-relational). The type is uniform within its kind
and the colour uniform over the six.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from datamodules.synthetic.items import SPLITS, check_split_count_seed, item_rng
from datamodules.synthetic.shapes import BACKGROUND, COLOURS, SceneObject, render

__all__ = [
    "ANSWERS",
    "ANSWER_INDEX",
    "COLOURS_ORDER",
    "KINDS",
    "NUM_OBJECTS",
    "OBJECT_SHAPES",
    "SPLITS",
    "TYPES",
    "Question",
    "SortOfClevr",
    "answer",
    "ask",
    "sample_objects",
]

ANSWERS = ("circle", "square", "left", "right", "top", "bottom", "1", "2", "3", "4", "5", "6")
ANSWER_INDEX = {a: k for k, a in enumerate(ANSWERS)}
COLOURS_ORDER = tuple(COLOURS)  # object k has colour COLOURS_ORDER[k]
NUM_OBJECTS = len(COLOURS_ORDER)  # 6
OBJECT_SHAPES = ("circle", "square")
KINDS = ("non_relational", "relational")
TYPES = {"non_relational": ("shape", "horizontal", "vertical"), "relational": ("closest", "farthest", "count")}
MIN_IMAGE_SIZE = 32
SUPERSAMPLE = 2  # shapes.render's default anti-aliasing, which image() uses
RADIUS_FRACTION = 0.075  # radius = 5.625 px at 75 px
GAP = 2.0  # minimum pixels between two boxes
MARGIN = 1.0  # minimum pixels between a box and the image edge
POSITION_TRIES = 100  # positions tried per object before the scene is restarted
SCENE_TRIES = 20  # scene restarts before giving up

# Question type -> phrasings; "{c}" is the colour of the object asked about.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "shape": (
        "what is the shape of the {c} object",
        "what shape is the {c} object",
        "is the {c} object a circle or a square",
    ),
    "horizontal": (
        "is the {c} object on the left or right of the image",
        "is the {c} object on the left or the right",
        "which side of the image is the {c} object on",
    ),
    "vertical": (
        "is the {c} object at the top or bottom of the image",
        "is the {c} object at the top or the bottom",
        "is the {c} object in the top or bottom half of the image",
    ),
    "closest": (
        "what is the shape of the object closest to the {c} object",
        "what shape is the object nearest to the {c} object",
        "what shape is the object that is closest to the {c} one",
    ),
    "farthest": (
        "what is the shape of the object farthest from the {c} object",
        "what shape is the object furthest from the {c} object",
        "what shape is the object that is farthest from the {c} one",
    ),
    "count": (
        "how many objects have the same shape as the {c} object",
        "how many objects are the same shape as the {c} object",
        "how many objects share the shape of the {c} object",
    ),
}


@dataclass(frozen=True)
class Question:
    """One question about one image.

    Attributes:
        text: the question, lowercase words separated by single spaces.
        answer: one of :data:`ANSWERS`.
        kind: ``"non_relational"`` or ``"relational"``.
        type: ``shape``, ``horizontal``, ``vertical``, ``closest``, ``farthest`` or ``count``.
        about: indices of the objects the answer depends on: ``[X]`` (the named object), or ``[X, Y]`` for
            closest / farthest (Y: the object whose shape is the answer).
        image_index: the image the question is about.
    """

    text: str
    answer: str
    kind: str
    type: str
    about: list[int]
    image_index: int

    @property
    def answer_index(self) -> int:
        """Index of :attr:`answer` in :data:`ANSWERS`."""
        return ANSWER_INDEX[self.answer]


# ---------------------------------------------------------------- scene sampling
def _pick(rng: np.random.Generator, n: int) -> int:
    """Uniform index in ``[0, n)`` (``rng.random`` is several times cheaper than ``rng.integers``)."""
    return min(int(rng.random() * n), n - 1)


def sample_objects(rng: np.random.Generator, image_size: int = 75) -> list[SceneObject]:
    """The six objects of one scene, object ``k`` of colour ``COLOURS_ORDER[k]``.

    Each is a random circle or square of radius ``RADIUS_FRACTION * image_size``, its box inside the image
    (1 px margin) and at least 2 px from every other box. Rejection sampling with bounded tries: raises
    RuntimeError if a scene cannot be placed (never at ``image_size >= 32``).
    """
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE}; got {image_size}")
    radius = RADIUS_FRACTION * image_size
    low, free = radius + MARGIN, image_size - 2.0 * (radius + MARGIN)  # valid centres: [low, low + free]
    reach = 2.0 * radius + GAP  # centres closer than this along both axes -> boxes too close
    for _ in range(SCENE_TRIES):
        objects: list[SceneObject] = []
        for colour in COLOURS_ORDER:
            shape = OBJECT_SHAPES[_pick(rng, len(OBJECT_SHAPES))]
            for _ in range(POSITION_TRIES):
                x, y = low + rng.random() * free, low + rng.random() * free
                if all(abs(x - o.x) >= reach or abs(y - o.y) >= reach for o in objects):
                    objects.append(SceneObject(shape=shape, colour=colour, size="small", x=x, y=y, radius=radius))
                    break
            else:
                break  # this object did not fit: restart the scene
        else:
            return objects
    raise RuntimeError(f"could not place {NUM_OBJECTS} objects in a {image_size}x{image_size} image")


# ---------------------------------------------------------------- questions
def answer(objects: Sequence[SceneObject], about: int, qtype: str, image_size: int) -> tuple[str, list[int]]:
    """The answer to a question of type ``qtype`` about ``objects[about]``, and the objects it depends on."""
    obj = objects[about]
    if qtype == "shape":
        return obj.shape, [about]
    if qtype == "horizontal":
        return ("left" if obj.x < image_size / 2 else "right"), [about]
    if qtype == "vertical":
        return ("top" if obj.y < image_size / 2 else "bottom"), [about]
    if qtype == "count":
        return str(sum(o.shape == obj.shape for o in objects)), [about]
    if qtype in ("closest", "farthest"):
        centres = np.array([(o.x, o.y) for o in objects], np.float64)  # [K, 2]
        dist = np.linalg.norm(centres - centres[about], axis=-1)  # [K]
        if qtype == "closest":
            dist[about] = np.inf
            other = int(np.argmin(dist))
        else:
            other = int(np.argmax(dist))  # the object itself is at distance 0, never the farthest
        return objects[other].shape, [about, other]
    raise ValueError(f"unknown question type {qtype!r}; valid choices: {', '.join(_TEMPLATES)}")


def ask(
    objects: Sequence[SceneObject], rng: np.random.Generator, num_questions: int, image_index: int, image_size: int
) -> list[Question]:
    """``num_questions`` questions about a six-object scene: even positions non-relational, odd relational."""
    questions = []
    for k in range(num_questions):
        kind = KINDS[k % 2]
        qtype = TYPES[kind][_pick(rng, len(TYPES[kind]))]
        about = _pick(rng, len(objects))
        templates = _TEMPLATES[qtype]
        text = templates[_pick(rng, len(templates))].format(c=objects[about].colour)
        ans, involved = answer(objects, about, qtype, image_size)
        questions.append(Question(text, ans, kind, qtype, involved, image_index))
    return questions


# ---------------------------------------------------------------- the dataset
class SortOfClevr:
    """A fixed, generated Sort-of-CLEVR split, indexed by question: image ``i`` depends only on
    ``(seed, split, i)``, and question ``q`` is question ``q % questions_per_image`` of image
    ``q // questions_per_image``.

    Args:
        num_images: number of images.
        questions_per_image: questions per image (half non-relational, half relational).
        seed: non-negative base seed.
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint random streams).
        image_size: image side, pixels (>= 32; 75 in the paper).
    """

    def __init__(
        self,
        num_images: int,
        questions_per_image: int = 10,
        seed: int = 0,
        split: str = "train",
        image_size: int = 75,
    ) -> None:
        check_split_count_seed(split, num_images, seed, "num_images")
        if questions_per_image < 1:
            raise ValueError(f"questions_per_image must be >= 1; got {questions_per_image}")
        if image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE}; got {image_size}")
        self.num_images = int(num_images)
        self.questions_per_image = int(questions_per_image)
        self.seed = int(seed)
        self.split = split
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return self.num_images * self.questions_per_image

    def _rng(self, i: int) -> np.random.Generator:
        return item_rng(self.seed, self.split, i, self.num_images, "images")

    def objects(self, i: int) -> list[SceneObject]:
        """The six objects of image ``i`` (pixel geometry), object ``k`` of colour ``COLOURS_ORDER[k]``."""
        return sample_objects(self._rng(i), self.image_size)

    def questions(self, i: int) -> list[Question]:
        """The ``questions_per_image`` questions of image ``i``."""
        rng = self._rng(i)
        objects = sample_objects(rng, self.image_size)
        return ask(objects, rng, self.questions_per_image, int(i), self.image_size)

    def question(self, q: int) -> Question:
        """Question ``q`` (of image ``q // questions_per_image``)."""
        if not 0 <= q < len(self):
            raise IndexError(f"question index {q} out of range for {len(self)} questions")
        i, k = divmod(int(q), self.questions_per_image)
        return self.questions(i)[k]

    __getitem__ = question

    def image(self, i: int) -> np.ndarray:
        """uint8 ``[H, W, 3]`` image ``i``."""
        return render(self.objects(i), self.image_size, BACKGROUND, supersample=SUPERSAMPLE)

    def boxes(self, i: int) -> np.ndarray:
        """float32 ``[6, 4]`` boxes of image ``i``'s objects, normalised: ``x0/W, y0/H, x1/W, y1/H``."""
        boxes = np.array([o.box for o in self.objects(i)], np.float64) / self.image_size  # [6, 4]
        return boxes.astype(np.float32)

    def render_all(self, indices: Sequence[int] | None = None, chunk: int = 256) -> np.ndarray:
        """uint8 ``[N, H, W, 3]`` images ``indices`` (default: every image), equal to :meth:`image` of each.

        Faster than :meth:`image` in a loop: each image is drawn by :func:`shapes.render` without
        supersampling on a canvas ``SUPERSAMPLE`` times larger (objects scaled alike, which is exactly the
        supersampled canvas :func:`shapes.render` draws, since scaling by 2 is exact in floating point), and
        ``chunk`` canvases at a time are box-downsampled together with the same rounding.
        """
        indices = range(self.num_images) if indices is None else indices
        size, s = self.image_size, SUPERSAMPLE
        out = np.empty((len(indices), size, size, 3), np.uint8)  # [N, H, W, 3]
        for start in range(0, len(indices), chunk):
            part = indices[start : start + chunk]
            fine = np.empty((len(part), size * s, size * s, 3), np.uint8)  # [n, H*s, W*s, 3]
            for n, i in enumerate(part):
                scaled = [replace(o, x=o.x * s, y=o.y * s, radius=o.radius * s) for o in self.objects(int(i))]
                fine[n] = render(scaled, size * s, BACKGROUND, supersample=1)
            total = np.zeros((len(part), size, size, 3), np.uint16)  # [n, H, W, 3]; s*s*255 fits for s <= 15
            for dy in range(s):
                for dx in range(s):
                    total += fine[:, dy::s, dx::s]
            out[start : start + len(part)] = (total + (s * s) // 2) // (s * s)
        return out
