"""Batched distortions (distort_batch, sample_warps, DistortedDigits.__getitems__) give exactly the
per-digit results, for every kind, epoch and split, and the DataLoader uses them."""

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

import datamodules.distortions as distortions
from datamodules.digits import DistortedDigits, load_mnist5k
from datamodules.distortions import DISTORTIONS, distort, distort_batch, sample_warps
from datamodules.sampling import make_dataloader
from tests.datamodules.distortion_helpers import sample_warp

EPOCHS = (0, 1, 5)


@pytest.fixture(scope="module")
def mnist():
    """[5000, 28, 28] uint8 digits, [5000] labels."""
    return load_mnist5k()


@pytest.fixture(scope="module")
def digits(mnist) -> np.ndarray:
    """[24, 28, 28]: 22 real digits of all classes, a blank image and a full ink block (shrunk to fit)."""
    extra = np.stack([np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8)])
    return np.concatenate([mnist[0][::230][:22], extra])


def assert_items_equal(got: list[dict], want: list[dict]) -> None:
    """Same keys, dtypes and shapes; images and boxes within 1e-6, labels exact."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert set(g) == set(w) == {"image", "label", "box"}
        for key in g:  # assert_close also checks dtype and shape
            torch.testing.assert_close(g[key], w[key], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", DISTORTIONS)
def test_distort_batch_matches_per_digit(kind, digits, mnist):
    """Each digit of a batch (mixed sizes, a blank one, an oversized one) gets its one-digit result."""
    b = len(digits)
    sources = mnist[0][1::61][: 3 * b].reshape(b, 3, 28, 28).copy()  # [B, 3, 28, 28]
    sources[0] = 0  # blank clutter sources: pieces centre on a random pixel instead
    images, boxes = distort_batch(digits, kind, [np.random.default_rng(i) for i in range(b)], sources, 5)
    assert images.shape == (b, distortions.canvas_size(kind), distortions.canvas_size(kind))
    assert images.dtype == boxes.dtype == torch.float32 and boxes.shape == (b, 4)
    for i in range(b):
        image, box = distort(digits[i], kind, np.random.default_rng(i), sources[i], 5)
        torch.testing.assert_close(images[i], image, rtol=0, atol=1e-6)
        torch.testing.assert_close(boxes[i], box, rtol=0, atol=1e-6)
    if kind != "none":  # not a trivially shared result
        assert not torch.equal(images[0], images[1])


@pytest.mark.parametrize("kind", DISTORTIONS)
def test_sample_warps_matches_sample_warp(kind, digits):
    warps = sample_warps(digits, kind, [np.random.default_rng(7 + i) for i in range(len(digits))])
    assert len(warps) == len(digits)
    for i, d in enumerate(digits):
        one = sample_warp(d, kind, np.random.default_rng(7 + i))
        np.testing.assert_allclose(warps.out_from_src[i], one.out_from_src, rtol=0, atol=1e-12)
        np.testing.assert_allclose(warps.box[i], one.box, rtol=0, atol=1e-9)
        assert (one.control is None) == (kind != "e") == (warps[i].control is None)
        if one.control is not None:
            np.testing.assert_array_equal(warps.control[i], one.control)


@pytest.mark.parametrize("kind", DISTORTIONS)
@pytest.mark.parametrize("split_id,resample", [(0, True), (1, False), (2, False)])
def test_getitems_matches_getitem(kind, split_id, resample, digits):
    """Train (resampled per epoch) and val/test (fixed) items, epoch-encoded indices in any order."""
    labels = np.arange(len(digits)) % 10
    ds = DistortedDigits(digits, labels, kind, seed=3, split_id=split_id, resample=resample, clutter_pieces=4)
    n = len(ds)
    rng = np.random.default_rng(split_id)
    indices = [int(e * n + i) for e in EPOCHS for i in rng.permutation(n)[:10]]  # 30 indices, mixed epochs
    items = ds.__getitems__(indices)
    assert_items_equal(items, [ds[i] for i in indices])
    assert items[0]["image"].shape == (1, distortions.canvas_size(kind), distortions.canvas_size(kind))
    assert items[0]["label"].shape == () and items[0]["label"].dtype == torch.int64
    epoch5 = [ds[int(5 * n + i)] for i in range(3)]  # epoch 5 vs epoch 0: only train resamples
    redrawn = [not torch.equal(a["image"], ds[i]["image"]) for i, a in enumerate(epoch5)]
    assert any(redrawn) == (resample and kind != "none")


def test_getitems_empty_and_one_digit_split(digits):
    ds = DistortedDigits(digits[:1], np.array([3]), "cluttered", seed=0, split_id=0, resample=True)
    assert ds.__getitems__([]) == []
    indices = [0, 1, 2, 7]  # epochs 0, 1, 2, 7 of the one digit; clutter comes from the digit itself
    assert_items_equal(ds.__getitems__(indices), [ds[i] for i in indices])


def test_projective_retries_match(mnist, monkeypatch):
    """p redraws the corner noise of rejected quads; only those digits draw again, each from its own stream.

    Thin strokes and dots get rejected quads often, so several digits retry in the same round.
    """
    calls = []
    solve = distortions._homography

    def spy(src, dst):
        calls.append(len(src))
        return solve(src, dst)

    monkeypatch.setattr(distortions, "_homography", spy)
    line = np.pad(np.full((26, 1), 255, np.uint8), ((1, 1), (13, 14)))  # [28, 28] a 1-px vertical stroke
    dot = np.pad(np.full((1, 1), 255, np.uint8), ((13, 14), (13, 14)))  # [28, 28] one ink pixel
    digits = np.concatenate([mnist[0][:16], np.repeat(line[None], 12, 0), np.repeat(dot[None], 12, 0)])
    images, boxes = distort_batch(digits, "p", [np.random.default_rng(i) for i in range(len(digits))])
    assert calls[0] == len(digits) and len(calls) > 2 and calls[1] > 2  # several retries per round
    for i, d in enumerate(digits):
        image, box = distort(d, "p", np.random.default_rng(i))
        torch.testing.assert_close(images[i], image, rtol=0, atol=1e-6)
        torch.testing.assert_close(boxes[i], box, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["rts", "e", "cluttered"])
def test_dataloader_batches_equal_stacked_items(kind, mnist, monkeypatch):
    """DataLoader(batch_size=16, num_workers=0) fetches through __getitems__ and yields the stacked items."""
    ds = DistortedDigits(mnist[0][:64], mnist[1][:64], kind, seed=1, split_id=0, resample=True)
    fetched = []
    getitems = DistortedDigits.__getitems__

    def counting(self, indices):
        fetched.append(list(indices))
        return getitems(self, indices)

    monkeypatch.setattr(DistortedDigits, "__getitems__", counting)
    loader = make_dataloader(ds, batch_size=16, shuffle=True, seed=0, num_workers=0)
    loader.sampler.set_epoch(2)
    order = list(loader.sampler)  # epoch-encoded: 2 * 64 + i
    assert min(order) >= 2 * 64
    batches = list(loader)
    assert fetched == [order[i : i + 16] for i in range(0, 64, 16)]  # one batched fetch per batch
    s = distortions.canvas_size(kind)
    for batch, indices in zip(batches, fetched, strict=True):
        want = default_collate([getitems(ds, [i])[0] for i in indices])  # per-item results (ds[i]), stacked
        assert batch.keys() == want.keys() and batch["image"].shape == (16, 1, s, s)
        for key in want:
            torch.testing.assert_close(batch[key], want[key], rtol=0, atol=1e-6)
