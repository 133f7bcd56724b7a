"""datamodules.digits: mnist5k split, item determinism, torchvision idx layout, clear errors."""

import logging
import re

import numpy as np
import pytest
import torch

from datamodules.digits import FASHION_MNIST_CLASSES, IDX_FILES, DigitsDataModule
from datamodules.idx import IdxFormatError
from datamodules.sampling import EpochSeededSampler
from suite.configs import task_datamodule
from tests.idx_fixtures import idx_bytes, write_raw


@pytest.fixture(scope="module")
def dm5k() -> DigitsDataModule:
    dm = task_datamodule("stn", distortion="rts", num_workers=0, batch_size=16)
    dm.setup("fit")
    return dm


def test_mnist5k_stratified_disjoint_split(dm5k):
    sizes = {name: len(ds) for name, ds in dm5k.datasets.items()}
    assert sizes == {"train": 3600, "val": 400, "test": 1000}
    for name, per_class in (("train", 360), ("val", 40), ("test", 100)):
        assert np.bincount(dm5k.datasets[name].labels, minlength=10).tolist() == [per_class] * 10
    idx = dm5k.split_indices
    assert set(idx["train"]).isdisjoint(idx["val"]) and set(idx["train"]).isdisjoint(idx["test"])
    assert set(idx["val"]).isdisjoint(idx["test"])
    assert len(set(idx["train"]) | set(idx["val"]) | set(idx["test"])) == 5000


def test_split_fixed_by_seed(dm5k):
    same = task_datamodule("stn", num_workers=0)
    same.setup()
    other = task_datamodule("stn", num_workers=0, seed=1, val_per_class=50, test_per_class=50)
    other.setup()
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(same.split_indices[name], dm5k.split_indices[name])
    assert not np.array_equal(other.split_indices["val"][:400], dm5k.split_indices["val"])
    assert [len(other.datasets[n]) for n in ("train", "val", "test")] == [4000, 500, 500]
    with pytest.raises(ValueError, match="too few"):
        task_datamodule("stn", val_per_class=300, test_per_class=200).setup()


def test_item_format_and_properties(dm5k):
    item = dm5k.datasets["train"][0]
    assert set(item) == {"image", "label", "box"}
    assert item["image"].shape == (1, 42, 42) and item["image"].dtype == torch.float32
    assert item["label"].shape == () and item["label"].dtype == torch.int64
    assert item["box"].shape == (4,) and item["box"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert dm5k.num_classes == 10 and dm5k.class_names == [str(d) for d in range(10)]
    sizes = {
        d: task_datamodule("stn", distortion=d).image_size for d in ("none", "r", "rts", "p", "e", "cluttered")
    }
    assert sizes == {"none": 28, "r": 28, "rts": 42, "p": 28, "e": 28, "cluttered": 60}
    assert dm5k.hparams.distortion == "rts" and dm5k.hparams.batch_size == 16


def test_item_determinism_and_per_epoch_resampling(dm5k):
    train, val = dm5k.datasets["train"], dm5k.datasets["val"]
    n = len(train)
    a, b = train[5], train[5]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(train[5]["image"], train[n + 5]["image"])  # epoch 1 redraws the distortion
    assert torch.equal(train[5]["label"], train[n + 5]["label"])
    assert torch.equal(val[5]["image"], val[len(val) + 5]["image"])  # val never resamples
    assert not torch.equal(train[5]["image"], train[6]["image"])
    fixed = task_datamodule("stn", distortion="rts", resample_train=False, num_workers=0)
    fixed.setup()
    ft = fixed.datasets["train"]
    assert torch.equal(ft[5]["image"], ft[n + 5]["image"])
    assert torch.equal(ft[5]["image"], train[5]["image"])  # epoch 0 is the same draw either way


def test_dataloaders(dm5k):
    train_dl, val_dl = dm5k.train_dataloader(), dm5k.val_dataloader()
    assert isinstance(train_dl.sampler, EpochSeededSampler) and train_dl.sampler.shuffle
    assert not val_dl.sampler.shuffle and not dm5k.test_dataloader().sampler.shuffle
    assert len(dm5k.predict_dataloader().dataset) == 1000
    batch = next(iter(train_dl))
    assert (
        batch["image"].shape == (16, 1, 42, 42)
        and batch["label"].shape == (16,)
        and batch["box"].shape == (16, 4)
    )


def test_cluttered_items(caplog):
    dm = task_datamodule("stn", distortion="cluttered", num_workers=0, clutter_pieces=6)
    with caplog.at_level(logging.INFO, logger="datamodules.digits"):
        dm.setup("fit")
        dm.setup("test")
    assert [r.getMessage() for r in caplog.records].count(
        "digits mnist5k (cluttered, 60x60): train 3600, val 400, test 1000"
    ) == 1
    item = dm.datasets["test"][3]
    assert item["image"].shape == (1, 60, 60)
    x0, y0, x1, y1 = item["box"].tolist()
    outside = item["image"][0].clone()
    outside[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = 0
    assert outside.sum() > 1  # clutter outside the digit's box


@pytest.mark.parametrize("source,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_layout_loads(tmp_path, source, folder):
    data = write_raw(tmp_path / folder / "raw")
    dm = task_datamodule("stn", source=source, root=str(tmp_path), distortion="r", val_per_class=1, num_workers=0)
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 20, "val": 10, "test": 20}
    np.testing.assert_array_equal(dm.datasets["test"].digits, data["test"][0])
    np.testing.assert_array_equal(dm.datasets["test"].labels, data["test"][1])
    train_ids = np.concatenate([dm.split_indices["train"], dm.split_indices["val"]])
    assert sorted(train_ids.tolist()) == list(range(30))
    np.testing.assert_array_equal(dm.datasets["val"].digits, data["train"][0][dm.split_indices["val"]])
    assert np.bincount(dm.datasets["val"].labels).tolist() == [1] * 10
    assert dm.datasets["train"][0]["image"].shape == (1, 28, 28)
    expected_names = list(FASHION_MNIST_CLASSES) if source == "fashion_mnist" else [str(d) for d in range(10)]
    assert dm.class_names == expected_names


def test_missing_files_message(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"")  # present (content irrelevant here)
    dm = task_datamodule("stn", source="mnist", root=str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        dm.setup()
    msg = str(e.value)
    assert str(raw) in msg and "data.download=true" in msg
    for name in (n for pair in IDX_FILES.values() for n in pair):
        assert name in msg
    assert "missing: train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte" in msg


def test_corrupt_idx_file_is_named(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    write_raw(raw)
    bad = raw / "train-labels-idx1-ubyte"
    bad.write_bytes(bad.read_bytes()[:20])  # truncated payload
    with pytest.raises(IdxFormatError, match="train-labels-idx1-ubyte.*truncated"):
        task_datamodule("stn", source="fashion_mnist", root=str(tmp_path), val_per_class=1).setup()
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    bad.write_bytes(idx_bytes(np.arange(30) % 10))
    with pytest.raises(IdxFormatError, match="t10k-labels-idx1-ubyte.gz.*corrupt gzip"):
        task_datamodule("stn", source="fashion_mnist", root=str(tmp_path), val_per_class=1).setup()
    bad.write_bytes(idx_bytes(np.arange(29) % 10))
    with pytest.raises(IdxFormatError, match="30 images but .*train-labels-idx1-ubyte has 29 labels"):
        task_datamodule("stn", source="fashion_mnist", root=str(tmp_path), val_per_class=1).setup()


def test_empty_and_zero_byte_idx_files_are_named(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_raw(raw, gz=())
    test_images = raw / "t10k-images-idx3-ubyte"
    test_images.write_bytes(idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(0, np.uint8)))
    with pytest.raises(IdxFormatError, match=rf"{re.escape(str(test_images))}: 0 images \(header dims \(0, 28, 28\)\); "
                       "expected at least one test image"):
        task_datamodule("stn", source="mnist", root=str(tmp_path), val_per_class=1).setup()
    test_images.write_bytes(b"")
    with pytest.raises(IdxFormatError, match=rf"{re.escape(str(test_images))}: file truncated: 0 bytes"):
        task_datamodule("stn", source="mnist", root=str(tmp_path), val_per_class=1).setup()


def test_split_emptied_by_the_options_is_named(tmp_path):
    write_raw(tmp_path / "FashionMNIST" / "raw")
    with pytest.raises(ValueError, match=r"digits fashion_mnist: the val split is empty: data.val_per_class=0 holds "
                       "out no digits"):
        task_datamodule("stn", source="fashion_mnist", root=str(tmp_path), val_per_class=0).setup()
    with pytest.raises(ValueError, match=r"digits mnist5k: the test split is empty: data.test_per_class=0"):
        task_datamodule("stn", test_per_class=0).setup()


def test_bad_options():
    with pytest.raises(ValueError, match="'svhn'; valid choices: mnist5k, mnist, fashion_mnist"):
        task_datamodule("stn", source="svhn")
    with pytest.raises(ValueError, match="'affine'; valid choices: none, r, rts, p, e, cluttered"):
        task_datamodule("stn", distortion="affine")
    with pytest.raises(ValueError, match="data.root is required"):
        task_datamodule("stn", source="mnist")
    with pytest.raises(ValueError, match="seed"):
        task_datamodule("stn", seed=-1)


@pytest.mark.parametrize("split", ["train", "val"])
def test_binarized_digits_are_zeros_and_ones_drawn_from_the_grey_levels(split):
    grey = task_datamodule("draw", binarize="none")
    grey.setup()
    threshold = task_datamodule("draw", binarize="threshold")
    threshold.setup()
    stochastic = task_datamodule("draw", binarize="stochastic")
    stochastic.setup()
    indices = list(range(256))
    images = {name: torch.stack([item["image"] for item in dm.datasets[split].__getitems__(indices)])
              for name, dm in (("grey", grey), ("threshold", threshold), ("stochastic", stochastic))}
    assert torch.equal(images["threshold"], (images["grey"] > 0.5).float())
    assert set(images["stochastic"].unique().tolist()) == {0.0, 1.0}
    # each pixel is on with probability equal to its grey level: the ink matches on average, and no pixel without
    # ink is ever drawn
    assert abs(float(images["stochastic"].mean() - images["grey"].mean())) < 0.005
    assert not images["stochastic"][images["grey"] == 0].any()


def test_stochastic_binarization_is_redrawn_each_training_epoch_and_fixed_for_validation():
    dm = task_datamodule("draw", binarize="stochastic")
    dm.setup()
    n = len(dm.datasets["train"])
    first, again, next_epoch = (dm.datasets["train"][index]["image"] for index in (3, 3, n + 3))  # epoch 0, 0, 1
    assert torch.equal(first, again) and not torch.equal(first, next_epoch)
    n_val = len(dm.datasets["val"])
    assert torch.equal(dm.datasets["val"][3]["image"], dm.datasets["val"][n_val + 3]["image"])


def test_unknown_binarization_is_named():
    with pytest.raises(ValueError, match="unknown data.binarize 'yes'; valid choices: none, threshold, stochastic"):
        task_datamodule("draw", binarize="yes")
