"""Embedded translation data: a number written out in one language -> the same number in another (``num2words``).

``generate_number_pairs("en", "fr")`` gives real-language sentence pairs such as ``"two hundred and eighty-one"``
-> ``"deux cent quatre-vingt-un"``, with no download. Any two languages of ``num2words.CONVERTER_CLASSES`` work.

How the numbers are chosen:

* **Split membership** is fixed per number, by ``seed`` alone. The numbers are grouped in magnitude bands by digit
  count (band 1 = 0..9, band 2 = 10..99, ..., band 6 = 100000..999999). Each band is shuffled by a permutation
  seeded with ``(seed, band)``; the first ``max(1, round(val_fraction * band_size))`` numbers of the shuffled band
  are ``val``, the next ``max(1, round(test_fraction * band_size))`` are ``test``, the rest ``train``. The band is
  always the full digit range, whatever ``max_number`` is, so a number's split depends neither on the sizes
  requested for any split nor on ``max_number`` (numbers above ``max_number`` are just left out of every pool).
  Splitting band by band gives every split some small numbers (even band 1 puts one digit in val and one in test).
* **Drawing** ``size`` numbers of a split mixes magnitudes: the draw is spread evenly over the bands, and a band
  with fewer numbers in the pool than its share gives all of them, the rest going to the other bands. So no number
  repeats unless the whole pool of the split is smaller than ``size``; then every number is used once and the
  remainder is drawn again from the pool, with replacement. The draw is seeded with ``(seed, split)``.
* **Forms**: ``forms=("cardinal",)`` by default; ``"ordinal"`` (``num2words(n, to="ordinal")``, numbers >= 1) and
  ``"year"`` (numbers 1..9999) can be mixed in; each pair draws one of the forms that fit its number, the same form
  on both sides. A language whose converter has no real ordinal (num2words would silently return the cardinal) or
  raises ``NotImplementedError`` for a form is refused with a ``ValueError``. A year falls back to the cardinal in
  num2words where a language reads years as plain numbers (French, Spanish, ...), which is right for those languages.

Text is ``num2words``'s output in the language's own spelling (hyphens, accents, commas kept), lowercased, NFC
normalised (this changes some Kannada and Telugu output, which num2words does not compose), whitespace collapsed
to single spaces. A number a converter cannot write (``NotImplementedError``, ``OverflowError``, or another error
of that converter) is skipped and counted; the count is logged at INFO.

Speed: the text comes from a private copy of each converter whose word table stops below ``10**7`` (see
:func:`_trimmed_converter`): the same text, several times faster for the European languages; 20,000 pairs take
about a second.
"""

from __future__ import annotations

import copy
import functools
import logging
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from num2words import CONVERTER_CLASSES
from num2words.base import Num2Word_Base

__all__ = [
    "DEFAULT_SIZES",
    "FORMS",
    "NumberPairs",
    "SPLITS",
    "check_language",
    "generate_number_pairs",
    "make_number_splits",
    "number_text",
    "split_numbers",
    "supported_forms",
    "supported_languages",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DEFAULT_SIZES: dict[str, int] = {"train": 20000, "val": 500, "test": 1000}
# The numbers each form accepts, inclusive; None = no upper bound besides max_number.
FORMS: dict[str, tuple[int, int | None]] = {"cardinal": (0, None), "ordinal": (1, None), "year": (1, 9999)}
MAX_DIGITS = 7  # max_number < 10**7: split membership permutes whole digit bands, so bigger bands cost too much
_PROBES = {"cardinal": 2, "ordinal": 2, "year": 1984}  # numbers every working converter writes in that form
# What a num2words converter raises on a number it cannot write (several converters have their own bugs).
_CONVERTER_ERRORS = (NotImplementedError, OverflowError, ValueError, TypeError, IndexError, KeyError, AttributeError)
# Converters that loop forever on some numbers from this one on (num2words 0.5.14): max_number must stay below.
_HANGS_FROM = {"am": 10**6}


@dataclass
class NumberPairs:
    """Generated pairs: ``sources[i]`` translates to ``targets[i]``; both write ``numbers[i]`` in ``forms_used[i]``."""

    sources: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    forms_used: list[str] = field(default_factory=list)
    skipped: int = 0  # drawn numbers that a converter could not write (left out)


def supported_languages() -> list[str]:
    """The language codes ``num2words`` has a converter for, sorted (e.g. ``"de"``, ``"en"``, ``"fr"``, ``"fr_CH"``)."""
    return sorted(CONVERTER_CLASSES)


def check_language(code: str, role: str) -> None:
    """Raise ``ValueError`` naming ``code``, its ``role`` (``"source"``/``"target"``) and the supported codes.

    Only exact codes pass (num2words itself would quietly fall back from ``"fr_XX"`` to ``"fr"``).
    """
    if code not in CONVERTER_CLASSES:
        raise ValueError(f"unknown {role} language {code!r} (data.{role}_lang); num2words supports: "
                         f"{', '.join(supported_languages())}")


def _has_form(lang: str, form: str) -> bool:
    """Whether ``lang``'s converter really writes ``form``: not num2words' cardinal fallback, no NotImplementedError."""
    converter = CONVERTER_CLASSES[lang]
    method = f"to_{form}"
    if form == "ordinal" and getattr(type(converter), method) is getattr(Num2Word_Base, method):
        return False  # the base class returns the cardinal: not an ordinal
    try:
        number_text(_PROBES[form], lang, form)
    except _CONVERTER_ERRORS:
        return False
    return True


def supported_forms(lang: str) -> list[str]:
    """The forms of :data:`FORMS` that ``lang`` writes (always ``"cardinal"``; ``"ordinal"``, ``"year"`` if real)."""
    check_language(lang, "requested")
    return [form for form in FORMS if _has_form(lang, form)]


def _check_forms(forms: Sequence[str], source_lang: str, target_lang: str) -> tuple[str, ...]:
    """``forms`` as a tuple, after checking every form is known and written by both languages."""
    if isinstance(forms, str):
        forms = (forms,)
    forms = tuple(forms)
    if not forms:
        raise ValueError(f"forms is empty; choose from {list(FORMS)}")
    for form in forms:
        if form not in FORMS:
            raise ValueError(f"unknown form {form!r}; choose from {list(FORMS)}")
        for lang in dict.fromkeys((source_lang, target_lang)):
            if not _has_form(lang, form):
                raise ValueError(
                    f"language {lang!r} has no {form!r} form in num2words; its forms are {supported_forms(lang)}"
                )
    return forms


def _band(digits: int) -> tuple[int, int]:
    """The numbers with ``digits`` digits, as ``[low, high)`` (band 1 includes 0)."""
    return (0 if digits == 1 else 10 ** (digits - 1)), 10**digits


def _holdout(fraction: float, band_size: int) -> int:
    """How many numbers of a band go to a held-out split: ``round(fraction * size)``, at least 1 (if any asked)."""
    if fraction == 0:
        return 0
    return max(1, int(fraction * band_size + 0.5))


def split_numbers(
    split: str,
    max_number: int = 999_999,
    seed: int = 0,
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
) -> list[np.ndarray]:
    """The numbers of ``split`` in ``[0, max_number]``, one sorted int64 array per digit band (1, 2, ... digits).

    Membership depends only on ``(seed, number)`` and the two fractions (see the module docstring), so the three
    splits are disjoint and cover ``[0, max_number]``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    if not isinstance(max_number, (int, np.integer)) or not 0 <= max_number < 10**MAX_DIGITS:
        raise ValueError(f"max_number must be an int in [0, {10**MAX_DIGITS - 1}], got {max_number!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= fraction < 0.5:
            raise ValueError(f"{name} must be in [0, 0.5), got {fraction}")
    pools = []
    for digits in range(1, len(str(int(max_number))) + 1):
        low, high = _band(digits)
        order = np.random.default_rng([int(seed), 0, digits]).permutation(high - low) + low  # [band size]
        n_val, n_test = _holdout(val_fraction, high - low), _holdout(test_fraction, high - low)
        part = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}[split]
        pools.append(np.sort(part[part <= max_number]))
    return pools


def _allocate(capacities: Sequence[int], total: int) -> list[int]:
    """Spread ``total`` draws evenly over bands of the given capacities; a full band passes its share on.

    Leftovers of an uneven division go to the larger-number bands first. Returns per-band counts summing to
    ``min(total, sum(capacities))``.
    """
    counts = [0] * len(capacities)
    remaining = min(total, sum(capacities))
    while remaining > 0:
        open_bands = [i for i, c in enumerate(capacities) if counts[i] < c]
        share, extra = divmod(remaining, len(open_bands))
        for rank, i in enumerate(reversed(open_bands)):
            give = min(capacities[i] - counts[i], share + (rank < extra))
            counts[i] += give
            remaining -= give
    return counts


def _draw(pools: Sequence[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` numbers from the band pools, magnitudes mixed, repeats only once every pooled number is used."""
    counts = _allocate([len(p) for p in pools], size)
    chosen = [rng.choice(pool, count, replace=False) for pool, count in zip(pools, counts, strict=True) if count]
    drawn = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    if len(drawn) < size:  # the split's whole pool is smaller than size: reuse it
        everything = np.concatenate(pools) if pools else drawn
        if len(everything) == 0:
            raise ValueError("the split has no numbers to draw from; raise max_number or the split's fraction")
        drawn = np.concatenate([drawn, rng.choice(everything, size - len(drawn), replace=True)])
    return rng.permutation(drawn)


@functools.cache
def _trimmed_converter(lang: str) -> Any:
    """``lang``'s num2words converter for numbers below ``10**MAX_DIGITS``, made faster (a private copy, cached).

    Card-based converters (most European languages) scan their whole table of number words, up to centillions,
    at every step of ``splitnum``; the copy keeps only the words below ``10**MAX_DIGITS``, the only ones ``splitnum``
    picks for such numbers, so the text is the same (several times faster) and the shared converter is untouched.
    """
    converter = CONVERTER_CLASSES[lang]
    cards = getattr(converter, "cards", None)
    if not isinstance(cards, dict) or not cards:
        return converter
    trimmed = copy.copy(converter)
    trimmed.cards = OrderedDict((k, v) for k, v in cards.items() if k < 10**MAX_DIGITS)
    return trimmed


def number_text(number: int, lang: str, form: str = "cardinal") -> str:
    """``number`` written out by num2words in ``lang`` and ``form``: lowercased, NFC, single spaces.

    Raises ``ValueError`` for an unknown language or form, and whatever the converter raises on a number it cannot
    write (e.g. ``NotImplementedError``).
    """
    check_language(lang, "requested")
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; choose from {list(FORMS)}")
    number = int(number)
    converter = _trimmed_converter(lang) if abs(number) < 10**MAX_DIGITS else CONVERTER_CLASSES[lang]
    text = getattr(converter, f"to_{form}")(number)
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


def generate_number_pairs(
    source_lang: str = "en",
    target_lang: str = "fr",
    split: str = "train",
    size: int = 20000,
    max_number: int = 999_999,
    seed: int = 0,
    forms: Sequence[str] = ("cardinal",),
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
) -> NumberPairs:
    """Sentence pairs of one split, with the numbers and forms behind them and the count of skipped numbers.

    Args:
        source_lang: a num2words language code (see :func:`supported_languages`).
        target_lang: another (or the same, for a copy task).
        split: ``train``, ``val`` or ``test``; the splits never share a number.
        size: pairs to draw (>= 0); fewer come back if a converter skips numbers (counted in ``skipped``).
        max_number: the largest number (< 10**7; < 10**6 for ``am``, whose converter hangs above); numbers range
            over ``[0, max_number]``.
        seed: fixes split membership and the draw (>= 0).
        forms: any of ``cardinal``, ``ordinal``, ``year``; each pair picks one that fits its number.
        val_fraction: share of every digit band held out for ``val`` (at least one number per band).
        test_fraction: the same for ``test``.

    Raises:
        ValueError: unknown language, form or split; a form a language lacks; a bad size, max_number or seed.
    """
    check_language(source_lang, "source")
    check_language(target_lang, "target")
    forms = _check_forms(forms, source_lang, target_lang)
    if not isinstance(size, (int, np.integer)) or size < 0:
        raise ValueError(f"size must be a non-negative int, got {size!r}")
    pools = split_numbers(split, max_number, seed, val_fraction, test_fraction)  # checks max_number, seed, split
    for lang in (source_lang, target_lang):
        if lang in _HANGS_FROM and max_number >= _HANGS_FROM[lang]:
            raise ValueError(
                f"num2words loops forever on some numbers >= {_HANGS_FROM[lang]} in language {lang!r}; "
                f"use max_number < {_HANGS_FROM[lang]} (got {max_number})"
            )
    lowest = min(FORMS[f][0] for f in forms)
    bounded = [FORMS[f][1] for f in forms]
    highest = max_number if None in bounded else min(max_number, max(b for b in bounded if b is not None))
    pools = [p[(p >= lowest) & (p <= highest)] for p in pools]  # only numbers some form can write

    rng = np.random.default_rng([int(seed), 1, SPLITS.index(split)])
    out = NumberPairs()
    for number in _draw(pools, int(size), rng).tolist():
        fitting = [f for f in forms if FORMS[f][0] <= number and (FORMS[f][1] is None or number <= FORMS[f][1])]
        form = fitting[int(rng.integers(len(fitting)))]
        try:
            source, target = number_text(number, source_lang, form), number_text(number, target_lang, form)
        except _CONVERTER_ERRORS as e:
            if out.skipped == 0:
                log.debug("num2words cannot write %d (%s, %s -> %s): %r", number, form, source_lang, target_lang, e)
            out.skipped += 1
            continue
        out.sources.append(source)
        out.targets.append(target)
        out.numbers.append(number)
        out.forms_used.append(form)
    return out


def make_number_splits(
    source_lang: str = "en",
    target_lang: str = "fr",
    sizes: Mapping[str, int] | None = None,
    max_number: int = 999_999,
    seed: int = 0,
    forms: Sequence[str] = ("cardinal",),
) -> dict[str, tuple[list[str], list[str]]]:
    """Every split of :data:`DEFAULT_SIZES` (or ``sizes``) as ``{split: (sources, targets)}``.

    The numbers skipped by a converter are counted per split and logged at INFO.
    """
    sizes = dict(DEFAULT_SIZES if sizes is None else sizes)
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)} in sizes; choose from {SPLITS}")
    splits: dict[str, tuple[list[str], list[str]]] = {}
    skipped: dict[str, int] = {}
    for split, size in sizes.items():
        pairs = generate_number_pairs(source_lang, target_lang, split, size, max_number, seed, forms)
        splits[split] = (pairs.sources, pairs.targets)
        skipped[split] = pairs.skipped
    log.info(
        "number pairs %s -> %s: %s pairs; skipped numbers num2words cannot write: %s",
        source_lang,
        target_lang,
        {s: len(src) for s, (src, _) in splits.items()},
        skipped,
    )
    return splits
