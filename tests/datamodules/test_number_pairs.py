"""datamodules.number_pairs: num2words sentence pairs, deterministic, numbers disjoint across splits."""

import logging
import unicodedata
from typing import Any

import numpy as np
import pytest
from num2words import CONVERTER_CLASSES, num2words

import datamodules.number_pairs as number_pairs_module
from datamodules.number_pairs import (
    SPLITS,
    check_language,
    generate_number_pairs,
    make_number_splits,
    number_text,
    split_numbers,
    supported_forms,
    supported_languages,
)


def number_pairs(*args: Any, return_numbers: bool = False, **kwargs: Any
                 ) -> tuple[list[str], list[str]] | tuple[list[str], list[str], list[int]]:
    """``generate_number_pairs(...)`` as lists: ``(sources, targets)``, or ``(sources, targets, numbers)`` with
    ``return_numbers``."""
    pairs = generate_number_pairs(*args, **kwargs)
    if return_numbers:
        return pairs.sources, pairs.targets, pairs.numbers
    return pairs.sources, pairs.targets


def test_supported_languages_sorted_and_include_the_usual():
    languages = supported_languages()
    assert languages == sorted(languages)
    assert {"en", "fr", "de", "es", "fr_CH"} <= set(languages)


def test_french_spelling_of_known_numbers():
    assert number_text(21, "fr") == "vingt et un"
    assert number_text(80, "fr") == "quatre-vingts"
    assert number_text(81, "fr") == "quatre-vingt-un"
    assert number_text(200, "fr") == "deux cents"
    assert number_text(1984, "fr") == "mille neuf cent quatre-vingt-quatre"
    assert number_text(0, "fr") == "zéro"


def test_german_and_english_spelling():
    assert number_text(21, "de") == "einundzwanzig"
    assert number_text(21, "en") == "twenty-one"
    assert number_text(1984, "en", "year") == "nineteen eighty-four"
    assert number_text(3, "en", "ordinal") == "third"


@pytest.mark.parametrize("lang", ["en", "fr", "de", "nl", "es", "ru", "fi"])
def test_fast_converter_writes_exactly_what_num2words_writes(lang):
    numbers = [
        0,
        1,
        21,
        80,
        81,
        100,
        101,
        999,
        1000,
        1001,
        1984,
        21_000,
        80_080,
        100_000,
        999_999,
        1_000_000,
        9_999_999,
    ]
    numbers += [int(n) for n in np.random.default_rng(0).integers(0, 10**7, 100)]
    numbers += [10**12 + 1]  # above the trimmed table: the full converter is used
    for form in supported_forms(lang):
        for n in numbers:
            expected = " ".join(unicodedata.normalize("NFC", num2words(n, lang=lang, to=form)).lower().split())
            assert number_text(n, lang, form) == expected, (lang, form, n)


def test_num2words_converters_are_left_untouched():
    before = len(CONVERTER_CLASSES["fr"].cards)
    number_text(123_456, "fr")
    assert len(CONVERTER_CLASSES["fr"].cards) == before
    assert num2words(10**12, lang="fr") == "un billion"  # long scale, needs the full table
    assert number_text(10**12, "fr") == "un billion"


def test_amharic_refuses_numbers_where_num2words_hangs():
    with pytest.raises(ValueError, match="loops forever.*'am'"):
        number_pairs("en", "am", size=5, max_number=1_000_000)
    assert len(number_pairs("en", "am", size=5, max_number=999)[0]) == 5


def test_pairs_are_the_same_number_in_both_languages():
    sources, targets, numbers = number_pairs("en", "fr", "train", size=200, seed=3, return_numbers=True)
    assert len(sources) == len(targets) == len(numbers) == 200
    for source, target, n in zip(sources, targets, numbers, strict=True):
        assert source == number_text(n, "en")
        assert target == number_text(n, "fr")
        assert source == source.lower() and "  " not in source and source == source.strip()


def test_deterministic_by_seed_and_split():
    first = number_pairs("en", "fr", "val", size=100, seed=7)
    assert number_pairs("en", "fr", "val", size=100, seed=7) == first
    assert number_pairs("en", "fr", "val", size=100, seed=8) != first
    assert number_pairs("en", "fr", "test", size=100, seed=7) != first


def test_split_pools_are_disjoint_and_cover_the_range():
    pools = {split: np.concatenate(split_numbers(split, max_number=99_999, seed=1)) for split in SPLITS}
    everything = np.concatenate(list(pools.values()))
    assert len(everything) == len(set(everything.tolist())) == 100_000
    assert everything.min() == 0 and everything.max() == 99_999
    # about 5 % each held out, and every digit band has at least one val and one test number
    assert 4_000 < len(pools["val"]) < 6_000 and 4_000 < len(pools["test"]) < 6_000
    for split in ("val", "test"):
        bands = split_numbers(split, max_number=99_999, seed=1)
        assert len(bands) == 5 and all(len(b) >= 1 for b in bands)


def test_drawn_numbers_are_disjoint_across_splits():
    drawn = {
        split: set(number_pairs("en", "fr", split, size=300, max_number=9_999, seed=2, return_numbers=True)[2])
        for split in SPLITS
    }
    assert not drawn["train"] & drawn["val"]
    assert not drawn["train"] & drawn["test"]
    assert not drawn["val"] & drawn["test"]


def test_membership_ignores_other_sizes_and_max_number():
    small = make_number_splits("en", "fr", sizes={"train": 10, "val": 40}, max_number=9_999)
    large = make_number_splits("en", "fr", sizes={"train": 500, "val": 40, "test": 30}, max_number=9_999)
    assert small["val"] == large["val"]
    # lowering max_number keeps every remaining number in its split
    wide = np.concatenate(split_numbers("test", max_number=99_999, seed=0))
    narrow = np.concatenate(split_numbers("test", max_number=999, seed=0))
    assert sorted(wide[wide <= 999].tolist()) == sorted(narrow.tolist())


def test_mixed_magnitudes_without_repeats():
    _, _, numbers = number_pairs("en", "fr", "train", size=600, return_numbers=True)
    digits = [len(str(n)) for n in numbers]
    counts = {d: digits.count(d) for d in range(1, 7)}
    assert all(counts[d] >= 1 for d in range(1, 7)), counts
    assert counts[1] == 8  # band 1 has 10 numbers: one in val, one in test, all 8 others drawn
    assert max(counts.values()) < 0.3 * len(numbers), counts  # not all six-digit numbers
    assert len(set(numbers)) == len(numbers)


def test_repeats_only_when_the_pool_is_exhausted():
    pool = set(np.concatenate(split_numbers("val", max_number=99, seed=0)).tolist())
    _, _, numbers = number_pairs("en", "fr", "val", size=50, max_number=99, return_numbers=True)
    assert len(numbers) == 50
    assert set(numbers) == pool  # every number of the small pool used, then reused


def test_german_to_english_pairs():
    sources, targets, numbers = number_pairs("de", "en", "test", size=50, return_numbers=True)
    assert sources == [number_text(n, "de") for n in numbers]
    assert targets == [number_text(n, "en") for n in numbers]
    assert any("und" in s for s in sources)


def test_unknown_language_error_names_code_role_and_choices():
    with pytest.raises(ValueError, match="source language 'xx'") as err:
        number_pairs("xx", "fr", size=5)
    assert "fr_CH" in str(err.value) and "de" in str(err.value)
    with pytest.raises(ValueError, match="target language 'fr_XX'"):
        number_pairs("en", "fr_XX", size=5)  # num2words alone would fall back to "fr"
    with pytest.raises(ValueError, match="target"):
        check_language("klingon", "target")


def test_forms_are_mixed_and_the_same_on_both_sides():
    pairs = generate_number_pairs("en", "fr", "train", size=300, forms=("cardinal", "ordinal", "year"), seed=4)
    assert set(pairs.forms_used) == {"cardinal", "ordinal", "year"}
    for source, target, n, form in zip(pairs.sources, pairs.targets, pairs.numbers, pairs.forms_used, strict=True):
        assert source == number_text(n, "en", form) and target == number_text(n, "fr", form)
        if form == "year" and 100 < n < 10_000 and n % 100 >= 10:  # read in two halves, not as a cardinal
            assert source == f"{number_text(n // 100, 'en')} {number_text(n % 100, 'en')}"
        if form == "ordinal":
            assert n >= 1
    assert number_text(21, "fr", "ordinal") == "vingt et unième"


def test_year_only_draws_years():
    pairs = generate_number_pairs("en", "de", "train", size=100, forms=("year",))
    assert pairs.numbers and all(1 <= n <= 9999 for n in pairs.numbers)


def test_missing_ordinal_is_refused():
    assert "ordinal" not in supported_forms("cs")
    assert supported_forms("en") == ["cardinal", "ordinal", "year"]
    with pytest.raises(ValueError, match="'cs' has no 'ordinal' form"):
        number_pairs("en", "cs", size=5, forms=("ordinal",))
    with pytest.raises(ValueError, match="unknown form 'roman'"):
        number_pairs("en", "fr", size=5, forms=("roman",))


def test_failing_numbers_are_skipped_and_counted(monkeypatch, caplog):
    real = number_pairs_module.number_text

    def fragile(number, lang, form="cardinal"):
        if lang == "fr" and number > 500:
            raise OverflowError("too big for this test")
        return real(number, lang, form)

    monkeypatch.setattr(number_pairs_module, "number_text", fragile)
    pairs = generate_number_pairs("en", "fr", "train", size=200, max_number=9_999)
    expected = generate_number_pairs("en", "fr", "train", size=200, max_number=9_999)
    assert pairs.skipped > 0 and len(pairs.sources) == 200 - pairs.skipped
    assert all(n <= 500 for n in pairs.numbers) and pairs == expected
    with caplog.at_level(logging.INFO, logger="datamodules.number_pairs"):
        splits = make_number_splits("en", "fr", sizes={"train": 200}, max_number=9_999)
    assert len(splits["train"][0]) == 200 - pairs.skipped
    assert f"'train': {pairs.skipped}" in caplog.text


def test_make_number_splits_default_sizes():
    splits = make_number_splits("en", "fr", sizes={"train": 30, "val": 10, "test": 20})
    assert {s: len(src) for s, (src, _) in splits.items()} == {"train": 30, "val": 10, "test": 20}
    with pytest.raises(ValueError, match="unknown split"):
        make_number_splits("en", "fr", sizes={"dev": 5})


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        number_pairs(split="dev", size=5)
    with pytest.raises(ValueError, match="max_number"):
        number_pairs(size=5, max_number=-1)
    with pytest.raises(ValueError, match="size"):
        number_pairs(size=-1)
    assert number_pairs(size=0) == ([], [])
