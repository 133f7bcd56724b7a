"""CaptionDataModule: generated scenes and a Karpathy split on disk, as batches the captioner consumes."""

from __future__ import annotations

import pytest
import torch

from datamodules.captions import CaptionDataModule
from datamodules.karpathy import KarpathyFormatError
from suite.configs import task_datamodule
from tests.karpathy_fixtures import coco_entries, write_dataset

SMALL = {"train": 12, "val": 5, "test": 5}


def scenes(**kwargs) -> CaptionDataModule:
    return task_datamodule("captioning", num_images=SMALL, batch_size=4, eval_batch_size=4, num_workers=0, seed=1,
                           **kwargs)


def test_training_batches_pair_each_image_with_one_caption():
    data = scenes()
    data.setup("fit")
    loader = data.train_dataloader()
    assert len(loader.dataset) == 12 * 5                      # every (image, caption) pair once per epoch
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    tokens, lengths = batch["tokens"], batch["lengths"]
    assert (tokens[:, 0] == data.vocabulary.bos_id).all()
    assert (tokens[torch.arange(4), lengths - 1] == data.vocabulary.eos_id).all()
    assert data.vocabulary.unk_id not in tokens.tolist()  # every word of the training captions is in the vocabulary
    assert "references" not in batch


def test_evaluation_batches_carry_all_references_boxes_and_object_words():
    data = scenes()
    data.setup("validate")
    batch = next(iter(data.val_dataloader()))
    assert len(batch["references"]) == 4 and all(len(refs) == 5 for refs in batch["references"])
    assert data.vocabulary.decode_batch(batch["tokens"]) == [refs[0] for refs in batch["references"]]
    boxes, words = batch["boxes"], batch["object_words"]                 # [B, K, 4], [B, K, 2]
    assert boxes.shape[:2] == words.shape[:2] and words.shape[-1] == 2
    real = words[..., 0] >= 0
    assert ((boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1]))[real].all()
    corpus = data.corpora["val"]
    colour, shape = corpus.objects(0)[1][0]
    assert data.vocabulary.words(words[0, 0].tolist()) == [colour, shape]
    torch.testing.assert_close(boxes[0, : real[0].sum()], torch.as_tensor(corpus.objects(0)[0]))


def test_same_seed_same_data_and_splits_differ():
    a, b = scenes(), scenes()
    a.setup("fit")
    b.setup("fit")
    first = next(iter(a.val_dataloader()))
    torch.testing.assert_close(first["image"], next(iter(b.val_dataloader()))["image"])
    assert first["references"] == next(iter(b.val_dataloader()))["references"]
    assert a.corpora["train"].captions(0) != a.corpora["val"].captions(0)


def test_unknown_source_lists_the_choices():
    with pytest.raises(ValueError, match=r"data.source='flickr'.*\['scenes', 'karpathy'\]"):
        task_datamodule("captioning", source="flickr")


def test_karpathy_needs_a_root():
    with pytest.raises(ValueError, match="data.root"):
        task_datamodule("captioning", source="karpathy")


def test_karpathy_split_on_disk_gives_image_batches_and_a_vocabulary_of_frequent_words(tmp_path):
    write_dataset(tmp_path, coco_entries())
    data = task_datamodule("captioning", source="karpathy", root=str(tmp_path), image_size=32, batch_size=2,
                           num_workers=0, min_word_count=2)
    data.setup("fit")
    assert len(data.corpora["train"]) == 3                   # train + restval
    # words seen twice in the training captions: "a" (3x); everything else is <unk>
    assert len(data.vocabulary) == 4 + 1
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32)
    val = next(iter(data.val_dataloader()))
    assert val["references"] == [["a bus"]]                  # the empty caption was dropped
    assert "boxes" not in val


def test_karpathy_missing_image_is_named_or_skipped_and_counted(tmp_path, caplog):
    write_dataset(tmp_path, coco_entries())
    (tmp_path / "train2014" / "COCO_train2014_000000000025.jpg").unlink()
    strict = task_datamodule("captioning", source="karpathy", root=str(tmp_path), num_workers=0)
    with pytest.raises(KarpathyFormatError, match="COCO_train2014_000000000025.jpg.*skip_bad_images"):
        strict.setup("fit")
    lenient = task_datamodule("captioning", source="karpathy", root=str(tmp_path), num_workers=0, skip_bad_images=True)
    with caplog.at_level("WARNING"):
        lenient.setup("fit")
    assert len(lenient.corpora["train"]) == 2 and "missing_images 1" in caplog.text


def test_karpathy_missing_json_and_an_emptied_split_are_named(tmp_path):
    write_dataset(tmp_path, coco_entries())
    missing = task_datamodule("captioning", source="karpathy", root=str(tmp_path), annotations="dataset_flickr8k.json",
                              num_workers=0)
    with pytest.raises(KarpathyFormatError, match=r"not found: .*dataset_flickr8k.json; JSON files in .*"
                       r"\['dataset_coco.json'\]\. data.annotations=<file>"):
        missing.setup("fit")
    (tmp_path / "val2014" / "COCO_val2014_000000391895.jpg").write_bytes(b"")  # the one val image: 0 bytes
    lenient = task_datamodule("captioning", source="karpathy", root=str(tmp_path), num_workers=0, skip_bad_images=True)
    with pytest.raises(KarpathyFormatError, match=r"dataset_coco.json: the 'val' split is empty: the file lists 1 "
                       r"image\(s\) with split val .*unreadable_images 1 \(data.skip_bad_images=true skipped"):
        lenient.setup("fit")
