"""Generated video clips of coloured shapes with event captions and the frames of every event.

Clip ``i`` of a split is drawn from ``np.random.default_rng([seed, split_code, i])``: first its plan
(objects, event segments, events, positions; :func:`sample_clip`), then its captions (:func:`describe_events`)
from the same generator, so a clip depends only on ``(seed, split, i)``. Frames are rendered on request with
:func:`datamodules.synthetic.shapes.render`.

A clip has 1-2 objects (distinct colours, so each colour names one object; sizes as in
:mod:`.caption_scenes`) and ``events_per_clip`` events in sequence. The frames are split into contiguous
segments of at least :data:`MIN_SEGMENT` frames (random boundaries), one per event, in order. Outside its
segment an event's object keeps its state. Within segment ``[s, e)`` with middle ``m = (s + e) // 2``:

- ``appears``: the object is absent for every frame ``< m`` and present from ``m`` on (only as its first event);
- ``disappears``: present before ``m``, absent from ``m`` on (its last event);
- ``moves left|right|up|down``: linear motion from frame ``s`` to ``e - 1`` by 25-40% of the image side, with
  the whole path of the object inside the image (1 px margin);
- ``changes to <colour>``: the colour switches at ``m`` to a colour no other object of the clip uses.

Objects never overlap (boxes >= 2 px apart) on any frame where both are drawn. Captions are lowercase words
without punctuation and describe every event in order; the event's object is named by its colour at the
segment start (``"a [size] colour shape"``, later ``"the colour shape"`` or ``"it"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datamodules.synthetic.caption_scenes import GAP, MARGIN, RADIUS_FRACTION
from datamodules.synthetic.items import SPLITS, check_split_count_seed, item_rng
from datamodules.synthetic.shapes import BACKGROUND, COLOURS, SHAPES, SIZES, SceneObject, render

__all__ = [
    "DIRECTIONS",
    "MIN_SEGMENT",
    "SPLITS",
    "Event",
    "EventClip",
    "EventClips",
    "ObjectTrack",
    "describe_events",
    "sample_clip",
]

MIN_SEGMENT = 4  # frames per event segment
MAX_EVENTS = 3
MAX_OBJECTS = 2
MIN_IMAGE_SIZE = 32
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}  # unit (dx, dy), y down
MOVE_FRACTION = (0.25, 0.40)  # motion distance as a fraction of the image side
JITTER = 0.1  # radius jitter, as in caption_scenes
CLIP_TRIES = 50  # full re-plans before giving up
POSITION_TRIES = 20  # start positions tried per plan

# Verb kind -> phrasings ({d}: direction, {c}: new colour). "to the {d}" only for left/right.
_APPEAR = ("appears", "comes into view", "pops into view")
_DISAPPEAR = ("disappears", "vanishes", "leaves")
_MOVE = ("moves {d}", "goes {d}", "slides {d}")
_MOVE_SIDE = ("moves to the {d}", "goes to the {d}")
_CHANGE = ("changes to {c}", "turns {c}", "becomes {c}", "changes colour to {c}")
_FUNCTION_WORDS = {"to", "the", "into"}  # phrase words that do not ground to an event
_FILLER = "a the it then and first finally after that before in this clip video"


# ---------------------------------------------------------------- ground truth
@dataclass(frozen=True)
class Event:
    """One event of a clip.

    Attributes:
        frames: ``(start, end)`` frame range of its segment, end exclusive.
        obj: index of the object (into the clip's objects).
        colour: the object's colour word at the segment start.
        shape: the object's shape word.
        size: the object's size word.
        verb: canonical verb phrase, e.g. ``"appears"``, ``"moves left"``, ``"changes to blue"``.
        verb_words: every content word a caption may use for this verb (synonyms included; no "to"/"the").
    """

    frames: tuple[int, int]
    obj: int
    colour: str
    shape: str
    size: str
    verb: str
    verb_words: tuple[str, ...]

    @property
    def kind(self) -> str:
        """``"appears"``, ``"disappears"``, ``"moves"`` or ``"changes"``."""
        return self.verb.split()[0]

    @property
    def argument(self) -> str | None:
        """The direction of a move or the new colour of a change; None otherwise."""
        return self.verb.split()[-1] if self.kind in ("moves", "changes") else None


def _phrases(kind: str, argument: str | None) -> list[str]:
    """Every phrasing of a verb."""
    if kind == "appears":
        return list(_APPEAR)
    if kind == "disappears":
        return list(_DISAPPEAR)
    if kind == "moves":
        side = _MOVE_SIDE if argument in ("left", "right") else ()
        return [p.format(d=argument) for p in (*_MOVE, *side)]
    return [p.format(c=argument) for p in _CHANGE]


def _verb_words(kind: str, argument: str | None) -> tuple[str, ...]:
    words = {w for p in _phrases(kind, argument) for w in p.split()} - _FUNCTION_WORDS
    return tuple(sorted(words))


# ---------------------------------------------------------------- planning
@dataclass
class ObjectTrack:
    """One object of a clip and its state on each frame."""

    shape: str
    size: str
    radius: float
    colour: list[str]  # [T]
    present: np.ndarray  # [T] bool
    x: np.ndarray  # [T] float64
    y: np.ndarray  # [T] float64

    def objects(self, t: int) -> list[SceneObject]:
        if not self.present[t]:
            return []
        return [SceneObject(self.shape, self.colour[t], self.size, float(self.x[t]), float(self.y[t]), self.radius)]


def _pick(rng: np.random.Generator, n: int) -> int:
    """Uniform index in ``[0, n)``."""
    return min(int(rng.random() * n), n - 1)


def _segments(rng: np.random.Generator, num_frames: int, num_events: int) -> list[tuple[int, int]]:
    """Contiguous segments covering ``[0, num_frames)``, each >= MIN_SEGMENT frames, random boundaries."""
    extra = rng.multinomial(num_frames - MIN_SEGMENT * num_events, [1.0 / num_events] * num_events)  # [E]
    ends = np.cumsum(MIN_SEGMENT + extra)  # [E]
    starts = np.concatenate([[0], ends[:-1]])
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def _plan_events(
    rng: np.random.Generator, segments: list[tuple[int, int]], radii: list[float], image_size: int, spare: list[str]
) -> list[tuple[int, str, str | None, float]] | None:
    """``(obj, kind, argument, distance)`` per event, or None when some event had no valid choice."""
    n = len(radii)
    started, gone = [False] * n, [False] * n
    offsets = [[(0.0, 0.0)] for _ in range(n)]  # cumulative (dx, dy) after each move, per object
    spare = list(spare)
    plan: list[tuple[int, str, str | None, float]] = []
    for _ in segments:
        dist = image_size * (MOVE_FRACTION[0] + (MOVE_FRACTION[1] - MOVE_FRACTION[0]) * rng.random())
        options: dict[int, dict[str, list[str | None]]] = {}
        for k in range(n):
            if gone[k]:
                continue
            kinds: dict[str, list[str | None]] = {}
            if not started[k]:
                kinds["appears"] = [None]
            kinds["disappears"] = [None]
            free = image_size - 2.0 * (radii[k] + MARGIN)  # room for the centre along each axis
            dirs: list[str | None] = []
            for d, (ux, uy) in DIRECTIONS.items():
                cx, cy = offsets[k][-1]
                path = [*offsets[k], (cx + ux * dist, cy + uy * dist)]
                axis = 0 if ux else 1
                if max(p[axis] for p in path) - min(p[axis] for p in path) <= free:
                    dirs.append(d)
            if dirs:
                kinds["moves"] = dirs
            if spare:
                kinds["changes"] = list(spare)
            options[k] = kinds
        if not options:
            return None
        obj = list(options)[_pick(rng, len(options))]
        kind = list(options[obj])[_pick(rng, len(options[obj]))]
        args = options[obj][kind]
        arg = args[_pick(rng, len(args))]
        if kind == "disappears":
            gone[obj] = True
        elif kind == "moves":
            ux, uy = DIRECTIONS[arg]  # type: ignore[index]
            cx, cy = offsets[obj][-1]
            offsets[obj].append((cx + ux * dist, cy + uy * dist))
        elif kind == "changes":
            spare.remove(arg)  # type: ignore[arg-type]
        started[obj] = True
        plan.append((obj, kind, arg, dist))
    return plan


def _tracks(
    rng: np.random.Generator,
    plan: list[tuple[int, str, str | None, float]],
    segments: list[tuple[int, int]],
    shapes: list[tuple[str, str, str, float]],
    num_frames: int,
    image_size: int,
) -> list[ObjectTrack] | None:
    """Per-frame states from a plan, with random start positions; None if no positions kept objects apart."""
    for _ in range(POSITION_TRIES):
        tracks = []
        for k, (colour, shape, size, radius) in enumerate(shapes):
            mine = [(p, seg) for p, seg in zip(plan, segments, strict=True) if p[0] == k]
            offs = np.zeros((1, 2))
            for (_, kind, arg, dist), _seg in mine:
                if kind == "moves":
                    offs = np.vstack([offs, offs[-1] + np.array(DIRECTIONS[arg]) * dist])  # type: ignore[index]
            lo, hi = radius + MARGIN, image_size - radius - MARGIN
            start = lo - offs.min(0) + rng.random(2) * ((hi - lo) - (offs.max(0) - offs.min(0)))  # [2]
            track = ObjectTrack(
                shape,
                size,
                radius,
                [colour] * num_frames,
                np.ones(num_frames, bool),
                np.full(num_frames, start[0]),
                np.full(num_frames, start[1]),
            )
            for (_, kind, arg, dist), (s, e) in mine:
                m = (s + e) // 2
                if kind == "appears":
                    track.present[:m] = False
                elif kind == "disappears":
                    track.present[m:] = False
                elif kind == "changes":
                    track.colour[m:] = [arg] * (num_frames - m)
                else:
                    ux, uy = DIRECTIONS[arg]  # type: ignore[index]
                    ramp = np.concatenate([np.arange(e - s) / (e - s - 1), np.ones(num_frames - e)])  # [T - s]
                    track.x[s:] = track.x[s] + ux * dist * ramp
                    track.y[s:] = track.y[s] + uy * dist * ramp
            tracks.append(track)
        if _apart(tracks):
            return tracks
    return None


def _apart(tracks: list[ObjectTrack]) -> bool:
    """Whether every two objects' boxes are >= GAP apart on every frame both are drawn."""
    for a in range(len(tracks)):
        for b in range(a + 1, len(tracks)):
            p, q = tracks[a], tracks[b]
            reach = p.radius + q.radius + GAP
            clear = (np.abs(p.x - q.x) >= reach) | (np.abs(p.y - q.y) >= reach)  # [T]
            if np.any(p.present & q.present & ~clear):
                return False
    return True


def sample_clip(
    rng: np.random.Generator, num_frames: int = 16, image_size: int = 64, num_events: int = 2
) -> tuple[list[ObjectTrack], list[Event]]:
    """Plan one clip: per-object tracks and its events in order. Raises RuntimeError if no plan was found."""
    if not 1 <= num_events <= MAX_EVENTS:
        raise ValueError(f"num_events must be in [1, {MAX_EVENTS}]; got {num_events}")
    if num_frames < MIN_SEGMENT * num_events:
        raise ValueError(f"num_frames must be >= {MIN_SEGMENT} * num_events = {MIN_SEGMENT * num_events}")
    colours = list(COLOURS)
    for _ in range(CLIP_TRIES):
        segments = _segments(rng, num_frames, num_events)
        count = 1 + _pick(rng, MAX_OBJECTS)
        order = rng.permutation(len(colours))
        shapes = []
        for k in range(count):
            size = SIZES[_pick(rng, len(SIZES))]
            radius = RADIUS_FRACTION[size] * image_size * (1.0 + JITTER * (2.0 * rng.random() - 1.0))
            shapes.append((colours[order[k]], SHAPES[_pick(rng, len(SHAPES))], size, radius))
        spare = [colours[j] for j in order[count:]]
        plan = _plan_events(rng, segments, [s[3] for s in shapes], image_size, spare)
        if plan is None:
            continue
        tracks = _tracks(rng, plan, segments, shapes, num_frames, image_size)
        if tracks is None:
            continue
        events = []
        for (obj, kind, arg, _), (s, e) in zip(plan, segments, strict=True):
            verb = kind if arg is None else f"{kind} {arg}" if kind == "moves" else f"changes to {arg}"
            tr = tracks[obj]
            events.append(Event((s, e), obj, tr.colour[s], tr.shape, tr.size, verb, _verb_words(kind, arg)))
        return tracks, events
    raise RuntimeError(f"could not plan a clip of {num_events} events in {num_frames} frames of {image_size} px")


# ---------------------------------------------------------------- captions
def _clauses(events: Sequence[Event], rng: np.random.Generator) -> list[str]:
    """One ``"subject verb"`` clause per event."""
    clauses: list[str] = []
    named: set[int] = set()
    for k, ev in enumerate(events):
        if k > 0 and events[k - 1].obj == ev.obj and rng.random() < 0.5:
            subject = "it"
        elif ev.obj in named:
            subject = f"the {ev.colour} {ev.shape}"
        elif rng.random() < 0.3:
            subject = f"a {ev.size} {ev.colour} {ev.shape}"
        else:
            subject = f"a {ev.colour} {ev.shape}"
        named.add(ev.obj)
        phrases = _phrases(ev.kind, ev.argument)
        clauses.append(f"{subject} {phrases[_pick(rng, len(phrases))]}")
    return clauses


def _join(clauses: list[str], rng: np.random.Generator) -> str:
    """Clauses joined in order by a random connective form."""
    if len(clauses) == 1:
        forms = [clauses[0], f"in this clip {clauses[0]}", f"in this video {clauses[0]}"]
        return forms[_pick(rng, len(forms))]
    head, last = clauses[:-1], clauses[-1]
    forms = [
        " then ".join(clauses),
        " and then ".join(clauses),
        " and ".join(clauses),
        "first " + " then ".join(head) + " and then " + last,
        "first " + " then ".join(head) + " and finally " + last,
        " after that ".join(clauses),
    ]
    if len(clauses) == 2:
        forms.append(f"{clauses[0]} before {clauses[1]}")
    return forms[_pick(rng, len(forms))]


def describe_events(events: Sequence[Event], rng: np.random.Generator, num_captions: int = 3) -> list[str]:
    """Up to ``num_captions`` different captions naming every event in order (bounded draws)."""
    if num_captions < 1:
        raise ValueError(f"num_captions must be >= 1; got {num_captions}")
    captions: list[str] = []
    for _ in range(20 * num_captions + 20):
        caption = _join(_clauses(events, rng), rng)
        if caption not in captions:
            captions.append(caption)
            if len(captions) == num_captions:
                break
    return captions


# ---------------------------------------------------------------- the dataset
@dataclass(frozen=True)
class EventClip:
    """One generated clip.

    Attributes:
        frames: uint8 ``[T, H, W, 3]``.
        captions: the reference captions.
        events: the events, in order.
        event_frame_mask: bool ``[E, T]``, True on each event's segment.
    """

    frames: np.ndarray
    captions: list[str]
    events: list[Event]
    event_frame_mask: np.ndarray


class EventClips:
    """A fixed, generated video-captioning split: clip ``i`` depends only on ``(seed, split, i)``.

    Args:
        num_clips: number of clips.
        num_frames: frames per clip (>= 4 * events_per_clip).
        image_size: frame side, pixels (>= 32).
        seed: non-negative base seed.
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint random streams).
        num_captions: reference captions per clip.
        events_per_clip: events per clip, 1-3.
    """

    def __init__(
        self,
        num_clips: int,
        num_frames: int = 16,
        image_size: int = 64,
        seed: int = 0,
        split: str = "train",
        num_captions: int = 3,
        events_per_clip: int = 2,
    ) -> None:
        check_split_count_seed(split, num_clips, seed, "num_clips")
        if image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE}; got {image_size}")
        if not 1 <= events_per_clip <= MAX_EVENTS:
            raise ValueError(f"events_per_clip must be in [1, {MAX_EVENTS}]; got {events_per_clip}")
        if num_frames < MIN_SEGMENT * events_per_clip:
            raise ValueError(
                f"num_frames must be >= {MIN_SEGMENT} * events_per_clip = {MIN_SEGMENT * events_per_clip}; "
                f"got {num_frames}"
            )
        if num_captions < 1:
            raise ValueError(f"num_captions must be >= 1; got {num_captions}")
        self.num_clips = int(num_clips)
        self.num_frames = int(num_frames)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.split = split
        self.num_captions = int(num_captions)
        self.events_per_clip = int(events_per_clip)

    def __len__(self) -> int:
        return self.num_clips

    def _rng(self, i: int) -> np.random.Generator:
        return item_rng(self.seed, self.split, i, self.num_clips, "clips")

    def _plan(self, i: int) -> tuple[np.random.Generator, list[ObjectTrack], list[Event]]:
        rng = self._rng(i)
        tracks, events = sample_clip(rng, self.num_frames, self.image_size, self.events_per_clip)
        return rng, tracks, events

    def events(self, i: int) -> list[Event]:
        """The events of clip ``i``, in order."""
        return self._plan(i)[2]

    def captions(self, i: int) -> list[str]:
        """The reference captions of clip ``i``."""
        rng, _, events = self._plan(i)
        return describe_events(events, rng, self.num_captions)

    def frame_objects(self, i: int) -> list[list[SceneObject]]:
        """The objects drawn on each frame of clip ``i`` (``T`` lists, in drawing order)."""
        tracks = self._plan(i)[1]
        return [[o for tr in tracks for o in tr.objects(t)] for t in range(self.num_frames)]

    def frames(self, i: int) -> np.ndarray:
        """uint8 ``[T, H, W, 3]`` frames of clip ``i`` (identical consecutive scenes are rendered once)."""
        return self._render(self.frame_objects(i))

    def _render(self, per_frame: list[list[SceneObject]]) -> np.ndarray:
        out = np.empty((len(per_frame), self.image_size, self.image_size, 3), np.uint8)  # [T, H, W, 3]
        for t, objects in enumerate(per_frame):
            if t > 0 and objects == per_frame[t - 1]:
                out[t] = out[t - 1]
            else:
                out[t] = render(objects, self.image_size, BACKGROUND)
        return out

    def event_frame_mask(self, i: int) -> np.ndarray:
        """bool ``[E, T]``: True where frame ``t`` lies in event ``e``'s segment."""
        return _mask(self.events(i), self.num_frames)

    def clip(self, i: int) -> EventClip:
        """Everything about clip ``i``, sampled once."""
        rng, tracks, events = self._plan(i)
        per_frame = [[o for tr in tracks for o in tr.objects(t)] for t in range(self.num_frames)]
        return EventClip(
            frames=self._render(per_frame),
            captions=describe_events(events, rng, self.num_captions),
            events=events,
            event_frame_mask=_mask(events, self.num_frames),
        )

    __getitem__ = clip


def _mask(events: Sequence[Event], num_frames: int) -> np.ndarray:
    mask = np.zeros((len(events), num_frames), bool)  # [E, T]
    for k, ev in enumerate(events):
        mask[k, ev.frames[0] : ev.frames[1]] = True
    return mask
