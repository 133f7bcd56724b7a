"""Generated event clips: determinism, event segments, what the frames show, captions and word grounding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from datamodules.synthetic.event_clips import _FILLER, DIRECTIONS, MIN_SEGMENT, Event, EventClips, _phrases
from datamodules.synthetic.shapes import COLOURS, SHAPES, SIZES

T, S = 16, 64


def vocabulary_words() -> list[str]:
    """Every word the caption templates can produce, sorted."""
    words = set(_FILLER.split()) | set(COLOURS) | set(SHAPES) | set(SIZES)
    for kind, args in (("appears", [None]), ("disappears", [None]), ("moves", DIRECTIONS), ("changes", COLOURS)):
        for arg in args:
            words |= {w for p in _phrases(kind, arg) for w in p.split()}
    return sorted(words)


def ground_word_to_frames(word: str, events: Sequence[Event]) -> list[int]:
    """Sorted frame indices of the events whose colour, shape, size or verb words include ``word``.

    Any other word (articles, connectives, "it") -> ``[]``. Used to score temporal attention.
    """
    frames: set[int] = set()
    for ev in events:
        if word in (ev.colour, ev.shape, ev.size) or word in ev.verb_words:
            frames.update(range(*ev.frames))
    return sorted(frames)


def _colour_mask(frame: np.ndarray, colour: str) -> np.ndarray:
    """bool ``[H, W]``: pixels exactly of ``colour`` (anti-aliased edges excluded)."""
    return np.all(frame == np.array(COLOURS[colour], np.uint8), axis=-1)


def _centroid(frame: np.ndarray, colour: str) -> tuple[float, float]:
    ys, xs = np.nonzero(_colour_mask(frame, colour))
    assert xs.size > 0, f"no {colour} pixel on the frame"
    return float(xs.mean()), float(ys.mean())


def _clips_with(data: EventClips, kind: str, limit: int, scan: int = 300) -> list[tuple[int, Event]]:
    """(clip index, event) for the first ``limit`` events of ``kind`` in the first ``scan`` clips."""
    found = [(i, ev) for i in range(scan) for ev in data.events(i) if ev.kind == kind]
    assert len(found) >= limit, f"only {len(found)} {kind} events in {scan} clips"
    return found[:limit]


@pytest.fixture(scope="module")
def data() -> EventClips:
    return EventClips(1000, num_frames=T, image_size=S, seed=3)


def test_deterministic_per_seed_split_index(data: EventClips) -> None:
    other = EventClips(10, num_frames=T, image_size=S, seed=3)
    for i in (0, 7):
        assert other.events(i) == data.events(i)
        assert other.captions(i) == data.captions(i)
        np.testing.assert_array_equal(other.frames(i), data.frames(i))
    val = EventClips(10, num_frames=T, image_size=S, seed=3, split="val")
    assert [val.captions(i) for i in range(10)] != [data.captions(i) for i in range(10)]
    clip = data[5]
    assert clip.captions == data.captions(5) and clip.events == data.events(5)
    np.testing.assert_array_equal(clip.frames, data.frames(5))


def test_frames_and_mask_shapes(data: EventClips) -> None:
    frames = data.frames(0)
    assert frames.shape == (T, S, S, 3) and frames.dtype == np.uint8
    mask = data.event_frame_mask(0)
    events = data.events(0)
    assert mask.shape == (len(events), T) and mask.dtype == bool
    for k, ev in enumerate(events):
        assert np.flatnonzero(mask[k]).tolist() == list(range(*ev.frames))


@pytest.mark.parametrize("num_events", [1, 2, 3])
def test_events_in_order_non_overlapping(num_events: int) -> None:
    data = EventClips(200, num_frames=T, image_size=S, events_per_clip=num_events)
    for i in range(len(data)):
        events = data.events(i)
        assert len(events) == num_events
        end = 0
        for ev in events:
            start, stop = ev.frames
            assert start >= end and stop - start >= MIN_SEGMENT and stop <= T
            end = stop
        names = {(ev.obj, ev.shape) for ev in events}
        assert len({obj for obj, _ in names}) == len(names)  # an object keeps its shape


def test_appears_absent_before_present_after(data: EventClips) -> None:
    for i, ev in _clips_with(data, "appears", 10):
        frames, objects = data.frames(i), data.frame_objects(i)
        start, stop = ev.frames
        middle = (start + stop) // 2
        obj = next(o for o in objects[stop - 1] if o.shape == ev.shape and o.colour == ev.colour)
        cx, cy = int(obj.x), int(obj.y)
        colour = np.array(COLOURS[ev.colour], np.uint8)
        for t in range(middle):  # every frame before the segment, and the segment's first half
            assert not np.array_equal(frames[t, cy, cx], colour), (i, t)
            assert not _colour_mask(frames[t], ev.colour).any(), (i, t)
        for t in range(middle, stop):
            assert np.array_equal(frames[t, cy, cx], colour), (i, t)


def test_disappears_present_before_absent_after(data: EventClips) -> None:
    for i, ev in _clips_with(data, "disappears", 10):
        frames = data.frames(i)
        start, stop = ev.frames
        middle = (start + stop) // 2
        assert all(_colour_mask(frames[t], ev.colour).sum() > 4 for t in range(start, middle)), i
        assert not any(_colour_mask(frames[t], ev.colour).any() for t in range(middle, T)), i


@pytest.mark.parametrize("direction", ["left", "right", "up", "down"])
def test_moves_centroid_follows_direction(data: EventClips, direction: str) -> None:
    moves = [(i, ev) for i, ev in _clips_with(data, "moves", 200, scan=1000) if ev.argument == direction][:6]
    assert len(moves) >= 3, f"too few 'moves {direction}' events"
    axis, sign = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}[direction]
    for i, ev in moves:
        frames = data.frames(i)
        start, stop = ev.frames
        track = [sign * _centroid(frames[t], ev.colour)[axis] for t in range(start, stop)]
        assert all(b > a for a, b in zip(track, track[1:], strict=False)), (i, track)
        assert track[-1] - track[0] >= 0.2 * S, (i, track)
        before = _centroid(frames[start - 1], ev.colour) if start > 0 else None
        if before is not None:  # outside its segment the object keeps its state
            assert sign * before[axis] == pytest.approx(track[0], abs=1e-6)


def test_changes_colour_at_segment_middle(data: EventClips) -> None:
    for i, ev in _clips_with(data, "changes", 10):
        frames = data.frames(i)
        start, stop = ev.frames
        new = ev.argument
        assert new is not None and new != ev.colour
        first, last = frames[start], frames[stop - 1]
        assert _colour_mask(first, ev.colour).any() and not _colour_mask(first, new).any(), i
        assert _colour_mask(last, new).any() and not _colour_mask(last, ev.colour).any(), i


def test_captions_describe_events_in_order(data: EventClips) -> None:
    checked = 0
    for i in range(300):
        events, captions = data.events(i), data.captions(i)
        assert len(captions) == 3 and len(set(captions)) == 3
        for caption in captions:
            words = caption.split()
            for ev in events:  # every event is mentioned by one of its verb words
                assert set(ev.verb_words) & set(words), (caption, ev)
            first, second = events
            if first.obj != second.obj:
                a, b = f"{first.colour} {first.shape}", f"{second.colour} {second.shape}"
                assert a in caption and b in caption and caption.index(a) < caption.index(b), caption
                checked += 1
    assert checked > 50


def test_vocabulary_covers_captions() -> None:
    vocab = vocabulary_words()
    assert vocab == sorted(set(vocab))
    words: set[str] = set()
    for num_events in (1, 2, 3):
        data = EventClips(1000 if num_events == 2 else 200, events_per_clip=num_events, seed=1)
        for i in range(len(data)):
            for caption in data.captions(i):
                assert caption == caption.lower() and all(w.isalpha() for w in caption.split()), caption
                words.update(caption.split())
    assert words <= set(vocab), sorted(words - set(vocab))
    assert {"then", "left", "appears", "disappears", "changes"} <= words


def test_ground_word_to_frames() -> None:
    events = [
        Event((0, 6), 0, "red", "circle", "small", "moves left", ("goes", "left", "moves", "slides")),
        Event((6, 16), 1, "blue", "square", "large", "changes to green", ("becomes", "changes", "green", "turns")),
    ]
    assert ground_word_to_frames("red", events) == list(range(6))
    assert ground_word_to_frames("left", events) == list(range(6))
    assert ground_word_to_frames("square", events) == list(range(6, 16))
    assert ground_word_to_frames("green", events) == list(range(6, 16))
    assert ground_word_to_frames("then", events) == []
    assert ground_word_to_frames("yellow", events) == []
    same = [events[0], Event((6, 16), 0, "red", "circle", "small", "appears", ("appears",))]
    assert ground_word_to_frames("circle", same) == list(range(16))


def test_ground_words_of_real_captions(data: EventClips) -> None:
    for i in range(50):
        events, mask = data.events(i), data.event_frame_mask(i)
        for caption in data.captions(i):
            for word in caption.split():
                frames = ground_word_to_frames(word, events)
                if word in ("a", "the", "it", "then", "and", "first", "finally", "before", "after", "that"):
                    assert frames == []
                hit = [k for k, ev in enumerate(events) if ev.frames[0] in frames]
                union = np.flatnonzero(mask[hit].any(0)).tolist() if hit else []
                assert frames == union, (caption, word)  # whole event segments only
            for ev in events:  # each event's shape word grounds to (at least) its segment
                assert set(range(*ev.frames)) <= set(ground_word_to_frames(ev.shape, events))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="train, val, test"):
        EventClips(4, split="dev")
    with pytest.raises(ValueError, match="events_per_clip"):
        EventClips(4, events_per_clip=4)
    with pytest.raises(ValueError, match="num_frames"):
        EventClips(4, num_frames=7)
    with pytest.raises(IndexError):
        EventClips(4).events(4)
