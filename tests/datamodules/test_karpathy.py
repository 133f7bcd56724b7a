"""datamodules.karpathy: Karpathy split JSON (COCO and Flickr layouts) with real JPEGs, every error named."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.caption_corpora import ImageFileCaptionCorpus
from datamodules.karpathy import CaptionedImage, KarpathyFormatError, load_karpathy_split
from tests.karpathy_fixtures import RNG, coco_entries, sentence, write_dataset, write_jpeg


@pytest.fixture
def coco(tmp_path) -> Path:
    return write_dataset(tmp_path, coco_entries())


def test_train_has_restval_and_parsed_captions(coco, tmp_path):
    images, stats = load_karpathy_split(coco, tmp_path, "train")
    assert [im.image_id for im in images] == ["9", "42", "25"]
    assert images[0].image_path == tmp_path / "train2014" / "COCO_train2014_000000000009.jpg"
    assert images[1].image_path == tmp_path / "val2014" / "COCO_val2014_000000000042.jpg"
    # tokens lowercased and joined; raw (no tokens) lowercased without punctuation
    assert images[0].captions == ["a man riding a horse", "two dogs playing in the park"]
    assert images[1].captions == ["a cat on a very long red sofa"]
    assert all(v == 0 for v in stats.values())


def test_restval_excluded_when_asked(coco, tmp_path):
    images, _ = load_karpathy_split(coco, tmp_path, "train", restval_in_train=False)
    assert [im.image_id for im in images] == ["9", "25"]
    restval, _ = load_karpathy_split(coco, tmp_path, "restval")
    assert [im.image_id for im in restval] == ["42"]


def test_empty_captions_dropped_and_counted(coco, tmp_path):
    val, stats = load_karpathy_split(coco, tmp_path, "val")
    assert [(im.image_id, im.captions) for im in val] == [("391895", ["a bus"])]
    assert stats["empty_captions"] == 1 and stats["images_without_captions"] == 0
    test, stats = load_karpathy_split(coco, tmp_path, "test")
    assert [im.image_id for im in test] == ["73"]  # image 74 had only empty captions ([] and "...")
    assert stats["empty_captions"] == 2 and stats["images_without_captions"] == 1


def test_long_captions_truncated_and_counted(coco, tmp_path):
    images, stats = load_karpathy_split(coco, tmp_path, "train", max_caption_words=5)
    assert images[0].captions == ["a man riding a horse", "two dogs playing in the"]
    assert images[1].captions == ["a cat on a very"]
    assert stats["truncated_captions"] == 2
    with pytest.raises(ValueError, match="max_caption_words"):
        load_karpathy_split(coco, tmp_path, "train", max_caption_words=0)


def flickr_entries() -> list[dict]:
    return [
        {"filename": "1000268201_693b08cb0e.jpg", "split": "train", "imgid": 0,
         "sentences": [sentence(["a", "child", "in", "a", "pink", "dress"])]},
        {"filename": "1001773457_577c3a7d70.jpg", "split": "test", "imgid": 1,
         "sentences": [sentence(["a", "black", "dog"]), sentence(["two", "dogs"])]},
    ]  # fmt: skip


def test_flickr_image_folder_found_among_common_names(tmp_path):
    path = write_dataset(tmp_path, flickr_entries(), "dataset_flickr8k.json")
    images, _ = load_karpathy_split(path, tmp_path, "test")
    assert images[0].image_path == tmp_path / "Flicker8k_Dataset" / "1001773457_577c3a7d70.jpg"
    assert images[0].image_id == "1001773457_577c3a7d70"
    assert images[0].captions == ["a black dog", "two dogs"]
    explicit, _ = load_karpathy_split(path, tmp_path, "train", images_dir="Flicker8k_Dataset")
    assert explicit[0].image_path == tmp_path / "Flicker8k_Dataset" / "1000268201_693b08cb0e.jpg"


def test_flickr_images_directly_under_root(tmp_path):
    path = write_dataset(tmp_path, flickr_entries(), "dataset_flickr30k.json", images=False)
    write_jpeg(tmp_path / "1000268201_693b08cb0e.jpg")
    images, _ = load_karpathy_split(path, tmp_path, "train")
    assert images[0].image_path == tmp_path / "1000268201_693b08cb0e.jpg"


def test_flickr_folder_not_found_lists_what_was_tried(tmp_path):
    path = write_dataset(tmp_path, flickr_entries(), "dataset_flickr8k.json", images=False)
    with pytest.raises(KarpathyFormatError, match="image folder") as err:
        load_karpathy_split(path, tmp_path, "train")
    msg = str(err.value)
    assert "1000268201_693b08cb0e.jpg" in msg and "images_dir" in msg
    for folder in ["Flicker8k_Dataset", "Images", "flickr30k-images"]:
        assert str(tmp_path / folder) in msg


def test_missing_file_names_the_path(tmp_path):
    (tmp_path / "dataset_flickr8k.json").write_text("{}")
    with pytest.raises(KarpathyFormatError, match=r"not found: .*dataset_coco.json; JSON files in .*: "
                       r"\['dataset_flickr8k.json'\]\. data.annotations=<file> names the split JSON") as err:
        load_karpathy_split(tmp_path / "dataset_coco.json", tmp_path, "train")
    assert str(tmp_path / "dataset_coco.json") in str(err.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [("{not json", "not a JSON file"), ('{"annotations": []}', "'images' list.*got dict with keys \\['annotations'\\]"),
     ("[1, 2]", "expected a JSON object with an 'images' list .*got list")],
)
def test_not_a_karpathy_file(tmp_path, content, expected):
    path = tmp_path / "dataset_coco.json"
    path.write_text(content)
    with pytest.raises(KarpathyFormatError, match=expected) as err:
        load_karpathy_split(path, tmp_path, "train")
    assert str(path) in str(err.value)


@pytest.mark.parametrize("field", ["filename", "split", "sentences"])
def test_missing_field_names_field_and_entry(tmp_path, field):
    entries = coco_entries()
    del entries[3][field]
    path = write_dataset(tmp_path, entries, images=False)
    with pytest.raises(KarpathyFormatError, match=f"missing required field '{field}'") as err:
        load_karpathy_split(path, tmp_path, "train", check_images=False)
    msg = str(err.value)
    assert "images[3]" in msg and str(path) in msg
    assert ("COCO_val2014_000000000073.jpg" in msg) == (field != "filename")


def test_unknown_split_value_named(tmp_path):
    entries = coco_entries()
    entries[2]["split"] = "validation"
    path = write_dataset(tmp_path, entries, images=False)
    with pytest.raises(KarpathyFormatError, match=r"images\[2\] \(COCO_val2014_000000391895.jpg\).*'validation'"):
        load_karpathy_split(path, tmp_path, "val", check_images=False)
    with pytest.raises(KarpathyFormatError, match="'dev'"):
        load_karpathy_split(write_dataset(tmp_path, coco_entries(), images=False), tmp_path, "dev")


def test_sentence_without_tokens_or_raw(tmp_path):
    entries = coco_entries()
    entries[0]["sentences"][1] = {"sentid": 1}
    path = write_dataset(tmp_path, entries, images=False)
    with pytest.raises(KarpathyFormatError, match=r"images\[0\].*sentences\[1\].*'tokens'"):
        load_karpathy_split(path, tmp_path, "train", check_images=False)


def test_missing_image_raises_naming_path_and_option(coco, tmp_path):
    gone = tmp_path / "val2014" / "COCO_val2014_000000000042.jpg"
    gone.unlink()
    with pytest.raises(KarpathyFormatError, match="data.skip_bad_images=true") as err:
        load_karpathy_split(coco, tmp_path, "train")
    assert str(gone) in str(err.value) and "missing" in str(err.value)
    # other splits do not look at it; check_images=False does not look at all
    assert len(load_karpathy_split(coco, tmp_path, "train", restval_in_train=False)[0]) == 2
    images, stats = load_karpathy_split(coco, tmp_path, "train", check_images=False)
    assert len(images) == 3 and stats["missing_images"] == 0


def test_corrupt_image_raises_naming_path(coco, tmp_path):
    bad = tmp_path / "train2014" / "COCO_train2014_000000000025.jpg"
    bad.write_bytes(b"this is not a jpeg at all" * 10)
    with pytest.raises(KarpathyFormatError, match="unreadable") as err:
        load_karpathy_split(coco, tmp_path, "train")
    assert str(bad) in str(err.value) and "skip_bad_images" in str(err.value)


def test_zero_byte_image_is_named_or_skipped_and_counted(coco, tmp_path):
    empty = tmp_path / "train2014" / "COCO_train2014_000000000025.jpg"
    empty.write_bytes(b"")
    with pytest.raises(KarpathyFormatError, match=rf"{re.escape(str(empty))} is empty \(0 bytes\); .*skip_bad_images"):
        load_karpathy_split(coco, tmp_path, "train")
    images, stats = load_karpathy_split(coco, tmp_path, "train", skip_bad_images=True)
    assert [im.image_id for im in images] == ["9", "42"] and stats["unreadable_images"] == 1


def test_split_with_every_image_skipped_is_named_with_counts(coco, tmp_path):
    for image in (tmp_path / "train2014").iterdir():
        image.unlink()
    (tmp_path / "val2014" / "COCO_val2014_000000000042.jpg").write_bytes(b"")
    with pytest.raises(KarpathyFormatError, match=r"dataset_coco.json: the 'train' split is empty: the file lists 3 "
                       r"image\(s\) with split train \+ restval .*dropped: missing_images 2, unreadable_images 1 "
                       r"\(data.skip_bad_images=true skipped the bad images\)"):
        load_karpathy_split(coco, tmp_path, "train", skip_bad_images=True)


def test_split_without_images_or_captions_is_named(tmp_path):
    entries = [e for e in coco_entries() if e["split"] != "val"]
    path = write_dataset(tmp_path, entries)
    with pytest.raises(KarpathyFormatError, match=r"the 'val' split is empty: the file lists 0 image\(s\) with split "
                       r"val \(all images by split: restval 1, test 2, train 2\).*nothing dropped"):
        load_karpathy_split(path, tmp_path, "val")
    entries = coco_entries()
    entries[3]["sentences"] = [sentence([]), sentence(None, "?!")]  # test: both images without a caption
    path = write_dataset(tmp_path, entries)
    with pytest.raises(KarpathyFormatError, match=r"the 'test' split is empty: the file lists 2 image\(s\) with split "
                       r"test .*dropped: empty_captions \d+, images_without_captions 2"):
        load_karpathy_split(path, tmp_path, "test")


def test_skip_bad_images_counts_them(coco, tmp_path):
    (tmp_path / "val2014" / "COCO_val2014_000000000042.jpg").unlink()
    (tmp_path / "train2014" / "COCO_train2014_000000000025.jpg").write_bytes(b"\xff\xd8garbage")
    images, stats = load_karpathy_split(coco, tmp_path, "train", skip_bad_images=True)
    assert [im.image_id for im in images] == ["9"]
    assert stats["missing_images"] == 1 and stats["unreadable_images"] == 1


def test_corpus_gives_images_in_unit_range_without_normalising(coco, tmp_path):
    images, _ = load_karpathy_split(coco, tmp_path, "train")
    write_jpeg(images[1].image_path, colour=(255, 255, 255))
    corpus = ImageFileCaptionCorpus(images, image_size=24)
    assert len(corpus) == 3 and corpus.captions(0) == images[0].captions
    batch = corpus.images([0, 1])                                        # [2, 3, 24, 24]
    assert batch.dtype == torch.float32 and batch.shape == (2, 3, 24, 24)
    # the ResNet encoder normalises its own input: a white image stays 1, not (1 - mean) / std
    torch.testing.assert_close(batch[1].mean(dim=(1, 2)), torch.ones(3), atol=0.02, rtol=0)
    assert 0.0 <= batch.min() and batch.max() <= 1.0


def test_corpus_converts_grey_images_to_rgb(tmp_path):
    path = tmp_path / "grey.jpg"
    Image.fromarray(RNG.integers(0, 256, (30, 50), dtype=np.uint8)).save(path)  # 2-D uint8 -> mode "L"
    corpus = ImageFileCaptionCorpus([CaptionedImage(path, ["a grey image"], "grey")], image_size=16)
    assert corpus.images([0]).shape == (1, 3, 16, 16)


def test_corpus_names_a_corrupt_file(coco, tmp_path):
    images, _ = load_karpathy_split(coco, tmp_path, "train")
    data = images[2].image_path.read_bytes()
    images[2].image_path.write_bytes(data[: len(data) // 3])  # truncated JPEG: header fine, pixels missing
    corpus = ImageFileCaptionCorpus(images, image_size=16)
    with pytest.raises(OSError, match="COCO_train2014_000000000025.jpg.*skip_bad_images"):
        corpus.images([2])
    images[2].image_path.write_bytes(b"garbage")
    with pytest.raises(OSError, match="COCO_train2014_000000000025.jpg"):
        corpus.images([2])
