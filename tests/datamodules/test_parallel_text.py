"""datamodules.parallel_text: Multi30k-style line-aligned files and TSV, every drop counted, every error named."""

import re
import sys
import unicodedata
from pathlib import Path

import pytest

from datamodules.parallel_text import ParallelTextError, load_multi30k_from_hub, load_parallel_split
from suite.configs import task_datamodule

GERMAN = [
    "Zwei junge Männer stehen vor einem Gebäude.",
    "Ein Mädchen läuft über eine grüne Wiese.",
    "Der Hund spielt mit einem großen Ball.",
]
ENGLISH = [
    "Two young men are standing in front of a building.",
    "A girl runs across a green meadow.",
    "The dog plays with a big ball.",
]


def write_lines(path: Path, lines: list[str], newline: str = "\n") -> Path:
    """Write ``lines`` as UTF-8, each ended by ``newline``."""
    path.write_bytes("".join(line + newline for line in lines).encode("utf-8"))
    return path


@pytest.fixture
def multi30k(tmp_path) -> Path:
    """train/val/test .de + .en, as the Multi30k repository ships them."""
    for split in ("train", "val", "test"):
        write_lines(tmp_path / f"{split}.de", GERMAN)
        write_lines(tmp_path / f"{split}.en", ENGLISH)
    return tmp_path


def test_files_layout_reads_aligned_pairs(multi30k):
    sources, targets, stats = load_parallel_split(multi30k, "train", "de", "en")
    assert sources == GERMAN and targets == ENGLISH
    assert stats == {"empty_pairs": 0, "too_long": 0}
    sources, targets, _ = load_parallel_split(multi30k, "test", "en", "de")  # either direction
    assert sources == ENGLISH and targets == GERMAN


def test_crlf_whitespace_and_nfc(tmp_path):
    decomposed = unicodedata.normalize("NFD", "Männer")  # "a" + combining diaeresis
    write_lines(tmp_path / "train.de", [f"  {decomposed} laufen. \t", "Grüße"], newline="\r\n")
    write_lines(tmp_path / "train.en", ["Men run.", "Greetings  "], newline="\r\n")
    sources, targets, _ = load_parallel_split(tmp_path, "train", "de", "en")
    assert sources == ["Männer laufen.", "Grüße"]
    assert unicodedata.is_normalized("NFC", sources[0]) and len(sources[0]) == len("Männer laufen.")
    assert targets == ["Men run.", "Greetings"]


def test_byte_order_mark_is_dropped(tmp_path):
    (tmp_path / "train.de").write_bytes(b"\xef\xbb\xbf" + "Grüße\n".encode())
    write_lines(tmp_path / "train.en", ["Greetings"])
    sources, _, _ = load_parallel_split(tmp_path, "train", "de", "en")
    assert sources == ["Grüße"]


def test_unicode_line_separator_does_not_split_a_line(tmp_path):
    write_lines(tmp_path / "train.de", ["ein\u2028Satz", "zwei"])
    write_lines(tmp_path / "train.en", ["one sentence", "two"])
    sources, _, _ = load_parallel_split(tmp_path, "train", "de", "en")
    assert len(sources) == 2


def test_mismatched_line_counts_name_both_files_and_counts(tmp_path):
    write_lines(tmp_path / "train.de", GERMAN)
    write_lines(tmp_path / "train.en", ENGLISH[:2])
    with pytest.raises(ParallelTextError) as err:
        load_parallel_split(tmp_path, "train", "de", "en")
    message = str(err.value)
    assert str(tmp_path / "train.de") in message and "has 3 lines" in message
    assert str(tmp_path / "train.en") in message and "has 2 lines" in message


@pytest.mark.parametrize("layout", ["files", "tsv"])
def test_empty_file_is_named(tmp_path, layout):
    empty = tmp_path / ("train.tsv" if layout == "tsv" else "train.en")
    write_lines(tmp_path / "train.de", GERMAN)
    empty.write_bytes(b"")
    with pytest.raises(ParallelTextError, match=rf"{re.escape(str(empty))} is empty \(0 lines\); expected one "
                       "sentence a line"):
        load_parallel_split(tmp_path, "train", "de", "en", layout=layout)
    empty.write_bytes(b"\xef\xbb\xbf")  # a byte order mark and nothing else
    with pytest.raises(ParallelTextError, match=rf"{re.escape(str(empty))} is empty"):
        load_parallel_split(tmp_path, "train", "de", "en", layout=layout)


def test_blank_files_are_an_empty_split_with_counts(tmp_path):
    write_lines(tmp_path / "val.de", ["", "  "])
    write_lines(tmp_path / "val.en", ["A girl.", ""])
    with pytest.raises(ParallelTextError, match=r"val.de \+ .*val.en: split 'val' is empty after filtering: 2 "
                       r"pair\(s\) read, dropped empty_pairs 2 \(a side blank\), too_long 0$"):
        load_parallel_split(tmp_path, "val", "de", "en")


def test_empty_pairs_dropped_and_counted(tmp_path):
    write_lines(tmp_path / "train.de", [GERMAN[0], "", GERMAN[1], "   ", GERMAN[2]])
    write_lines(tmp_path / "train.en", [ENGLISH[0], ENGLISH[1], "", "", ENGLISH[2]])
    sources, targets, stats = load_parallel_split(tmp_path, "train", "de", "en")
    assert sources == [GERMAN[0], GERMAN[2]] and targets == [ENGLISH[0], ENGLISH[2]]
    assert stats["empty_pairs"] == 3


def test_too_long_filtered_and_counted(multi30k):
    # German: 7, 7, 7 whitespace tokens; English: 10, 7, 7 (only the target side of pair 0 is too long)
    sources, targets, stats = load_parallel_split(multi30k, "train", "de", "en", max_tokens=7)
    assert sources == GERMAN[1:] and targets == ENGLISH[1:]
    assert stats == {"empty_pairs": 0, "too_long": 1}
    sources, _, stats = load_parallel_split(multi30k, "train", "en", "de", max_tokens=7)
    assert sources == ENGLISH[1:] and stats["too_long"] == 1  # the source side too long
    with pytest.raises(ParallelTextError, match=r"train.de \+ .*train.en: split 'train' is empty after filtering: 3 "
                       r"pair\(s\) read, dropped empty_pairs 0 \(a side blank\), too_long 3 \(max_tokens=6"):
        load_parallel_split(multi30k, "train", "de", "en", max_tokens=6)
    _, _, stats = load_parallel_split(multi30k, "train", "de", "en")
    assert stats["too_long"] == 0


def test_lowercase(multi30k):
    sources, targets, _ = load_parallel_split(multi30k, "val", "de", "en", lowercase=True)
    assert sources[0] == "zwei junge männer stehen vor einem gebäude."
    assert targets[2] == "the dog plays with a big ball."


def test_missing_file_lists_present_files(tmp_path):
    write_lines(tmp_path / "train.de", GERMAN)
    write_lines(tmp_path / "train.fr", ENGLISH)
    with pytest.raises(ParallelTextError) as err:
        load_parallel_split(tmp_path, "train", "de", "en")
    message = str(err.value)
    assert str(tmp_path / "train.en") in message
    assert "train.de, train.fr" in message


def test_valid_and_dev_are_found_for_val(tmp_path):
    write_lines(tmp_path / "valid.de", GERMAN[:1])
    write_lines(tmp_path / "valid.en", ENGLISH[:1])
    sources, targets, _ = load_parallel_split(tmp_path, "val", "de", "en")
    assert sources == GERMAN[:1] and targets == ENGLISH[:1]
    write_lines(tmp_path / "dev.tsv", [f"{GERMAN[2]}\t{ENGLISH[2]}"])
    sources, _, _ = load_parallel_split(tmp_path, "val", "de", "en", layout="tsv")
    assert sources == GERMAN[2:]


def test_split_files_mapping(tmp_path):
    write_lines(tmp_path / "test2016.de", GERMAN)
    write_lines(tmp_path / "test2016.en", ENGLISH)
    sources, _, _ = load_parallel_split(tmp_path, "test", "de", "en", split_files={"test": "test2016"})
    assert sources == GERMAN
    with pytest.raises(ParallelTextError, match="test.de"):
        load_parallel_split(tmp_path, "test", "de", "en")


def test_tsv_layout_and_columns(tmp_path):
    write_lines(tmp_path / "train.tsv", [f"{d}\t{e}" for d, e in zip(GERMAN, ENGLISH, strict=True)] + [""])
    sources, targets, stats = load_parallel_split(tmp_path, "train", "de", "en", layout="tsv")
    assert sources == GERMAN and targets == ENGLISH
    assert stats["empty_pairs"] == 1  # the blank line
    write_lines(tmp_path / "test.tsv", [f"{i}\t{d}\t{e}" for i, (d, e) in enumerate(zip(GERMAN, ENGLISH, strict=True))])
    sources, targets, _ = load_parallel_split(tmp_path, "test", "en", "de", layout="tsv", tsv_columns=(2, 1))
    assert sources == ENGLISH and targets == GERMAN


def test_tsv_too_few_columns_names_file_line_and_count(tmp_path):
    write_lines(tmp_path / "train.tsv", [f"{GERMAN[0]}\t{ENGLISH[0]}", GERMAN[1], f"{GERMAN[2]}\t{ENGLISH[2]}"])
    with pytest.raises(ParallelTextError) as err:
        load_parallel_split(tmp_path, "train", "de", "en", layout="tsv")
    message = str(err.value)
    assert str(tmp_path / "train.tsv") in message and "line 2" in message and "has 1 tab-separated" in message


def test_unknown_layout_lists_choices(multi30k):
    with pytest.raises(ParallelTextError, match=r"unknown layout 'json'.*'files', 'tsv'"):
        load_parallel_split(multi30k, "train", "de", "en", layout="json")


def test_bad_utf8_names_file_and_line(tmp_path):
    write_lines(tmp_path / "train.en", ENGLISH)
    (tmp_path / "train.de").write_bytes(GERMAN[0].encode() + b"\n" + "Mädchen".encode("latin-1") + b"\n")
    with pytest.raises(ParallelTextError) as err:
        load_parallel_split(tmp_path, "train", "de", "en")
    assert str(tmp_path / "train.de") in str(err.value) and "line 2" in str(err.value)


def test_hub_without_datasets_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    with pytest.raises(RuntimeError, match="not installed") as err:
        load_multi30k_from_hub("train")
    assert "layout='files'" in str(err.value)


def test_hub_split_emptied_by_filtering_is_named(monkeypatch):
    class Datasets:
        @staticmethod
        def load_dataset(*args, **kwargs):
            return {"de": ["ein sehr langer satz hier", " "], "en": ["a very long sentence here", "a dog"]}

    monkeypatch.setitem(sys.modules, "datasets", Datasets)
    with pytest.raises(ParallelTextError, match=r"bentrevett/multi30k train: split 'train' is empty after filtering: 2 "
                       r"pair\(s\) read, dropped empty_pairs 1 \(a side blank\), too_long 1 \(max_tokens=3"):
        load_multi30k_from_hub("train", max_tokens=3)


def test_datamodule_names_empty_files_and_filtered_splits(tmp_path):
    for split in ("train", "val", "test"):
        write_lines(tmp_path / f"{split}.de", GERMAN)
        write_lines(tmp_path / f"{split}.en", ENGLISH)
    (tmp_path / "test.en").write_bytes(b"")
    data = task_datamodule("nmt", source="files", root=str(tmp_path), source_lang="de", target_lang="en",
                           num_workers=0)
    with pytest.raises(ParallelTextError, match=rf"{re.escape(str(tmp_path / 'test.en'))} is empty \(0 lines\)"):
        data.setup("fit")
    write_lines(tmp_path / "test.en", ENGLISH)
    data = task_datamodule("nmt", source="files", root=str(tmp_path), source_lang="de", target_lang="en",
                           max_tokens=3, num_workers=0)
    with pytest.raises(ParallelTextError, match=r"split 'train' is empty after filtering: 3 pair\(s\) read, .*"
                       r"too_long 3 \(max_tokens=3: data.max_tokens\)"):
        data.setup("fit")


def test_hub_offline_says_what_to_do(monkeypatch):
    class OfflineDatasets:
        @staticmethod
        def load_dataset(*args, **kwargs):
            raise ConnectionError("no network")

    monkeypatch.setitem(sys.modules, "datasets", OfflineDatasets)
    with pytest.raises(RuntimeError, match="ConnectionError: no network") as err:
        load_multi30k_from_hub("val")
    assert "load_parallel_split" in str(err.value)
